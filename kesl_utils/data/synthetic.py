"""An embedded image dataset whose visual similarity follows a class hierarchy.

The ``quick`` and ``smoke`` profiles must run with no download, so they train on stand-ins of
CUB-200-2011 and Mini-ImageNet generated from the shipped hierarchies. The generator is built
so that the hierarchy carries real information about the images — which is what the paper's
knowledge-embedded soft labels g_ij exploit — while staying hard enough that the quick tables
are not saturated:

* Every non-root node v of ``hierarchy.graph`` owns a random pattern p_v of shape (3, H, W): a
  colour offset plus a few colour gratings whose spatial frequency rises with the node's level
  (coarse nodes: broad colour fields; deep nodes: finer detail), scaled to unit RMS.
* The noise-free appearance of class c is

      x_c = Σ_{v ∈ A(c)} a(v, c) · p_v,      a(v, c) = level_decay ** ℓ(v, c)

  with A(c) the ancestors of c including c itself and excluding the root (in a DAG such as a
  WordNet subnet: *all* ancestors over all hypernym paths, so that every path the hierarchy's
  e_ij can use is visible in the image), and ℓ(v, c) = (depth(v) − 1) · min(1, (R − 1) / (depth(c) − 1))
  with R = ``reference_levels``. In CUB's four-level taxonomy (order → family → genus → class)
  this is exactly 1, ½, ¼, ⅛: each deeper level has half the amplitude of its parent, so the
  detail that tells siblings apart is faint. Deeper WordNet paths are compressed onto the same
  amplitude range so that their leaves do not vanish.
* Each image adds nuisance drawn per image: a random zoom in ``scale_range`` (0.9–1.1) and
  translation up to ``max_shift`` × image size along each axis (1/16: ±2 px at 32 px), a
  per-channel gain 1 ± 0.2 and offset ± 0.2 (``colour_jitter``), and white Gaussian noise of
  standard deviation ``noise_std`` = 1.5 (on unit-RMS node patterns).

Calibration of the defaults (``benchmarks/calibrate_synthetic.py``; torchvision ResNet-18 as
built by ``kesl_utils.models``, cross-entropy, the quick budget: 32 px, 15 training and 10 test
images per class, 5 epochs, batch 128, SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine; one
thread), seeds 0 and 1: CUB stand-in 35.7% / 34.9% top-1 with a mean mistake distance
d = 2.3 / 2.4 against 5.9 over all class pairs (35% of mistakes are siblings, d = 1);
Mini-ImageNet stand-in 47.1% / 52.5%, d = 5.0 / 4.7 against 11.0. The nuisance is the lever:
with ``max_shift=0.125, scale_range=(0.85, 1.15)`` the same runs gave 28.4% and 27.4%, and the
noise level moves little (σ = 1.25: 30.5% and 29.4%), because the quick budget (~115 SGD
steps) limits learning more than the noise does.

``alignment`` ∈ [0, 1]: a share (1 − alignment) of the classes, chosen at random, take the
appearance of another class of that set (a random cyclic permutation, so every class keeps a
distinct appearance). At alignment 0 visual similarity is unrelated to the hierarchy, which is
the control for "do knowledge-embedded labels help only when the knowledge is true?".

``label_noise`` ∈ [0, 1]: exactly ``round(label_noise · len)`` images of the split, chosen at
random, have their label replaced by a class drawn uniformly among the *other* classes; their
image keeps the appearance of the true class (``true_targets``). The noisy labels are what
``dataset[i]`` and ``targets`` return; ``noisy_indices`` lists the relabelled images. This is
the stand-in for noisy annotations (issue 15): soft labels are claimed to help most when some
hard labels are wrong.

Everything is deterministic: the patterns depend on (``seed``, node id), the class permutation on
``seed``, image i of a split on (``seed``, split, i) through its own ``torch.Generator``, and the
relabelled images and their labels on (``seed``, split) through a NumPy generator of their own,
so label noise leaves every image bit-identical.
Images are generated analytically at the target resolution (gratings evaluated on shifted and
scaled coordinates), so there are no border artefacts and one image costs a handful of small
tensor operations (well over 5,000 images/s per core at 32 px; see ``benchmarks/bench_synthetic.py``).
"""
from __future__ import annotations

