"""Figures for the table notebooks: the paired gains (forest plot), this run's accuracies, training curves.

Plots read tables (:mod:`kesl_utils.tables`) and run histories; they compute nothing new. A figure
flags what its table flags: an arm that did not learn, or a comparison that reads "not informative"
(:func:`kesl_utils.comparison.reading`), is drawn grey and hatched and says so. The paper's accuracies
never share an axis with this run's (on the stand-ins they are on unrelated scales); the paper's
*gains* do, in :func:`forest`, since gains are what a run on the stand-ins can compare.
"""
from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Iterable, Union

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch, Rectangle
import pandas as pd

from . import paths

PAPER_COLOUR = "#9e9e9e"
RUN_COLOUR = "#1f77b4"


def save_figure(fig: plt.Figure, name: str, folder: Union[str, os.PathLike]) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (atomically; e.g. ``<results>/figures``) and return the path.

    ``folder`` has no default, so a forgotten argument cannot write into the committed results. The PNG
    carries no metadata (no software version, no date), so the same figure gives the same bytes.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return paths.atomic_write_bytes(Path(folder) / f"{name}.png", buffer.getvalue())


NOT_LEARNED_STYLE = dict(color="#d9d9d9", hatch="///", edgecolor="#7f7f7f")


def this_run_accuracy(table: pd.DataFrame, labels: Iterable[str] | None = None, *, title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """This run's arms only: one bar per run row of :func:`kesl_utils.tables.build_table`'s frame (mean top-1,
    error bar: sample sd over seeds), and over each bar a dashed line at its no-learning reference (``reference``:
    the nearest class mean on raw pixels of the same images; on real images 5 × chance).

    The paper's numbers are not drawn: on the stand-ins they are on another scale, and the gains are what
    compare (:func:`forest`). An arm below its reference or below 5 × chance (``below_reference``, ``learned``)
    is grey, hatched and annotated, as its table cell is marked. ``labels``: one per row of ``table`` (default:
    :func:`kesl_utils.tables.row_labels`); quoted and reference rows are left out.
    """
    if labels is None:
        from .tables import row_labels  # at call time: importing plots does not load the tables layer
        labels = row_labels(table)
    labels = pd.Series(list(labels), index=table.index)
    runs = table[table["kind"] == "run"] if "kind" in table else table
    labels = labels.loc[runs.index].tolist()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 0.8 * len(labels) + 2), 3.6))
    x = np.arange(len(runs))
    mean = runs["this_run"].to_numpy(float)
    sd = runs["this_run_sd"].fillna(0).to_numpy(float)
    flagged = ~runs["learned"].astype(bool).to_numpy() if "learned" in runs else np.zeros(len(runs), bool)
    if "below_reference" in runs:
        flagged |= runs["below_reference"].astype(bool).to_numpy()
    if (~flagged).any():
        ax.bar(x[~flagged], mean[~flagged], width=0.6, color=RUN_COLOUR, yerr=sd[~flagged], capsize=3,
               label="this run: mean top-1, error bar: sample sd over seeds")
    if flagged.any():
        ax.bar(x[flagged], mean[flagged], width=0.6, yerr=sd[flagged], capsize=3,
               label="below the no-learning reference (or 5 × chance)", **NOT_LEARNED_STYLE)
        for xi, value in zip(x[flagged], mean[flagged]):
            ax.annotate("did not learn", (xi, 0 if np.isnan(value) else value), xytext=(0, 4),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, rotation=90,
                        color="#555555")
    reference = runs["reference"].to_numpy(float) if "reference" in runs else np.full(len(runs), np.nan)
    drawn = ~np.isnan(reference)
    if drawn.any():
        ax.hlines(reference[drawn], x[drawn] - 0.4, x[drawn] + 0.4, colors="black", linestyles="--", lw=1.2,
                  label="no-learning reference of the same images\n(stand-ins: nearest class mean on raw pixels;\n"
                        "real images: 5 × chance)")
    for xi in x[np.isnan(mean)]:
        ax.annotate("not measured", (xi, 0), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7, rotation=90, color="#555555")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("top-1 accuracy (%), this run")
    top = np.nanmax(np.concatenate([mean + sd, reference, [1.0]]))
    ax.set_ylim(0, min(100.0, 1.15 * top))  # from zero: a cut axis would exaggerate the differences
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def _not_informative(gain_table: pd.DataFrame) -> np.ndarray:
    """Rows whose reading is "not informative" (or, in a frame without readings, whose arm did not learn)."""
    if "reading" in gain_table:
        return (gain_table["reading"] == "not_informative").to_numpy()
    return ~gain_table["learned"].astype(bool).to_numpy()


