"""The trainer: schedule values, evaluation, caching, checkpoints, resume == no resume, pretraining,
failing fast before compute is spent, and the non-quiet path that a user sees."""
import math
import os
import time

import pytest
import torch
from fakes import make_fake_cub_200

from kesl_utils import losses, paths, records, train
from kesl_utils.config import Config
from kesl_utils.context import RunContext
from kesl_utils.data import BadImagesError, DatasetLayoutError
from kesl_utils.hierarchy import Hierarchy
from kesl_utils.models import DamagedWeightsError

METRICS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")
TIMING = ("images_per_s", "epoch_time_s")


def tiny_hierarchy():
    edges = [("root", "a"), ("root", "b"), ("a", "a1"), ("a", "a2"), ("a", "a3"),
             ("b", "b1"), ("b", "b2"), ("b", "b3")]
    return Hierarchy.from_edges(edges, ["a1", "a2", "a3", "b1", "b2", "b3"])


@pytest.fixture(autouse=True)
def tiny_world(tmp_path, monkeypatch):
    # The command line (an entry point) reads the variable; the library gets the context below.
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    torch.set_num_threads(1)  # tiny models: threads only add scheduling noise on a shared machine


@pytest.fixture
def ctx(tmp_path):
    """Where the library's runs go in these tests: the same folder as the command line's."""
    return RunContext(results_dir=tmp_path / "results", device="cpu", progress=False)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: tiny_hierarchy())


def tiny_config(**changes):
    fields = dict(dataset="cub", source="synthetic", image_size=16, n_per_class=4, n_test_per_class=2,
                  backbone="resnet18", loss="kesl", lr=0.05, epochs=3, batch_size=8, max_batches_per_epoch=2,
                  eval_every=2, warmup_epochs=1, profile="custom")
    fields.update(changes)
    return Config(**fields)


def without_timing(history):
    return [{k: v for k, v in entry.items() if k not in TIMING} for entry in history]


class Crash(KeyboardInterrupt):
    """What Ctrl-C (or a killed process) looks like to the trainer."""


def crash_after(epoch):
    def callback(done, entry):
        if done >= epoch:
            raise Crash(f"simulated crash after epoch {done}")
    return callback


# -- pieces -----------------------------------------------------------------------------------
def test_lr_factor_values():
    cosine = train.lr_factor(Config(epochs=4, warmup_epochs=1, schedule="cosine"), iters_per_epoch=10)
    assert [cosine(s) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert cosine(10) == 1.0
    assert cosine(25) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 30)))
    assert cosine(40) == pytest.approx(0.0)
    step = train.lr_factor(Config(epochs=90, schedule="step", step_size=30, gamma=0.1), iters_per_epoch=5)
    assert [step(s) for s in (0, 149, 150, 299, 300)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_param_groups_and_learning_rates():
    from kesl_utils.models import build_model
    model = build_model("resnet18", 6)
    optimizer = train.build_optimizer(Config(lr=0.1, backbone_lr_mult=0.1, weight_decay=1e-4), model)
    backbone, head = optimizer.param_groups
    assert (backbone["lr"], head["lr"]) == pytest.approx((0.01, 0.1))
    assert head["params"] == [model.fc.weight, model.fc.bias]
    assert backbone["momentum"] == 0.9 and backbone["weight_decay"] == 1e-4


def test_evaluate_returns_logits_and_targets_in_order():
    class Fixed(torch.nn.Module):  # predicts class (first pixel value) with certainty
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 6).float() * 10

    inputs = torch.zeros(6, 3, 2, 2)
    inputs[:, 0, 0, 0] = torch.tensor([0, 1, 2, 3, 4, 3.0])
    targets = torch.tensor([0, 1, 2, 3, 4, 5])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=4)
    logits, got = train.evaluate(Fixed(), loader, torch.device("cpu"), amp_dtype=None)
    assert logits.shape == (6, 6) and logits.dtype == torch.float32 and torch.equal(got, targets)
    assert torch.equal(logits.argmax(1), torch.tensor([0, 1, 2, 3, 4, 3]))


