"""Paper-vs-this-run tables, built only from run records, joined to the table specs by run id.

:func:`build_table` lays each row of a paper table (:mod:`kesl_utils.table_specs`) next to the
mean over seeds of the records of *that row's configs* — found by run id, so unrelated records
(other profiles, backbones, learning rates) never leak into a cell. Where no record exists the
cell is empty (NaN), never filled in. What a row shows about the run — its backbone — comes from the
configs of the run ids that filled it, never from the paper's row text (the paper's backbone is kept
as its own column, "paper backbone"). The paper's number and this run's stand side by side, without
a difference: on the synthetic stand-ins they are on unrelated scales; the *gains* are what compare.
On the synthetic stand-ins each table also gets reference rows: the raw-pixel nearest-class-mean
classifier on the same images (no learning at all), read from the stored reference records
(:mod:`kesl_utils.ncm`), never computed here.

:func:`gains` reports each comparison of the spec (row B − row A) paired by seed, with its
statistics and its reading (:mod:`kesl_utils.comparison`). :func:`report` builds a table from the
results a caller already has and writes its files: it never trains.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd

from . import comparison, names, ncm, prose
from .comparison import (NOT_LEARNED_FACTOR, Arm, interval_text, mean_sd, p_text, paired_stats, reading, signed,
                         summary)
from .config import Config
from .hierarchy_files import load_hierarchy
from .records import RunRecord, load_record
from .table_specs import table_spec

METRIC = "top1"

Records = Union[Iterable[RunRecord], Mapping[str, RunRecord], pd.DataFrame]
#: ``{ncm.data_key(config): top-1 (%)}``: the stored no-learning references (:func:`kesl_utils.ncm.references`).
References = Mapping[str, float]


# -- records by run id -----------------------------------------------------------------------------
def index_records(records: Records) -> dict[str, dict]:
    """``{run_id: metrics}`` of the finished runs in ``records``.

    ``records``: run records (a list, or a dict by run id), or a frame from
    :func:`kesl_utils.experiments.run_all` / ``results_frame`` (one row per run, metric columns).
    """
    if isinstance(records, pd.DataFrame):
        finished = records[records["status"] == "finished"] if "status" in records else records
        metric_columns = [c for c in finished.columns if c in names.ALL_METRIC_KEYS]
        return {row["run_id"]: {k: row[k] for k in metric_columns} for _, row in finished.iterrows()}
    if isinstance(records, Mapping):
        records = records.values()
    return {r.run_id: r.metrics for r in records if r.finished}


def seed_values(configs: Iterable[Config], index: Mapping[str, dict], metric: str = METRIC) -> pd.Series:
    """``metric`` of each config that has a record in ``index``, indexed by seed."""
    values = {c.seed: float(index[c.run_id][metric]) for c in configs if c.run_id in index}
    return pd.Series(values, dtype=float).sort_index()


# -- chance and the no-learning reference ------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def num_classes(dataset: str) -> int:
    return load_hierarchy(dataset).num_classes


def chance_top1(dataset: str) -> float:
    """Top-1 (in %) of guessing uniformly among ``dataset``'s classes."""
    return 100.0 / num_classes(dataset)


def _learned(mean: float, dataset: Optional[str]) -> bool:
    return dataset is None or pd.isna(mean) or mean >= NOT_LEARNED_FACTOR * chance_top1(dataset)


def no_learning_reference(configs: Iterable[Config], references: Optional[References]) -> float:
    """The top-1 (%) an arm of ``configs`` must beat to count as having learned something.

    Synthetic stand-ins: the mean over ``configs`` of their stored raw-pixel nearest-class-mean
    references (``references``, keyed by :func:`kesl_utils.ncm.data_key`); NaN if any is missing
    (the reading then says so, rather than judge without it). Real images, where no such reference
    is computed: :data:`~kesl_utils.comparison.NOT_LEARNED_FACTOR` × chance. NaN without configs.
    """
    configs = list(configs)
    if not configs:
        return math.nan
    if not ncm.applies(configs[0]):
        return NOT_LEARNED_FACTOR * chance_top1(configs[0].dataset)
    references = references or {}
    return float(np.mean([references.get(ncm.data_key(c), math.nan) for c in configs]))


