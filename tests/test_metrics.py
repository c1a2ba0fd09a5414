"""Metrics on hand-built logits over two genera of two species (d = 1 within a genus, 3 across)."""
import math

import numpy as np
import pytest
import torch

from kesl_utils.metrics import (
    METRIC_KEYS,
    class_distance_matrix,
    expected_calibration_error,
    hierarchical_distance_at_k,
    mistake_severity,
    summarize,
    topk_accuracy,
)

E4 = np.array([[0, 2, 4, 4],
               [2, 0, 4, 4],
               [4, 4, 0, 2],
               [4, 4, 2, 0]])
D4 = class_distance_matrix(E4)

# Ranked predictions per sample (target → top-1, top-2):
#   target 0: 0, 1   → correct,            d = (0, 1)
#   target 0: 1, 2   → wrong within genus, d = (1, 3)
#   target 3: 2, 3   → wrong within genus, d = (1, 0)
#   target 2: 0, 3   → wrong across genera, d = (3, 1)
LOGITS = torch.tensor([[4.0, 3.0, 2.0, 1.0],
                       [1.0, 4.0, 3.0, 2.0],
                       [1.0, 2.0, 4.0, 3.0],
                       [4.0, 1.0, 2.0, 3.0]])
TARGETS = torch.tensor([0, 0, 3, 2])


def test_class_distance_matrix():
    assert D4.dtype == torch.int64
    assert D4.tolist() == [[0, 1, 3, 3], [1, 0, 3, 3], [3, 3, 0, 1], [3, 3, 1, 0]]
    with pytest.raises(ValueError, match=r"edge_distances must be symmetric"):
        class_distance_matrix([[0, 2], [4, 0]])


def test_topk_accuracy_values():
    assert topk_accuracy(LOGITS, TARGETS, ks=(1, 2, 3, 4)) == {1: 25.0, 2: 50.0, 3: 75.0, 4: 100.0}


def test_topk_accuracy_caps_k_at_number_of_classes():
    accuracy = topk_accuracy(LOGITS, TARGETS)
    assert accuracy == {1: 25.0, 5: 100.0}
    assert all(type(v) is float for v in accuracy.values())


def test_mistake_severity_values():
    assert mistake_severity(LOGITS, TARGETS, D4) == pytest.approx((1 + 1 + 3) / 3)
    # Distances may come as a numpy array too.
    assert mistake_severity(LOGITS, TARGETS, D4.numpy()) == pytest.approx(5 / 3)


def test_mistake_severity_is_nan_without_mistakes():
    assert math.isnan(mistake_severity(LOGITS, LOGITS.argmax(dim=1), D4))


def test_hierarchical_distance_at_k_values():
    assert hierarchical_distance_at_k(LOGITS, TARGETS, D4, 1) == pytest.approx((0 + 1 + 1 + 3) / 4)
    assert hierarchical_distance_at_k(LOGITS, TARGETS, D4, 2) == pytest.approx((0 + 1 + 1 + 3 + 1 + 0 + 3 + 1) / 8)
    # All four classes: every target's row of d sums to 0 + 1 + 3 + 3.
    assert hierarchical_distance_at_k(LOGITS, TARGETS, D4, 4) == pytest.approx(7 / 4)
    assert hierarchical_distance_at_k(LOGITS, TARGETS, D4, 5) == pytest.approx(7 / 4)


def logits_with_confidence(p: float, predicted: int, n_classes: int = 2) -> list[float]:
    """Logits whose softmax puts p on ``predicted`` and spreads 1 − p evenly over the others."""
    rest = (1 - p) / (n_classes - 1)
    return [math.log(p if k == predicted else rest) for k in range(n_classes)]


def test_ece_of_perfectly_calibrated_predictions_is_zero():
    # Confidence 0.75 and 3 of 4 right; confidence 0.8 and 4 of 5 right.
    logits = torch.tensor([logits_with_confidence(0.75, 0)] * 4 + [logits_with_confidence(0.8, 1)] * 5,
                          dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 1] + [1, 1, 1, 1, 0])
    assert expected_calibration_error(logits, targets) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(logits.float(), targets) == pytest.approx(0.0, abs=1e-7)