import math
import zlib
from typing import Any, Callable, Optional, Sequence

import networkx as nx
import numpy as np
import torch
from torch.utils.data import Dataset

from .. import names

__all__ = ["SyntheticHierarchical", "DEFAULT_N_PER_CLASS"]

#: Images per class when a caller gives none; the quick-profile calibration used these.
DEFAULT_N_PER_CLASS = {"train": 20, "val": 10, "test": 10}

_MASK64 = (1 << 64) - 1
# Entropy words that keep the NumPy streams of the alignment permutation and of the label noise apart.
_ALIGNMENT_STREAM = 0xA11C
_LABEL_NOISE_STREAM = 0x1AB3_7015E


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _stable_hash(*parts: Any) -> int:
    """A 63-bit hash of ints/strings that, unlike ``hash()``, is the same in every process."""
    h = 0x243F6A8885A308D3
    for part in parts:
        value = zlib.crc32(part.encode("utf-8")) if isinstance(part, str) else int(part) & _MASK64
        h = _splitmix64(h ^ value)
    return h & ((1 << 63) - 1)


def _node_depths(hierarchy, nodes: Sequence[str]) -> dict[str, int]:
    depth_fn = getattr(hierarchy, "depth", None)
    if callable(depth_fn):
        return {v: int(depth_fn(v)) for v in nodes}
    lengths = nx.single_source_shortest_path_length(hierarchy.graph, hierarchy.root)
    return {v: int(lengths[v]) for v in nodes}