def seeds_below_reference(configs: Iterable[Config], index: Mapping[str, dict],
                          references: Optional[References]) -> list[int]:
    """The seeds of ``configs`` whose own top-1 is below the no-learning reference of their own images
    (stand-ins only: the stored nearest class mean of the same seed's data). An arm is read by its mean
    over seeds; these say where that mean hides a seed that learned less than the reference."""
    references = references or {}
    below = []
    for config in configs:
        reference = references.get(ncm.data_key(config))
        if config.run_id in index and reference is not None and ncm.applies(config) \
                and float(index[config.run_id][METRIC]) < float(reference):
            below.append(config.seed)
    return sorted(below)


# -- what a row shows ---------------------------------------------------------------------------------
#: Display columns of the paper's rows that describe the paper's run, not this one: renamed in the frames so
#: that no label of the paper's (Table 1's "ResNet-50", Table 3's learning rates) reads as this run's.
PAPER_COLUMNS = {"backbone": "paper backbone", "lr": "paper lr"}
#: Display columns of this run, read from the configs that filled the row, for tables whose rows name them
#: (Table 3: the learning rate the profile trains, :meth:`kesl_utils.profiles.Profile.learning_rate`).
THIS_RUN_COLUMNS = {"lr": lambda configs: f"{configs[0].lr:g}" if configs else ""}
#: Display columns that note how the paper's table is printed; not part of a row's label.
NOTE_COLUMNS = ("printed", "reading")
#: Display columns shown as "name value" in a label (the first column of a row is shown bare).
_NAMED_IN_LABELS = ("lr", "λ", "T", "α", "β")


def row_columns(name: str) -> list[str]:
    """The display columns of table ``name``'s rows as :func:`build_table` names them (the paper's
    backbone as ``"paper backbone"``, its learning rate as ``"paper lr"``, each followed by this run's
    value where :data:`THIS_RUN_COLUMNS` has one)."""
    columns = []
    for column in table_spec(name).columns:
        columns.append(PAPER_COLUMNS.get(column, column))
        if column in THIS_RUN_COLUMNS:
            columns.append(column)
    return columns


def backbone_names(configs: Iterable[Config]) -> str:
    """The display names (:data:`kesl_utils.names.BACKBONES`) of the backbones of ``configs``, in order, each
    once, joined by ", "; empty without configs."""
    seen = dict.fromkeys(c.backbone for c in configs)
    return ", ".join(names.BACKBONES[b].display if b in names.BACKBONES else b for b in seen)


def _label(columns: Mapping[str, object], backbone: str = "") -> str:
    parts = []
    for k, (column, value) in enumerate(columns.items()):
        if column in NOTE_COLUMNS or column in PAPER_COLUMNS.values() or str(value) in ("", "nan", "None", "–"):
            continue
        if column == "row" and str(value).isdigit():
            parts.append(f"row {value}")
        elif column in _NAMED_IN_LABELS:
            parts.append(f"{column} {value}")
        else:
            parts.append(str(value))
    if backbone and backbone not in parts:
        parts.append(backbone)
    return " · ".join(parts)


def row_labels(table: pd.DataFrame, *, backbone: Optional[bool] = None) -> pd.Series:
    """One label per row of :func:`build_table`'s frame, for figures: the row's own display columns that are
    not empty (never the paper's backbone, never the notes of how the paper printed it), and this run's
    backbone (``this_run_backbone``).

    backbone: show this run's backbone in every label; ``None``: where the table has more than one, or
    the paper's rows name a backbone (Tables 1 and 5).
    """
    display = [c for c in table.columns if c not in _NUMERIC_COLUMNS]
    backbones = {b for b in table.get("this_run_backbone", pd.Series(dtype=str)) if b}
    if backbone is None:
        backbone = len(backbones) > 1 or PAPER_COLUMNS["backbone"] in table.columns
    return pd.Series([_label({c: row[c] for c in display}, row["this_run_backbone"] if backbone else "")
                      for _, row in table.iterrows()], index=table.index, dtype=object)


