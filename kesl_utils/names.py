"""Names, validators and the registries of backbones and datasets: every choice the library
accepts, defined once and looked up everywhere.

This module imports nothing heavier than the standard library, so that the command line, the
:class:`~kesl_utils.config.Config` and the torch layers share one definition of what is valid:

* the choices (sources, hierarchy modes, KL directions, schedules, executors, metric keys);
* the ranges of the paper's symbols (λ, T, α, β) and of label smoothing's ε, as functions that
  return the normalised value or raise ``ValueError`` naming the argument and what was expected;
* the backbone registry :data:`BACKBONES`: one :class:`BackboneSpec` per backbone (its builder,
  its ImageNet weights and its classifier head, as import strings that :mod:`kesl_utils.models`
  resolves when a model is built);
* the dataset registry :data:`DATASETS`: one :class:`DatasetSpec` per dataset (its hierarchy file,
  the loader class of its real images, their transform, the files that show they are there, the
  folder names they are looked up under, and the paper's budget for it).

Adding a backbone is one :func:`register_backbone` entry; adding a real dataset is one
:func:`register_dataset` entry plus its loader class in :mod:`kesl_utils.data` (a subclass of
:class:`~kesl_utils.data.image_files.ImageFileDataset` with a ``for_run`` constructor). The budget
profiles live in :mod:`kesl_utils.profiles`.
"""
from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

SOURCES = ("synthetic", "real")
HIERARCHY_MODES = ("dag", "tree")
HIERARCHY_KINDS = ("taxonomy", "wordnet")
KL_DIRECTIONS = ("reverse", "forward")
OPTIMIZERS = ("sgd",)
SCHEDULES = ("cosine", "step")
#: How :func:`kesl_utils.experiments.run_all` executes its runs (:mod:`kesl_utils.executors`).
EXECUTORS = ("serial", "ray")
#: The transforms of real images (:func:`kesl_utils.data.transforms.build_transforms`); the
#: synthetic stand-in has its own (none).
REAL_TRANSFORMS = ("cub", "imagenet")

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

#: A callable given directly, or ``"package.module:attribute.path"`` resolved on first use.
ImportTarget = Union[str, Callable[..., Any]]


def resolve(target: ImportTarget, what: str = "target"):
    """The object ``target`` names: itself if it is not a string, else the attribute path after
    ``:`` of the module before it (``"torchvision.models:ResNet18_Weights.IMAGENET1K_V1"``)."""
    if not isinstance(target, str):
        return target
    module_name, sep, attributes = target.partition(":")
    if not sep or not module_name or not attributes:
        raise ValueError(f"{what} {target!r} is not an import string 'package.module:attribute'")
    value = importlib.import_module(module_name)
    for attribute in attributes.split("."):
        try:
            value = getattr(value, attribute)
        except AttributeError:
            raise ImportError(f"{what} {target!r}: {value!r} has no attribute {attribute!r}") from None
    return value


