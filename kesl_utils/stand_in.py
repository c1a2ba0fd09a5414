"""What the synthetic stand-in looks like: one class beside a sibling, a cousin and a distant class.

The quick and smoke profiles train on images that :class:`kesl_utils.data.SyntheticHierarchical`
generates over a dataset's real hierarchy. A reader should see them before any number:
:func:`relatives` picks, for one anchor class, three relatives by the paper's distance
d_ij = e_ij − 1 and draws their images exactly as a run's data would (same generator, same
arguments, same image indices), and :func:`figure` shows them row by row.

The relatives of anchor class i (row i of d, ties broken by the lowest class index):

* **sibling** — the smallest d_ij > 0 (on CUB: same genus, d = 1);
* **cousin** — the middle one of the distinct distances strictly between the sibling's and the
  distant class's (the lower middle when their number is even; on CUB: same family, d = 3);
  no cousin where no distance lies between the two;
* **distant** — the largest d_ij (on CUB: another order, d = 7).

The images of class c are the first ``per_class`` images of c in a split of ``n_per_class`` images
per class: indices ``c · n_per_class + k``. A split's image k depends on (seed, split, index), so
to show the very images a run trains on, give the run's ``n_per_class`` and ``seed``
(:func:`relatives_of_config` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

__all__ = ["Relative", "Relatives", "ROLES", "choose_relatives", "relatives", "relatives_of_config", "figure"]

ROLES = ("anchor", "sibling", "cousin", "distant")


# -- the library this module uses (one place to adapt when it changes) ---------------------------
def _load_hierarchy(dataset: str):
    from .hierarchy_files import load_hierarchy
    return load_hierarchy(dataset)


def _class_distances(hierarchy) -> np.ndarray:
    """d_ij = e_ij − 1 (d_ii = 0), int64 (n, n)."""
    from .metrics import class_distance_matrix
    return class_distance_matrix(hierarchy.edge_distances()).numpy()


def _synthetic_dataset(dataset: str, hierarchy, *, split: str, n_per_class: int, image_size: int, seed: int,
                       alignment: float, label_noise: float):
    """The split exactly as the trainer builds it for a synthetic config."""
    from .data import build_dataset
    return build_dataset(dataset, split, source="synthetic", hierarchy=hierarchy, image_size=image_size,
                         n_per_class=n_per_class, seed=seed, alignment=alignment, label_noise=label_noise)


def _display_name(dataset: str) -> str:
    from . import names
    spec = names.DATASETS.get(dataset)
    return spec.display if spec is not None else dataset


def _data_fields(config) -> dict:
    """The fields of a Config that decide its synthetic training images."""
    if config.source != "synthetic":
        raise ValueError(f"{config.run_id} trains on real images (source={config.source!r}); "
                         "the stand-in is shown for synthetic configs")
    return dict(dataset=config.dataset, image_size=config.image_size, n_per_class=config.n_per_class,
                seed=config.seed, alignment=config.alignment, label_noise=config.label_noise)


# -- choosing the relatives ----------------------------------------------------------------------
def choose_relatives(d: np.ndarray, anchor: int) -> dict[str, Optional[int]]:
    """``{"anchor", "sibling", "cousin", "distant": class index or None}`` from the (n, n) distances d.

    Rules in the module docstring; ties go to the lowest class index. ``None``: no class fills
    the role (a single class; no distance between the sibling's and the distant's for a cousin).
    """
    d = np.asarray(d)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"d must be a square (n, n) matrix, got shape {d.shape}")
    n = d.shape[0]
    if not 0 <= anchor < n:
        raise ValueError(f"anchor={anchor} is not a class index (0 … {n - 1})")
    row = d[anchor]
    others = [j for j in range(n) if j != anchor]
    chosen: dict[str, Optional[int]] = {"anchor": anchor, "sibling": None, "cousin": None, "distant": None}
    positive = [j for j in others if row[j] > 0]
    if not positive:
        return chosen
    # min/max over (distance, index): the lowest index wins ties.
    sibling = min(positive, key=lambda j: (row[j], j))
    distant = min(positive, key=lambda j: (-row[j], j))
    chosen["sibling"] = sibling
    if row[distant] > row[sibling]:
        chosen["distant"] = distant
        between = sorted({int(row[j]) for j in positive if row[sibling] < row[j] < row[distant]})
        if between:
            middle = between[(len(between) - 1) // 2]
            chosen["cousin"] = min(j for j in positive if row[j] == middle)
    return chosen


@dataclass(frozen=True)
class Relative:
    """One row of the figure: a class, its distance to the anchor and its images.

    images: (per_class, 3, H, W) float32, the generator's output (normalised, noise included).
    template: (3, H, W), the class's noise-free appearance x_c (``class_templates``).
    dataset_indices: the indices of ``images`` in the split they come from.
    """

    role: str
    index: int
    class_id: str
    name: str
    d: int
    images: torch.Tensor
    template: torch.Tensor
    dataset_indices: tuple


@dataclass(frozen=True)
class Relatives:
    """What :func:`relatives` returns: the rows (anchor first) and where the images come from."""

    dataset: str
    rows: tuple
    split: str
    n_per_class: int
    image_size: int
    seed: int
    alignment: float

    def row(self, role: str) -> Optional[Relative]:
        return next((r for r in self.rows if r.role == role), None)


def relatives(dataset: str, *, anchor: int = 0, seed: int = 0, image_size: int = 32, per_class: int = 3,
              n_per_class: Optional[int] = None, split: str = "train", alignment: float = 1.0,
              label_noise: float = 0.0, hierarchy=None) -> Relatives:
    """The anchor class, its sibling, cousin and distant class, with ``per_class`` images each.

    dataset: a dataset name (its shipped hierarchy, unless ``hierarchy`` is given).
    n_per_class: images per class of the split the images are taken from (``None``: ``per_class``);
        a run's own value shows that run's images (module docstring).
    seed, image_size, alignment, label_noise, split: as the run's synthetic data
        (:func:`kesl_utils.data.build_dataset` with ``source="synthetic"``).
    hierarchy: a :class:`~kesl_utils.hierarchy.Hierarchy` to use instead of the dataset's.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be ≥ 1, got {per_class}")
    n_per_class = per_class if n_per_class is None else int(n_per_class)
    if n_per_class < per_class:
        raise ValueError(f"per_class={per_class} images cannot come from a split of n_per_class={n_per_class}")
    hierarchy = _load_hierarchy(dataset) if hierarchy is None else hierarchy
    d = _class_distances(hierarchy)
    chosen = choose_relatives(d, anchor)
    data = _synthetic_dataset(dataset, hierarchy, split=split, n_per_class=n_per_class, image_size=image_size,
                              seed=seed, alignment=alignment, label_noise=label_noise)
    templates = data.class_templates()
    rows = []
    for role in ROLES:
        index = chosen[role]
        if index is None:
            continue
        indices = tuple(index * n_per_class + k for k in range(per_class))
        images = torch.stack([data[i][0] for i in indices])
        class_id = hierarchy.classes[index]
        rows.append(Relative(role, index, class_id, hierarchy.name(class_id), int(d[anchor, index]), images,
                             templates[index], indices))
    return Relatives(dataset, tuple(rows), split, n_per_class, int(image_size), int(seed), float(alignment))


