"""``build_dataset``, ``build_loader`` and ``data_fingerprint``: the trainer's one entry point to data.

``build_dataset`` picks the synthetic stand-in or the real dataset of a config (the registry
:data:`kesl_utils.names.DATASETS` says which loader class reads a dataset's files, with which
transform, and under which folder names it is looked up); ``build_loader`` picks worker counts and
``pin_memory`` for the device, and seeds the shuffling generator and the workers so that a run's
data order and augmentations are a function of its seed and the epoch; ``data_fingerprint``
identifies the files a real-data run reads, and :func:`with_data_fingerprint` puts it in a config.
:func:`load_run_hierarchy` is the one place that says which hierarchy a config's run uses.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .. import hierarchy_files, names, paths
from ..config import Config
from ..context import usable_cpu_count
from ..distributed import ShardSampler, ShuffleShardSampler, local_batch_size, rank_seed
from ..hierarchy import Hierarchy
from .image_files import ImageFileDataset
from .synthetic import SyntheticHierarchical
from .transforms import build_transforms

__all__ = ["build_dataset", "build_loader", "data_fingerprint", "default_num_workers", "seed_worker",
           "load_run_hierarchy", "with_data_fingerprint", "dataset_root"]

SPLITS = ("train", "test")


def _loader_class(dataset: str) -> type[ImageFileDataset]:
    """The loader class of ``dataset``'s real files (its ``DatasetSpec.loader``)."""
    spec = names.dataset_spec(dataset)
    loader = names.resolve(spec.loader, f"the loader of dataset {dataset!r}")
    if not (isinstance(loader, type) and issubclass(loader, ImageFileDataset)):
        raise TypeError(f"names.DATASETS[{dataset!r}].loader is {loader!r}, not an ImageFileDataset subclass")
    return loader


def dataset_root(dataset: str, data_root: Optional[os.PathLike | str]) -> Path:
    """The first of the dataset's ``root_candidates`` under ``data_root`` that is a folder (``"."``:
    ``data_root`` itself); if none is, the first candidate, whose absence the loader reports."""
    base = paths.resolve_data_root(data_root)
    candidates = names.dataset_spec(dataset).root_candidates
    for name in candidates:
        if (base / name).is_dir():
            return base / name
    return base / candidates[0]


def _check_split(split: str) -> str:
    return names.check_choice("split", split, SPLITS)


def _real_dataset(dataset: str, split: str, *, hierarchy, data_root, transform, skip_bad_images: bool,
                  n_per_class: Optional[int]) -> ImageFileDataset:
    result = _loader_class(dataset).for_run(dataset_root(dataset, data_root), split, classes=list(hierarchy.classes),
                                            transform=transform, skip_bad_images=skip_bad_images)
    if n_per_class is not None:
        result.limit_per_class(n_per_class)
    return result


def build_dataset(dataset: str, split: str, *, source: str, hierarchy, data_root=None, image_size: int,
                  n_per_class: Optional[int] = None, seed: int = 0, alignment: float = 1.0,
                  label_noise: float = 0.0, skip_bad_images: bool = False) -> Dataset:
    """The ``split`` of ``dataset`` from ``source``, labels in the order of ``hierarchy.classes``.

    Args:
        dataset: a key of :data:`kesl_utils.names.DATASETS` (``"cub"``, ``"mini_imagenet"``,
            ``"small_imagenet"``).
        split: ``"train"`` or ``"test"``.
        source: ``"synthetic"`` (:class:`SyntheticHierarchical` over ``hierarchy``) or ``"real"``
            (the files under ``data_root``; default ``data/raw``, looked up under the dataset's
            ``root_candidates``: ``CUB_200_2011/``, ``mini_imagenet/``, ``tiny-imagenet-200/``, …).
        hierarchy: the :class:`~kesl_utils.hierarchy.Hierarchy` of the dataset.
        image_size: input side in pixels (transforms of :func:`build_transforms`).
        n_per_class: synthetic: images per class (``None``: 20 train / 10 test); real: keep the
            first ``n_per_class`` images of each class (``None``: all).
        seed: synthetic only: patterns, images and label noise (see :class:`SyntheticHierarchical`).
        alignment: synthetic only; a real dataset accepts only 1.0.
        label_noise: synthetic only: share of the *training* labels replaced by another class
            (the test split stays clean); a real dataset accepts only 0.0.
        skip_bad_images: real only: skip and count undecodable files instead of raising.
    """
    names.dataset_spec(dataset)
    names.check_choice("source", source, names.SOURCES)
    _check_split(split)
    alignment = names.check_fraction(alignment, "alignment")
    label_noise = names.check_fraction(label_noise, "label_noise")
    train = split == "train"
    if source == "synthetic":
        return SyntheticHierarchical(hierarchy, split, n_per_class, image_size=image_size, seed=seed,
                                     alignment=alignment, label_noise=label_noise if train else 0.0,
                                     transform=build_transforms("synthetic", image_size, train))
    if alignment != 1.0:
        raise ValueError(f"alignment={alignment} only applies to synthetic data; real data follows "
                         "its own labels (use alignment=1.0 with source='real')")
    if label_noise != 0.0:
        raise ValueError(f"label_noise={label_noise} only applies to synthetic data; real data keeps "
                         "its own labels (use label_noise=0.0 with source='real')")
    return _real_dataset(dataset, split, hierarchy=hierarchy, data_root=data_root,
                         transform=build_transforms(names.dataset_spec(dataset).transform, image_size, train),
                         skip_bad_images=skip_bad_images, n_per_class=n_per_class)


