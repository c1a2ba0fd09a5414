"""The trainer: one :class:`~kesl_utils.config.Config` in, one :class:`~kesl_utils.records.RunRecord` out.

Modelled on torchvision's reference classification script: a separate :func:`train_one_epoch` and
:func:`evaluate`, one mixed-precision argument (``amp_dtype``) for both, and one checkpoint dict
(model, optimiser, scheduler, scaler, epoch, config, history, RNG states) written atomically at
the end of every epoch to ``<results>/checkpoints/<run_id>/last.pt``.

:func:`run` is four steps, each a function of its own:

1. :func:`setup` — hierarchy, loss (from the registry of :mod:`kesl_utils.losses`), data, model
   (initialised from ImageNet weights or from the weights of the ``pretrain_run``, which
   :func:`run` trains first if they are missing), optimiser, schedule;
2. :func:`resume` — the last complete epoch of an interrupted run, if a checkpoint exists;
3. :func:`fit` — the epochs, each followed by a checkpoint and the ``on_epoch_end`` callback;
4. :func:`finish` — the run record (and the artifacts kept beside it), written atomically.

Reproducibility and resume
    The run is seeded from ``config.seed`` (Python, NumPy, torch). The data order and the
    augmentation of epoch e are a function of (seed, e) only: the loader's generator is re-seeded
    with ``seed * 1_000_000 + e`` before each epoch, and loader workers are seeded from it
    (:func:`kesl_utils.data.build_loader`). After a crash or Ctrl-C, running the same config again
    restores the last complete epoch from the checkpoint (including every RNG state) and
    continues; the final metrics and weights equal those of an uninterrupted run exactly
    (``tests/test_train.py``, on synthetic data and on image files read by workers).

Learning-rate schedule
    Stepped per iteration: linear warm-up over ``warmup_epochs`` epochs from lr/iters to lr,
    then either cosine annealing to 0 over the remaining iterations or, for ``"step"``,
    multiplication by γ every ``step_size`` epochs (counted from epoch 0, so 30/60 for the
    paper profile). The new classifier uses ``lr``, the backbone ``lr * backbone_lr_mult``.
    Weight decay applies to all parameters (the torchvision recipe of the paper's era).

Where and how
    A :class:`~kesl_utils.context.RunContext` flows in: the results folder (records, checkpoints,
    artifacts), the data root, the device (default: CUDA if available, else CPU) and whether to
    show progress. The Config alone says what is trained.

Device
    The device comes from the context. On CUDA: autocast in bf16
    where supported, else fp16 with a ``GradScaler`` (``config.amp``), ``channels_last``
    (``config.channels_last``) and non-blocking copies. On CPU the same code path runs
    without them.

Several processes (``torchrun --nproc_per_node N -m kesl_utils train …``)
    :func:`run` joins the process group of torchrun's environment
    (:func:`kesl_utils.distributed.init_from_env`; nothing changes without it). The model is
    wrapped in ``DistributedDataParallel`` with BatchNorm over the global batch, each rank
    loads its slice of every global batch (``config.batch_size`` is the global batch) and its
    contiguous shard of the test set, and the outputs are gathered in order, so the metrics are
    over the whole test set and the history's training loss and accuracy over all ranks. Rank 0
    alone writes checkpoints, artifacts and the record; every rank waits at a barrier after
    each write, loads the checkpoint on resume, and returns a cached record without training.
    The record states ``world_size``; see :mod:`kesl_utils.distributed`.
"""
from __future__ import annotations

import math
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from . import distributed, paths
from .config import Config
from .context import RunContext, resolve_device, usable_cpu_count
from .data import build_dataset, build_loader, check_images, load_run_hierarchy, with_data_fingerprint
from .hierarchy import Hierarchy
from .losses import build_loss
from .metrics import class_distance_matrix, summarize
from .models import DamagedWeightsError, backbone_parameters, build_model, classifier_module, classifier_parameters
from .progress import tqdm
from .records import (RunRecord, git_commit, library_versions, load_record, machine_description, record_path,
                      save_record, set_aside_damaged_record, utc_now)

