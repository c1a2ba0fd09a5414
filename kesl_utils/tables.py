"""Paper-vs-this-run tables, built only from run records.

Each builder takes the tidy results frame that :func:`kesl_utils.experiments.run_all` (or
``results_frame``) returns — one row per run, config fields plus metrics — and lays it next to the
paper's numbers from :mod:`kesl_utils.paper`. A "this run" cell is the mean ± standard deviation of
``top1`` over the seeds that finished; where no run matched, the cell is empty (NaN), never filled in.

The KESL gain (Ours − Baseline) is computed per seed — both runs share the seed, so the pairing
removes the seed-to-seed variation they have in common — then averaged.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import paper, paths
from .hierarchy import DATASETS, load_hierarchy

from .experiments import BASELINE, OURS  # "Ours" = Table 4's last row (λ 0.5, T 2, α 1, β 0.1)

METRIC = "top1"


def _matches(results: pd.DataFrame, match: dict) -> pd.Series:
    keep = pd.Series(True, index=results.index)
    for key, value in match.items():
        if key not in results.columns:
            raise KeyError(f"results frame has no column {key!r} (columns: {', '.join(results.columns)})")
        column = results[key]
        if value is None:
            keep &= column.isna()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            keep &= np.isclose(pd.to_numeric(column, errors="coerce").astype(float), float(value))
        else:
            keep &= column == value
    if "status" in results.columns:
        keep &= results["status"] == "finished"
    return keep


def seed_values(results: pd.DataFrame, match: dict, metric: str = METRIC) -> pd.Series:
    """The metric of every finished run matching ``match``, indexed by seed."""
    rows = results[_matches(results, match)]
    return rows.set_index("seed")[metric].astype(float).sort_index()


def _summary(values: pd.Series) -> tuple[float, float, int]:
    n = int(values.notna().sum())
    if n == 0:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if n > 1 else math.nan, n


def _attach(paper_rows: pd.DataFrame, results: pd.DataFrame, matches: list[dict | None]) -> pd.DataFrame:
    """Add ``this_run``, ``this_run_std``, ``n_seeds`` and ``difference`` columns to ``paper_rows``."""
    table = paper_rows.rename(columns={METRIC: "paper"}).reset_index(drop=True)
    stats = [_summary(seed_values(results, m)) if m is not None else (math.nan, math.nan, 0) for m in matches]
    table["this_run"] = [s[0] for s in stats]
    table["this_run_std"] = [s[1] for s in stats]
    table["n_seeds"] = [s[2] for s in stats]
    table["difference"] = table["this_run"] - table["paper"]
    return table


# An arm whose mean top-1 stays below this multiple of chance (100 / number of classes) has not
# learned in the budget; a gain measured against it says nothing about the loss.
NOT_LEARNED_FACTOR = 5.0


@functools.lru_cache(maxsize=None)
def _edge_distances(dataset: str) -> np.ndarray:
    """e_ij of ``dataset``'s shipped hierarchy, computed once per process (chance and pair distances)."""
    return load_hierarchy(dataset).edge_distances()


def chance_top1(dataset: str) -> float:
    """Top-1 (in %) of guessing uniformly among ``dataset``'s classes; NaN for an unknown dataset."""
    if dataset not in DATASETS:
        return math.nan
    return 100.0 / len(_edge_distances(dataset))


def _paired_gain(baseline: pd.Series, ours: pd.Series) -> tuple[float, float, int]:
    return _summary((ours - baseline).dropna())


def gain(results: pd.DataFrame, baseline: dict, ours: dict) -> tuple[float, float, int]:
    """Mean and std over seeds of (ours − baseline) top-1, pairing runs that share a seed."""
    return _paired_gain(seed_values(results, baseline), seed_values(results, ours))


def _gain_row(label: str, paper_gain: float, results: pd.DataFrame, baseline: dict, ours: dict) -> dict:
    a, b = seed_values(results, baseline), seed_values(results, ours)
    stats = _paired_gain(a, b)
    dataset = baseline.get("dataset", ours.get("dataset"))
    return {"comparison": label, "paper": paper_gain, "this_run": stats[0],
            "this_run_std": stats[1], "n_seeds": stats[2], "difference": stats[0] - paper_gain,
            "baseline_top1": _summary(a)[0], "ours_top1": _summary(b)[0],
            "chance_top1": chance_top1(dataset) if dataset else math.nan}


# --- the five tables -----------------------------------------------------------------------------

