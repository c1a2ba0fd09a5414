"""Helpers of notebook 10 (KESL with your own hierarchy): budgets, a small result cache, the comparison.

The training loop itself lives in the notebook on purpose: it is the code a reader copies into
their own project, so it uses nothing from this package but :class:`~kesl_utils.losses.KESLLoss`
and the metrics. What is here is bookkeeping around it:

* :func:`budget` — image size, images per class, epochs, … per profile (each profile's entry in
  :mod:`kesl_utils.profiles` holds its :class:`TutorialBudget`). Budgets only; the science
  (λ, T, α, β) comes from the loss registry.
* :func:`settings_key`, :func:`tensor_digest`, :func:`cached_result`, :func:`store_result` — one
  small JSON per (method, seed) under ``<results>/tutorial/``, named by a hash of everything that
  affects it (the data's own digest included), so that a re-run of the notebook trains nothing it
  has already trained.
* :func:`as_tensors`, :func:`first_per_class`, :func:`nearest_class_mean_top1` — data helpers and
  the no-learning reference.
* :func:`paired_comparison`, :func:`comparison_table`, :func:`write_table` — CE vs KESL paired by
  seed with a 95 % t-interval, and a verdict that only the interval decides.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from . import paths, profiles
from .profiles import TutorialBudget
from .tables import NOT_LEARNED_FACTOR, mean_sd, paired_stats, to_markdown

__all__ = ["TutorialBudget", "budget", "settings_key", "tensor_digest", "cache_dir", "cached_result", "store_result",
           "as_tensors", "first_per_class", "nearest_class_mean_top1", "METRICS", "paired_comparison",
           "comparison_table", "write_table", "TABLE_NAME"]

TABLE_NAME = "your_own_hierarchy"


def budget(profile: str) -> TutorialBudget:
    """The :class:`TutorialBudget` of ``profile`` (its :attr:`kesl_utils.profiles.Profile.tutorial`)."""
    chosen = profiles.profile(profile).tutorial
    if chosen is None:
        raise ValueError(f"profile {profile!r} has no tutorial budget (kesl_utils.profiles.Profile.tutorial)")
    return chosen


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


def cached_result(results_dir, settings: Mapping) -> Optional[dict]:
    """The stored result (under ``results_dir``) of a run with exactly these ``settings``, or ``None``
    (also for a file that is unreadable or was written for other settings)."""
    path = _path(results_dir, settings)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("settings") != json.loads(_canonical(settings)):
        return None
    return {**stored["settings"], **stored["metrics"]}


def store_result(results_dir, settings: Mapping, metrics: Mapping) -> dict:
    """Write ``{"settings", "metrics"}`` atomically to the run's JSON; returns settings and metrics merged
    into one flat dict (a row of the results table). NaN metrics are stored as ``null``."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else float(v) if isinstance(v, (float, np.floating))
                 else v) for k, v in metrics.items()}
    settings = json.loads(_canonical(settings))
    paths.atomic_write_text(_path(results_dir, settings), json.dumps({"settings": settings, "metrics": clean},
                                                                     indent=1, sort_keys=True) + "\n")
    return {**settings, **clean}


