"""ImageNet-derived datasets: Mini-ImageNet (all 100 classes) and Small-ImageNet.

Both order their labels like the hierarchy's ``classes`` (WordNet ids) when that list is given,
and raise ``ValueError`` listing the classes found on one side only.

**Mini-ImageNet split (the paper does not state one).** The paper trains and tests on all 100
classes (general recognition), not on the few-shot class split. We pool every image of every
class and split each class deterministically: its files sorted by file name, the first
``min(train_per_class, ⌊5n/6⌋)`` for training and the rest for testing — with the usual 600
images per class and ``train_per_class=500``: 500 train / 100 test per class, 50,000 / 10,000.

**Small-ImageNet** is not defined in the paper; we read it as Tiny-ImageNet's 200 classes
(its labelled ``val/`` set is the test split). An ImageNet-style folder tree restricted to a
list of wnids works as well.
"""
from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional, Sequence

from .image_files import (
    DatasetFormatError,
    DatasetLayoutError,
    ImageFileDataset,
    check_class_lists,
    is_wnid,
    list_images,
    read_text_lines,
)

__all__ = [
    "MiniImageNet",
    "ImageNetSubset",
    "MINI_IMAGENET_LAYOUT",
    "MINI_IMAGENET_DOWNLOAD",
    "SMALL_IMAGENET_LAYOUT",
    "TINY_IMAGENET_DOWNLOAD",
    "split_per_class",
]

MINI_IMAGENET_DOWNLOAD = (
    "the Ravi & Larochelle (2017) split files train.csv/val.csv/test.csv "
    "(https://github.com/twitter/meta-learning-lstm/tree/master/data/miniImagenet) plus the "
    "ImageNet (ILSVRC-2012) training images they name, https://image-net.org/download.php "
    "(resized with any Mini-ImageNet tool into images/)")
MINI_IMAGENET_LAYOUT = """\
Either the common distribution:
<root>/                         (e.g. data/raw/mini_imagenet/)
├── images/                     n0153282900000005.jpg, … (60,000 files)
├── train.csv                   filename,label   (label = wnid, e.g. n01532829)
├── val.csv
└── test.csv
or one folder per class (optionally under train/, val/, test/, which are pooled):
<root>/
├── n01532829/  *.jpg
├── n01558993/  *.jpg
└── …
"""
TINY_IMAGENET_DOWNLOAD = "http://cs231n.stanford.edu/tiny-imagenet-200.zip (unzip into DATA_ROOT)"
SMALL_IMAGENET_LAYOUT = """\
Tiny-ImageNet (the default reading of "Small-ImageNet"):
<root>/                         (e.g. data/raw/tiny-imagenet-200/)
├── wnids.txt                   one wnid per line
├── train/<wnid>/images/*.JPEG
└── val/
    ├── val_annotations.txt     <file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>
    └── images/*.JPEG
or an ImageNet-style tree:
<root>/
├── train/<wnid>/*.JPEG
└── val/<wnid>/*.JPEG
"""


def split_per_class(files: Sequence[Path], train_per_class: int) -> tuple[list[Path], list[Path]]:
    """The deterministic per-class split: sorted by file name, first ``min(k, ⌊5n/6⌋)`` train."""
    files = sorted(files, key=lambda p: p.name)
    n_train = min(int(train_per_class), (5 * len(files)) // 6)
    return files[:n_train], files[n_train:]


def _check_split(split: str, allowed: Sequence[str], dataset: str) -> None:
    if split not in allowed:
        raise ValueError(f"{dataset} split must be one of {', '.join(map(repr, allowed))}, got {split!r}")


def _wnid_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and is_wnid(p.name)), key=lambda p: p.name)