def cub_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Table 1: the paper's rows; only Baseline and Ours get a "this run" value."""
    rows = paper.cub_comparison()
    matches = [dict(dataset="cub", **BASELINE) if m == "Baseline" else
               dict(dataset="cub", **OURS) if m == "Ours" else None for m in rows["method"]]
    table = _attach(rows, results, matches)
    table["this_run_backbone"] = [_backbone(results, m) for m in matches]
    return table


def general_recognition(results: pd.DataFrame) -> pd.DataFrame:
    """Table 2: Baseline and Ours on each general-recognition dataset."""
    rows = paper.general_recognition()
    matches = [dict(dataset=d, **(BASELINE if m == "Baseline" else OURS))
               for d, m in zip(rows["dataset"], rows["method"])]
    return _attach(rows, results, matches)


def label_smoothing(results: pd.DataFrame) -> pd.DataFrame:
    """Table 3: label smoothing (ε from the config) and Ours at the paper's learning rates."""
    rows = paper.label_smoothing()
    matches = [dict(dataset="cub", loss="label_smoothing", lr=lr) if loss == "label_smoothing"
               else dict(dataset="cub", lr=lr, **OURS) for loss, lr in zip(rows["loss"], rows["lr"])]
    return _attach(rows, results, matches)


def hyperparameter_ablation(results: pd.DataFrame) -> pd.DataFrame:
    """Table 4 as printed, with our reading (λ of blank cells = 0.5; 97.1 read as 87.1).

    ``paper`` holds the value as we read it; ``top1_printed`` keeps what the paper printed.
    Rows that print the same setting share one run, so they show the same "this run" value.
    """
    rows = paper.hyperparameter_ablation()
    matches = []
    for lam, T, alpha, beta in zip(rows["lam"], rows["T"], rows["alpha"], rows["beta"]):
        if pd.isna(lam):
            matches.append(dict(dataset="cub", **BASELINE))
        else:
            matches.append(dict(dataset="cub", loss="kesl", lam=lam, T=T, alpha=alpha, beta=beta))
    return _attach(rows, results, matches)


def backbone_ablation(results: pd.DataFrame) -> pd.DataFrame:
    """Table 5: each backbone without and with KESL."""
    rows = paper.backbone_ablation()
    matches = [dict(dataset="cub", backbone=b, **(BASELINE if m == "Baseline" else OURS))
               for b, m in zip(rows["backbone"], rows["method"])]
    return _attach(rows, results, matches)


BUILDERS = {
    "cub_comparison": cub_comparison,
    "general_recognition": general_recognition,
    "label_smoothing": label_smoothing,
    "hyperparameter_ablation": hyperparameter_ablation,
    "backbone_ablation": backbone_ablation,
}