# -- data ----------------------------------------------------------------------------------------------
def as_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``dataset`` as ``(images (N, 3, H, W) float32, labels (N,) int64)`` — for small sets that are
    cheaper to hold in memory than to decode or generate every epoch."""
    indices = list(range(len(dataset)))
    items = dataset.__getitems__(indices) if hasattr(dataset, "__getitems__") else [dataset[i] for i in indices]
    if not items:
        raise ValueError("the dataset is empty")
    images = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in items])
    labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
    return images, labels


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


def nearest_class_mean_top1(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                            test_labels: torch.Tensor, num_classes: int) -> float:
    """Top-1 (%) of the raw-pixel nearest-class-mean classifier: no learning, the floor a network must beat."""
    train = train_images.flatten(1).double()
    sums = torch.zeros(num_classes, train.shape[1], dtype=torch.float64).index_add_(0, train_labels, train)
    counts = torch.bincount(train_labels, minlength=num_classes).clamp_min(1).double()
    predictions = torch.cdist(test_images.flatten(1).double(), sums / counts[:, None]).argmin(dim=1)
    return float((predictions == test_labels).double().mean()) * 100.0


# -- the comparison ------------------------------------------------------------------------------------
#: metric key → (label, unit, higher is better)
METRICS = {
    "top1": ("top-1 accuracy", "%", True),
    "mistake_severity": ("mistake severity", "d", False),  # mean d(true, predicted) over the top-1 mistakes
    "superclass_accuracy": ("superclass accuracy", "%", True),
}


def paired_comparison(baseline: Mapping[int, float], treatment: Mapping[int, float], *, higher_is_better: bool,
                      learned: bool = True) -> dict:
    """Treatment − baseline, paired by seed (the keys): mean, sd, n, 95 % t-interval, p, and a verdict.

    The verdict comes from the interval only: ``"helps"`` or ``"hurts"`` where it excludes zero (in the
    metric's better or worse direction), ``"no evidence either way at this budget"`` where it does not;
    a single seed gives no interval and no verdict, and an arm that did not learn gives no verdict.
    """
    seeds = sorted(set(baseline) & set(treatment))
    differences = [treatment[s] - baseline[s] for s in seeds]
    out = paired_stats(differences)
    if out["n"] == 0:
        out["verdict"] = "not measured"
    elif not learned:
        out["verdict"] = f"an arm did not learn (top-1 below {NOT_LEARNED_FACTOR:g} × chance): no verdict"
    elif out["n"] < 2:
        out["verdict"] = "a single seed: no interval, no verdict"
    elif out["ci_low"] > 0 or out["ci_high"] < 0:
        better = (out["ci_low"] > 0) == higher_is_better
        out["verdict"] = "helps" if better else "hurts"
    else:
        out["verdict"] = "no evidence either way at this budget"
    return out


def comparison_table(results: pd.DataFrame, *, baseline: str = "CE", treatment: str = "KESL",
                     chance_top1: Optional[float] = None) -> pd.DataFrame:
    """One row per metric of :data:`METRICS`: each arm's mean and sd over seeds, the paired difference
    (treatment − baseline) with its 95 % interval and p-value, and the verdict.

    ``results``: one row per run with columns ``method``, ``seed`` and the metric keys. With
    ``chance_top1`` (%), an arm whose mean top-1 stays below :data:`~kesl_utils.tables.NOT_LEARNED_FACTOR`
    × chance gets no verdict.
    """
    rows = []
    arms = {method: part.set_index("seed") for method, part in results.groupby("method")}
    for method in (baseline, treatment):
        if method not in arms:
            raise ValueError(f"results have no runs of {method!r}; methods: {sorted(arms)}")
    learned = chance_top1 is None or all(arms[m]["top1"].mean() >= NOT_LEARNED_FACTOR * chance_top1
                                         for m in (baseline, treatment))
    for key, (label, unit, higher_is_better) in METRICS.items():
        a, b = (arms[m][key].astype(float).dropna() for m in (baseline, treatment))
        paired = paired_comparison(a.to_dict(), b.to_dict(), higher_is_better=higher_is_better, learned=learned)
        rows.append({"metric": key, "label": label, "unit": unit, "higher_is_better": higher_is_better,
                     f"{baseline}_mean": a.mean(), f"{baseline}_sd": a.std(ddof=1) if len(a) > 1 else math.nan,
                     f"{treatment}_mean": b.mean(), f"{treatment}_sd": b.std(ddof=1) if len(b) > 1 else math.nan,
                     "difference": paired["mean"], "ci_low": paired["ci_low"], "ci_high": paired["ci_high"],
                     "p_value": paired["p_value"], "n_seeds": paired["n"], "verdict": paired["verdict"]})
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame, *, baseline: str = "CE", treatment: str = "KESL",
                      digits: int = 2) -> pd.DataFrame:
    """A display copy of :func:`comparison_table`: mean ± sd per arm, the signed difference and its interval."""
    def interval(low, high):
        return "" if pd.isna(low) else f"[{low:+.{digits}f}, {high:+.{digits}f}]"

    return pd.DataFrame({
        "metric": [f"{label} ({unit})" for label, unit in zip(table["label"], table["unit"])],
        baseline: [mean_sd(m, s, digits) for m, s in zip(table[f"{baseline}_mean"], table[f"{baseline}_sd"])],
        treatment: [mean_sd(m, s, digits) for m, s in zip(table[f"{treatment}_mean"], table[f"{treatment}_sd"])],
        f"{treatment} − {baseline}": ["" if pd.isna(d) else f"{d:+.{digits}f}" for d in table["difference"]],
        "95 % CI": [interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "seeds": table["n_seeds"].astype(int).astype(str),
        "verdict": table["verdict"],
    })


def write_table(table: pd.DataFrame, *, profile: str, results_dir, note: str = "", name: str = TABLE_NAME,
                baseline: str = "CE", treatment: str = "KESL") -> dict[str, Path]:
    """``<results_dir>/tables/<name>.{csv,md,tex}``: the numbers (csv), the display table with
    ``note`` (md) and the display table alone (tex). Returns the three paths."""
    folder = paths.tables_dir(results_dir)
    shown = format_comparison(table, baseline=baseline, treatment=treatment)
    title = f"{treatment} vs {baseline} on your own hierarchy (notebook 10) — profile `{profile}`"
    md = (f"### {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(shown) + "\n"
          "Differences are paired by seed; the 95 % interval uses the t distribution with n − 1 degrees of "
          "freedom; the verdict comes from the interval only.\n")
    tex = shown.to_latex(index=False, escape=True, caption=title.replace("`", ""), label=f"tab:{name}")
    out = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md", "tex": folder / f"{name}.tex"}
    paths.atomic_write_text(out["csv"], table.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["md"], md)
    paths.atomic_write_text(out["tex"], tex)
    return out


def results_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """The run results (from :func:`cached_result` / :func:`store_result`) as a frame, one row per run."""
    return pd.DataFrame(list(records))