def relatives_of_config(config, *, anchor: int = 0, per_class: int = 3) -> Relatives:
    """:func:`relatives` with the training images of a synthetic run ``config`` (its dataset, image
    size, images per class, seed, alignment and label noise)."""
    return relatives(anchor=anchor, per_class=per_class, split="train", **_data_fields(config))


# -- the figure ----------------------------------------------------------------------------------
def _display_range(tensors: list[torch.Tensor]) -> tuple[float, float]:
    """One intensity range for every panel (mean ± 2.5 sd of all shown pixels), so panels compare."""
    values = torch.cat([t.reshape(-1) for t in tensors]).double()
    mean, sd = float(values.mean()), float(values.std())
    return mean - 2.5 * sd, mean + 2.5 * sd


def figure(result: Relatives, *, templates: bool = True, title: Optional[str] = None):
    """A matplotlib figure: one row per relative (anchor, sibling, cousin, distant), one column per
    image, the row labelled with the class name and d; with ``templates``, a first column with the
    class's noise-free appearance. All panels share one intensity scale."""
    import matplotlib.pyplot as plt

    rows = result.rows
    per_class = rows[0].images.shape[0]
    columns = per_class + (1 if templates else 0)
    low, high = _display_range([r.images for r in rows] + ([r.template for r in rows] if templates else []))
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns + 2.4, 1.6 * len(rows)), squeeze=False)
    for r, relative in enumerate(rows):
        panels = ([relative.template] if templates else []) + list(relative.images)
        for c, image in enumerate(panels):
            ax = axes[r, c]
            shown = ((image.float() - low) / (high - low)).clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(shown, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("template (no noise)" if templates and c == 0
                             else f"image {c - (1 if templates else 0) + 1}", fontsize=8)
        distance = "" if relative.role == "anchor" else f"\nd = {relative.d}"
        axes[r, 0].set_ylabel(f"{relative.role}\n{relative.name}{distance}", rotation=0, ha="right", va="center",
                              fontsize=8)
    size = result.image_size
    fig.suptitle(title or f"Synthetic stand-in over the {_display_name(result.dataset)} hierarchy: {size}×{size} px, "
                          f"seed {result.seed}, {result.split} images", fontsize=9)
    fig.tight_layout()
    return fig
