"""Image transforms of every profile, in one place.

``build_transforms(kind, image_size, train)``:

* ``"cub"`` — the usual fine-grained recipe, scaled to ``image_size``: resize to
  ``round(image_size · 8/7)`` square (512 for the paper's 448), then a random crop of
  ``image_size`` and a horizontal flip for training, a centre crop for testing.
* ``"imagenet"`` — training ``RandomResizedCrop(image_size)`` + flip; testing resize of the
  shorter side to ``round(image_size · 8/7)`` (256 for 224) + centre crop.
* ``"synthetic"`` — ``None``: :class:`~kesl_utils.data.SyntheticHierarchical` returns normalised
  tensors with the nuisance (shift, scale, colour, noise) drawn by the generator. A horizontal
  flip would mirror the gratings' orientations and merge classes, so there is none.

Real-image pipelines end with ``ToTensor`` and normalisation by the ImageNet mean and std.
"""
from __future__ import annotations

from typing import Callable, Optional

from torchvision import transforms as T

from .. import names

__all__ = ["build_transforms", "IMAGENET_MEAN", "IMAGENET_STD", "TRANSFORM_KINDS", "resize_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The real-image kinds are the registry's (a dataset names one in ``DatasetSpec.transform``).
TRANSFORM_KINDS = names.REAL_TRANSFORMS + ("synthetic",)


def resize_size(image_size: int) -> int:
    """The pre-crop resize: ``round(image_size · 8/7)`` (448 → 512, 224 → 256)."""
    return int(round(image_size * 8 / 7))


def build_transforms(kind: str, image_size: int, train: bool) -> Optional[Callable]:
    """The transform of ``kind`` ∈ {"cub", "imagenet", "synthetic"} for crops of ``image_size`` px.

    Returns a callable PIL image → float tensor (3, image_size, image_size), or ``None`` for
    ``"synthetic"`` (see the module docstring).
    """
    if kind not in TRANSFORM_KINDS:
        raise ValueError(f"transform kind must be one of {', '.join(TRANSFORM_KINDS)}, got {kind!r}")
    if int(image_size) != image_size or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    image_size = int(image_size)
    if kind == "synthetic":
        return None
    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    resize = resize_size(image_size)
    if kind == "cub":
        if train:
            steps = [T.Resize((resize, resize)), T.RandomCrop(image_size), T.RandomHorizontalFlip()]
        else:
            steps = [T.Resize((resize, resize)), T.CenterCrop(image_size)]
    else:
        if train:
            steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
        else:
            steps = [T.Resize(resize), T.CenterCrop(image_size)]
    return T.Compose(steps + normalise)
