"""When does KESL help? A map of the KESL − CE gain over the synthetic generator's knobs.

The paper reports one number per setting. Whether knowledge-embedded soft labels help depends on how
far the hierarchy matches what the images look like, on how much data there is and on how noisy the
labels are — and only a generator with those knobs can measure that:

* **alignment** — the share of classes whose appearance follows the hierarchy (0: the hierarchy carries
  no visual information; :class:`kesl_utils.data.SyntheticHierarchical`);
* **images per class** — scarce to plentiful training data;
* **label noise** — the share of training labels replaced by a class drawn uniformly among the others.

Each cell of the grid trains CE and KESL (the paper's setting) on the CUB stand-in with the profile's
protocol (pretrained backbone, fine-tuned), seeds paired. A cell's gain is the paired mean difference
with its 95 % t-interval and its reading (:func:`kesl_utils.comparison.reading`: the paper has no value
for a cell, so the reading says better, worse or no difference, unless an arm is below the raw-pixel
nearest-class-mean reference of the cell's images); the three hypotheses are paired contrasts across
cells, read by the same function (:func:`hypotheses`).
"""
from __future__ import annotations

import os
from typing import Optional, Union

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
import numpy as np
import pandas as pd

from . import comparison, experiments, profiles
from .comparison import READINGS, Arm, interval_text, p_text, paired_stats, reading, signed
from .config import Config
from .profiles import Grid
from .tables import Records, References, index_records, no_learning_reference, seed_values
from .table_specs import BASELINE, OURS

#: The file name (no suffix) of the sweep's tables under a results folder's ``tables/``.
TABLE_NAME = "when_kesl_helps"

METHODS = {"CE": BASELINE, "KESL": OURS}


def grid(profile: str) -> Grid:
    """The sweep grid of ``profile`` (its :attr:`kesl_utils.profiles.Profile.sweep`)."""
    return profiles.profile(profile).part("sweep")


def cell_configs(profile: str, alignment: float, n_per_class: int, noise: float, *, seeds=None) -> dict:
    """``{"CE": [configs per seed], "KESL": [...]}`` of one cell, on the synthetic CUB stand-in."""
    seeds = experiments.profile_seeds(profile) if seeds is None else tuple(seeds)
    out = {}
    for label, overrides in METHODS.items():
        base = experiments.profile_config(profile, "cub", alignment=alignment, n_per_class=n_per_class,
                                          label_noise=noise, **overrides)
        if base.source != "synthetic":
            raise ValueError("the sweep turns the synthetic generator's knobs; it needs a synthetic profile "
                             f"(smoke or quick), not {profile!r}")
        out[label] = experiments.with_seeds([base], seeds)
    return out


def all_configs(profile: str, *, seeds=None) -> list[Config]:
    """Every run of the sweep, each once, seed-major."""
    every = [c for cell in grid(profile).cells() for group in cell_configs(profile, *cell, seeds=seeds).values()
             for c in group]
    return experiments.unique(sorted(every, key=lambda c: c.seed))


def _cell_arms(cell: dict, index, references: Optional[References]) -> list[Arm]:
    """CE and KESL of one cell as the reading sees them: mean top-1 and the cell's no-learning reference."""
    return [Arm(seed_values(configs, index).mean(),
                no_learning_reference([c for c in configs if c.run_id in index], references))
            for configs in (cell["CE"], cell["KESL"])]


