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
    builder ``build(hierarchy, **params) -> nn.Module``. ``Config``, the command-line flags, the
    run-id normalisation and the trainer all read this registry, so adding a loss is one builder,
    one registration and its tests::

        @register_loss("my_loss", params=(LossParam("gamma", 2.0, names.check_temperature, "focusing γ"),),
                       summary="my loss")
        def _build_my_loss(hierarchy, *, gamma):
            return MyLoss(gamma)

    :func:`build_loss` ``(name, hierarchy, **params)`` builds a registered loss, called as
    ``criterion(logits (N, n), targets (N,)) -> scalar``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import names
from .soft_labels import soft_label_matrix

__all__ = ["KESLLoss", "MBMLoss", "HXELoss", "mbm_soft_labels", "LossParam", "LossSpec", "LOSSES", "register_loss",
           "loss_spec", "check_loss_params", "build_loss", "KL_DIRECTIONS", "KESL_DISTANCES"]

KL_DIRECTIONS = names.KL_DIRECTIONS
#: Which class distance KESL's c_ij = λ^D_ij uses: the paper's d_ij = e_ij − 1 ("edges") or the
#: height of the lowest common ancestor ("lca", the distance of Bertinetto et al.).
KESL_DISTANCES = ("edges", "lca")

# Tolerance on Σ_j g_ij = 1: loose enough for a float32 matrix of 10,000 classes.
_ROW_SUM_TOL = 1e-4


# -- the registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossParam:
    """One parameter of a loss: a field of ``Config.loss_params`` and a command-line flag.

    name: the key (``"lam"``; the flag is ``--lam``). default: its value when not given.
    check: validator returning the normalised value or raising ``ValueError`` (from :mod:`names`).
    help: one line for ``--help``. choices: the allowed strings of a text parameter.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str
    choices: Optional[tuple] = None

    @property
    def type(self) -> type:
        """``float`` or ``str``: how the command line parses the flag."""
        return str if isinstance(self.default, str) else float


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: ``build(hierarchy, **params)`` returns the ``nn.Module``.

    ``check_all(params)`` (optional) validates rules that involve several parameters
    (KESL: α and β not both zero); it runs when a ``Config`` is made, before any training.
    ``needs_hierarchy``: whether ``build`` reads the hierarchy (cross-entropy does not).
    """

    name: str
    params: tuple[LossParam, ...]
    build: Callable[..., nn.Module]
    summary: str
    check_all: Optional[Callable[[dict], None]] = None
    needs_hierarchy: bool = True

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


#: name → :class:`LossSpec`, filled by :func:`register_loss`.
LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, *, params: tuple = (), summary: str = "", check_all=None,
                  needs_hierarchy: bool = True):
    """Decorator registering ``build(hierarchy, **params) -> nn.Module`` as loss ``name``.

    A parameter name used by several losses must mean the same there (same default type).
    Registering a name twice replaces the earlier entry (so a notebook cell can be re-run).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"loss name must be an identifier such as 'my_loss', got {name!r}")
    params = tuple(params)
    for param in params:
        if not isinstance(param, LossParam):
            raise TypeError(f"loss {name!r}: params must be LossParam objects, got {type(param).__name__}")
        for other in LOSSES.values():
            for known in other.params:
                if known.name == param.name and known.type is not param.type:
                    raise ValueError(f"loss {name!r}: parameter {param.name!r} is a {param.type.__name__} "
                                     f"but loss {other.name!r} declares it as a {known.type.__name__}")

    def decorator(build):
        LOSSES[name] = LossSpec(name, params, build, summary or (build.__doc__ or "").strip().split("\n")[0],
                                check_all, needs_hierarchy)
        return build

    return decorator


def loss_spec(name: str) -> LossSpec:
    """The registered loss ``name``; ``ValueError`` listing the registered losses otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {', '.join(map(repr, LOSSES))}")
    return LOSSES[name]


def owners(param: str) -> list[str]:
    """The losses that declare parameter ``param``."""
    return [spec.name for spec in LOSSES.values() if any(p.name == param for p in spec.params)]


