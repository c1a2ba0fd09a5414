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
t-interval, and the difference to CE paired by seed with its interval, p-value and reading
(:func:`kesl_utils.comparison.reading`, no paper value: better, worse or no difference in the metric's own
direction, or not informative where CE or the method is below the raw-pixel nearest-class-mean reference
of the same images).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import comparison, experiments
from .comparison import READINGS, Arm, interval_text, p_text, paired_stats, reading, signed, summary
from .config import Config
from .tables import Records, References, index_records, no_learning_reference, seed_values
from .table_specs import BASELINE, LABEL_SMOOTHING, OURS

#: The file name (no suffix) of the leaderboard's tables under a results folder's ``tables/``.
TABLE_NAME = "leaderboard"

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


def build(records: Records, profile: str, *, seeds=None, datasets=DATASETS,
          references: Optional[References] = None) -> pd.DataFrame:
    """One row per (dataset, method, metric): mean, sample sd, 95 % interval, n, and the paired
    difference to CE (argmax) with its 95 % interval, p-value and reading (``reading``: a key of
    :data:`~kesl_utils.comparison.READINGS`; ``verdict``: its sentence). ``reference``: the dataset's
    no-learning reference (``references``, keyed by :func:`kesl_utils.ncm.data_key`). Joined to the
    records by run id."""
    index = index_records(records)
    groups = configs(profile, seeds=seeds, datasets=datasets)
    rows = []
    for dataset in datasets:
        ce_configs = groups[(dataset, "ce")]
        reference = no_learning_reference([c for c in ce_configs if c.run_id in index], references)
        ce_top1 = seed_values(ce_configs, index, "top1").mean()
        for m in METHODS:
            top1_key = "crm_top1" if m.decision == "crm" else "top1"
            arms = [Arm(ce_top1, reference), Arm(seed_values(groups[(dataset, m.key)], index, top1_key).mean(),
                                                 reference)]
            for column, argmax_key, crm_key, lower_better in METRICS:
                key = crm_key if m.decision == "crm" else argmax_key
                values = seed_values(groups[(dataset, m.key)], index, key)
                mean, sd, n = summary(values)
                spread = paired_stats(values)  # a one-sample t-interval of the mean: the same formula
                if m.key == "ce":
                    diff, read = paired_stats([]), None
                else:
                    diff = paired_stats((values - seed_values(ce_configs, index, argmax_key)).dropna())
                    read = reading(diff.interval, diff.n, arms=arms, higher_is_better=not lower_better)
                rows.append({"dataset": dataset, "method": m.key, "label": m.label, "metric": column,
                             "lower_is_better": lower_better, "mean": mean, "sd": sd, "ci_low": spread.ci_low,
                             "ci_high": spread.ci_high, "n_seeds": n, "vs_ce": diff.mean, "vs_ce_low": diff.ci_low,
                             "vs_ce_high": diff.ci_high, "vs_ce_p": diff.p_value, "reference": reference,
                             "reading": read.key if read else "", "verdict": read.sentence if read else ""})
    return pd.DataFrame(rows)


def _cell(row, digits) -> str:
    if pd.isna(row["mean"]):
        return ""
    text = " ".join(filter(None, (f"{row['mean']:.{digits}f}", interval_text(row["ci_low"], row["ci_high"], digits,
                                                                             sign=False))))
    if row["method"] != "ce" and not pd.isna(row["vs_ce"]):
        text += f"; Δ {signed(row['vs_ce'], digits)}: {row['verdict']}"
    return text