class MiniImageNet(ImageFileDataset):
    """Mini-ImageNet's 100 classes pooled and split per class (module docstring).

    Args:
        root: the Mini-ImageNet folder (``images/`` + csv files, or per-wnid folders).
        split: ``"train"`` or ``"test"``.
        transform: applied to the RGB PIL image.
        classes: wnids in label order (``Hierarchy.classes``); ``None``: sorted wnids of the data.
        train_per_class: training images per class (at most ⌊5n/6⌋ of a class's n images).
        skip_bad_images: see :class:`~kesl_utils.data.image_files.ImageFileDataset`.
    """

    @classmethod
    def for_run(cls, root, split, *, classes, transform, skip_bad_images):
        return cls(root, split, transform=transform, classes=classes, skip_bad_images=skip_bad_images)

    def __init__(self, root: os.PathLike | str, split: str = "train", transform: Optional[Callable] = None,
                 classes: Optional[Sequence[str]] = None, train_per_class: int = 500,
                 skip_bad_images: bool = False):
        _check_split(split, ("train", "test"), "MiniImageNet")
        if int(train_per_class) != train_per_class or train_per_class < 1:
            raise ValueError(f"train_per_class must be a positive integer, got {train_per_class!r}")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise self._error(root, "dataset root does not exist:")
        self.root, self.split, self.train_per_class = root, split, int(train_per_class)
        files_by_class, source = self._scan(root)
        data_classes = sorted(files_by_class)
        if classes is None:
            classes = data_classes
        check_class_lists(data_classes, list(classes), data_source=source, expected_source="the class list "
                          "(hierarchy)")
        samples = []
        for label, wnid in enumerate(classes):
            train, test = split_per_class(files_by_class[wnid], self.train_per_class)
            samples.extend((path, label) for path in (train if split == "train" else test))
        super().__init__(samples, classes, transform, skip_bad_images, root=root)

    @staticmethod
    def _error(missing: Path, detail: str = "") -> DatasetLayoutError:
        return DatasetLayoutError(missing, "Mini-ImageNet", MINI_IMAGENET_LAYOUT, MINI_IMAGENET_DOWNLOAD, detail)

    def _scan(self, root: Path) -> tuple[dict[str, list[Path]], str]:
        csvs = [root / f"{name}.csv" for name in ("train", "val", "test")]
        if (root / "images").is_dir() or any(p.exists() for p in csvs):
            for path in [root / "images", *csvs]:
                if not path.exists():
                    raise self._error(path)
            return self._scan_csv(root, csvs), f"{root}/*.csv"
        folders = _wnid_folders(root)
        if not folders:
            folders = [f for sub in ("train", "val", "test") if (root / sub).is_dir()
                       for f in _wnid_folders(root / sub)]
        if not folders:
            raise self._error(root / "images", "neither the csv layout nor per-wnid folders found; missing")
        files: dict[str, list[Path]] = defaultdict(list)
        for folder in folders:
            files[folder.name].extend(list_images(folder))
        return dict(files), f"the class folders under {root}"

    def _scan_csv(self, root: Path, csvs: Sequence[Path]) -> dict[str, list[Path]]:
        """``{wnid: image paths}`` from the ``filename,label`` csv files (module docstring).

        A header without ``filename`` and ``label``, a row with another number of fields than the
        header, an empty file name, a label that is not a wnid or an image listed twice (in any
        of the files) raises :class:`DatasetFormatError` naming the file and line.
        """
        files: dict[str, list[Path]] = defaultdict(list)
        first_seen: dict[str, tuple[Path, int]] = {}
        missing = []
        for path in csvs:
            # read_text_lines: BOM tolerated, binary / non-UTF-8 content reported with its line.
            reader = csv.reader(text for _, text in read_text_lines(path))
            header = [field.strip() for field in next(reader, [])]
            if not {"filename", "label"} <= set(header):
                raise DatasetFormatError(path, 1, "header without the columns filename and label",
                                         ",".join(header), "the header 'filename,label'")
            name_column, label_column = header.index("filename"), header.index("label")
            for fields in reader:
                line_no = reader.line_num  # read_text_lines numbers every line, so they agree
                if not any(field.strip() for field in fields):
                    continue
                if len(fields) != len(header):
                    raise DatasetFormatError(path, line_no, f"{len(fields)} field(s) instead of {len(header)}",
                                             ",".join(fields), f"{','.join(header)} (the header's columns)")
                name, wnid = fields[name_column].strip(), fields[label_column].strip()
                if not is_wnid(wnid):
                    raise DatasetFormatError(path, line_no, "label is not a WordNet id", wnid,
                                             "a wnid such as n01532829")
                if not name:
                    raise DatasetFormatError(path, line_no, "empty file name", ",".join(fields),
                                             "a file name in images/, such as n0153282900000005.jpg")
                if name in first_seen:
                    where, line = first_seen[name]
                    raise DatasetFormatError(path, line_no, f"image listed twice (first in {where.name} line "
                                             f"{line})", name, "each image once over train/val/test.csv")
                first_seen[name] = (path, line_no)
                image = root / "images" / name
                if not image.is_file():
                    missing.append(image)
                files[wnid].append(image)
        if missing:
            raise self._error(missing[0], f"{len(missing)} image file(s) named in the csv files are missing, e.g.")
        return dict(files)


