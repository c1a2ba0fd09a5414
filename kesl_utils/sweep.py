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
with its 95 % t-interval; the three hypotheses are paired contrasts across cells, judged from their
intervals (:func:`hypotheses`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import experiments, paths, profiles
from .config import Config
from .profiles import Grid
from .tables import Records, index_records, paired_stats, seed_values, to_markdown
from .table_specs import BASELINE, OURS


METHODS = {"CE": BASELINE, "KESL": OURS}


def grid(profile: str) -> Grid:
    """The sweep grid of ``profile`` (its :attr:`kesl_utils.profiles.Profile.sweep`)."""
    chosen = profiles.profile(profile).sweep
    if chosen is None:
        raise ValueError(f"profile {profile!r} has no sweep grid (kesl_utils.profiles.Profile.sweep)")
    return chosen


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


def gains(records: Records, profile: str, *, seeds=None) -> pd.DataFrame:
    """One row per cell: CE and KESL means, and the KESL − CE gain paired by seed in top-1 (points) and in
    mistake severity (d_ij; negative = KESL's mistakes are closer relatives), each with 95 % interval and p."""
    index = index_records(records)
    rows = []
    for alignment, n, noise in grid(profile).cells():
        cell = cell_configs(profile, alignment, n, noise, seeds=seeds)
        row = {"alignment": alignment, "n_per_class": n, "label_noise": noise}
        for metric, short in (("top1", "top1"), ("mistake_severity", "severity")):
            ce = seed_values(cell["CE"], index, metric)
            kesl = seed_values(cell["KESL"], index, metric)
            stats_row = paired_stats((kesl - ce).dropna())
            row.update({f"ce_{short}": ce.mean(), f"kesl_{short}": kesl.mean(), f"gain_{short}": stats_row["mean"],
                        f"gain_{short}_low": stats_row["ci_low"], f"gain_{short}_high": stats_row["ci_high"],
                        f"gain_{short}_p": stats_row["p_value"], "n_seeds": stats_row["n"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _sign(low: float, high: float) -> str:
    if np.isnan(low):
        return "untested"
    return "positive" if low > 0 else "negative" if high < 0 else "zero"


def verdict_paragraph(table: pd.DataFrame) -> str:
    """Where the top-1 gain is significantly positive, significantly negative, or indistinguishable from zero."""
    groups = {"positive": [], "negative": [], "zero": [], "untested": []}
    for row in table.itertuples(index=False):
        where = f"alignment {row.alignment:g}, {row.n_per_class} images/class, noise {row.label_noise:.0%}"
        groups[_sign(row.gain_top1_low, row.gain_top1_high)].append(
            f"{where} ({row.gain_top1:+.1f} [{row.gain_top1_low:+.1f}, {row.gain_top1_high:+.1f}])")
    parts = [f"KESL − CE in top-1 is **significantly positive** (95 % interval above zero) in "
             f"{len(groups['positive'])} of {len(table)} cells" + (": " + "; ".join(groups["positive"]) if groups["positive"] else "") + ".",
             f"It is **significantly negative** in {len(groups['negative'])}" +
             (": " + "; ".join(groups["negative"]) if groups["negative"] else "") + ".",
             f"It is **indistinguishable from zero** at this budget in {len(groups['zero'])}" +
             (": " + "; ".join(groups["zero"]) if groups["zero"] else "") + "."]
    if groups["untested"]:
        parts.append(f"{len(groups['untested'])} cell(s) have fewer than two paired seeds: no interval.")
    return " ".join(parts)


def _per_seed_gain(index, configs_ce, configs_kesl) -> pd.Series:
    return seed_values(configs_kesl, index, "top1") - seed_values(configs_ce, index, "top1")


def hypotheses(records: Records, profile: str, *, seeds=None) -> pd.DataFrame:
    """The three hypotheses stated before the run, each a paired contrast of gains (per seed), judged at 5 %.

    1. *Gain grows as alignment rises*: gain at the highest alignment − gain at alignment 0, averaged over the
       images-per-class values (no label noise).
    2. *Gain shrinks as data grows*: gain at the fewest images per class − gain at the most, averaged over the
       alignments (no label noise).
    3. *Gain grows with label noise*: gain with label noise − gain without, averaged over the noisy cells.
    Each contrast is > 0 if the hypothesis holds; "held" needs its 95 % interval above zero.
    """
    g = grid(profile)
    index = index_records(records)

    def gain(alignment, n, noise):
        cell = cell_configs(profile, alignment, n, noise, seeds=seeds)
        return _per_seed_gain(index, cell["CE"], cell["KESL"])

    top, bottom = max(g.alignments), min(g.alignments)
    few, many = min(g.n_per_class), max(g.n_per_class)
    contrasts = {
        "gain grows as alignment rises": sum(gain(top, n, 0.0) - gain(bottom, n, 0.0) for n in g.n_per_class)
        / len(g.n_per_class),
        "gain shrinks as data grows": sum(gain(a, few, 0.0) - gain(a, many, 0.0) for a in g.alignments)
        / len(g.alignments),
        "gain grows with label noise": sum(gain(a, n, g.noise) - gain(a, n, 0.0) for a, n in g.noisy)
        / len(g.noisy),
    }
    rows = []
    for name, values in contrasts.items():
        s = paired_stats(values.dropna())
        held = ("held at 5 %" if s["ci_low"] > 0 else "contradicted at 5 % (the opposite holds)"
                if s["ci_high"] < 0 else "not shown at this budget (the interval includes zero)") \
            if s["n"] >= 2 else "untested (fewer than two seeds)"
        rows.append({"hypothesis": name, "contrast": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                     "p_value": s["p_value"], "n_seeds": s["n"], "verdict": held})
    return pd.DataFrame(rows)


def format_gains(table: pd.DataFrame) -> pd.DataFrame:
    """A display copy of :func:`gains`."""
    return pd.DataFrame({
        "alignment": [f"{v:g}" for v in table["alignment"]], "images/class": table["n_per_class"],
        "label noise": [f"{v:.0%}" for v in table["label_noise"]],
        "CE top-1": [f"{v:.1f}" for v in table["ce_top1"]], "KESL top-1": [f"{v:.1f}" for v in table["kesl_top1"]],
        "gain top-1 [95 % CI]": [f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]" for m, lo, hi in
                                 zip(table["gain_top1"], table["gain_top1_low"], table["gain_top1_high"])],
        "gain severity [95 % CI]": [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, lo, hi in
                                    zip(table["gain_severity"], table["gain_severity_low"],
                                        table["gain_severity_high"])],
        "seeds": table["n_seeds"].astype(int),
    })


def format_hypotheses(tested: pd.DataFrame) -> pd.DataFrame:
    """A display copy of :func:`hypotheses`."""
    return pd.DataFrame({"hypothesis": tested["hypothesis"],
                         "contrast [95 % CI]": [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, lo, hi in
                                                zip(tested["contrast"], tested["ci_low"], tested["ci_high"])],
                         "p": [f"{p:.2g}" for p in tested["p_value"]], "seeds": tested["n_seeds"],
                         "verdict": tested["verdict"]})


def write(table: pd.DataFrame, tested: pd.DataFrame, *, profile: str, results_dir) -> dict:
    """``<results_dir>/tables/when_kesl_helps.{csv,md,tex}`` and ``when_kesl_helps_hypotheses.csv``."""
    folder = paths.tables_dir(results_dir)
    shown = format_gains(table)
    md = (f"### When does KESL help? KESL − CE on the CUB stand-in — profile `{profile}`\n\n" + to_markdown(shown)
          + "\n" + verdict_paragraph(table) + "\n\n**Hypotheses**\n\n" + to_markdown(format_hypotheses(tested)))
    out = {"csv": folder / "when_kesl_helps.csv", "hypotheses_csv": folder / "when_kesl_helps_hypotheses.csv",
           "md": folder / "when_kesl_helps.md", "tex": folder / "when_kesl_helps.tex"}
    paths.atomic_write_text(out["csv"], table.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["hypotheses_csv"], tested.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["md"], md)
    paths.atomic_write_text(out["tex"], shown.to_latex(index=False, escape=True, caption=f"KESL − CE over the "
                                                       f"generator's knobs (profile {profile})",
                                                       label="tab:when-kesl-helps"))
    return out


def heatmap(table: pd.DataFrame, metric: str = "top1", noise: float = 0.0, ax=None):
    """Alignment × images per class, colour = the KESL − CE gain, each cell annotated with mean and 95 % interval."""

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
        text[i][j] = f"{mean:+.{digits}f}\n[{low:+.{digits}f}, {high:+.{digits}f}]"
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    # Blue = KESL better: more accuracy, or (for severity) closer mistakes.
    cmap = "RdBu" if metric == "top1" else "RdBu_r"
    image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, origin="lower", aspect="auto")
    for i in range(len(alignments)):
        for j in range(len(ns)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_yticks(range(len(alignments)), [f"{a:g}" for a in alignments])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("alignment")
    label = "top-1 gain (points)" if metric == "top1" else "mistake-severity change (d)"
    ax.set_title(f"KESL − CE, {label}, label noise {noise:.0%}", fontsize=9)
    plt.colorbar(image, ax=ax, shrink=0.8)
    return ax


def lines(table: pd.DataFrame, metric: str = "top1", noise: float = 0.0, ax=None):
    """The gain against images per class, one line per alignment, error bars the 95 % intervals."""

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    part = table[table["label_noise"] == noise]
    for alignment, group in part.groupby("alignment"):
        group = group.sort_values("n_per_class")
        mean = group[f"gain_{metric}"].to_numpy(float)
        errors = np.nan_to_num(np.vstack([mean - group[f"gain_{metric}_low"].to_numpy(float),
                                          group[f"gain_{metric}_high"].to_numpy(float) - mean]))
        ax.errorbar(group["n_per_class"], mean, yerr=errors, marker="o", capsize=3, label=f"alignment {alignment:g}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(part["n_per_class"].unique()), [str(n) for n in sorted(part["n_per_class"].unique())])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("KESL − CE, " + ("top-1 (points)" if metric == "top1" else "mistake severity (d)"))
    ax.set_title(f"label noise {noise:.0%}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
