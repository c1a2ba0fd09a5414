"""The trainer: schedule values, evaluation, caching, checkpoints, and resume == no resume."""
import math

import pytest
import torch

from kesl_utils import records, train
from kesl_utils.config import Config
from kesl_utils.hierarchy import Hierarchy

METRICS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")
TIMING = ("images_per_s", "epoch_time_s")


def tiny_hierarchy():
    edges = [("root", "a"), ("root", "b"), ("a", "a1"), ("a", "a2"), ("a", "a3"),
             ("b", "b1"), ("b", "b2"), ("b", "b3")]
    return Hierarchy.from_edges(edges, ["a1", "a2", "a3", "b1", "b2", "b3"])


@pytest.fixture(autouse=True)
def tiny_world(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: tiny_hierarchy())
    torch.set_num_threads(1)  # tiny models: threads only add scheduling noise on a shared machine


def tiny_config(**changes):
    fields = dict(dataset="cub", source="synthetic", image_size=16, n_per_class=4, n_test_per_class=2,
                  backbone="resnet18", loss="kesl", lam=0.5, T=2.0, alpha=1.0, beta=0.1, lr=0.05,
                  epochs=3, batch_size=8, max_batches_per_epoch=2, eval_every=2, warmup_epochs=1,
                  profile="custom")
    fields.update(changes)
    return Config(**fields)


def without_timing(history):
    return [{k: v for k, v in entry.items() if k not in TIMING} for entry in history]


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


def test_evaluate_returns_metrics_logits_targets():
    class Fixed(torch.nn.Module):  # predicts class (first pixel value) with certainty
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 6).float() * 10

    inputs = torch.zeros(6, 3, 2, 2)
    inputs[:, 0, 0, 0] = torch.tensor([0, 1, 2, 3, 4, 3.0])
    targets = torch.tensor([0, 1, 2, 3, 4, 5])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=4)
    distances = torch.as_tensor(tiny_hierarchy().edge_distances()) - 1
    distances.fill_diagonal_(0)
    metrics, logits, got = train.evaluate(Fixed(), loader, distances, torch.device("cpu"), amp=False)
    assert set(metrics) == set(METRICS) and logits.shape == (6, 6) and torch.equal(got, targets)
    assert metrics["top1"] == pytest.approx(100 * 5 / 6)
    assert metrics["mistake_severity"] == 1.0  # the one mistake: b3 -> b1, siblings (e = 2, d = 1)


# -- whole runs ---------------------------------------------------------------------------------
def test_run_writes_record_and_caches(monkeypatch):
    config = tiny_config()
    record = train.run(config, quiet=True, device="cpu")
    assert record.status == "finished" and record.run_id == config.run_id
    assert set(record.metrics) == set(METRICS)
    assert [h["epoch"] for h in record.history] == [1, 2, 3]
    assert ["test_top1" in h for h in record.history] == [False, True, True]
    assert record.metrics == {k: record.history[-1][f"test_{k}"] for k in METRICS}
    assert record.history[0]["lr"] == pytest.approx(0.05 / 2)  # warm-up: first of 2 iterations
    assert record.history[0]["train_images"] == 16
    assert record.config == config.to_dict() and record.images_per_s > 0
    assert records.load_record(config.run_id) == record
    assert not train.checkpoint_dir(config.run_id).exists()

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train, "train_one_epoch", must_not_train)
    assert train.run(config, quiet=True) == record
    with pytest.raises(AssertionError, match="trained again"):
        train.run(config, quiet=True, force=True)


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    # mobilenet_v2 has dropout: the restored torch RNG state matters, not only the data order.
    config = tiny_config(backbone="mobilenet_v2")

    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "straight"))
    straight = train.run(config, quiet=True, device="cpu", keep_checkpoints=True)
    straight_state = torch.load(train.checkpoint_path(config.run_id), weights_only=True)

    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        train.run(config, quiet=True, device="cpu", _stop_after_epoch=1)
    assert records.load_record(config.run_id) is None
    assert torch.load(train.checkpoint_path(config.run_id), weights_only=True)["epoch"] == 1
    torch.manual_seed(12345)  # whatever happened in between must not matter
    with pytest.raises(KeyboardInterrupt):
        train.run(config, quiet=True, device="cpu", _stop_after_epoch=2)
    resumed = train.run(config, quiet=True, device="cpu", keep_checkpoints=True)
    resumed_state = torch.load(train.checkpoint_path(config.run_id), weights_only=True)

    assert resumed.metrics == straight.metrics
    assert without_timing(resumed.history) == without_timing(straight.history)
    for key, value in straight_state["model"].items():
        assert torch.equal(resumed_state["model"][key], value), key
    momentum = [s["momentum_buffer"] for s in straight_state["optimizer"]["state"].values()]
    resumed_momentum = [s["momentum_buffer"] for s in resumed_state["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, resumed_momentum))


def test_checkpoint_of_another_config_is_ignored():
    config = tiny_config(epochs=2, eval_every=1)
    with pytest.raises(KeyboardInterrupt):
        train.run(config, quiet=True, device="cpu", _stop_after_epoch=1)
    path = train.checkpoint_path(config.run_id)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"] = dict(checkpoint["config"], lr=0.5)
    torch.save(checkpoint, path)
    with pytest.warns(UserWarning, match="another config"):
        record = train.run(config, quiet=True, device="cpu")
    assert [h["epoch"] for h in record.history] == [1, 2]


def test_epoch_order_depends_on_seed_and_epoch_only():
    from kesl_utils.data import build_dataset, build_loader
    dataset = build_dataset("cub", "train", source="synthetic", hierarchy=tiny_hierarchy(),
                            image_size=8, n_per_class=4, seed=0)

    def order(seed, epoch):
        loader = build_loader(dataset, 24, train=True, device=torch.device("cpu"), num_workers=0, seed=seed)
        torch.rand(3)  # unrelated RNG use
        train._set_epoch_order(loader, seed, epoch)
        return next(iter(loader))[1].tolist()

    assert order(0, 2) == order(0, 2)
    assert order(0, 2) != order(0, 3) and order(0, 2) != order(1, 2)


def test_skipped_images_are_reported_once_per_epoch(monkeypatch):
    import kesl_utils.data as data

    real_build = data.build_dataset

    class Skipping(torch.utils.data.Dataset):  # stands in for an image dataset with one bad file
        skip_bad_images = True

        def __init__(self, inner):
            # Shared memory, as in the real datasets: data-loader workers do the skipping.
            self.inner, self.skips, self.reports = inner, torch.zeros(1).share_memory_(), 0

        @property
        def n_skipped(self):
            return int(self.skips.item())

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, index):
            if index == 0:
                self.skips += 1
            return self.inner[index]

        def report_skipped(self):
            self.reports += 1

    made = []

    def build(*args, **kwargs):
        assert kwargs["skip_bad_images"] is True
        made.append(Skipping(real_build(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(data, "build_dataset", build)
    config = tiny_config(epochs=2, eval_every=1, max_batches_per_epoch=None)
    record = train.run(config, quiet=True, device="cpu", skip_bad_images=True)
    train_set, test_set = made
    assert [h["skipped_images"] for h in record.history] == [1, 1]  # 3 full batches per epoch
    assert [h["test_skipped_images"] for h in record.history] == [1, 1]
    assert train_set.reports == test_set.reports == 2
