"""Names and validators: every choice the library accepts, defined once and looked up everywhere.

This module imports nothing heavier than the standard library, so that the command line, the
:class:`~kesl_utils.config.Config` and the torch layers share one definition of what is valid:

* the choices (profiles, backbones, sources, hierarchy modes, KL directions, schedules, metric keys);
* the ranges of the paper's symbols (λ, T, α, β) and of label smoothing's ε, as functions that
  return the normalised value or raise ``ValueError`` naming the argument and what was expected;
* the dataset registry :data:`DATASETS`: one :class:`DatasetSpec` per dataset (its hierarchy file,
  the loader of its real images, the folder names it is looked up under).

Adding a dataset is one :class:`DatasetSpec` entry here (plus a loader class in
:mod:`kesl_utils.data` if its files are laid out in a new way).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable, Optional

#: Budget profiles of the notebook series; ``"custom"`` marks a Config made by hand.
PROFILES = ("smoke", "quick", "paper")
CONFIG_PROFILES = PROFILES + ("custom",)
SOURCES = ("synthetic", "real")
HIERARCHY_MODES = ("dag", "tree")
BACKBONES = ("resnet18", "resnet50", "mobilenet_v2")
KL_DIRECTIONS = ("reverse", "forward")
OPTIMIZERS = ("sgd",)
SCHEDULES = ("cosine", "step")

#: The metrics of every run record (:func:`kesl_utils.metrics.summarize`): top-1/top-5 (%), mistake
#: severity and hierarchical distance@k measured with the paper's d_ij = e_ij − 1, and ECE.
METRIC_KEYS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")
#: The same argmax metrics measured with the height of the lowest common ancestor (Bertinetto et al.).
LCA_METRIC_KEYS = ("mistake_severity_lca", "hdist_lca@1", "hdist_lca@5")
#: The metrics of the CRM decision rule (cost = LCA height; Karthik et al.), with the LCA height and with d_ij.
CRM_METRIC_KEYS = ("crm_top1", "crm_top5", "crm_mistake_severity_lca", "crm_hdist_lca@1", "crm_hdist_lca@5",
                   "crm_mistake_severity", "crm_hdist@1")
#: Every metric a run record of the trainer holds.
ALL_METRIC_KEYS = METRIC_KEYS + LCA_METRIC_KEYS + CRM_METRIC_KEYS


# -- datasets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the series.

    name: the id used in configs and file names. display: the name tables print.
    hierarchy_file: the shipped hierarchy in ``data/hierarchies/`` (a taxonomy CSV or a WordNet
        subnet JSON). hierarchy_kind: ``"taxonomy"`` | ``"wordnet"``.
    taxonomy_levels: the CSV's level columns, top level first, class column last (taxonomies).
    class_list: the CSV of wnids a WordNet subnet is derived from (WordNet datasets).
    real_loader: which loader of :mod:`kesl_utils.data` reads its real files
        (``"cub"`` | ``"mini_imagenet"`` | ``"imagenet_subset"``).
    root_candidates: folder names under ``DATA_ROOT`` tried in order.
    """

    name: str
    display: str
    hierarchy_file: str
    hierarchy_kind: str
    real_loader: str
    root_candidates: tuple[str, ...]
    taxonomy_levels: Optional[tuple[str, ...]] = None
    class_list: Optional[str] = None


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("cub", "CUB-200-2011", "cub_taxonomy.csv", "taxonomy", "cub",
                ("CUB_200_2011", "cub", "CUB"),
                taxonomy_levels=("order", "family", "genus", "class_name")),
    DatasetSpec("mini_imagenet", "Mini-ImageNet", "mini_imagenet_wordnet.json", "wordnet", "mini_imagenet",
                ("mini_imagenet", "mini-imagenet", "miniImageNet", "miniimagenet"),
                class_list="mini_imagenet_classes.csv"),
    DatasetSpec("small_imagenet", "Small-ImageNet", "small_imagenet_wordnet.json", "wordnet", "imagenet_subset",
                ("tiny-imagenet-200", "small_imagenet", "small-imagenet", "tiny_imagenet"),
                class_list="small_imagenet_classes.csv"),
)}


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; ``ValueError`` listing the datasets otherwise."""
    check_choice("dataset", name, DATASETS)
    return DATASETS[name]


# -- validators ----------------------------------------------------------------------------------
def _quoted(items: Iterable) -> str:
    return ", ".join(repr(item) for item in items)


def check_choice(name: str, value, allowed: Iterable) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` naming ``name`` and the choices."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {_quoted(allowed)}")
    return value


def _real(name: str, value, rule: str, ok) -> float:
    """``value`` as a float if it is a real number (not a bool, not NaN) and ``ok(value)``; else a
    ``ValueError`` saying ``"<name> must be a <rule>, got <value>"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or not ok(float(value)):
        shown = f"{float(value):g}" if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)
        raise ValueError(f"{name} must be a {rule}, got {shown}")
    return float(value)


def check_lambda(value, name: str = "lam (λ)") -> float:
    """λ of c_ij = λ^d_ij: a real number in the open interval (0, 1) (the paper's 0 < λ < 1)."""
    return _real(name, value, "real number in the open interval (0, 1)", lambda v: 0.0 < v < 1.0)


def check_temperature(value, name: str = "T") -> float:
    """T of g_ij = softmax_j(T c_ij): a finite real number > 0."""
    return _real(name, value, "finite real number > 0", lambda v: math.isfinite(v) and v > 0.0)


def check_weight(value, name: str) -> float:
    """A loss weight (α, β): a finite real number ≥ 0."""
    return _real(name, value, "finite real number ≥ 0", lambda v: math.isfinite(v) and v >= 0.0)


def check_epsilon(value, name: str = "epsilon (ε)") -> float:
    """Label smoothing's ε: the mass moved off the true class, in [0, 1)."""
    return _real(name, value, "real number in [0, 1)", lambda v: 0.0 <= v < 1.0)


def check_fraction(value, name: str) -> float:
    """A share in the closed interval [0, 1] (alignment, label noise)."""
    return _real(name, value, "real number in [0, 1]", lambda v: 0.0 <= v <= 1.0)


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (≥ 0 with ``allow_zero``)."""
    if allow_zero:
        return _real(name, value, "finite real number ≥ 0", lambda v: math.isfinite(v) and v >= 0.0)
    return _real(name, value, "finite real number > 0", lambda v: math.isfinite(v) and v > 0.0)