def test_ece_values():
    # Two samples at confidence 0.9, both right (gap 0.1); two at 0.6, one right (gap 0.1).
    logits = torch.tensor([logits_with_confidence(0.9, 0)] * 2 + [logits_with_confidence(0.6, 1)] * 2,
                          dtype=torch.float64)
    targets = torch.tensor([0, 0, 1, 0])
    assert expected_calibration_error(logits, targets) == pytest.approx(0.1)
    # One bin pools both groups: |3/4 − 0.75| = 0.
    assert expected_calibration_error(logits, targets, n_bins=1) == pytest.approx(0.0, abs=1e-12)
    # Over-confident: confidence 0.9, all wrong.
    assert expected_calibration_error(logits[:2], torch.tensor([1, 1])) == pytest.approx(0.9)


def test_summarize_keys_and_values():
    metrics = summarize(LOGITS, TARGETS, D4)
    assert tuple(metrics) == METRIC_KEYS == ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")
    assert all(type(v) is float for v in metrics.values())
    assert metrics["top1"] == 25.0 and metrics["top5"] == 100.0
    assert metrics["mistake_severity"] == pytest.approx(5 / 3)
    assert metrics["hdist@1"] == pytest.approx(1.25) and metrics["hdist@5"] == pytest.approx(1.75)
    assert metrics["ece"] == pytest.approx(expected_calibration_error(LOGITS, TARGETS))


def test_accepts_half_precision_and_int32_targets():
    metrics = summarize(LOGITS.half(), TARGETS.int(), D4.float())
    assert metrics == pytest.approx(summarize(LOGITS, TARGETS, D4), rel=1e-3)


def test_concatenated_batches_equal_whole_epoch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=generator)
    targets = torch.randint(0, 4, (50,), generator=generator)
    whole = summarize(logits, targets, D4)
    joined = summarize(torch.cat([logits[:20], logits[20:]]), torch.cat([targets[:20], targets[20:]]), D4)
    assert whole == joined


@pytest.mark.parametrize("call", [
    lambda t: topk_accuracy(LOGITS, t),
    lambda t: mistake_severity(LOGITS, t, D4),
    lambda t: hierarchical_distance_at_k(LOGITS, t, D4, 2),
    lambda t: expected_calibration_error(LOGITS, t),
    lambda t: summarize(LOGITS, t, D4),
])
def test_rejects_targets_out_of_range(call):
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\] \(logits have 4 columns\)"):
        call(torch.tensor([0, 1, 4, 2]))


def test_rejects_invalid_arguments():
    with pytest.raises(ValueError, match=r"distances must be the \(4, 4\) class-distance matrix"):
        mistake_severity(LOGITS, TARGETS, D4[:3, :3])
    with pytest.raises(ValueError, match=r"targets must have shape \(4,\)"):
        topk_accuracy(LOGITS, TARGETS[:3])
    with pytest.raises(ValueError, match=r"logits is empty"):
        topk_accuracy(LOGITS[:0], TARGETS[:0])
    with pytest.raises(ValueError, match=r"logits must have shape \(N, n\)"):
        topk_accuracy(LOGITS[0], TARGETS)
    with pytest.raises(ValueError, match=r"targets must be integer class indices"):
        topk_accuracy(LOGITS, TARGETS.float())
    with pytest.raises(ValueError, match=r"k must be an integer ≥ 1, got 0"):
        hierarchical_distance_at_k(LOGITS, TARGETS, D4, 0)
    with pytest.raises(ValueError, match=r"ks entries must be an integer ≥ 1"):
        topk_accuracy(LOGITS, TARGETS, ks=(1, -5))
    with pytest.raises(ValueError, match=r"n_bins must be an integer ≥ 1"):
        expected_calibration_error(LOGITS, TARGETS, n_bins=0)
