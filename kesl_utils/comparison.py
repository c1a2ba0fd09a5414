"""How two arms are compared, and what a comparison is allowed to say — for every study.

Every study of the project (the paper tables, the leaderboard, the sweep, the tutorial) compares
two arms trained on the same images, paired by seed: the pairing removes what the two runs share
(on the synthetic profiles the seed also draws the stand-in dataset). This module holds, once:

* the statistics — :func:`summary` (mean, sample sd, n) and :func:`paired_stats` (mean difference,
  sample sd, n, 95 % t-interval with n − 1 degrees of freedom, two-sided paired t-test p);
* the reading — :func:`reading`, the one function that turns a paired interval into words, and
  :data:`READINGS`, its whole vocabulary;
* the formatting helpers (:func:`mean_sd`, :func:`signed`, :func:`interval_text`, :func:`p_text`,
  :func:`to_markdown`) and the one writer of a study's csv, md and tex files (:func:`write_study`).

It imports neither torch nor the trainer: a table is read and written from numbers alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import pandas as pd
from scipy import stats

from . import paths

# -- statistics --------------------------------------------------------------------------------------


def summary(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n − 1) and count of the non-missing ``values``.

    The sd is NaN for a single value and everything is NaN (count 0) for none.
    """
    values = pd.Series(values if isinstance(values, pd.Series) else list(values), dtype=float).dropna()
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if n > 1 else math.nan, n


@dataclass(frozen=True)
class Paired:
    """The paired statistics of a set of per-seed differences (B − A).

    mean, sd (sample, n − 1), n; ``ci_low``/``ci_high``: the 95 % t-interval of the mean
    (n − 1 degrees of freedom); ``p_value``: the two-sided paired t-test. With fewer than two
    differences the interval and p are NaN (and the sd, with one).
    """

    mean: float
    sd: float
    n: int
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def interval(self) -> tuple[float, float]:
        return self.ci_low, self.ci_high

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def paired_stats(differences: Iterable[float]) -> Paired:
    """:class:`Paired` statistics of ``differences`` (NaNs dropped).

    A one-sample t-interval of a mean is the same formula, so this also serves for "the mean of a
    metric over seeds, with its 95 % interval".
    """
    mean, sd, n = summary(differences)
    low = high = p_value = math.nan
    if n >= 2:
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        if sd == 0:  # every seed gave the same difference: no spread, p is 1 at zero, else 0
            p_value = 1.0 if mean == 0 else 0.0
        else:
            p_value = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return Paired(mean, sd, n, low, high, p_value)


# -- the reading ---------------------------------------------------------------------------------------
#: Every sentence a comparison can be read as, by key. Nothing else in the package words a verdict.
READINGS: dict[str, str] = {
    # before any interval
    "missing": "not measured in this run",
    "not_informative": "not informative: an arm is below the no-learning reference",
    "reference_missing": "no reading: the no-learning reference of these images is missing",
    "single": "a single seed: no interval, no reading",
    # against the paper's gain (non-zero): "gain"/"loss" is the direction the paper reports
    "agrees": "agrees with the paper",
    "smaller_gain": "a significant gain, smaller than the paper's",
    "larger_gain": "a significant gain, larger than the paper's",
    "ruled_out_gain": "no gain detected; a gain of the paper's size is ruled out",
    "smaller_loss": "a significant loss, smaller than the paper's",
    "larger_loss": "a significant loss, larger than the paper's",
    "ruled_out_loss": "no loss detected; a loss of the paper's size is ruled out",
    "inconclusive": "inconclusive at this budget",
    "opposite": "opposite direction, significant at 5 %",
    # against a paper that reports no difference (a gain of exactly 0)
    "no_difference_as_paper": "no difference detected, as the paper reports",
    "gain_paper_none": "a significant gain, where the paper reports none",
    "loss_paper_none": "a significant loss, where the paper reports none",
    # no paper value (the leaderboard, the sweep, the tutorial)
    "better": "significantly better at 5 %",
    "worse": "significantly worse at 5 %",
    "no_difference": "no difference detected at this budget",
}

