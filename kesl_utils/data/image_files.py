"""What the real-image datasets share: decoding, skipping bad files, layout and class-list errors.

:class:`ImageFileDataset` holds a list of (path, label) samples. Decoding is PIL ``open`` +
``convert("RGB")``. A file that fails to decode raises :class:`ImageDecodeError` naming it, or,
with ``skip_bad_images=True``, is replaced by the next decodable sample and counted. The counts
live in a shared-memory tensor, so skips that happen inside ``DataLoader`` worker processes are
visible to the main process (fork and spawn alike); :meth:`ImageFileDataset.report_skipped`
warns once with the files skipped since the previous report (the trainer calls it once per epoch).
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "DatasetLayoutError",
    "ImageDecodeError",
    "ImageFileDataset",
    "IMAGE_EXTENSIONS",
    "check_class_lists",
    "is_wnid",
    "list_images",
    "load_rgb",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_WNID = re.compile(r"^n\d{8}$")


class DatasetLayoutError(FileNotFoundError):
    """A dataset root is missing or incomplete; the message shows the expected layout."""

    def __init__(self, missing: os.PathLike | str, dataset: str, layout: str, download: str,
                 detail: str = ""):
        self.missing = Path(missing)
        message = (f"{dataset}: {detail or 'missing'} {self.missing}\n"
                   f"Expected layout:\n{layout.rstrip()}\n"
                   f"Get it from: {download}\n"
                   "(nothing is downloaded automatically; unpack it under DATA_ROOT, default data/raw/)")
        super().__init__(message)
        self.filename = str(self.missing)

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno None] ..." forms
        return self.args[0]


class ImageDecodeError(OSError):
    """An image file could not be decoded; ``path`` names it."""

    def __init__(self, path: os.PathLike | str, cause: BaseException):
        self.path = Path(path)
        super().__init__(f"cannot decode image {self.path}: {type(cause).__name__}: {cause}. "
                         "Pass skip_bad_images=True to replace undecodable files by the next image "
                         "(they are counted and reported once per epoch).")

    def __str__(self) -> str:
        return self.args[0]


def is_wnid(name: str) -> bool:
    """True for WordNet ids such as ``n01532829``."""
    return bool(_WNID.match(name))


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by file name (the order the splits use)."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                  key=lambda p: p.name)


def load_rgb(path: os.PathLike | str) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image (``convert`` forces the lazy decode)."""
    with open(path, "rb") as handle:
        image = Image.open(handle)
        return image.convert("RGB")


def _listing(items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def check_class_lists(data_classes: Sequence[str], expected: Sequence[str], *, data_source: str,
                      expected_source: str, allow_extra: bool = False) -> None:
    """Raise ``ValueError`` listing the classes on one side only.

    ``data_source`` / ``expected_source`` say where each list came from (a file, the hierarchy).
    With ``allow_extra``, classes present in the data but not expected are ignored.
    """
    data_set, expected_set = set(data_classes), set(expected)
    only_data = [c for c in data_classes if c not in expected_set]
    only_expected = [c for c in expected if c not in data_set]
    duplicates = sorted(c for c, k in Counter(expected).items() if k > 1)
    problems = []
    if only_data and not allow_extra:
        problems.append(f"{len(only_data)} class(es) in {data_source} but not in {expected_source}: "
                        f"{_listing(only_data)}")
    if only_expected:
        problems.append(f"{len(only_expected)} class(es) in {expected_source} but not in {data_source}: "
                        f"{_listing(only_expected)}")
    if duplicates:
        problems.append(f"duplicate class(es) in {expected_source}: {_listing(duplicates)}")
    if problems:
        raise ValueError("class list mismatch — " + "; ".join(problems))


class ImageFileDataset(Dataset):
    """A list of (image path, label) samples with careful decoding.

    Args:
        samples: (path, label) pairs; labels index ``classes``.
        classes: class ids in label order (the hierarchy's ``classes``).
        transform: callable applied to the RGB PIL image (``None``: return the PIL image).
        skip_bad_images: replace an undecodable image by the next decodable one instead of raising.

    Attributes:
        samples, targets, classes.
        n_skipped: skips so far (cumulative; a file skipped in two epochs counts twice).
        bad_images: set of paths (str) that failed to decode so far.
    """

    def __init__(self, samples: Sequence[tuple[Path, int]], classes: Sequence[str],
                 transform: Optional[Callable] = None, skip_bad_images: bool = False):
        self.samples = [(Path(p), int(y)) for p, y in samples]
        self.classes = list(classes)
        self.transform = transform
        self.skip_bad_images = bool(skip_bad_images)
        self._reset_counts()

    def _reset_counts(self) -> None:
        # Shared memory: DataLoader workers (forked or spawned) update the same storage.
        self._skips = torch.zeros(len(self.samples), dtype=torch.int32).share_memory_()
        self._reported = torch.zeros(len(self.samples), dtype=torch.int32)

    @property
    def targets(self) -> list[int]:
        return [y for _, y in self.samples]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def limit_per_class(self, n: int) -> "ImageFileDataset":
        """Keep the first ``n`` samples of each class (in sample order); returns self."""
        if int(n) != n or n < 1:
            raise ValueError(f"n_per_class must be a positive integer, got {n!r}")
        kept, seen = [], {}
        for path, label in self.samples:
            if seen.get(label, 0) < n:
                kept.append((path, label))
                seen[label] = seen.get(label, 0) + 1
        self.samples = kept
        self._reset_counts()
        return self

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        n = len(self.samples)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        for attempt in range(n):
            i = (index + attempt) % n
            path, label = self.samples[i]
            try:
                image = load_rgb(path)
            except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError…
                if not self.skip_bad_images:
                    raise ImageDecodeError(path, error) from error
                self._skips[i] += 1
                continue
            image = self._prepare(i, image)
            if self.transform is not None:
                image = self.transform(image)
            return image, label
        raise ImageDecodeError(self.samples[index][0], RuntimeError("no image of the dataset decodes"))

    def _prepare(self, index: int, image: Image.Image) -> Image.Image:
        """Dataset-specific step between decoding and ``transform`` (CUB: bounding-box crop)."""
        return image

    @property
    def n_skipped(self) -> int:
        return int(self._skips.sum())

    @property
    def bad_images(self) -> set[str]:
        return {str(self.samples[i][0]) for i in torch.nonzero(self._skips).flatten().tolist()}

    def report_skipped(self, reset: bool = True) -> set[str]:
        """Files skipped since the previous report; warns once if there are any.

        Call once per epoch. ``reset=False`` reports without moving the mark.
        """
        counts = self._skips.clone()
        new = torch.nonzero(counts > self._reported).flatten().tolist()
        files = {str(self.samples[i][0]) for i in new}
        if files:
            events = int((counts - self._reported).clamp(min=0).sum())
            warnings.warn(f"{type(self).__name__}: skipped {events} undecodable image(s) in "
                          f"{len(files)} file(s): {_listing(sorted(files), 10)}", RuntimeWarning,
                          stacklevel=2)
        if reset:
            self._reported = counts
        return files

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.samples)} images, {len(self.classes)} classes)"
