"""One run on several processes (gloo on CPU): the same result as one process, exact resume after a
kill, and the pieces (samplers, shards, collectives outside torchrun).

The runs start their processes with ``torch.multiprocessing`` and hand each the environment
torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so ``train.run``
joins the process group exactly as under ``torchrun``. The tiny hierarchy of ``test_train`` is
patched inside each child.
"""
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_train import tiny_config, tiny_hierarchy, without_timing

from kesl_utils import distributed, records, train
from kesl_utils.context import RunContext
from kesl_utils.data import build_dataset, build_loader


@pytest.fixture(autouse=True)
def results(tmp_path):
    torch.set_num_threads(1)
    return tmp_path


def context(results_dir) -> RunContext:
    return RunContext(results_dir=results_dir, device="cpu", progress=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank, world, port, results_dir, config, kill_after, keep_checkpoints):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train.load_run_hierarchy = lambda config: tiny_hierarchy()

    def kill(epoch, entry):
        if kill_after is not None and epoch >= kill_after:
            os._exit(9)  # no clean-up, no exception handling: what a killed process leaves behind

    train.run(config, context=context(results_dir), on_epoch_end=kill, keep_checkpoints=keep_checkpoints)


def run_on(world, results_dir, config, *, kill_after=None, keep_checkpoints=False):
    """``train.run(config)`` on ``world`` processes; the record they wrote (None if killed).

    The processes are forked: they start in milliseconds with this process's imports (a spawned
    one would import torch again, seconds on a busy machine), and no collective ran here before.
    """
    mp.start_processes(_rank_main, nprocs=world, join=True, start_method="fork",
                       args=(world, _free_port(), str(results_dir), config, kill_after, keep_checkpoints))
    return records.load_record(config, results_dir)


# -- whole runs ---------------------------------------------------------------------------------
def test_two_processes_compute_what_one_process_computes(results, monkeypatch):
    """Same global batch, same images per step, BatchNorm over the global batch: the same run up to
    floating-point summation order (the gradient all-reduce, BatchNorm sums over two shards).

    Tolerance. ResNet-18 at 16 px with BatchNorm over 8 values per channel in its last stages is
    badly conditioned: one process fed the *same* batches in another order (a pure summation-order
    change) moves the gradients by ~6e-5 (relative) at the 2nd step and by 17-34 % at the 3rd.
    So the runs are compared after 2 steps, where the measured 1-vs-2-process differences are
    ~2e-6 (relative) in the training loss, 0 in every top-k and hierarchical metric, ~2e-4 in
    ECE and ~0.015 in the logits (of size ~1). The bounds below are a few times those, and far
    below what a wrong sample, shard or gradient would do (O(1) in the logits, whole images in
    the counts).
    """
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: tiny_hierarchy())
    # resnet18 has no dropout, synthetic images no augmentation: nothing random differs per rank.
    config = tiny_config(epochs=1, eval_every=1, lr=0.01, n_test_per_class=3)  # 18 test images: shards of 9
    one = train.run(config, context=context(results / "one"))
    two = run_on(2, results / "two", config)

    assert (one.world_size, two.world_size) == (1, 2) and two.run_id == one.run_id
    (a,), (b,) = one.history, two.history
    assert a["train_images"] == b["train_images"] == 16 and b["train_top1"] == a["train_top1"]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-5)
    for key in ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5"):
        assert two.metrics[key] == one.metrics[key], key
    assert two.metrics["ece"] == pytest.approx(one.metrics["ece"], abs=2e-3)
    with np.load(results / "two" / two.artifacts["test_outputs"]["path"]) as saved, \
            np.load(results / "one" / one.artifacts["test_outputs"]["path"]) as single:
        # Rank 0 wrote all 18 test images, in order, each once.
        assert saved["targets"].tolist() == single["targets"].tolist() == [c for c in range(6) for _ in range(3)]
        assert np.abs(saved["logits"] - single["logits"]).max() < 0.05


