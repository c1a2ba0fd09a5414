"""What each paper table is: its rows, the config each row needs, and the comparisons it reports.

A :class:`TableSpec` is the one place a table is defined. :mod:`kesl_utils.experiments` asks it
which configs to run (:meth:`TableSpec.configs`) and :mod:`kesl_utils.tables` asks it which
records make each cell: a row names its configs, so its cells are joined to the run records **by
run id** — never by matching config columns — and a table comes out the same whatever other
records lie beside it.

A row's config is the profile's budget (:func:`kesl_utils.experiments.profile_config`) with the
row's method on top; the method settings are the paper's and are the same in every profile.
A comparison is "row B minus row A", paired by seed; the paper's value of it is computed from
the paper's rows (:mod:`kesl_utils.paper`), never typed in.

Adding a table is one :class:`TableSpec` in :data:`TABLES` (and its paper numbers in ``paper.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from . import experiments, paper, profiles
from .config import Config
from .loss_registry import loss_spec

#: The paper's "Ours": KESL at the registry's defaults, which are Table 4's last row
#: (λ 0.5, T 2, α 1, β 0.1, the reverse KL), reported as 87.1 in Tables 1, 3 and 5.
OURS = {"loss": "kesl"}
BASELINE = {"loss": "ce"}
#: ε = 0.1 is the registry's default (not stated in the paper; Szegedy et al.'s usual value).
LABEL_SMOOTHING = {"loss": "label_smoothing"}


@dataclass(frozen=True)
class Row:
    """One row of a paper table.

    key: unique within the table (comparisons refer to it). columns: what the row shows besides
    the numbers (method, backbone, …). paper: the paper's top-1 (as we read it). dataset: the
    dataset its runs use, or ``None`` for a row quoted from the paper and not run here.
    overrides: the method (loss, its parameters, lr, backbone) on top of the profile's budget.
    headline: a row of one of the paper's headline comparisons (Tables 1, 2 and 5): it runs the
    profile's headline seeds of its dataset (:meth:`kesl_utils.profiles.Profile.seeds_of`).
    paper_lr: the learning rate the paper states for the row (Table 3); the row trains the profile's
        mapping of it (:meth:`kesl_utils.profiles.Profile.learning_rate`).
    """

    key: str
    columns: dict
    paper: float
    dataset: Optional[str] = None
    overrides: dict = field(default_factory=dict)
    headline: bool = False
    paper_lr: Optional[float] = None

    @property
    def runs_here(self) -> bool:
        return self.dataset is not None

    def config(self, profile: str) -> Optional[Config]:
        """The row's config in ``profile`` at the profile's first seed (``None`` for quoted rows)."""
        if self.dataset is None:
            return None
        overrides = dict(self.overrides)
        if self.paper_lr is not None:
            overrides["lr"] = profiles.profile(profile).learning_rate(self.paper_lr)
        return experiments.profile_config(profile, self.dataset, **overrides)

    def seeds(self, profile: str) -> tuple:
        return experiments.profile_seeds(profile, self.dataset, headline=self.headline)

    def configs(self, profile: str, seeds=None) -> list[Config]:
        """The row's configs in ``profile``, one per seed (``seeds``: the profile's by default)."""
        base = self.config(profile)
        if base is None:
            return []
        return experiments.with_seeds([base], self.seeds(profile) if seeds is None else seeds)


@dataclass(frozen=True)
class Comparison:
    """``ours − baseline`` (row keys), paired by seed; ``headline``: one of the paper's main claims."""

    label: str
    baseline: str
    ours: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    rows: tuple
    comparisons: tuple
    columns: tuple  # the display columns of the rows, in order

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"table {self.name!r} has no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")

    def paper_gain(self, comparison: Comparison) -> float:
        """The paper's value of a comparison, from the paper's rows (rounded to the printed 0.1)."""
        return round(self.row(comparison.ours).paper - self.row(comparison.baseline).paper, 1)

    def configs(self, profile: str, seeds=None) -> list[Config]:
        """Every config the table needs in ``profile``, each once, seed-major (an interrupted batch
        has whole tables for its first seeds)."""
        per_row = [row.configs(profile, seeds) for row in self.rows]
        order = sorted({c.seed for configs in per_row for c in configs})
        return experiments.unique(c for seed in order for configs in per_row for c in configs if c.seed == seed)


# -- the five tables --------------------------------------------------------------------------------
def _cub_comparison() -> TableSpec:
    rows = []
    for record in paper.cub_comparison().itertuples(index=False):
        method = {"Baseline": BASELINE, "Ours": OURS}.get(record.method)
        key = record.method.lower() if method is not None else record.method
        rows.append(Row(key, {"method": record.method, "backbone": record.backbone}, record.top1,
                        "cub" if method is not None else None, dict(method or {}), headline=method is not None))
    return TableSpec("cub_comparison", paper.TITLES["cub_comparison"], tuple(rows),
                     (Comparison("Ours − Baseline (CUB)", "baseline", "ours"),), ("method", "backbone"))


