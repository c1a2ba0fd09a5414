"""Fake datasets written to disk in the real layouts, for the tests (plain functions, no fixtures).

Import them from a test module as ``from fakes import make_cub, …``: pytest's default
``prepend`` import mode puts ``tests/`` (a folder without ``__init__.py``) on ``sys.path``.

* :func:`make_cub` — 3 classes (:data:`CUB_NAMES`) × 4 images in the CUB-200-2011 layout.
* :func:`make_fake_cub_200` — all 200 real CUB class names (the shipped taxonomy's order), so a
  run on it uses the shipped CUB hierarchy.
* :func:`make_mini_csv`, :func:`make_mini_folders` — Mini-ImageNet's two layouts over :data:`WNIDS`.
* :func:`make_tiny`, :func:`make_imagenet_tree` — Tiny-ImageNet and an ImageNet-style tree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from kesl_utils.data.cub import cub_class_names

__all__ = ["CUB_NAMES", "WNIDS", "jpeg", "random_jpeg", "make_cub", "make_fake_cub_200", "make_mini_csv",
           "make_mini_folders", "make_tiny", "make_imagenet_tree"]

CUB_NAMES = ["001.Alpha_bird", "002.Beta_bird", "003.Gamma_bird"]
WNIDS = ["n01000003", "n01000001", "n01000002"]  # deliberately not sorted


def jpeg(path: Path, value: int = 128, size=(8, 8)) -> Path:
    """A flat-colour JPEG at ``path`` (folders created); the colour depends on ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path, "JPEG")
    return path


def random_jpeg(path: Path, rng: np.random.Generator, size=(12, 12)) -> Path:
    """A JPEG of uniform random pixels, ``size`` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, "JPEG")
    return path


def _write_cub_metadata(base: Path, class_names: Sequence[str], rows: Sequence[tuple[str, int, bool]]) -> None:
    """images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt and classes.txt
    for ``rows`` = (relative path, class id, is training image), image ids 1, 2, … in row order."""
    ids = range(1, len(rows) + 1)
    (base / "images.txt").write_text("".join(f"{i} {rel}\n" for i, (rel, _, _) in zip(ids, rows)))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, (_, c, _) in zip(ids, rows)))
    (base / "train_test_split.txt").write_text("".join(f"{i} {int(t)}\n" for i, (_, _, t) in zip(ids, rows)))
    (base / "bounding_boxes.txt").write_text("".join(f"{i} 2.0 1.0 4.0 5.0\n" for i in ids))
    (base / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(class_names, 1)))


def make_cub(root: Path) -> Path:
    """3 classes × 4 images under ``root/CUB_200_2011``; images 1, 2 of each class train, 3, 4 test.

    Every box is x=2, y=1, width 4, height 5. Returns ``root/CUB_200_2011``.
    """
    base = root / "CUB_200_2011"
    rows = []
    for c, name in enumerate(CUB_NAMES, 1):
        for k in range(1, 5):
            rel = f"{name}/{name}_{k}.jpg"
            jpeg(base / "images" / rel, value=40 * c + k)
            rows.append((rel, c, k <= 2))
    _write_cub_metadata(base, CUB_NAMES, rows)
    return base


def make_fake_cub_200(root: Path, images_per_class: int = 2, test_per_class: int = 1, size=(12, 12),
                      seed: int = 0) -> Path:
    """A fake CUB-200-2011 under ``root/CUB_200_2011`` with the 200 real class names.

    Each class gets ``images_per_class`` training and ``test_per_class`` test images of random
    pixels (``size`` = (width, height), drawn from ``numpy.random.default_rng(seed)``), so labels
    follow the shipped taxonomy (``kesl_utils.data.cub.cub_class_names()``) and a run on it uses
    the shipped CUB hierarchy. Returns ``root``: pass it as ``data_root``.
    """
    base = root / "CUB_200_2011"
    rng = np.random.default_rng(seed)
    class_names = cub_class_names()
    rows = []
    for c, name in enumerate(class_names, 1):
        for k in range(images_per_class + test_per_class):
            rel = f"{name}/{name.split('.', 1)[-1]}_{k:04d}.jpg"
            random_jpeg(base / "images" / rel, rng, size)
            rows.append((rel, c, k < images_per_class))
    _write_cub_metadata(base, class_names, rows)
    return root


def make_mini_csv(root: Path, per_class: int = 6) -> Path:
    """Mini-ImageNet's csv layout: class k of :data:`WNIDS` listed in train/val/test.csv (k = 0, 1, 2)."""
    rows = {"train": [], "val": [], "test": []}
    for k, wnid in enumerate(WNIDS):
        split = ("train", "val", "test")[k]
        for i in range(per_class):
            name = f"{wnid}{i:08d}.jpg"
            jpeg(root / "images" / name, value=30 * k + i)
            rows[split].append(f"{name},{wnid}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(lines) + "\n")
    return root


def make_mini_folders(root: Path, per_class: int = 6, nested: bool = False) -> Path:
    """Mini-ImageNet as one folder per wnid (under ``train/`` if ``nested``)."""
    for k, wnid in enumerate(WNIDS):
        folder = root / ("train" if nested else "") / wnid
        for i in reversed(range(per_class)):  # written out of order: the split sorts by name
            jpeg(folder / f"{wnid}_{i}.jpg", value=30 * k + i)
    return root


def make_tiny(root: Path) -> Path:
    """Tiny-ImageNet's layout: 3 training images per class, 2 validation images per class."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    annotations = []
    for k, wnid in enumerate(WNIDS):
        for i in range(3):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", value=20 * k + i)
        for i in range(2):
            name = f"val_{k * 2 + i}.JPEG"
            jpeg(root / "val" / "images" / name, value=20 * k + i)
            annotations.append(f"{name}\t{wnid}\t0\t0\t7\t7")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations[::-1]) + "\n")
    return root


def make_imagenet_tree(root: Path, wnids=WNIDS) -> Path:
    """An ImageNet-style tree: ``train/<wnid>/`` (3 images) and ``val/<wnid>/`` (2 images)."""
    for k, wnid in enumerate(wnids):
        for split, n in (("train", 3), ("val", 2)):
            for i in range(n):
                jpeg(root / split / wnid / f"{wnid}_{i}.JPEG", value=20 * k + i)
    return root
