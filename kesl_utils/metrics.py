"""Evaluation metrics: top-k accuracy, hierarchy-aware mistake metrics, calibration, and the CRM rule.

All functions take whole-epoch tensors: logits of shape (N, n) (any float dtype, any device) and
integer targets of shape (N,) in [0, n). The hierarchy-aware metrics follow Bertinetto et al.,
"Making Better Mistakes" (CVPR 2020), measured with the class distance of the KESL paper,
d_ij = e_ij − 1 for i ≠ j and d_ii = 0 (:func:`class_distance_matrix`), and, in
:func:`summarize` with ``lca``, with Bertinetto et al.'s own distance, the height h_ij of the lowest
common ancestor (:meth:`kesl_utils.hierarchy.Hierarchy.lca_heights`).

The metrics that read a ranking of the classes (top-k accuracy, mistake severity, hierarchical
distance@k) are computed by the ``*_of_ranking`` functions from a ranking (N, k), the classes of
each sample in decreasing order of preference. The logits functions rank by the logits (argmax);
the conditional risk minimisation rule of Karthik et al. (ICLR 2021) ranks by the risk
R(k) = Σ_j p_j · D(k, j) (:func:`crm_rank`), and :func:`summarize` reports both.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from . import names
from .soft_labels import check_edge_distances

__all__ = [
    "class_distance_matrix",
    "topk_accuracy",
    "mistake_severity",
    "hierarchical_distance_at_k",
    "expected_calibration_error",
    "topk_accuracy_of_ranking",
    "mistake_severity_of_ranking",
    "hierarchical_distance_of_ranking",
    "conditional_risk",
    "crm_rank",
    "summarize",
    "check_logits_targets",
    "METRIC_KEYS",
    "LCA_METRIC_KEYS",
    "CRM_METRIC_KEYS",
]

# The key tuples are defined once, in kesl_utils.names; re-exported here for the metrics' readers.
METRIC_KEYS, LCA_METRIC_KEYS, CRM_METRIC_KEYS = names.METRIC_KEYS, names.LCA_METRIC_KEYS, names.CRM_METRIC_KEYS

# Tolerance on Σ_k p_k = 1 in crm_rank: loose enough for a float16 softmax, tight enough to
# reject logits or unnormalised scores.
_PROBABILITY_TOL = 1e-3


def class_distance_matrix(edge_distances) -> torch.Tensor:
    """d_ij = e_ij − 1 for i ≠ j, d_ii = 0, as an int64 tensor of shape (n, n).

    ``edge_distances`` is validated as in :func:`kesl_utils.soft_labels.check_edge_distances`.
    """
    e = check_edge_distances(edge_distances)
    d = e - 1
    np.fill_diagonal(d, 0)
    return torch.from_numpy(d)


def check_logits_targets(logits, targets, n: int | None = None, *, allow_empty: bool = False) -> torch.Tensor:
    """The one check of a pair (logits (N, n), targets (N,)), for the metrics and the losses.

    ``n``: the number of classes the logits must have (``None``: any n ≥ 1). ``allow_empty``: accept
    N = 0 (a loss of an empty batch; a metric has nothing to evaluate). Raises ``TypeError`` when
    either is not a tensor, ``ValueError`` for a wrong shape, dtype or class index. Returns the
    targets as int64 on the logits' device.
    """
    for what, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__} (convert with torch.as_tensor)")
    if n is not None and (logits.ndim != 2 or logits.shape[1] != n):
        raise ValueError(f"logits must have shape (N, {n}) (one column per class), got {tuple(logits.shape)}")
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (N, n) with n ≥ 1 classes, got {tuple(logits.shape)}")
    if logits.shape[0] == 0 and not allow_empty:
        raise ValueError("logits is empty (N = 0): there is nothing to evaluate")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have shape ({logits.shape[0]},) to match logits, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    classes = logits.shape[1]
    if targets.numel() and bool(((targets < 0) | (targets >= classes)).any()):
        raise ValueError(f"targets must lie in [0, {classes - 1}] (logits have {classes} columns), got values in "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    return targets.to(device=logits.device, dtype=torch.long)


def _check_logits_targets(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    targets = check_logits_targets(logits, targets)
    return logits.detach(), targets.detach()


def _check_distances(distances, n: int, device: torch.device, name: str = "distances",
                     what: str = "class-distance matrix d_ij", columns: str = "the logits'") -> torch.Tensor:
    if not isinstance(distances, torch.Tensor):
        distances = torch.as_tensor(np.asarray(distances))
    if distances.ndim != 2 or tuple(distances.shape) != (n, n):
        raise ValueError(f"{name} must be the ({n}, {n}) {what} matching {columns} "
                         f"{n} columns, got shape {tuple(distances.shape)}")
    if distances.dtype == torch.bool or distances.dtype.is_complex:
        raise ValueError(f"{name} must hold real numbers, got dtype {distances.dtype}")
    return distances.to(device=device, dtype=torch.float64)


def _check_ranking(ranking, targets, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(ranking, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError("ranking and targets must be torch tensors")
    if ranking.ndim != 2 or ranking.shape[1] == 0:
        raise ValueError(f"ranking must have shape (N, k) with k ≥ 1 ranked classes per sample, "
                         f"got {tuple(ranking.shape)}")
    if ranking.shape[0] == 0:
        raise ValueError("ranking is empty (N = 0): there is nothing to evaluate")
    if ranking.dtype.is_floating_point or ranking.dtype.is_complex or ranking.dtype == torch.bool:
        raise ValueError(f"ranking must hold integer class indices, got dtype {ranking.dtype}")
    if targets.ndim != 1 or targets.shape[0] != ranking.shape[0]:
        raise ValueError(f"targets must have shape ({ranking.shape[0]},) to match ranking, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if n is not None:
        for what, value in (("ranking", ranking), ("targets", targets)):
            if bool(((value < 0) | (value >= n)).any()):
                raise ValueError(f"{what} must lie in [0, {n - 1}] (the distances have {n} classes), got values in "
                                 f"[{int(value.min())}, {int(value.max())}]")
    return ranking.detach().long(), targets.detach().to(device=ranking.device, dtype=torch.long)


def _check_k_in_ranking(k, ranking: torch.Tensor, name: str = "k") -> int:
    k = _check_k(k, name)
    if k > ranking.shape[1]:
        raise ValueError(f"{name}={k} exceeds the {ranking.shape[1]} ranked classes per sample of the ranking")
    return k


def _check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {k!r}")
    return int(k)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent (0–100) for each k in ``ks``: {k: accuracy}.

    k larger than the number of classes n is evaluated as k = n (100 %), but keeps its key, so
    that "top5" exists on a toy problem with fewer than five classes.
    """
    logits, targets = _check_logits_targets(logits, targets)
    ks = [_check_k(k, "ks entries") for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k ≥ 1")
    n = logits.shape[1]
    capped = {k: min(k, n) for k in ks}
    top = logits.topk(max(capped.values()), dim=1).indices
    accuracy = topk_accuracy_of_ranking(top, targets, sorted(set(capped.values())))
    return {k: accuracy[capped[k]] for k in ks}


def mistake_severity(logits: torch.Tensor, targets: torch.Tensor, distances) -> float:
    """Mean class distance d(y_i, ŷ_i) over the samples whose top-1 prediction ŷ_i is wrong.

    ``distances`` is the (n, n) matrix d_ij (:func:`class_distance_matrix`). Returns NaN when no
    sample is misclassified.
    """
    logits, targets = _check_logits_targets(logits, targets)
    _check_distances(distances, logits.shape[1], logits.device)
    return mistake_severity_of_ranking(logits.argmax(dim=1, keepdim=True), targets, distances)


def hierarchical_distance_at_k(logits: torch.Tensor, targets: torch.Tensor, distances, k: int) -> float:
    """Mean of d(y_i, ŷ_ij) over the samples i and their k highest-scoring classes ŷ_ij (j = 1..k).

    Correct predictions count with distance 0. k is capped at the number of classes.
    """
    logits, targets = _check_logits_targets(logits, targets)
    k = min(_check_k(k), logits.shape[1])
    _check_distances(distances, logits.shape[1], logits.device)
    return hierarchical_distance_of_ranking(logits.topk(k, dim=1).indices, targets, distances, k)


def expected_calibration_error(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., 2017) as a fraction in [0, 1].

    The top-1 confidence max_k softmax(s)_k is binned into ``n_bins`` equal-width bins
    (lo, hi] on [0, 1]; ``ECE = Σ_b (|B_b| / N) · |accuracy(B_b) − mean confidence(B_b)|``.
    """
    logits, targets = _check_logits_targets(logits, targets)
    n_bins = _check_k(n_bins, "n_bins")
    probabilities = torch.softmax(logits.double(), dim=1)
    confidence, predictions = probabilities.max(dim=1)
    correct = (predictions == targets).double()
    inner_edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=logits.device)[1:-1]
    bins = torch.bucketize(confidence, inner_edges)
    confidence_sum = torch.zeros(n_bins, dtype=torch.float64, device=logits.device).index_add_(0, bins, confidence)
    correct_sum = torch.zeros(n_bins, dtype=torch.float64, device=logits.device).index_add_(0, bins, correct)
    return float((correct_sum - confidence_sum).abs().sum() / logits.shape[0])


# -- metrics of a ranking ---------------------------------------------------------------------
def topk_accuracy_of_ranking(ranking: torch.Tensor, targets: torch.Tensor, ks: Iterable[int] = (1,)) -> dict[int, float]:
    """Top-k accuracy in percent for each k in ``ks``: the share of samples whose target is among
    the first k classes of their ranking. ``ranking`` (N, K) int, K ≥ every k."""
    ranking, targets = _check_ranking(ranking, targets)
    ks = [_check_k_in_ranking(k, ranking, "ks entries") for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k ≥ 1")
    hits = (ranking[:, :max(ks)] == targets.unsqueeze(1)).cumsum(dim=1).clamp_max(1).double()
    # hits[:, k-1] is 1 where the target is among the first k classes.
    return {k: float(hits[:, k - 1].mean()) * 100.0 for k in ks}


def mistake_severity_of_ranking(ranking: torch.Tensor, targets: torch.Tensor, distances) -> float:
    """Mistake severity (Bertinetto et al., 2020): the mean distance D(y_i, ŷ_i) over the samples whose
    top-1 class ŷ_i = ``ranking[i, 0]`` is wrong; NaN when none is. ``distances`` D: (n, n)."""
    n = _distances_size(distances)
    ranking, targets = _check_ranking(ranking, targets, n)
    d = _check_distances(distances, n, ranking.device)
    predictions = ranking[:, 0]
    wrong = predictions != targets
    if not bool(wrong.any()):
        return math.nan
    return float(d[targets[wrong], predictions[wrong]].mean())


def hierarchical_distance_of_ranking(ranking: torch.Tensor, targets: torch.Tensor, distances, k: int) -> float:
    """Hierarchical distance@k (Bertinetto et al., 2020): the mean of D(y_i, ŷ_ij) over the samples i
    and their first k ranked classes ŷ_ij (j = 1..k), a correct class counting D(y, y) = 0.

    ``ranking`` (N, K) int with K ≥ k; ``distances`` D: (n, n)."""
    n = _distances_size(distances)
    ranking, targets = _check_ranking(ranking, targets, n)
    k = _check_k_in_ranking(k, ranking)
    d = _check_distances(distances, n, ranking.device)
    return float(d[targets.unsqueeze(1), ranking[:, :k]].mean())


def _distances_size(distances) -> int:
    shape = tuple(distances.shape) if isinstance(distances, torch.Tensor) else np.shape(distances)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
        raise ValueError(f"distances must be a non-empty square (n, n) matrix, got shape {shape}")
    return shape[0]


# -- conditional risk minimisation ---------------------------------------------------------------
def _check_probabilities(probabilities) -> torch.Tensor:
    if not isinstance(probabilities, torch.Tensor):
        probabilities = torch.as_tensor(np.asarray(probabilities))
    if probabilities.ndim != 2 or probabilities.shape[0] == 0 or probabilities.shape[1] == 0:
        raise ValueError(f"probabilities must have shape (N, n) with N ≥ 1 samples and n ≥ 1 classes, "
                         f"got {tuple(probabilities.shape)}")
    if not probabilities.dtype.is_floating_point:
        raise ValueError(f"probabilities must be a floating-point tensor, got dtype {probabilities.dtype}")
    p = probabilities.detach().double()
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("probabilities must be finite and non-negative (pass softmax(logits), not logits)")
    sums = p.sum(dim=1)
    worst = int((sums - 1).abs().argmax())
    if abs(float(sums[worst]) - 1.0) > _PROBABILITY_TOL:
        raise ValueError(f"probabilities rows must sum to 1 (within {_PROBABILITY_TOL:g}); row {worst} sums to "
                         f"{float(sums[worst]):.6g} (pass softmax(logits), not logits)")
    return p


def conditional_risk(probabilities, cost) -> torch.Tensor:
    """The conditional risk of deciding class k (Karthik et al., ICLR 2021, Eq. 1), float64 (N, n)::

        R(k | x) = Σ_j D(k, j) · p(j | x),

    ``probabilities`` p (N, n): rows of class probabilities (non-negative, each summing to 1
    within 1e-3), e.g. ``softmax(logits)``; ``cost`` D (n, n): D(k, j) the cost of deciding k when
    the true class is j, for Karthik et al. the LCA height h_kj (zero diagonal).
    """
    p = _check_probabilities(probabilities)
    n = p.shape[1]
    cost = _check_distances(cost, n, p.device, name="cost", what="cost matrix D(k, j)",
                            columns="the probabilities'")
    if not bool(torch.isfinite(cost).all()):
        raise ValueError("cost must hold finite numbers")
    return p @ cost.T


def crm_rank(probabilities, cost) -> torch.Tensor:
    """Classes ranked by the conditional risk minimisation rule (Karthik et al., ICLR 2021): int64 (N, n).

    Row i lists the n classes in increasing order of the risk R(k | x_i) = Σ_j D(k, j) · p(j | x_i)
    (:func:`conditional_risk`); the decision is column 0, ŷ_i = argmin_k R(k | x_i), instead of
    argmax_k p(k | x_i). Ties (equal float64 risks) go to the class of higher probability, then to
    the smaller class index. With the zero-one cost D = 1 − I, R(k) = 1 − p_k and the ranking is
    the ranking by probability. Shapes and values are validated as in :func:`conditional_risk`.
    """
    p = _check_probabilities(probabilities)
    risk = conditional_risk(p, cost)
    # Lexicographic sort by (risk ↑, probability ↓, index ↑): stable sorts, last key first.
    by_probability = torch.sort(p, dim=1, descending=True, stable=True).indices
    order = torch.sort(risk.gather(1, by_probability), dim=1, stable=True).indices
    return by_probability.gather(1, order)


def summarize(logits: torch.Tensor, targets: torch.Tensor, distances, lca=None) -> dict[str, float]:
    """All evaluation metrics of a run as plain floats (float64 arithmetic).

    Without ``lca``: the keys of :data:`METRIC_KEYS`: top1/top5 in percent, mistake_severity and
    hdist@k in units of d_ij (``distances``, :func:`class_distance_matrix`), ece as a fraction.

    With ``lca``, the (n, n) matrix h_ij of LCA heights (int or float,
    :meth:`~kesl_utils.hierarchy.Hierarchy.lca_heights`), also the keys of :data:`LCA_METRIC_KEYS`
    and :data:`CRM_METRIC_KEYS`, in that order, following Bertinetto et al. (2020):

    * ``mistake_severity_lca``: the mean h(y_i, ŷ_i) over the samples whose top-1 class ŷ_i is wrong;
    * ``hdist_lca@k``: the mean h(y_i, ŷ_ij) over the samples and their k highest-ranked classes
      (a correct class counts 0), k = 1 and 5 (capped at n);
    * ``crm_*``: the same metrics, top1/top5 and, for parity with the keys above, the mistake
      severity and hdist@1 in units of d_ij, for the ranking of the conditional risk minimisation
      rule with cost h: ``crm_rank(softmax(logits), lca)`` (Karthik et al., ICLR 2021).
    """
    accuracy = topk_accuracy(logits, targets, ks=(1, 5))
    metrics = {
        "top1": accuracy[1],
        "top5": accuracy[5],
        "mistake_severity": mistake_severity(logits, targets, distances),
        "hdist@1": hierarchical_distance_at_k(logits, targets, distances, 1),
        "hdist@5": hierarchical_distance_at_k(logits, targets, distances, 5),
        "ece": expected_calibration_error(logits, targets),
    }
    if lca is None:
        return metrics
    logits, targets = _check_logits_targets(logits, targets)
    n = logits.shape[1]
    lca = _check_distances(lca, n, logits.device, name="lca", what="matrix of LCA heights h_ij")
    five = min(5, n)
    metrics["mistake_severity_lca"] = mistake_severity(logits, targets, lca)
    metrics["hdist_lca@1"] = hierarchical_distance_at_k(logits, targets, lca, 1)
    metrics["hdist_lca@5"] = hierarchical_distance_at_k(logits, targets, lca, five)
    ranking = crm_rank(torch.softmax(logits.double(), dim=1), lca)
    crm_accuracy = topk_accuracy_of_ranking(ranking, targets, (1, five))
    metrics["crm_top1"] = crm_accuracy[1]
    metrics["crm_top5"] = crm_accuracy[five]
    metrics["crm_mistake_severity_lca"] = mistake_severity_of_ranking(ranking, targets, lca)
    metrics["crm_hdist_lca@1"] = hierarchical_distance_of_ranking(ranking, targets, lca, 1)
    metrics["crm_hdist_lca@5"] = hierarchical_distance_of_ranking(ranking, targets, lca, five)
    metrics["crm_mistake_severity"] = mistake_severity_of_ranking(ranking, targets, distances)
    metrics["crm_hdist@1"] = hierarchical_distance_of_ranking(ranking, targets, distances, 1)
    return metrics