#: The readings whose interval says something about the method (the others say why it cannot).
INTERVAL_READINGS = tuple(k for k in READINGS if k not in ("missing", "not_informative", "reference_missing",
                                                            "single"))


class Arm(NamedTuple):
    """One arm of a comparison as the reading needs it: its mean top-1 (%) and the top-1 (%) of a
    classifier that learns nothing on the same images (the raw-pixel nearest class mean on the
    synthetic stand-ins). ``reference`` ``None``: no reference applies (no check); NaN: one applies
    but is missing."""

    top1: float
    reference: Optional[float]


@dataclass(frozen=True)
class Reading:
    """A key of :data:`READINGS` and its sentence (``str(reading)`` is the sentence)."""

    key: str

    @property
    def sentence(self) -> str:
        return READINGS[self.key]

    @property
    def informative(self) -> bool:
        """The interval says something about the method (not missing, single, or below a reference)."""
        return self.key in INTERVAL_READINGS

    def __str__(self) -> str:
        return self.sentence


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def reading(interval: tuple[float, float], n: int, *, paper: Optional[float] = None, arms: Iterable = (),
            higher_is_better: bool = True) -> Reading:
    """What a paired comparison (B − A) may be read as: one key of :data:`READINGS`.

    interval: the 95 % interval ``(low, high)`` of the mean difference (NaN with fewer than two
        seeds). n: the number of paired seeds (0: nothing measured).
    paper: the paper's value of the same difference; ``None`` or NaN: the paper has none.
    arms: :class:`Arm` ``(top1, reference)`` pairs, one per arm (of every cell a contrast spans).
    higher_is_better: the metric's direction; ``False`` (mistake severity, ECE) mirrors the interval
        and the paper's value, so that "gain", "better" always mean an improvement.

    The rules, first match wins:

    1. n = 0: ``missing``.
    2. An arm's top-1 below its reference: ``not_informative`` (it learned less than a classifier
       that learns nothing; whatever the interval says is about the budget, not the method).
    3. An arm whose reference applies but is missing (NaN): ``reference_missing``.
    4. n = 1: ``single``.
    5. With a paper value p ≠ 0, in the paper's direction (for p < 0 the interval and p are mirrored,
       and the words say "loss" instead of "gain"): significant (the interval excludes 0) with p
       inside it: ``agrees``; significant with p outside: ``smaller_*``/``larger_*``; the interval
       contains 0 but not p: ``ruled_out_*``; both: ``inconclusive``; significant the other way:
       ``opposite``.
    6. With p = 0 (the paper reports no difference): the interval contains 0:
       ``no_difference_as_paper``; else ``gain_paper_none``/``loss_paper_none``.
    7. Without a paper value: ``better``/``worse`` where the interval excludes 0, else
       ``no_difference``.

    Bounds are inclusive: p on the interval's edge is inside; "significant" needs 0 strictly outside.
    """
    if n == 0:
        return Reading("missing")
    arms = [Arm(*arm) for arm in arms]
    if any(not _missing(a.reference) and not _missing(a.top1) and a.top1 < a.reference for a in arms):
        return Reading("not_informative")
    if any(a.reference is not None and _missing(a.reference) for a in arms):
        return Reading("reference_missing")
    low, high = (float(v) for v in interval)
    if n < 2 or math.isnan(low) or math.isnan(high):
        return Reading("single")
    if not higher_is_better:
        low, high = -high, -low
        paper = None if _missing(paper) else -paper
    if _missing(paper):
        return Reading("better" if low > 0 else "worse" if high < 0 else "no_difference")
    if paper == 0:
        return Reading("gain_paper_none" if low > 0 else "loss_paper_none" if high < 0 else "no_difference_as_paper")
    word = "gain" if paper > 0 else "loss"
    if paper < 0:  # mirror: the paper's direction becomes "up"
        low, high, paper = -high, -low, -paper
    inside = low <= paper <= high
    if high < 0:
        return Reading("opposite")
    if low > 0:
        return Reading("agrees" if inside else f"larger_{word}" if paper < low else f"smaller_{word}")
    return Reading("inconclusive" if inside else f"ruled_out_{word}")


