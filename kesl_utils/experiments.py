"""Experiments: the configs a profile makes, and the cached batch runner.

The budgets themselves are the :class:`~kesl_utils.profiles.Profile` entries of
:mod:`kesl_utils.profiles` (what each profile trains, at which size, with which seeds); this module
turns them into :class:`~kesl_utils.config.Config` objects (:func:`profile_config`,
:func:`pretrain_config`) and runs batches of them (:func:`run_all`) in a
:class:`~kesl_utils.context.RunContext`.

Runs are named by :attr:`Config.run_id`; a table's configs that equal another table's (e.g. the
CUB cross-entropy baseline of tables 1, 4 and 5) are the same object and run once.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd

from . import executors, names, ncm
from .config import Config, split_overrides
from .context import RunContext
from .profiles import Profile, profile
from .progress import tqdm
from .records import RunRecord, load_record

__all__ = ["Profile", "profile", "pretrain_config", "profile_config", "profile_seeds", "with_seeds", "unique",
           "RESULT_COLUMNS", "describe_config", "results_frame", "run_all"]


def pretrain_config(profile_name: str, backbone: str) -> Optional[Config]:
    """The pretraining run that ``backbone``'s fine-tuning runs start from in ``profile_name``: the profile's
    ``pretrain`` fields, then its ``backbones`` and ``pretrain_backbones`` fields for ``backbone``."""
    budget = profile(profile_name)
    if budget.pretrain is None:
        return None
    fields = {**budget.pretrain, **budget.backbones.get(backbone, {}), **budget.pretrain_backbones.get(backbone, {})}
    return Config(**dict(fields, backbone=backbone, loss="ce", profile=profile_name))


def profile_config(profile_name: str, dataset: str, **overrides) -> Config:
    """The config of ``dataset`` under ``profile_name``'s budget, with ``overrides`` applied.

    ``overrides`` may name Config fields and parameters of the chosen loss (``loss="kesl", T=16``).
    Without overrides this is the cross-entropy baseline. Datasets the profile fine-tunes get
    ``pretrain_run`` = :func:`pretrain_config` of their backbone. The fields come in this order:
    the profile's ``base``, its fields for the dataset (:meth:`Profile.dataset_fields`: the
    dataset's paper budget where the profile uses them, then the profile's own), for the backbone,
    then ``overrides``.
    """
    budget = profile(profile_name)
    names.dataset_spec(dataset)
    for fixed in ("profile", "dataset"):
        if fixed in overrides:
            raise ValueError(f"{fixed!r} is an argument of profile_config, not an override")
    fields, params = split_overrides(overrides)
    data = dict(budget.base, seed=budget.seeds[0])
    data.update(budget.dataset_fields(dataset))
    backbone = fields.get("backbone", data.get("backbone", "resnet18"))
    data.update(budget.backbones.get(backbone, {}))
    if dataset in budget.finetune_datasets:
        data["pretrain_run"] = pretrain_config(profile_name, backbone)
    data.update(fields, dataset=dataset, profile=profile_name)
    data["loss_params"] = dict(data.get("loss_params", {}), **params)
    return Config(**data)


def profile_seeds(profile_name: str, dataset: Optional[str] = None, *, headline: bool = False) -> tuple:
    """The seeds a table row of ``dataset`` runs in ``profile_name`` (:meth:`Profile.seeds_of`)."""
    return profile(profile_name).seeds_of(dataset, headline=headline)


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


def results_frame(configs: Sequence[Config], *, context: RunContext) -> pd.DataFrame:
    """The finished records of ``configs`` in ``context.results_dir`` as :func:`run_all`'s frame, running
    nothing (``status`` is ``"missing"`` and metrics NaN for configs without a finished record)."""
    from .data.loaders import with_data_fingerprint  # torch: the data layer, imported when a batch is read

    configs = [with_data_fingerprint(c, context.data_root) for c in configs]
    return _frame([_row(c, load_record(c, context.results_dir), cached=True) for c in configs])


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    described = pd.DataFrame([describe_config(c) for c in frame["config"]], index=frame.index)
    return pd.concat([frame[["run_id"]], described, frame.drop(columns=["run_id"])], axis=1)


def run_all(configs: Sequence[Config], context: RunContext, *, force: bool = False) -> pd.DataFrame:
    """Run every config that has no finished record in ``context.results_dir`` (all of them if ``force``).

    Returns one row per config (``run_id``, the readable config fields of :func:`describe_config`,
    the Config itself, metrics, status, cached, wall time, throughput, error) and prints
    ``"N cached, M run, K failed"``. A run that raises is recorded as ``<run_id>.failed.json``
    (retried next time) and does not stop the others; Ctrl-C stops the batch (rerun to resume;
    finished runs are kept, interrupted ones resume from their last checkpoint).

    context: where and how (:class:`~kesl_utils.context.RunContext`): the results folder, the data
        root, the device, the executor (``"serial"``, one run after another in this process;
        ``"ray"``, one Ray task per run, :mod:`kesl_utils.executors`), the progress bar, and the
        progress log that ``make reproduce`` reads.
    """
    from .data.loaders import with_data_fingerprint  # torch: the data layer, imported when a batch runs

    if not isinstance(context, RunContext):
        raise TypeError(f"run_all needs a kesl_utils.context.RunContext, got {type(context).__name__}")
    run = executors.EXECUTORS[context.executor]
    configs = list(configs)
    for config in configs:
        if not isinstance(config, Config):
            raise TypeError(f"run_all needs Config objects, got {type(config).__name__}")
    context.prepare()
    configs = [with_data_fingerprint(c, context.data_root) for c in configs]
    batch = unique(configs)
    # The no-learning reference of each synthetic data config (seconds; stored once, read by the tables).
    for config in batch:
        if ncm.applies(config):
            ncm.ensure(config, context.results_dir)
    bar = tqdm(total=len(batch), desc="runs", unit="run", disable=not context.progress, dynamic_ncols=True)
    try:
        done = run(batch, bar=bar, context=context, force=force)
    finally:
        bar.close()
    cached = sum(was_cached for _, was_cached in done.values())
    failed = sum(not was_cached and record.status == "failed" for record, was_cached in done.values())
    print(f"{cached} cached, {len(done) - cached - failed} run, {failed} failed")
    return _frame([_row(c, done[c.run_id][0], cached=done[c.run_id][1]) for c in configs])