# -- whole runs ---------------------------------------------------------------------------------
def test_run_writes_record_and_caches(tiny, ctx, monkeypatch):
    config = tiny_config()
    record = train.run(config, context=ctx)
    assert record.status == "finished" and record.run_id == config.run_id and record.world_size == 1
    assert set(METRICS) <= set(record.metrics)
    assert [h["epoch"] for h in record.history] == [1, 2, 3]
    assert ["test_top1" in h for h in record.history] == [False, True, True]
    assert record.metrics == {k[5:]: v for k, v in record.history[-1].items() if k.startswith("test_")}
    assert record.history[0]["lr"] == pytest.approx(0.05 / 2)  # warm-up: first of 2 iterations
    assert record.history[0]["train_images"] == 16
    assert record.config == config.to_dict() and record.images_per_s > 0
    assert records.load_record(config, ctx.results_dir) == record
    assert not train.checkpoint_dir(config, ctx.results_dir).exists()
    outputs = ctx.results_dir / record.artifacts["test_outputs"]["path"]
    with __import__("numpy").load(outputs) as saved:
        assert saved["logits"].shape == (12, 6) and saved["targets"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train, "train_one_epoch", must_not_train)
    assert train.run(config, context=ctx) == record
    with pytest.raises(AssertionError, match="trained again"):
        train.run(config, context=ctx, force=True)


