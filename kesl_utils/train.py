"""The trainer: one :class:`~kesl_utils.config.Config` in, one :class:`~kesl_utils.records.RunRecord` out.

Modelled on torchvision's reference classification script: a separate
:func:`train_one_epoch` and :func:`evaluate`, one mixed-precision switch, and one checkpoint
dict (model, optimiser, scheduler, scaler, epoch, config, history, RNG states) written
atomically at the end of every epoch to ``<results>/checkpoints/<run_id>/last.pt``.

Reproducibility and resume
    The run is seeded from ``config.seed`` (Python, NumPy, torch; data-loader workers through
    the loader's generator). The training order of epoch e is a function of (seed, e) only:
    the loader's generator is re-seeded with ``seed * 1_000_000 + e`` before each epoch. After
    a crash or Ctrl-C, running the same config again restores the last complete epoch from the
    checkpoint (including every RNG state) and continues; on CPU the final metrics and weights
    equal those of an uninterrupted run exactly (``tests/test_train.py``). With several
    data-loader workers and random augmentation (real data), exactness also needs
    non-persistent workers.

Learning-rate schedule
    Stepped per iteration: linear warm-up over ``warmup_epochs`` epochs from lr/iters to lr,
    then either cosine annealing to 0 over the remaining iterations or, for ``"step"``,
    multiplication by γ every ``step_size`` epochs (counted from epoch 0, so 30/60 for the
    paper profile). The new classifier uses ``lr``, the backbone ``lr * backbone_lr_mult``.
    Weight decay applies to all parameters (the torchvision recipe of the paper's era).

Device
    The device flows in (default: CUDA if available, else CPU). On CUDA: autocast in bf16
    where supported, else fp16 with a ``GradScaler`` (``config.amp``), ``channels_last``
    (``config.channels_last``) and non-blocking copies. On CPU the same code path runs
    without them.
"""
from __future__ import annotations

import math
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from . import paths
from .config import Config
from .models import backbone_parameters, build_model, classifier_parameters
from .records import RunRecord, git_commit, library_versions, load_record, save_record, utc_now

CHECKPOINT_FORMAT = 1
_EPOCH_SEED_STRIDE = 1_000_000