class SyntheticHierarchical(Dataset):
    """Images generated on the fly whose similarity follows ``hierarchy`` (see the module docstring).

    Args:
        hierarchy: an object with ``graph`` (networkx DiGraph, parent → child), ``classes``
            (class node ids; index = label) and ``root`` — a :class:`kesl_utils.hierarchy.Hierarchy`.
        split: any name; different splits draw different images ("train", "val", "test").
        n_per_class: images per class; image i has label ``i // n_per_class``.
        image_size: H = W in pixels.
        seed: selects the patterns, the alignment permutation and the per-image nuisance.
        alignment: share of classes whose appearance follows the hierarchy (1 = all).
        label_noise: share of the split's images whose label is replaced by a uniformly drawn
            other class (module docstring); 0 = clean labels.
        level_decay, reference_levels: amplitude a(v, c) = level_decay ** ℓ(v, c) (module docstring).
        noise_std: σ of the additive white noise, relative to unit-RMS node patterns.
        max_shift: largest translation along each axis, as a fraction of the image size.
        scale_range: (min, max) zoom factor of the pattern.
        colour_jitter: per-channel gain drawn from 1 ± colour_jitter and offset from ± colour_jitter.
        gratings_per_node: colour gratings in each node's pattern.
        transform: optional callable applied to the (3, H, W) tensor.

    ``dataset[i]`` is ``(image, label)``: a float32 tensor of shape (3, H, W) and a Python int.
    """

    def __init__(self, hierarchy, split: str = "train", n_per_class: Optional[int] = None,
                 image_size: int = 32, seed: int = 0, alignment: float = 1.0, *,
                 level_decay: float = 0.5, reference_levels: int = 4, noise_std: float = 1.5,
                 max_shift: float = 0.0625, scale_range: tuple[float, float] = (0.9, 1.1),
                 colour_jitter: float = 0.2, gratings_per_node: int = 3,
                 label_noise: float = 0.0, transform: Optional[Callable] = None):
        if not isinstance(split, str) or not split:
            raise ValueError(f"split must be a non-empty string such as 'train' or 'test', got {split!r}")
        if n_per_class is None:
            n_per_class = DEFAULT_N_PER_CLASS.get(split, DEFAULT_N_PER_CLASS["test"])
        if int(n_per_class) != n_per_class or n_per_class < 1:
            raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
        if int(image_size) != image_size or image_size < 4:
            raise ValueError(f"image_size must be an integer ≥ 4 pixels, got {image_size!r}")
        alignment = names.check_fraction(alignment, "alignment")
        label_noise = names.check_fraction(label_noise, "label_noise")
        if not 0.0 < level_decay <= 1.0:
            raise ValueError(f"level_decay must lie in (0, 1], got {level_decay!r}")
        if reference_levels < 1:
            raise ValueError(f"reference_levels must be ≥ 1, got {reference_levels!r}")
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (min, max) with 0 < min ≤ max, got {scale_range!r}")
        for name in ("graph", "classes", "root"):
            if not hasattr(hierarchy, name):
                raise TypeError(f"hierarchy must provide .{name} (a kesl_utils.hierarchy.Hierarchy); "
                                f"got {type(hierarchy).__name__}")
        graph = hierarchy.graph
        self.classes: list[str] = list(hierarchy.classes)
        missing = [c for c in self.classes if c not in graph]
        if missing:
            raise ValueError(f"hierarchy.classes contains nodes absent from hierarchy.graph: {missing[:10]}")
        if not self.classes:
            raise ValueError("hierarchy has no classes")

        self.split = split
        self.n_per_class = int(n_per_class)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.alignment = float(alignment)
        self.level_decay = float(level_decay)
        self.reference_levels = int(reference_levels)
        self.noise_std = float(noise_std)
        self.max_shift = float(max_shift)
        self.scale_range = (float(lo), float(hi))
        self.colour_jitter = float(colour_jitter)
        self.gratings_per_node = int(gratings_per_node)
        self.transform = transform
        self._split_code = _stable_hash("split", split)

        n = len(self.classes)
        if label_noise > 0 and n < 2:
            raise ValueError(f"label_noise={label_noise:g} needs at least 2 classes to draw a wrong label from, "
                             f"the hierarchy has {n}")
        self.label_noise = float(label_noise)
        self.appearance_class = self._alignment_permutation(n)
        self._build_class_stacks(hierarchy)
        self._true_labels = np.arange(len(self)) // self.n_per_class
        self.noisy_indices, self._labels = self._draw_label_noise()

    # ------------------------------------------------------------------ construction
    def _alignment_permutation(self, n: int) -> np.ndarray:
        """appearance_class[c] = the class whose pattern stack class c is drawn with."""
        source = np.arange(n)
        n_shuffled = int(round((1.0 - self.alignment) * n))
        if n_shuffled >= 2:
            rng = np.random.default_rng([self.seed, _ALIGNMENT_STREAM])
            chosen = rng.permutation(n)[:n_shuffled]
            # A cyclic shift of a random order is a derangement: no chosen class keeps its looks.
            source[chosen] = np.roll(chosen, -1)
        return source

    def _draw_label_noise(self) -> tuple[np.ndarray, np.ndarray]:
        """(noisy_indices, labels): which images get a wrong label, and every image's label.

        ``round(label_noise · len)`` indices without replacement, then for each an offset
        k ∈ {1, …, n − 1} uniformly and the label (true + k) mod n: uniform over the other classes.
        """
        true = self._true_labels
        n_noisy = int(round(self.label_noise * len(true)))
        labels = true.copy()
        if n_noisy == 0:
            noisy = np.zeros(0, dtype=np.int64)
        else:
            rng = np.random.default_rng([self.seed & _MASK64, self._split_code, _LABEL_NOISE_STREAM])
            noisy = np.sort(rng.choice(len(true), size=n_noisy, replace=False)).astype(np.int64)
            offsets = rng.integers(1, len(self.classes), size=n_noisy)
            labels[noisy] = (true[noisy] + offsets) % len(self.classes)
        noisy.setflags(write=False)
        labels.setflags(write=False)
        return noisy, labels

    def _node_pattern(self, node: str, level: float):
        """Frequencies (G, 2) in cycles/image, phases (G,), colours (3, G), offset (3,) of p_v."""
        rng = np.random.default_rng([self.seed, _stable_hash("node", str(node))])
        g = self.gratings_per_node
        # Finer detail for deeper nodes, but below ~0.3 × Nyquist of a 16-px image.
        f_lo = 1.0 + 0.75 * (level - 1.0)
        magnitude = rng.uniform(f_lo, f_lo + 1.5, size=g)
        angle = rng.uniform(0.0, math.pi, size=g)
        freqs = np.stack([magnitude * np.cos(angle), magnitude * np.sin(angle)], axis=1)
        phases = rng.uniform(0.0, 2 * math.pi, size=g)
        colours = rng.normal(size=(3, g))
        offset = 0.5 * rng.normal(size=3)
        return freqs, phases, colours, offset

    def _build_class_stacks(self, hierarchy) -> None:
        graph = hierarchy.graph
        root = hierarchy.root
        size = self.image_size
        # Pixel centres in image units, centred so that scaling zooms about the image centre.
        axis = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        coords = torch.stack([xx.reshape(-1), yy.reshape(-1)])  # (2, HW)

        stacks = {}
        for c in self.classes:
            stacks[c] = sorted((nx.ancestors(graph, c) | {c}) - {root}, key=str)
        all_nodes = sorted({v for nodes in stacks.values() for v in nodes}, key=str)
        depth = _node_depths(hierarchy, all_nodes)

        node_cache: dict[tuple[str, float], tuple] = {}
        per_class = []
        for c_index in range(len(self.classes)):
            c = self.classes[int(self.appearance_class[c_index])]
            depth_c = max(depth[c], 1)
            squeeze = min(1.0, (self.reference_levels - 1) / (depth_c - 1)) if depth_c > 1 else 1.0
            freqs, phases, colours, offset = [], [], [], np.zeros(3)
            for v in stacks[c]:
                level = 1.0 + (max(depth[v], 1) - 1) * squeeze
                key = (v, level)
                if key not in node_cache:
                    f, ph, col, off = self._node_pattern(v, level)
                    # RMS of p_v over the unshifted image, so that every node pattern has unit scale.
                    arg = 2 * math.pi * torch.from_numpy(f) @ coords + torch.from_numpy(ph)[:, None]
                    pattern = torch.from_numpy(col) @ torch.cos(arg) + torch.from_numpy(off)[:, None]
                    rms = float(pattern.pow(2).mean().sqrt())
                    node_cache[key] = (f, ph, col / rms, off / rms)
                f, ph, col, off = node_cache[key]
                amplitude = self.level_decay ** (level - 1.0)
                freqs.append(f)
                phases.append(ph)
                colours.append(col * amplitude)
                offset = offset + off * amplitude
            per_class.append((np.concatenate(freqs), np.concatenate(phases),
                              np.concatenate(colours, axis=1), offset))
        self.class_nodes = {c: stacks[c] for c in self.classes}

        # Classes of a DAG have different numbers of ancestors: pad with zero-colour gratings so
        # that a batch of mixed classes renders in one set of tensor operations.
        n, g_max = len(per_class), max(len(p[1]) for p in per_class)
        freqs = np.zeros((n, 2, g_max))
        phases = np.zeros((n, g_max))
        colours = np.zeros((n, 3, g_max))
        offsets = np.zeros((n, 3))
        for k, (f, ph, col, off) in enumerate(per_class):
            g = len(ph)
            freqs[k, :, :g] = 2 * math.pi * f.T
            phases[k, :g] = ph
            colours[k, :, :g] = col
            offsets[k] = off
        self._freqs = torch.from_numpy(freqs).float()      # (n, 2, G): 2π f_x, 2π f_y, radians per image
        self._phases = torch.from_numpy(phases).float()    # (n, G)
        self._colours = torch.from_numpy(np.concatenate([colours, colours], axis=2)).float()  # (n, 3, 2G)
        self._offsets = torch.from_numpy(offsets).float()  # (n, 3)
        self._axis = axis.float()                           # (W,) pixel centres in [-½, ½)

    # ------------------------------------------------------------------ rendering
    def image_seed(self, index: int) -> int:
        """The seed of image ``index``'s generator: a stable hash of (seed, split, index)."""
        return _stable_hash(self.seed, self._split_code, index)

    def _render(self, labels: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Noise-free images (B, 3, H, W) for labels (B,) and nuisance draws params (B, 9) in [0, 1)."""
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * params[:, 0]                                   # (B,)
        shift = (2 * params[:, 1:3] - 1) * self.max_shift                       # (B, 2)
        gain = 1 + self.colour_jitter * (2 * params[:, 3:6] - 1)                # (B, 3)
        offset = self.colour_jitter * (2 * params[:, 6:9] - 1)                  # (B, 3)
        return self._render_exact(labels, scale, shift, gain, offset)

    def _render_exact(self, labels, scale, shift, gain, offset) -> torch.Tensor:
        freqs = self._freqs[labels] / scale[:, None, None]                      # (B, 2, G)
        axis = self._axis[None, :, None]
        # cos(2π f·(x − t)/s + φ) = cos u_x cos v_y − sin u_x sin v_y: the separable form needs
        # cosines of G × (H + W) values instead of G × H × W, and one small batched matmul.
        u = (axis - shift[:, 0, None, None]) * freqs[:, None, 0] + self._phases[labels][:, None]  # (B, W, G)
        v = (axis - shift[:, 1, None, None]) * freqs[:, None, 1]                # (B, H, G)
        left = torch.cat([torch.cos(v), -torch.sin(v)], dim=2)                  # (B, H, 2G)
        right = torch.cat([torch.cos(u), torch.sin(u)], dim=2)                  # (B, W, 2G)
        batch, height, width = left.shape[0], left.shape[1], right.shape[1]
        weighted = left[:, None] * self._colours[labels][:, :, None]            # (B, 3, H, 2G)
        image = torch.bmm(weighted.view(batch, 3 * height, -1), right.transpose(1, 2))
        image = image.view(batch, 3, height, width)                             # (B, 3, H, W)
        bias = self._offsets[labels] * gain + offset                            # (B, 3)
        return image.mul_(gain[:, :, None, None]).add_(bias[:, :, None, None])

    def _generate(self, indices: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
        size, n_total = self.image_size, len(self)
        checked = []
        for index in indices:
            index = int(index)
            if index < 0:
                index += n_total
            if not 0 <= index < n_total:
                raise IndexError(f"index {index} out of range for {n_total} synthetic images")
            checked.append(index)
        true_labels = [index // self.n_per_class for index in checked]
        params = torch.empty(len(checked), 9)
        noise = torch.empty(len(checked), 3, size, size)
        # One generator per image keeps image i identical whether it is drawn alone or in a batch.
        for row, index in enumerate(checked):
            gen = torch.Generator().manual_seed(self.image_seed(index))
            torch.rand(9, generator=gen, out=params[row])
            noise[row].normal_(0.0, self.noise_std, generator=gen)
        # Rendered with the true class: a relabelled image keeps its appearance.
        images = self._render(torch.tensor(true_labels, dtype=torch.long), params).add_(noise)
        return images, [int(self._labels[index]) for index in checked]

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return len(self.classes) * self.n_per_class

    @property
    def targets(self) -> list[int]:
        """Training labels of all samples in index order: ``i // n_per_class``, except at
        ``noisy_indices`` (label noise)."""
        return self._labels.tolist()

    @property
    def true_targets(self) -> list[int]:
        """The classes whose appearance the images have, in index order (``i // n_per_class``)."""
        return self._true_labels.tolist()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int):
        images, labels = self._generate([index])
        image = images[0]
        if self.transform is not None:
            image = self.transform(image)
        return image, labels[0]

    def __getitems__(self, indices: Sequence[int]) -> list:
        """Batched generation, called by ``DataLoader`` (torch ≥ 2.0) instead of per-index calls.

        Returns the same tensors as ``[self[i] for i in indices]``, several times faster.
        """
        images, labels = self._generate(indices)
        if self.transform is not None:
            return [(self.transform(image), label) for image, label in zip(images, labels)]
        return list(zip(images, labels))

    def class_templates(self) -> torch.Tensor:
        """Noise-free appearance x_c of every class, shape (n, 3, H, W) (for figures and tests)."""
        n = len(self.classes)
        return self._render_exact(torch.arange(n), torch.ones(n), torch.zeros(n, 2),
                                  torch.ones(n, 3), torch.zeros(n, 3))

    def report_skipped(self, reset: bool = True) -> set:
        """Interface parity with the image-file datasets: generated images never fail to decode."""
        return set()

    def __repr__(self) -> str:
        return (f"SyntheticHierarchical(classes={len(self.classes)}, split={self.split!r}, "
                f"n_per_class={self.n_per_class}, image_size={self.image_size}, seed={self.seed}, "
                f"alignment={self.alignment}, noise_std={self.noise_std}"
                + (f", label_noise={self.label_noise}" if self.label_noise else "") + ")")
