"""Paper-vs-this-run tables, built only from run records, joined to the table specs by run id.

:func:`build_table` lays each row of a paper table (:mod:`kesl_utils.table_specs`) next to the
mean over seeds of the records of *that row's configs* — found by run id, so unrelated records
(other profiles, backbones, learning rates) never leak into a cell. Where no record exists the
cell is empty (NaN), never filled in. On the synthetic stand-ins each table also gets reference
rows: the raw-pixel nearest-class-mean classifier on the same images (no learning at all).

:func:`gains` reports each comparison of the spec (row B − row A) paired by seed — the two runs
share the seed, and on the synthetic profiles the seed also draws the stand-in dataset, so the
pairing removes what they have in common — as the mean difference, its sample standard
deviation, the 95 % confidence interval of the mean (t distribution, n − 1 degrees of freedom)
and the two-sided p-value of the paired t-test. Verdict words come from the interval only.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd
from scipy import stats

from . import experiments, names, paths
from .config import Config
from .hierarchy_files import load_hierarchy
from .records import RunRecord, load_record
from .reference import nearest_class_mean_top1
from .table_specs import TableSpec, table_spec

METRIC = "top1"

#: An arm whose mean top-1 stays below this multiple of chance (100 / number of classes) has not
#: learned in the budget; a gain measured against it says nothing about the loss.
NOT_LEARNED_FACTOR = 5.0

VERDICTS = {
    "same": "same direction as the paper, significant at 5 %",
    "opposite": "opposite direction, significant at 5 %",
    "none": "no evidence either way at this budget",
    "positive": "significantly positive at 5 % (the paper reports no difference)",
    "negative": "significantly negative at 5 % (the paper reports no difference)",
    "single": "a single seed: no interval, no verdict",
    "not_learned": "an arm did not learn (below 5 × chance): this difference says nothing about the loss",
    "missing": "not measured in this run",
}

Records = Union[Iterable[RunRecord], Mapping[str, RunRecord], pd.DataFrame]


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


# -- statistics ------------------------------------------------------------------------------------
def summary(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n − 1) and count of the non-missing ``values``."""
    values = values.dropna()
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if n > 1 else math.nan, n


def paired_stats(differences: Iterable[float]) -> dict:
    """Mean, sample sd, n, 95 % t-interval of the mean and two-sided paired t-test p-value."""
    d = pd.Series(list(differences), dtype=float).dropna()
    mean, sd, n = summary(d)
    out = {"mean": mean, "sd": sd, "n": n, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if n >= 2:
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        out.update(ci_low=mean - half, ci_high=mean + half)
        out["p_value"] = 1.0 if sd == 0 and mean == 0 else \
            (0.0 if sd == 0 else float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)))
    return out


def verdict(paper_gain: float, stats_row: Mapping, learned: bool = True) -> str:
    """The key of :data:`VERDICTS` a gain earns: only the 95 % interval decides."""
    if stats_row["n"] == 0 or pd.isna(stats_row["mean"]):
        return "missing"
    if not learned:
        return "not_learned"
    if stats_row["n"] < 2:
        return "single"
    low, high = stats_row["ci_low"], stats_row["ci_high"]
    sign = 1 if low > 0 else -1 if high < 0 else 0
    if sign == 0:
        return "none"
    if paper_gain == 0:
        return "positive" if sign > 0 else "negative"
    return "same" if sign == np.sign(paper_gain) else "opposite"


# -- tables ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def num_classes(dataset: str) -> int:
    return load_hierarchy(dataset).num_classes


def chance_top1(dataset: str) -> float:
    """Top-1 (in %) of guessing uniformly among ``dataset``'s classes."""
    return 100.0 / num_classes(dataset)


def _learned(mean: float, dataset: Optional[str]) -> bool:
    return dataset is None or pd.isna(mean) or mean >= NOT_LEARNED_FACTOR * chance_top1(dataset)


