"""Experiments: budget profiles, the configs each paper table needs, and a cached batch runner.

Profiles change only the *budget* (data source, image size, images per class, epochs, batch,
seeds, backbone stand-in, hardware switches), never the science: λ, T, α, β, ε, the
hierarchy and the metrics are the same in every profile.

* ``smoke``: seconds; 16 px synthetic images, 2 per class, one epoch of 2 batches.
* ``quick``: CPU, all tables with 3 seeds (54 runs); 32 px synthetic images over each
  dataset's real hierarchy, 12 train / 10 test per class, 4 epochs, ResNet-18 standing in for
  ResNet-50 in tables 1–4 (table 5 keeps all three backbones).
* ``paper``: the real datasets. CUB: ImageNet-pretrained ResNet-50 at 448 px, classifier lr
  0.1 and backbone lr 0.01, 90 epochs, lr ÷10 every 30, batch 32, weight decay 1e-4.
  Mini-/Small-ImageNet: ResNet-50 from scratch at 224 px (ImageNet weights have seen these
  images), lr 0.1, 90 epochs, ÷10 every 30, batch 256. The paper states the backbones, the
  label-smoothing table's learning rates and λ, T, α, β; the other values are the common
  torchvision recipe, chosen by us.

Runs are named by :attr:`Config.run_id`; a table's configs that equal another table's (e.g.
the CUB cross-entropy baseline of tables 1, 4 and 5) are the same object and run once.
"""
from __future__ import annotations

import traceback
from typing import Iterable, Optional, Sequence

import pandas as pd

from . import paper
from .config import DATASETS, METRIC_KEYS, Config, _check_names, field_names
from .records import RunRecord, git_commit, library_versions, load_record, save_record, utc_now

#: "Ours": the paper's ablation row (λ 0.5, T 2, α 1, β 0.1), reported as 87.1 in Tables 1, 3, 5.
OURS = {"loss": "kesl", "lam": 0.5, "T": 2.0, "alpha": 1.0, "beta": 0.1, "kl": "reverse"}
BASELINE = {"loss": "ce"}
LABEL_SMOOTHING = {"loss": "label_smoothing", "epsilon": 0.1}

_METHOD_DEFAULTS = {"loss": "ce", "lam": 0.5, "T": 2.0, "alpha": 1.0, "beta": 0.1, "kl": "reverse",
                    "epsilon": 0.1}

_SYNTHETIC_BASE = dict(source="synthetic", hierarchy_mode="dag", alignment=1.0, backbone="resnet18",
                       pretrained=False, backbone_lr_mult=1.0, optimizer="sgd", lr=0.1, momentum=0.9,
                       weight_decay=5e-4, schedule="cosine", warmup_epochs=0, amp=False,
                       channels_last=False, compile=False, max_batches_per_epoch=None)

#: Budget of each profile: ``base`` for every dataset, ``datasets`` per-dataset changes, ``seeds``.
PROFILES = {
    "smoke": {
        "base": dict(_SYNTHETIC_BASE, image_size=16, n_per_class=2, n_test_per_class=2, epochs=1,
                     batch_size=32, max_batches_per_epoch=2, eval_every=1),
        "datasets": {},
        "seeds": (0,),
    },
    "quick": {
        "base": dict(_SYNTHETIC_BASE, image_size=32, n_per_class=12, n_test_per_class=10, epochs=4,
                     batch_size=128, eval_every=4),
        "datasets": {},
        "seeds": (0, 1, 2),
    },
    "paper": {
        "base": dict(source="real", hierarchy_mode="dag", alignment=1.0, backbone="resnet50",
                     n_per_class=None, n_test_per_class=None, optimizer="sgd", lr=0.1, momentum=0.9,
                     weight_decay=1e-4, schedule="step", step_size=30, gamma=0.1, warmup_epochs=0,
                     epochs=90, eval_every=5, amp=True, channels_last=True, compile=False,
                     max_batches_per_epoch=None),
        "datasets": {
            "cub": dict(image_size=448, pretrained=True, backbone_lr_mult=0.1, batch_size=32),
            "mini_imagenet": dict(image_size=224, pretrained=False, backbone_lr_mult=1.0, batch_size=256),
            "small_imagenet": dict(image_size=224, pretrained=False, backbone_lr_mult=1.0, batch_size=256),
        },
        "seeds": (0,),
    },
}

TABLES = ("cub_comparison", "general_recognition", "label_smoothing", "hyperparameter_ablation",
          "backbone_ablation")

def ablation_overrides() -> list[dict]:
    """Table 4 row by row (as :func:`kesl_utils.paper.hyperparameter_ablation` reads it) as config overrides.

    The first row (only L_CE) is the cross-entropy baseline; rows that print the same setting give
    equal overrides, hence the same config, which runs once.
    """
    rows = paper.hyperparameter_ablation()
    return [dict(BASELINE) if pd.isna(lam) else
            {"loss": "kesl", "lam": float(lam), "T": float(T), "alpha": float(alpha), "beta": float(beta),
             "kl": "reverse"}
            for lam, T, alpha, beta in zip(rows["lam"], rows["T"], rows["alpha"], rows["beta"])]


BACKBONE_ORDER = ("mobilenet_v2", "resnet18", "resnet50")


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")


def profile_config(profile: str, dataset: str, **overrides) -> Config:
    """The config of ``dataset`` under ``profile``'s budget, with ``overrides`` applied.

    Without overrides this is the cross-entropy baseline; ``**OURS`` gives the paper's KESL
    setting. Unknown override names raise ``ValueError`` listing the fields.
    """
    _check_profile(profile)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    _check_names(overrides)
    for fixed in ("profile", "dataset"):
        if fixed in overrides:
            raise ValueError(f"{fixed!r} is an argument of profile_config, not an override")
    fields = dict(_METHOD_DEFAULTS, seed=PROFILES[profile]["seeds"][0])
    fields.update(PROFILES[profile]["base"])
    fields.update(PROFILES[profile]["datasets"].get(dataset, {}))
    fields.update(overrides, dataset=dataset, profile=profile)
    return Config(**fields)