def gains(records: Records, profile: str, *, seeds=None, references: Optional[References] = None) -> pd.DataFrame:
    """One row per cell: CE and KESL means, and the KESL − CE gain paired by seed in top-1 (points) and in
    mistake severity (d_ij; negative = KESL's mistakes are closer relatives), each with 95 % interval, p
    and reading (``top1_reading``/``severity_reading``: keys of :data:`~kesl_utils.comparison.READINGS`;
    lower severity reads as better). ``reference``: the cell's nearest-class-mean top-1 (``references``,
    keyed by :func:`kesl_utils.ncm.data_key`; NaN where none is stored)."""
    index = index_records(records)
    rows = []
    for alignment, n, noise in grid(profile).cells():
        cell = cell_configs(profile, alignment, n, noise, seeds=seeds)
        arms = _cell_arms(cell, index, references)
        row = {"alignment": alignment, "n_per_class": n, "label_noise": noise, "reference": arms[0].reference}
        for metric, short, higher_is_better in (("top1", "top1", True), ("mistake_severity", "severity", False)):
            ce = seed_values(cell["CE"], index, metric)
            kesl = seed_values(cell["KESL"], index, metric)
            paired = paired_stats((kesl - ce).dropna())
            read = reading(paired.interval, paired.n, arms=arms, higher_is_better=higher_is_better)
            row.update({f"ce_{short}": ce.mean(), f"kesl_{short}": kesl.mean(), f"gain_{short}": paired.mean,
                        f"gain_{short}_low": paired.ci_low, f"gain_{short}_high": paired.ci_high,
                        f"gain_{short}_p": paired.p_value, f"{short}_reading": read.key, "n_seeds": paired.n})
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_paragraph(table: pd.DataFrame) -> str:
    """The cells grouped by the reading of their top-1 gain (KESL − CE), in the order of the vocabulary."""
    groups: dict[str, list[str]] = {}
    for row in table.itertuples(index=False):
        where = f"alignment {row.alignment:g}, {row.n_per_class} images/class, noise {row.label_noise:.0%}"
        numbers = " ".join(filter(None, (signed(row.gain_top1), interval_text(row.gain_top1_low,
                                                                                row.gain_top1_high))))
        groups.setdefault(row.top1_reading, []).append(f"{where} ({numbers})" if numbers else where)
    parts = [f"KESL − CE in top-1, {len(table)} cells."]
    for key in READINGS:
        if key in groups:
            cells = groups[key]
            parts.append(f"**{READINGS[key][0].upper() + READINGS[key][1:]}** in {len(cells)} of {len(table)}: "
                         + "; ".join(cells) + ".")
    return " ".join(parts)


def _per_seed_gain(index, configs_ce, configs_kesl) -> pd.Series:
    return seed_values(configs_kesl, index, "top1") - seed_values(configs_ce, index, "top1")


def contrasts(profile: str) -> dict[str, list[tuple[float, tuple[float, int, float]]]]:
    """The three hypotheses of :func:`hypotheses` as weighted sums of cell gains (KESL − CE in top-1, per seed):
    ``{hypothesis: [(weight, (alignment, images per class, label noise)), ...]}``, each positive if it holds.

    1. *Gain grows as alignment rises*: gain at the highest alignment − gain at the lowest, averaged over the
       images-per-class values (no label noise).
    2. *Gain shrinks as data grows*: gain at the fewest images per class − gain at the most, averaged over the
       alignments (no label noise).
    3. *Gain grows with label noise*: gain with label noise − gain without, averaged over the noisy cells.
    """
    g = grid(profile)
    top, bottom = max(g.alignments), min(g.alignments)
    few, many = min(g.n_per_class), max(g.n_per_class)

    def averaged(pairs):  # the mean over pairs of (gain of the first cell − gain of the second)
        return [(sign / len(pairs), cell) for pair in pairs for sign, cell in zip((1.0, -1.0), pair)]

    return {
        "gain grows as alignment rises": averaged([((top, n, 0.0), (bottom, n, 0.0)) for n in g.n_per_class]),
        "gain shrinks as data grows": averaged([((a, few, 0.0), (a, many, 0.0)) for a in g.alignments]),
        "gain grows with label noise": averaged([((a, n, g.noise), (a, n, 0.0)) for a, n in g.noisy]),
    }