def build_table(name: str, records: Records, *, profile: str, seeds=None, references: bool = True) -> pd.DataFrame:
    """Paper table ``name`` with this run's numbers from ``records`` (joined by run id).

    Columns: the row's display columns, ``kind`` (``run`` | ``quoted`` | ``reference``), ``paper``,
    ``this_run`` (mean top-1 over seeds), ``this_run_sd`` (sample standard deviation), ``n_seeds``,
    ``difference`` (this run − paper), ``chance``, ``learned`` (mean ≥ 5 × chance) and ``run_ids``.
    ``references``: add the nearest-class-mean rows (synthetic profiles only).
    """
    spec = table_spec(name)
    index = index_records(records)
    rows = []
    for row in spec.rows:
        configs = row.configs(profile, seeds)
        mean, sd, n = summary(seed_values(configs, index))
        rows.append({**row.columns, "key": row.key, "kind": "run" if row.runs_here else "quoted",
                     "paper": row.paper, "this_run": mean, "this_run_sd": sd, "n_seeds": n,
                     "chance": chance_top1(row.dataset) if row.dataset else math.nan,
                     "learned": _learned(mean, row.dataset),
                     "run_ids": " ".join(c.run_id for c in configs if c.run_id in index)})
    if references:
        rows += reference_rows(spec, profile, seeds)
    table = pd.DataFrame(rows)
    table["difference"] = table["this_run"] - table["paper"]
    return table


def reference_rows(spec: TableSpec, profile: str, seeds=None) -> list[dict]:
    """One row per dataset of ``spec``: the raw-pixel nearest class mean on the same images."""
    out = []
    datasets = {}
    for row in spec.rows:
        if row.runs_here:
            datasets.setdefault(row.dataset, row)
    for dataset, row in datasets.items():
        configs = row.configs(profile, seeds)
        if not configs or configs[0].source != "synthetic":
            continue
        values = pd.Series({c.seed: nearest_class_mean_top1(c) for c in configs}, dtype=float)
        mean, sd, n = summary(values)
        label = f"no learning: nearest class mean on raw pixels ({dataset})"
        columns = {column: "" for column in spec.columns}
        columns[spec.columns[0]] = label
        out.append({**columns, "key": f"ncm/{dataset}", "kind": "reference", "paper": math.nan,
                    "this_run": mean, "this_run_sd": sd, "n_seeds": n, "chance": chance_top1(dataset),
                    "learned": True, "run_ids": ""})
    return out


def gains(name: str, records: Records, *, profile: str, seeds=None) -> pd.DataFrame:
    """Each comparison of table ``name``: paper vs this run, paired by seed (see the module docstring).

    Columns: ``comparison``, ``paper`` (from the paper's rows), ``this_run`` (mean paired
    difference), ``this_run_sd``, ``n_seeds``, ``ci_low``/``ci_high`` (95 %), ``p_value``,
    ``difference``, ``baseline_top1``, ``ours_top1``, ``chance_top1``, ``learned``, ``verdict``.
    """
    spec = table_spec(name)
    index = index_records(records)
    rows = []
    for comparison in spec.comparisons:
        base_row, ours_row = spec.row(comparison.baseline), spec.row(comparison.ours)
        a = seed_values(base_row.configs(profile, seeds), index)
        b = seed_values(ours_row.configs(profile, seeds), index)
        paired = paired_stats((b - a).dropna())
        base_mean, ours_mean = summary(a)[0], summary(b)[0]
        learned = _learned(base_mean, base_row.dataset) and _learned(ours_mean, ours_row.dataset)
        paper_gain = spec.paper_gain(comparison)
        rows.append({"comparison": comparison.label, "paper": paper_gain, "this_run": paired["mean"],
                     "this_run_sd": paired["sd"], "n_seeds": paired["n"], "ci_low": paired["ci_low"],
                     "ci_high": paired["ci_high"], "p_value": paired["p_value"],
                     "difference": paired["mean"] - paper_gain, "baseline_top1": base_mean, "ours_top1": ours_mean,
                     "chance_top1": chance_top1(base_row.dataset), "learned": learned,
                     "verdict": VERDICTS[verdict(paper_gain, paired, learned)]})
    return pd.DataFrame(rows)


def describe_gains(gain_table: pd.DataFrame) -> str:
    """One sentence per comparison, from the measured numbers (nothing here is hand-written)."""
    lines = []
    for row in gain_table.itertuples(index=False):
        if row.n_seeds == 0 or pd.isna(row.this_run):
            lines.append(f"- {row.comparison}: not measured in this run (paper: {row.paper:+.1f}).")
            continue
        if row.n_seeds >= 2:
            numbers = (f"{row.this_run:+.1f} points, 95 % CI [{row.ci_low:+.1f}, {row.ci_high:+.1f}], "
                       f"p = {row.p_value:.2g}, over {row.n_seeds} paired seeds")
        else:
            numbers = f"{row.this_run:+.1f} points, one seed"
        extra = "" if row.learned else (f" (Baseline {row.baseline_top1:.1f} %, Ours {row.ours_top1:.1f} %, "
                                        f"chance {row.chance_top1:.1f} %)")
        lines.append(f"- {row.comparison}: {numbers} (paper: {row.paper:+.1f}) — {row.verdict}{extra}.")
    return "\n".join(lines)


