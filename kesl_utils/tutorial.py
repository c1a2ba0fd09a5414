"""Helpers of notebook 10 (KESL with your own hierarchy): budgets, a small result cache, the comparison.

The training loop itself lives in the notebook on purpose: it is the code a reader copies into
their own project, so it uses nothing from this package but :class:`~kesl_utils.losses.KESLLoss`
and the metrics. What is here is bookkeeping around it:

* :func:`budget` — image size, images per class, epochs, … per profile (each profile's entry in
  :mod:`kesl_utils.profiles` holds its :class:`TutorialBudget`). Budgets only; the science
  (λ, T, α, β) comes from the loss registry.
* :func:`settings_key`, :func:`tensor_digest`, :func:`cached_result`, :func:`store_result` — one
  small JSON per (method, seed) under ``<results>/tutorial/``, named by a hash of everything that
  affects it (the data's own digest included; :func:`result_id`), so that a re-run of the notebook
  trains nothing it has already trained.
* :func:`first_per_class` — the first images of each class. The data as tensors and the no-learning
  reference are :func:`kesl_utils.ncm.as_tensors` and :func:`kesl_utils.ncm.nearest_class_mean_top1`,
  the implementation the paper tables' references use.
* :func:`paired_comparison`, :func:`comparison_table`, :func:`write_table` — CE vs KESL paired by
  seed with a 95 % t-interval, read by :func:`kesl_utils.comparison.reading` (no paper value; not
  informative where an arm stays below the raw-pixel nearest-class-mean reference).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from . import comparison, paths, profiles
from .comparison import Arm, interval_text, mean_sd, paired_stats, reading, signed
from .profiles import TutorialBudget

__all__ = ["TutorialBudget", "budget", "settings_key", "tensor_digest", "cache_dir", "result_id", "cached_result",
           "store_result", "first_per_class", "METRICS", "paired_comparison", "comparison_table", "write_table",
           "TABLE_NAME"]

TABLE_NAME = "your_own_hierarchy"


def budget(profile: str) -> TutorialBudget:
    """The :class:`TutorialBudget` of ``profile`` (its :attr:`kesl_utils.profiles.Profile.tutorial`)."""
    return profiles.profile(profile).part("tutorial")


# -- the result cache ----------------------------------------------------------------------------------
def _canonical(settings: Mapping) -> str:
    try:
        return json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"settings must be JSON-serialisable plain values (str, int, float, bool, None, "
                         f"lists, dicts): {error}") from None


def settings_key(settings: Mapping) -> str:
    """12 hex digits of the SHA-256 of ``settings`` as canonical JSON (sorted keys): equal settings,
    equal key, whatever the order they were written in."""
    return hashlib.sha256(_canonical(settings).encode("utf-8")).hexdigest()[:12]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """12 hex digits of the SHA-256 of the tensors' shapes, dtypes and bytes: the identity of the data a
    run trained and was tested on, so that a cached result is not reused for other images or labels."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:12]


def cache_dir(results_dir) -> Path:
    """``<results_dir>/tutorial/``."""
    return Path(results_dir) / "tutorial"


def _path(results_dir, settings: Mapping) -> Path:
    stem = "-".join(str(settings[k]) for k in ("method", "seed") if k in settings)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
    return cache_dir(results_dir) / f"{safe + '-' if safe else ''}{settings_key(settings)}.json"


def result_id(settings: Mapping) -> str:
    """The name of the stored result of a run with these ``settings``: its file's stem under
    ``<results>/tutorial/``, ``<method>-<seed>-<settings_key>`` (as a run id names a run record)."""
    return _path(".", settings).stem


def cached_result(results_dir, settings: Mapping) -> Optional[dict]:
    """The stored result (under ``results_dir``) of a run with exactly these ``settings``, or ``None``
    (also for a file that is unreadable or was written for other settings). Settings and metrics merged into one
    flat dict, with ``result_id`` (:func:`result_id`), as :func:`store_result` returns it."""
    path = _path(results_dir, settings)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("settings") != json.loads(_canonical(settings)):
        return None
    return {**stored["settings"], **stored["metrics"], "result_id": path.stem}