CHECKPOINT_FORMAT = 2
_EPOCH_SEED_STRIDE = 1_000_000
#: Batches between two looks at the loss on a GPU (each look waits for the GPU); on a CPU every batch.
DIVERGENCE_CHECK_EVERY_CUDA = 16


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite; ``batch`` (1-based), ``epoch`` and ``lr`` say where."""

    def __init__(self, message: str, *, batch: int, epoch: Optional[int], lr: float):
        super().__init__(message)
        self.batch, self.epoch, self.lr = batch, epoch, lr


#: Called after each epoch's checkpoint as ``on_epoch_end(epoch, entry)`` (``entry``: the history row).
EpochCallback = Callable[[int, dict], None]


# -- set-up helpers -----------------------------------------------------------------------
def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the data order of ``epoch`` (1-based): a function of (seed, epoch) only."""
    return seed * _EPOCH_SEED_STRIDE + epoch


def autocast_dtype(device: torch.device, amp: bool) -> Optional[torch.dtype]:
    """The autocast dtype: bf16 on CUDA where supported, else fp16; ``None`` (off) on CPU or
    when ``amp`` is false."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def build_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with two parameter groups: backbone (lr · backbone_lr_mult) and classifier (lr)."""
    groups = [
        {"params": backbone_parameters(model, config.backbone), "lr": config.lr * config.backbone_lr_mult,
         "name": "backbone"},
        {"params": classifier_parameters(model, config.backbone), "lr": config.lr, "name": "classifier"},
    ]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def lr_factor(config: Config, iters_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rates at iteration ``step`` (0-based, per iteration)."""
    total = config.epochs * iters_per_epoch
    warmup = config.warmup_epochs * iters_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return config.gamma ** ((step // iters_per_epoch) // config.step_size)

    return factor


def build_scheduler(config: Config, optimizer, iters_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, iters_per_epoch))


def set_epoch_order(loader, seed: int, epoch: int) -> None:
    """Fix epoch ``epoch``'s data order and augmentation: re-seed the loader's generator."""
    generator = getattr(loader, "generator", None)
    if generator is None:
        generator = getattr(getattr(loader, "sampler", None), "generator", None)
    if generator is None:
        raise ValueError("the training DataLoader has no torch.Generator (pass generator= to "
                         "DataLoader); the trainer needs it to fix each epoch's data order")
    generator.manual_seed(epoch_seed(seed, epoch))


def _skipped_count(dataset) -> Optional[int]:
    """Images the dataset skipped as undecodable so far (``None`` if it cannot skip)."""
    if not getattr(dataset, "skip_bad_images", False):
        return None
    return int(getattr(dataset, "n_skipped", 0))


def _report_skipped(dataset, before: Optional[int]) -> Optional[int]:
    """Skips since ``before``; the dataset warns once, naming the files (``report_skipped``)."""
    if before is None:
        return None
    report = getattr(dataset, "report_skipped", None)
    if callable(report):
        report()
    return _skipped_count(dataset) - before


def _progress(total: int, desc: str, quiet: bool):
    return tqdm(total=total, desc=desc, disable=quiet, leave=False, unit="batch", dynamic_ncols=True)


# -- one epoch --------------------------------------------------------------------------------
def _lr_of(optimizer) -> float:
    """The learning rate a run reports: its classifier group's (the config's ``lr``), else group 0's."""
    groups = optimizer.param_groups
    return next((g["lr"] for g in groups if g.get("name") == "classifier"), groups[0]["lr"])