def _row_detail(spec: TableSpec, row) -> str:
    """The row's other display columns (lr, backbone, …), for naming it in a sentence."""
    extra = [f"{column} {row[column]}" for column in spec.columns[1:] if str(row[column]) not in ("", "nan")]
    return f" ({', '.join(extra)})" if extra else ""


#: The quick protocol's criterion: the CE baseline beats the raw-pixel nearest class mean by this much.
NCM_MARGIN = 5.0


def protocol_checks(name: str, table: pd.DataFrame, *, profile: str) -> str:
    """Markdown bullets: did this run meet the protocol's criteria? (computed, nothing hand-written)

    For each dataset with a reference row: the margin of the cross-entropy baseline (the profile's
    default backbone and learning rate) over the raw-pixel nearest class mean (criterion: at least
    :data:`NCM_MARGIN` points). Then the arms below that reference, and the arms below 5 × chance,
    whose comparisons say nothing.
    """
    spec = table_spec(name)
    lines = []
    measured = table[(table["kind"] == "run") & table["this_run"].notna()]
    if measured.empty:
        return "- No run of this table is finished yet; nothing can be judged."
    references = {row.key.split("/", 1)[1]: row.this_run for row in table[table["kind"] == "reference"].itertuples()}
    for dataset, reference in references.items():
        # the profile's own CE baseline of the dataset (default backbone and lr), else the table's first CE row
        default = experiments.profile_config(profile, dataset).run_id
        configs = {row.key: row.config(profile) for row in spec.rows if row.dataset == dataset}
        baselines = sorted((key for key, config in configs.items() if config.loss == "ce"),
                           key=lambda key: configs[key].run_id != default)
        base = table[table["key"].isin(baselines[:1])]
        if base.empty or pd.isna(base["this_run"].iloc[0]) or pd.isna(reference):
            continue
        margin = base["this_run"].iloc[0] - reference
        met = "met" if margin >= NCM_MARGIN else "**not met**"
        lines.append(f"- {dataset}: the cross-entropy baseline scores {base['this_run'].iloc[0]:.1f} %, "
                     f"{margin:+.1f} points against the nearest class mean on raw pixels "
                     f"({reference:.1f} %); criterion ≥ {NCM_MARGIN:+.0f}: {met}.")
    label = spec.columns[0]
    dataset_of = {row.key: row.dataset for row in spec.rows}
    under_ncm = [f"{row[label]}{_row_detail(spec, row)} ({row['this_run']:.1f} % against "
                 f"{references[dataset_of[row['key']]]:.1f} %)"
                 for _, row in measured.iterrows()
                 if dataset_of[row["key"]] in references and row["this_run"] < references[dataset_of[row["key"]]]]
    if under_ncm:
        lines.append(f"- {len(under_ncm)} of {len(measured)} measured arms score below the nearest class mean of "
                     f"their dataset: {'; '.join(under_ncm)}. They learned less, in this budget, than a classifier "
                     "that learns nothing; a comparison involving them says more about the budget than the method.")
    below = measured[~measured["learned"].astype(bool)]
    if below.empty:
        lines.append(f"- Every measured arm reaches {NOT_LEARNED_FACTOR:g} × chance "
                     f"({len(measured)} of {len(measured)} rows).")
    else:
        names_below = ", ".join(f"{row[label]} ({row['this_run']:.1f} %)" for _, row in below.iterrows())
        lines.append(f"- {len(below)} of {len(measured)} measured arms stay below {NOT_LEARNED_FACTOR:g} × "
                     f"chance: {names_below}; their comparisons measure nothing.")
    return "\n".join(lines)


# -- formatting and files ----------------------------------------------------------------------------
def mean_sd(mean: float, sd: float, digits: int = 1) -> str:
    """``mean ± sd``; the mean alone without a spread, empty when nothing was measured."""
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" if pd.isna(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def format_table(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A display copy: "this run" as mean ± sample sd, differences signed, arms that did not learn marked."""
    spec_columns = [c for c in table.columns if c not in _NUMERIC_COLUMNS]
    shown = table[spec_columns].copy()
    shown["paper"] = ["" if pd.isna(p) else f"{p:.{digits}f}" for p in table["paper"]]
    shown["this run"] = [mean_sd(m, s, digits) + ("" if ok else " (did not learn)")
                         for m, s, ok in zip(table["this_run"], table["this_run_sd"], table["learned"])]
    shown["difference"] = ["" if pd.isna(d) else f"{d:+.{digits}f}" for d in table["difference"]]
    shown["seeds"] = [str(int(n)) if n else "" for n in table["n_seeds"]]
    return shown.reset_index(drop=True)


