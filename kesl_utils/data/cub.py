"""CUB-200-2011 (Wah et al., 2011) in its official layout.

Labels are ``class_id − 1`` from ``image_class_labels.txt``; ``classes.txt`` must list exactly
the ``class_name`` column of ``data/hierarchies/cub_taxonomy.csv`` in ``class_id`` order, so
label k is the hierarchy's class k. Splits follow ``train_test_split.txt``: 5,994 training and
5,794 test images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from .image_files import DatasetLayoutError, ImageFileDataset

__all__ = ["CUB200", "CUB_LAYOUT", "CUB_DOWNLOAD", "CUB_SPLIT_SIZES", "cub_class_names"]

CUB_DOWNLOAD = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"
CUB_SPLIT_SIZES = {"train": 5994, "test": 5794}
CUB_LAYOUT = """\
<root>/                      (DATA_ROOT, or CUB_200_2011/ itself)
└── CUB_200_2011/
    ├── images.txt               <image_id> <relative path>
    ├── image_class_labels.txt   <image_id> <class_id>
    ├── train_test_split.txt     <image_id> <1 = train, 0 = test>
    ├── classes.txt              <class_id> <class_name>, e.g. "1 001.Black_footed_Albatross"
    ├── bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (for crop_to_bbox)
    └── images/
        └── 001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg, …
"""
_REQUIRED = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")


def cub_class_names(taxonomy_csv: Optional[os.PathLike | str] = None) -> list[str]:
    """The ``class_name`` column of the shipped CUB taxonomy, ordered by ``class_id``."""
    import pandas as pd

    from ..paths import hierarchies_dir

    path = Path(taxonomy_csv) if taxonomy_csv is not None else hierarchies_dir() / "cub_taxonomy.csv"
    if not path.is_file():
        raise FileNotFoundError(f"CUB taxonomy {path} is missing; it ships with the repository "
                                "(data/hierarchies/cub_taxonomy.csv) — restore it with git")
    table = pd.read_csv(path)
    for column in ("class_id", "class_name"):
        if column not in table.columns:
            raise ValueError(f"{path}: column {column!r} missing (columns: {list(table.columns)})")
    return [str(name) for name in table.sort_values("class_id")["class_name"]]


def _error(missing: Path, detail: str = "") -> DatasetLayoutError:
    return DatasetLayoutError(missing, "CUB-200-2011", CUB_LAYOUT, CUB_DOWNLOAD, detail)


def _read_table(path: Path, n_fields: int) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=n_fields - 1) if n_fields == 2 else line.split()
            if len(fields) != n_fields:
                raise ValueError(f"{path}:{line_no}: expected {n_fields} fields, got {line.rstrip()!r}")
            rows.append(fields)
    return rows


def _differences(found: Sequence[str], expected: Sequence[str]) -> str:
    found_set, expected_set = set(found), set(expected)
    lines = []
    only_found = [c for c in found if c not in expected_set]
    only_expected = [c for c in expected if c not in found_set]
    if only_found:
        lines.append(f"  in classes.txt only ({len(only_found)}): {', '.join(only_found[:20])}")
    if only_expected:
        lines.append(f"  in the taxonomy only ({len(only_expected)}): {', '.join(only_expected[:20])}")
    moved = [(k, f, e) for k, (f, e) in enumerate(zip(found, expected)) if f != e
             and f in expected_set and e in found_set]
    for k, f, e in moved[:10]:
        lines.append(f"  position {k + 1}: classes.txt has {f!r}, the taxonomy has {e!r}")
    if len(found) != len(expected):
        lines.append(f"  classes.txt lists {len(found)} classes, the taxonomy {len(expected)}")
    return "\n".join(lines)


class CUB200(ImageFileDataset):
    """CUB-200-2011, split ``"train"`` (5,994 images) or ``"test"`` (5,794).

    Args:
        root: the folder that holds ``CUB_200_2011/``, or that folder itself.
        split: ``"train"`` or ``"test"`` (``train_test_split.txt``).
        transform: applied to the RGB PIL image (see :func:`kesl_utils.data.build_transforms`).
        crop_to_bbox: crop each image to its ``bounding_boxes.txt`` box before ``transform``.
        skip_bad_images: see :class:`~kesl_utils.data.image_files.ImageFileDataset`.
        class_names: expected class names in label order (default: the taxonomy's
            ``class_name`` column); ``classes.txt`` must match it exactly, else ``ValueError``.

    ``dataset[i]`` is ``(image, label)`` with ``label = class_id − 1``.
    """

    def __init__(self, root: os.PathLike | str, split: str = "train", transform: Optional[Callable] = None,
                 crop_to_bbox: bool = False, skip_bad_images: bool = False,
                 class_names: Optional[Sequence[str]] = None):
        if split not in CUB_SPLIT_SIZES:
            raise ValueError(f"CUB200 split must be 'train' or 'test', got {split!r}")
        root = Path(root).expanduser()
        if not root.exists():
            raise _error(root, "dataset root does not exist:")
        if (root / "CUB_200_2011").is_dir():
            base = root / "CUB_200_2011"
        elif any((root / name).exists() for name in _REQUIRED):
            base = root  # the CUB_200_2011 folder itself (possibly renamed)
        else:
            raise _error(root / "CUB_200_2011" / "images.txt", "dataset folder not found:")
        required = _REQUIRED + (("bounding_boxes.txt",) if crop_to_bbox else ())
        for name in required:
            if not (base / name).exists():
                raise _error(base / name)
        self.root = base
        self.split = split
        self.crop_to_bbox = bool(crop_to_bbox)

        class_rows = _read_table(base / "classes.txt", 2)
        ids = [int(i) for i, _ in class_rows]
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError(f"{base / 'classes.txt'}: class ids must run 1, 2, …, n in order")
        found = [name.strip() for _, name in class_rows]
        expected = list(class_names) if class_names is not None else cub_class_names()
        if found != expected:
            source = "the class_names argument" if class_names is not None else "data/hierarchies/cub_taxonomy.csv"
            raise ValueError(f"{base / 'classes.txt'} does not match {source} (class_name column, "
                             f"in class_id order):\n{_differences(found, expected)}")

        paths = dict(_read_table(base / "images.txt", 2))
        labels = dict(_read_table(base / "image_class_labels.txt", 2))
        is_train = dict(_read_table(base / "train_test_split.txt", 2))
        wanted = "1" if split == "train" else "0"
        samples, missing = [], []
        for image_id, rel in paths.items():
            if image_id not in is_train or image_id not in labels:
                raise ValueError(f"{base}: image id {image_id} of images.txt is missing from "
                                 "train_test_split.txt or image_class_labels.txt")
            if is_train[image_id].strip() != wanted:
                continue
            path = base / "images" / rel.strip()
            if not path.is_file():
                missing.append(path)
            label = int(labels[image_id]) - 1
            if not 0 <= label < len(found):
                raise ValueError(f"{base / 'image_class_labels.txt'}: class id {label + 1} of image "
                                 f"{image_id} is not in classes.txt (1–{len(found)})")
            samples.append((path, label, image_id))
        if missing:
            raise _error(missing[0], f"{len(missing)} image file(s) listed in images.txt are missing, e.g.")
        # Keyed by path so that limit_per_class keeps them aligned with the samples.
        self.image_id_of = {str(p): image_id for p, _, image_id in samples}
        self._boxes = None
        if crop_to_bbox:
            boxes = {row[0]: tuple(float(v) for v in row[1:]) for row in _read_table(base / "bounding_boxes.txt", 5)}
            absent = [i for _, _, i in samples if i not in boxes]
            if absent:
                raise ValueError(f"{base / 'bounding_boxes.txt'}: no box for image id(s) {', '.join(absent[:10])}")
            self._boxes = {str(p): boxes[i] for p, _, i in samples}
        super().__init__([(p, y) for p, y, _ in samples], found, transform, skip_bad_images)

    def _prepare(self, index: int, image):
        if self._boxes is None:
            return image
        x, y, width, height = self._boxes[str(self.samples[index][0])]
        return image.crop((int(x), int(y), int(round(x + width)), int(round(y + height))))