def _first_bad_batch(first_bad: torch.Tensor) -> int:
    """The first batch (0-based) whose loss was not finite, over every rank (-1: none); one host sync."""
    if distributed.world_size() > 1:
        # The smallest bad batch of any rank, so that every rank stops at the same step.
        import torch.distributed as dist
        value = torch.where(first_bad < 0, torch.full_like(first_bad, 2**62), first_bad)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return -1 if int(value.item()) == 2**62 else int(value.item())
    return int(first_bad.item())


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader, device: torch.device, *, scheduler=None, scaler=None,
                    amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                    max_batches: Optional[int] = None, desc: str = "train",
                    quiet: bool = False, epoch: Optional[int] = None,
                    check_every: Optional[int] = None) -> dict:
    """One pass over ``loader`` (at most ``max_batches`` batches); steps ``scheduler`` per batch.

    ``amp_dtype``: autocast dtype (:func:`autocast_dtype`), ``None`` for full precision.
    Returns ``train_loss`` (mean over images), ``train_top1`` (percent, on the augmented
    training batches in train mode), ``images``, ``time_s`` and ``images_per_s``.

    A loss that is NaN or infinite raises :class:`DivergenceError` naming the first such batch,
    ``epoch`` and its learning rate, within ``check_every`` batches of it (default: 1 on a CPU,
    before that batch's step; :data:`DIVERGENCE_CHECK_EVERY_CUDA` on a GPU, where the flag is kept
    on the device so that no batch waits for the GPU).
    """
    model.train()
    non_blocking = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    images = 0
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)
    if check_every is None:
        check_every = 1 if device.type == "cpu" else DIVERGENCE_CHECK_EVERY_CUDA
    lrs = []  # the learning rate of each batch since the last look at the loss
    bar = _progress(total, desc, quiet)
    last_postfix = start = time.perf_counter()
    for index, (inputs, targets) in enumerate(loader):
        if index >= total:
            break
        inputs = inputs.to(device, non_blocking=non_blocking, memory_format=memory_format)
        targets = targets.to(device, non_blocking=non_blocking)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            logits = model(inputs)
            loss = criterion(logits, targets)
        lrs.append(_lr_of(optimizer))
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()),
                                torch.full_like(first_bad, index), first_bad)
        if (index + 1) % check_every == 0 or index + 1 == total:
            bad = _first_bad_batch(first_bad)
            if bad >= 0:
                bar.close()
                lr = lrs[bad - (index + 1 - len(lrs))]
                where = f" of epoch {epoch}" if epoch is not None else ""
                raise DivergenceError(
                    f"the training loss is not finite at batch {bad + 1}/{total}{where} (lr {lr:g}): the run "
                    "diverged; lower the learning rate (--lr)", batch=bad + 1, epoch=epoch, lr=lr)
            lrs.clear()
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()

        batch = targets.shape[0]
        images += batch
        # Accumulate on the device: no host sync per batch.
        loss_sum += loss.detach().double() * batch
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        if not bar.disable:
            bar.update(1)
            now = time.perf_counter()
            if now - last_postfix > 0.5 or index + 1 == total:
                last_postfix = now
                bar.set_postfix(loss=f"{loss_sum.item() / images:.3f}",
                                acc=f"{100.0 * correct.item() / images:.1f}%",
                                img_s=f"{images / (now - start):.0f}", refresh=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    bar.close()
    if distributed.world_size() > 1:
        # The epoch of the global batch: sums over the ranks (each rank saw its slice of every step).
        totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(images), dtype=torch.float64,
                                                                       device=device)])
        distributed.all_reduce_sum(totals)
        loss_sum, correct, images = totals[0], totals[1], int(totals[2].item())
    if images == 0:
        raise ValueError("the training loader yielded no batch (empty training set?)")
    return {"train_loss": loss_sum.item() / images, "train_top1": 100.0 * correct.item() / images,
            "images": images, "time_s": elapsed, "images_per_s": images / elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, *, amp_dtype: Optional[torch.dtype] = None,
             channels_last: bool = False, desc: str = "test", quiet: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of ``model`` on ``loader``: float32 logits (N, n) and int64 targets (N,), on the CPU.

    ``amp_dtype`` as in :func:`train_one_epoch`. Metrics: :func:`kesl_utils.metrics.summarize`.
    """
    device = torch.device(device)
    model.eval()
    non_blocking = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    all_logits, all_targets = [], []
    bar = _progress(len(loader), desc, quiet)
    for inputs, targets in loader:
        inputs = inputs.to(device, non_blocking=non_blocking, memory_format=memory_format)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            logits = model(inputs)
        all_logits.append(logits.float())
        all_targets.append(targets)
        bar.update(1)
    bar.close()
    if not all_logits:
        raise ValueError("the test loader yielded no batch (empty test set?)")
    return torch.cat(all_logits).cpu(), torch.cat(all_targets).long().cpu()


def evaluate_test_set(session: "Session", *, quiet: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`evaluate` on the whole test set of ``session``, on every rank.

    Several processes: each rank evaluates its contiguous shard with the unwrapped model (ranks
    may run different numbers of batches, so no collective may happen in the forward pass), and
    the shards are gathered in rank order, which is the test set's order: each image once.
    """
    if distributed.world_size() == 1:
        return evaluate(session.forward_model, session.test_loader, session.device, amp_dtype=session.amp_dtype,
                        channels_last=session.channels_last, quiet=quiet)
    if len(session.test_loader) == 0:  # fewer test images than ranks
        logits = torch.zeros(0, len(session.hierarchy.classes))
        targets = torch.zeros(0, dtype=torch.int64)
    else:
        logits, targets = evaluate(session.eval_model, session.test_loader, session.device,
                                   amp_dtype=session.amp_dtype, channels_last=session.channels_last, quiet=quiet)
    return distributed.gather_rows(logits), distributed.gather_rows(targets)


# -- checkpoints and artifacts ----------------------------------------------------------------
def checkpoint_dir(config: Config, results_dir: Path) -> Path:
    """``<results>/checkpoints/<run_id>/``."""
    return paths.checkpoints_dir(results_dir) / config.run_id


def checkpoint_path(config: Config, results_dir: Path) -> Path:
    """``<results>/checkpoints/<run_id>/last.pt``."""
    return checkpoint_dir(config, results_dir) / "last.pt"


def artifact_dir(config: Config, results_dir: Path) -> Path:
    """``<results>/artifacts/<run_id>/`` (git-ignored): weights and test outputs kept beside the record."""
    return paths.artifacts_dir(results_dir) / config.run_id


def weights_path(config: Config, results_dir: Path) -> Path:
    """Final model weights of ``config``'s run, kept when other runs start from them."""
    return artifact_dir(config, results_dir) / "weights.pt"


def outputs_path(config: Config, results_dir: Path) -> Path:
    """Test-set logits and targets of ``config``'s run (``numpy.savez_compressed``)."""
    return artifact_dir(config, results_dir) / "test_outputs.npz"


def _rng_states(loader) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(),
              # NumPy's state as plain lists so that the checkpoint loads with weights_only=True.
              "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    generator = getattr(loader, "generator", None)
    if generator is not None:
        states["loader"] = generator.get_state()
    return states


def _restore_rng_states(states: dict, loader) -> None:
    random.setstate(_as_tuple(states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    generator = getattr(loader, "generator", None)
    if "loader" in states and generator is not None:
        generator.set_state(states["loader"])


def _rank_rng_states(checkpoint: dict) -> Optional[dict]:
    """This rank's RNG states in ``checkpoint`` (``rng``: rank 0's; ``rng_ranks``: the others')."""
    rank, world = distributed.rank(), distributed.world_size()
    saved_world = int(checkpoint.get("world_size", 1))
    if saved_world != world and distributed.is_main():
        warnings.warn(f"{checkpoint['run_id']}: the checkpoint was written by {saved_world} process(es), this run "
                      f"has {world}: ranks > 0 draw fresh random streams (dropout, augmentation), so the result is "
                      "not bit-identical to an uninterrupted run", stacklevel=3)
    if rank == 0:
        return checkpoint["rng"]
    others = checkpoint.get("rng_ranks") or []
    return others[rank - 1] if saved_world == world and len(others) == world - 1 else None


def _sum_over_ranks(count: Optional[int]) -> Optional[int]:
    """An image count summed over the ranks (``None`` stays ``None``)."""
    if count is None or distributed.world_size() == 1:
        return count
    return int(distributed.all_reduce_sum(torch.tensor([count], dtype=torch.int64)).item())


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _load_checkpoint(config: Config, results_dir: Path) -> Optional[dict]:
    path = checkpoint_path(config, results_dir)
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - an unreadable checkpoint means "start again"
        warnings.warn(f"ignoring unreadable checkpoint {paths.display_path(path)} "
                      f"({type(error).__name__}: {error}); training from scratch", stacklevel=3)
        return None
    if checkpoint.get("format") != CHECKPOINT_FORMAT or checkpoint.get("config") != config.to_dict():
        warnings.warn(f"ignoring checkpoint {paths.display_path(path)}: written for another config or format",
                      stacklevel=3)
        return None
    return checkpoint


def check_results_writable(config: Config, results_dir: Path) -> None:
    """Fail in milliseconds, naming the folder, when the run could not save its record or checkpoints."""
    for folder in (paths.runs_dir(results_dir), paths.checkpoints_dir(results_dir), paths.artifacts_dir(results_dir)):
        paths.check_writable(folder)
    target = record_path(config.run_id, results_dir)
    if target.exists() and not target.is_file():
        raise PermissionError(f"cannot write the run record: {paths.display_path(target)} exists and is "
                              "not a file; remove it")


# -- the four steps of a run ---------------------------------------------------------------
@dataclass
class Session:
    """Everything :func:`setup` builds for one run."""

    config: Config
    results_dir: Path
    device: torch.device
    hierarchy: Hierarchy
    distances: torch.Tensor
    lca: torch.Tensor
    criterion: nn.Module
    train_set: object
    test_set: object
    train_loader: object
    test_loader: object
    model: nn.Module
    forward_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    iters_per_epoch: int
    amp_dtype: Optional[torch.dtype]
    channels_last: bool
    artifacts: dict = field(default_factory=dict)
    #: Real data: the files the pre-flight check left out, per split (:func:`kesl_utils.data.check_images`).
    bad_images: dict = field(default_factory=dict)
    #: The model :func:`evaluate_test_set` runs on several processes: ``model`` (compiled if
    #: asked) without the DistributedDataParallel wrapper; ``None``: ``forward_model``.
    eval_model: Optional[nn.Module] = None


@dataclass
class Progress:
    """Where a run stands: its history, last metrics and test outputs, the next epoch, time so far."""

    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    next_epoch: int = 1
    elapsed_before: float = 0.0
    outputs: Optional[tuple] = None


def setup(config: Config, *, context: RunContext) -> Session:
    """Build the hierarchy, loss, data, model, optimiser and schedule of ``config``.

    A ``pretrain_run``'s weights must exist (:func:`run` trains it first when they do not).
    """
    device = resolve_device(context.device)
    source = None
    if config.pretrain_run is not None:
        source = weights_path(config.pretrain_run, context.results_dir)
        if not source.is_file():
            raise FileNotFoundError(f"{config.run_id} starts from the weights of {config.pretrain_run.run_id}, "
                                    f"which are missing ({paths.display_path(source)}); train.run trains it first")
    amp_dtype = autocast_dtype(device, config.amp)
    # On any device: bench_options measured channels_last at 2.2× the eager step for MobileNetV2 on a CPU.
    channels_last = config.channels_last
    seed_everything(config.seed)

    hierarchy = load_run_hierarchy(config)
    distances = class_distance_matrix(hierarchy.edge_distances())
    lca = torch.as_tensor(hierarchy.lca_heights())
    criterion = build_loss(config.loss, hierarchy, **config.loss_params).to(device)

    data_kwargs = dict(source=config.source, hierarchy=hierarchy, data_root=context.data_root,
                       image_size=config.image_size, seed=config.seed, alignment=config.alignment,
                       skip_bad_images=config.skip_bad_images)
    train_set = build_dataset(config.dataset, "train", n_per_class=config.n_per_class,
                              label_noise=config.label_noise, **data_kwargs)
    test_set = build_dataset(config.dataset, "test", n_per_class=config.n_test_per_class, **data_kwargs)
    bad_images = {}
    if config.source == "real":
        # Before any epoch: a bad file must not cost a run's training (train and test splits alike).
        with warnings.catch_warnings():
            if not distributed.is_main():
                warnings.simplefilter("ignore", RuntimeWarning)
            bad_images = check_images({"train": train_set, "test": test_set}, skip_bad_images=config.skip_bad_images,
                                      dataset=config.dataset, workers=min(8, 2 * usable_cpu_count()))
    shards = dict(rank=distributed.rank(), world_size=distributed.world_size())
    train_loader = build_loader(train_set, config.batch_size, train=True, device=device, seed=config.seed, **shards)
    test_loader = build_loader(test_set, config.batch_size, train=False, device=device, seed=config.seed, **shards)
    iters_per_epoch = len(train_loader)
    if config.max_batches_per_epoch is not None:
        iters_per_epoch = min(iters_per_epoch, config.max_batches_per_epoch)
    if iters_per_epoch == 0:
        raise ValueError(f"{config.run_id}: the training set yields no batch "
                         f"({len(train_set)} images, batch_size {config.batch_size})")

    artifacts = {}
    # Model initialisation depends on the seed only, not on what data construction consumed.
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, len(hierarchy.classes), imagenet_weights=config.imagenet_weights)
    if source is not None:
        load_backbone(model, source, config.backbone)
        artifacts["pretrain_weights"] = {"run_id": config.pretrain_run.run_id, "sha256": paths.sha256_file(source)}
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    eval_model = None
    if distributed.world_size() > 1:
        # BatchNorm over the global batch: N processes compute what one process computes.
        model = distributed.sync_batchnorm(model, device)
        eval_model = torch.compile(model) if config.compile else model
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer, iters_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    wrapped = distributed.wrap_model(model, device)
    forward_model = torch.compile(wrapped) if config.compile else wrapped
    if distributed.rank() > 0:
        # Dropout and the like differ per rank; rank 0 keeps the single-process stream.
        seed_everything(distributed.rank_seed(config.seed, distributed.rank()))
    return Session(config, context.results_dir, device, hierarchy, distances, lca, criterion, train_set, test_set, train_loader,
                   test_loader, model, forward_model, optimizer, scheduler, scaler, iters_per_epoch,
                   amp_dtype, channels_last, artifacts, bad_images=bad_images, eval_model=eval_model)


def resume(session: Session, *, quiet: bool = True) -> Progress:
    """The progress saved by an interrupted run of ``session.config`` (a fresh start if none)."""
    checkpoint = _load_checkpoint(session.config, session.results_dir)
    found = distributed.all_gather_object(None if checkpoint is None else int(checkpoint["epoch"]))
    if len(set(found)) > 1:
        raise RuntimeError(f"{session.config.run_id}: the ranks found different checkpoints (epochs by rank: "
                           f"{found}); every process must see the same results folder (a shared filesystem "
                           "on several nodes)")
    if checkpoint is None:
        return Progress()
    session.model.load_state_dict(checkpoint["model"])
    session.optimizer.load_state_dict(checkpoint["optimizer"])
    session.scheduler.load_state_dict(checkpoint["scheduler"])
    session.scaler.load_state_dict(checkpoint["scaler"])
    states = _rank_rng_states(checkpoint)
    if states is not None:
        _restore_rng_states(states, session.train_loader)
    if not quiet:
        tqdm.write(f"{session.config.run_id}: resuming after epoch {checkpoint['epoch']}/{session.config.epochs}")
    return Progress(history=list(checkpoint["history"]), metrics=dict(checkpoint["metrics"]),
                    next_epoch=int(checkpoint["epoch"]) + 1, elapsed_before=float(checkpoint["elapsed_s"]))


def fit(session: Session, progress: Progress, *, quiet: bool = True, bars: Optional[bool] = None,
        keep_checkpoints: bool = False, on_epoch_end: Optional[EpochCallback] = None) -> Progress:
    """Train the remaining epochs of ``session``; checkpoint each, evaluate every ``eval_every``.

    quiet: no per-epoch lines. bars: progress bars of each epoch (default: ``not quiet``).
    """
    bars = not quiet if bars is None else bars
    config = session.config
    start = time.perf_counter()
    for epoch in range(progress.next_epoch, config.epochs + 1):
        set_epoch_order(session.train_loader, config.seed, epoch)
        skipped_before = _skipped_count(session.train_set)
        lr = session.optimizer.param_groups[1]["lr"]
        stats = train_one_epoch(session.forward_model, session.criterion, session.optimizer, session.train_loader,
                                session.device, scheduler=session.scheduler, scaler=session.scaler,
                                amp_dtype=session.amp_dtype, channels_last=session.channels_last,
                                max_batches=session.iters_per_epoch,
                                desc=f"{config.run_id} {epoch}/{config.epochs}", quiet=not bars, epoch=epoch)
        if not math.isfinite(stats["train_loss"]):
            raise FloatingPointError(f"{config.run_id}: training loss is {stats['train_loss']} "
                                     f"in epoch {epoch} (lr {lr:g}); the run diverged")
        entry = {"epoch": epoch, "lr": lr, "train_loss": stats["train_loss"],
                 "train_top1": stats["train_top1"], "images_per_s": stats["images_per_s"],
                 "train_images": stats["images"], "epoch_time_s": stats["time_s"]}
        skipped = _sum_over_ranks(_report_skipped(session.train_set, skipped_before))
        if skipped is not None:
            entry["skipped_images"] = skipped
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            test_skipped_before = _skipped_count(session.test_set)
            logits, targets = evaluate_test_set(session, quiet=not bars)
            progress.metrics = summarize(logits, targets, session.distances, lca=session.lca)
            progress.outputs = (logits, targets)
            entry.update({f"test_{key}": value for key, value in progress.metrics.items()})
            test_skipped = _sum_over_ranks(_report_skipped(session.test_set, test_skipped_before))
            if test_skipped is not None:
                entry["test_skipped_images"] = test_skipped
        progress.history.append(entry)
        progress.next_epoch = epoch + 1
        if not quiet:
            tested = f", test top-1 {progress.metrics['top1']:.1f}%" if "test_top1" in entry else ""
            tqdm.write(f"{config.run_id} epoch {epoch}/{config.epochs}: loss {entry['train_loss']:.3f}, "
                       f"train top-1 {entry['train_top1']:.1f}%{tested}, {entry['images_per_s']:.0f} img/s")
        if epoch < config.epochs or keep_checkpoints:
            # After the last epoch the record, written next, supersedes a checkpoint (~0.5 s for ResNet-18).
            rng = distributed.all_gather_object(_rng_states(session.train_loader))
            if distributed.is_main():
                ranks = {"world_size": len(rng), "rng_ranks": rng[1:]} if len(rng) > 1 else {}
                paths.atomic_torch_save({
                    "format": CHECKPOINT_FORMAT, "run_id": config.run_id, "config": config.to_dict(),
                    "epoch": epoch, "model": session.model.state_dict(),
                    "optimizer": session.optimizer.state_dict(), "scheduler": session.scheduler.state_dict(),
                    "scaler": session.scaler.state_dict(), "history": progress.history,
                    "metrics": progress.metrics,
                    "elapsed_s": progress.elapsed_before + time.perf_counter() - start,
                    "rng": rng[0], **ranks,
                }, checkpoint_path(config, session.results_dir))
            distributed.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch, entry)
    progress.elapsed_before += time.perf_counter() - start
    return progress


def finish(session: Session, progress: Progress, *, save_weights: bool = False, write_record: bool = True,
           keep_checkpoints: bool = False, setup_s: float = 0.0) -> RunRecord:
    """The run record of a fitted session, with its artifacts (test outputs; weights if asked).

    Several processes: rank 0 writes, every rank waits for it and returns rank 0's record.
    """
    if not distributed.is_main():
        distributed.barrier()
        return distributed.broadcast_object(None)
    config = session.config
    artifacts = dict(session.artifacts)
    folder = session.results_dir
    if progress.outputs is not None:
        logits, targets = progress.outputs
        buffer_path = outputs_path(config, folder)
        buffer_path.parent.mkdir(parents=True, exist_ok=True)
        with open(buffer_path.with_suffix(".tmp.npz"), "wb") as handle:
            np.savez_compressed(handle, logits=logits.numpy(), targets=targets.numpy())
        buffer_path.with_suffix(".tmp.npz").replace(buffer_path)
        artifacts["test_outputs"] = {"path": buffer_path.relative_to(folder).as_posix(),
                                     "sha256": paths.sha256_file(buffer_path)}
    if save_weights:
        target = weights_path(config, folder)
        paths.atomic_torch_save(session.model.state_dict(), target)
        artifacts["weights"] = {"path": target.relative_to(folder).as_posix(), "sha256": paths.sha256_file(target)}
    history = progress.history
    train_time = sum(h["epoch_time_s"] for h in history)
    record = RunRecord(
        run_id=config.run_id, config=config.to_dict(), metrics=progress.metrics, history=history,
        wall_time_s=progress.elapsed_before + setup_s,
        images_per_s=sum(h["train_images"] for h in history) / train_time if train_time else 0.0,
        device=describe_device(session.device), machine=machine_description(), versions=library_versions(), git_commit=git_commit(),
        finished_at=utc_now(), status="finished", error=None, world_size=distributed.world_size(),
        artifacts=artifacts, bad_images=session.bad_images)
    if write_record:
        save_record(record, folder)
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir(config, folder), ignore_errors=True)
    distributed.barrier()
    return distributed.broadcast_object(record)