def build_table(name: str, results: pd.DataFrame) -> pd.DataFrame:
    """The paper-vs-this-run table ``name`` (a key of :data:`BUILDERS`)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(BUILDERS)}")
    return BUILDERS[name](results)


def gains(name: str, results: pd.DataFrame) -> pd.DataFrame:
    """KESL − baseline per comparison the table makes, paper vs this run (paired by seed)."""
    rows = []
    if name in ("cub_comparison", "hyperparameter_ablation"):
        rows.append(_gain_row("Ours − Baseline (CUB)", round(87.1 - 85.8, 1), results,
                              dict(dataset="cub", **BASELINE), dict(dataset="cub", **OURS)))
    elif name == "general_recognition":
        rows += _gains_per(results, paper.general_recognition(), "dataset", "dataset_name", {})
    elif name == "label_smoothing":
        rows.append(_gain_row("Ours (lr 0.1) − label smoothing (lr 0.001)", round(87.1 - 86.5, 1), results,
                              dict(dataset="cub", loss="label_smoothing", lr=0.001),
                              dict(dataset="cub", lr=0.1, **OURS)))
    elif name == "backbone_ablation":
        rows += _gains_per(results, paper.backbone_ablation(), "backbone", "backbone_name", {"dataset": "cub"})
    else:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(BUILDERS)}")
    return pd.DataFrame(rows)


def _gains_per(results: pd.DataFrame, frame: pd.DataFrame, key: str, display: str, fixed: dict) -> list[dict]:
    """One gain row per value of ``key`` (a dataset or a backbone) of a Baseline/Ours paper table."""
    rows = []
    for value, part in frame.groupby(key, sort=False):
        p = part.set_index("method")["top1"]
        match = {**fixed, key: value}
        rows.append(_gain_row(f"Ours − Baseline ({part[display].iloc[0]})", round(p["Ours"] - p["Baseline"], 1),
                              results, {**match, **BASELINE}, {**match, **OURS}))
    return rows


def _backbone(results: pd.DataFrame, match: dict | None) -> str:
    if match is None:
        return ""
    found = results[_matches(results, match)]
    return ", ".join(sorted(found["backbone"].unique())) if "backbone" in found else ""


# --- formatting and files -------------------------------------------------------------------------

def _mean_std(mean: float, std: float, digits: int) -> str:
    """``mean ± std``; the mean alone without a spread, empty when nothing was measured."""
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A display copy: "this run" as ``mean ± std``, differences signed, empty where not measured."""
    shown = table.copy()
    shown["this run"] = [_mean_std(m, s, digits) for m, s in zip(table["this_run"], table["this_run_std"])]
    shown["difference"] = ["" if pd.isna(d) else f"{d:+.{digits}f}" for d in table["difference"]]
    shown["paper"] = [f"{p:.{digits}f}" for p in table["paper"]]
    shown["seeds"] = [str(n) if n else "" for n in table["n_seeds"]]
    drop = [c for c in ("this_run", "this_run_std", "n_seeds", "reproduced_here", "dataset", "loss",
                        "lam", "T", "top1_printed", "baseline_top1", "ours_top1", "chance_top1")
            if c in shown.columns]
    shown = shown.drop(columns=drop)
    if "top1_printed" in table.columns:
        shown.insert(shown.columns.get_loc("paper"), "printed", [f"{v:.1f}" for v in table["top1_printed"]])
    shown = shown.rename(columns={"this_run_backbone": "backbone (this run)"})
    ordered = [c for c in shown.columns if c not in ("paper", "this run", "difference", "seeds")]
    return shown[ordered + ["paper", "this run", "difference", "seeds"]]


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency needed)."""
    header = [str(c) for c in frame.columns]
    body = [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def write_table(name: str, table: pd.DataFrame, *, profile: str, note: str = "",
                gains: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``<results>/tables/<name>.{csv,md,tex}``: the numbers (csv) and the display form (md, tex).

    With ``gains`` (from :func:`gains`), the markdown also carries the KESL gain paired by seed and its
    reading in words (:func:`describe_gains`), and the gains' numbers go to ``<name>_gains.csv``.
    """
    folder = paths.tables_dir()
    shown = format_table(table)
    title = f"{paper.TITLES.get(name, name)} — profile `{profile}`"
    md = f"### {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(shown)
    if gains is not None:
        md += ("\n\n**The KESL gain, paired by seed**\n\n" + to_markdown(format_table(gains)) + "\n\n"
               + describe_gains(gains))
    tex = shown.to_latex(index=False, escape=True, caption=title.replace("`", ""), label=f"tab:{name}")
    out = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md", "tex": folder / f"{name}.tex"}
    if gains is not None:
        out["gains_csv"] = folder / f"{name}_gains.csv"
        paths.atomic_write_text(out["gains_csv"], gains.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["csv"], table.assign(profile=profile).to_csv(index=False))
    paths.atomic_write_text(out["md"], md)
    paths.atomic_write_text(out["tex"], tex)
    return out


def profile_note(profile: str) -> str:
    """The plain-words statement shown above every table: what kind of number "this run" is."""
    if profile == "paper":
        return ("**Profile `paper`:** real datasets, ImageNet-pretrained backbones where the protocol says so, "
                "the paper's settings where it states them (the README lists our choices where it does not). "
                "\"This run\" numbers are a reproduction attempt of the paper's numbers.")
    return (f"**Profile `{profile}` — not a reproduction of the paper's numbers.** The dataset here is a synthetic "
            "stand-in: generated 32-px images whose classes follow the *real* class hierarchy (CUB taxonomy or "
            "WordNet subnet), trained from scratch for a few epochs on a CPU. Absolute accuracies are not comparable "
            "with the paper's; the question this run can answer is whether KESL's *gain* over the baseline, under "
            "the same λ, T, α, β, points the same way. The ± is the standard deviation over seeds.")


def mean_pair_distance(dataset: str) -> float:
    """Mean d_ij = e_ij − 1 over all ordered pairs of distinct classes of ``dataset``'s shipped hierarchy."""
    e = _edge_distances(dataset)
    off_diagonal = ~np.eye(len(e), dtype=bool)
    return float((e[off_diagonal].astype(float) - 1.0).mean())


