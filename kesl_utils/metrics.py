"""Evaluation metrics: top-k accuracy, hierarchy-aware mistake metrics and calibration.

All functions take whole-epoch tensors: logits of shape (N, n) (any float dtype, any device) and
integer targets of shape (N,) in [0, n). The hierarchy-aware metrics follow Bertinetto et al.,
"Making Better Mistakes" (CVPR 2020), measured with the class distance of the KESL paper,
d_ij = e_ij − 1 for i ≠ j and d_ii = 0 (:func:`class_distance_matrix`).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from .soft_labels import check_edge_distances

__all__ = [
    "class_distance_matrix",
    "topk_accuracy",
    "mistake_severity",
    "hierarchical_distance_at_k",
    "expected_calibration_error",
    "summarize",
    "METRIC_KEYS",
]

METRIC_KEYS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")


def class_distance_matrix(edge_distances) -> torch.Tensor:
    """d_ij = e_ij − 1 for i ≠ j, d_ii = 0, as an int64 tensor of shape (n, n).

    ``edge_distances`` is validated as in :func:`kesl_utils.soft_labels.check_edge_distances`.
    """
    e = check_edge_distances(edge_distances)
    d = e - 1
    np.fill_diagonal(d, 0)
    return torch.from_numpy(d)


def _check_logits_targets(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError("logits and targets must be torch tensors")
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (N, n) with n ≥ 1 classes, got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits is empty (N = 0): there is nothing to evaluate")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have shape ({logits.shape[0]},) to match logits, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    n = logits.shape[1]
    if bool(((targets < 0) | (targets >= n)).any()):
        raise ValueError(f"targets must lie in [0, {n - 1}] (logits have {n} columns), got values in "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    return logits.detach(), targets.detach().to(device=logits.device, dtype=torch.long)


def _check_distances(distances, n: int, device: torch.device) -> torch.Tensor:
    if not isinstance(distances, torch.Tensor):
        distances = torch.as_tensor(np.asarray(distances))
    if distances.ndim != 2 or tuple(distances.shape) != (n, n):
        raise ValueError(f"distances must be the ({n}, {n}) class-distance matrix d_ij matching the logits' "
                         f"{n} columns, got shape {tuple(distances.shape)}")
    return distances.to(device=device, dtype=torch.float64)


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
    k_max = min(max(ks), n)
    top = logits.topk(k_max, dim=1).indices
    hits = (top == targets.unsqueeze(1)).cumsum(dim=1).clamp_max(1).double()
    # hits[:, k-1] is 1 where the target is among the k highest logits.
    return {k: float(hits[:, min(k, n) - 1].mean()) * 100.0 for k in ks}


def mistake_severity(logits: torch.Tensor, targets: torch.Tensor, distances) -> float:
    """Mean class distance d(y_i, ŷ_i) over the samples whose top-1 prediction ŷ_i is wrong.

    ``distances`` is the (n, n) matrix d_ij (:func:`class_distance_matrix`). Returns NaN when no
    sample is misclassified.
    """
    logits, targets = _check_logits_targets(logits, targets)
    d = _check_distances(distances, logits.shape[1], logits.device)
    predictions = logits.argmax(dim=1)
    wrong = predictions != targets
    if not bool(wrong.any()):
        return math.nan
    return float(d[targets[wrong], predictions[wrong]].mean())


def hierarchical_distance_at_k(logits: torch.Tensor, targets: torch.Tensor, distances, k: int) -> float:
    """Mean of d(y_i, ŷ_ij) over the samples i and their k highest-scoring classes ŷ_ij (j = 1..k).

    Correct predictions count with distance 0. k is capped at the number of classes.
    """
    logits, targets = _check_logits_targets(logits, targets)
    k = min(_check_k(k), logits.shape[1])
    d = _check_distances(distances, logits.shape[1], logits.device)
    top = logits.topk(k, dim=1).indices
    return float(d[targets.unsqueeze(1), top].mean())


def expected_calibration_error(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., 2017) as a fraction in [0, 1].

    The top-1 confidence max_k softmax(s)_k is binned into ``n_bins`` equal-width bins
    (lo, hi] on [0, 1]; ECE = Σ_b (|B_b| / N) · |accuracy(B_b) − mean confidence(B_b)|.
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


def summarize(logits: torch.Tensor, targets: torch.Tensor, distances) -> dict[str, float]:
    """All evaluation metrics of a run as plain floats, with the keys of :data:`METRIC_KEYS`.

    top1/top5 in percent, mistake_severity and hdist@k in units of d_ij, ece as a fraction.
    """
    accuracy = topk_accuracy(logits, targets, ks=(1, 5))
    return {
        "top1": accuracy[1],
        "top5": accuracy[5],
        "mistake_severity": mistake_severity(logits, targets, distances),
        "hdist@1": hierarchical_distance_at_k(logits, targets, distances, 1),
        "hdist@5": hierarchical_distance_at_k(logits, targets, distances, 5),
        "ece": expected_calibration_error(logits, targets),
    }
