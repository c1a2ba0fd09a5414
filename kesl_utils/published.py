"""What a results notebook shows, as values a test can read back and rebuild from the run records.

PySDM's smoke tests read the numbers a notebook computed and compare them with the paper's at an explicit
tolerance. Here every table, board and comparison a results notebook (03–10) displays goes through
:func:`show`, which leaves ONE IPython display bundle in the notebook's outputs holding:

* :data:`MIME` (``application/vnd.kesl.values+json``): ``{"name": ..., "values": ...}``, plain JSON;
* ``text/markdown``: the table the reader sees (the library's own display table), so that the visible table
  and its machine-readable values travel together and each number is shown once;
* ``text/plain``: the same markdown, for a front end that renders no markdown.

:func:`read` returns ``{name: values}`` of a notebook file (:func:`bundles` also returns each bundle's
markdown). :func:`check` rebuilds every number of the values from the record files the values name,
independently of the code path that built the notebook's tables: it loads each record's JSON, averages
the metric over seeds with numpy and recomputes paired differences, their 95 % t-intervals and p-values
with scipy. Only the words of a reading come from the library, from the one function that words every
reading (:func:`kesl_utils.comparison.reading`), fed the rebuilt interval. Given the bundle's markdown,
:func:`check` also checks that every number the table displays in its result columns equals the values
at the precision it is displayed (rendering is the library's display code, not a function of the values
alone, so the markdown is compared number by number). :func:`check_notebook` does both for every bundle
of a notebook file. ``tests/test_published.py`` runs it on the committed notebooks, against the
committed records of ``results/``, and on smoke executions, against the records they wrote. A stale
notebook or a hand-edited number fails.

The values
    Every values dict has ``kind`` (a key of :data:`LAYOUTS`: ``table``, ``gains``, ``mistakes``,
    ``leaderboard``, ``sweep``, ``hypotheses``, ``tutorial``), ``profile`` and ``rows``: one entry
    per row of the displayed table, in its order. Inside them two shapes are recognised wherever they
    appear:

    * a **cell**: ``{"metric", "records", "missing", "mean", ...}``. ``mean`` is the mean of ``metric``
      over the record files ``records``. These are paths relative to the results folder:
      ``runs/<run id>.json``, ``references/ncm-<dataset>-<key>.json`` (no-learning references) or
      ``tutorial/<result id>.json`` (notebook 10). Optional numbers are ``sd`` (sample, n − 1),
      ``ci_low``/``ci_high`` (the 95 % t-interval of the mean) and ``n_seeds`` (the records that hold
      a value: a run without mistakes has no mistake severity). ``missing`` lists the files the cell
      needs that had no record when the notebook ran: if one exists now, the notebook is stale;
    * a **comparison**: ``{"terms", "gain", "sd", "n_seeds", "ci_low", "ci_high", "p", "reading",
      "verdict", "arms", "paper", "higher_is_better"}``. Per seed it is Σ weight × metric over
      ``terms``, each ``{"weight", "metric", "records", "missing"}``; B − A has the weights −1 and +1,
      and a hypothesis of notebook 09 has one term per arm of every cell it spans. The seeds are those
      every term has. ``arms`` are cells (mean top-1) of the arms the reading weighs, each with the
      ``reference`` it was read against (the no-learning reference; ``null``: missing); no arms means
      no such check. ``paper``: the paper's gain (``null``: none). ``held`` (notebook 09): whether the
      reading is "better".

    A number that was not measured (NaN) is ``null``. Only the keys a study computes are present (the
    leaderboard has no sd of a difference): :func:`check` rebuilds the keys it finds.

The tolerance
    :data:`TOLERANCE` (0.01) is the largest distance allowed between a shown number and the one rebuilt
    from the records, in the number's own unit. That unit is points of top-1 and top-5 (for a mean, a
    gain, an sd and interval bounds alike) and d for mistake severity and hdist. It is the finest digit
    any table prints (the leaderboard's; the paper tables print 0.1), far above the float noise of
    summing in another order (~1e-12) and far below what a retrained run changes. Metrics on a 0–1
    scale, where top-1 is a percentage, are compared at :data:`TOLERANCE` × :data:`FRACTION_METRICS`
    (ECE: 0.0001); p-values at :data:`P_TOLERANCE`. Seed counts and readings must be equal.

Torch-free: reading and checking need json, numpy and scipy; the functions that turn the library's
result objects into values (:func:`table_values`, …) import their modules when called.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
from scipy import stats

from . import paths

__all__ = ["MIME", "TOLERANCE", "P_TOLERANCE", "FRACTION_METRICS", "LAYOUTS", "show", "read", "bundles", "Bundle",
           "check", "check_notebook", "table_values", "gains_values", "mistakes_values", "board_values",
           "sweep_values", "hypotheses_values", "tutorial_values"]

#: The MIME type of a values bundle's machine-readable part.
MIME = "application/vnd.kesl.values+json"
#: Largest distance between a shown number and the one rebuilt, in the number's own unit (points of top-1, d of
#: mistake severity): see the module doc.
TOLERANCE = 0.01
#: Largest distance between a shown p-value and the one rebuilt.
P_TOLERANCE = 0.001
#: Metrics on a 0–1 scale where top-1 is a percentage: compared at TOLERANCE × this factor.
FRACTION_METRICS = {"ece": 0.01}
#: Below this, a rebuilt sd or mean is float noise of the summing order, i.e. 0 (the convention of
#: :class:`kesl_utils.comparison.Paired` for differences without spread: p is 1 at zero, else 0).
_FLOAT_NOISE = 1e-12


# -- showing and reading ---------------------------------------------------------------------------------------
def _plain(value: Any, where: str = "values") -> Any:
    """``value`` as plain JSON: dicts (string keys), lists, str, bool, int, float; NaN and ±inf as ``None``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(f"{where} is a {type(value).__name__}; a values bundle holds plain JSON only (dicts, lists, "
                    "str, bool, int, float, None)")


