"""Knowledge-embedded soft labels (Yuan et al., ICPR 2020, Sec. III).

From the edge distances e_ij of a class hierarchy (number of edges on the shortest undirected
path between classes i and j; e_ii = 0) the paper builds

* the distance d_ij = e_ij − 1 (i ≠ j), so that siblings have d_ij = 1;
* the similarity c_ij = λ^d_ij with 0 < λ < 1, and c_ii = 1;
* the soft label of class i, g_i = softmax(T · c_i), i.e. g_ij = exp(T c_ij) / Σ_k exp(T c_ik), T > 0.

Row i of the soft-label matrix is the target distribution used for samples of class i.
λ controls how fast similarity decays with distance, T how peaked the soft label is: with
λ = 0.5 and T = 2 the label is flat (g_ii is a few percent on CUB's 200 classes), with
T = 16 it is almost one-hot.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import names

__all__ = [
    "check_edge_distances",
    "similarity",
    "soft_label_matrix",
    "soft_label_entropy",
    "mass_by_distance",
]

# Rows per block when building g: bounds the float64 scratch memory to about
# 1024 × n × 8 bytes (80 MB for n = 10,000) instead of n × n.
_ROW_BLOCK = 1024
# Largest e_ij for which distances are looked up in a table indexed by e_ij itself.
_MAX_DIRECT_TABLE = 1 << 16


def check_edge_distances(edge_distances) -> np.ndarray:
    """Validate a matrix of hierarchy edge distances e_ij and return it as an ``int64`` array.

    ``edge_distances`` is an (n, n) array-like (numpy array, CPU tensor, nested lists) with
    non-negative integer entries, symmetric, e_ii = 0 and e_ij ≥ 2 for i ≠ j. e_ij = 1 would mean
    that one class is the parent of another, which the paper's d_ij = e_ij − 1 ≥ 1 excludes.

    Raises ``ValueError`` naming ``edge_distances`` and what was expected.
    """
    if isinstance(edge_distances, torch.Tensor):
        edge_distances = edge_distances.detach().cpu().numpy()
    e = np.asarray(edge_distances)
    if e.ndim != 2 or e.shape[0] != e.shape[1] or e.shape[0] == 0:
        raise ValueError(f"edge_distances must be a non-empty square (n, n) matrix, got shape {e.shape}")
    if e.dtype == bool or not (np.issubdtype(e.dtype, np.integer) or np.issubdtype(e.dtype, np.floating)):
        raise ValueError(f"edge_distances must hold integers, got dtype {e.dtype}")
    if np.issubdtype(e.dtype, np.floating):
        if not np.all(np.isfinite(e)) or np.any(e != np.round(e)):
            raise ValueError("edge_distances must hold finite whole numbers (edge counts e_ij)")
    e = e.astype(np.int64, copy=False)
    if e.min() < 0:
        raise ValueError(f"edge_distances must be non-negative (e_ij ≥ 0), found {int(e.min())}")
    if np.any(np.diagonal(e) != 0):
        i = int(np.flatnonzero(np.diagonal(e))[0])
        raise ValueError(f"edge_distances must have a zero diagonal (e_ii = 0), found e[{i},{i}] = {int(e[i, i])}")
    asymmetric = _first_asymmetric_pair(e)
    if asymmetric is not None:
        i, j = asymmetric
        raise ValueError(f"edge_distances must be symmetric, found e[{i},{j}] = {int(e[i, j])} "
                         f"but e[{j},{i}] = {int(e[j, i])}")
    too_close = e < 2
    np.fill_diagonal(too_close, False)
    if too_close.any():
        i, j = (int(v) for v in np.argwhere(too_close)[0])
        raise ValueError(f"edge_distances must be ≥ 2 off the diagonal (classes are distinct leaves), found "
                         f"e[{i},{j}] = {int(e[i, j])}; e_ij = 1 means one class is the parent of the other")
    return e


def _first_asymmetric_pair(e: np.ndarray, tile: int = 512) -> tuple[int, int] | None:
    # Comparing square tiles with their mirror keeps both reads cache-friendly; ``e != e.T`` on
    # the whole matrix is several times slower for n in the thousands.
    n = e.shape[0]
    for r in range(0, n, tile):
        for c in range(r, n, tile):
            block, mirror = e[r:r + tile, c:c + tile], e[c:c + tile, r:r + tile].T
            if not np.array_equal(block, mirror):
                i, j = np.argwhere(block != mirror)[0]
                return int(i) + r, int(j) + c
    return None


def _lookup_by_edges(e: np.ndarray, values) -> tuple[np.ndarray, np.ndarray]:
    """``(table, index)`` with ``table[index] == values(e)`` elementwise, as float64.

    c_ij and g_ij depend on (i, j) only through the integer e_ij, so the transcendental
    functions are evaluated once per distinct distance and looked up, not n² times.
    """
    if e.max() <= _MAX_DIRECT_TABLE:
        return values(np.arange(int(e.max()) + 1, dtype=np.float64)), e
    # Absurdly long paths: index by the distinct values instead of allocating a huge table.
    distinct, index = np.unique(e, return_inverse=True)
    return values(distinct.astype(np.float64)), index.reshape(e.shape)


def similarity(edge_distances, lam: float) -> np.ndarray:
    """Class similarity c_ij = λ^(e_ij − 1) = λ^d_ij, with c_ii = 1 (paper, Eq. 1).

    Parameters
    ----------
    edge_distances : (n, n) array-like of int
        e_ij, see :func:`check_edge_distances`.
    lam : float
        λ in the open interval (0, 1).

    Returns
    -------
    numpy.ndarray, float64, shape (n, n)
        Symmetric, ones on the diagonal, entries in (0, 1) elsewhere.
    """
    lam = names.check_lambda(lam)
    e = check_edge_distances(edge_distances)
    table, index = _lookup_by_edges(e, lambda edges: np.power(lam, edges - 1.0))
    c = table[index]
    np.fill_diagonal(c, 1.0)
    return c


def soft_label_matrix(edge_distances, lam: float, T: float) -> torch.Tensor:
    """Soft-label matrix g with g_ij = exp(T c_ij) / Σ_k exp(T c_ik) (paper, Eq. 2).

    Parameters
    ----------
    edge_distances : (n, n) array-like of int
        e_ij, see :func:`check_edge_distances`.
    lam : float
        λ in (0, 1).
    T : float
        Temperature T > 0; large T approaches the one-hot label, T → 0 the uniform one.

    Returns
    -------
    torch.Tensor, float32, shape (n, n)
        Row i is the soft label of class i; rows sum to 1. Computed in float64 with the
        row maximum T subtracted (log-sum-exp), in blocks of rows, then cast.
    """
    lam = names.check_lambda(lam)
    T = names.check_temperature(T)
    e = check_edge_distances(edge_distances)
    # Off the diagonal c_ij < 1 = c_ii, so the row maximum of T·c is T: subtracting it gives
    # w_ij = exp(T (c_ij − 1)) in (0, 1], which cannot overflow, and w_ii = 1 keeps Σ_j w_ij ≥ 1.
    w, index = _lookup_by_edges(e, lambda edges: np.exp(T * (np.minimum(np.power(lam, edges - 1.0), 1.0) - 1.0)))
    n = e.shape[0]
    g = np.empty((n, n), dtype=np.float32)
    for start in range(0, n, _ROW_BLOCK):
        block = w[index[start:start + _ROW_BLOCK]]
        block /= block.sum(axis=1, keepdims=True)
        g[start:start + _ROW_BLOCK] = block
    return torch.from_numpy(g)


def as_float64_matrix(g) -> np.ndarray:
    """``g`` (a tensor or array) as a float64 numpy (n, n) matrix; a clear error for any other shape."""
    if isinstance(g, torch.Tensor):
        g = g.detach().cpu().double().numpy()
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"g (soft-label matrix) must be a square (n, n) matrix, got shape {g.shape}")
    return g


def soft_label_entropy(g) -> np.ndarray:
    """Shannon entropy H(g_i) = −Σ_j g_ij ln g_ij of each soft label, in nats.

    ``g`` is an (n, n) soft-label matrix (tensor or array). Returns a float64 array of shape (n,);
    0 for a one-hot row, ln n for a uniform one. 0 · ln 0 is taken as 0.
    """
    g = as_float64_matrix(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(g > 0, g * np.log(np.where(g > 0, g, 1.0)), 0.0)
    return -terms.sum(axis=1)


def mass_by_distance(g, edge_distances, upper_bounds: Sequence[int] = (0, 1, 3)) -> dict[str, float]:
    """Mean probability mass a soft label puts on classes at each range of distance d_ij.

    The class distance d_ij = e_ij − 1 (d_ii = 0) is cut at ``upper_bounds`` into the bins
    d ≤ b_0, b_0 < d ≤ b_1, …, d > b_last; for each class i the mass Σ_{j in bin} g_ij is
    computed and averaged over the classes. On a taxonomy whose leaves all sit at depth 4
    (order → family → genus → species, as CUB's), the default bounds (0, 1, 3) give the mass
    on the class itself (d = 0), on its genus (d = 1), on the rest of its family (d = 3) and on
    everything else.

    Returns a dict ``{"d=0": …, "d=1": …, "d=2–3": …, "d>3": …}`` (float values, summing to 1),
    ready to be one row of a ``pandas.DataFrame``.
    """
    g = as_float64_matrix(g)
    e = check_edge_distances(edge_distances)
    if e.shape != g.shape:
        raise ValueError(f"g has shape {g.shape} but edge_distances has shape {e.shape}; they must match")
    bounds = [int(b) for b in upper_bounds]
    if not bounds or bounds[0] < 0 or any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
        raise ValueError(f"upper_bounds must be a non-empty strictly increasing sequence of integers ≥ 0, "
                         f"got {tuple(upper_bounds)}")
    d = np.where(e > 0, e - 1, 0)
    result: dict[str, float] = {}
    lower = -1
    for bound in bounds:
        label = f"d={bound}" if bound == lower + 1 else f"d={lower + 1}–{bound}"
        result[label] = float(np.where((d > lower) & (d <= bound), g, 0.0).sum(axis=1).mean())
        lower = bound
    result[f"d>{lower}"] = float(np.where(d > lower, g, 0.0).sum(axis=1).mean())
    return result
