"""The sentences a table's page shows, generated from its numbers and its configs (none is hand-written).

* :func:`profile_note` — what kind of number "this run" is, with the budget read from the table's own
  configs (:func:`budget`);
* :func:`describe_gains` — one sentence per comparison: the paired numbers and their reading
  (:func:`kesl_utils.comparison.reading`);
* :func:`protocol_checks` — whether the run met the protocol's criteria: the CE baseline's margin over
  the no-learning reference, the arms below it, the arms below 5 × chance.

Frames in, text out: nothing here reads a record or trains.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from . import experiments, names
from .comparison import NOT_LEARNED_FACTOR, STATISTICS_NOTE, interval_text, p_text, signed
from .config import Config
from .table_specs import table_spec


def budget(configs: Iterable[Config]) -> dict:
    """What the runs of ``configs`` actually were: image size, images per class, epochs, backbones (display names),
    pretraining.

    The one place that reads a config's initialisation fields (the pretraining run and the
    ImageNet-weights switch).
    """
    configs = list(configs)

    def values(attribute):  # in numeric order (6, 12, 24, not "12, 24, 6"); None ("all") last
        return sorted({getattr(c, attribute) for c in configs}, key=lambda v: (v is None, 0 if v is None else v))

    pretrain = sorted({(c.pretrain_run.dataset, c.pretrain_run.n_per_class, c.pretrain_run.epochs) for c in configs
                       if c.pretrain_run is not None}, key=str)
    return {"image_size": values("image_size"), "n_per_class": values("n_per_class"),
            "n_test_per_class": values("n_test_per_class"), "epochs": values("epochs"),
            "backbones": [_backbone_display(b) for b in values("backbone")], "sources": values("source"),
            "pretrain": pretrain,
            "imagenet_weights": any(c.imagenet_weights for c in configs), "datasets": values("dataset")}


def _backbone_display(name: str) -> str:
    spec = names.BACKBONES.get(name)
    return spec.display if spec is not None else name


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


def describe_gains(gain_table: pd.DataFrame) -> str:
    """One sentence per comparison of :func:`kesl_utils.tables.gains`: its numbers and its reading."""
    lines = []
    for row in gain_table.itertuples(index=False):
        if row.n_seeds == 0 or pd.isna(row.this_run):
            lines.append(f"- {row.comparison}: {row.verdict} (paper: {signed(row.paper)}).")
            continue
        if row.n_seeds >= 2:
            numbers = (f"{signed(row.this_run)} points, 95 % CI {interval_text(row.ci_low, row.ci_high)}, "
                       f"p = {p_text(row.p_value)}, over {row.n_seeds} paired seeds")
        else:
            numbers = f"{signed(row.this_run)} points, one seed"
        extra = ""
        if row.reading == "not_informative":
            extra = (f" (the arms score {row.ours_top1:.1f} % and {row.baseline_top1:.1f} %, in the comparison's "
                     f"order; the no-learning reference is {row.reference:.1f} %)")
        lines.append(f"- {row.comparison}: {numbers} (paper: {signed(row.paper)}) — {row.verdict}{extra}.")
    return "\n".join(lines)


def _row_name(columns: list, row) -> str:
    """A row of a table, named for a sentence: its first display column, then its other display columns (lr,
    λ, …) and this run's backbone in parentheses. Never the paper's backbone (``paper backbone``), which may not
    be this run's, nor the notes on how the paper printed the row."""
    from .tables import NOTE_COLUMNS, PAPER_COLUMNS  # tables imports this module: read them at call time

    ours = [column for column in columns if column not in PAPER_COLUMNS.values() and column not in NOTE_COLUMNS]
    extra = [f"{column} {row[column]}" for column in ours[1:] if str(row[column]) not in ("", "nan")]
    backbone = str(row.get("this_run_backbone", "") or "")
    if backbone:
        extra.append(f"backbone {backbone}")
    first = f"row {row[ours[0]]}" if ours[0] == "row" else f"{row[ours[0]]}"
    return first + (f" ({', '.join(extra)})" if extra else "")


#: The quick protocol's criterion: the CE baseline beats the raw-pixel nearest class mean by this much.
NCM_MARGIN = 5.0