def run(config: Config, *, context: RunContext, force: bool = False, keep_checkpoints: bool = False,
        save_weights: bool = False, on_epoch_end: Optional[EpochCallback] = None) -> RunRecord:
    """Train and evaluate ``config``; write and return its :class:`RunRecord`.

    A finished record of ``config`` is returned as is, without training, unless ``force`` (which
    also discards any checkpoint and trains from scratch). Otherwise training resumes from
    ``<results>/checkpoints/<run_id>/last.pt`` if present. The checkpoint folder is removed once
    the record is written, unless ``keep_checkpoints``.

    context: where and how (:class:`~kesl_utils.context.RunContext`): records, checkpoints and
        artifacts go under ``context.results_dir``; real data is read under ``context.data_root``
        (a real-data config gets its ``data_fingerprint`` here, :func:`with_data_fingerprint`, so the
        returned record's run id is that of the resolved config); ``context.device``;
        ``context.verbose`` shows per-epoch lines (and bars, with ``context.progress``).
    save_weights: keep the final weights (``<results>/artifacts/<run_id>/weights.pt``).
    on_epoch_end: called as ``on_epoch_end(epoch, history_entry)`` after each epoch's checkpoint
        (on every rank).

    A damaged record of ``config`` (truncated, or edited after it was written) is set aside as
    ``<run_id>.damaged-<time>.json`` with a warning (:func:`kesl_utils.records.set_aside_damaged_record`)
    and the run is trained again.

    A ``pretrain_run`` whose weights are missing is trained first (:func:`pretrained_weights`),
    before this run seeds anything, so that its RNG use cannot leak into this run (the result must
    not depend on whether the weights existed, e.g. serial vs. parallel sweeps).

    Under ``torchrun`` (several processes) every rank calls this; see the module docstring.
    """
    if not isinstance(config, Config):
        raise TypeError(f"run() needs a kesl_utils.config.Config, got {type(config).__name__}")
    if not isinstance(context, RunContext):
        raise TypeError(f"run() needs a kesl_utils.context.RunContext, got {type(context).__name__}")
    device = distributed.init_from_env(context.device)
    context = context.replace(device=str(device))
    distributed.local_batch_size(config.batch_size)  # fails now, not after set-up, if the ranks cannot split it
    quiet = not context.verbose or not distributed.is_main()
    folder = context.results_dir
    config = with_data_fingerprint(config, context.data_root)
    check_results_writable(config, folder)
    if distributed.is_main():
        # A damaged record is renamed, never overwritten, and never taken for a finished run.
        set_aside_damaged_record(config, folder)
    distributed.barrier()
    if not force:
        cached = load_record(config, folder)
        usable = cached is not None and (not save_weights or weights_path(config, folder).is_file())
        # Rank 0 decides for all: a record written in between must not split the ranks.
        cached = distributed.broadcast_object(cached if usable else None)
        if cached is not None:
            return cached
    else:
        if distributed.is_main():
            shutil.rmtree(checkpoint_dir(config, folder), ignore_errors=True)
        distributed.barrier()
    if config.pretrain_run is not None:
        # A missing pretraining run is trained first, outside this run's clock: its own record has its time.
        pretrained_weights(config.pretrain_run, context=context)
    start = time.perf_counter()
    session = setup(config, context=context)
    progress = Progress() if force else resume(session, quiet=quiet)
    setup_s = time.perf_counter() - start
    progress = fit(session, progress, quiet=quiet, bars=not quiet and context.progress,
                   keep_checkpoints=keep_checkpoints, on_epoch_end=on_epoch_end)
    # Weights re-created for a run that already has a record keep that record: it describes the
    # run as first trained (the fine-tuning records name the sha256 of the weights they used).
    kept = None if force else distributed.broadcast_object(load_record(config, folder))
    record = finish(session, progress, save_weights=save_weights, write_record=kept is None,
                    keep_checkpoints=keep_checkpoints, setup_s=setup_s)
    return kept if kept is not None else record


