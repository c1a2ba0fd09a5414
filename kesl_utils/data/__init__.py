"""Datasets of the paper (CUB-200-2011, Mini-ImageNet, Small-ImageNet) and their embedded
synthetic stand-ins, as ``torch.utils.data.Dataset``s whose label order is ``Hierarchy.classes``.

``dataset[i]`` is ``(image, label)`` with a zero-based int label; the image is a PIL image, or a
tensor once a transform is applied (the synthetic set always returns a float tensor (3, H, W)).

* :mod:`.cub` — :class:`CUB200`; :mod:`.imagenet` — :class:`MiniImageNet`, :class:`ImageNetSubset`;
  :mod:`.synthetic` — :class:`SyntheticHierarchical`; :mod:`.transforms` — :func:`build_transforms`;
  :mod:`.loaders` — :func:`build_dataset`, :func:`build_loader`, :func:`data_fingerprint`,
  :func:`with_data_fingerprint`, :func:`load_run_hierarchy`;
  :mod:`.image_files` — decoding, the pre-flight check of every file (:func:`check_images`), skip
  counting, fingerprints, metadata reading and the errors shared by the real datasets.

Nothing here downloads: a missing dataset raises :class:`DatasetLayoutError` (a
``FileNotFoundError``) naming the missing file, the expected layout and where to get it; a
malformed metadata file raises :class:`DatasetFormatError` (a ``ValueError``) naming the file,
the line and what was expected.
"""
from .cub import CUB200
from .image_files import BadImagesError, DatasetFormatError, DatasetLayoutError, ImageDecodeError, check_images
from .imagenet import ImageNetSubset, MiniImageNet
from .loaders import build_dataset, build_loader, data_fingerprint, load_run_hierarchy, with_data_fingerprint
from .synthetic import SyntheticHierarchical
from .transforms import build_transforms

__all__ = [
    "CUB200",
    "MiniImageNet",
    "ImageNetSubset",
    "SyntheticHierarchical",
    "build_dataset",
    "build_loader",
    "build_transforms",
    "data_fingerprint",
    "load_run_hierarchy",
    "with_data_fingerprint",
    "DatasetFormatError",
    "DatasetLayoutError",
    "ImageDecodeError",
    "BadImagesError",
    "check_images",
]
