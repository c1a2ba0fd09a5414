"""Reference points that need no training: what a table's accuracies should be measured against.

:func:`nearest_class_mean_top1` classifies each test image by the nearest mean (Euclidean, raw
pixels) of the training images of each class — no learning at all. On the synthetic stand-ins it
says how much of the task a network has to *learn*: a trained backbone that does not beat it has
not learned the images' structure, only memorised colours.
"""
from __future__ import annotations

import functools

import torch

from .config import Config
from .data import build_dataset
from .hierarchy_files import resolve_hierarchy


def _images_and_labels(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = dataset.__getitems__(list(range(len(dataset)))) if hasattr(dataset, "__getitems__") \
        else [dataset[i] for i in range(len(dataset))]
    images = torch.stack([image for image, _ in items]).flatten(1).double()
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return images, labels


@functools.lru_cache(maxsize=64)
def _ncm(dataset: str, hierarchy_mode: str, seed: int, n_per_class, n_test_per_class, image_size: int,
         alignment: float, label_noise: float) -> float:
    hierarchy = resolve_hierarchy(dataset, hierarchy_mode)  # the run's own hierarchy, as the trainer's
    kwargs = dict(source="synthetic", hierarchy=hierarchy, image_size=image_size, seed=seed, alignment=alignment)
    train_images, train_labels = _images_and_labels(
        build_dataset(dataset, "train", n_per_class=n_per_class, label_noise=label_noise, **kwargs))
    test_images, test_labels = _images_and_labels(build_dataset(dataset, "test", n_per_class=n_test_per_class,
                                                                **kwargs))
    n = hierarchy.num_classes
    sums = torch.zeros(n, train_images.shape[1], dtype=torch.float64).index_add_(0, train_labels, train_images)
    counts = torch.bincount(train_labels, minlength=n).clamp_min(1).double()
    means = sums / counts[:, None]
    predictions = torch.cdist(test_images, means).argmin(dim=1)
    return float((predictions == test_labels).double().mean()) * 100.0


def nearest_class_mean_top1(config: Config) -> float:
    """Top-1 (%) of the raw-pixel nearest-class-mean classifier on ``config``'s own synthetic images.

    The training and test images are exactly the run's (same dataset, hierarchy mode, seed, images per
    class, size, alignment and label noise; no augmentation is involved for synthetic data).
    """
    if config.source != "synthetic":
        raise ValueError(f"{config.run_id}: the nearest-class-mean reference is computed on the synthetic "
                         "stand-ins only (on real images raw-pixel means say little and cost a full pass)")
    return _ncm(config.dataset, config.hierarchy_mode, config.seed, config.n_per_class, config.n_test_per_class,
                config.image_size, config.alignment, config.label_noise)