def protocol_checks(name: str, table: pd.DataFrame, *, profile: str) -> str:
    """Markdown bullets: did this run meet the protocol's criteria? (computed, nothing hand-written)

    ``table``: :func:`kesl_utils.tables.build_table`'s frame. For each dataset with a reference row:
    the margin of each backbone's cross-entropy baseline (at the profile's default learning rate where the
    table has it; the profile's own backbone first) over the raw-pixel nearest class mean (criterion: at least :data:`NCM_MARGIN` points). Then the
    arms below that reference (or that none is), and the arms below 5 × chance, whose comparisons say
    nothing.
    """
    from .tables import row_columns  # tables imports this module: read its column names at call time

    spec = table_spec(name)
    lines = []
    measured = table[(table["kind"] == "run") & table["this_run"].notna()]
    if measured.empty:
        return "- No run of this table is finished yet; nothing can be judged."
    references = {row.key.split("/", 1)[1]: row.this_run for row in table[table["kind"] == "reference"].itertuples()}
    for dataset, reference in references.items():
        if pd.isna(reference):
            lines.append(f"- {dataset}: the nearest-class-mean reference of these images is not stored; "
                         "nothing can be judged against it.")
            continue
        # the cross-entropy baseline of each backbone (its default lr first: the profile's own baseline)
        default = experiments.profile_config(profile, dataset).run_id
        configs = {row.key: row.config(profile) for row in spec.rows if row.dataset == dataset}
        baselines = sorted((key for key, config in configs.items() if config.loss == "ce"),
                           key=lambda key: configs[key].run_id != default)
        first_of_backbone = list({configs[key].backbone: key for key in reversed(baselines)}.values())[::-1]
        for key in sorted(first_of_backbone, key=baselines.index):
            base = table[table["key"] == key]
            if base.empty or pd.isna(base["this_run"].iloc[0]):
                continue
            margin = base["this_run"].iloc[0] - reference
            met = "met" if margin >= NCM_MARGIN else "**not met**"
            backbone = f" ({base['this_run_backbone'].iloc[0]})" if len(first_of_backbone) > 1 else ""
            lines.append(f"- {dataset}: the cross-entropy baseline{backbone} scores {base['this_run'].iloc[0]:.1f} %, "
                         f"{signed(margin)} points against the nearest class mean on raw pixels "
                         f"({reference:.1f} %); criterion ≥ {NCM_MARGIN:+.0f}: {met}.")
    columns = row_columns(name)
    dataset_of = {row.key: row.dataset for row in spec.rows}
    under_ncm = [f"{_row_name(columns, row)} ({row['this_run']:.1f} % against "
                 f"{references[dataset_of[row['key']]]:.1f} %)"
                 for _, row in measured.iterrows()
                 if dataset_of[row["key"]] in references and row["this_run"] < references[dataset_of[row["key"]]]]
    if under_ncm:
        lines.append(f"- {len(under_ncm)} of {len(measured)} measured arms score below the nearest class mean of "
                     f"their dataset: {'; '.join(under_ncm)}. They learned less, in this budget, than a classifier "
                     "that learns nothing; every comparison involving them reads \"not informative\".")
    else:
        judged = [row for _, row in measured.iterrows() if not pd.isna(references.get(dataset_of[row["key"]]))]
        if judged:
            lines.append(f"- Every measured arm scores above the nearest class mean of its dataset "
                         f"({len(judged)} of {len(measured)} rows have a stored reference).")
    if "seeds_below_reference" in measured:
        by_seed = [f"{_row_name(columns, row)}: seed{'s' if ' ' in row['seeds_below_reference'] else ''} "
                   f"{row['seeds_below_reference'].replace(' ', ', ')} of {int(row['n_seeds'])}"
                   for _, row in measured.iterrows() if str(row["seeds_below_reference"]).strip()]
        if by_seed:
            lines.append("- Seed by seed, against the reference of that seed's own images: " + "; ".join(by_seed)
                         + " scored below it. An arm is read by its mean over seeds, so its comparisons stand, "
                         "but there its margin is thin.")
        elif references:
            lines.append("- Seed by seed, every measured arm scores above the reference of that seed's own images.")
    below = measured[~measured["learned"].astype(bool)]
    if below.empty:
        lines.append(f"- Every measured arm reaches {NOT_LEARNED_FACTOR:g} × chance "
                     f"({len(measured)} of {len(measured)} rows).")
    else:
        names_below = "; ".join(f"{_row_name(columns, row)} ({row['this_run']:.1f} %)"
                                for _, row in below.iterrows())
        lines.append(f"- {len(below)} of {len(measured)} measured arms stay below {NOT_LEARNED_FACTOR:g} × "
                     f"chance: {names_below}; their comparisons measure nothing.")
    return "\n".join(lines)
