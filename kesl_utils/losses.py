"""Training losses and their registry: cross-entropy, label smoothing, KESL (Yuan et al., ICPR 2020, Eq. 3–5)
and the hierarchy-aware losses KESL competes with, the soft labels ("mbm") and the hierarchical
cross-entropy ("hxe") of Bertinetto et al., "Making Better Mistakes", CVPR 2020 (:class:`MBMLoss`,
:class:`HXELoss`).

The KESL loss of a sample x_i with label y_i and network output y'_i = softmax(s_i) is::

    L = α · L_CE + β · L_KL,
    L_CE = −Σ_k y_ik log y'_ik,
    L_KL = Σ_k y'_ik (log y'_ik − log g_{y_i}k)      (kl="reverse", the paper's KL(y' ‖ g))
      or   Σ_k g_{y_i}k (log g_{y_i}k − log y'_ik)   (kl="forward", KL(g ‖ y')),

where g_{y_i} is row y_i of the soft-label matrix (:func:`kesl_utils.soft_labels.soft_label_matrix`).
The paper writes L_KL = −Σ_k g'_ik log(g_ik / g'_ik) without defining g'; we read g' as the network's
output y', which makes the paper's formula the reverse KL. Both terms are summed over classes per
sample and then averaged over the batch ("batchmean").

The registry
    Every loss the trainer can use is one :class:`LossSpec` in :data:`LOSSES`, registered with
    :func:`register_loss`: its name, the parameters it reads from a
    :class:`~kesl_utils.config.Config` (each with its default, its validator and a help line) and a
    builder ``build(hierarchy, **params) -> nn.Module``. The declarations live in the torch-free
    :mod:`kesl_utils.loss_registry` (so that ``Config`` and the command line need no torch); the
    built-in builders are the ``_build_*`` functions here. ``Config``, the command-line flags, the
    run-id normalisation and the trainer all read this registry, so adding a loss is one builder,
    one registration (the example is in :mod:`kesl_utils.loss_registry`'s docstring) and its tests.

    :func:`build_loss` ``(name, hierarchy, **params)`` builds a registered loss, called as
    ``criterion(logits (N, n), targets (N,)) -> scalar``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import names
from .loss_registry import (BUILT_IN, KESL_DISTANCES, KL_DIRECTIONS, LOSSES, LossParam, LossSpec, check_decay,
                            check_hardness, check_loss_params, check_not_both_zero, loss_spec, owners, register_loss)
from .hierarchy import Hierarchy
from .metrics import check_logits_targets
from .soft_labels import soft_label_matrix

__all__ = ["KESLLoss", "MBMLoss", "HXELoss", "mbm_soft_labels", "LossParam", "LossSpec", "LOSSES", "register_loss",
           "loss_spec", "check_loss_params", "build_loss", "KL_DIRECTIONS", "KESL_DISTANCES", "BUILT_IN", "owners"]

# Tolerance on Σ_j g_ij = 1: loose enough for a float32 matrix of 10,000 classes.
_ROW_SUM_TOL = 1e-4


def build_loss(name: str, hierarchy=None, **params) -> nn.Module:
    """The registered loss ``name`` for ``hierarchy`` with ``params`` (defaults for the others).

    Returns an ``nn.Module`` called as ``criterion(logits (N, n), targets (N,)) -> 0-dim tensor``.
    ``hierarchy`` (a :class:`~kesl_utils.hierarchy.Hierarchy`) is required by losses that use the
    class hierarchy (KESL) and ignored by the others.
    """
    spec = loss_spec(name)
    checked = check_loss_params(name, params)
    if spec.needs_hierarchy and hierarchy is None:
        raise ValueError(f"loss {name!r} needs the class hierarchy: build_loss({name!r}, hierarchy, ...) "
                         "with a kesl_utils.hierarchy.Hierarchy")
    if spec.needs_hierarchy and not isinstance(hierarchy, Hierarchy):
        hint = ("; for a soft-label matrix g you built yourself, use KESLLoss(g, alpha=..., beta=...)"
                if name == "kesl" else "")
        raise TypeError(f"build_loss({name!r}, hierarchy): the argument hierarchy must be a "
                        f"kesl_utils.hierarchy.Hierarchy, got {type(hierarchy).__name__}{hint}")
    return spec.builder()(hierarchy, **checked)


# -- the losses ---------------------------------------------------------------------------------
def _check_soft_labels(soft_labels, owner: str = "KESLLoss") -> torch.Tensor:
    if isinstance(soft_labels, Hierarchy):
        raise TypeError(f"{owner}(soft_labels): the argument soft_labels is the (n, n) soft-label matrix g, got a "
                        "Hierarchy; build g with soft_label_matrix(hierarchy.edge_distances(), lam, T), or let "
                        "build_loss('kesl', hierarchy, lam=..., T=...) do it")
    if not isinstance(soft_labels, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"{owner}(soft_labels): the argument soft_labels must be an (n, n) tensor, array or nested "
                        f"list (the soft-label matrix g), got {type(soft_labels).__name__}")
    g = torch.as_tensor(soft_labels).detach()
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] == 0:
        raise ValueError(f"soft_labels must be a non-empty square (n, n) matrix, got shape {tuple(g.shape)}")
    # float64 stays float64 (exact references, gradcheck); anything else is held in float32.
    g = g.to(torch.float64 if g.dtype == torch.float64 else torch.float32)
    if not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError("soft_labels must hold finite, non-negative probabilities g_ij")
    row_sums = g.double().sum(dim=1)
    worst = int((row_sums - 1).abs().argmax())
    if abs(float(row_sums[worst]) - 1.0) > _ROW_SUM_TOL:
        raise ValueError(f"soft_labels rows must sum to 1 (within {_ROW_SUM_TOL:g}); "
                         f"row {worst} sums to {float(row_sums[worst]):.6g}")
    return g


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """float64 for float64 logits, else float32: autocast would run log_softmax/exp in bf16/fp16 on some
    backends, and the losses are cheap, so they are always computed in (at least) float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


