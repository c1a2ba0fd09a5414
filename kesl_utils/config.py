"""One run, fully described: the :class:`Config` dataclass whose hash names the run.

Everything that can change a result lives here (dataset, hierarchy, backbone, loss and its
λ, T, α, β, ε, optimiser, schedule, budget, seed, profile); nothing else is passed to the
trainer except *where* to run (device) and *where* the data lies (data root), which do not
change what is being measured. The run id is a hash of the canonical JSON of the fields, so
equal configs share one run record and one run.

Fields that do not apply to the chosen loss or schedule are normalised to ``None``
(e.g. λ, T, α, β for cross-entropy; ``step_size``/``gamma`` for the cosine schedule), so
that two descriptions of the same run hash identically. ``Config.replace`` fills such
``None`` fields back from the defaults below when a change makes them apply again, so
``ce_config.replace(loss="kesl")`` is the paper's "Ours" setting.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass

DATASETS = ("cub", "mini_imagenet", "small_imagenet")
SOURCES = ("synthetic", "real")
HIERARCHY_MODES = ("dag", "tree")
BACKBONES = ("resnet18", "resnet50", "mobilenet_v2")
LOSSES = ("ce", "label_smoothing", "kesl")
KL_DIRECTIONS = ("reverse", "forward")
OPTIMIZERS = ("sgd",)
SCHEDULES = ("cosine", "step")
PROFILES = ("smoke", "quick", "paper", "custom")

#: The fields each loss uses; the other loss fields are set to ``None``.
LOSS_FIELDS = {
    "ce": (),
    "label_smoothing": ("epsilon",),
    "kesl": ("lam", "T", "alpha", "beta", "kl"),
}
_ALL_LOSS_FIELDS = ("lam", "T", "alpha", "beta", "kl", "epsilon")
#: The fields each schedule uses (beyond ``warmup_epochs``, which both use).
SCHEDULE_FIELDS = {"cosine": (), "step": ("step_size", "gamma")}
_ALL_SCHEDULE_FIELDS = ("step_size", "gamma")

METRIC_KEYS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")


@dataclass(frozen=True)
class Config:
    """Everything that affects the result of one training run.

    Data
        dataset: ``"cub"`` | ``"mini_imagenet"`` | ``"small_imagenet"``.
        source: ``"synthetic"`` (images generated over the dataset's real hierarchy) | ``"real"``.
        hierarchy_mode: ``"dag"`` (the shipped WordNet subnet / CUB taxonomy) | ``"tree"``
            (WordNet's first-hypernym tree, built at run time: needs WordNet). CUB's taxonomy
            is already a tree, so for ``cub`` the mode is normalised to ``"dag"``.
        n_per_class / n_test_per_class: training / test images per class (``None``: all).
        alignment: share of synthetic classes whose appearance follows the hierarchy (0–1).
        image_size: input side in pixels.
    Model
        backbone: ``"resnet18"`` | ``"resnet50"`` | ``"mobilenet_v2"``; pretrained: ImageNet weights.
    Loss (paper symbols)
        loss: ``"ce"`` | ``"label_smoothing"`` | ``"kesl"``.
        lam (λ): similarity decay, c_ij = λ^(e_ij − 1); T: temperature of g_ij = softmax_j(T c_ij);
        alpha (α): weight of the cross-entropy term; beta (β): weight of the KL term;
        kl: ``"reverse"`` KL(p‖g) | ``"forward"`` KL(g‖p); epsilon (ε): label-smoothing mass.
    Optimisation
        optimizer ``"sgd"``; lr: learning rate of the new classifier (the backbone gets
        ``lr * backbone_lr_mult``: 1.0 from scratch, 0.1 when fine-tuning); momentum;
        weight_decay; schedule ``"cosine"`` | ``"step"`` (``step_size`` epochs, factor
        ``gamma``), after ``warmup_epochs`` of linear warm-up; epochs; batch_size;
        max_batches_per_epoch (cap for smoke runs, ``None``: whole epoch).
    Evaluation and execution
        eval_every: evaluate every N epochs (and always after the last);
        amp / channels_last: CUDA only (bf16 autocast where supported, else fp16 with a
        GradScaler); compile: ``torch.compile`` the model; seed; profile (the budget the
        config came from: ``"smoke"`` | ``"quick"`` | ``"paper"`` | ``"custom"``).
    """

    dataset: str = "cub"
    source: str = "synthetic"
    hierarchy_mode: str = "dag"
    n_per_class: typing.Optional[int] = None
    n_test_per_class: typing.Optional[int] = None
    alignment: float = 1.0
    image_size: int = 32
    backbone: str = "resnet18"
    pretrained: bool = False
    loss: str = "ce"
    lam: typing.Optional[float] = 0.5
    T: typing.Optional[float] = 2.0
    alpha: typing.Optional[float] = 1.0
    beta: typing.Optional[float] = 0.1
    kl: typing.Optional[str] = "reverse"
    epsilon: typing.Optional[float] = 0.1
    optimizer: str = "sgd"
    lr: float = 0.1
    backbone_lr_mult: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    step_size: typing.Optional[int] = 30
    gamma: typing.Optional[float] = 0.1
    epochs: int = 5
    batch_size: int = 128
    max_batches_per_epoch: typing.Optional[int] = None
    eval_every: int = 1
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    profile: str = "custom"

    def __post_init__(self):
        hints = field_types()
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("source", self.source, SOURCES)
        _check_choice("hierarchy_mode", self.hierarchy_mode, HIERARCHY_MODES)
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("profile", self.profile, PROFILES)
        if self.dataset == "cub":
            # CUB's taxonomy is a tree, so "tree" and "dag" are the same hierarchy: one name.
            object.__setattr__(self, "hierarchy_mode", "dag")

        # Unused loss / schedule fields -> None, so equal runs hash equally.
        for name in _ALL_LOSS_FIELDS:
            if name not in LOSS_FIELDS[self.loss]:
                object.__setattr__(self, name, None)
            elif getattr(self, name) is None:
                raise ValueError(f"Config.{name} is required for loss={self.loss!r} "
                                 f"(it uses {', '.join(LOSS_FIELDS[self.loss])})")
        for name in _ALL_SCHEDULE_FIELDS:
            if name not in SCHEDULE_FIELDS[self.schedule]:
                object.__setattr__(self, name, None)
            elif getattr(self, name) is None:
                raise ValueError(f"Config.{name} is required for schedule={self.schedule!r}")

        if self.kl is not None:
            _check_choice("kl", self.kl, KL_DIRECTIONS)
        if self.lam is not None:
            _check_range("lam", self.lam, "0 < lam <= 1", 0 < self.lam <= 1)
        if self.T is not None:
            _check_range("T", self.T, "T > 0", self.T > 0)
        if self.alpha is not None:
            _check_range("alpha", self.alpha, "alpha >= 0", self.alpha >= 0)
            _check_range("beta", self.beta, "beta >= 0", self.beta >= 0)
            if self.alpha == 0 and self.beta == 0:
                raise ValueError("Config.alpha and Config.beta are both 0: the KESL loss would be "
                                 "identically zero (expected alpha > 0 or beta > 0)")
        if self.epsilon is not None:
            _check_range("epsilon", self.epsilon, "0 <= epsilon < 1", 0 <= self.epsilon < 1)
        if self.step_size is not None:
            _check_range("step_size", self.step_size, "step_size >= 1", self.step_size >= 1)
            _check_range("gamma", self.gamma, "0 < gamma <= 1", 0 < self.gamma <= 1)
        for name in ("n_per_class", "n_test_per_class", "max_batches_per_epoch"):
            value = getattr(self, name)
            if value is not None:
                _check_range(name, value, f"{name} >= 1 or None", value >= 1)
        for name in ("image_size", "epochs", "batch_size", "eval_every"):
            _check_range(name, getattr(self, name), f"{name} >= 1", getattr(self, name) >= 1)
        _check_range("alignment", self.alignment, "0 <= alignment <= 1", 0 <= self.alignment <= 1)
        _check_range("lr", self.lr, "lr > 0", self.lr > 0)
        _check_range("backbone_lr_mult", self.backbone_lr_mult, "backbone_lr_mult >= 0",
                     self.backbone_lr_mult >= 0)
        _check_range("momentum", self.momentum, "0 <= momentum < 1", 0 <= self.momentum < 1)
        _check_range("weight_decay", self.weight_decay, "weight_decay >= 0", self.weight_decay >= 0)
        _check_range("warmup_epochs", self.warmup_epochs, f"0 <= warmup_epochs <= epochs ({self.epochs})",
                     0 <= self.warmup_epochs <= self.epochs)
        _check_range("seed", self.seed, "seed >= 0", self.seed >= 0)

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """All fields as a plain JSON-able dict (field order of the dataclass)."""
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        """Key-sorted, whitespace-free JSON of :meth:`to_dict`: the text the run id hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def config_hash(self) -> str:
        """First 10 hex digits of the SHA-256 of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        """``"<dataset>-<backbone>-<loss>-<hash>"``, e.g. ``"cub-resnet18-kesl-3f2a9c01de"``."""
        return f"{self.dataset}-{self.backbone}-{self.loss}-{self.config_hash}"

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the fields."""
        _check_names(data)
        return cls(**data)

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied and validated (unknown names: ``ValueError``).

        Loss/schedule fields that were normalised to ``None`` and become relevant again
        (e.g. ``loss="kesl"`` on a cross-entropy config) take the class defaults unless
        given in ``changes``.
        """
        _check_names(changes)
        data = self.to_dict()
        data.update(changes)
        defaults = {f.name: f.default for f in dataclasses.fields(Config)}
        for name in _ALL_LOSS_FIELDS + _ALL_SCHEDULE_FIELDS:
            if data[name] is None and name not in changes:
                data[name] = defaults[name]
        return Config(**data)


def field_types() -> dict:
    """``{field name: type}`` of :class:`Config`, resolved (``Optional[int]`` etc.)."""
    return typing.get_type_hints(Config)


def field_names() -> tuple:
    return tuple(f.name for f in dataclasses.fields(Config))


def _check_names(names) -> None:
    unknown = sorted(set(names) - set(field_names()))
    if unknown:
        raise ValueError(f"unknown Config field(s) {', '.join(map(repr, unknown))}; "
                         f"the fields are: {', '.join(field_names())}")


def _check_choice(name, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"Config.{name}={value!r} is not allowed; expected one of "
                         f"{', '.join(map(repr, allowed))}")


def _check_range(name, value, rule, ok) -> None:
    if not ok:
        raise ValueError(f"Config.{name}={value!r} is out of range (expected {rule})")


def _coerce(name, value, hint):
    """Normalise a field's value to its declared type (ints accepted for floats, so that
    ``T=2`` and ``T=2.0`` hash alike); anything else of the wrong type is an error."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
    if value is None:
        if optional:
            return None
        raise ValueError(f"Config.{name} must not be None (expected {base.__name__})")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
    raise ValueError(f"Config.{name}={value!r} has type {type(value).__name__}; "
                     f"expected {base.__name__}{' or None' if optional else ''}")
