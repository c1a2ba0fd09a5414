"""``build_dataset`` and ``build_loader``: the trainer's one entry point to data.

``build_dataset`` picks the synthetic stand-in or the real dataset of a config; ``build_loader``
picks worker counts, ``pin_memory`` and ``persistent_workers`` for the device, and seeds the
shuffling generator and the workers so that a run's data order is a function of its seed.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .cub import CUB200
from .imagenet import ImageNetSubset, MiniImageNet
from .synthetic import SyntheticHierarchical
from .transforms import build_transforms

__all__ = ["build_dataset", "build_loader", "DATASETS", "SOURCES", "default_num_workers", "seed_worker"]

DATASETS = ("cub", "mini_imagenet", "small_imagenet")
SOURCES = ("synthetic", "real")

# Folder names under DATA_ROOT tried in order; the first that exists is the dataset root.
_ROOT_CANDIDATES = {
    "cub": ("CUB_200_2011", "cub", "CUB"),
    "mini_imagenet": ("mini_imagenet", "mini-imagenet", "miniImageNet", "miniimagenet"),
    "small_imagenet": ("tiny-imagenet-200", "small_imagenet", "small-imagenet", "tiny_imagenet"),
}


def _dataset_root(dataset: str, data_root: Optional[os.PathLike | str]) -> Path:
    from ..paths import resolve_data_root

    base = resolve_data_root(data_root)
    for name in _ROOT_CANDIDATES[dataset]:
        if (base / name).is_dir():
            return base / name
    # Not found: CUB200 names <base>/CUB_200_2011/…, the others the first candidate folder.
    return base if dataset == "cub" else base / _ROOT_CANDIDATES[dataset][0]


def build_dataset(dataset: str, split: str, *, source: str, hierarchy, data_root=None, image_size: int,
                  n_per_class: Optional[int] = None, seed: int = 0, alignment: float = 1.0,
                  skip_bad_images: bool = False) -> Dataset:
    """The ``split`` of ``dataset`` from ``source``, labels in the order of ``hierarchy.classes``.

    Args:
        dataset: ``"cub"``, ``"mini_imagenet"`` or ``"small_imagenet"``.
        split: ``"train"`` or ``"test"``.
        source: ``"synthetic"`` (:class:`SyntheticHierarchical` over ``hierarchy``) or ``"real"``
            (the files under ``data_root``; default ``data/raw``, looked up as
            ``CUB_200_2011/``, ``mini_imagenet/``, ``tiny-imagenet-200/`` and common variants).
        hierarchy: the :class:`~kesl_utils.hierarchy.Hierarchy` of the dataset.
        image_size: input side in pixels (transforms of :func:`build_transforms`).
        n_per_class: synthetic: images per class (``None``: 20 train / 10 test); real: keep the
            first ``n_per_class`` images of each class (``None``: all).
        seed: synthetic only: patterns and images (see :class:`SyntheticHierarchical`).
        alignment: synthetic only; a real dataset accepts only 1.0.
        skip_bad_images: real only: skip and count undecodable files instead of raising.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train = split == "train"
    if source == "synthetic":
        return SyntheticHierarchical(hierarchy, split, n_per_class, image_size=image_size, seed=seed,
                                     alignment=alignment,
                                     transform=build_transforms("synthetic", image_size, train))
    if alignment != 1.0:
        raise ValueError(f"alignment={alignment} only applies to synthetic data; real data follows "
                         "its own labels (use alignment=1.0 with source='real')")
    root = _dataset_root(dataset, data_root)
    classes = list(hierarchy.classes)
    if dataset == "cub":
        result = CUB200(root, split, transform=build_transforms("cub", image_size, train),
                        skip_bad_images=skip_bad_images, class_names=classes)
    elif dataset == "mini_imagenet":
        result = MiniImageNet(root, split, transform=build_transforms("imagenet", image_size, train),
                              classes=classes, skip_bad_images=skip_bad_images)
    else:
        result = ImageNetSubset(root, classes, split, transform=build_transforms("imagenet", image_size, train),
                                skip_bad_images=skip_bad_images)
    if n_per_class is not None:
        result.limit_per_class(n_per_class)
    return result


def _base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_num_workers(dataset: Dataset, device: torch.device) -> int:
    """0 for synthetic data on CPU (generation is cheaper than inter-process transfer and the
    training process needs the cores); min(4, cores) for synthetic data feeding a GPU;
    min(8, cores) for decoded image files."""
    cores = _cpu_count()
    if isinstance(_base_dataset(dataset), SyntheticHierarchical):
        return 0 if device.type == "cpu" else min(4, cores)
    return min(8, cores)


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs of a worker from its torch seed (set by DataLoader from
    the loader's generator), so that augmentations drawn with either are reproducible."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def build_loader(dataset: Dataset, batch_size: int, *, train: bool, device, num_workers: Optional[int] = None,
                 seed: int = 0) -> DataLoader:
    """A ``DataLoader`` for ``dataset`` on ``device``.

    Training loaders shuffle with a ``torch.Generator`` seeded with ``seed`` (exposed as
    ``loader.generator``; the trainer re-seeds it each epoch) and drop the last partial batch;
    test loaders keep order and every sample. ``pin_memory`` only for CUDA;
    ``persistent_workers`` whenever there are workers (they keep their dataset copy, and the
    shared skip counters of image datasets, across epochs). ``num_workers=None``:
    :func:`default_num_workers`.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    workers = default_num_workers(dataset, device) if num_workers is None else int(num_workers)
    if workers < 0:
        raise ValueError(f"num_workers must be ≥ 0, got {num_workers!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=bool(train),
        drop_last=bool(train),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=generator,
        worker_init_fn=seed_worker if workers > 0 else None,
    )