class _BatchMeanLoss(nn.Module):
    """What every loss here shares: ``forward(logits (N, n), targets (N,))`` validates its inputs
    (:func:`kesl_utils.metrics.check_logits_targets`), leaves autocast, computes in float32 (float64
    for float64 logits) and returns the batch mean of :meth:`per_sample` ("batchmean"). The soft-label
    losses keep their targets as the buffer ``soft_labels`` (n, n), which gives ``num_classes``."""

    @property
    def num_classes(self) -> int:
        return self.soft_labels.shape[0]

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, shape (N,), from logits in the compute dtype and int64 targets."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = check_logits_targets(logits, targets, self.num_classes, allow_empty=True)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.per_sample(logits.to(_compute_dtype(logits)), targets).mean()


class KESLLoss(_BatchMeanLoss):
    """α · L_CE + β · L_KL with knowledge-embedded soft labels g (paper, Eq. 5).

    Parameters
    ----------
    soft_labels : (n, n) tensor or array
        The soft-label matrix g; row i is the target distribution of class i and must sum to 1.
        Kept as the buffer ``soft_labels`` (float32, or float64 if given in float64), with
        ``log_soft_labels`` = log max(g, tiny) beside it, so both follow ``.to(device)`` and are
        saved in ``state_dict()``.
    alpha, beta : float
        α ≥ 0 and β ≥ 0 weigh the hard-label cross-entropy and the KL term; not both zero.
    kl : {"reverse", "forward"}
        "reverse" is the paper's KL(y' ‖ g_y); "forward" is KL(g_y ‖ y').

    ``forward(logits, targets)`` takes logits s of shape (N, n) (any float dtype; computed in
    float32, or float64 for float64 logits, also under autocast) and integer targets of shape (N,)
    in [0, n), and returns the batch mean of the per-sample loss as a 0-dim tensor.
    """

    def __init__(self, soft_labels, alpha: float = 1.0, beta: float = 1.0, kl: str = "reverse"):
        super().__init__()
        self.alpha = names.check_weight(alpha, "alpha (α)")
        self.beta = names.check_weight(beta, "beta (β)")
        check_not_both_zero({"alpha": self.alpha, "beta": self.beta})
        self.kl = names.check_choice("kl", kl, KL_DIRECTIONS)
        g = _check_soft_labels(soft_labels)
        self.register_buffer("soft_labels", g)
        # The clamp keeps log g finite where T is so large that g underflowed to 0: the reverse KL
        # then gives a large finite penalty, and the forward KL's 0 · log 0 terms stay 0.
        self.register_buffer("log_soft_labels", g.clamp_min(torch.finfo(g.dtype).tiny).log())

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha:g}, beta={self.beta:g}, kl={self.kl!r}"

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        loss = log_p.new_zeros(logits.shape[0])
        if self.alpha:
            loss = loss - self.alpha * log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
        if self.beta:
            log_g = self.log_soft_labels[targets].to(logits.dtype)
            if self.kl == "reverse":
                kl = (log_p.exp() * (log_p - log_g)).sum(dim=1)
            else:
                g = self.soft_labels[targets].to(logits.dtype)
                kl = (g * (log_g - log_p)).sum(dim=1)
            loss = loss + self.beta * kl
        return loss