#: An arm whose mean top-1 stays below this multiple of chance (100 / number of classes) has not learned
#: in the budget. On real images, where no raw-pixel reference is computed, it is the no-learning floor.
NOT_LEARNED_FACTOR = 5.0

STATISTICS_NOTE = ("± is the sample standard deviation over seeds (n − 1). A gain is paired by seed; its 95 % "
                   "confidence interval uses the t distribution with n − 1 degrees of freedom, and p is the "
                   "two-sided paired t-test. The reading compares the interval with 0 and with the paper's gain; "
                   "a comparison with an arm below the no-learning reference (the nearest class mean on raw pixels "
                   "of the same images) is not informative, whatever its interval.")


# -- formatting ------------------------------------------------------------------------------------------
def mean_sd(mean: float, sd: float, digits: int = 1) -> str:
    """``mean ± sd``; the mean alone without a spread, empty when nothing was measured."""
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" if pd.isna(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def signed(value: float, digits: int = 1) -> str:
    """``+1.2`` / ``-0.3``; empty for NaN. A value that rounds to zero prints as ``+0.0`` (as an exact zero
    does), never ``-0.0``."""
    if pd.isna(value):
        return ""
    text = f"{value:+.{digits}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0 else text


def interval_text(low: float, high: float, digits: int = 1, *, sign: bool = True) -> str:
    """``[-0.8, +0.6]`` (``sign=False``: ``[39.8, 42.2]``); empty where there is no interval."""
    if pd.isna(low) or pd.isna(high):
        return ""
    style = "+" if sign else ""
    return f"[{low:{style}.{digits}f}, {high:{style}.{digits}f}]"


def p_text(p_value: float) -> str:
    """Two significant digits; empty for NaN."""
    return "" if pd.isna(p_value) else f"{p_value:.2g}"


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency needed)."""
    header = [str(c).replace("|", "\\|") for c in frame.columns]  # a "|" in a name would split its column
    body = [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


# -- the one writer ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisplayTable:
    """A display frame of a study's page: shown in the markdown under ``heading`` (bold, if any), and
    in the tex file when it has a LaTeX ``label`` (with ``caption``, else the study's title)."""

    frame: pd.DataFrame
    heading: str = ""
    label: Optional[str] = None
    caption: str = ""


Block = Union[str, DisplayTable]


def write_study(folder: Union[str, Path], name: str, *, profile: str, title: str,
                numbers: Mapping[str, pd.DataFrame], blocks: Sequence[Block]) -> dict[str, Path]:
    """Write one study's files into ``folder`` (atomically) and return their paths.

    numbers: the frames of numbers, by suffix: ``""`` → ``<name>.csv`` (key ``"csv"``), ``"gains"`` →
        ``<name>_gains.csv`` (key ``"gains_csv"``); each gets a ``profile`` column.
    blocks: the page, in order: markdown paragraphs (str) and :class:`DisplayTable` s.
    ``<name>.md`` is ``### title`` and the blocks; ``<name>.tex`` holds the labelled display tables.
    """
    folder = Path(folder)
    out = {}
    for suffix, frame in numbers.items():
        key, stem = ("csv", name) if suffix == "" else (f"{suffix}_csv", f"{name}_{suffix}")
        out[key] = paths.atomic_write_text(folder / f"{stem}.csv", frame.assign(profile=profile).to_csv(index=False))
    md, tex = [f"### {title}", ""], []
    for block in blocks:
        if isinstance(block, DisplayTable):
            if block.heading:
                md += [f"**{block.heading}**", ""]
            md += [to_markdown(block.frame)]
            if block.label is not None:
                caption = (block.caption or title).replace("`", "")
                tex.append(block.frame.to_latex(index=False, escape=True, caption=caption, label=block.label))
        elif block:
            md += [block.rstrip(), ""]
    out["md"] = paths.atomic_write_text(folder / f"{name}.md", "\n".join(md).rstrip() + "\n")
    out["tex"] = paths.atomic_write_text(folder / f"{name}.tex", "\n".join(tex))
    return out