# -- tables ----------------------------------------------------------------------------------------
def build_table(name: str, records: Records, *, profile: str, seeds=None,
                references: Optional[References] = None) -> pd.DataFrame:
    """Paper table ``name`` with this run's numbers from ``records`` (joined by run id).

    Columns: the row's display columns (:func:`row_columns`: the paper's row text, its backbone as
    ``paper backbone``), ``kind`` (``run`` | ``quoted`` | ``reference``), ``paper``,
    ``this_run_backbone`` (the display name of the backbone of the configs whose run ids filled the row;
    of the row's configs while none is measured; empty for quoted and reference rows), ``this_run``
    (mean top-1 over seeds), ``this_run_sd`` (sample standard deviation), ``n_seeds``, ``chance``,
    ``learned`` (mean ≥ 5 × chance), ``reference`` (the no-learning reference of the row's measured
    seeds, :func:`no_learning_reference`), ``below_reference``, ``seeds_below_reference`` (the seeds whose
    own top-1 is below their own images' reference, :func:`seeds_below_reference`) and ``run_ids``. No difference
    between the paper's number and this run's: on the stand-ins they are on unrelated scales. On
    synthetic profiles one ``reference`` row per dataset: the stored nearest-class-mean top-1 of the
    same images (``references``, keyed by
    :func:`kesl_utils.ncm.data_key`; empty where none is stored).
    """
    spec = table_spec(name)
    index = index_records(records)
    rows = []
    for row in spec.rows:
        configs = row.configs(profile, seeds)
        mean, sd, n = summary(seed_values(configs, index))
        measured = [c for c in configs if c.run_id in index]
        reference = no_learning_reference(measured, references)
        rows.append({**_paper_named(row.columns, measured or configs), "key": row.key,
                     "kind": "run" if row.runs_here else "quoted",
                     "paper": row.paper, "this_run_backbone": backbone_names(measured or configs),
                     "this_run": mean, "this_run_sd": sd, "n_seeds": n,
                     "chance": chance_top1(row.dataset) if row.dataset else math.nan,
                     "learned": _learned(mean, row.dataset), "reference": reference,
                     "below_reference": bool(mean < reference),
                     "seeds_below_reference": " ".join(str(s) for s in seeds_below_reference(measured, index,
                                                                                          references)),
                     "run_ids": " ".join(c.run_id for c in measured)})
    for dataset, configs in reference_configs(name, profile=profile, seeds=seeds).items():
        found = {c.seed: (references or {}).get(ncm.data_key(c)) for c in configs}
        mean, sd, n = summary(pd.Series({s: v for s, v in found.items() if v is not None}, dtype=float))
        columns = {column: "" for column in row_columns(name)}
        first = next(c for c in columns if c not in PAPER_COLUMNS.values())  # the words go in a column of ours
        columns[first] = f"no learning: nearest class mean on raw pixels ({_dataset_name(dataset)})"
        rows.append({**columns, "key": f"ncm/{dataset}", "kind": "reference", "paper": math.nan,
                     "this_run_backbone": "", "this_run": mean, "this_run_sd": sd, "n_seeds": n,
                     "chance": chance_top1(dataset), "learned": True,
                     "reference": math.nan, "below_reference": False, "seeds_below_reference": "",
                     "run_ids": ""})
    return pd.DataFrame(rows)


def reference_configs(name: str, *, profile: str, seeds=None) -> dict[str, list[Config]]:
    """``{dataset: configs}``: whose images each reference row of table ``name`` measures — the configs of the
    first run row of each dataset (one per seed), on the profiles where the reference applies
    (:func:`kesl_utils.ncm.applies`). The datasets in the order of their first run row."""
    first_row_of: dict[str, list[Config]] = {}
    for row in table_spec(name).rows:
        if row.runs_here:
            configs = row.configs(profile, seeds)
            if configs:
                first_row_of.setdefault(row.dataset, configs)
    return {dataset: configs for dataset, configs in first_row_of.items() if ncm.applies(configs[0])}


def _paper_named(columns: Mapping[str, object], configs: Optional[list] = None) -> dict:
    """A row's display columns with the paper's renamed (:data:`PAPER_COLUMNS`) and, where ``configs``
    are given, this run's value after each (:data:`THIS_RUN_COLUMNS`)."""
    named = {}
    for column, value in columns.items():
        named[PAPER_COLUMNS.get(column, column)] = value
        if configs is not None and column in THIS_RUN_COLUMNS:
            named[column] = THIS_RUN_COLUMNS[column](configs)
    return named


def _dataset_name(dataset: str) -> str:
    spec = names.DATASETS.get(dataset)
    return spec.display if spec is not None else dataset