def check_loss_params(name: str, params: Optional[Mapping] = None) -> dict:
    """``params`` of loss ``name`` validated and completed with defaults, in declaration order.

    A parameter the loss does not declare is an error that names the loss(es) it belongs to, so
    that ``--lam`` given with ``--loss ce`` fails instead of being silently dropped.
    """
    spec = loss_spec(name)
    params = dict(params or {})
    declared = {p.name for p in spec.params}
    unknown = [k for k in params if k not in declared]
    if unknown:
        problems = []
        for key in unknown:
            belongs = owners(key)
            problems.append(f"{key!r} is a parameter of {' and '.join(map(repr, belongs))}" if belongs
                            else f"{key!r} is not a parameter of any registered loss")
        raise ValueError(f"loss {name!r} takes {', '.join(map(repr, declared)) or 'no parameters'}; "
                         + "; ".join(problems))
    checked = {}
    for param in spec.params:
        value = params.get(param.name, param.default)
        if value is None:
            value = param.default
        checked[param.name] = param.check(value)
    if spec.check_all is not None:
        spec.check_all(checked)
    return checked


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
    return spec.build(hierarchy, **checked)


# -- the losses ---------------------------------------------------------------------------------
def _check_soft_labels(soft_labels) -> torch.Tensor:
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