# -- set-up helpers -----------------------------------------------------------------------
def resolve_device(device=None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means CUDA if available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def load_run_hierarchy(config: Config):
    """The class hierarchy of ``config.dataset`` in ``config.hierarchy_mode``.

    ``"dag"``: the shipped hierarchy (CUB taxonomy; WordNet subnets of Mini-/Small-ImageNet as
    shipped in ``data/hierarchies/*.json``, which are DAGs). ``"tree"`` (Mini-/Small-ImageNet
    only): WordNet's tree over the same classes, built at run time, which needs WordNet.
    """
    from .hierarchy import Hierarchy, load_hierarchy

    hierarchy = load_hierarchy(config.dataset)
    if config.hierarchy_mode == "tree" and config.dataset != "cub":
        from .wordnet import WordNetUnavailable

        try:
            hierarchy = Hierarchy.from_wordnet(list(hierarchy.classes), mode="tree")
        except WordNetUnavailable as error:
            raise ValueError(f"hierarchy_mode='tree' for {config.dataset} builds WordNet's tree at "
                             f"run time and WordNet is not available ({error}); use "
                             f"hierarchy_mode='dag' (the shipped hierarchy) or install WordNet") from error
    return hierarchy


def build_criterion(config: Config, edge_distances) -> nn.Module:
    """The config's loss; for KESL with g = soft_label_matrix(e_ij, λ, T)."""
    from .losses import build_loss

    kwargs = {}
    if config.loss == "kesl":
        from .soft_labels import soft_label_matrix

        kwargs = dict(soft_labels=soft_label_matrix(edge_distances, config.lam, config.T),
                      alpha=config.alpha, beta=config.beta, kl=config.kl)
    elif config.loss == "label_smoothing":
        kwargs = dict(epsilon=config.epsilon)
    return build_loss(config.loss, **kwargs)


def build_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with two parameter groups: backbone (lr · backbone_lr_mult) and classifier (lr)."""
    groups = [
        {"params": backbone_parameters(model), "lr": config.lr * config.backbone_lr_mult,
         "name": "backbone"},
        {"params": classifier_parameters(model), "lr": config.lr, "name": "classifier"},
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


def _set_epoch_order(loader, seed: int, epoch: int) -> None:
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
    from .progress import tqdm

    return tqdm(total=total, desc=desc, disable=quiet, leave=False, unit="batch",
                dynamic_ncols=True)


# -- one epoch --------------------------------------------------------------------------------
def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader, device: torch.device, *, scheduler=None, scaler=None,
                    amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                    max_batches: Optional[int] = None, desc: str = "train",
                    quiet: bool = False) -> dict:
    """One pass over ``loader`` (at most ``max_batches`` batches); steps ``scheduler`` per batch.

    Returns ``train_loss`` (mean over images), ``train_top1`` (percent, on the augmented
    training batches in train mode), ``images``, ``time_s`` and ``images_per_s``.
    """
    model.train()
    non_blocking = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    images = 0
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
    if images == 0:
        raise ValueError("the training loader yielded no batch (empty training set?)")
    return {"train_loss": loss_sum.item() / images, "train_top1": 100.0 * correct.item() / images,
            "images": images, "time_s": elapsed, "images_per_s": images / elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader, distances, device, amp: bool = False, *,
             channels_last: bool = False, desc: str = "test", quiet: bool = True):
    """Metrics of ``model`` on ``loader``.

    ``distances``: (n, n) class distances d_ij (:func:`kesl_utils.metrics.class_distance_matrix`).
    Returns ``(metrics, logits, targets)``: the dict of
    :func:`kesl_utils.metrics.summarize` (top1, top5, mistake_severity, hdist@1, hdist@5, ece),
    float32 logits (N, n) and int64 targets (N,) on the CPU.
    """
    from .metrics import summarize

    device = torch.device(device)
    amp_dtype = autocast_dtype(device, amp)
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
    logits = torch.cat(all_logits).cpu()
    targets = torch.cat(all_targets).long().cpu()
    return summarize(logits, targets, distances), logits, targets


# -- checkpoints ------------------------------------------------------------------------------
def checkpoint_dir(run_id: str) -> Path:
    return paths.checkpoints_dir() / run_id


def checkpoint_path(run_id: str) -> Path:
    """``<results>/checkpoints/<run_id>/last.pt``."""
    return checkpoint_dir(run_id) / "last.pt"


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


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _load_checkpoint(config: Config) -> Optional[dict]:
    path = checkpoint_path(config.run_id)
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - an unreadable checkpoint means "start again"
        warnings.warn(f"ignoring unreadable checkpoint {path} ({type(error).__name__}: {error}); "
                      "training from scratch", stacklevel=3)
        return None
    if checkpoint.get("format") != CHECKPOINT_FORMAT or checkpoint.get("config") != config.to_dict():
        warnings.warn(f"ignoring checkpoint {path}: written for another config or format", stacklevel=3)
        return None
    return checkpoint


# -- a whole run --------------------------------------------------------------------------------
class _SimulatedCrash(KeyboardInterrupt):
    """Raised by the ``_stop_after_epoch`` test hook, as a Ctrl-C would be."""


def run(config: Config, *, data_root=None, device=None, force: bool = False, quiet: bool = False,
        keep_checkpoints: bool = False, skip_bad_images: bool = False,
        _stop_after_epoch: Optional[int] = None) -> RunRecord:
    """Train and evaluate ``config``; write and return its :class:`RunRecord`.

    A finished record of ``config.run_id`` is returned as is, without training, unless
    ``force`` (which also discards any checkpoint and trains from scratch). Otherwise training
    resumes from ``<results>/checkpoints/<run_id>/last.pt`` if present. The checkpoint folder
    is removed once the record is written, unless ``keep_checkpoints``.

    data_root: where the real datasets lie (``None``: ``data/raw``); unused for synthetic data.
    device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … (``None``: CUDA if available).
    quiet: no progress bars or per-epoch lines.
    skip_bad_images: real data: skip images that fail to decode instead of raising; the
        dataset warns once per epoch naming the files, and the history counts them
        (``skipped_images``, ``test_skipped_images``).
    """
    if not isinstance(config, Config):
        raise TypeError(f"run() needs a kesl_utils.config.Config, got {type(config).__name__}")
    if not force:
        cached = load_record(config.run_id)
        if cached is not None:
            return cached
    else:
        shutil.rmtree(checkpoint_dir(config.run_id), ignore_errors=True)

    from .progress import tqdm

    from .data import build_dataset, build_loader
    from .metrics import class_distance_matrix

    segment_start = time.perf_counter()
    device = resolve_device(device)
    amp_dtype = autocast_dtype(device, config.amp)
    channels_last = config.channels_last and device.type == "cuda"
    seed_everything(config.seed)

    hierarchy = load_run_hierarchy(config)
    edge_distances = hierarchy.edge_distances()
    distances = class_distance_matrix(edge_distances)
    criterion = build_criterion(config, edge_distances).to(device)

    data_kwargs = dict(source=config.source, hierarchy=hierarchy, data_root=data_root,
                       image_size=config.image_size, seed=config.seed,
                       alignment=config.alignment, skip_bad_images=skip_bad_images)
    train_set = build_dataset(config.dataset, "train", n_per_class=config.n_per_class, **data_kwargs)
    test_set = build_dataset(config.dataset, "test", n_per_class=config.n_test_per_class, **data_kwargs)
    train_loader = build_loader(train_set, config.batch_size, train=True, device=device,
                                seed=config.seed)
    test_loader = build_loader(test_set, config.batch_size, train=False, device=device,
                               seed=config.seed)
    iters_per_epoch = len(train_loader)
    if config.max_batches_per_epoch is not None:
        iters_per_epoch = min(iters_per_epoch, config.max_batches_per_epoch)
    if iters_per_epoch == 0:
        raise ValueError(f"{config.run_id}: the training set yields no batch "
                         f"({len(train_set)} images, batch_size {config.batch_size})")

    # Model initialisation depends on the seed only, not on what data construction consumed.
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, len(hierarchy.classes), pretrained=config.pretrained)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer, iters_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    forward_model = torch.compile(model) if config.compile else model

    history: list[dict] = []
    metrics: dict = {}
    start_epoch, elapsed_before = 1, 0.0
    checkpoint = None if force else _load_checkpoint(config)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        history = list(checkpoint["history"])
        metrics = dict(checkpoint["metrics"])
        start_epoch = int(checkpoint["epoch"]) + 1
        elapsed_before = float(checkpoint["elapsed_s"])
        _restore_rng_states(checkpoint["rng"], train_loader)
        if not quiet:
            tqdm.write(f"{config.run_id}: resuming after epoch {checkpoint['epoch']}/{config.epochs}")
        del checkpoint

    for epoch in range(start_epoch, config.epochs + 1):
        _set_epoch_order(train_loader, config.seed, epoch)
        skipped_before = _skipped_count(train_set)
        lr = optimizer.param_groups[1]["lr"]
        stats = train_one_epoch(forward_model, criterion, optimizer, train_loader, device,
                                scheduler=scheduler, scaler=scaler, amp_dtype=amp_dtype,
                                channels_last=channels_last, max_batches=iters_per_epoch,
                                desc=f"{config.run_id} {epoch}/{config.epochs}", quiet=quiet)
        if not math.isfinite(stats["train_loss"]):
            raise FloatingPointError(f"{config.run_id}: training loss is {stats['train_loss']} "
                                     f"in epoch {epoch} (lr {lr:g}); the run diverged")
        entry = {"epoch": epoch, "lr": lr, "train_loss": stats["train_loss"],
                 "train_top1": stats["train_top1"], "images_per_s": stats["images_per_s"],
                 "train_images": stats["images"], "epoch_time_s": stats["time_s"]}
        skipped = _report_skipped(train_set, skipped_before)
        if skipped is not None:
            entry["skipped_images"] = skipped
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            test_skipped_before = _skipped_count(test_set)
            metrics, _, _ = evaluate(forward_model, test_loader, distances, device, config.amp,
                                     channels_last=channels_last, quiet=quiet)
            entry.update({f"test_{key}": value for key, value in metrics.items()})
            test_skipped = _report_skipped(test_set, test_skipped_before)
            if test_skipped is not None:
                entry["test_skipped_images"] = test_skipped
        history.append(entry)
        if not quiet:
            tested = f", test top-1 {metrics['top1']:.1f}%" if "test_top1" in entry else ""
            tqdm.write(f"{config.run_id} epoch {epoch}/{config.epochs}: loss {entry['train_loss']:.3f}, "
                       f"train top-1 {entry['train_top1']:.1f}%{tested}, "
                       f"{entry['images_per_s']:.0f} img/s")
        elapsed = elapsed_before + time.perf_counter() - segment_start
        if epoch == config.epochs and not keep_checkpoints:
            break  # the record, written next, supersedes a final checkpoint (~0.5 s for ResNet-18)
        paths.atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "run_id": config.run_id, "config": config.to_dict(),
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "history": history, "metrics": metrics, "elapsed_s": elapsed,
            "rng": _rng_states(train_loader),
        }, checkpoint_path(config.run_id))
        if _stop_after_epoch is not None and epoch >= _stop_after_epoch:
            raise _SimulatedCrash(f"simulated crash after epoch {epoch}")

    train_time = sum(h["epoch_time_s"] for h in history)
    record = RunRecord(
        run_id=config.run_id, config=config.to_dict(), metrics=metrics, history=history,
        wall_time_s=elapsed_before + time.perf_counter() - segment_start,
        images_per_s=sum(h["train_images"] for h in history) / train_time if train_time else 0.0,
        device=describe_device(device), versions=library_versions(), git_commit=git_commit(),
        finished_at=utc_now(), status="finished", error=None)
    save_record(record)
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir(config.run_id), ignore_errors=True)
    return record