def gains(name: str, records: Records, *, profile: str, seeds=None,
          references: Optional[References] = None) -> pd.DataFrame:
    """Each comparison of table ``name`` (row B − row A), paired by seed, and its reading.

    Columns: ``comparison``, ``paper`` (the paper's gain, from its rows), ``this_run`` (mean paired
    difference), ``this_run_sd``, ``n_seeds``, ``ci_low``/``ci_high`` (95 %), ``p_value``,
    ``baseline_top1``, ``ours_top1``, ``reference``
    (the no-learning reference of the paired seeds' images), ``chance_top1``, ``learned`` (both
    arms ≥ 5 × chance), ``reading`` (a key of :data:`kesl_utils.comparison.READINGS`) and
    ``verdict`` (its sentence).
    """
    spec = table_spec(name)
    index = index_records(records)
    rows = []
    for comparison_ in spec.comparisons:
        base_row, ours_row = spec.row(comparison_.baseline), spec.row(comparison_.ours)
        base_configs, ours_configs = base_row.configs(profile, seeds), ours_row.configs(profile, seeds)
        a, b = seed_values(base_configs, index), seed_values(ours_configs, index)
        paired = paired_stats((b - a).dropna())
        seeds_paired = set((b - a).dropna().index)
        base_mean, ours_mean = summary(a)[0], summary(b)[0]
        arms = [Arm(mean, no_learning_reference([c for c in configs if c.seed in seeds_paired], references))
                for mean, configs in ((base_mean, base_configs), (ours_mean, ours_configs))]
        paper_gain = spec.paper_gain(comparison_)
        read = reading(paired.interval, paired.n, paper=paper_gain, arms=arms)
        rows.append({"comparison": comparison_.label, "paper": paper_gain, "this_run": paired.mean,
                     "this_run_sd": paired.sd, "n_seeds": paired.n, "ci_low": paired.ci_low,
                     "ci_high": paired.ci_high, "p_value": paired.p_value,
                     "baseline_top1": base_mean, "ours_top1": ours_mean,
                     "reference": pd.Series([arm.reference for arm in arms], dtype=float).max(),
                     "chance_top1": chance_top1(base_row.dataset),
                     "learned": _learned(base_mean, base_row.dataset) and _learned(ours_mean, ours_row.dataset),
                     "reading": read.key, "verdict": read.sentence})
    return pd.DataFrame(rows)


# -- display and files ---------------------------------------------------------------------------------
_NUMERIC_COLUMNS = {"key", "kind", "paper", "this_run_backbone", "this_run", "this_run_sd", "n_seeds", "chance",
                    "learned", "reference", "below_reference", "seeds_below_reference", "run_ids"}


def _flag(learned: bool, below_reference: bool) -> str:
    if not learned:
        return " (did not learn)"
    return " (below the no-learning reference)" if below_reference else ""


#: The display column of this run's backbone (:func:`format_table`); the paper's is ``"paper backbone"``.
BACKBONE_COLUMN = "backbone (this run)"