def _general_recognition() -> TableSpec:
    rows, comparisons = [], []
    frame = paper.general_recognition()
    for record in frame.itertuples(index=False):
        method = BASELINE if record.method == "Baseline" else OURS
        rows.append(Row(f"{record.dataset}/{record.method.lower()}",
                        {"dataset": record.dataset_name, "method": record.method}, record.top1, record.dataset,
                        dict(method), headline=True))
    for dataset, name in dict(zip(frame["dataset"], frame["dataset_name"])).items():
        comparisons.append(Comparison(f"Ours − Baseline ({name})", f"{dataset}/baseline", f"{dataset}/ours"))
    return TableSpec("general_recognition", paper.TITLES["general_recognition"], tuple(rows), tuple(comparisons),
                     ("dataset", "method"))


def _label_smoothing() -> TableSpec:
    rows = []
    for record in paper.label_smoothing().itertuples(index=False):
        method = LABEL_SMOOTHING if record.loss == "label_smoothing" else OURS
        key = f"{'ls' if record.loss == 'label_smoothing' else 'ours'}@{record.lr:g}"
        rows.append(Row(key, {"method": record.method, "lr": f"{record.lr:g}"}, record.top1, "cub", dict(method),
                        paper_lr=float(record.lr)))
    comparisons = (Comparison("Ours − label smoothing, both at the paper's lr 0.01", "ls@0.01", "ours@0.01"),
                   Comparison("Ours − label smoothing, each at the lr the paper found best for it (0.1 and 0.001)",
                              "ls@0.001", "ours@0.1"))
    return TableSpec("label_smoothing", paper.TITLES["label_smoothing"], tuple(rows), comparisons,
                     ("method", "lr"))


def _ablation_setting(record) -> dict:
    if pd.isna(record.lam):
        return dict(BASELINE)
    return {"loss": "kesl", "lam": float(record.lam), "T": float(record.T), "alpha": float(record.alpha),
            "beta": float(record.beta)}


def _hyperparameter_ablation() -> TableSpec:
    frame = paper.hyperparameter_ablation()
    rows, comparisons, seen = [], [], {}
    for record in frame.itertuples(index=False):
        setting = _ablation_setting(record)
        key = f"row{record.row}"
        rows.append(Row(key, {"row": record.row, "λ": record.lam_printed, "T": record.T_printed,
                              "α": f"{record.alpha:g}", "β": f"{record.beta:g}", "printed": record.top1_printed,
                              "reading": record.reading},
                        record.top1, "cub", setting))
        described = tuple(sorted(setting.items()))
        if record.row > 1 and described not in seen:
            comparisons.append(Comparison(f"row {record.row} − row 1 (only L_CE)", "row1", key))
        seen.setdefault(described, key)
    return TableSpec("hyperparameter_ablation", paper.TITLES["hyperparameter_ablation"], tuple(rows),
                     tuple(comparisons), ("row", "λ", "T", "α", "β", "printed", "reading"))


def _backbone_ablation() -> TableSpec:
    rows, comparisons = [], []
    frame = paper.backbone_ablation()
    for record in frame.itertuples(index=False):
        method = BASELINE if record.method == "Baseline" else OURS
        rows.append(Row(f"{record.backbone}/{record.method.lower()}",
                        {"backbone": record.backbone_name, "method": record.method}, record.top1, "cub",
                        dict(method, backbone=record.backbone), headline=True))
    for backbone, name in dict(zip(frame["backbone"], frame["backbone_name"])).items():
        comparisons.append(Comparison(f"Ours − Baseline ({name})", f"{backbone}/baseline", f"{backbone}/ours"))
    return TableSpec("backbone_ablation", paper.TITLES["backbone_ablation"], tuple(rows), tuple(comparisons),
                     ("backbone", "method"))


TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    _cub_comparison(), _general_recognition(), _label_smoothing(), _hyperparameter_ablation(),
    _backbone_ablation())}


def table_spec(name: str) -> TableSpec:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(map(repr, TABLES))}")
    return TABLES[name]


def table_configs(name: str, profile: str, seeds=None) -> list[Config]:
    """The configs paper table ``name`` needs in ``profile`` (seed-major, each once)."""
    return table_spec(name).configs(profile, seeds)


def all_table_configs(profile: str, seeds=None) -> list[Config]:
    """Every config of every paper table, each once, seed-major."""
    every = [c for spec in TABLES.values() for c in spec.configs(profile, seeds)]
    return experiments.unique(sorted(every, key=lambda c: c.seed))


def check_ours_is_the_papers_setting() -> None:
    """The registry's KESL defaults must be Table 4's last row (what "Ours" means); raise if not."""
    last = paper.hyperparameter_ablation().iloc[-1]
    defaults = loss_spec("kesl").defaults
    expected = {"lam": float(last["lam"]), "T": float(last["T"]), "alpha": float(last["alpha"]),
                "beta": float(last["beta"])}
    actual = {k: defaults[k] for k in expected}
    if actual != expected:
        raise AssertionError(f"KESL's registry defaults {actual} are not the paper's 'Ours' {expected}")