def store_result(results_dir, settings: Mapping, metrics: Mapping) -> dict:
    """Write ``{"settings", "metrics"}`` atomically to the run's JSON; returns settings and metrics merged
    into one flat dict (a row of the results table), with ``result_id``: the file's name (:func:`result_id`), by
    which what notebook 10 shows names the results behind it. NaN metrics are stored as ``null``."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else float(v) if isinstance(v, (float, np.floating))
                 else v) for k, v in metrics.items()}
    settings = json.loads(_canonical(settings))
    text = json.dumps({"settings": settings, "metrics": clean}, indent=1, sort_keys=True) + "\n"
    path = paths.atomic_write_text(_path(results_dir, settings), text)
    return {**settings, **clean, "result_id": path.stem}


# -- data ----------------------------------------------------------------------------------------------
def first_per_class(targets: Sequence[int], n_per_class: Optional[int]) -> list[int]:
    """Indices of the first ``n_per_class`` samples of every class, in dataset order (all if ``None``)."""
    if n_per_class is None:
        return list(range(len(targets)))
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be ≥ 1 or None, got {n_per_class!r}")
    seen: dict[int, int] = {}
    chosen = []
    for index, label in enumerate(targets):
        label = int(label)
        if seen.get(label, 0) < n_per_class:
            seen[label] = seen.get(label, 0) + 1
            chosen.append(index)
    return chosen


# -- the comparison ------------------------------------------------------------------------------------
#: metric key → (label, unit, higher is better)
METRICS = {
    "top1": ("top-1 accuracy", "%", True),
    "mistake_severity": ("mistake severity", "d", False),  # mean d(true, predicted) over the top-1 mistakes
    "superclass_accuracy": ("superclass accuracy", "%", True),
}


def paired_comparison(baseline: Mapping[int, float], treatment: Mapping[int, float], *, higher_is_better: bool,
                      arms: Iterable[Arm] = ()) -> dict:
    """Treatment − baseline, paired by seed (the keys): mean, sd, n, 95 % t-interval, p, and the reading.

    ``reading``/``verdict``: the key and sentence of :func:`kesl_utils.comparison.reading` (no paper value:
    better, worse or no difference in the metric's direction); ``arms``: the arms' mean top-1 and their
    no-learning reference, which make the comparison "not informative" where an arm stays below it.
    """
    seeds = sorted(set(baseline) & set(treatment))
    paired = paired_stats([treatment[s] - baseline[s] for s in seeds])
    read = reading(paired.interval, paired.n, arms=arms, higher_is_better=higher_is_better)
    return {"mean": paired.mean, "sd": paired.sd, "n": paired.n, "ci_low": paired.ci_low,
            "ci_high": paired.ci_high, "p_value": paired.p_value, "reading": read.key, "verdict": read.sentence}


def comparison_table(results: pd.DataFrame, *, baseline: str = "CE", treatment: str = "KESL",
                     reference_top1: Optional[float] = None) -> pd.DataFrame:
    """One row per metric of :data:`METRICS`: each arm's mean and sd over seeds, the paired difference
    (treatment − baseline) with its 95 % interval and p-value, and its reading.

    ``results``: one row per run with columns ``method``, ``seed`` and the metric keys.
    ``reference_top1``: the top-1 (%) of the raw-pixel nearest class mean on the same images
    (:func:`kesl_utils.ncm.nearest_class_mean_top1`); where an arm's mean top-1 stays below it, every
    metric's comparison reads "not informative". ``None``: no reference, no such check.
    """
    rows = []
    arms = {method: part.set_index("seed") for method, part in results.groupby("method")}
    for method in (baseline, treatment):
        if method not in arms:
            raise ValueError(f"results have no runs of {method!r}; methods: {sorted(arms)}")
    standing = [Arm(arms[m]["top1"].astype(float).mean(), reference_top1) for m in (baseline, treatment)]
    for key, (label, unit, higher_is_better) in METRICS.items():
        a, b = (arms[m][key].astype(float).dropna() for m in (baseline, treatment))
        paired = paired_comparison(a.to_dict(), b.to_dict(), higher_is_better=higher_is_better, arms=standing)
        rows.append({"metric": key, "label": label, "unit": unit, "higher_is_better": higher_is_better,
                     f"{baseline}_mean": a.mean(), f"{baseline}_sd": a.std(ddof=1) if len(a) > 1 else math.nan,
                     f"{treatment}_mean": b.mean(), f"{treatment}_sd": b.std(ddof=1) if len(b) > 1 else math.nan,
                     "difference": paired["mean"], "ci_low": paired["ci_low"], "ci_high": paired["ci_high"],
                     "p_value": paired["p_value"], "n_seeds": paired["n"], "reference_top1": reference_top1,
                     "reading": paired["reading"], "verdict": paired["verdict"]})
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame, *, baseline: str = "CE", treatment: str = "KESL",
                      digits: int = 2) -> pd.DataFrame:
    """A display copy of :func:`comparison_table`: mean ± sd per arm, the signed difference, its interval
    and its reading."""
    return pd.DataFrame({
        "metric": [f"{label} ({unit})" for label, unit in zip(table["label"], table["unit"])],
        baseline: [mean_sd(m, s, digits) for m, s in zip(table[f"{baseline}_mean"], table[f"{baseline}_sd"])],
        treatment: [mean_sd(m, s, digits) for m, s in zip(table[f"{treatment}_mean"], table[f"{treatment}_sd"])],
        f"{treatment} − {baseline}": [signed(d, digits) for d in table["difference"]],
        "95 % CI": [interval_text(lo, hi, digits) for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "seeds": table["n_seeds"].astype(int).astype(str),
        "reading": table["verdict"],
    })


def write_table(table: pd.DataFrame, *, profile: str, folder: Union[str, os.PathLike], note: str = "",
                name: str = TABLE_NAME, baseline: str = "CE", treatment: str = "KESL") -> dict[str, Path]:
    """``<folder>/<name>.{csv,md,tex}`` (:func:`kesl_utils.comparison.write_study`): the numbers (csv), the
    display table with ``note`` (md) and the display table alone (tex). Returns the three paths."""
    title = f"{treatment} vs {baseline} on your own hierarchy (notebook 10) — profile `{profile}`"
    blocks = [note, comparison.DisplayTable(format_comparison(table, baseline=baseline, treatment=treatment),
                                            label=f"tab:{name}"),
              comparison.STATISTICS_NOTE]
    return comparison.write_study(folder, name, profile=profile, title=title, numbers={"": table}, blocks=blocks)


def results_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """The run results (from :func:`cached_result` / :func:`store_result`) as a frame, one row per run."""
    return pd.DataFrame(list(records))