def kesl_class_distances(hierarchy, distance: str = "edges") -> np.ndarray:
    """The edge-count matrix KESL's soft labels are built from, for the chosen class distance.

    ``"edges"``: the paper's e_ij, so c_ij = λ^(e_ij − 1) = λ^d_ij. ``"lca"``: the height h_ij of the
    lowest common ancestor (:meth:`Hierarchy.lca_heights`), passed as h_ij + 1 off the diagonal so
    that the same :func:`soft_label_matrix` gives c_ij = λ^h_ij.
    """
    names.check_choice("distance", distance, KESL_DISTANCES)
    if distance == "edges":
        return hierarchy.edge_distances()
    heights = np.asarray(hierarchy.lca_heights(), dtype=np.int64)
    shifted = heights + 1
    np.fill_diagonal(shifted, 0)
    return shifted


def _build_ce(hierarchy):
    return nn.CrossEntropyLoss()


def _build_label_smoothing(hierarchy, *, epsilon):
    return nn.CrossEntropyLoss(label_smoothing=epsilon)


def _build_kesl(hierarchy, *, lam, T, alpha, beta, kl, distance):
    g = soft_label_matrix(kesl_class_distances(hierarchy, distance), lam, T)
    return KESLLoss(g, alpha=alpha, beta=beta, kl=kl)


# -- the losses KESL competes with: Bertinetto et al., "Making Better Mistakes" (CVPR 2020) ------
def mbm_soft_labels(distances, hardness: float) -> torch.Tensor:
    """The soft labels of Bertinetto et al. ("Making Better Mistakes", CVPR 2020), float64 (n, n).

    Row y is the target distribution of true class y::

        y_soft_j(y) = exp(−β · d(y, j) / max d) / Σ_k exp(−β · d(y, k) / max d),

    β the ``hardness`` (> 0; larger is closer to one-hot) and d (n, n) the class distance, for
    Bertinetto et al. the LCA height h_ij (:meth:`Hierarchy.lca_heights`). The paper writes
    exp(−β d(y, j)); dividing by the largest distance is what the authors' code does
    (``better_mistakes/model/labels.py``, ``make_all_soft_labels``), and their β values assume it.
    ``distances`` must be square, finite, non-negative with a zero diagonal, so that every row
    peaks on its own class. A matrix of zeros (a single class) is left unscaled.
    """
    hardness = check_hardness(hardness)
    d = torch.as_tensor(np.asarray(distances) if not isinstance(distances, torch.Tensor) else distances)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] == 0:
        raise ValueError(f"distances must be a non-empty square (n, n) matrix, got shape {tuple(d.shape)}")
    if d.dtype == torch.bool or d.dtype.is_complex:
        raise ValueError(f"distances must be real class distances, got dtype {d.dtype}")
    d = d.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(d).all() or (d < 0).any() or (d.diagonal() != 0).any():
        raise ValueError("distances must be finite and non-negative with a zero diagonal d(y, y) = 0")
    largest = float(d.max())
    scaled = d / largest if largest > 0 else d
    return torch.softmax(-hardness * scaled, dim=1)