def pretrained_weights(pretrain: Config, *, context: RunContext) -> Path:
    """The final weights of run ``pretrain`` under ``context.results_dir``, training it (or re-creating
    its weights) if they are missing.

    A fresh clone holds the committed record of a pretraining run but not its weights (a git-ignored
    artifact): they are trained again here, and the record is kept.
    """
    target = weights_path(pretrain, context.results_dir)
    if distributed.broadcast_object(not target.is_file()):
        if context.verbose and distributed.is_main():
            tqdm.write(f"pretraining {pretrain.run_id} (weights {paths.display_path(target)} missing)")
        run(pretrain, context=context, save_weights=True)
    return target


def load_backbone(model: nn.Module, weights: Path, backbone: str) -> None:
    """Load every parameter of ``weights`` into ``model`` (of backbone ``backbone``) except the
    classifier, which stays new."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a truncated zip, a pickle error, …: the file is damaged
        raise DamagedWeightsError(
            f"cannot read the pretraining weights {paths.display_path(weights)} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}): the file is damaged. Delete it and run again: "
            "the pretraining run's weights are trained again when missing (its record is kept)") from error
    head = classifier_module(model, backbone)
    prefix = next(name for name, module in model.named_modules() if module is head) + "."
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if not k.startswith(prefix)},
                                                strict=False)
    missing = [k for k in missing if not k.startswith(prefix)]
    if missing or unexpected:
        raise ValueError(f"pretrained weights {paths.display_path(weights)} do not fit this backbone "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