def hypotheses(records: Records, profile: str, *, seeds=None, references: Optional[References] = None) -> pd.DataFrame:
    """The three hypotheses stated before the run (:func:`contrasts`), each a paired contrast of gains (per seed),
    read at 5 %.

    Each contrast is > 0 if the hypothesis holds. Its reading comes from
    :func:`~kesl_utils.comparison.reading` with no paper value and the arms of every cell it spans;
    ``held`` is true only where it reads "better" (the 95 % interval lies above zero, every arm informative).
    """
    index = index_records(records)
    rows = []
    for name, terms in contrasts(profile).items():
        spanned: list[Arm] = []
        values = 0
        for weight, cell_key in terms:
            cell = cell_configs(profile, *cell_key, seeds=seeds)
            spanned.extend(_cell_arms(cell, index, references))
            values = values + weight * _per_seed_gain(index, cell["CE"], cell["KESL"])
        s = paired_stats(values.dropna())
        read = reading(s.interval, s.n, arms=spanned)
        rows.append({"hypothesis": name, "contrast": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high,
                     "p_value": s.p_value, "n_seeds": s.n, "reading": read.key, "verdict": read.sentence,
                     "held": read.key == "better"})
    return pd.DataFrame(rows)


def format_gains(table: pd.DataFrame) -> pd.DataFrame:
    """A display copy of :func:`gains`."""
    def gain(metric, digits):
        return [" ".join(filter(None, (signed(m, digits), interval_text(lo, hi, digits)))) for m, lo, hi in
                zip(table[f"gain_{metric}"], table[f"gain_{metric}_low"], table[f"gain_{metric}_high"])]

    return pd.DataFrame({
        "alignment": [f"{v:g}" for v in table["alignment"]], "images/class": table["n_per_class"],
        "label noise": [f"{v:.0%}" for v in table["label_noise"]],
        "CE top-1": [f"{v:.1f}" for v in table["ce_top1"]], "KESL top-1": [f"{v:.1f}" for v in table["kesl_top1"]],
        "gain top-1 [95 % CI]": gain("top1", 1), "reading, top-1": [READINGS[k] for k in table["top1_reading"]],
        "gain severity [95 % CI]": gain("severity", 2),
        "reading, severity": [READINGS[k] for k in table["severity_reading"]],
        "seeds": table["n_seeds"].astype(int),
    })


def format_hypotheses(tested: pd.DataFrame) -> pd.DataFrame:
    """A display copy of :func:`hypotheses`."""
    return pd.DataFrame({"hypothesis": tested["hypothesis"],
                         "contrast [95 % CI]": [" ".join(filter(None, (signed(m, 2), interval_text(lo, hi, 2))))
                                                for m, lo, hi in zip(tested["contrast"], tested["ci_low"],
                                                                     tested["ci_high"])],
                         "p": [p_text(p) for p in tested["p_value"]], "seeds": tested["n_seeds"],
                         "reading of the contrast": tested["verdict"],
                         "held at 5 %": ["yes" if held else "no" for held in tested["held"]]})


def write(table: pd.DataFrame, tested: pd.DataFrame, *, profile: str, folder: Union[str, os.PathLike]) -> dict:
    """``<folder>/when_kesl_helps.{csv,md,tex}`` and ``when_kesl_helps_hypotheses.csv``
    (:func:`kesl_utils.comparison.write_study`)."""
    title = f"When does KESL help? KESL − CE on the CUB stand-in — profile `{profile}`"
    blocks = [comparison.DisplayTable(format_gains(table), label="tab:when-kesl-helps",
                                      caption=f"KESL − CE over the generator's knobs (profile {profile})"),
              verdict_paragraph(table),
              comparison.DisplayTable(format_hypotheses(tested), heading="Hypotheses",
                                      label="tab:when-kesl-helps-hypotheses",
                                      caption=f"The sweep's hypotheses (profile {profile})"),
              "A hypothesis is held at 5 % only where its contrast reads \"" + READINGS["better"] + "\": its 95 % "
              "interval lies above zero and every arm it spans beats the no-learning reference.",
              comparison.STATISTICS_NOTE]
    return comparison.write_study(folder, TABLE_NAME, profile=profile, title=title,
                                  numbers={"": table, "hypotheses": tested}, blocks=blocks)