FOREST_GREY = "#9a9a9a"


def forest(gain_table: pd.DataFrame, *, title: str = "paired gains (points of top-1), 95 % CI",
           label: str = "comparison", ax: plt.Axes | None = None) -> plt.Axes:
    """A forest plot of the comparisons of :func:`kesl_utils.tables.gains`, one row each.

    This run's mean paired difference is a dot with its 95 % interval as a horizontal error bar; the
    paper's gain is a diamond; a vertical line marks zero. A comparison that reads "not informative"
    is drawn grey with a hollow dot, its interval as a hatched band, and annotated; a comparison with
    a single seed has no bar, one not measured only its paper diamond and the words "not measured".
    ``label``: the column naming the rows.
    """
    n = len(gain_table)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.55 * n + 1.4))
    y = np.arange(n)
    mean = gain_table["this_run"].to_numpy(float)
    low, high = gain_table["ci_low"].to_numpy(float), gain_table["ci_high"].to_numpy(float)
    flagged = _not_informative(gain_table)
    ax.axvline(0, color="black", lw=0.8, zorder=1)
    shown = ~flagged & ~np.isnan(mean)
    ax.errorbar(mean[shown], y[shown], xerr=np.nan_to_num(np.vstack([mean - low, high - mean])[:, shown]),
                fmt="o", color=RUN_COLOUR, capsize=3, zorder=3, label="this run: mean, 95 % CI")
    for yi, m, lo, hi in zip(y[flagged], mean[flagged], low[flagged], high[flagged]):
        if not np.isnan(lo):
            ax.add_patch(Rectangle((lo, yi - 0.18), hi - lo, 0.36, facecolor="none", edgecolor=FOREST_GREY,
                                   hatch="///", lw=0.8, zorder=2))
        ax.plot([m], [yi], "o", mfc="white", mec=FOREST_GREY, zorder=3)
        ax.annotate("not informative", (m if np.isnan(hi) else hi, yi), xytext=(6, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=7, color="#555555")
    for yi, p in zip(y[np.isnan(mean)], gain_table["paper"].to_numpy(float)[np.isnan(mean)]):
        ax.annotate("not measured", (0 if np.isnan(p) else p, yi), xytext=(8, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=7, color="#555555")
    ax.plot(gain_table["paper"].to_numpy(float), y, "D", color="#d62728", ms=6, zorder=4, label="paper's gain")
    ax.set_yticks(y, gain_table[label])
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("difference in top-1 (points)")
    ax.set_title(title, pad=30)
    handles, _ = ax.get_legend_handles_labels()
    if flagged.any():
        handles.append(Patch(facecolor="none", edgecolor=FOREST_GREY, hatch="///",
                             label="not informative: an arm is below the no-learning reference"))
    ax.legend(handles=handles, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _metric_by_epoch(runs: list[list[dict]], metric: str) -> pd.DataFrame:
    """The epochs at which ``metric`` was recorded, a row each (sorted), one column per run that recorded it.

    A test metric is in a history entry only where the test set was evaluated (every ``eval_every`` epochs, or
    only the last epoch), so any epoch counts, not the first; runs are aligned by epoch."""
    frames = []
    for history in runs:
        frame = pd.DataFrame(history)
        if history and "epoch" in frame and metric in frame:
            values = pd.to_numeric(frame.set_index("epoch")[metric], errors="coerce").dropna()
            if len(values):
                frames.append(values[~values.index.duplicated(keep="last")])
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, axis=1, ignore_index=True).sort_index()


#: What an axes says when no label recorded the metric at all.
NOT_EVALUATED = "not evaluated during training"


def training_curves(histories: dict[str, list[list[dict]]], *, metric: str = "train_top1",
                    ax: plt.Axes | None = None, last_epoch_gain: bool = True) -> plt.Axes:
    """One line per label (mean over its seeds) with a band of ± one sample sd; x is the epoch.

    ``histories`` maps a label to the per-epoch history lists of its runs (one list per seed),
    as stored in the run records. ``metric``: a key of the history (``train_top1``, ``test_top1``, …);
    only the epochs that recorded it are drawn (a test metric is recorded where the test set was evaluated,
    perhaps only at the last epoch), runs aligned by epoch. A label with a single such epoch is a marker with
    an error bar of ± one sample sd (a band would be invisible), several such labels side by side within
    ± 0.15 epoch of it; a label with none is left out, and if no label
    has the metric the axes say so (:data:`NOT_EVALUATED`). Colours follow the order of ``histories``, so
    two panels of the same curves match. Plot an accuracy: the training *loss* of CE, label smoothing and
    KESL are different objectives, and their values do not compare on one axis. ``last_epoch_gain``: each
    label says how much its mean rose over its last epoch (the plateau a budget is judged by), where its
    last two recorded epochs are consecutive; a rise over several epochs is not called a last epoch's.
    """
    from .comparison import signed  # at call time, as in this_run_accuracy: importing plots loads no scipy
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    epochs: set = set()
    recorded = {label: _metric_by_epoch(runs, metric) for label, runs in histories.items()}
    points = [label for label, stacked in recorded.items() if len(stacked) == 1]
    # single points at one epoch side by side, not on top of each other: within ± 0.15 epoch
    dodge = dict(zip(points, np.linspace(-0.15, 0.15, len(points)) if len(points) > 1 else [0.0]))
    for i, (label, stacked) in enumerate(recorded.items()):
        if stacked.empty:
            continue
        mean, std = stacked.mean(axis=1), stacked.std(axis=1).fillna(0)  # sample sd (n - 1); one seed: 0
        colour = f"C{i % 10}"
        epochs |= set(mean.index)
        if len(mean) == 1:
            ax.errorbar(mean.index + dodge[label], mean.values, yerr=std.values, fmt="o", ms=4, capsize=3,
                        color=colour, label=label)
            continue
        shown = label
        if last_epoch_gain and mean.index[-1] - mean.index[-2] == 1:
            shown = f"{label} (last epoch {signed(mean.iloc[-1] - mean.iloc[-2])})"
        ax.plot(mean.index, mean.values, marker="o", ms=3, color=colour, label=shown)
        ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.15)
    ax.set_xlabel("epoch")
    if 0 < len(epochs) <= 12:
        ax.set_xticks(sorted(epochs))
    else:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
    if not epochs:
        ax.text(0.5, 0.5, NOT_EVALUATED, transform=ax.transAxes, ha="center", va="center", color="#555555")
        ax.set_xticks([])
        ax.set_yticks([])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax


#: Axis labels of the history metrics the notebooks plot.
METRIC_LABELS = {"train_top1": "training top-1 (%)", "test_top1": "test top-1 (%)", "train_loss": "training loss"}


def radial_layout(hierarchy, *, classes_outside: bool = True) -> dict[str, tuple[float, float]]:
    """Polar coordinates ``{node: (angle, radius)}`` for drawing ``hierarchy``.

    Classes (and any other leaves) are spaced evenly on the circle in depth-first order of the
    canonical spanning tree — for a tree, ``hierarchy.leaf_order()``; a node sits midway between
    the angles of its first and last canonical child, at radius = depth (classes at the maximum
    depth if ``classes_outside``). DAG edges off that tree are ignored.
    """
    h = hierarchy
    classes = set(h.classes)
    children = h.canonical_children()
    slots, stack = [], [h.root]
    while stack:
        node = stack.pop()
        if node in classes or not children[node]:
            slots.append(node)
        stack.extend(reversed(children[node]))
    angle = {n: 2 * np.pi * k / len(slots) for k, n in enumerate(slots)}
    depth = {n: h.depth(n) for n in h.graph}
    for node in sorted(h.graph, key=lambda n: -depth[n]):
        if node not in angle:
            below = [angle[c] for c in children[node]]
            angle[node] = (min(below) + max(below)) / 2
    max_depth = max(depth.values())
    return {n: (angle[n], float(max_depth if classes_outside and n in classes else depth[n]))
            for n in h.graph}


def radial_dendrogram(hierarchy, group_depth: int, ax: plt.Axes, title: str, label_size: float = 5.5) -> plt.Axes:
    """Draw ``hierarchy`` as a radial dendrogram: root in the centre, one ring per depth, classes outside.

    Edges are elbows (an arc on the parent's ring, then a radial spoke) along each node's canonical
    (shortest-path) parent; in a DAG the other hypernym edges are dashed red chords. Classes and edges
    are coloured by their ancestor at ``group_depth`` (e.g. 1 = order in the CUB taxonomy).
    """
    h = hierarchy
    polar = radial_layout(h)

    def to_xy(angle, radius):
        return radius * np.cos(angle), radius * np.sin(angle)

    groups = sorted({h.path_from_root(c)[group_depth] for c in h.classes if h.depth(c) >= group_depth}, key=h.name)
    # Dark shades first; grey is kept for nodes above the colouring depth.
    palette = [c for c in plt.get_cmap("tab20").colors[0::2] + plt.get_cmap("tab20").colors[1::2] if len(set(c)) > 1]
    colour_of = dict(zip(groups, itertools.cycle(palette)))  # more groups than shades: shades repeat
    segments, colours, extra = [], [], []
    # edges in sorted order, not the graph's insertion order: the same hierarchy read through another route (WordNet
    # from Debian's files or from the PyPI sdist lists hypernyms in its own order) draws the same figure, byte for byte
    for parent, child in sorted(h.graph.edges()):
        (a_p, r_p), (a_c, r_c) = polar[parent], polar[child]
        if h.parent(child) != parent:
            extra.append([to_xy(a_p, r_p), to_xy(a_c, r_c)])
            continue
        arc = np.linspace(a_p, a_c, max(2, int(abs(a_c - a_p) / 0.02)))
        segments.append([to_xy(a, r_p) for a in arc] + [to_xy(a_c, r_c)])
        path = h.path_from_root(child)
        colours.append(colour_of.get(path[group_depth], "0.6") if len(path) > group_depth else "0.6")
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=0.8))
    ax.add_collection(LineCollection(extra, colors="tab:red", linewidths=0.6, linestyles="--", alpha=0.5))
    outer = max(r for _, r in polar.values())
    for c, name in zip(h.classes, h.class_names()):
        angle, _ = polar[c]
        degrees = np.degrees(angle)
        flip = 90 < degrees % 360 < 270
        ax.text(*to_xy(angle, outer + 0.15), name, fontsize=label_size, va="center",
                ha="right" if flip else "left", rotation=degrees + 180 if flip else degrees, rotation_mode="anchor")
    ax.set_xlim(-1.45 * outer, 1.45 * outer)
    ax.set_ylim(-1.45 * outer, 1.45 * outer)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    ax.legend(handles=[Patch(color=colour_of[g], label=h.name(g)) for g in groups], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax
