"""CUB-200-2011 (Wah et al., 2011) in its official layout.

Labels are ``class_id − 1`` from ``image_class_labels.txt``; ``classes.txt`` must list exactly
the ``class_name`` column of ``data/hierarchies/cub_taxonomy.csv`` in ``class_id`` order, so
label k is the hierarchy's class k. Splits follow ``train_test_split.txt``: 5,994 training and
5,794 test images.

The metadata files are checked as they are read: a non-integer or duplicate id, a line with
the wrong number of fields, a split flag other than 0/1, a class id outside ``classes.txt``, an
image id present in one file but not another, or a file that is not UTF-8 text raises
:class:`~kesl_utils.data.image_files.DatasetFormatError` (a ``ValueError``) naming the file, the
line, the offending text and what was expected. A UTF-8 byte-order mark is tolerated.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from .image_files import DatasetFormatError, DatasetLayoutError, ImageFileDataset, read_text_lines

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
    if taxonomy_csv is None:
        from ..hierarchy_files import shipped_hierarchy_path  # the hierarchy stack only when needed

        path = shipped_hierarchy_path("cub")  # data/hierarchies/ in a checkout, the package in a wheel
    else:
        path = Path(taxonomy_csv)
    if not path.is_file():
        raise FileNotFoundError(f"CUB taxonomy {path} is missing; it ships with the repository "
                                "(data/hierarchies/cub_taxonomy.csv) — restore it with git")
    numbered = read_text_lines(path)
    reader = csv.reader(text for _, text in numbered)
    header = next(reader, None) or []
    for column in ("class_id", "class_name"):
        if column not in header:
            raise DatasetFormatError(path, 1, f"column {column!r} missing from the header", ",".join(header),
                                     "a header with class_id and class_name columns")
    id_column, name_column = header.index("class_id"), header.index("class_name")
    rows = []
    for fields in reader:
        line_no = numbered[reader.line_num - 1][0]
        if not any(f.strip() for f in fields):
            continue
        if len(fields) <= max(id_column, name_column):
            raise DatasetFormatError(path, line_no, f"{len(fields)} field(s), too few", ",".join(fields),
                                     f"the {len(header)} columns of the header")
        rows.append((_parse_id(path, line_no, fields[id_column].strip(), "class id"), fields[name_column].strip()))
    return [name for _, name in sorted(rows)]


def _error(missing: Path, detail: str = "") -> DatasetLayoutError:
    return DatasetLayoutError(missing, "CUB-200-2011", CUB_LAYOUT, CUB_DOWNLOAD, detail)


_ID = re.compile(r"[0-9]+")


def _read_table(path: Path, columns: Sequence[str], *, text_last: bool = False) -> list[tuple[int, list[str]]]:
    """The non-blank lines of a CUB metadata file as ``(line number, fields)``.

    Fields are separated by whitespace; with ``text_last`` the last column takes the rest of
    the line (a name or a relative path). A line with another number of fields raises
    :class:`DatasetFormatError` naming the file, the line and the expected columns.
    """
    expected = " ".join(f"<{c}>" for c in columns)
    rows = []
    for line_no, line in read_text_lines(path):
        if not line.strip():
            continue
        fields = line.split(maxsplit=len(columns) - 1) if text_last else line.split()
        if len(fields) != len(columns):
            raise DatasetFormatError(path, line_no, f"{len(fields)} field(s) instead of {len(columns)}", line,
                                     f"{len(columns)} whitespace-separated fields: {expected}")
        rows.append((line_no, [f.strip() for f in fields]))
    return rows


def _parse_id(path: Path, line_no: int, text: str, what: str) -> int:
    if not _ID.fullmatch(text) or int(text) < 1:
        raise DatasetFormatError(path, line_no, f"{what} is not a positive integer", text,
                                 f"the {what} as a positive integer (1, 2, …)")
    return int(text)


def _id_table(path: Path, columns: Sequence[str], *, text_last: bool = False) -> dict[int, tuple[int, list[str]]]:
    """``{id: (line number, other fields)}`` of a file whose first column is a unique positive id.

    A non-integer id and an id listed twice raise :class:`DatasetFormatError` (the second
    naming both lines). The dict keeps the file's order.
    """
    table: dict[int, tuple[int, list[str]]] = {}
    for line_no, fields in _read_table(path, columns, text_last=text_last):
        key = _parse_id(path, line_no, fields[0], columns[0].replace("_", " "))
        if key in table:
            raise DatasetFormatError(path, line_no, f"duplicate {columns[0].replace('_', ' ')} {key} "
                                     f"(first on line {table[key][0]})", fields[0],
                                     f"each {columns[0].replace('_', ' ')} once")
        table[key] = (line_no, fields[1:])
    return table


def _check_same_ids(images_path: Path, images: dict, other_path: Path, other: dict) -> None:
    """Every image id of images.txt in ``other`` and no other id there; else name the line."""
    for image_id, (line_no, _) in images.items():
        if image_id not in other:
            raise DatasetFormatError(images_path, line_no, f"image id {image_id} has no line in "
                                     f"{other_path.name}", str(image_id),
                                     f"every image id of images.txt also in {other_path}")
    for image_id, (line_no, _) in other.items():
        if image_id not in images:
            raise DatasetFormatError(other_path, line_no, f"image id {image_id} is not in images.txt",
                                     str(image_id), f"only the image ids of {images_path}")


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

    @classmethod
    def for_run(cls, root, split, *, classes, transform, skip_bad_images):
        return cls(root, split, transform=transform, skip_bad_images=skip_bad_images, class_names=classes)

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

        classes_path = base / "classes.txt"
        class_rows = _id_table(classes_path, ("class_id", "class_name"), text_last=True)
        for position, (class_id, (line_no, _)) in enumerate(class_rows.items(), 1):
            if class_id != position:
                raise DatasetFormatError(classes_path, line_no, f"class id {class_id} out of order",
                                         str(class_id), f"class id {position} (ids run 1, 2, …, n in order)")
        found = [name for _, (name,) in class_rows.values()]
        expected = list(class_names) if class_names is not None else cub_class_names()
        if found != expected:
            source = "the class_names argument" if class_names is not None else "data/hierarchies/cub_taxonomy.csv"
            raise ValueError(f"{classes_path} does not match {source} (class_name column, "
                             f"in class_id order):\n{_differences(found, expected)}")

        images_path, labels_path, split_path = (base / "images.txt", base / "image_class_labels.txt",
                                                base / "train_test_split.txt")
        paths = _id_table(images_path, ("image_id", "relative_path"), text_last=True)
        labels = _id_table(labels_path, ("image_id", "class_id"))
        is_train = _id_table(split_path, ("image_id", "is_training_image"))
        _check_same_ids(images_path, paths, labels_path, labels)
        _check_same_ids(images_path, paths, split_path, is_train)
        wanted = "1" if split == "train" else "0"
        samples, missing = [], []
        for image_id, (_, (rel,)) in paths.items():
            split_line, (flag,) = is_train[image_id]
            if flag not in ("0", "1"):
                raise DatasetFormatError(split_path, split_line, f"split flag of image {image_id} is neither 0 "
                                         "nor 1", flag, "1 (training image) or 0 (test image)")
            label_line, (class_text,) = labels[image_id]
            if not _ID.fullmatch(class_text) or not 1 <= int(class_text) <= len(found):
                raise DatasetFormatError(labels_path, label_line, f"class id of image {image_id} is not one "
                                         f"of classes.txt", class_text, f"an integer from 1 to {len(found)}")
            if flag != wanted:
                continue
            path = base / "images" / rel
            if not path.is_file():
                missing.append(path)
            samples.append((path, int(class_text) - 1, str(image_id)))
        if missing:
            raise _error(missing[0], f"{len(missing)} image file(s) listed in images.txt are missing, e.g.")
        # Keyed by path so that limit_per_class keeps them aligned with the samples.
        self.image_id_of = {str(p): image_id for p, _, image_id in samples}
        self._boxes = None
        if crop_to_bbox:
            self._boxes = self._read_boxes(base / "bounding_boxes.txt", samples)
        super().__init__([(p, y) for p, y, _ in samples], found, transform, skip_bad_images, root=base)

    @staticmethod
    def _read_boxes(path: Path, samples) -> dict[str, tuple[float, ...]]:
        """``{image path: (x, y, width, height)}`` for the samples, from ``bounding_boxes.txt``."""
        boxes = {}
        for image_id, (line_no, fields) in _id_table(path, ("image_id", "x", "y", "width", "height")).items():
            try:
                x, y, width, height = (float(v) for v in fields)
            except ValueError:
                raise DatasetFormatError(path, line_no, f"box of image {image_id} is not four numbers",
                                         " ".join(fields), "<x> <y> <width> <height> in pixels") from None
            if not (width > 0 and height > 0):
                raise DatasetFormatError(path, line_no, f"box of image {image_id} is empty",
                                         " ".join(fields), "width > 0 and height > 0")
            boxes[str(image_id)] = (x, y, width, height)
        absent = [i for _, _, i in samples if i not in boxes]
        if absent:
            raise DatasetFormatError(path, None, f"no box for image id(s) {', '.join(absent[:10])}",
                                     expected="one line per image id of images.txt")
        return {str(p): boxes[i] for p, _, i in samples}

    def _prepare(self, index: int, image):
        if self._boxes is None:
            return image
        x, y, width, height = self._boxes[str(self.samples[index][0])]
        return image.crop((int(x), int(y), int(round(x + width)), int(round(y + height))))
