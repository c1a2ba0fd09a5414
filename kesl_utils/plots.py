"""Figures for the table notebooks: paper vs this run, KESL gains, training curves.

Plots read tables (:mod:`kesl_utils.tables`) and run histories; they compute nothing new.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import paths

PAPER_COLOUR = "#9e9e9e"
RUN_COLOUR = "#1f77b4"


def save_figure(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``<results>/figures/<name>.png`` (atomically) and return the path."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return paths.atomic_write_bytes(paths.figures_dir() / f"{name}.png", buffer.getvalue())


def paper_vs_this_run(table: pd.DataFrame, labels: Iterable[str], *, title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped bars: the paper's top-1 next to this run's mean ± std (error bar) for each row.

    Rows without a "this run" value show only the paper bar.
    """
    labels = list(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, table["paper"], width=0.4, color=PAPER_COLOUR, label="paper")
    ax.bar(x + 0.2, table["this_run"], width=0.4, color=RUN_COLOUR,
           yerr=table["this_run_std"].fillna(0), capsize=3, label="this run (mean ± std over seeds)")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("top-1 accuracy (%)")
    finite = pd.concat([table["paper"], table["this_run"]]).dropna()
    if len(finite):
        ax.set_ylim(max(0.0, finite.min() - 10), min(100.0, finite.max() + 5))
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


def gains(gain_table: pd.DataFrame, *, title: str = "KESL − baseline",
          ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of the KESL gain in points: paper vs this run (paired over seeds, ± std)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 * len(gain_table) + 1.4))
    y = np.arange(len(gain_table))
    ax.barh(y + 0.2, gain_table["paper"], height=0.4, color=PAPER_COLOUR, label="paper")
    ax.barh(y - 0.2, gain_table["this_run"], height=0.4, color=RUN_COLOUR,
            xerr=gain_table["this_run_std"].fillna(0), capsize=3, label="this run")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, gain_table["comparison"])
    ax.set_xlabel("top-1 difference (points)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return ax


def training_curves(histories: dict[str, list[list[dict]]], *, metric: str = "train_loss",
                    ax: plt.Axes | None = None) -> plt.Axes:
    """One line per label (mean over its seeds) with a band of ± one std; x is the epoch.

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
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