def format_board(board: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One dataset's leaderboard for reading: a row per method, a column per metric, "mean [95 % CI];
    Δ vs CE: its reading" (the paired difference to CE, read by :func:`kesl_utils.comparison.reading`)."""
    part = board[board["dataset"] == dataset]
    out = {}
    for m in METHODS:
        rows = part[part["method"] == m.key]
        out[m.label] = {r["metric"]: _cell(r, 3 if r["metric"] == "ECE" else 2) for _, r in rows.iterrows()}
    frame = pd.DataFrame(out).T
    frame.index.name = "method"
    return frame.reset_index()


def verdicts(board: pd.DataFrame) -> str:
    """Per dataset, the method × metric pairs grouped by the reading of their difference to CE."""
    lines = []
    for dataset in dict.fromkeys(board["dataset"]):
        part = board[(board["dataset"] == dataset) & (board["method"] != "ce")]
        n = int(part["n_seeds"].max()) if len(part) else 0
        groups = []
        for key in READINGS:
            rows = part[part["reading"] == key]
            if rows.empty:
                continue
            if key in ("better", "worse"):
                listing = "; ".join(f"{r['label']} on {r['metric']} ({signed(r['vs_ce'], 2)}, 95 % CI "
                                    f"{interval_text(r['vs_ce_low'], r['vs_ce_high'], 2)}, p = {p_text(r['vs_ce_p'])})"
                                    for _, r in rows.iterrows())
            else:
                listing = f"{len(rows)} method × metric pair(s)"
            groups.append(f"{READINGS[key]}: {listing}")
        lines.append(f"- **{dataset}** ({n} paired seeds), against CE: " + ". ".join(groups or ["nothing measured"])
                     + ".")
    return "\n".join(lines)


#: How :func:`glance` writes a reading: the direction against CE, in the metric's own sense.
GLANCE_SYMBOLS = {"better": "better", "worse": "worse", "no_difference": "·", "not_informative": "n.i.",
                  "reference_missing": "?", "single": "?", "missing": ""}
GLANCE_METRICS = ("top-1 (%)", "mistake severity (LCA)", "ECE")


def glance(board: pd.DataFrame, metrics: Sequence[str] = GLANCE_METRICS) -> pd.DataFrame:
    """The readings of :func:`build` at a glance: a row per method other than CE, a column per
    (dataset, metric), each cell the reading of the paired difference to CE: "better" or "worse"
    (significant at 5 %, in the metric's own direction), "·" (no difference detected), "n.i." (not
    informative: an arm below the no-learning reference), "?" (no reading possible)."""
    unknown = [m for m in metrics if m not in {row[0] for row in METRICS}]
    if unknown:
        raise ValueError(f"glance: unknown metric(s) {unknown}; expected columns of the leaderboard: "
                         f"{', '.join(row[0] for row in METRICS)}")
    part = board[board["method"] != "ce"]
    out = {}
    for m in METHODS[1:]:
        rows = part[part["method"] == m.key]
        if rows.empty:
            continue
        cells = {}
        for dataset in dict.fromkeys(board["dataset"]):
            for metric in metrics:
                hit = rows[(rows["dataset"] == dataset) & (rows["metric"] == metric)]
                cells[f"{dataset}: {metric}"] = (GLANCE_SYMBOLS.get(hit["reading"].iloc[0], hit["reading"].iloc[0])
                                                 if len(hit) else "")
        out[m.label] = cells
    frame = pd.DataFrame(out).T
    frame.index.name = "method"
    return frame.reset_index()


def write(board: pd.DataFrame, *, profile: str, folder: Union[str, os.PathLike], note: str = "") -> dict:
    """``<folder>/leaderboard.{csv,md,tex}``: the numbers, and one readable table per dataset
    (:func:`kesl_utils.comparison.write_study`)."""
    blocks = [note]
    for dataset in dict.fromkeys(board["dataset"]):
        blocks.append(comparison.DisplayTable(format_board(board, dataset), heading=dataset,
                                              label=f"tab:leaderboard-{dataset}",
                                              caption=f"Hierarchy-aware methods, {dataset} (profile {profile})"))
    blocks += ["Cells: mean [95 % t-interval over seeds]; Δ: the difference to CE paired by seed, and its reading "
               "(better or worse in the metric's own direction, at 5 %). Mistake severity and hdist@k use the height "
               "of the lowest common ancestor (Bertinetto et al.); lower is better, as for ECE.",
               verdicts(board), comparison.STATISTICS_NOTE]
    return comparison.write_study(folder, TABLE_NAME, profile=profile,
                                  title=f"Hierarchy-aware methods on the stand-ins — profile `{profile}`",
                                  numbers={"": board}, blocks=blocks)


#: How the trade-off figure marks a method below the no-learning reference of its images.
NOT_INFORMATIVE_GREY = "#9e9e9e"
#: The trade-off figure's colour of each method, by its place in :data:`METHODS`: matplotlib's default cycle without
#: its grey (C7), which would read as the grey of a method below the no-learning reference.
METHOD_COLOURS = tuple(f"C{i}" for i in range(10) if i != 7)
BELOW_REFERENCE = " (below the no-learning reference)"


def tradeoff(board: pd.DataFrame, dataset: str, ax=None):
    """Bertinetto et al.'s Figure 1: top-1 error against mistake severity (LCA), one point per method,
    error bars the 95 % intervals over seeds. A method whose top-1 is below the no-learning reference of its
    images is drawn grey and hollow, its label says so (as its cells read "not informative"), and the
    reference's error is a dashed vertical line. Every other method has the colour and marker of its place in
    :data:`METHODS`, whichever methods a panel greys."""

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    part = board[board["dataset"] == dataset]
    markers = "osDv^<>P*X"
    reference = part["reference"].iloc[0] if len(part) and "reference" in part else np.nan
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
        below = not pd.isna(reference) and top1["mean"].iloc[0] < reference
        # a method keeps its colour (and marker) in every panel: the legend of one panel serves them all
        colour = METHOD_COLOURS[k % len(METHOD_COLOURS)]
        style = dict(color=NOT_INFORMATIVE_GREY, mfc="white") if below else dict(color=colour)
        ax.errorbar(error, y, xerr=x_err[::-1], yerr=y_err, fmt=markers[k % len(markers)], capsize=3,
                    label=m.label + (BELOW_REFERENCE if below else ""), **style)
    if not pd.isna(reference):
        ax.axvline(100 - reference, color="0.4", ls="--", lw=1, label="no-learning reference (error)")
    ax.set_xlabel("top-1 error (%)")
    ax.set_ylabel("mistake severity (LCA height)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    return ax