def data_fingerprint(dataset: str, *, hierarchy, data_root=None, n_per_class: Optional[int] = None,
                     n_test_per_class: Optional[int] = None) -> str:
    """A sha256 hex digest of the real files a run of ``dataset`` reads: both splits as
    :func:`build_dataset` builds them (``n_per_class`` training / ``n_test_per_class`` test
    images per class), hashed by :meth:`~kesl_utils.data.image_files.ImageFileDataset.fingerprint`
    (paths relative to the dataset root, file sizes, labels, the class list).

    Moving the dataset folder keeps the digest; adding, removing or resizing a file, relabelling
    an image or changing ``n_per_class`` changes it. Cheap: the datasets are listed without
    transforms and no image is decoded (one ``stat`` per file). Synthetic data needs no
    fingerprint: its config (seed, sizes, alignment, label noise) determines it.
    A missing dataset raises :class:`~kesl_utils.data.DatasetLayoutError`.
    """
    names.dataset_spec(dataset)
    digests = {split: _real_dataset(dataset, split, hierarchy=hierarchy, data_root=data_root, transform=None,
                                    skip_bad_images=False, n_per_class=n)
               .fingerprint() for split, n in (("train", n_per_class), ("test", n_test_per_class))}
    return hashlib.sha256(json.dumps(["kesl_utils.data_fingerprint/1", dataset, digests],
                                     sort_keys=True).encode("utf-8")).hexdigest()


def load_run_hierarchy(config: Config) -> Hierarchy:
    """The class hierarchy of ``config.dataset`` in ``config.hierarchy_mode``: what a run of ``config``
    trains and is measured with (the trainer and the no-learning reference both read it here).

    ``"dag"``: the shipped hierarchy. ``"tree"`` (WordNet datasets only): WordNet's tree over the
    same classes, built at run time, which needs WordNet (``WordNetUnavailable`` names the ways to
    get it).
    """
    return hierarchy_files.resolve_hierarchy(config.dataset, config.hierarchy_mode)


def with_data_fingerprint(config: Config, data_root=None) -> Config:
    """``config`` with ``data_fingerprint`` filled in from the real dataset under ``data_root``.

    Synthetic configs are returned unchanged (the config determines their images). The
    fingerprint covers each split's file list, file sizes and labels, not the folder, so moving a
    dataset keeps its cached runs and changing a file starts new ones.
    """
    if config.source != "real":
        return config
    fingerprint = data_fingerprint(config.dataset, hierarchy=load_run_hierarchy(config), data_root=data_root,
                                   n_per_class=config.n_per_class, n_test_per_class=config.n_test_per_class)
    if config.data_fingerprint not in (None, fingerprint):
        raise ValueError(f"{config.run_id}: the dataset under {paths.display_path(paths.resolve_data_root(data_root))} "
                         f"has fingerprint {fingerprint}, not the config's {config.data_fingerprint}: "
                         "it is not the data this config names")
    return config.replace(data_fingerprint=fingerprint)