def check_logits_targets(logits, targets, n: int) -> torch.Tensor:
    """Validate a loss's inputs; returns ``targets`` as int64. ``TypeError`` for non-tensors."""
    for what, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__} "
                            f"(convert with torch.as_tensor)")
    if logits.ndim != 2 or logits.shape[1] != n:
        raise ValueError(f"logits must have shape (N, {n}) (one column per class of soft_labels), "
                         f"got {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have shape ({logits.shape[0]},) to match logits, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices in [0, {n - 1}], got dtype {targets.dtype}")
    if targets.numel() and bool(((targets < 0) | (targets >= n)).any()):
        raise ValueError(f"targets must lie in [0, {n - 1}], got values in "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    return targets.long()


class KESLLoss(nn.Module):
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
        _check_not_both_zero({"alpha": self.alpha, "beta": self.beta})
        self.kl = names.check_choice("kl", kl, KL_DIRECTIONS)
        g = _check_soft_labels(soft_labels)
        self.register_buffer("soft_labels", g)
        # The clamp keeps log g finite where T is so large that g underflowed to 0: the reverse KL
        # then gives a large finite penalty, and the forward KL's 0 · log 0 terms stay 0.
        self.register_buffer("log_soft_labels", g.clamp_min(torch.finfo(g.dtype).tiny).log())

    @property
    def num_classes(self) -> int:
        return self.soft_labels.shape[0]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha:g}, beta={self.beta:g}, kl={self.kl!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = check_logits_targets(logits, targets, self.num_classes)
        compute_dtype = _compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            log_p = F.log_softmax(logits.to(compute_dtype), dim=1)
            loss = log_p.new_zeros(logits.shape[0])
            if self.alpha:
                loss = loss - self.alpha * log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
            if self.beta:
                log_g = self.log_soft_labels[targets].to(compute_dtype)
                if self.kl == "reverse":
                    kl = (log_p.exp() * (log_p - log_g)).sum(dim=1)
                else:
                    g = self.soft_labels[targets].to(compute_dtype)
                    kl = (g * (log_g - log_p)).sum(dim=1)
                loss = loss + self.beta * kl
            return loss.mean()


def _check_not_both_zero(params: dict) -> None:
    if params["alpha"] == 0.0 and params["beta"] == 0.0:
        raise ValueError("alpha (α) and beta (β) must not both be zero (the loss would be constant)")


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


@register_loss("ce", summary="cross-entropy with the one-hot label", needs_hierarchy=False)
def _build_ce(hierarchy):
    return nn.CrossEntropyLoss()


@register_loss("label_smoothing", summary="label smoothing (Szegedy et al. 2016), PyTorch's own",
               params=(LossParam("epsilon", 0.1, names.check_epsilon,
                                 "label smoothing: mass spread uniformly over all classes (ε)"),),
               needs_hierarchy=False)
def _build_label_smoothing(hierarchy, *, epsilon):
    return nn.CrossEntropyLoss(label_smoothing=epsilon)


@register_loss("kesl", summary="KESL: alpha*CE + beta*KL to the knowledge-embedded soft label",
               params=(LossParam("lam", 0.5, names.check_lambda, "KESL λ: similarity c_ij = λ^d_ij, 0 < λ < 1"),
                       LossParam("T", 2.0, names.check_temperature, "KESL temperature: g_ij = softmax_j(T c_ij)"),
                       LossParam("alpha", 1.0, lambda v: names.check_weight(v, "alpha (α)"),
                                 "KESL weight α of the cross-entropy term"),
                       LossParam("beta", 0.1, lambda v: names.check_weight(v, "beta (β)"),
                                 "KESL weight β of the KL term"),
                       LossParam("kl", "reverse", lambda v: names.check_choice("kl", v, KL_DIRECTIONS),
                                 "KL direction: reverse KL(p||g) (the paper's) or forward KL(g||p)",
                                 choices=KL_DIRECTIONS),
                       LossParam("distance", "edges", lambda v: names.check_choice("distance", v, KESL_DISTANCES),
                                 "class distance of c_ij: the paper's d_ij = e_ij - 1, or the LCA height",
                                 choices=KESL_DISTANCES)),
               check_all=_check_not_both_zero)
def _build_kesl(hierarchy, *, lam, T, alpha, beta, kl, distance):
    g = soft_label_matrix(kesl_class_distances(hierarchy, distance), lam, T)
    return KESLLoss(g, alpha=alpha, beta=beta, kl=kl)


# -- the losses KESL competes with: Bertinetto et al., "Making Better Mistakes" (CVPR 2020) ------
def _check_hardness(value) -> float:
    return names.check_positive(value, "hardness")


def _check_decay(value) -> float:
    return names.check_positive(value, "decay", allow_zero=True)


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """float64 for float64 logits, else float32: autocast would run log_softmax/exp in bf16/fp16 on some
    backends, and the losses are cheap, so they are always computed in (at least) float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


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
    hardness = _check_hardness(hardness)
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


class MBMLoss(nn.Module):
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
        self.hardness = _check_hardness(hardness)
        double = (distances.dtype == torch.float64 if isinstance(distances, torch.Tensor)
                  else np.asarray(distances).dtype == np.float64)
        dtype = torch.float64 if double else torch.float32
        self.register_buffer("soft_labels", mbm_soft_labels(distances, self.hardness).to(dtype))

    @property
    def num_classes(self) -> int:
        return self.soft_labels.shape[0]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, hardness={self.hardness:g}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = check_logits_targets(logits, targets, self.num_classes)
        compute_dtype = _compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            log_p = F.log_softmax(logits.to(compute_dtype), dim=1)
            target = self.soft_labels[targets].to(compute_dtype)
            return -(target * log_p).sum(dim=1).mean()


class HXELoss(nn.Module):
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
        self.decay = _check_decay(decay)
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

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = check_logits_targets(logits, targets, self.num_classes)
        compute_dtype = _compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            node_log_p = self.node_log_probabilities(logits.to(compute_dtype))
            coefficients = self.path_coefficients[targets].to(compute_dtype)
            return (coefficients * node_log_p).sum(dim=1).mean()


@register_loss("mbm", summary="soft labels of Bertinetto et al. 2020: CE to softmax(-hardness * LCA height / max)",
               params=(LossParam("hardness", 30.0, _check_hardness,
                                 "MBM soft labels: hardness β > 0 of softmax(-β h_ij / max h), larger is closer "
                                 "to one-hot"),))
def _build_mbm(hierarchy, *, hardness):
    return MBMLoss(hierarchy.lca_heights(), hardness)


@register_loss("hxe", summary="hierarchical cross-entropy of Bertinetto et al. 2020 (edge weights exp(-decay*depth))",
               params=(LossParam("decay", 0.1, _check_decay,
                                 "HXE: decay α ≥ 0 of the edge weights exp(-α·depth); 0 is cross-entropy"),))
def _build_hxe(hierarchy, *, decay):
    return HXELoss(hierarchy, decay)
