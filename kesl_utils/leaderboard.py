"""Beyond the paper: the hierarchy-aware methods KESL competes with, in one harness, on one leaderboard.

Every method trains with the same backbone, budget and seeds as the paper tables of the profile
(:func:`kesl_utils.experiments.profile_config`: on CUB the pretrained-then-fine-tuned protocol, on the
ImageNet subsets from scratch), so a difference between two rows is a difference between the methods:

* **CE** — cross-entropy, argmax decision;
* **CE + CRM** — the same CE runs, decided by conditional risk minimisation (Karthik et al., ICLR 2021):
  rank classes by Σ_j p_j · D(k, j) with D the LCA height (:func:`kesl_utils.metrics.crm_rank`); no
  retraining, the trainer records both decisions;
* **label smoothing** (ε = 0.1);
* **soft labels of Bertinetto et al.** (``mbm``) at two hardness values β, 4 and 30, the two ends of the
  range their experiments sweep (30 is the registry's default);
* **hierarchical cross-entropy** (``hxe``) at two decays α, 0.1 and 0.5, from their sweep of 0.1–0.6;
* **KESL** at the paper's setting.

Metrics (from the run records): top-1, top-5, mistake severity and hierarchical distance@1/@5 measured
with the LCA height (Bertinetto et al.'s definitions), and ECE. Each is the mean over seeds with a 95 %
t-interval, and the difference to CE paired by seed with its interval and p-value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import experiments, paths
from .config import Config
from .tables import Records, index_records, mean_sd, paired_stats, seed_values, summary, to_markdown
from .table_specs import BASELINE, LABEL_SMOOTHING, OURS

DATASETS = ("cub", "mini_imagenet", "small_imagenet")


@dataclass(frozen=True)
class Method:
    """A row of the leaderboard: a training config (``overrides``) and a decision rule (``decision``)."""

    key: str
    label: str
    overrides: dict = field(default_factory=dict)
    decision: str = "argmax"  # or "crm": read the crm_* metrics of the same runs


METHODS = (
    Method("ce", "CE", dict(BASELINE)),
    Method("ce+crm", "CE + CRM", dict(BASELINE), decision="crm"),
    Method("label_smoothing", "label smoothing (ε 0.1)", dict(LABEL_SMOOTHING)),
    Method("mbm@4", "soft labels, Bertinetto et al. (β 4)", {"loss": "mbm", "hardness": 4.0}),
    Method("mbm@30", "soft labels, Bertinetto et al. (β 30)", {"loss": "mbm", "hardness": 30.0}),
    Method("hxe@0.1", "hierarchical CE (α 0.1)", {"loss": "hxe", "decay": 0.1}),
    Method("hxe@0.5", "hierarchical CE (α 0.5)", {"loss": "hxe", "decay": 0.5}),
    Method("kesl", "KESL (paper setting)", dict(OURS)),
)

#: (leaderboard column, record metric under argmax, record metric under CRM, lower is better)
METRICS = (
    ("top-1 (%)", "top1", "crm_top1", False),
    ("top-5 (%)", "top5", "crm_top5", False),
    ("mistake severity (LCA)", "mistake_severity_lca", "crm_mistake_severity_lca", True),
    ("hdist@1 (LCA)", "hdist_lca@1", "crm_hdist_lca@1", True),
    ("hdist@5 (LCA)", "hdist_lca@5", "crm_hdist_lca@5", True),
    ("ECE", "ece", "ece", True),
)


def method(key: str) -> Method:
    for candidate in METHODS:
        if candidate.key == key:
            return candidate
    raise ValueError(f"unknown method {key!r}; expected one of {', '.join(repr(m.key) for m in METHODS)}")


def configs(profile: str, *, seeds=None, datasets=DATASETS) -> dict[tuple[str, str], list[Config]]:
    """``{(dataset, method key): configs, one per seed}`` (CE + CRM shares CE's runs)."""
    seeds = experiments.profile_seeds(profile) if seeds is None else tuple(seeds)
    out = {}
    for dataset in datasets:
        for m in METHODS:
            base = experiments.profile_config(profile, dataset, **m.overrides)
            out[(dataset, m.key)] = experiments.with_seeds([base], seeds)
    return out


def all_configs(profile: str, *, seeds=None, datasets=DATASETS) -> list[Config]:
    """Every run the leaderboard needs, each once, seed-major."""
    every = [c for group in configs(profile, seeds=seeds, datasets=datasets).values() for c in group]
    return experiments.unique(sorted(every, key=lambda c: c.seed))


def _interval(values: pd.Series) -> tuple[float, float]:
    stats_row = paired_stats(values)  # a one-sample t-interval of the mean: the same formula
    return stats_row["ci_low"], stats_row["ci_high"]


def build(records: Records, profile: str, *, seeds=None, datasets=DATASETS) -> pd.DataFrame:
    """One row per (dataset, method, metric): mean, sample sd, 95 % interval, n, and the paired
    difference to CE (argmax) with its 95 % interval and p-value. Joined to the records by run id."""
    index = index_records(records)
    groups = configs(profile, seeds=seeds, datasets=datasets)
    rows = []
    for dataset in datasets:
        for m in METHODS:
            for column, argmax_key, crm_key, lower_better in METRICS:
                key = crm_key if m.decision == "crm" else argmax_key
                values = seed_values(groups[(dataset, m.key)], index, key)
                mean, sd, n = summary(values)
                low, high = _interval(values)
                reference = seed_values(groups[(dataset, "ce")], index, argmax_key)
                diff = paired_stats((values - reference).dropna()) if m.key != "ce" else \
                    {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": 0}
                better = np.nan
                if diff["n"] >= 2 and not np.isnan(diff["ci_low"]):
                    sign = 1 if diff["ci_low"] > 0 else -1 if diff["ci_high"] < 0 else 0
                    better = 0 if sign == 0 else (sign < 0) == lower_better
                rows.append({"dataset": dataset, "method": m.key, "label": m.label, "metric": column,
                             "lower_is_better": lower_better, "mean": mean, "sd": sd, "ci_low": low, "ci_high": high,
                             "n_seeds": n, "vs_ce": diff["mean"], "vs_ce_low": diff["ci_low"],
                             "vs_ce_high": diff["ci_high"], "vs_ce_p": diff["p_value"], "beats_ce": better})
    return pd.DataFrame(rows)


def _cell(row, digits) -> str:
    if pd.isna(row["mean"]):
        return ""
    text = f"{row['mean']:.{digits}f}"
    if not pd.isna(row["ci_low"]):
        text += f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    if row["method"] != "ce" and not pd.isna(row["vs_ce"]):
        marker = {True: " ▲", False: " ▼"}.get(row["beats_ce"], "") if not pd.isna(row["beats_ce"]) else ""
        text += f"; Δ {row['vs_ce']:+.{digits}f}{marker}"
    return text


def format_board(board: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One dataset's leaderboard for reading: a row per method, a column per metric, "mean [95 % CI]; Δ vs CE",
    ▲ where the method is better than CE at 5 %, ▼ where it is worse (from the paired interval)."""
    part = board[board["dataset"] == dataset]
    out = {}
    for m in METHODS:
        rows = part[part["method"] == m.key]
        out[m.label] = {r["metric"]: _cell(r, 3 if r["metric"] == "ECE" else 2) for _, r in rows.iterrows()}
    frame = pd.DataFrame(out).T
    frame.index.name = "method"
    return frame.reset_index()


def verdicts(board: pd.DataFrame) -> str:
    """Which methods beat CE on which metric, with what confidence — generated from the intervals."""
    lines = []
    for dataset in dict.fromkeys(board["dataset"]):
        part = board[(board["dataset"] == dataset) & (board["method"] != "ce")]
        better = part[part["beats_ce"] == True]  # noqa: E712 - NaN/0 are "no evidence"
        worse = part[part["beats_ce"] == False]  # noqa: E712
        def listing(rows):
            return "; ".join(f"{r['label']} on {r['metric']} ({r['vs_ce']:+.2f}, 95 % CI [{r['vs_ce_low']:+.2f}, "
                             f"{r['vs_ce_high']:+.2f}], p = {r['vs_ce_p']:.2g})" for _, r in rows.iterrows())
        n = int(part["n_seeds"].max()) if len(part) else 0
        lines.append(f"- **{dataset}** ({n} paired seeds): better than CE at 5 %: {listing(better) or 'none'}. "
                     f"Worse than CE at 5 %: {listing(worse) or 'none'}. Every other method × metric pair: "
                     "no evidence either way at this budget.")
    return "\n".join(lines)


def write(board: pd.DataFrame, *, profile: str, note: str = "") -> dict:
    """``<results>/tables/leaderboard.{csv,md,tex}``: the numbers, and one readable table per dataset."""
    folder = paths.tables_dir(profile)
    md = [f"### Hierarchy-aware methods on the stand-ins — profile `{profile}`", ""]
    if note:
        md += [note, ""]
    tex = []
    for dataset in dict.fromkeys(board["dataset"]):
        shown = format_board(board, dataset)
        md += [f"#### {dataset}", "", to_markdown(shown), ""]
        tex.append(shown.to_latex(index=False, escape=True, caption=f"Hierarchy-aware methods, {dataset} "
                                  f"(profile {profile})", label=f"tab:leaderboard-{dataset}"))
    md += ["Cells: mean [95 % t-interval over seeds]; Δ: the difference to CE paired by seed; ▲/▼: better/worse "
           "than CE at 5 % (the paired interval excludes zero). Mistake severity and hdist@k use the height of the "
           "lowest common ancestor (Bertinetto et al.); lower is better, as for ECE.", "", verdicts(board), ""]
    out = {"csv": folder / "leaderboard.csv", "md": folder / "leaderboard.md", "tex": folder / "leaderboard.tex"}
    paths.atomic_write_text(out["csv"], board.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["md"], "\n".join(md))
    paths.atomic_write_text(out["tex"], "\n".join(tex))
    return out


def tradeoff(board: pd.DataFrame, dataset: str, ax=None):
    """Bertinetto et al.'s Figure 1: top-1 error against mistake severity (LCA), one point per method,
    error bars the 95 % intervals over seeds."""

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    part = board[board["dataset"] == dataset]
    markers = "osDv^<>P*X"
    for k, m in enumerate(METHODS):
        top1 = part[(part["method"] == m.key) & (part["metric"] == "top-1 (%)")]
        severity = part[(part["method"] == m.key) & (part["metric"] == "mistake severity (LCA)")]
        if top1.empty or pd.isna(top1["mean"].iloc[0]):
            continue
        error = 100 - top1["mean"].iloc[0]
        x_err = np.nan_to_num([[top1["mean"].iloc[0] - top1["ci_low"].iloc[0]],
                               [top1["ci_high"].iloc[0] - top1["mean"].iloc[0]]])
        y = severity["mean"].iloc[0]
        y_err = np.nan_to_num([[y - severity["ci_low"].iloc[0]], [severity["ci_high"].iloc[0] - y]])
        ax.errorbar(error, y, xerr=x_err[::-1], yerr=y_err, fmt=markers[k % len(markers)], capsize=3, label=m.label)
    ax.set_xlabel("top-1 error (%)")
    ax.set_ylabel("mistake severity (LCA height)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    return ax