def _base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def default_num_workers(dataset: Dataset, device: torch.device) -> int:
    """0 for synthetic data on CPU (generation is cheaper than inter-process transfer and the
    training process needs the cores); min(4, cores) for synthetic data feeding a GPU;
    min(8, cores) for decoded image files."""
    cores = usable_cpu_count()
    if isinstance(_base_dataset(dataset), SyntheticHierarchical):
        return 0 if device.type == "cpu" else min(4, cores)
    return min(8, cores)


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """Seed Python's and NumPy's RNGs of a worker from its torch seed.

    DataLoader seeds a worker's torch RNG with ``base_seed + worker_id``, ``base_seed`` being
    drawn from the loader's generator when an iterator starts; seeding the other two from it
    makes augmentations drawn with any of the three a function of (generator state, worker id).
    ``rank`` > 0 (one of several processes of a run, whose generators are seeded alike so that
    they agree on the data order): the torch seed is first mixed with the rank
    (:func:`kesl_utils.distributed.rank_seed`), so that ranks draw different augmentations.
    """
    if rank:
        torch.manual_seed(rank_seed(torch.initial_seed(), rank))
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def build_loader(dataset: Dataset, batch_size: int, *, train: bool, device, num_workers: Optional[int] = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """A ``DataLoader`` for ``dataset`` on ``device``.

    Training loaders shuffle with a ``torch.Generator`` seeded with ``seed`` (exposed as
    ``loader.generator``; the trainer re-seeds it with ``epoch_seed(seed, epoch)`` before each
    epoch) and drop the last partial batch; test loaders keep order and every sample.
    ``pin_memory`` only for CUDA. ``num_workers=None``: :func:`default_num_workers`.

    Several processes (``world_size`` > 1, this one ``rank``): ``batch_size`` is the global
    batch and each process loads ``batch_size / world_size`` (which must divide it). Training:
    :class:`~kesl_utils.distributed.ShuffleShardSampler` gives each rank its slice of every
    global batch of the permutation that ``shuffle=True`` draws in one process, the same on
    every rank, so the ranks of a step together load the batch one process loads. Test: each
    rank reads its contiguous shard (:class:`~kesl_utils.distributed.ShardSampler`); the trainer
    gathers the outputs in order.

    Worker seeding (exact resume). Training loaders have *non-persistent* workers: each epoch's
    iterator starts fresh workers whose torch seed is ``base_seed + worker_id``, ``base_seed``
    drawn from the just re-seeded generator, and :func:`seed_worker` derives the NumPy and Python
    seeds from it. So every worker RNG at epoch e is a function of (seed, e, worker id) only, and
    a run resumed at epoch e draws the same augmentations as an uninterrupted one. Persistent
    workers would carry their RNG streams over from the epochs before, which a resumed run did
    not iterate. The cost is starting the workers once per epoch (a ``fork`` on Linux), small
    next to an epoch of decoding. Test loaders draw nothing at random and keep
    ``persistent_workers`` (their workers and dataset copy live across evaluations). The skip
    counters of image datasets sit in shared memory, so skips in short-lived workers are counted
    all the same.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    workers = default_num_workers(dataset, device) if num_workers is None else int(num_workers)
    if workers < 0:
        raise ValueError(f"num_workers must be ≥ 0, got {num_workers!r}")
    local_batch = local_batch_size(int(batch_size), world_size)
    generator = torch.Generator().manual_seed(int(seed))
    sampler = None  # one process: DataLoader's own RandomSampler / SequentialSampler
    if world_size > 1 and train:
        sampler = ShuffleShardSampler(len(dataset), int(batch_size), generator=generator, rank=rank, world=world_size)
    elif world_size > 1:
        sampler = ShardSampler(len(dataset), rank=rank, world=world_size)
    init = seed_worker if rank == 0 else functools.partial(seed_worker, rank=rank)
    return DataLoader(
        dataset,
        batch_size=local_batch,
        shuffle=bool(train) if sampler is None else None,
        sampler=sampler,
        drop_last=bool(train),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0 and not train,
        generator=generator,
        worker_init_fn=init if workers > 0 else None,
    )