class MBMLoss(_BatchMeanLoss):
    """Cross-entropy to the soft labels of Bertinetto et al., "Making Better Mistakes" (CVPR 2020).

    For a sample with logits s (n,), p = softmax(s), and true class y::

        L = −Σ_j y_soft_j(y) · log p_j,    y_soft(y) = softmax_j(−β · h(y, j) / max h)

    (:func:`mbm_soft_labels`), summed over classes and averaged over the batch. It differs from
    KL(y_soft ‖ p), which the authors' code minimises, by the entropy of the target, a constant:
    same gradients. Their ``nn.KLDivLoss()`` also averages over the n classes, a factor 1/n that
    their Adam optimiser does not notice; we sum over classes like every loss here. β → ∞ makes
    y_soft one-hot and L the cross-entropy.

    The hardness β: the authors run β ∈ {4, 5, 10, 15, 20, 30} on tieredImageNet-H and
    iNaturalist19 (``experiments/softlabels_*_beta*.sh`` of their repository; their command-line
    default, 0, is no setting) and plot the trade-off: softer labels (smaller β) lower the mistake
    severity and cost top-1 accuracy. The registry's default is β = 30, the end of their range
    closest to cross-entropy, so that a default run costs the least accuracy; sweep β for the
    trade-off curve.

    Parameters
    ----------
    distances : (n, n) array or tensor
        The class distance d, h_ij = :meth:`Hierarchy.lca_heights` for the paper's loss.
    hardness : float
        β > 0. β = 0 would give every class the uniform target (the label would be ignored), so
        it is rejected.

    The target matrix is the buffer ``soft_labels`` (n, n), row y for true class y: float32, or
    float64 if ``distances`` is a float64 array/tensor (exact references, gradcheck).
    ``forward(logits (N, n), targets (N,))`` computes in float32 (float64 for float64 logits),
    also under autocast, and returns the batch mean as a 0-dim tensor.
    """

    def __init__(self, distances, hardness: float = 30.0):
        super().__init__()
        self.hardness = check_hardness(hardness)
        double = (distances.dtype == torch.float64 if isinstance(distances, torch.Tensor)
                  else np.asarray(distances).dtype == np.float64)
        dtype = torch.float64 if double else torch.float32
        self.register_buffer("soft_labels", mbm_soft_labels(distances, self.hardness).to(dtype))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, hardness={self.hardness:g}"

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        return -(self.soft_labels[targets].to(logits.dtype) * log_p).sum(dim=1)


