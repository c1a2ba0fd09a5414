"""What the real-image datasets share: decoding, skipping bad files, layout and class-list errors.

:class:`ImageFileDataset` holds a list of (path, label) samples. Decoding is PIL ``open`` +
``convert("RGB")``. A file that fails to decode raises :class:`ImageDecodeError` naming it, or,
with ``skip_bad_images=True``, is replaced by the next decodable sample and counted. The counts
live in a shared-memory tensor, so skips that happen inside ``DataLoader`` worker processes are
visible to the main process (fork and spawn alike); :meth:`ImageFileDataset.report_skipped`
warns once with the files skipped since the previous report (the trainer calls it once per epoch).

:func:`check_images` is the pre-flight check the trainer runs on both splits of a real dataset
before the first epoch: every listed file exists and its header decodes (PIL ``open`` +
``verify()``, about a millisecond per file, on threads). A file that fails stops the run there
with :class:`BadImagesError` listing every such file, unless ``skip_bad_images`` leaves them out of
the split up front (reported once, and listed in the run record). A file whose header is sound
but whose pixels are not (a truncated JPEG) is still caught when it is decoded, as above.

:meth:`ImageFileDataset.fingerprint` identifies a split by its files (paths relative to the
dataset root, sizes, labels) without decoding them. :func:`read_text_lines` reads the datasets'
metadata files (CUB's ``*.txt``, Mini-ImageNet's csv, Tiny-ImageNet's annotations) so that a
malformed file raises :class:`DatasetFormatError` naming the file, the line and what was expected.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "BadImagesError",
    "DatasetFormatError",
    "DatasetLayoutError",
    "ImageDecodeError",
    "ImageFileDataset",
    "IMAGE_EXTENSIONS",
    "check_class_lists",
    "check_images",
    "is_wnid",
    "list_images",
    "load_rgb",
    "read_text_lines",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_WNID = re.compile(r"^n\d{8}$")
# Changes whenever what fingerprint() hashes changes, so old and new digests never collide.
_FINGERPRINT_FORMAT = "kesl_utils.ImageFileDataset.fingerprint/1"


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


class DatasetFormatError(ValueError):
    """A dataset's metadata file is malformed (bad field, duplicate id, not UTF-8 text, …).

    A ``ValueError``, not a :class:`DatasetLayoutError`: the file exists, its content is wrong, and
    re-downloading is rarely the cure. The message reads ``<file>:<line>: <problem>: <text>;
    expected <what>``; the parts are the attributes ``path``, ``line`` (1-based, ``None`` for the
    whole file), ``text`` and ``expected``.
    """

    def __init__(self, path: os.PathLike | str, line: Optional[int], problem: str, text: object = None,
                 expected: str = ""):
        self.path, self.line, self.text, self.expected = Path(path), line, text, expected
        message = f"{self.path}:{line}: {problem}" if line is not None else f"{self.path}: {problem}"
        if text is not None:
            shown = text if len(text) <= 80 else text[:80]
            message += f": {shown!r}" + (" (truncated)" if len(text) > 80 else "")
        if expected:
            message += f"; expected {expected}"
        super().__init__(message)


class ImageDecodeError(OSError):
    """An image file could not be decoded; ``path`` names it."""

    def __init__(self, path: os.PathLike | str, cause: BaseException):
        self.path = Path(path)
        super().__init__(f"cannot decode image {self.path}: {type(cause).__name__}: {cause}. "
                         f"{SKIP_HINT} replaces undecodable files by the next image "
                         "(they are counted and reported once per epoch).")

    def __str__(self) -> str:
        return self.args[0]


#: How a user asks to skip bad images, on the command line and in Python.
SKIP_HINT = "--skip-bad-images (python -m kesl_utils train; skip_bad_images=True in a Config or dataset)"


class BadImagesError(OSError):
    """Files of a real dataset that the pre-flight check (:func:`check_images`) found missing or
    unreadable, before any training; ``problems`` is ``{split: [(path, problem), ...]}``."""

    def __init__(self, problems: dict, dataset: str = "the dataset"):
        self.problems = problems
        count = sum(len(found) for found in problems.values())
        lines = [f"{count} image file(s) of {dataset} cannot be read (checked before the first epoch: every listed "
                 "file exists and its header decodes):"]
        for split, found in problems.items():
            lines += [f"  {split}: {path} ({problem})" for path, problem in found[:20]]
            if len(found) > 20:
                lines.append(f"  {split}: … {len(found) - 20} more")
        lines.append(f"Replace or remove them, or leave them out of the run with {SKIP_HINT}: they are then "
                     "counted, reported and listed in the run record.")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return self.args[0]


def image_problem(path: os.PathLike | str) -> Optional[str]:
    """Why ``path`` cannot be an image of a run (``None``: it exists and its header decodes).

    The cheap check of :func:`check_images`: PIL's ``open`` parses the header and ``verify()`` the
    structure PIL can check without decoding (e.g. PNG chunk CRCs); the pixels are not decoded.
    """
    try:
        with Image.open(path) as image:
            image.verify()
    except FileNotFoundError:
        return "missing"
    except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, …
        return f"{type(error).__name__}: {error}"
    return None


def check_images(splits: dict, *, skip_bad_images: bool, dataset: str = "the dataset",
                 workers: int = 8) -> dict:
    """The pre-flight check of a run's real data: every file of every split in ``splits``
    (``{"train": ImageFileDataset, "test": ...}``) exists and its header decodes
    (:func:`image_problem`), on ``workers`` threads.

    Without ``skip_bad_images`` any bad file raises :class:`BadImagesError` listing them all (per
    split) and naming the skip flag. With it, the bad files are removed from their split
    (:meth:`ImageFileDataset.drop`), one ``RuntimeWarning`` names them, and the result lists them.
    Returns ``{split: [path relative to the dataset root, ...]}`` of the files left out (empty lists:
    every file is sound).
    """
    problems = {}
    for split, data in splits.items():
        files = [path for path, _ in data.samples]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            found = list(pool.map(image_problem, files))
        problems[split] = [(i, str(files[i]), problem) for i, problem in enumerate(found) if problem is not None]
    bad = {split: [(path, problem) for _, path, problem in found] for split, found in problems.items() if found}
    if bad and not skip_bad_images:
        raise BadImagesError(bad, dataset)
    left_out = {}
    for split, data in splits.items():
        left_out[split] = [data.relative_name(path) for _, path, _ in problems[split]]
        data.drop([i for i, _, _ in problems[split]])
    if bad:
        count = sum(len(found) for found in bad.values())
        shown = "; ".join(f"{split}: {_listing(left_out[split], 10)}" for split in bad)
        warnings.warn(f"{dataset}: left {count} unreadable image file(s) out of the run (skip_bad_images): {shown}",
                      RuntimeWarning, stacklevel=2)
    return left_out


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


_UTF8_BOM = b"\xef\xbb\xbf"


def read_text_lines(path: os.PathLike | str) -> list[tuple[int, str]]:
    """Every line of the text file ``path`` as ``(line number, text)``, numbered from 1.

    A UTF-8 byte-order mark at the start is dropped: Windows editors add one on saving and it
    carries no information, so rejecting it would only make a user hunt for an invisible
    character. Line ends may be ``\\n`` or ``\\r\\n``. A NUL byte (a binary or UTF-16 file) or bytes
    that are not UTF-8 raise :class:`DatasetFormatError` naming the line.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for number, raw in enumerate(raw_lines, 1):
        if b"\x00" in raw:
            raise DatasetFormatError(path, number, "binary content (a NUL byte), not a text file", raw,
                                     "UTF-8 text (a UTF-16 file, as some Windows editors save, "
                                     "also has NUL bytes: save it as UTF-8)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetFormatError(path, number, f"not UTF-8 (byte 0x{raw[error.start]:02x} at column "
                                     f"{error.start + 1})", raw, "UTF-8 text") from None
        lines.append((number, text[:-1] if text.endswith("\r") else text))
    return lines


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
        root: the dataset's root folder; every sample lies under it (needed by :meth:`fingerprint`).

    Attributes:
        samples, targets, classes, root.
        n_skipped: skips so far (cumulative; a file skipped in two epochs counts twice).
        bad_images: set of paths (str) that failed to decode so far.
    """

    def __init__(self, samples: Sequence[tuple[Path, int]], classes: Sequence[str],
                 transform: Optional[Callable] = None, skip_bad_images: bool = False, *,
                 root: Optional[os.PathLike | str] = None):
        self.root = Path(root) if root is not None else None
        self.samples = [(Path(p), int(y)) for p, y in samples]
        self.classes = list(classes)
        self.transform = transform
        self.skip_bad_images = bool(skip_bad_images)
        self._reset_counts()

    @classmethod
    def for_run(cls, root: Path, split: str, *, classes: Sequence[str], transform: Optional[Callable],
                skip_bad_images: bool) -> "ImageFileDataset":
        """The ``split`` of the dataset under ``root``, labelled in the order of ``classes`` (the
        hierarchy's): how the trainer builds every real dataset (``DatasetSpec.loader``). Each
        loader class of a registered dataset implements it."""
        raise NotImplementedError(f"{cls.__name__} does not implement for_run, so it cannot be the loader "
                                  "of a registered dataset")

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

    def drop(self, indices: Iterable[int]) -> "ImageFileDataset":
        """Remove the samples at ``indices`` (the pre-flight check's bad files); returns self."""
        gone = set(indices)
        if gone:
            self.samples = [sample for i, sample in enumerate(self.samples) if i not in gone]
            self._reset_counts()
        return self

    def relative_name(self, path: os.PathLike | str) -> str:
        """``path`` relative to the dataset root (``/``-separated), as records list files; as is without a root."""
        try:
            return Path(path).relative_to(self.root).as_posix() if self.root is not None else str(path)
        except ValueError:
            return str(path)

    def fingerprint(self) -> str:
        """A sha256 hex digest of the split as it will be read: the class list, then each sample's
        path relative to ``root`` (``/``-separated), its size in bytes and its label, in sample
        order (after :meth:`limit_per_class`).

        Moving or renaming the dataset root keeps the digest; adding, removing, renaming or
        resizing a file, relabelling a sample or reordering the classes changes it. A file
        edited in place to the same size is not noticed: no image is read, one ``stat`` per file.
        """
        if self.root is None:
            raise ValueError(f"{type(self).__name__} has no root folder; fingerprint() hashes paths "
                             "relative to it (pass root= to ImageFileDataset)")
        digest = hashlib.sha256()
        digest.update(json.dumps([_FINGERPRINT_FORMAT, self.classes], ensure_ascii=False).encode("utf-8"))
        for path, label in self.samples:
            try:
                relative = path.relative_to(self.root).as_posix()
            except ValueError:
                raise ValueError(f"{type(self).__name__}.fingerprint: {path} is not under the dataset "
                                 f"root {self.root}") from None
            try:
                size = os.stat(path).st_size
            except OSError as error:
                raise FileNotFoundError(f"{type(self).__name__}.fingerprint: cannot stat {path} "
                                        f"({type(error).__name__}: {error}); was the dataset changed "
                                        "after it was listed?") from error
            digest.update(b"\n" + json.dumps([relative, size, label], ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()

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