def test_a_killed_two_process_run_resumes_exactly(results):
    # mobilenet_v2 has dropout: each rank's own RNG state must come back, not only rank 0's.
    config = tiny_config(backbone="mobilenet_v2", epochs=3, eval_every=1)
    straight = run_on(2, results / "straight", config)
    with pytest.raises(Exception, match="exit"):
        run_on(2, results / "resumed", config, kill_after=1)
    assert records.load_record(config, results / "resumed") is None
    checkpoint = torch.load(train.checkpoint_path(config, results / "resumed"), weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["world_size"] == 2 and len(checkpoint["rng_ranks"]) == 1
    resumed = run_on(2, results / "resumed", config)

    assert resumed.world_size == 2
    assert resumed.metrics == straight.metrics
    assert without_timing(resumed.history) == without_timing(straight.history)


# -- pieces ---------------------------------------------------------------------------------------
def test_one_process_sees_the_union_of_the_ranks_batches():
    dataset = build_dataset("cub", "train", source="synthetic", hierarchy=tiny_hierarchy(), image_size=8,
                            n_per_class=5, seed=0)  # 30 images: 3 global batches of 8, 6 dropped

    def batches(rank, world, epoch):
        loader = build_loader(dataset, 8, train=True, device="cpu", num_workers=0, seed=0, rank=rank,
                              world_size=world)
        train.set_epoch_order(loader, 0, epoch)
        return [targets for _, targets in loader]

    for epoch in (1, 2):
        single = batches(0, 1, epoch)
        ranks = [batches(r, 2, epoch) for r in range(2)]
        assert len(single) == len(ranks[0]) == len(ranks[1]) == 3
        assert all(len(t) == 4 for t in ranks[0] + ranks[1])
        assert [torch.cat(pair).tolist() for pair in zip(*ranks)] == [t.tolist() for t in single]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_sampler_of_one_rank_draws_the_order_of_a_shuffling_dataloader(workers):
    """Drawn lazily from the loader's generator, after the worker base seed, as RandomSampler does."""
    dataset = torch.utils.data.TensorDataset(torch.arange(50))
    generator, plain_generator = torch.Generator(), torch.Generator()
    sharded = torch.utils.data.DataLoader(
        dataset, batch_size=8, drop_last=True, generator=generator, num_workers=workers,
        sampler=distributed.ShuffleShardSampler(50, 8, generator=generator, rank=0, world=1))
    plain = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True,
                                        generator=plain_generator, num_workers=workers)
    for epoch in (1, 2):
        generator.manual_seed(train.epoch_seed(4, epoch))
        plain_generator.manual_seed(train.epoch_seed(4, epoch))
        assert [b[0].tolist() for b in sharded] == [b[0].tolist() for b in plain]


def test_test_shards_cover_the_split_once_in_order():
    for n in (0, 1, 5, 18, 19):
        for world in (1, 2, 3, 4):
            shards = [distributed.shard_range(n, r, world) for r in range(world)]
            assert [i for shard in shards for i in shard] == list(range(n))
            assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_the_global_batch_must_split_evenly():
    assert distributed.local_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match="batch_size 30 .* not divisible by the 4 processes"):
        distributed.local_batch_size(30, 4)
    dataset = torch.utils.data.TensorDataset(torch.arange(50))
    with pytest.raises(ValueError, match="not divisible by the 4 processes"):
        build_loader(dataset, 30, train=True, device="cpu", rank=1, world_size=4)


def test_rank_seeds():
    assert distributed.rank_seed(7, 0) == 7
    seeds = {distributed.rank_seed(seed, rank) for seed in range(3) for rank in range(1, 4)}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)


def test_outside_torchrun_nothing_is_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env("cpu") == torch.device("cpu")
    assert not torch.distributed.is_initialized()
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    distributed.barrier()
    rows = torch.arange(6).view(3, 2)
    assert distributed.gather_rows(rows) is rows and distributed.all_gather_object("x") == ["x"]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert torch.equal(distributed.all_reduce_sum(torch.ones(2)), torch.ones(2))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    # A torchrun environment with one process is one process too.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched()


def test_cpu_sync_batchnorm_keeps_the_state_and_is_batchnorm_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    keys = list(model.state_dict())
    weight = model[1].weight
    converted = distributed.sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(converted[1], distributed.CPUSyncBatchNorm) and converted[1].weight is weight
    assert list(converted.state_dict()) == keys
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    reference.load_state_dict(converted.state_dict())
    x = torch.randn(5, 3, 6, 6)
    assert torch.equal(converted(x), reference(x))  # no process group: plain BatchNorm
    assert torch.equal(converted[1].running_var, reference[1].running_var)


def test_loader_workers_of_other_ranks_draw_other_augmentations():
    from kesl_utils.data.loaders import seed_worker

    def worker_seed(rank):
        with torch.random.fork_rng():
            torch.manual_seed(1234)  # what DataLoader gives worker 0 of every rank (same generator)
            seed_worker(0, rank=rank)
            return torch.initial_seed()

    assert worker_seed(0) == 1234  # one process: unchanged
    assert worker_seed(1) == worker_seed(1) != 1234 and worker_seed(2) not in (1234, worker_seed(1))
