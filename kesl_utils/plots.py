"""Figures for the table notebooks: paper vs this run, KESL gains (forest plot), training curves.

Plots read tables (:mod:`kesl_utils.tables`) and run histories; they compute nothing new. A figure
flags what its table flags: an arm that did not learn, or a comparison that reads "not informative"
(:func:`kesl_utils.comparison.reading`), is drawn grey and hatched and says so.
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


def paper_vs_this_run(table: pd.DataFrame, labels: Iterable[str], *, title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped bars: the paper's top-1 next to this run's mean (error bar: sample sd over seeds).

    ``table`` is :func:`kesl_utils.tables.build_table`'s frame. Rows without a "this run" value show
    only the paper bar; a reference row (nearest class mean, no learning) shows only this run's bar,
    outlined; an arm that stayed below 5 × chance (``learned`` false) or below the no-learning reference
    (``below_reference``) is drawn grey and hatched and annotated "did not learn", as its table cell is marked.
    """
    labels = list(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, table["paper"], width=0.4, color=PAPER_COLOUR, label="paper")
    learned = table["learned"].astype(bool).to_numpy() if "learned" in table else np.ones(len(table), bool)
    if "below_reference" in table:  # below the no-learning reference: flagged like an arm that did not learn
        learned &= ~table["below_reference"].astype(bool).to_numpy()
    reference = (table["kind"] == "reference").to_numpy() if "kind" in table else np.zeros(len(table), bool)
    ordinary = learned & ~reference
    sd = table["this_run_sd"].fillna(0).to_numpy()
    ax.bar(x[ordinary] + 0.2, table["this_run"].to_numpy()[ordinary], width=0.4, color=RUN_COLOUR,
           yerr=sd[ordinary], capsize=3, label="this run (mean, error bar: sample sd over seeds)")
    if reference.any():
        ax.bar(x[reference] + 0.2, table["this_run"].to_numpy()[reference], width=0.4, facecolor="white",
               edgecolor=RUN_COLOUR, linestyle="--", label="no learning: nearest class mean")
    if (~learned).any():
        values = table["this_run"].to_numpy()[~learned]
        ax.bar(x[~learned] + 0.2, values, width=0.4, yerr=sd[~learned], capsize=3,
               label="did not learn (< 5 × chance or < no-learning reference)", **NOT_LEARNED_STYLE)
        for xi, value in zip(x[~learned], values):
            ax.annotate("did not learn", (xi + 0.2, value), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, rotation=90, color="#555555")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("top-1 accuracy (%)")
    # From zero: the quick profile's accuracies are far below the paper's, and a cut axis would hide it.
    ax.set_ylim(0, 100)
    ax.set_title(title, pad=30)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def _not_informative(gain_table: pd.DataFrame) -> np.ndarray:
    """Rows whose reading is "not informative" (or, in a frame without readings, whose arm did not learn)."""
    if "reading" in gain_table:
        return (gain_table["reading"] == "not_informative").to_numpy()
    return ~gain_table["learned"].astype(bool).to_numpy()


def gains(gain_table: pd.DataFrame, *, title: str = "paired differences (points of top-1)",
          ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars per comparison: the paper's difference, and this run's mean paired difference
    with its 95 % confidence interval (t); a comparison that is not informative is grey and hatched."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 * len(gain_table) + 1.4))
    y = np.arange(len(gain_table))
    ax.barh(y + 0.2, gain_table["paper"], height=0.4, color=PAPER_COLOUR, label="paper")
    mean = gain_table["this_run"].to_numpy(float)
    low = (mean - gain_table["ci_low"].to_numpy(float))
    high = (gain_table["ci_high"].to_numpy(float) - mean)
    errors = np.nan_to_num(np.vstack([low, high]))
    flagged = _not_informative(gain_table)
    ax.barh(y[~flagged] - 0.2, mean[~flagged], height=0.4, color=RUN_COLOUR, xerr=errors[:, ~flagged], capsize=3,
            label="this run (mean, 95 % CI)")
    if flagged.any():
        ax.barh(y[flagged] - 0.2, mean[flagged], height=0.4, xerr=errors[:, flagged], capsize=3,
                label="not informative: an arm is below the no-learning reference", **NOT_LEARNED_STYLE)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, gain_table["comparison"])
    ax.invert_yaxis()
    ax.set_xlabel("difference in top-1 (points)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return ax


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


def training_curves(histories: dict[str, list[list[dict]]], *, metric: str = "train_loss",
                    ax: plt.Axes | None = None) -> plt.Axes:
    """One line per label (mean over its seeds) with a band of ± one sample sd; x is the epoch.

    ``histories`` maps a label to the per-epoch history lists of its runs (one list per seed),
    as stored in the run records.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, runs in histories.items():
        frames = [pd.DataFrame(h).set_index("epoch")[metric] for h in runs if h]
        if not frames:
            continue
        stacked = pd.concat(frames, axis=1)
        mean, std = stacked.mean(axis=1), stacked.std(axis=1).fillna(0)
        line, = ax.plot(mean.index, mean.values, marker="o", ms=3, label=label)
        ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


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
    for parent, child in h.graph.edges():
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
