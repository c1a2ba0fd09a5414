"""Experiments: budget profiles, the configs a profile makes, and the cached batch runner.

Profiles change only the *budget* and the hardware (data source, image size, images per class,
epochs, seeds, backbone stand-in, pretraining budget), never the science: λ, T, α, β, ε, the
hierarchies and the metrics are the same in every profile, and the protocol is the paper's —
a backbone pretrained on a large dataset and fine-tuned on CUB, trained from scratch on the
ImageNet subsets (whose images an ImageNet-pretrained network has seen).

* ``smoke``: seconds; 16 px synthetic images, 2 per class, one epoch of 2 batches, one seed.
* ``quick``: CPU; synthetic stand-ins over each dataset's real hierarchy at 32 px; the CUB
  backbones start from a run on a larger synthetic "ImageNet stand-in" (the Small-ImageNet WordNet
  subnet, its own seed, more images per class), recorded like any run; see :data:`PROFILES`.
* ``paper``: the real datasets. CUB: ImageNet-pretrained ResNet-50 at 448 px, classifier lr 0.1
  and backbone lr 0.01, 90 epochs, lr ÷10 every 30, batch 32, weight decay 1e-4.
  Mini-/Small-ImageNet: ResNet-50 from scratch at 224 px, lr 0.1, 90 epochs, ÷10 every 30,
  batch 256. The paper states the backbones, the label-smoothing table's learning rates and
  λ, T, α, β; the other values are the common torchvision recipe, chosen by us.

Runs are named by :attr:`Config.run_id`; a table's configs that equal another table's (e.g. the
CUB cross-entropy baseline of tables 1, 4 and 5) are the same object and run once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import pandas as pd

from . import executors, names
from .config import Config, split_overrides
from .progress import tqdm
from .records import RunRecord, load_record
from . import train


@dataclass(frozen=True)
class Profile:
    """A budget: what every run of the profile shares, per dataset and per backbone.

    base: Config fields of every run. datasets / backbones: fields changed for one dataset or one
    backbone. seeds: the seeds of a table row; headline_seeds: those of the rows whose KESL gain
    is a headline result (Tables 1, 2 and 5). pretrain: fields of the pretraining run (loss: CE)
    that the backbones of ``finetune_datasets`` start from (``None``: no pretraining run; the
    paper profile uses ImageNet weights instead). finetune: fields of those fine-tuning runs.
    """

    name: str
    base: dict
    datasets: dict = field(default_factory=dict)
    backbones: dict = field(default_factory=dict)
    seeds: tuple = (0,)
    headline_seeds: tuple = (0,)
    pretrain: Optional[dict] = None
    finetune_datasets: tuple = ()
    finetune: dict = field(default_factory=dict)


_SYNTHETIC = dict(source="synthetic", hierarchy_mode="dag", alignment=1.0, label_noise=0.0, backbone="resnet18",
                  pretrained=False, backbone_lr_mult=1.0, optimizer="sgd", lr=0.1, momentum=0.9,
                  weight_decay=5e-4, schedule="cosine", warmup_epochs=0, amp=False, channels_last=False,
                  compile=False, max_batches_per_epoch=None)

#: The three budgets. Every number here is a budget; the science (λ, T, α, β, ε, hierarchies,
#: metrics) lives in the loss registry and the table specs.
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        base=dict(_SYNTHETIC, image_size=16, n_per_class=2, n_test_per_class=2, epochs=1, batch_size=32,
                  max_batches_per_epoch=2, eval_every=1),
        seeds=(0,), headline_seeds=(0,),
        pretrain=dict(_SYNTHETIC, dataset="small_imagenet", image_size=16, n_per_class=2, n_test_per_class=1,
                      epochs=1, batch_size=32, max_batches_per_epoch=2, eval_every=1, seed=100),
        finetune_datasets=("cub",),
    ),
    "quick": Profile(
        "quick",
        # Calibrated in benchmarks/calibrate_protocol.py (ResNet-18, seed 0, CUB stand-in): fine-tuning the
        # pretrained backbone at full lr on 24 images/class beats the raw-pixel nearest-class-mean by
        # 6.2-6.5 points after 5-8 epochs; 16/class by only ~4; more epochs do not help, more images do.
        base=dict(_SYNTHETIC, image_size=32, n_per_class=12, n_test_per_class=10, epochs=10, batch_size=128,
                  eval_every=10),
        datasets={"cub": dict(n_per_class=24, epochs=6, eval_every=6)},
        # ResNet-50 from a pretrained start still gets one warm-up epoch (its first steps at lr 0.1 diverged
        # from scratch: train loss 11-13 against ln 200 = 5.3).
        backbones={"resnet50": dict(warmup_epochs=1)},
        seeds=(0, 1, 2), headline_seeds=(0, 1, 2),
        pretrain=dict(_SYNTHETIC, dataset="small_imagenet", image_size=32, n_per_class=40, n_test_per_class=10,
                      epochs=5, batch_size=128, eval_every=5, seed=100),
        finetune_datasets=("cub",),
    ),
    "paper": Profile(
        "paper",
        base=dict(source="real", hierarchy_mode="dag", alignment=1.0, backbone="resnet50", n_per_class=None,
                  n_test_per_class=None, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                  schedule="step", step_size=30, gamma=0.1, warmup_epochs=0, epochs=90, eval_every=5,
                  amp=True, channels_last=True, compile=False, max_batches_per_epoch=None),
        datasets={
            "cub": dict(image_size=448, pretrained=True, backbone_lr_mult=0.1, batch_size=32),
            "mini_imagenet": dict(image_size=224, pretrained=False, backbone_lr_mult=1.0, batch_size=256),
            "small_imagenet": dict(image_size=224, pretrained=False, backbone_lr_mult=1.0, batch_size=256),
        },
        seeds=(0,), headline_seeds=(0,),
    ),
}


def profile(name: str) -> Profile:
    """The :class:`Profile` called ``name``."""
    names.check_choice("profile", name, PROFILES)
    return PROFILES[name]


def pretrain_config(profile_name: str, backbone: str) -> Optional[Config]:
    """The pretraining run that ``backbone``'s fine-tuning runs start from in ``profile_name``."""
    budget = profile(profile_name)
    if budget.pretrain is None:
        return None
    return Config(**dict(budget.pretrain, **budget.backbones.get(backbone, {}), backbone=backbone, loss="ce",
                         profile=profile_name))


def profile_config(profile_name: str, dataset: str, **overrides) -> Config:
    """The config of ``dataset`` under ``profile_name``'s budget, with ``overrides`` applied.

    ``overrides`` may name Config fields and parameters of the chosen loss (``loss="kesl", T=16``).
    Without overrides this is the cross-entropy baseline. Datasets the profile fine-tunes get
    ``pretrain`` = :func:`pretrain_config` of their backbone.
    """
    budget = profile(profile_name)
    names.dataset_spec(dataset)
    for fixed in ("profile", "dataset"):
        if fixed in overrides:
            raise ValueError(f"{fixed!r} is an argument of profile_config, not an override")
    fields, params = split_overrides(overrides)
    data = dict(budget.base, seed=budget.seeds[0])
    data.update(budget.datasets.get(dataset, {}))
    backbone = fields.get("backbone", data.get("backbone", "resnet18"))
    data.update(budget.backbones.get(backbone, {}))
    if dataset in budget.finetune_datasets:
        data.update(budget.finetune)
        data["pretrain"] = pretrain_config(profile_name, backbone)
    data.update(fields, dataset=dataset, profile=profile_name)
    data["loss_params"] = dict(data.get("loss_params", {}), **params)
    return Config(**data)


def profile_seeds(profile_name: str, *, headline: bool = False) -> tuple:
    """The seeds a table row runs in ``profile_name`` (``headline``: the headline rows')."""
    budget = profile(profile_name)
    return tuple(budget.headline_seeds if headline else budget.seeds)


def with_seeds(configs: Iterable[Config], seeds: Iterable[int]) -> list[Config]:
    """Each config at each seed, seed-major, without duplicates."""
    out = {}
    for seed in seeds:
        for config in configs:
            replaced = config.replace(seed=int(seed))
            out.setdefault(replaced.run_id, replaced)
    return list(out.values())


def unique(configs: Iterable[Config]) -> list[Config]:
    """``configs`` without repeats (first occurrence kept)."""
    out = {}
    for config in configs:
        out.setdefault(config.run_id, config)
    return list(out.values())


# -- results -------------------------------------------------------------------------------------
RESULT_COLUMNS = ("run_id", "config", *names.ALL_METRIC_KEYS, "status", "cached", "wall_time_s", "images_per_s",
                  "error")


def _row(config: Config, record: Optional[RunRecord], *, cached: bool) -> dict:
    row = {"run_id": config.run_id, "config": config}
    metrics = record.metrics if record is not None and record.status == "finished" else {}
    row.update({key: metrics.get(key, float("nan")) for key in names.ALL_METRIC_KEYS})
    row["status"] = record.status if record is not None else "missing"
    row["cached"] = cached
    row["wall_time_s"] = record.wall_time_s if record is not None else float("nan")
    row["images_per_s"] = record.images_per_s if record is not None else float("nan")
    row["error"] = record.error.splitlines()[0] if record is not None and record.error else None
    return row


def describe_config(config: Config) -> dict:
    """The fields a reader scans a results frame by: dataset, backbone, loss and its parameters, lr, seed."""
    return {"dataset": config.dataset, "backbone": config.backbone, "loss": config.loss, **config.loss_params,
            "lr": config.lr, "seed": config.seed}


def results_frame(configs: Sequence[Config], *, data_root=None) -> pd.DataFrame:
    """The finished records of ``configs`` as :func:`run_all`'s frame, running nothing
    (``status`` is ``"missing"`` and metrics NaN for configs without a finished record)."""
    configs = [train.with_data_fingerprint(c, data_root) for c in configs]
    return _frame([_row(c, load_record(c), cached=True) for c in configs])


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    described = pd.DataFrame([describe_config(c) for c in frame["config"]], index=frame.index)
    return pd.concat([frame[["run_id"]], described, frame.drop(columns=["run_id"])], axis=1)


def run_all(configs: Sequence[Config], *, data_root=None, device=None, force: bool = False,
            quiet: bool = True, progress: bool = True, executor: Optional[str] = None) -> pd.DataFrame:
    """Run every config that has no finished record (all of them if ``force``).

    Returns one row per config (``run_id``, the readable config fields of :func:`describe_config`,
    the Config itself, metrics, status, cached, wall time, throughput, error) and prints
    ``"N cached, M run, K failed"``. A run that raises is recorded as ``<run_id>.failed.json``
    (retried next time) and does not stop the others; Ctrl-C stops the batch (rerun to resume;
    finished runs are kept, interrupted ones resume from their last checkpoint).

    executor: how the runs are executed (:data:`kesl_utils.executors.EXECUTORS`): ``"serial"``,
        one after another in this process; ``"ray"``, one Ray task per run on the cluster at
        ``$RAY_ADDRESS`` (else a local one), all in parallel as resources allow. ``None``:
        ``$KESL_EXECUTOR`` (set by ``make reproduce EXECUTOR=...``), else ``"serial"``.
    """
    run = executors.EXECUTORS[executors.resolve_executor(executor)]
    configs = list(configs)
    for config in configs:
        if not isinstance(config, Config):
            raise TypeError(f"run_all needs Config objects, got {type(config).__name__}")
    configs = [train.with_data_fingerprint(c, data_root) for c in configs]
    batch = unique(configs)
    bar = tqdm(total=len(batch), desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        done = run(batch, bar=bar, data_root=data_root, device=device, force=force, quiet=quiet)
    finally:
        bar.close()
    cached = sum(was_cached for _, was_cached in done.values())
    failed = sum(not was_cached and record.status == "failed" for record, was_cached in done.values())
    print(f"{cached} cached, {len(done) - cached - failed} run, {failed} failed")
    return _frame([_row(c, done[c.run_id][0], cached=done[c.run_id][1]) for c in configs])