def heatmap(table: pd.DataFrame, metric: str = "top1", noise: float = 0.0, ax=None):
    """Alignment × images per class, colour = the KESL − CE gain, each cell annotated with mean and 95 % interval;
    a cell whose reading is "not informative" is covered grey and hatched.

    The colour scale runs to the largest |interval bound| of the metric over the whole table (every noise level), so
    the panels of one metric share it and a gain looks strong only where it is large against what the intervals
    allow: scaled to the means alone, a null gain of 0.1 ± 1 would be drawn as saturated as the largest effect."""

    part = table[table["label_noise"] == noise]
    alignments = sorted(part["alignment"].unique())
    ns = sorted(part["n_per_class"].unique())
    values = np.full((len(alignments), len(ns)), np.nan)
    text = [["" for _ in ns] for _ in alignments]
    digits = 1 if metric == "top1" else 2
    for row in part.itertuples(index=False):
        i, j = alignments.index(row.alignment), ns.index(row.n_per_class)
        mean = getattr(row, f"gain_{metric}")
        low, high = getattr(row, f"gain_{metric}_low"), getattr(row, f"gain_{metric}_high")
        values[i, j] = mean
        text[i][j] = f"{signed(mean, digits)}\n{interval_text(low, high, digits)}"
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    bounds = np.abs(table[[f"gain_{metric}_low", f"gain_{metric}_high"]].to_numpy(float))
    means = np.abs(table[f"gain_{metric}"].to_numpy(float))
    limit = next((float(np.nanmax(v)) for v in (bounds, means) if np.isfinite(v).any() and np.nanmax(v) > 0), 1.0)
    # Blue = KESL better: more accuracy, or (for severity) closer mistakes.
    cmap = "RdBu" if metric == "top1" else "RdBu_r"
    image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, origin="lower", aspect="auto")
    for i in range(len(alignments)):
        for j in range(len(ns)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8)
    for row in part.itertuples(index=False):
        if getattr(row, f"{metric}_reading") == "not_informative":  # flagged as its table cell is
            i, j = alignments.index(row.alignment), ns.index(row.n_per_class)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#d9d9d9", edgecolor="#7f7f7f", hatch="///",
                                   alpha=0.8))
            ax.text(j, i + 0.35, "not informative", ha="center", va="center", fontsize=6, color="#555555")
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_yticks(range(len(alignments)), [f"{a:g}" for a in alignments])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("alignment")
    label = "top-1 gain (points)" if metric == "top1" else "mistake-severity change (d)"
    ax.set_title(f"KESL − CE, {label}, label noise {noise:.0%}", fontsize=9)
    plt.colorbar(image, ax=ax, shrink=0.8)
    return ax


def lines(table: pd.DataFrame, metric: str = "top1", noise: float = 0.0, ax=None):
    """The gain against images per class, one line per alignment, error bars the 95 % intervals; a point whose
    reading is "not informative" is drawn hollow and grey. An alignment keeps its colour in every panel (fixed by its
    rank among the table's alignments), and the lines are set slightly apart along x so that their bars do not hide
    one another (the ticks mark the true images per class)."""

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    every = sorted(table["alignment"].unique())
    part = table[table["label_noise"] == noise]
    for alignment, group in part.groupby("alignment"):
        rank = every.index(alignment)
        dodge = 2.0 ** (0.06 * (rank - (len(every) - 1) / 2))  # a few per cent of an octave on the log-2 axis
        group = group.sort_values("n_per_class")
        x = group["n_per_class"].to_numpy(float) * dodge
        mean = group[f"gain_{metric}"].to_numpy(float)
        errors = np.nan_to_num(np.vstack([mean - group[f"gain_{metric}_low"].to_numpy(float),
                                          group[f"gain_{metric}_high"].to_numpy(float) - mean]))
        ax.errorbar(x, mean, yerr=errors, marker="o", capsize=3, color=f"C{rank}", label=f"alignment {alignment:g}")
        flagged = (group[f"{metric}_reading"] == "not_informative").to_numpy()
        if flagged.any():  # flagged as their table cells are: grey, hollow
            ax.plot(x[flagged], mean[flagged], "o", mfc="white", mec="#7f7f7f", ms=8,
                    zorder=5, label="not informative" if "not informative" not in ax.get_legend_handles_labels()[1]
                    else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(part["n_per_class"].unique()), [str(n) for n in sorted(part["n_per_class"].unique())])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("KESL − CE, " + ("top-1 (points)" if metric == "top1" else "mistake severity (d)"))
    ax.set_title(f"label noise {noise:.0%}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
