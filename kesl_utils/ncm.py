"""The no-learning reference: the raw-pixel nearest-class-mean (NCM) classifier, stored as a record.

:func:`nearest_class_mean_top1` classifies each test image by the nearest mean (Euclidean, raw
pixels) of the training images of each class — no learning at all. On the synthetic stand-ins it
says how much of the task a network has to *learn*: an arm that does not beat it has learned less,
in its budget, than a classifier that learns nothing, and a comparison involving it is not
informative (:func:`kesl_utils.comparison.reading`).

The reference depends only on the images, so it is computed once per *data config* — the fields of
:data:`DATA_FIELDS`, named by :func:`data_key` — and stored as a small JSON record
``<results>/references/ncm-<dataset>-<key>.json`` (:func:`ensure`). Tables read it with
:func:`load`, which never computes: building a table regenerates no image.

torch and the data stack are imported only to compute; reading a record needs neither.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from . import hierarchy_files, paths

#: The Config fields that decide a synthetic run's images (train and test), hence its reference.
DATA_FIELDS = ("dataset", "source", "hierarchy_mode", "n_per_class", "n_test_per_class", "alignment",
               "label_noise", "image_size", "seed")

#: A Config, or a run record's ``config`` dict (the fields above are read by name from either).
ConfigLike = Union["Config", Mapping[str, Any]]  # noqa: F821 - config imports losses (torch): not needed here


def data_fields(config: ConfigLike) -> dict:
    """The :data:`DATA_FIELDS` of ``config``, as plain JSON values."""
    get = config.get if isinstance(config, Mapping) else lambda name: getattr(config, name)
    out = {name: get(name) for name in DATA_FIELDS}
    for name in ("alignment", "label_noise"):
        out[name] = float(out[name])
    return out


def data_key(config: ConfigLike) -> str:
    """12 hex digits of the SHA-256 of :func:`data_fields` as canonical JSON: equal images, equal key."""
    text = json.dumps(data_fields(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def record_path(config: ConfigLike, results_dir: Union[str, os.PathLike]) -> Path:
    """``<results_dir>/references/ncm-<dataset>-<data key>.json``."""
    return Path(results_dir) / "references" / f"ncm-{data_fields(config)['dataset']}-{data_key(config)}.json"


def applies(config: ConfigLike) -> bool:
    """Whether the NCM reference is computed for ``config``: on the synthetic stand-ins only (on real
    images raw-pixel means say little, and computing them costs a full pass over the data)."""
    return data_fields(config)["source"] == "synthetic"


def load(config: ConfigLike, results_dir: Union[str, os.PathLike]) -> Optional[float]:
    """The stored NCM top-1 (%) of ``config``'s images, or ``None`` (no record, an unreadable one, one
    written for other data, or a config it does not apply to). Reads only; creates nothing."""
    if not applies(config):
        return None
    try:
        stored = json.loads(record_path(config, results_dir).read_text(encoding="utf-8"))
        if stored["data"] != data_fields(config):
            return None
        return float(stored["top1"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def references(configs: Iterable[ConfigLike], results_dir: Union[str, os.PathLike]) -> dict[str, float]:
    """``{data_key: top1}`` of the stored references of ``configs`` (those missing are left out): what
    :func:`kesl_utils.tables.build_table` and the other studies take as ``references``."""
    out = {}
    for config in configs:
        key = data_key(config)
        if key not in out:
            value = load(config, results_dir)
            if value is not None:
                out[key] = value
    return out


def ensure(config: ConfigLike, results_dir: Union[str, os.PathLike]) -> float:
    """The NCM top-1 (%) of ``config``'s images: loaded if stored, else computed and stored (atomically)."""
    stored = load(config, results_dir)
    if stored is not None:
        return stored
    top1 = compute(config)
    from .records import library_versions  # imports torch: only when computing

    record = {"reference": "nearest class mean on raw pixels", "data": data_fields(config),
              "data_key": data_key(config), "top1": top1, "versions": library_versions()}
    paths.atomic_write_text(record_path(config, results_dir), json.dumps(record, indent=1, sort_keys=True) + "\n")
    return top1


# -- computing it ----------------------------------------------------------------------------------------
def as_tensors(dataset):
    """All of ``dataset`` as ``(images (N, 3, H, W) float32, labels (N,) int64)`` — for small sets that are
    cheaper to hold in memory than to decode or generate every epoch."""
    import torch

    indices = list(range(len(dataset)))
    items = dataset.__getitems__(indices) if hasattr(dataset, "__getitems__") else [dataset[i] for i in indices]
    if not items:
        raise ValueError("the dataset is empty")
    images = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in items])
    labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
    return images, labels


def nearest_class_mean_top1(train_images, train_labels, test_images, test_labels, num_classes: int) -> float:
    """Top-1 (%) of the raw-pixel nearest-class-mean classifier: each test image (any shape, flattened)
    gets the class whose mean training image is nearest (Euclidean, float64)."""
    import torch

    train = train_images.flatten(1).double()
    sums = torch.zeros(num_classes, train.shape[1], dtype=torch.float64).index_add_(0, train_labels, train)
    counts = torch.bincount(train_labels, minlength=num_classes).clamp_min(1).double()
    predictions = torch.cdist(test_images.flatten(1).double(), sums / counts[:, None]).argmin(dim=1)
    return float((predictions == test_labels).double().mean()) * 100.0


def compute(config) -> float:
    """The NCM top-1 (%) on ``config``'s own synthetic images (a :class:`~kesl_utils.config.Config`).

    The training and test images are exactly the run's: the hierarchy comes from the trainer's own
    resolver (:func:`kesl_utils.hierarchy_files.resolve_hierarchy`, which honours ``hierarchy_mode``), and no
    augmentation is involved for synthetic data.
    """
    if not applies(config):
        raise ValueError(f"{config.run_id}: the nearest-class-mean reference is computed on the synthetic "
                         "stand-ins only (on real images raw-pixel means say little and cost a full pass)")
    from .data import build_dataset

    hierarchy = hierarchy_files.resolve_hierarchy(config.dataset, config.hierarchy_mode)
    kwargs = dict(source="synthetic", hierarchy=hierarchy, image_size=config.image_size, seed=config.seed,
                  alignment=config.alignment)
    train_images, train_labels = as_tensors(build_dataset(config.dataset, "train", n_per_class=config.n_per_class,
                                                          label_noise=config.label_noise, **kwargs))
    test_images, test_labels = as_tensors(build_dataset(config.dataset, "test", n_per_class=config.n_test_per_class,
                                                        **kwargs))
    return nearest_class_mean_top1(train_images, train_labels, test_images, test_labels, hierarchy.num_classes)