def mistake_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Where the mistakes fall, Baseline vs Ours, per dataset in ``results``.

    ``mistake_severity`` is the mean d between the true and the predicted class over the wrong top-1
    predictions; next to it, the mean d over all pairs of distinct classes — what the mistakes would
    average if they fell at random. A ratio well below 1 means most mistakes are among near relatives.
    Mean ± std over seeds, from the run records.
    """
    rows = []
    datasets = [d for d in dict.fromkeys(results["dataset"]) if d in DATASETS] if len(results) else []
    for dataset in datasets:
        all_pairs = mean_pair_distance(dataset)
        for method, match in (("Baseline", BASELINE), ("Ours", OURS)):
            severity = _summary(seed_values(results, {"dataset": dataset, **match}, "mistake_severity"))
            hdist = _summary(seed_values(results, {"dataset": dataset, **match}, "hdist@1"))
            if severity[2] == 0:
                continue
            rows.append({"dataset": dataset, "method": method, "mistake_severity": severity[0],
                         "mistake_severity_std": severity[1], "hdist@1": hdist[0], "all_pairs_d": all_pairs,
                         "ratio": severity[0] / all_pairs, "n_seeds": severity[2]})
    return pd.DataFrame(rows, columns=["dataset", "method", "mistake_severity", "mistake_severity_std", "hdist@1",
                                       "all_pairs_d", "ratio", "n_seeds"])


def format_mistakes(summary: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A display copy of :func:`mistake_summary`."""
    return pd.DataFrame({
        "dataset": summary["dataset"], "method": summary["method"],
        "mean d of mistakes": [_mean_std(m, s, digits) for m, s in zip(summary["mistake_severity"],
                                                                       summary["mistake_severity_std"])],
        "hdist@1": [f"{v:.{digits}f}" for v in summary["hdist@1"]],
        "mean d, all pairs": [f"{v:.{digits}f}" for v in summary["all_pairs_d"]],
        "ratio": [f"{v:.{digits}f}" for v in summary["ratio"]],
        "seeds": summary["n_seeds"].astype(int).astype(str),
    })


def histories_by(results: pd.DataFrame, label: str | list[str]) -> dict[str, list[list[dict]]]:
    """Per-epoch histories of the finished runs in ``results``, grouped by ``label`` column(s).

    Reads each run's record from ``<results>/runs/``; used for training-curve figures.
    """
    from .records import load_record

    columns = [label] if isinstance(label, str) else list(label)
    grouped: dict[str, list[list[dict]]] = {}
    finished = results[results["status"] == "finished"] if "status" in results else results
    for _, row in finished.iterrows():
        record = load_record(row["run_id"])
        if record is not None:
            key = " · ".join(str(row[c]) for c in columns)
            grouped.setdefault(key, []).append(record.history)
    return grouped


def describe_gains(gain_table: pd.DataFrame) -> str:
    """One sentence per comparison, in words, from the measured gains (nothing here is hand-written).

    A comparison where either arm's mean top-1 stays below ``NOT_LEARNED_FACTOR`` × chance is called
    out as "did not learn in this budget" instead of being read as a gain or a loss.
    """
    lines = []
    for row in gain_table.itertuples(index=False):
        if row.n_seeds == 0 or pd.isna(row.this_run):
            lines.append(f"- {row.comparison}: not measured in this run (paper: {row.paper:+.1f}).")
            continue
        spread = row.this_run_std
        weakest = min(getattr(row, "baseline_top1", math.nan), getattr(row, "ours_top1", math.nan))
        chance = getattr(row, "chance_top1", math.nan)
        if not pd.isna(weakest) and not pd.isna(chance) and weakest < NOT_LEARNED_FACTOR * chance:
            verdict = (f"one arm reached only {weakest:.1f} % top-1 (chance: {chance:.1f} %), i.e. the network "
                       f"did not learn in this budget, so this difference says nothing about the loss")
        elif row.n_seeds < 2 or pd.isna(spread):
            verdict = "a single seed, so no spread to judge it by"
        elif abs(row.this_run) <= spread:
            verdict = "within one standard deviation of zero: no evidence of a gain or a loss at this budget"
        elif np.sign(row.this_run) == np.sign(row.paper):
            verdict = "the same direction as the paper"
        else:
            verdict = "the opposite direction to the paper"
        spread_text = "" if pd.isna(spread) else f" ± {spread:.1f}"
        lines.append(f"- {row.comparison}: {row.this_run:+.1f}{spread_text} points over {row.n_seeds} seed(s) "
                     f"(paper: {row.paper:+.1f}) — {verdict}.")
    return "\n".join(lines)