def profile_seeds(profile: str) -> tuple:
    """The seeds a table runs in ``profile`` (quick: 0, 1, 2)."""
    _check_profile(profile)
    return tuple(PROFILES[profile]["seeds"])


def _table_variants(table: str) -> list[tuple[str, dict]]:
    if table == "cub_comparison":
        return [("cub", BASELINE), ("cub", OURS)]
    if table == "general_recognition":
        return [(d, v) for d in ("mini_imagenet", "small_imagenet") for v in (BASELINE, OURS)]
    if table == "label_smoothing":
        # The paper's learning rates literally, in every profile.
        return [("cub", dict(LABEL_SMOOTHING, lr=0.01)), ("cub", dict(LABEL_SMOOTHING, lr=0.001)),
                ("cub", dict(OURS, lr=0.1)), ("cub", dict(OURS, lr=0.01))]
    if table == "hyperparameter_ablation":
        return [("cub", overrides) for overrides in ablation_overrides()]
    if table == "backbone_ablation":
        return [("cub", dict(v, backbone=b)) for b in BACKBONE_ORDER for v in (BASELINE, OURS)]
    raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")


def table_configs(table: str, profile: str, seeds: Optional[Iterable[int]] = None) -> list[Config]:
    """The configs paper table ``table`` needs in ``profile``, seed-major, without duplicates.

    ``seeds`` defaults to :func:`profile_seeds`. Seed-major order means an interrupted batch
    has complete tables for its first seeds.
    """
    variants = _table_variants(table)
    seeds = profile_seeds(profile) if seeds is None else tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds is empty: a table needs at least one seed")
    configs = {}
    for seed in seeds:
        for dataset, overrides in variants:
            config = profile_config(profile, dataset, **dict(overrides, seed=seed))
            configs.setdefault(config.run_id, config)
    return list(configs.values())


def all_table_configs(profile: str, seeds: Optional[Iterable[int]] = None) -> list[Config]:
    """Every config of every table, each once."""
    configs = {}
    for table in TABLES:
        for config in table_configs(table, profile, seeds):
            configs.setdefault(config.run_id, config)
    return list(configs.values())


# -- results -------------------------------------------------------------------------------------
RESULT_COLUMNS = ("run_id", *field_names(), *METRIC_KEYS, "status", "cached", "wall_time_s",
                  "images_per_s", "error")


def _row(config: Config, record: Optional[RunRecord], *, cached: bool) -> dict:
    row = {"run_id": config.run_id, **config.to_dict()}
    metrics = record.metrics if record is not None and record.status == "finished" else {}
    row.update({key: metrics.get(key, float("nan")) for key in METRIC_KEYS})
    row["status"] = record.status if record is not None else "missing"
    row["cached"] = cached
    row["wall_time_s"] = record.wall_time_s if record is not None else float("nan")
    row["images_per_s"] = record.images_per_s if record is not None else float("nan")
    row["error"] = record.error.splitlines()[0] if record is not None and record.error else None
    return row


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def results_frame(configs: Sequence[Config]) -> pd.DataFrame:
    """The finished records of ``configs`` as :func:`run_all`'s frame, running nothing
    (``status`` is ``"missing"`` and metrics NaN for configs without a finished record)."""
    return _frame([_row(c, load_record(c.run_id), cached=True) for c in configs])


def run_all(configs: Sequence[Config], *, data_root=None, device=None, force: bool = False,
            quiet: bool = True, progress: bool = True) -> pd.DataFrame:
    """Run every config that has no finished record (all of them if ``force``).

    Returns one row per config (columns :data:`RESULT_COLUMNS`: run id, config fields,
    metrics, status, cached, wall time, throughput, error) and prints
    ``"N cached, M run, K failed"``. A run that raises is recorded as
    ``<run_id>.failed.json`` (retried next time) and does not stop the others; Ctrl-C stops
    the batch (rerun to resume; finished runs are kept).
    """
    from .progress import tqdm

    from .train import run

    configs = list(configs)
    for config in configs:
        if not isinstance(config, Config):
            raise TypeError(f"run_all needs Config objects, got {type(config).__name__}")
    done: dict[str, tuple[Optional[RunRecord], bool]] = {}
    counts = {"cached": 0, "run": 0, "failed": 0}
    bar = tqdm(configs, desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    for config in bar:
        run_id = config.run_id
        if run_id in done:
            continue
        bar.set_postfix_str(run_id, refresh=True)
        record = None if force else load_record(run_id)
        if record is not None:
            done[run_id] = (record, True)
            counts["cached"] += 1
            continue
        try:
            record = run(config, data_root=data_root, device=device, force=force, quiet=quiet)
            counts["run"] += 1
        except Exception as error:  # noqa: BLE001 - one failed run must not stop the batch
            record = RunRecord(run_id=run_id, config=config.to_dict(), status="failed",
                               error=f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
                               versions=library_versions(), git_commit=git_commit(),
                               finished_at=utc_now())
            save_record(record)
            counts["failed"] += 1
            bar.write(f"FAILED {run_id}: {type(error).__name__}: {error}")
        done[run_id] = (record, False)
    bar.close()
    print(f"{counts['cached']} cached, {counts['run']} run, {counts['failed']} failed")
    return _frame([_row(c, done[c.run_id][0], cached=done[c.run_id][1]) for c in configs])