class HXELoss(_BatchMeanLoss):
    """Hierarchical cross-entropy (HXE) of Bertinetto et al., "Making Better Mistakes" (CVPR 2020).

    The probability of a class C⁽⁰⁾ factors along its path C⁽⁰⁾ → C⁽¹⁾ → … → C⁽ᴴ⁾ = root into
    conditionals::

        p(C⁽⁰⁾) = Π_{l=0}^{H−1} p(C⁽ˡ⁾ | C⁽ˡ⁺¹⁾),   p(C⁽ˡ⁾ | C⁽ˡ⁺¹⁾) = Σ_{A ∈ Leaves(C⁽ˡ⁾)} p_A / Σ_{B ∈ Leaves(C⁽ˡ⁺¹⁾)} p_B,

    p = softmax(s) over the n classes, the leaves of a node being the classes below it. The loss
    of a sample with true class y = C⁽⁰⁾ weighs each edge of its path::

        L = −Σ_{l=0}^{H−1} λ(C⁽ˡ⁾) · log p(C⁽ˡ⁾ | C⁽ˡ⁺¹⁾),   λ(C) = exp(−α · depth(C)),

    averaged over the batch; α is the ``decay``. The weight follows the authors' code, not the
    paper's words: the paper writes λ(C) = exp(−α h(C)) with h(C) "the height of node C", while
    ``better_mistakes/trees.py`` (``get_exponential_weighting``) weighs the edge into node C by
    exp(−α · depth(C)), depth counted from the root (the root's children have depth 1). That
    discounts the fine levels, the behaviour their results describe. The code also divides all
    weights by the sum of the weights of all edges of the tree; we leave that out: it only
    rescales the loss, which their Adam optimiser does not notice, while with SGD it would
    silently change the learning rate. α = 0 gives every edge weight 1, the conditionals
    telescope to p(y), and L is the cross-entropy.

    The decay α: the authors run α ∈ {0.1, …, 0.6} on tieredImageNet-H and α ∈ {0.1, …, 0.7, 0.9}
    on iNaturalist19 (``experiments/hxe_*_alpha*.sh``; their command-line default, 0, is plain
    cross-entropy); larger α lowers the mistake severity and costs top-1 accuracy. The
    registry's default is α = 0.1, the first value of their sweep and the one closest to
    cross-entropy.

    A DAG (the WordNet subnets of Mini-/Small-ImageNet) has no unique path to the root; HXE is
    then computed on the hierarchy's canonical spanning tree: every node under
    :meth:`Hierarchy.parent`, its parent on a shortest path from the root (ties: smallest id),
    so the leaves of a node are the classes whose canonical path passes through it.

    Computation (no loop over samples or levels): log p(v) of every internal node v ≠ root is the
    logsumexp of the class log-probabilities log p_c over the classes c below it, read through the
    sparse (V, n) "leaves below" matrix held as its list of (node, class) pairs, shifted by the
    largest log p_c below each node (so no sum underflows, also for a confidently wrong
    prediction); log p(root) = 0. The loss is then Σ_v K_{y v} log p(v) with a precomputed
    (n, V) matrix K, V the classes and the internal nodes: K_{y C} = −λ(C) for every node C ≠ root
    on the path of y and K_{y P} += λ(C) for its parent P ≠ root.

    ``forward(logits (N, n), targets (N,))``: computed in float32 (float64 for float64 logits),
    also under autocast; returns a 0-dim tensor. Buffers: ``pair_node`` / ``pair_class`` (the
    leaves-below pairs, int64), ``path_coefficients`` K (float64, cast to the computation's
    dtype). Attributes: ``nodes`` (the node of every column of K), ``paths`` (the tree path of
    every class).
    """

    def __init__(self, hierarchy, decay: float = 0.1):
        super().__init__()
        self.decay = check_decay(decay)
        self.is_tree = bool(hierarchy.is_tree)
        classes = list(hierarchy.classes)
        n = len(classes)
        #: The canonical path root → … → class of every class, in label order.
        self.paths = tuple(tuple(hierarchy.path_from_root(c)) for c in classes)
        # The internal nodes of the tree that have a class below them: those on a class's path,
        # neither the root (path[0]) nor the class (path[-1]).
        internal = sorted({v for path in self.paths for v in path[1:-1]}, key=str)
        #: The node of every column of ``path_coefficients`` and of :meth:`node_log_probabilities`:
        #: the classes in label order, then the internal nodes (the root is left out).
        self.nodes = tuple(classes) + tuple(internal)
        index = {v: k for k, v in enumerate(self.nodes)}
        pairs = [(index[v] - n, y) for y, path in enumerate(self.paths) for v in path[1:-1]]
        pairs = torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2)
        self.register_buffer("pair_node", pairs[:, 0].contiguous())
        self.register_buffer("pair_class", pairs[:, 1].contiguous())
        self._num_internal = len(internal)

        coefficients = np.zeros((n, len(self.nodes)), dtype=np.float64)
        for y, path in enumerate(self.paths):
            for depth in range(1, len(path)):
                weight = math.exp(-self.decay * depth)  # path[depth] lies at depth `depth`
                coefficients[y, index[path[depth]]] -= weight
                if depth > 1:
                    coefficients[y, index[path[depth - 1]]] += weight
        self.register_buffer("path_coefficients", torch.from_numpy(coefficients))

    @property
    def num_classes(self) -> int:
        return self.path_coefficients.shape[0]

    def extra_repr(self) -> str:
        tree = "the hierarchy (a tree)" if self.is_tree else "the canonical spanning tree of the DAG"
        return f"num_classes={self.num_classes}, decay={self.decay:g}, tree={tree!r}"

    def node_log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """log p(v) of every node but the root, shape (N, V), columns as :attr:`nodes`: the
        class log-probabilities log softmax(s), then logsumexp over the classes below each
        internal node."""
        log_p = F.log_softmax(logits, dim=1)
        if self._num_internal == 0:
            return log_p
        # Pairs along dim 0 (rows of the transposed log-probabilities): whole-row gathers and
        # adds, about twice as fast on a CPU as along dim 1.
        below = log_p.T.index_select(0, self.pair_class)  # (P, N): log p_c of each (node, class) pair
        samples = below.shape[1]
        # The shift only guards exp against underflow; the value does not depend on it, so it
        # carries no gradient (as in torch.logsumexp).
        shift = below.new_full((self._num_internal, samples), -math.inf).scatter_reduce_(
            0, self.pair_node.unsqueeze(1).expand(-1, samples), below.detach(), reduce="amax")
        total = below.new_zeros((self._num_internal, samples)).index_add(
            0, self.pair_node, (below - shift.index_select(0, self.pair_node)).exp())
        return torch.cat([log_p, (shift + total.log()).T], dim=1)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        node_log_p = self.node_log_probabilities(logits)
        return (self.path_coefficients[targets].to(logits.dtype) * node_log_p).sum(dim=1)


def _build_mbm(hierarchy, *, hardness):
    return MBMLoss(hierarchy.lca_heights(), hardness)


def _build_hxe(hierarchy, *, decay):
    return HXELoss(hierarchy, decay)