def show(name: str, values: Mapping, *, markdown: Optional[str] = None) -> None:
    """Display ONE bundle: ``values`` under :data:`MIME` (``{"name": name, "values": values}``, plain JSON; NaN
    becomes ``null``), and, where the notebook shows a table, its ``markdown`` as ``text/markdown``, with the same
    text as ``text/plain``. ``name`` must be unique within the notebook (:func:`read` refuses a repeated one)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a values bundle needs a non-empty name, got {name!r}")
    payload = {"name": name, "values": _plain(values, f"values of {name!r}")}
    json.dumps(payload, allow_nan=False)  # plain JSON, or a clear error here rather than in the kernel
    bundle = {MIME: payload, "text/plain": markdown if markdown is not None else f"{name} ({MIME})"}
    if markdown is not None:
        bundle["text/markdown"] = markdown
    from IPython.display import display  # the library imports without IPython; a notebook has it

    display(bundle, raw=True)


class Bundle(NamedTuple):
    """One values bundle of a notebook: its values, the markdown shown with them (``None``: none) and the index of
    the cell that displayed it."""

    values: Any
    markdown: Optional[str]
    cell: int


def _text(data) -> Optional[str]:
    if data is None:
        return None
    return "".join(data) if isinstance(data, list) else str(data)


def bundles(notebook_path: Union[str, os.PathLike]) -> dict[str, Bundle]:
    """``{name: Bundle}`` of every values bundle in the notebook file (nbformat JSON), in the order shown.

    Raises ``ValueError`` naming the notebook for a file that is not a notebook, a bundle without a name or
    values, and a name that appears twice."""
    path = Path(notebook_path)
    shown = paths.display_path(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{shown}: not a readable notebook (nbformat JSON with 'cells'): {error}") from None
    found: dict[str, Bundle] = {}
    for k, cell in enumerate(cells):
        for output in cell.get("outputs") or []:
            data = output.get("data") or {}
            if MIME not in data:
                continue
            payload = data[MIME]
            if isinstance(payload, str):  # a writer that stores JSON types as text
                payload = json.loads(payload)
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) or "values" not in payload:
                raise ValueError(f"{shown}: cell {k} has a {MIME} output without a name and values: "
                                 f"expected {{'name': str, 'values': ...}}")
            name = payload["name"]
            if name in found:
                raise ValueError(f"{shown}: the values named {name!r} appear twice (cells {found[name].cell} and "
                                 f"{k}); each bundle of a notebook needs a name of its own")
            found[name] = Bundle(payload["values"], _text(data.get("text/markdown")), k)
    return found


def read(notebook_path: Union[str, os.PathLike]) -> dict[str, Any]:
    """``{name: values}`` of every values bundle in the notebook file (:func:`bundles`)."""
    return {name: bundle.values for name, bundle in bundles(notebook_path).items()}


# -- rebuilding from the records -------------------------------------------------------------------------------
class _Records:
    """The record files under one results folder, each read once: a run record checked as the library checks it
    (:func:`kesl_utils.records.inspect_record_file`: a hand-edited one does not match its digest), others as JSON."""

    def __init__(self, results_dir: Union[str, os.PathLike]):
        self.root = Path(results_dir)
        self.cache: dict[str, tuple[Optional[dict], Optional[str]]] = {}

    def load(self, relative: str) -> tuple[Optional[dict], Optional[str]]:
        """``(data, problem)``: ``(None, None)`` when there is no file."""
        if relative not in self.cache:
            path = self.root / relative
            if relative.startswith("runs/"):
                from .records import inspect_record_file

                record, problem = inspect_record_file(path)
                self.cache[relative] = (record.to_dict() if record is not None else None, problem)
            else:
                try:
                    self.cache[relative] = (json.loads(path.read_text(encoding="utf-8")), None)
                except FileNotFoundError:
                    self.cache[relative] = (None, None)
                except (OSError, ValueError) as error:
                    self.cache[relative] = (None, f"unreadable ({error})")
        return self.cache[relative]

    def values(self, files: Sequence[str], metric: str, where: str, problems: list) -> Optional[dict]:
        """``{seed: value}`` of ``metric`` in ``files`` (NaN where a record holds none), or ``None`` (reported in
        ``problems``) when a file is missing, damaged or holds no such metric."""
        out, complete = {}, True
        for relative in files:
            data, problem = self.load(relative)
            if data is None:
                problems.append(f"{where}: record {relative} is "
                                + (f"damaged: {problem}" if problem else
                                   f"missing from {paths.display_path(self.root)}")
                                + "; the number cannot be rebuilt")
                complete = False
                continue
            held = data.get("metrics", data)
            owner = data.get("config") or data.get("settings") or data.get("data") or {}
            if not isinstance(held, dict) or metric not in held or "seed" not in owner:
                problems.append(f"{where}: record {relative} holds no {metric!r} or no seed")
                complete = False
                continue
            value = held[metric]
            out[owner["seed"]] = math.nan if value is None else float(value)
        return out if complete else None

    def still_missing(self, files: Iterable[str], where: str, problems: list) -> None:
        """Report each of ``files`` that has a sound record now: the notebook ran without it (stale)."""
        for relative in files:
            data, _ = self.load(relative)
            if data is not None:
                problems.append(f"{where}: record {relative} exists now, but the notebook shows no number from it "
                                "(it ran before the record was written: stale)")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value) -> str:
    return "null" if _missing(value) else f"{value:.6g}"


def _compare(where: str, key: str, shown, rebuilt, tolerance: float, problems: list) -> None:
    if _missing(shown) and _missing(rebuilt):
        return
    if _missing(shown) or _missing(rebuilt) or abs(float(shown) - float(rebuilt)) > tolerance * (1 + 1e-9):
        problems.append(f"{where} · {key}: shown {_number(shown)}, rebuilt from the records {_number(rebuilt)}")


def _statistics(values: Sequence[float]) -> dict:
    """mean, sd (n − 1), n, 95 % t-interval and the two-sided one-sample t-test p of ``values`` (NaNs dropped),
    computed with numpy and scipy; NaN where fewer than 2 (sd, interval, p) or 1 (mean) values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    n = len(x)
    out = {"n_seeds": n, "mean": math.nan, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    if n == 0:
        return out
    mean = float(x.mean())
    out["mean"] = 0.0 if abs(mean) <= _FLOAT_NOISE else mean
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    if sd <= _FLOAT_NOISE:
        out.update(sd=0.0, ci_low=out["mean"], ci_high=out["mean"], p=1.0 if out["mean"] == 0 else 0.0)
        return out
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    out.update(sd=sd, ci_low=float(low), ci_high=float(high), p=float(stats.ttest_1samp(x, 0.0).pvalue))
    return out


def _tolerance(metric: str, tolerance: float) -> float:
    base = metric[len("crm_"):] if metric.startswith("crm_") else metric
    return tolerance * FRACTION_METRICS.get(base, 1.0)


def _check_cell(cell: dict, where: str, store: _Records, tolerance: float, problems: list) -> Optional[float]:
    """Compare the numbers of ``cell`` with those rebuilt from its records; returns the rebuilt mean (``None`` where
    it cannot be rebuilt)."""
    store.still_missing(cell.get("missing") or [], where, problems)
    found = store.values(cell.get("records") or [], cell["metric"], where, problems)
    if found is None:
        return None
    rebuilt = _statistics(list(found.values()))
    scale = _tolerance(cell["metric"], tolerance)
    for key in ("mean", "sd", "ci_low", "ci_high"):
        if key in cell:
            _compare(where, key, cell[key], rebuilt[key], scale, problems)
    if "n_seeds" in cell and cell["n_seeds"] != rebuilt["n_seeds"]:
        problems.append(f"{where} · n_seeds: shown {cell['n_seeds']}, rebuilt from the records {rebuilt['n_seeds']}")
    return rebuilt["mean"]


def _check_comparison(comparison_: dict, where: str, store: _Records, tolerance: float, problems: list) -> None:
    """Rebuild a comparison's per-seed combination of its terms, its statistics and its reading."""
    from .comparison import READINGS, reading

    per_term, complete = [], True
    for k, term in enumerate(comparison_.get("terms") or []):
        store.still_missing(term.get("missing") or [], where, problems)
        found = store.values(term.get("records") or [], term["metric"], f"{where} · term {k + 1}", problems)
        if found is None:
            complete = False
            continue
        per_term.append((float(term["weight"]), {s: v for s, v in found.items() if not math.isnan(v)}))
    arms = []
    for k, arm in enumerate(comparison_.get("arms") or []):
        mean = _check_cell(arm, f"{where} · arm {k + 1}", store, tolerance, problems)
        reference = arm.get("reference")
        arms.append((arm.get("mean") if mean is None else mean, math.nan if reference is None else float(reference)))
    if not complete:
        return
    seeds = sorted(set.intersection(*(set(values) for _, values in per_term))) if per_term else []
    differences = [sum(weight * values[seed] for weight, values in per_term) for seed in seeds]
    rebuilt = _statistics(differences)
    metric = comparison_["terms"][-1]["metric"] if comparison_.get("terms") else ""
    scale = _tolerance(metric, tolerance)
    for key, rebuilt_key in (("gain", "mean"), ("sd", "sd"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
        if key in comparison_:
            _compare(where, key, comparison_[key], rebuilt[rebuilt_key], scale, problems)
    if "p" in comparison_:
        _compare(where, "p", comparison_["p"], rebuilt["p"], P_TOLERANCE, problems)
    if "n_seeds" in comparison_ and comparison_["n_seeds"] != rebuilt["n_seeds"]:
        problems.append(f"{where} · n_seeds: shown {comparison_['n_seeds']}, rebuilt from the records "
                        f"{rebuilt['n_seeds']}")
    read = reading((rebuilt["ci_low"], rebuilt["ci_high"]), rebuilt["n_seeds"], paper=comparison_.get("paper"),
                   arms=arms, higher_is_better=comparison_.get("higher_is_better", True))
    if "reading" in comparison_ and comparison_["reading"] != read.key:
        problems.append(f"{where} · reading: shown {comparison_['reading']!r}, rebuilt from the records {read.key!r}")
    if "verdict" in comparison_ and comparison_["verdict"] != READINGS.get(comparison_.get("reading"), read.sentence):
        problems.append(f"{where} · verdict: shown {comparison_['verdict']!r}, which is not the sentence of its "
                        f"reading {comparison_.get('reading')!r}")
    if "held" in comparison_ and comparison_["held"] != (read.key == "better"):
        problems.append(f"{where} · held: shown {comparison_['held']}, rebuilt from the records "
                        f"{read.key == 'better'}")


def _is_comparison(node) -> bool:
    return isinstance(node, dict) and "terms" in node


def _is_cell(node) -> bool:
    return isinstance(node, dict) and "records" in node and "metric" in node


def _walk(node, where: str, store: _Records, tolerance: float, problems: list) -> None:
    if _is_comparison(node):
        _check_comparison(node, where, store, tolerance, problems)
    elif _is_cell(node):
        _check_cell(node, where, store, tolerance, problems)
    elif isinstance(node, dict):
        for key, child in node.items():
            _walk(child, f"{where} · {key}", store, tolerance, problems)
    elif isinstance(node, list):
        for k, child in enumerate(node):
            _walk(child, f"{where}[{k}]", store, tolerance, problems)


def _row_label(row, k: int) -> str:
    label = row.get("label") if isinstance(row, dict) else None
    return f"row {k + 1} ({label})" if label else f"row {k + 1}"


def check(name: str, values: Mapping, results_dir: Union[str, os.PathLike], *, markdown: Optional[str] = None,
          tolerance: float = TOLERANCE) -> list[str]:
    """The numbers of ``values`` that do not match the ones rebuilt from the record files under ``results_dir``
    (empty when all agree), each as ``"<name> · row k (label) · key: shown x, rebuilt from the records y"``.

    A record that is missing or damaged is reported with its path (which holds its run id) and its cell is not
    compared; a record the values list as missing that exists now is reported as stale. ``markdown``: the table
    shown in the same bundle; every number of its result columns must equal the values at the precision it is
    displayed (:data:`LAYOUTS`). ``tolerance``: see the module doc (:data:`TOLERANCE`).
    """
    problems: list[str] = []
    kind = values.get("kind") if isinstance(values, Mapping) else None
    if kind not in LAYOUTS or not isinstance(values.get("rows"), list):
        return [f"{name}: not a values dict of a known kind ({', '.join(LAYOUTS)}) with rows: kind {kind!r}"]
    store = _Records(results_dir)
    for k, row in enumerate(values["rows"]):
        where = f"{name} · {_row_label(row, k)}"
        _walk(row, where, store, tolerance, problems)
        if kind == "mistakes" and not _missing(row.get("ratio")):
            mean, all_pairs = (row.get("mistake_severity") or {}).get("mean"), row.get("all_pairs_d")
            expected = math.nan if _missing(mean) or _missing(all_pairs) else mean / all_pairs
            _compare(where, "ratio (mean d of mistakes / mean d of all pairs)", row["ratio"], expected, tolerance,
                     problems)
    if markdown is not None:
        problems += _markdown_problems(name, values, markdown)
    return problems


def check_notebook(notebook_path: Union[str, os.PathLike], results_dir: Union[str, os.PathLike], *,
                   tolerance: float = TOLERANCE) -> list[str]:
    """:func:`check` of every values bundle of a notebook file, with its markdown, against ``results_dir``."""
    problems = []
    for name, bundle in bundles(notebook_path).items():
        problems += check(name, bundle.values, results_dir, markdown=bundle.markdown, tolerance=tolerance)
    return problems


# -- the markdown shown with the values --------------------------------------------------------------------------
Reference = Union[tuple, Callable[[dict], Any]]


@dataclass(frozen=True)
class Column:
    """What one result column of a displayed table shows, read from the values row: ``numbers``, in the order the
    cell prints them (each a key path into the row, or a function of the row; ``None`` values print nothing), and
    ``text``, words the cell must hold (a key path or a function of the row; ``None``: no words checked)."""

    numbers: tuple = ()
    text: Optional[Reference] = None


def _get(row, reference: Optional[Reference]):
    if reference is None:
        return None
    if callable(reference):
        return reference(row)
    node = row
    for key in reference:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _table_layout(values) -> dict[str, Column]:
    return {"paper": Column((("paper",),)),
            "this run": Column((("top1", "mean"), ("top1", "sd"))),
            "seeds": Column((lambda row: _get(row, ("top1", "n_seeds")) or None,))}


def _gains_layout(values) -> dict[str, Column]:
    return {"paper's gain": Column((("paper",),)), "this run's gain (mean ± sd)": Column((("gain",), ("sd",))),
            "95 % CI": Column((("ci_low",), ("ci_high",))), "p": Column((("p",),)),
            "seeds": Column((("n_seeds",),)), "reading": Column(text=("verdict",))}


def _mistakes_layout(values) -> dict[str, Column]:
    return {"mean d of mistakes": Column((("mistake_severity", "mean"), ("mistake_severity", "sd"))),
            "hdist@1": Column((("hdist@1", "mean"),)), "mean d, all pairs": Column((("all_pairs_d",),)),
            "ratio": Column((("ratio",),)), "seeds": Column((("mistake_severity", "n_seeds"),))}


def _leaderboard_layout(values) -> dict[str, Column]:
    def shown_difference(column, key):
        def get(row):
            if _missing(_get(row, ("cells", column, "mean"))) or _missing(_get(row, ("vs_ce", column, "gain"))):
                return None  # a cell without a mean shows nothing; without a paired difference, no Δ
            return _get(row, ("vs_ce", column, key))
        return get

    return {column: Column((("cells", column, "mean"), ("cells", column, "ci_low"), ("cells", column, "ci_high"),
                            shown_difference(column, "gain")), text=shown_difference(column, "verdict"))
            for column in values.get("metrics", [])}


def _sweep_layout(values) -> dict[str, Column]:
    return {"CE top-1": Column((("ce_top1", "mean"),)), "KESL top-1": Column((("kesl_top1", "mean"),)),
            "gain top-1 [95 % CI]": Column((("gain_top1", "gain"), ("gain_top1", "ci_low"), ("gain_top1", "ci_high"))),
            "reading, top-1": Column(text=("gain_top1", "verdict")),
            "gain severity [95 % CI]": Column((("gain_severity", "gain"), ("gain_severity", "ci_low"),
                                               ("gain_severity", "ci_high"))),
            "reading, severity": Column(text=("gain_severity", "verdict")),
            # the sweep's table prints the seeds of its last comparison, the severity's
            "seeds": Column((("gain_severity", "n_seeds"),))}


def _hypotheses_layout(values) -> dict[str, Column]:
    return {"contrast [95 % CI]": Column((("gain",), ("ci_low",), ("ci_high",))), "p": Column((("p",),)),
            "seeds": Column((("n_seeds",),)), "reading of the contrast": Column(text=("verdict",)),
            "held at 5 %": Column(text=lambda row: "yes" if row.get("held") else "no")}


def _tutorial_layout(values) -> dict[str, Column]:
    baseline, treatment = values.get("baseline", "CE"), values.get("treatment", "KESL")
    return {baseline: Column(((baseline, "mean"), (baseline, "sd"))),
            treatment: Column(((treatment, "mean"), (treatment, "sd"))),
            f"{treatment} − {baseline}": Column((("difference", "gain"),)),
            "95 % CI": Column((("difference", "ci_low"), ("difference", "ci_high"))),
            "seeds": Column((("difference", "n_seeds"),)), "reading": Column(text=("difference", "verdict"))}


#: kind → the result columns of its displayed table (a function of the values: the leaderboard's columns are its
#: metrics, the tutorial's its arms). Columns not named (the row's label, backbone and settings) are not checked.
LAYOUTS: dict[str, Callable[[Mapping], dict[str, Column]]] = {
    "table": _table_layout, "gains": _gains_layout, "mistakes": _mistakes_layout,
    "leaderboard": _leaderboard_layout, "sweep": _sweep_layout, "hypotheses": _hypotheses_layout,
    "tutorial": _tutorial_layout,
}

_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
_NUMBER = re.compile(r"(?<![\w.])[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")


def _split_row(line: str) -> list[str]:
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def markdown_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first GitHub-flavoured markdown table in ``markdown`` (``([], [])``: none)."""
    lines = markdown.splitlines()
    for k in range(len(lines) - 1):
        if lines[k].startswith("|") and _SEPARATOR.match(lines[k + 1]):
            rows = []
            for line in lines[k + 2:]:
                if not line.startswith("|"):
                    break
                rows.append(_split_row(line))
            return _split_row(lines[k]), rows
    return [], []


def _half_unit(token: str) -> float:
    """Half the unit of the last digit ``token`` prints: what rounding to it may have moved the number."""
    mantissa, _, exponent = token.lower().lstrip("+-").partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def _markdown_problems(name: str, values: Mapping, markdown: str) -> list[str]:
    header, rows = markdown_table(markdown)
    problems = []
    if not header:
        return [f"{name}: its markdown holds no table"]
    if len(rows) != len(values["rows"]):
        return [f"{name}: its markdown table has {len(rows)} rows, its values {len(values['rows'])}"]
    layout = LAYOUTS[values["kind"]](values)
    for column in layout:
        if column not in header:
            problems.append(f"{name}: its markdown table has no column {column!r}")
    for k, (cells, row) in enumerate(zip(rows, values["rows"])):
        for column, spec in layout.items():
            if column not in header:
                continue
            cell = cells[header.index(column)] if header.index(column) < len(cells) else ""
            where = f"{name} · markdown {_row_label(row, k)} · column {column!r}"
            words = _get(row, spec.text)
            if words:
                if words not in cell:
                    problems.append(f"{where}: shows {cell!r}, the values read {words!r}")
                    continue
                cell = cell.replace(words, " ", 1)
            expected = [v for v in (_get(row, reference) for reference in spec.numbers) if not _missing(v)]
            tokens = _NUMBER.findall(cell)
            if len(tokens) != len(expected):
                problems.append(f"{where}: shows {cell!r} ({len(tokens)} numbers), the values hold "
                                f"{[_number(v) for v in expected]}")
                continue
            for token, value in zip(tokens, expected):
                if abs(float(token) - float(value)) > _half_unit(token) * (1 + 1e-9) + 1e-12:
                    problems.append(f"{where}: shows {token}, the values hold {_number(value)}")
    return problems


# -- the library's result objects as values ----------------------------------------------------------------------
def _cell(metric: str, records: Sequence[str], missing: Sequence[str] = (), **numbers) -> dict:
    return {"metric": metric, "records": list(records), "missing": list(missing), **numbers}


def _run_files(run_ids: Iterable[str]) -> list[str]:
    return [f"runs/{run_id}.json" for run_id in run_ids]


def _split_runs(configs, measured: Iterable[str]) -> tuple[list[str], list[str]]:
    """The record files of ``configs`` that were measured (``measured``: run ids) and those that were not."""
    measured = set(measured)
    ids = list(dict.fromkeys(c.run_id for c in configs))
    return _run_files(i for i in ids if i in measured), _run_files(i for i in ids if i not in measured)


def _reference_file(config) -> str:
    from . import ncm

    return ncm.record_path(config, ".").as_posix()


def _ids(text) -> list[str]:
    return str(text or "").split()


def table_values(report) -> dict:
    """The values of a paper table (a :class:`kesl_utils.tables.Report`'s ``table``), one row per displayed row:
    ``key``, ``label`` (:func:`kesl_utils.tables.row_labels`), ``kind`` (run, quoted, reference), ``paper`` and
    ``top1``: a cell (mean, sd, n_seeds) over the row's run records, or over the stored no-learning references
    of the reference row; ``None`` for a quoted row."""
    from . import ncm, tables
    from .table_specs import table_spec

    spec = table_spec(report.name)
    references = tables.reference_configs(report.name, profile=report.profile, seeds=report.seeds)
    rows = []
    for (_, row), label in zip(report.table.iterrows(), tables.row_labels(report.table)):
        entry = {"key": row["key"], "label": label, "kind": row["kind"], "paper": row["paper"], "top1": None}
        numbers = dict(mean=row["this_run"], sd=row["this_run_sd"], n_seeds=row["n_seeds"])
        if row["kind"] == "run":
            configs = spec.row(row["key"]).configs(report.profile, report.seeds)
            found, missing = _split_runs(configs, _ids(row["run_ids"]))
            entry["top1"] = _cell("top1", found, missing, **numbers)
        elif row["kind"] == "reference":
            configs = references[row["key"].split("/", 1)[1]]
            stored = [c for c in configs if ncm.data_key(c) in report.references]
            entry["top1"] = _cell("top1", [_reference_file(c) for c in stored],
                                  [_reference_file(c) for c in configs if c not in stored], **numbers)
        rows.append(entry)
    return {"kind": "table", "table": report.name, "profile": report.profile, "rows": rows}


def gains_values(report) -> dict:
    """The values of a paper table's comparisons (``report.gains``), one per displayed row: the paired gain
    (row B − row A, by seed), its sd, seeds, 95 % interval, p, reading and verdict, the paper's gain, and the
    two rows' records with the no-learning reference each arm was read against."""
    from . import tables
    from .table_specs import table_spec

    spec = table_spec(report.name)
    measured = {row["key"]: _ids(row["run_ids"]) for _, row in report.table.iterrows()}
    rows = []
    for comparison_, (_, gain) in zip(spec.comparisons, report.gains.iterrows()):
        arms_configs = [spec.row(key).configs(report.profile, report.seeds)
                        for key in (comparison_.baseline, comparison_.ours)]
        seeds = [{c.seed for c in configs if c.run_id in measured[key]}
                 for configs, key in zip(arms_configs, (comparison_.baseline, comparison_.ours))]
        paired = seeds[0] & seeds[1]
        terms, arms = [], []
        for weight, key, configs, mean in ((-1.0, comparison_.baseline, arms_configs[0], gain["baseline_top1"]),
                                           (1.0, comparison_.ours, arms_configs[1], gain["ours_top1"])):
            found, missing = _split_runs(configs, measured[key])
            terms.append({"weight": weight, "metric": "top1", "records": found, "missing": missing})
            reference = tables.no_learning_reference([c for c in configs if c.seed in paired], report.references)
            arms.append(_cell("top1", found, missing, mean=mean, reference=reference))
        rows.append({"label": gain["comparison"], "paper": gain["paper"], "higher_is_better": True,
                     "terms": terms, "arms": arms, "gain": gain["this_run"], "sd": gain["this_run_sd"],
                     "n_seeds": gain["n_seeds"], "ci_low": gain["ci_low"], "ci_high": gain["ci_high"],
                     "p": gain["p_value"], "reading": gain["reading"], "verdict": gain["verdict"]})
    return {"kind": "gains", "table": report.name, "profile": report.profile, "rows": rows}


def mistakes_values(mistakes, report) -> dict:
    """The values of :func:`kesl_utils.tables.mistake_summary` (``mistakes``) of ``report``'s table: per row the
    mistake severity (mean, sd, n_seeds) and hdist@1 (mean) over its records, the mean d of all pairs (from the
    shipped hierarchy, taken as shown) and their ratio."""
    from . import tables
    from .table_specs import table_spec

    spec = table_spec(report.name)
    labels = dict(zip(report.table["key"], tables.row_labels(report.table)))
    rows = []
    for _, row in mistakes.iterrows():
        found, missing = _split_runs(spec.row(row["key"]).configs(report.profile, report.seeds), _ids(row["run_ids"]))
        rows.append({"key": row["key"], "label": labels.get(row["key"], row["key"]),
                     "mistake_severity": _cell("mistake_severity", found, missing, mean=row["mistake_severity"],
                                               sd=row["mistake_severity_sd"], n_seeds=row["n_seeds"]),
                     "hdist@1": _cell("hdist@1", found, missing, mean=row["hdist@1"]),
                     "all_pairs_d": row["all_pairs_d"], "ratio": row["ratio"]})
    return {"kind": "mistakes", "table": report.name, "profile": report.profile, "rows": rows}


def board_values(board, dataset: str, records, *, profile: str, seeds=None) -> dict:
    """The values of one dataset's leaderboard (:func:`kesl_utils.leaderboard.build`, ``records`` the runs it was
    built from): per method, a cell per metric (mean, sd, 95 % interval, n_seeds) and, but for CE, the paired
    difference to CE's argmax metric (gain, interval, p, reading) read with both arms' top-1 against the
    dataset's no-learning reference."""
    from . import leaderboard, tables

    index = tables.index_records(records)
    groups = leaderboard.configs(profile, seeds=seeds, datasets=(dataset,))
    part = board[board["dataset"] == dataset]

    def number(method: str, column: str, key: str):
        return part[(part["method"] == method) & (part["metric"] == column)].iloc[0][key]

    ce_found, ce_missing = _split_runs(groups[(dataset, "ce")], index)
    top1_column = leaderboard.METRICS[0][0]
    rows = []
    for method in leaderboard.METHODS:
        found, missing = _split_runs(groups[(dataset, method.key)], index)
        top1_key = "crm_top1" if method.decision == "crm" else "top1"
        cells, vs_ce = {}, {}
        for column, argmax_key, crm_key, lower_is_better in leaderboard.METRICS:
            key = crm_key if method.decision == "crm" else argmax_key
            cells[column] = _cell(key, found, missing, **{name: number(method.key, column, source) for name, source in
                                                          (("mean", "mean"), ("sd", "sd"), ("ci_low", "ci_low"),
                                                           ("ci_high", "ci_high"), ("n_seeds", "n_seeds"))})
            if method.key == "ce":
                vs_ce[column] = None
                continue
            reference = number(method.key, column, "reference")
            vs_ce[column] = {
                "terms": [{"weight": -1.0, "metric": argmax_key, "records": ce_found, "missing": ce_missing},
                          {"weight": 1.0, "metric": key, "records": found, "missing": missing}],
                "higher_is_better": not lower_is_better, "paper": None,
                "arms": [_cell("top1", ce_found, ce_missing, mean=number("ce", top1_column, "mean"),
                               reference=reference),
                         _cell(top1_key, found, missing, mean=number(method.key, top1_column, "mean"),
                               reference=reference)],
                "gain": number(method.key, column, "vs_ce"), "ci_low": number(method.key, column, "vs_ce_low"),
                "ci_high": number(method.key, column, "vs_ce_high"), "p": number(method.key, column, "vs_ce_p"),
                "reading": number(method.key, column, "reading"), "verdict": number(method.key, column, "verdict")}
        rows.append({"method": method.key, "label": method.label, "cells": cells, "vs_ce": vs_ce})
    return {"kind": "leaderboard", "dataset": dataset, "profile": profile,
            "metrics": [column for column, *_ in leaderboard.METRICS], "rows": rows}


def _sweep_arms(cell: dict, index, references) -> list[dict]:
    """CE and KESL of one sweep cell as its readings weigh them: their records, mean top-1 and no-learning
    reference (:func:`kesl_utils.tables.no_learning_reference` of the measured configs)."""
    from . import tables

    arms = []
    for method in ("CE", "KESL"):
        found, missing = _split_runs(cell[method], index)
        measured = [c for c in cell[method] if c.run_id in index]
        arms.append(_cell("top1", found, missing, mean=tables.seed_values(cell[method], index).mean(),
                          reference=tables.no_learning_reference(measured, references)))
    return arms


def _ce_kesl_terms(cell: dict, index, metric: str, weight: float = 1.0) -> list[dict]:
    terms = []
    for sign, method in ((-1.0, "CE"), (1.0, "KESL")):
        found, missing = _split_runs(cell[method], index)
        terms.append({"weight": sign * weight, "metric": metric, "records": found, "missing": missing})
    return terms


def sweep_values(table, records, *, profile: str, seeds=None, references=None) -> dict:
    """The values of notebook 09's map (:func:`kesl_utils.sweep.gains`, ``records`` the runs it was built from):
    per cell, CE's and KESL's mean top-1 and the KESL − CE gains in top-1 and in mistake severity (lower is
    better), each with its interval, p and reading."""
    from . import comparison, sweep, tables

    index = tables.index_records(records)
    rows = []
    for _, row in table.iterrows():
        cell = sweep.cell_configs(profile, row["alignment"], int(row["n_per_class"]), row["label_noise"], seeds=seeds)
        arms = _sweep_arms(cell, index, references)
        entry = {"label": f"alignment {row['alignment']:g}, {int(row['n_per_class'])} images/class, "
                          f"noise {row['label_noise']:.0%}",
                 "alignment": row["alignment"], "n_per_class": row["n_per_class"], "label_noise": row["label_noise"],
                 "ce_top1": _cell("top1", *_split_runs(cell["CE"], index), mean=row["ce_top1"]),
                 "kesl_top1": _cell("top1", *_split_runs(cell["KESL"], index), mean=row["kesl_top1"])}
        for metric, short, higher_is_better in (("top1", "top1", True), ("mistake_severity", "severity", False)):
            entry[f"gain_{short}"] = {
                "terms": _ce_kesl_terms(cell, index, metric), "higher_is_better": higher_is_better, "paper": None,
                "arms": arms, "gain": row[f"gain_{short}"], "ci_low": row[f"gain_{short}_low"],
                "ci_high": row[f"gain_{short}_high"], "p": row[f"gain_{short}_p"],
                "reading": row[f"{short}_reading"], "verdict": comparison.READINGS[row[f"{short}_reading"]]}
        entry["gain_severity"]["n_seeds"] = row["n_seeds"]  # the table's seeds are its last comparison's
        rows.append(entry)
    return {"kind": "sweep", "profile": profile, "rows": rows}


def hypotheses_values(tested, records, *, profile: str, seeds=None, references=None) -> dict:
    """The values of notebook 09's hypotheses (:func:`kesl_utils.sweep.hypotheses`): each a comparison whose terms
    are the CE and KESL runs of every cell its contrast spans (:func:`kesl_utils.sweep.contrasts`), weighted,
    with its interval, p, reading and whether it held."""
    from . import sweep, tables

    index = tables.index_records(records)
    rows = []
    for (name, terms_of), (_, row) in zip(sweep.contrasts(profile).items(), tested.iterrows()):
        if row["hypothesis"] != name:
            raise ValueError(f"the hypotheses frame lists {row['hypothesis']!r} where sweep.contrasts has {name!r}: "
                             "pass the frame of sweep.hypotheses for the same profile")
        terms, arms = [], []
        for weight, cell_key in terms_of:
            cell = sweep.cell_configs(profile, *cell_key, seeds=seeds)
            terms += _ce_kesl_terms(cell, index, "top1", weight)
            arms += _sweep_arms(cell, index, references)
        rows.append({"label": name, "terms": terms, "arms": arms, "higher_is_better": True, "paper": None,
                     "gain": row["contrast"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "p": row["p_value"],
                     "n_seeds": row["n_seeds"], "reading": row["reading"], "verdict": row["verdict"],
                     "held": row["held"]})
    return {"kind": "hypotheses", "profile": profile, "rows": rows}


def tutorial_values(table, results, *, profile: str, baseline: str = "CE", treatment: str = "KESL") -> dict:
    """The values of notebook 10's comparison (:func:`kesl_utils.tutorial.comparison_table` of ``results``, the
    runs' rows with their ``result_id``): per metric each arm's mean and sd over its stored results
    (``tutorial/<result id>.json``) and the paired difference with its interval, p and reading. The no-learning
    reference of the arms' top-1 (``reference_top1``) is computed in the notebook and taken as shown; without
    one, no arms (no such check)."""
    files = {method: [f"tutorial/{result_id}.json" for result_id in part["result_id"]]
             for method, part in results.groupby("method")}
    by_metric = table.set_index("metric")
    reference = table["reference_top1"].iloc[0] if len(table) else None
    arms = [] if reference is None else [
        _cell("top1", files[method], mean=by_metric.loc["top1", f"{method}_mean"], reference=reference)
        for method in (baseline, treatment)]
    rows = []
    for _, row in table.iterrows():
        rows.append({
            "metric": row["metric"], "label": f"{row['label']} ({row['unit']})",
            baseline: _cell(row["metric"], files[baseline], mean=row[f"{baseline}_mean"], sd=row[f"{baseline}_sd"]),
            treatment: _cell(row["metric"], files[treatment], mean=row[f"{treatment}_mean"],
                             sd=row[f"{treatment}_sd"]),
            "difference": {"terms": [{"weight": -1.0, "metric": row["metric"], "records": files[baseline]},
                                     {"weight": 1.0, "metric": row["metric"], "records": files[treatment]}],
                           "higher_is_better": row["higher_is_better"], "paper": None, "arms": arms,
                           "gain": row["difference"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                           "p": row["p_value"], "n_seeds": row["n_seeds"], "reading": row["reading"],
                           "verdict": row["verdict"]}})
    return {"kind": "tutorial", "profile": profile, "baseline": baseline, "treatment": treatment, "rows": rows}