_NUMERIC_COLUMNS = {"key", "kind", "paper", "this_run", "this_run_sd", "n_seeds", "difference", "chance", "learned",
                    "run_ids"}


def format_gains(gain_table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A display copy of :func:`gains`."""
    return pd.DataFrame({
        "comparison": gain_table["comparison"],
        "paper": [f"{p:+.{digits}f}" for p in gain_table["paper"]],
        "this run (mean ± sd)": [mean_sd(m, s, digits) for m, s in zip(gain_table["this_run"],
                                                                     gain_table["this_run_sd"])],
        "95 % CI": ["" if pd.isna(lo) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"
                    for lo, hi in zip(gain_table["ci_low"], gain_table["ci_high"])],
        "p": ["" if pd.isna(p) else f"{p:.2g}" for p in gain_table["p_value"]],
        "seeds": gain_table["n_seeds"].astype(int).astype(str),
        "verdict": gain_table["verdict"],
    })


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency needed)."""
    header = [str(c) for c in frame.columns]
    body = [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


STATISTICS_NOTE = ("± is the sample standard deviation over seeds (n − 1). A gain is paired by seed; its 95 % "
                   "confidence interval uses the t distribution with n − 1 degrees of freedom, and p is the "
                   "two-sided paired t-test. Verdicts come from the interval only.")


def write_table(name: str, table: pd.DataFrame, gain_table: pd.DataFrame, *, profile: str,
                note: str = "") -> dict[str, Path]:
    """Write ``<results>/tables/<name>.{csv,md,tex}`` and ``<name>_gains.csv``.

    The csv files hold the numbers; the markdown holds the display table, the gains with their
    intervals and verdicts in words, and the statistics note; the tex file holds the display table.
    """
    folder = paths.tables_dir(profile)
    shown = format_table(table)
    title = f"{table_spec(name).title} — profile `{profile}`"
    md = (f"### {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(shown)
          + "\n\n**Comparisons, paired by seed**\n\n" + to_markdown(format_gains(gain_table)) + "\n"
          + describe_gains(gain_table) + f"\n\n{STATISTICS_NOTE}\n")
    tex = shown.to_latex(index=False, escape=True, caption=title.replace("`", ""), label=f"tab:{name}")
    out = {"csv": folder / f"{name}.csv", "gains_csv": folder / f"{name}_gains.csv", "md": folder / f"{name}.md",
           "tex": folder / f"{name}.tex"}
    paths.atomic_write_text(out["csv"], table.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["gains_csv"], gain_table.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["md"], md)
    paths.atomic_write_text(out["tex"], tex)
    return out


def budget(configs: Iterable[Config]) -> dict:
    """What the runs of ``configs`` actually were: image size, images per class, epochs, backbones, pretraining."""
    configs = list(configs)

    def values(attribute):
        return sorted({getattr(c, attribute) for c in configs}, key=str)

    pretrain = sorted({(c.pretrain.dataset, c.pretrain.n_per_class, c.pretrain.epochs) for c in configs
                       if c.pretrain is not None}, key=str)
    return {"image_size": values("image_size"), "n_per_class": values("n_per_class"),
            "n_test_per_class": values("n_test_per_class"), "epochs": values("epochs"),
            "backbones": values("backbone"), "sources": values("source"), "pretrain": pretrain,
            "imagenet_weights": any(c.pretrained for c in configs), "datasets": values("dataset")}


def _listing(values) -> str:
    return ", ".join("all" if v is None else str(v) for v in values)


def profile_note(profile: str, configs: Iterable[Config]) -> str:
    """The plain-words statement shown above a table: what kind of number "this run" is, with the
    budget read from the table's own configs (not from a description of the profile)."""
    b = budget(configs)
    epochs = _listing(b["epochs"])
    start = []
    if b["pretrain"]:
        start.append("backbones on CUB pretrained on a synthetic ImageNet stand-in ("
                     + "; ".join(f"{d}, {n} images per class, {e} epochs" for d, n, e in b["pretrain"])
                     + ") and fine-tuned")
    if b["imagenet_weights"]:
        start.append("ImageNet-pretrained backbones fine-tuned")
    if not start or any(d != "cub" for d in b["datasets"]):
        start.append("trained from scratch" + (" on the ImageNet subsets" if b["pretrain"] else ""))
    training = "; ".join(start)
    if "real" in b["sources"]:
        return (f"**Profile `{profile}`:** the real datasets, {_listing(b['image_size'])}-px crops, {epochs} epochs, "
                f"{_listing(b['backbones'])}; {training}. The paper's settings where it states them (the README "
                "lists our choices where it does not): \"this run\" numbers are a reproduction attempt.")
    return (f"**Profile `{profile}` — not a reproduction of the paper's numbers.** The datasets are synthetic "
            f"stand-ins: generated {_listing(b['image_size'])}-px images whose classes follow the *real* class "
            f"hierarchy (CUB taxonomy or WordNet subnet), {_listing(b['n_per_class'])} training and "
            f"{_listing(b['n_test_per_class'])} test images per class, {epochs} epochs on a CPU "
            f"({_listing(b['backbones'])}; {training}). Absolute accuracies are not comparable with the paper's; "
            "what this run can test is whether KESL's *gain* over the baseline, under the same λ, T, α, β, points "
            "the same way. " + STATISTICS_NOTE)


# -- what a notebook and the command line show ----------------------------------------------------------
@dataclass
class Report:
    """Everything one paper table shows: the runs, the table, the gains, the banner and the files."""

    name: str
    profile: str
    results: pd.DataFrame
    table: pd.DataFrame
    gains: pd.DataFrame
    note: str
    files: dict


def report(name: str, profile: str, *, seeds=None, data_root=None, device=None, run: bool = True,
           quiet: bool = True, progress: bool = True, write: bool = True) -> Report:
    """Run (or, with ``run=False``, only read) table ``name``'s configs, build it, and write its files."""
    configs = table_spec(name).configs(profile, seeds)
    results = (experiments.run_all(configs, data_root=data_root, device=device, quiet=quiet, progress=progress)
               if run else experiments.results_frame(configs, data_root=data_root))
    table = build_table(name, results, profile=profile, seeds=seeds)
    gain_table = gains(name, results, profile=profile, seeds=seeds)
    note = profile_note(profile, configs)
    files = write_table(name, table, gain_table, profile=profile, note=note) if write else {}
    return Report(name, profile, results, table, gain_table, note, files)


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
    among near relatives. Mean ± sample sd over seeds.
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
        rows.append({**row.columns, "mistake_severity": severity[0], "mistake_severity_sd": severity[1],
                     "hdist@1": summary(seed_values(configs, index, "hdist@1"))[0], "all_pairs_d": all_pairs,
                     "ratio": severity[0] / all_pairs, "n_seeds": severity[2]})
    return pd.DataFrame(rows)


def format_mistakes(summary_table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A display copy of :func:`mistake_summary`."""
    numeric = {"mistake_severity", "mistake_severity_sd", "hdist@1", "all_pairs_d", "ratio", "n_seeds"}
    shown = summary_table[[c for c in summary_table.columns if c not in numeric]].copy()
    shown["mean d of mistakes"] = [mean_sd(m, s, digits) for m, s in zip(summary_table["mistake_severity"],
                                                                        summary_table["mistake_severity_sd"])]
    shown["hdist@1"] = [f"{v:.{digits}f}" for v in summary_table["hdist@1"]]
    shown["mean d, all pairs"] = [f"{v:.{digits}f}" for v in summary_table["all_pairs_d"]]
    shown["ratio"] = [f"{v:.{digits}f}" for v in summary_table["ratio"]]
    shown["seeds"] = summary_table["n_seeds"].astype(int).astype(str)
    return shown


def histories(name: str, *, profile: str, seeds=None, label=None) -> dict[str, list[list[dict]]]:
    """Per-epoch histories of table ``name``'s finished runs, one entry per run row.

    ``label(row) -> str`` names a row in the legend (default: its display columns as
    ``field=value``, so a legend says what each line is). Reads each run's record.
    """
    spec = table_spec(name)
    grouped: dict[str, list[list[dict]]] = {}
    for row in spec.rows:
        if not row.runs_here:
            continue
        key = label(row) if label is not None else " · ".join(f"{k}={v}" for k, v in row.columns.items()
                                                             if k not in ("printed", "reading"))
        for config in row.configs(profile, seeds):
            record = load_record(config)
            if record is not None:
                grouped.setdefault(key, []).append(record.history)
    return grouped