# -- backbones -----------------------------------------------------------------------------------
class Registry(dict):
    """name → entry for one kind of thing (backbones, datasets, profiles): adding one is one
    :meth:`register` call, looking one up is :meth:`lookup`, which names every entry when it fails.
    A ``dict``, so reading it (``name in BACKBONES``, iteration) needs nothing more."""

    def __init__(self, kind: str, entry_type: type):
        super().__init__()
        self.kind, self.entry_type = kind, entry_type

    def register(self, entry):
        """Add ``entry`` (replacing one of the same ``name``) and return it."""
        if not isinstance(entry, self.entry_type):
            raise TypeError(f"register_{self.kind} takes a {self.entry_type.__name__}, got {type(entry).__name__}")
        self[entry.name] = entry
        return entry

    def lookup(self, name: str):
        """The entry called ``name``; ``ValueError`` listing the entries otherwise."""
        check_choice(self.kind, name, self)
        return self[name]


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone of the series.

    name: the id used in configs and run ids. display: the name tables and figures print.
    builder: ``builder(weights=None | <weights>, num_classes=n) -> nn.Module`` (torchvision's
        signature), a callable or an import string (``"torchvision.models:resnet18"``).
    head: the dotted module path of the final ``nn.Linear`` classifier (``"fc"``,
        ``"classifier.1"``): replaced by a new ``num_classes``-way layer on ImageNet weights, and
        trained at the config's ``lr`` (the rest at ``lr * backbone_lr_mult``).
    weights: the ImageNet weights enum member (an import string or the object), ``None`` if the
        backbone has none (``Config.imagenet_weights=True`` is then refused).
    head_init_std: how the replaced head is initialised: ``None`` keeps ``nn.Linear``'s default;
        a number draws the weights from N(0, std²) with zero bias (torchvision's MobileNetV2 rule).
    """

    name: str
    display: str
    builder: ImportTarget
    head: str
    weights: Optional[ImportTarget] = None
    head_init_std: Optional[float] = None

    def __post_init__(self):
        _check_registry_name("backbone", self.name)
        if not isinstance(self.head, str) or not self.head:
            raise ValueError(f"backbone {self.name!r}: head must be a dotted module path such as 'fc', "
                             f"got {self.head!r}")


#: name → :class:`BackboneSpec`.
BACKBONES = Registry("backbone", BackboneSpec)
register_backbone, backbone_spec = BACKBONES.register, BACKBONES.lookup


# -- datasets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the series: everything the library knows about it, in one entry.

    name: the id used in configs and file names. display: the name tables print.
    hierarchy_file: its class hierarchy, a file name in ``data/hierarchies/`` (or an absolute path):
        a taxonomy CSV or a WordNet subnet JSON. hierarchy_kind: ``"taxonomy"`` | ``"wordnet"``.
    loader: the :class:`~kesl_utils.data.image_files.ImageFileDataset` subclass that reads its real
        files (an import string, e.g. ``"kesl_utils.data.cub:CUB200"``), built as
        ``loader.for_run(root, split, classes=..., transform=..., skip_bad_images=...)``.
    transform: the transform of its real images (:data:`REAL_TRANSFORMS`).
    root_candidates: folder names under ``DATA_ROOT`` tried in order (``"."``: ``DATA_ROOT`` itself).
    markers: glob patterns, relative to a root candidate, one per layout the loader reads: a match
        shows the real files are there (notebook 00; ``tests/test_data_real.py`` builds every layout
        the loader accepts and checks that a marker finds it).
    paper_budget: the Config fields of this dataset in a profile that uses the paper's per-dataset
        budgets (:attr:`kesl_utils.profiles.Profile.paper_budgets`): image size, batch size,
        ImageNet weights, backbone learning-rate multiplier. Required, and must name at least
        ``image_size`` and ``batch_size``: a dataset never silently gets another dataset's budget.
    taxonomy_levels: the CSV's level columns, top level first, class column last (taxonomies).
    class_list: the CSV of wnids a WordNet subnet is derived from (WordNet datasets).
    """

    name: str
    display: str
    hierarchy_file: str
    hierarchy_kind: str
    loader: ImportTarget
    transform: str
    root_candidates: tuple[str, ...]
    markers: tuple[str, ...]
    paper_budget: Mapping[str, Any]
    taxonomy_levels: Optional[tuple[str, ...]] = None
    class_list: Optional[str] = None

    def __post_init__(self):
        _check_registry_name("dataset", self.name)
        check_choice(f"dataset {self.name!r}: hierarchy_kind", self.hierarchy_kind, HIERARCHY_KINDS)
        check_choice(f"dataset {self.name!r}: transform", self.transform, REAL_TRANSFORMS)
        if self.hierarchy_kind == "taxonomy" and not self.taxonomy_levels:
            raise ValueError(f"dataset {self.name!r}: a taxonomy needs taxonomy_levels (its CSV's level columns)")
        for what in ("root_candidates", "markers"):
            value = getattr(self, what)
            if isinstance(value, str) or not value:
                raise ValueError(f"dataset {self.name!r}: {what} must be a non-empty tuple of strings, got {value!r}")
            object.__setattr__(self, what, tuple(value))
        budget = self.paper_budget
        if not isinstance(budget, Mapping) or not {"image_size", "batch_size"} <= set(budget):
            raise ValueError(f"dataset {self.name!r}: paper_budget must be a mapping of Config fields naming at "
                             f"least image_size and batch_size, got {budget!r}")
        object.__setattr__(self, "paper_budget", dict(budget))


#: name → :class:`DatasetSpec`.
DATASETS = Registry("dataset", DatasetSpec)
register_dataset, dataset_spec = DATASETS.register, DATASETS.lookup


# -- validators ----------------------------------------------------------------------------------
def quoted(items: Iterable) -> str:
    """``'a', 'b', 'c'``: the items' reprs joined by commas (how error messages list names)."""
    return ", ".join(repr(item) for item in items)


def _check_registry_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a {kind} name must be an identifier such as 'my_{kind}', got {name!r}")


def check_choice(name: str, value, allowed: Iterable) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` naming ``name`` and the choices."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {quoted(allowed)}")
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


# -- the registered backbones and datasets ------------------------------------------------------
for _spec in (
    BackboneSpec("resnet18", "ResNet-18", "torchvision.models:resnet18", "fc",
                 weights="torchvision.models:ResNet18_Weights.IMAGENET1K_V1"),
    BackboneSpec("resnet50", "ResNet-50", "torchvision.models:resnet50", "fc",
                 weights="torchvision.models:ResNet50_Weights.IMAGENET1K_V1"),
    BackboneSpec("mobilenet_v2", "MobileNetV2", "torchvision.models:mobilenet_v2", "classifier.1",
                 weights="torchvision.models:MobileNet_V2_Weights.IMAGENET1K_V1", head_init_std=0.01),
):
    register_backbone(_spec)

# The paper: CUB fine-tunes an ImageNet-pretrained backbone at 448 px (backbone lr ÷10, batch 32);
# the ImageNet subsets train from scratch at 224 px, batch 256 (the torchvision recipe).
for _spec in (
    DatasetSpec("cub", "CUB-200-2011", "cub_taxonomy.csv", "taxonomy", loader="kesl_utils.data.cub:CUB200",
                transform="cub", root_candidates=("CUB_200_2011", "cub", "CUB", "."),
                markers=("images.txt",),
                paper_budget=dict(image_size=448, imagenet_weights=True, backbone_lr_mult=0.1, batch_size=32),
                taxonomy_levels=("order", "family", "genus", "class_name")),
    DatasetSpec("mini_imagenet", "Mini-ImageNet", "mini_imagenet_wordnet.json", "wordnet",
                loader="kesl_utils.data.imagenet:MiniImageNet", transform="imagenet",
                root_candidates=("mini_imagenet", "mini-imagenet", "miniImageNet", "miniimagenet"),
                # the csv distribution, or one folder per class (optionally under train/, val/, test/)
                markers=("train.csv", "n[0-9]*/", "train/n[0-9]*/"),
                paper_budget=dict(image_size=224, imagenet_weights=False, backbone_lr_mult=1.0, batch_size=256),
                class_list="mini_imagenet_classes.csv"),
    DatasetSpec("small_imagenet", "Small-ImageNet", "small_imagenet_wordnet.json", "wordnet",
                loader="kesl_utils.data.imagenet:ImageNetSubset", transform="imagenet",
                root_candidates=("tiny-imagenet-200", "small_imagenet", "small-imagenet", "tiny_imagenet"),
                # Tiny-ImageNet, or an ImageNet-style train/<wnid>/ tree
                markers=("wnids.txt", "train/n[0-9]*/"),
                paper_budget=dict(image_size=224, imagenet_weights=False, backbone_lr_mult=1.0, batch_size=256),
                class_list="small_imagenet_classes.csv"),
):
    register_dataset(_spec)
del _spec