def test_the_verbose_run_prints_progress(tiny, ctx, capsys):
    record = train.run(tiny_config(epochs=2, eval_every=1), context=ctx.replace(verbose=True, progress=True))
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{record.run_id} epoch 1/2: loss" in text and "test top-1" in text


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_resume_equals_uninterrupted_run(tiny, ctx, tmp_path, channels_last):
    # mobilenet_v2 has dropout: the restored torch RNG state matters, not only the data order. The quick
    # profile trains it in channels-last format (on the CPU too): resume must be exact there as well.
    config = tiny_config(backbone="mobilenet_v2", channels_last=channels_last)

    straight_ctx = ctx.replace(results_dir=tmp_path / "straight")
    straight = train.run(config, context=straight_ctx, keep_checkpoints=True)
    straight_state = torch.load(train.checkpoint_path(config, straight_ctx.results_dir), weights_only=True)

    ctx = ctx.replace(results_dir=tmp_path / "resumed")
    with pytest.raises(Crash):
        train.run(config, context=ctx, on_epoch_end=crash_after(1))
    assert records.load_record(config, ctx.results_dir) is None
    assert torch.load(train.checkpoint_path(config, ctx.results_dir), weights_only=True)["epoch"] == 1
    torch.manual_seed(12345)  # whatever happened in between must not matter
    with pytest.raises(Crash):
        train.run(config, context=ctx, on_epoch_end=crash_after(2))
    resumed = train.run(config, context=ctx, keep_checkpoints=True)
    resumed_state = torch.load(train.checkpoint_path(config, ctx.results_dir), weights_only=True)

    assert resumed.metrics == straight.metrics
    assert without_timing(resumed.history) == without_timing(straight.history)
    for key, value in straight_state["model"].items():
        assert torch.equal(resumed_state["model"][key], value), key
    momentum = [s["momentum_buffer"] for s in straight_state["optimizer"]["state"].values()]
    resumed_momentum = [s["momentum_buffer"] for s in resumed_state["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, resumed_momentum))


def test_resume_is_exact_on_image_files_read_by_workers(ctx, tmp_path, monkeypatch):
    """Random crops and flips drawn in two loader workers: a resumed run must draw the same ones."""
    data_root = make_fake_cub_200(tmp_path / "data", images_per_class=2, test_per_class=1, size=(20, 20))
    config = Config(dataset="cub", source="real", image_size=16, backbone="resnet18", loss="kesl", lr=0.05,
                    epochs=3, batch_size=32, max_batches_per_epoch=3, eval_every=3, profile="custom")
    monkeypatch.setattr("kesl_utils.data.loaders.default_num_workers", lambda dataset, device: 2)

    straight = train.run(config, context=ctx.replace(data_root=data_root, results_dir=tmp_path / "straight"))
    ctx = ctx.replace(results_dir=tmp_path / "resumed")
    with pytest.raises(Crash):
        train.run(config, context=ctx.replace(data_root=data_root), on_epoch_end=crash_after(1))
    resumed = train.run(config, context=ctx.replace(data_root=data_root))
    assert resumed.run_id == straight.run_id
    assert resumed.metrics == straight.metrics
    assert without_timing(resumed.history) == without_timing(straight.history)


def test_checkpoint_of_another_config_is_ignored(tiny, ctx):
    config = tiny_config(epochs=2, eval_every=1)
    with pytest.raises(Crash):
        train.run(config, context=ctx, on_epoch_end=crash_after(1))
    path = train.checkpoint_path(config, ctx.results_dir)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"] = dict(checkpoint["config"], lr=0.5)
    torch.save(checkpoint, path)
    with pytest.warns(UserWarning, match="another config"):
        record = train.run(config, context=ctx)
    assert [h["epoch"] for h in record.history] == [1, 2]


def test_epoch_order_depends_on_seed_and_epoch_only():
    from kesl_utils.data import build_dataset, build_loader
    dataset = build_dataset("cub", "train", source="synthetic", hierarchy=tiny_hierarchy(),
                            image_size=8, n_per_class=4, seed=0)

    def order(seed, epoch):
        loader = build_loader(dataset, 24, train=True, device=torch.device("cpu"), num_workers=0, seed=seed)
        torch.rand(3)  # unrelated RNG use
        train.set_epoch_order(loader, seed, epoch)
        return next(iter(loader))[1].tolist()

    assert order(0, 2) == order(0, 2)
    assert order(0, 2) != order(0, 3) and order(0, 2) != order(1, 2)


# -- real data: identity and skipping ---------------------------------------------------------------
def test_a_real_datasets_run_id_follows_its_files(tmp_path):
    data_root = make_fake_cub_200(tmp_path / "a", images_per_class=1, test_per_class=1)
    config = Config(dataset="cub", source="real", image_size=16, profile="custom")
    resolved = train.with_data_fingerprint(config, data_root)
    assert resolved.data_fingerprint and resolved.run_id != config.run_id
    moved = tmp_path / "moved"
    os.rename(data_root, moved)
    assert train.with_data_fingerprint(config, moved).run_id == resolved.run_id
    image = next((moved / "CUB_200_2011" / "images").rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")
    assert train.with_data_fingerprint(config, moved).run_id != resolved.run_id
    with pytest.raises(DatasetLayoutError):
        train.with_data_fingerprint(config, tmp_path / "nonexistent")


def test_a_cached_record_is_not_returned_for_other_data(tmp_path, capsys):
    from kesl_utils.__main__ import main

    data_root = make_fake_cub_200(tmp_path / "a", images_per_class=1, test_per_class=1)
    argv = ["train", "--profile", "smoke", "--source", "real", "--no-imagenet-weights", "--device", "cpu", "--quiet"]
    assert main(argv + ["--data-root", str(data_root)]) == 0
    assert "(trained" in capsys.readouterr().out
    assert main(argv + ["--data-root", str(tmp_path / "nonexistent")]) == 2  # error: ..., no cached record
    assert "error: CUB-200-2011: dataset root does not exist" in capsys.readouterr().err


def _truncated_jpeg(path):
    """A JPEG whose header is sound and whose pixels are cut short: only decoding finds it."""
    import io

    import numpy as np
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])


def test_images_that_decode_badly_are_skipped_and_counted_once_per_epoch(ctx, tmp_path):
    data_root = make_fake_cub_200(tmp_path / "data", images_per_class=1, test_per_class=1)
    images = sorted((data_root / "CUB_200_2011" / "images").rglob("*.jpg"))
    _truncated_jpeg(images[0])  # class 001's training image: its header passes the pre-flight check
    config = Config(dataset="cub", source="real", image_size=16, skip_bad_images=True, epochs=2, eval_every=1,
                    batch_size=50, profile="custom")
    with pytest.warns(RuntimeWarning, match="skipped 1 undecodable image"):
        record = train.run(config, context=ctx.replace(data_root=data_root))
    assert [h["skipped_images"] for h in record.history] == [1, 1]
    assert [h["test_skipped_images"] for h in record.history] == [0, 0]
    assert record.bad_images == {"train": [], "test": []}  # the pre-flight check ran and found nothing


def test_a_bad_test_image_stops_the_run_before_the_first_epoch_naming_the_cli_flag(ctx, tmp_path, monkeypatch):
    """Issue 23: a corrupt *test* image failed at evaluation, after training; the hint named the Python argument."""
    data_root = make_fake_cub_200(tmp_path / "data", images_per_class=1, test_per_class=1)
    base = data_root / "CUB_200_2011" / "images"
    test_image = sorted(base.rglob("*_0001.jpg"))[5]  # a test image (k = 1 of each class)
    test_image.write_bytes(b"not a jpeg")
    train_image = sorted(base.rglob("*_0000.jpg"))[7]  # and a training image the sampled batches would miss
    train_image.write_bytes(b"")
    monkeypatch.setattr(train, "train_one_epoch", lambda *a, **k: pytest.fail("training began"))
    config = Config(dataset="cub", source="real", image_size=16, epochs=1, batch_size=50, max_batches_per_epoch=1,
                    profile="custom")
    with pytest.raises(BadImagesError) as info:
        train.run(config, context=ctx.replace(data_root=data_root))
    message = str(info.value)
    assert f"test: {test_image} (UnidentifiedImageError" in message and f"train: {train_image}" in message
    assert "--skip-bad-images" in message and "2 image file(s) of cub cannot be read" in message


def test_with_skip_bad_images_bad_files_are_left_out_up_front_and_listed_in_the_record(ctx, tmp_path):
    data_root = make_fake_cub_200(tmp_path / "data", images_per_class=1, test_per_class=1)
    base = data_root / "CUB_200_2011" / "images"
    sorted(base.rglob("*_0001.jpg"))[5].write_bytes(b"not a jpeg")
    sorted(base.rglob("*_0000.jpg"))[7].write_bytes(b"")
    config = Config(dataset="cub", source="real", image_size=16, skip_bad_images=True, epochs=1, batch_size=50,
                    profile="custom")
    with pytest.warns(RuntimeWarning, match="left 2 unreadable image file"):
        record = train.run(config, context=ctx.replace(data_root=data_root))
    assert len(record.bad_images["train"]) == 1 and len(record.bad_images["test"]) == 1
    assert record.bad_images["test"][0].startswith("images/006.") and record.history[0]["skipped_images"] == 0
    assert record.history[0]["train_images"] == 50 * (199 // 50)  # 199 sound training images, whole batches


def test_a_diverging_run_stops_at_the_first_bad_batch_naming_batch_epoch_and_lr(tiny, ctx, monkeypatch):
    """Issue 23: `--lr 1e30` was reported only at the end of the epoch."""
    batches = []
    real_build_model = train.build_model

    def counting_model(*args, **kwargs):
        model = real_build_model(*args, **kwargs)
        model.register_forward_hook(lambda module, inputs, output: batches.append(1))
        return model

    monkeypatch.setattr(train, "build_model", counting_model)
    config = tiny_config(lr=1e30, warmup_epochs=0, max_batches_per_epoch=None, n_per_class=8)  # 6 batches an epoch
    with pytest.raises(train.DivergenceError) as info:
        train.run(config, context=ctx)
    error, lr = info.value, 1e30 * train.lr_factor(config, 6)(1)  # the cosine schedule's lr at batch 2
    assert (error.batch, error.epoch, error.lr) == (2, 1, lr)
    assert f"not finite at batch 2/6 of epoch 1 (lr {lr:g})" in str(error) and "--lr" in str(error)
    assert len(batches) == 2  # stopped there, not at the end of the epoch


def test_divergence_checked_every_few_batches_still_names_the_first_bad_one():
    """On a GPU the loss is looked at every DIVERGENCE_CHECK_EVERY_CUDA batches (no sync per batch): the error
    still names the first bad batch and its learning rate."""
    from kesl_utils.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", 6)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    batches = [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))] * 9
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(1))
    with pytest.raises(train.DivergenceError) as info:
        train.train_one_epoch(model, losses.build_loss("ce"), optimizer, batches, torch.device("cpu"),
                              scheduler=scheduler, quiet=True, epoch=3, check_every=4)
    assert (info.value.batch, info.value.epoch, info.value.lr) == (2, 3, 1e30 / 2)
    assert "batch 2/9 of epoch 3 (lr 5e+29)" in str(info.value) and len(seen) == 4  # found at the look after batch 4


def test_a_device_this_machine_lacks_is_an_error_before_set_up(tiny, ctx, monkeypatch):
    monkeypatch.setattr(train, "setup", lambda *a, **k: pytest.fail("set-up ran before the check"))
    for device, message in (("foo", "device 'foo' is not a device name; this machine has: cpu"),
                            ("cuda:99", "device 'cuda:99' is not available")):
        with pytest.raises(ValueError, match=message):
            train.run(tiny_config(), context=ctx.replace(device=device))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' is not available: .*this machine has: cpu"):
            train.run(tiny_config(), context=ctx.replace(device="cuda"))


def test_damaged_pretraining_weights_name_the_file_and_what_to_do(tiny, ctx):
    source = tiny_config(loss="ce", dataset="small_imagenet", seed=100, epochs=1, eval_every=1)
    tuned = tiny_config(pretrain_run=source, epochs=1)
    train.run(tuned, context=ctx)
    weights = train.weights_path(source, ctx.results_dir)
    weights.write_bytes(weights.read_bytes()[:1000])  # an interrupted copy
    with pytest.raises(DamagedWeightsError) as info:
        train.setup(tuned, context=ctx)
    message = str(info.value)
    assert paths.display_path(weights) in message and "Delete it and run again" in message


# -- failing before compute is spent ----------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_fail_at_once(tiny, ctx, tmp_path):
    results = tmp_path / "ro"
    (results / "runs").mkdir(parents=True)
    (results / "runs").chmod(0o500)
    ctx = ctx.replace(results_dir=results)
    start = time.perf_counter()
    with pytest.raises(PermissionError, match="cannot write in .*runs"):
        train.run(tiny_config(), context=ctx)
    assert time.perf_counter() - start < 1.0


def test_unwritable_results_fail_at_once(tiny, ctx, tmp_path, monkeypatch):
    """A file where the runs folder should be (root can write anywhere, but not into a file)."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "checkpoints").write_text("not a folder")
    monkeypatch.setattr(train, "setup", lambda *a, **k: pytest.fail("set-up ran before the check"))
    with pytest.raises(PermissionError, match="checkpoints.*not a folder"):
        train.run(tiny_config(), context=ctx)


def test_record_path_that_is_a_folder_fails_at_once(tiny, ctx, monkeypatch):
    config = tiny_config()
    (ctx.runs_dir / f"{config.run_id}.json").mkdir(parents=True)
    monkeypatch.setattr(train, "setup", lambda *a, **k: pytest.fail("set-up ran before the check"))
    with pytest.raises(PermissionError, match=f"{config.run_id}.json exists and is not a file"):
        train.run(config, context=ctx)


# -- pretraining ------------------------------------------------------------------------------------
def test_fine_tuning_starts_from_the_pretraining_runs_weights(tiny, ctx):
    source = tiny_config(loss="ce", dataset="small_imagenet", seed=100, epochs=1, eval_every=1)
    tuned = tiny_config(pretrain_run=source)
    record = train.run(tuned, context=ctx)
    weights = train.weights_path(source, ctx.results_dir)
    assert weights.is_file() and records.load_record(source, ctx.results_dir) is not None
    used = record.artifacts["pretrain_weights"]
    assert used["run_id"] == source.run_id and used["sha256"] == paths.sha256_file(weights)

    # The backbone starts from those weights, the classifier does not.
    session = train.setup(tuned, context=ctx)
    state = torch.load(weights, weights_only=True)
    assert torch.equal(session.model.conv1.weight, state["conv1.weight"])
    assert not torch.equal(session.model.fc.weight, state["fc.weight"])

    # A fresh clone: the record is committed, the weights (an ignored artifact) are not.
    before = records.record_path(source.run_id, ctx.results_dir).read_text()
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="train.run trains it first"):
        train.setup(tuned, context=ctx)  # set-up reads the weights; run() alone trains what is missing
    assert train.pretrained_weights(source, context=ctx) == weights and weights.is_file()
    assert records.record_path(source.run_id, ctx.results_dir).read_text() == before


def test_a_fine_tuning_runs_time_excludes_its_pretraining(tiny, ctx, monkeypatch):
    """Pretraining trained on the way is its own run with its own time, not part of the fine-tuning's."""
    clock = {"offset": 0.0}
    real_clock, real_pretrained = train.time.perf_counter, train.pretrained_weights

    calls = []

    def slow_pretraining(pretrain, **kwargs):  # as if training the pretraining run had taken 1000 s
        calls.append(pretrain.run_id)
        trains = not train.weights_path(pretrain, ctx.results_dir).is_file()
        path = real_pretrained(pretrain, **kwargs)
        clock["offset"] += 1000.0 if trains else 0.0
        return path

    monkeypatch.setattr(train.time, "perf_counter", lambda: real_clock() + clock["offset"])
    monkeypatch.setattr(train, "pretrained_weights", slow_pretraining)
    source = tiny_config(loss="ce", dataset="small_imagenet", seed=101, epochs=1, eval_every=1)
    record = train.run(tiny_config(pretrain_run=source), context=ctx)
    assert clock["offset"] == 1000.0 and record.wall_time_s < 1000.0
    assert calls == [source.run_id]  # asked for once per run (by run(), not again by setup())


# -- a loss registered by the user ---------------------------------------------------------------------
@pytest.fixture
def toy_loss():
    @losses.register_loss("toy_focal", params=(losses.LossParam("focus", 2.0, lambda v: float(v), "focusing"),),
                          needs_hierarchy=False, summary="a focal-style loss, for the test")
    def build(hierarchy, *, focus):
        class Focal(torch.nn.Module):
            def forward(self, logits, targets):
                log_p = torch.log_softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
                return (-(1 - log_p.exp()) ** focus * log_p).mean()
        return Focal()

    yield "toy_focal"
    del losses.LOSSES["toy_focal"]


def test_a_loss_registered_in_a_test_trains(tiny, ctx, toy_loss):
    config = tiny_config(loss=toy_loss, loss_params={"focus": 3.0}, epochs=1, eval_every=1)
    assert config.loss_params == {"focus": 3.0}
    record = train.run(config, context=ctx)
    assert record.status == "finished" and record.config["loss_params"] == {"focus": 3.0}
    assert Config(loss=toy_loss).run_id != config.run_id


def test_a_registered_loss_trains_through_the_command_line(tiny, toy_loss, capsys):
    from kesl_utils.__main__ import main

    argv = ["train", "--profile", "smoke", "--dataset", "mini_imagenet", "--n-per-class", "6", "--batch-size", "8",
            "--loss", toy_loss, "--focus", "1.5", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert "(trained" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke", "--loss", "ce", "--focus", "1.5", "--quiet"])
    assert "--focus is a parameter of 'toy_focal', not of the chosen loss 'ce'" in capsys.readouterr().err