class ImageNetSubset(ImageFileDataset):
    """Small-ImageNet: Tiny-ImageNet or an ImageNet-style tree restricted to ``wnids``.

    Args:
        root: Tiny-ImageNet's ``tiny-imagenet-200/`` or a folder with ``train/`` and ``val/``.
        wnids: classes in label order (``Hierarchy.classes``). ``None``: ``wnids.txt`` (Tiny)
            or the sorted class folders of ``train/``.
        split: ``"train"``, or ``"test"`` / ``"val"`` (both read ``val/``, the labelled held-out set).
        transform: applied to the RGB PIL image.
        skip_bad_images: see :class:`~kesl_utils.data.image_files.ImageFileDataset`.
        ignore_extra_classes: accept class folders not in ``wnids`` (a full ImageNet tree);
            otherwise they are an error, like wnids with no images.
    """

    @classmethod
    def for_run(cls, root, split, *, classes, transform, skip_bad_images):
        return cls(root, classes, split, transform=transform, skip_bad_images=skip_bad_images)

    def __init__(self, root: os.PathLike | str, wnids: Optional[Sequence[str]] = None, split: str = "train",
                 transform: Optional[Callable] = None, skip_bad_images: bool = False,
                 ignore_extra_classes: bool = False):
        _check_split(split, ("train", "test", "val"), "ImageNetSubset")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise self._error(root, "dataset root does not exist:")
        self.root, self.split = root, split
        self.layout = "tiny" if (root / "wnids.txt").exists() else "imagenet"
        for sub in ("train", "val"):
            if not (root / sub).is_dir():
                raise self._error(root / sub)
        if self.layout == "tiny":
            data_classes = [line.strip() for _, line in read_text_lines(root / "wnids.txt") if line.strip()]
            source = str(root / "wnids.txt")
        else:
            data_classes = [p.name for p in _wnid_folders(root / "train")]
            source = f"the class folders of {root / 'train'}"
            if not data_classes:
                raise self._error(root / "train" / "n01443537", "no <wnid> class folders in train/, e.g.")
        classes = list(wnids) if wnids is not None else data_classes
        check_class_lists(data_classes, classes, data_source=source, expected_source="the wnid list (hierarchy)",
                          allow_extra=ignore_extra_classes)
        label_of = {wnid: k for k, wnid in enumerate(classes)}
        if split == "train":
            samples = self._scan_train(root, classes)
        else:
            samples = self._scan_val(root, classes, label_of)
        super().__init__(samples, classes, transform, skip_bad_images, root=root)

    @staticmethod
    def _error(missing: Path, detail: str = "") -> DatasetLayoutError:
        return DatasetLayoutError(missing, "Small-ImageNet", SMALL_IMAGENET_LAYOUT, TINY_IMAGENET_DOWNLOAD, detail)

    def _class_folder(self, split_dir: Path, wnid: str) -> Path:
        folder = split_dir / wnid
        if (folder / "images").is_dir():
            folder = folder / "images"
        return folder

    def _scan_train(self, root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
        samples = []
        for label, wnid in enumerate(classes):
            folder = self._class_folder(root / "train", wnid)
            if not folder.is_dir():
                expected = root / "train" / wnid / ("images" if self.layout == "tiny" else "")
                raise self._error(expected, "class folder missing:")
            images = list_images(folder)
            if not images:
                raise self._error(folder / f"{wnid}_0.JPEG", "no images in the class folder, e.g.")
            samples.extend((path, label) for path in images)
        return samples

    def _scan_val(self, root: Path, classes: Sequence[str], label_of: dict) -> list[tuple[Path, int]]:
        annotations = root / "val" / "val_annotations.txt"
        samples = []
        if self.layout == "tiny" and not any((root / "val" / w).is_dir() for w in classes[:1]):
            if not annotations.is_file():
                raise self._error(annotations)
            missing = []
            for line_no, line in read_text_lines(annotations):
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) < 2:
                    raise DatasetFormatError(annotations, line_no, "fewer than 2 tab-separated fields", line,
                                             "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>")
                name, wnid = fields[0], fields[1]
                if wnid not in label_of:
                    continue  # its class was excluded (ignore_extra_classes) or already reported
                path = root / "val" / "images" / name
                if not path.is_file():
                    missing.append(path)
                samples.append((path, label_of[wnid]))
            if missing:
                raise self._error(missing[0], f"{len(missing)} image file(s) named in val_annotations.txt "
                                              "are missing, e.g.")
            return sorted(samples, key=lambda s: (s[1], s[0].name))
        for label, wnid in enumerate(classes):
            folder = self._class_folder(root / "val", wnid)
            if not folder.is_dir():
                raise self._error(root / "val" / wnid, "class folder missing:")
            samples.extend((path, label) for path in list_images(folder))
        return samples