def format_table(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A display copy: the row's columns, the paper's top-1, this run's backbone (:data:`BACKBONE_COLUMN`)
    and its top-1 as mean ± sample sd side by side, without a difference; arms that did not learn (or stayed
    below the no-learning reference) marked."""
    spec_columns = [c for c in table.columns if c not in _NUMERIC_COLUMNS]
    shown = table[spec_columns].copy()
    shown["paper"] = ["" if pd.isna(p) else f"{p:.{digits}f}" for p in table["paper"]]
    shown[BACKBONE_COLUMN] = table["this_run_backbone"]
    shown["this run"] = [mean_sd(m, s, digits) + ("" if pd.isna(m) else _flag(ok, below))
                         for m, s, ok, below in zip(table["this_run"], table["this_run_sd"], table["learned"],
                                                    table["below_reference"])]
    shown["seeds"] = [str(int(n)) if n else "" for n in table["n_seeds"]]
    return shown.reset_index(drop=True)


def format_gains(gain_table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A display copy of :func:`gains`: the paper's gain and this run's paired gain side by side, with its 95 %
    interval, p, seeds and reading."""
    return pd.DataFrame({
        "comparison": gain_table["comparison"],
        "paper's gain": [signed(p, digits) for p in gain_table["paper"]],
        "this run's gain (mean ± sd)": [mean_sd(m, s, digits) for m, s in zip(gain_table["this_run"],
                                                                     gain_table["this_run_sd"])],
        "95 % CI": [interval_text(lo, hi, digits) for lo, hi in zip(gain_table["ci_low"], gain_table["ci_high"])],
        "p": [p_text(p) for p in gain_table["p_value"]],
        "seeds": gain_table["n_seeds"].astype(int).astype(str),
        "reading": gain_table["verdict"],
    })


def table_title(name: str, table: pd.DataFrame, *, profile: str, plain: bool = False) -> str:
    """The paper table's title, a backbone it names marked as the paper's ("(paper: ResNet-50)"), then the
    profile and this run's backbones, read from the table's ``this_run_backbone`` column. ``plain``: no
    markdown (a figure's title)."""
    title = table_spec(name).title
    for spec in names.BACKBONES.values():
        title = title.replace(f"({spec.display})", f"(paper: {spec.display})")
    backbones = ", ".join(dict.fromkeys(b for b in table["this_run_backbone"] if b))
    shown = profile if plain else f"`{profile}`"
    return f"{title} — profile {shown}" + (f", this run: {backbones}" if backbones else "")


def write_table(name: str, table: pd.DataFrame, gain_table: pd.DataFrame, *, profile: str,
                folder: Union[str, os.PathLike], note: str = "") -> dict[str, Path]:
    """Write ``<folder>/<name>.{csv,md,tex}`` and ``<name>_gains.csv`` (:func:`kesl_utils.comparison.write_study`).

    The csv files hold the numbers; the markdown holds the display table, the gains with their
    intervals and readings in words, and the statistics note; the tex file the two display tables.
    """
    title = table_title(name, table, profile=profile)
    blocks = [note, comparison.DisplayTable(format_table(table), label=f"tab:{name}"),
              comparison.DisplayTable(format_gains(gain_table), heading="Comparisons, paired by seed",
                                      label=f"tab:{name}-gains", caption=f"{title}: comparisons, paired by seed"),
              prose.describe_gains(gain_table),
              "" if comparison.STATISTICS_NOTE in note else comparison.STATISTICS_NOTE]
    return comparison.write_study(folder, name, profile=profile, title=title,
                                  numbers={"": table, "gains": gain_table}, blocks=blocks)


# -- what a notebook and the command line show ----------------------------------------------------------
@dataclass
class Report:
    """Everything one paper table shows: the runs, the table, the gains, the banner and the files, and what they
    were built for — the seeds (``None``: the profile's) and the no-learning references read
    (``{ncm.data_key: top-1}``) — so that what a notebook shows can name the files behind each number
    (:mod:`kesl_utils.published`)."""

    name: str
    profile: str
    results: pd.DataFrame
    table: pd.DataFrame
    gains: pd.DataFrame
    note: str
    files: dict
    seeds: Optional[tuple] = None
    references: dict = field(default_factory=dict)


def report(name: str, results: Records, *, profile: str, results_dir: Union[str, os.PathLike], seeds=None,
           write: bool = True) -> Report:
    """Build table ``name`` from ``results`` and (``write``) write its files to ``<results_dir>/tables/``.

    ``results``: what the caller already has — the frame of :func:`kesl_utils.experiments.run_all`
    or ``results_frame`` over the table's configs, or run records. Nothing is trained or computed:
    the no-learning references are read from ``<results_dir>/references/`` (:func:`kesl_utils.ncm.load`).
    """
    configs = table_spec(name).configs(profile, seeds)
    references = ncm.references(configs, results_dir)
    table = build_table(name, results, profile=profile, seeds=seeds, references=references)
    gain_table = gains(name, results, profile=profile, seeds=seeds, references=references)
    note = prose.profile_note(profile, configs)
    files = write_table(name, table, gain_table, profile=profile, folder=Path(results_dir) / "tables",
                        note=note) if write else {}
    return Report(name, profile, results, table, gain_table, note, files,
                  seeds=None if seeds is None else tuple(seeds), references=dict(references))


# -- where the mistakes fall, training curves ------------------------------------------------------------
def mean_pair_distance(dataset: str) -> float:
    """Mean d_ij = e_ij − 1 over all ordered pairs of distinct classes of ``dataset``'s shipped hierarchy."""
    e = load_hierarchy(dataset).edge_distances()
    off_diagonal = ~np.eye(len(e), dtype=bool)
    return float((e[off_diagonal].astype(float) - 1.0).mean())


def mistake_summary(name: str, records: Records, *, profile: str, seeds=None) -> pd.DataFrame:
    """Where the mistakes fall, per run row of table ``name`` (joined by run id).

    ``mistake_severity`` is the mean d between the true and the predicted class over the wrong
    top-1 predictions; next to it, the mean d over all pairs of distinct classes — what the
    mistakes would average if they fell at random. A ratio well below 1 means most mistakes are
    among near relatives. Mean ± sample sd over seeds. ``this_run_backbone``: the backbone of the runs
    measured (the paper's, where its rows name one, is ``paper backbone``). ``key``: the table row's key;
    ``run_ids``: the runs measured (space-separated), as in :func:`build_table`.
    """
    spec = table_spec(name)
    index = index_records(records)
    rows = []
    for row in spec.rows:
        if not row.runs_here:
            continue
        configs = row.configs(profile, seeds)
        severity = summary(seed_values(configs, index, "mistake_severity"))
        if severity[2] == 0:
            continue
        all_pairs = mean_pair_distance(row.dataset)
        measured = [c for c in configs if c.run_id in index]
        rows.append({**_paper_named(row.columns, measured), "key": row.key, "this_run_backbone": backbone_names(measured),
                     "mistake_severity": severity[0], "mistake_severity_sd": severity[1],
                     "hdist@1": summary(seed_values(configs, index, "hdist@1"))[0], "all_pairs_d": all_pairs,
                     "ratio": severity[0] / all_pairs, "n_seeds": severity[2],
                     "run_ids": " ".join(c.run_id for c in measured)})
    return pd.DataFrame(rows)


def format_mistakes(summary_table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A display copy of :func:`mistake_summary`: the row's own columns, this run's backbone and the numbers."""
    # the paper reports no mistakes: its backbone says nothing here
    numeric = {"key", "this_run_backbone", "mistake_severity", "mistake_severity_sd", "hdist@1", "all_pairs_d",
               "ratio", "n_seeds", "run_ids"} | set(PAPER_COLUMNS.values())
    shown = summary_table[[c for c in summary_table.columns if c not in numeric]].copy()
    shown[BACKBONE_COLUMN] = summary_table["this_run_backbone"]
    shown["mean d of mistakes"] = [mean_sd(m, s, digits) for m, s in zip(summary_table["mistake_severity"],
                                                                        summary_table["mistake_severity_sd"])]
    shown["hdist@1"] = [f"{v:.{digits}f}" for v in summary_table["hdist@1"]]
    shown["mean d, all pairs"] = [f"{v:.{digits}f}" for v in summary_table["all_pairs_d"]]
    shown["ratio"] = [f"{v:.{digits}f}" for v in summary_table["ratio"]]
    shown["seeds"] = summary_table["n_seeds"].astype(int).astype(str)
    return shown


def histories(name: str, *, profile: str, results_dir, seeds=None, label=None) -> dict[str, list[list[dict]]]:
    """Per-epoch histories of table ``name``'s finished runs (records under ``results_dir``), one entry per run row.

    ``label(row) -> str`` names a row in the legend (default: the label :func:`row_labels` gives it in the
    figures — its own display columns and the backbone of the records read, never the paper's row text).
    Reads each run's record.
    """
    spec = table_spec(name)
    found: list[tuple] = []
    for row in spec.rows:
        if not row.runs_here:
            continue
        loaded = [(config, load_record(config, results_dir)) for config in row.configs(profile, seeds)]
        loaded = [(config, record) for config, record in loaded if record is not None and record.history]
        if loaded:
            found.append((row, [config for config, _ in loaded], [record.history for _, record in loaded]))
    several = len({backbone_names(configs) for _, configs, _ in found}) > 1 or "backbone" in spec.columns
    keys: dict[tuple, str] = {}  # rows that print the same setting share their runs: one line, both names
    histories_of: dict[tuple, list[list[dict]]] = {}
    for row, configs, runs in found:
        key = label(row) if label is not None else _label(_paper_named(row.columns, configs),
                                                          backbone_names(configs) if several else "")
        ids = tuple(c.run_id for c in configs)
        keys[ids] = f"{keys[ids]} = {key}" if ids in keys else key
        histories_of.setdefault(ids, runs)
    return {keys[ids]: runs for ids, runs in histories_of.items()}
