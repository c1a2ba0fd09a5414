"""One run, fully described: the :class:`Config` dataclass whose hash names the run.

Everything that can change a result lives here (dataset and its data, hierarchy, backbone and
its initialisation, loss and its parameters, optimiser, schedule, budget, seed, profile); nothing
else is passed to the trainer except *where* to run (device) and *where* the data lies (data
root), which do not change what is being measured. The run id is a hash of the canonical JSON of
the fields, so equal configs share one run record and one run.

The loss's parameters live in ``loss_params`` and are declared by the loss itself in the registry
of :mod:`kesl_utils.loss_registry` (λ, T, α, β, KL direction, distance for KESL; ε for label smoothing):
a Config holds exactly the parameters of its loss, completed with the registry's defaults and
checked by the registry's validators, so two descriptions of the same run hash identically. The
schedule's ``step_size``/``gamma`` are likewise ``None`` under the cosine schedule.

Two fields tie a run to other things:

* ``pretrain_run``: the :class:`Config` of the run whose final weights initialise this one's backbone
  (the quick profile's synthetic "ImageNet stand-in"); it is part of the hash, so the run id
  changes when the pretraining does.
* ``data_fingerprint``: for real datasets, a digest of the split's file list and sizes
  (:func:`kesl_utils.data.data_fingerprint`), filled in by :func:`with_data_fingerprint`; the root
  folder itself does not matter, so moving a dataset keeps its cache.

This module imports no torch (``python -m kesl_utils --help`` and ``Config`` validation stay light):
it reads the torch-free registries of :mod:`kesl_utils.names` (backbones, datasets),
:mod:`kesl_utils.profiles` and :mod:`kesl_utils.loss_registry`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from . import loss_registry, names, profiles

#: The Config fields each learning-rate schedule reads; under another schedule they are ``None``
#: (and the command line refuses them: a flag that changes nothing must not pass unnoticed).
SCHEDULE_FIELDS = {"cosine": (), "step": ("step_size", "gamma")}
#: Seeds are 0 ≤ seed < 2**32: NumPy's seed range, and ``seed * 1_000_000 + epoch`` (each epoch's
#: data order, :func:`kesl_utils.train.epoch_seed`) stays within torch's 64-bit generator seed.
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Config:
    """Everything that affects the result of one training run.

    Data
        dataset: a key of :data:`kesl_utils.names.DATASETS` (``"cub"``, ``"mini_imagenet"``,
            ``"small_imagenet"``).
        source: ``"synthetic"`` (images generated over the dataset's real hierarchy) | ``"real"``.
        hierarchy_mode: ``"dag"`` (the shipped hierarchy) | ``"tree"`` (WordNet's first-hypernym
            tree, built at run time: needs WordNet). For a taxonomy (CUB) the two are one
            hierarchy, normalised to ``"dag"``.
        n_per_class / n_test_per_class: training / test images per class (``None``: all).
        alignment: share of synthetic classes whose appearance follows the hierarchy (0–1).
        label_noise: share of synthetic training labels replaced by another class (0–1).
        image_size: input side in pixels.
        skip_bad_images: real data: skip undecodable images (counted in the record) instead of failing.
        data_fingerprint: real data: digest of the splits' files (see the module docstring).
    Model
        backbone: a key of :data:`kesl_utils.names.BACKBONES`; imagenet_weights: start from the
        backbone's torchvision ImageNet weights; pretrain_run: a Config whose finished run's weights
        initialise the backbone (one of the two, or neither: random initialisation).
    Loss
        loss: a registered loss (:data:`kesl_utils.loss_registry.LOSSES`); loss_params: its parameters
        (e.g. KESL: ``lam`` λ, ``T``, ``alpha`` α, ``beta`` β, ``kl``, ``distance``).
    Optimisation
        optimizer ``"sgd"``; lr: learning rate of the new classifier (the backbone gets
        ``lr * backbone_lr_mult``); momentum; weight_decay; schedule ``"cosine"`` | ``"step"``
        (``step_size`` epochs, factor ``gamma``), after ``warmup_epochs`` of linear warm-up; epochs;
        batch_size (the global batch, over all processes); max_batches_per_epoch (``None``: all).
    Evaluation and execution
        eval_every: evaluate every N epochs (and always after the last); amp: CUDA only (bf16
        autocast where supported, else fp16 with a GradScaler); channels_last: the model and its
        inputs in channels-last memory format, on any device (a different rounding order, so a run
        never switches format midway and the format is part of the run's identity); compile:
        ``torch.compile`` the model; seed; profile: the budget the config came from (a profile of
        :mod:`kesl_utils.profiles`, or ``"custom"``).
    """

    dataset: str = "cub"
    source: str = "synthetic"
    hierarchy_mode: str = "dag"
    n_per_class: Optional[int] = None
    n_test_per_class: Optional[int] = None
    alignment: float = 1.0
    label_noise: float = 0.0
    image_size: int = 32
    skip_bad_images: bool = False
    data_fingerprint: Optional[str] = None
    backbone: str = "resnet18"
    imagenet_weights: bool = False
    pretrain_run: Optional["Config"] = None
    loss: str = "ce"
    loss_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "sgd"
    lr: float = 0.1
    backbone_lr_mult: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    step_size: Optional[int] = None
    gamma: Optional[float] = None
    epochs: int = 5
    batch_size: int = 128
    max_batches_per_epoch: Optional[int] = None
    eval_every: int = 1
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    profile: str = "custom"

    def __post_init__(self):
        hints = field_types()
        for f in dataclasses.fields(self):
            if f.name in ("pretrain_run", "loss_params"):
                continue
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        _checked("dataset", self.dataset, names.DATASETS)
        _checked("source", self.source, names.SOURCES)
        _checked("hierarchy_mode", self.hierarchy_mode, names.HIERARCHY_MODES)
        _checked("backbone", self.backbone, names.BACKBONES)
        _checked("optimizer", self.optimizer, names.OPTIMIZERS)
        _checked("schedule", self.schedule, names.SCHEDULES)
        _checked("profile", self.profile, profiles.config_profiles())
        _checked("loss", self.loss, loss_registry.LOSSES)
        if self.imagenet_weights and names.BACKBONES[self.backbone].weights is None:
            raise ValueError(f"Config.imagenet_weights=True but backbone {self.backbone!r} has no ImageNet weights "
                             "in the registry (kesl_utils.names.BACKBONES)")
        if names.DATASETS[self.dataset].hierarchy_kind == "taxonomy":
            # A taxonomy is a tree, so "tree" and "dag" are the same hierarchy: one name.
            object.__setattr__(self, "hierarchy_mode", "dag")

        if not isinstance(self.loss_params, Mapping):
            raise ValueError(f"Config.loss_params must be a mapping of parameter names to values, "
                             f"got {type(self.loss_params).__name__}")
        try:
            params = loss_registry.check_loss_params(self.loss, self.loss_params)
        except ValueError as error:
            raise ValueError(f"Config.loss_params: {error}") from None
        object.__setattr__(self, "loss_params", params)

        if self.schedule == "step":
            if self.step_size is None or self.gamma is None:
                raise ValueError("Config.step_size and Config.gamma are required for schedule='step'")
            _check("step_size", self.step_size >= 1, self.step_size, "step_size >= 1")
            _check("gamma", 0 < self.gamma <= 1, self.gamma, "0 < gamma <= 1")
        for schedule, used in SCHEDULE_FIELDS.items():
            if schedule != self.schedule:
                for name in set(used) - set(SCHEDULE_FIELDS[self.schedule]):
                    object.__setattr__(self, name, None)

        if self.pretrain_run is not None:
            pretrain = self.pretrain_run
            if isinstance(pretrain, Mapping):
                pretrain = Config.from_dict(pretrain)
            if not isinstance(pretrain, Config):
                raise ValueError(f"Config.pretrain_run must be a Config (or its dict) or None, "
                                 f"got {type(pretrain).__name__}")
            if pretrain.backbone != self.backbone:
                raise ValueError(f"Config.pretrain_run trains {pretrain.backbone!r} but this run's backbone is "
                                 f"{self.backbone!r}; pretrain the same backbone")
            if self.imagenet_weights:
                raise ValueError("Config.imagenet_weights (ImageNet weights) and Config.pretrain_run (weights of "
                                 "another run) are two initialisations; give one (profile_config(..., "
                                 "imagenet_weights=True, pretrain_run=None); on the command line "
                                 "--imagenet-weights replaces the profile's pretraining run)")
            object.__setattr__(self, "pretrain_run", pretrain)

        for name in ("n_per_class", "n_test_per_class", "max_batches_per_epoch"):
            value = getattr(self, name)
            _check(name, value is None or value >= 1, value, f"{name} >= 1 or None")
        for name in ("image_size", "epochs", "batch_size", "eval_every"):
            _check(name, getattr(self, name) >= 1, getattr(self, name), f"{name} >= 1")
        names.check_fraction(self.alignment, "Config.alignment")
        names.check_fraction(self.label_noise, "Config.label_noise")
        names.check_positive(self.lr, "Config.lr")
        names.check_positive(self.backbone_lr_mult, "Config.backbone_lr_mult", allow_zero=True)
        names.check_positive(self.weight_decay, "Config.weight_decay", allow_zero=True)
        _check("momentum", 0 <= self.momentum < 1, self.momentum, "0 <= momentum < 1")
        _check("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, self.warmup_epochs,
               f"0 <= warmup_epochs <= epochs ({self.epochs})")
        _check("seed", 0 <= self.seed < SEED_LIMIT, self.seed, f"0 <= seed < 2**32 = {SEED_LIMIT}")
        if self.source == "synthetic":
            _check("data_fingerprint", self.data_fingerprint is None, self.data_fingerprint,
                   "None for synthetic data, which the config determines")
            _check("skip_bad_images", not self.skip_bad_images, self.skip_bad_images,
                   "False for synthetic data (generated images cannot fail to decode)")
        else:
            _check("alignment", self.alignment == 1.0, self.alignment, "1.0 for real data")
            _check("label_noise", self.label_noise == 0.0, self.label_noise,
                   "0.0 for real data (label noise is a knob of the synthetic stand-in)")

    def __hash__(self) -> int:
        return hash(self.canonical_json())

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """All fields as a plain JSON-able dict (field order of the dataclass; ``pretrain_run`` nested)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["loss_params"] = dict(self.loss_params)
        data["pretrain_run"] = self.pretrain_run.to_dict() if self.pretrain_run is not None else None
        return data

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
    def from_dict(cls, data: Mapping) -> "Config":
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the fields."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a Config is built from a mapping, got {type(data).__name__}")
        check_field_names(data)
        return cls(**data)

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied and validated.

        ``changes`` may name Config fields or parameters of the (new) loss, e.g.
        ``ce.replace(loss="kesl", T=16)``. Changing the loss drops the old loss's parameters (the
        new loss's defaults apply unless given); a parameter the loss does not take is an error
        naming the loss it belongs to. A step schedule needs its ``step_size`` and ``gamma`` given
        (here or already in the config), as the constructor does: neither assumes them.
        """
        fields, params = split_overrides(changes)
        data = self.to_dict()
        loss = fields.get("loss", self.loss)
        if "loss_params" in fields:
            merged = dict(fields.pop("loss_params"))
        elif loss == self.loss:
            merged = dict(self.loss_params)
        else:
            merged = {}
        merged.update(params)
        data.update(fields)
        data["loss_params"] = merged
        return Config.from_dict(data)

    def param(self, name: str):
        """The loss parameter ``name`` (``KeyError`` naming the loss's parameters if it has none)."""
        try:
            return self.loss_params[name]
        except KeyError:
            raise KeyError(f"loss {self.loss!r} has no parameter {name!r} "
                           f"(it takes {', '.join(self.loss_params) or 'none'})") from None


def field_types() -> dict:
    """``{field name: type}`` of :class:`Config`, resolved (``Optional[int]`` etc.)."""
    return typing.get_type_hints(Config)


def field_names() -> tuple:
    return tuple(f.name for f in dataclasses.fields(Config))


def check_field_names(keys) -> None:
    """``ValueError`` listing the fields when ``keys`` holds a name that is not a Config field."""
    unknown = sorted(set(keys) - set(field_names()))
    if unknown:
        raise ValueError(f"unknown Config field(s) {', '.join(map(repr, unknown))}; "
                         f"the fields are: {', '.join(field_names())}")


def split_overrides(overrides: Mapping) -> tuple[dict, dict]:
    """``(Config fields, loss parameters)`` of a flat mapping such as ``{"loss": "kesl", "T": 16}``.

    A key that is neither a field nor a parameter of any registered loss is an error listing both.
    """
    fields, params = {}, {}
    all_params = {p.name for spec in loss_registry.LOSSES.values() for p in spec.params}
    for key, value in overrides.items():
        if key in field_names():
            fields[key] = value
        elif key in all_params:
            params[key] = value
        else:
            raise ValueError(f"unknown Config field or loss parameter {key!r}; the fields are: "
                             f"{', '.join(field_names())}; loss parameters: {', '.join(sorted(all_params))}")
    return fields, params


def _checked(name, value, allowed) -> None:
    try:
        names.check_choice(f"Config.{name}", value, allowed)
    except ValueError as error:
        raise ValueError(str(error)) from None


def _check(name, ok, value, rule) -> None:
    if not ok:
        raise ValueError(f"Config.{name}={value!r} is out of range (expected {rule})")


def _coerce(name, value, hint):
    """Normalise a field's value to its declared type (ints accepted for floats, so that
    ``lr=1`` and ``lr=1.0`` hash alike); anything else of the wrong type is an error."""
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
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"Config.{name}={value!r} must be a finite number")
            return value
    elif base is str:
        if isinstance(value, str):
            return value
    raise ValueError(f"Config.{name}={value!r} has type {type(value).__name__}; "
                     f"expected {base.__name__}{' or None' if optional else ''}")
