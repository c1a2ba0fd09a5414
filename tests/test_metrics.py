"""Metrics on hand-built logits over two genera of two species (d = 1 within a genus, 3 across)."""
import math

import numpy as np
import pytest
import torch

from kesl_utils.metrics import (
    CRM_METRIC_KEYS,
    LCA_METRIC_KEYS,
    METRIC_KEYS,
    class_distance_matrix,
    conditional_risk,
    crm_rank,
    expected_calibration_error,
    hierarchical_distance_at_k,
    hierarchical_distance_of_ranking,
    mistake_severity,
    mistake_severity_of_ranking,
    summarize,
    topk_accuracy,
    topk_accuracy_of_ranking,
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


# -- LCA heights and conditional risk minimisation (Karthik et al., ICLR 2021) ---------------------
# The LCA heights of the same tree (root → {a, b}, a → {a1, a2}, b → {b1, b2}): 1 within a genus, 2 across.
H4 = torch.tensor([[0, 1, 2, 2],
                   [1, 0, 2, 2],
                   [2, 2, 0, 1],
                   [2, 2, 1, 0]])


def test_h4_is_the_lca_height_of_the_fixture_tree():
    from kesl_utils.hierarchy import Hierarchy

    h = Hierarchy.from_edges([("r", "a"), ("r", "b"), ("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")],
                             ["a1", "a2", "b1", "b2"])
    assert h.lca_heights().tolist() == H4.tolist()
    assert np.array_equal(h.edge_distances(), E4)


def test_crm_changes_the_decision_on_the_hand_example():
    # Two siblings at 0.3 each, a class of the other genus at 0.4: argmax picks the distant class,
    # CRM a sibling, since R(k) = Σ_j p_j h(k, j) is lower there.
    p = torch.tensor([[0.3, 0.3, 0.4, 0.0]], dtype=torch.float64)
    risk = conditional_risk(p, H4)
    assert risk.dtype == torch.float64 and risk.shape == (1, 4)
    torch.testing.assert_close(risk, torch.tensor([[0.3 * 1 + 0.4 * 2,          # a1: 1.1
                                                    0.3 * 1 + 0.4 * 2,          # a2: 1.1
                                                    0.3 * 2 + 0.3 * 2,          # b1: 1.2
                                                    0.3 * 2 + 0.3 * 2 + 0.4]],  # b2: 1.6
                                                  dtype=torch.float64), rtol=1e-15, atol=0)
    assert int(p.argmax()) == 2
    ranking = crm_rank(p, H4)
    assert ranking.dtype == torch.int64 and ranking.tolist() == [[0, 1, 2, 3]]  # a1/a2 tie: smaller index


def test_crm_ties_go_to_the_higher_probability_then_the_smaller_index():
    p = torch.tensor([[0.1, 0.4, 0.1, 0.4], [0.4, 0.1, 0.1, 0.4]])
    assert crm_rank(p, torch.zeros(4, 4)).tolist() == [[1, 3, 0, 2], [0, 3, 1, 2]]


def test_crm_with_zero_one_cost_ranks_by_probability():
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(30, 6, generator=generator, dtype=torch.float64), dim=1)
    ranking = crm_rank(p, 1 - torch.eye(6))
    assert torch.equal(ranking, torch.argsort(p, dim=1, descending=True))


def test_crm_ranking_of_the_fixture():
    # Risks by hand (p ∝ e^4, e^3, e^2, e^1 permuted): the top-1 decisions equal argmax here, the
    # later ranks do not (argmax: [1, 2, 3, 0] and [0, 3, 2, 1] for samples 1 and 3).
    ranking = crm_rank(torch.softmax(LOGITS.double(), dim=1), H4)
    assert ranking.tolist() == [[0, 1, 2, 3], [1, 0, 2, 3], [2, 3, 1, 0], [0, 1, 3, 2]]
    # Sample 0: p = (e^3, e^2, e, 1) / Z; R(0) = p1 + 2 (p2 + p3).
    z = math.exp(3) + math.exp(2) + math.e + 1
    p = [math.exp(3) / z, math.exp(2) / z, math.e / z, 1 / z]
    expected = [p[1] + 2 * (p[2] + p[3]), p[0] + 2 * (p[2] + p[3]), 2 * (p[0] + p[1]) + p[3],
                2 * (p[0] + p[1]) + p[2]]
    torch.testing.assert_close(conditional_risk(torch.softmax(LOGITS.double(), dim=1), H4)[0],
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0)


@pytest.mark.parametrize("probabilities,cost,message", [
    (LOGITS, H4, r"probabilities rows must sum to 1 \(within 0.001\); row 0 sums to 10"),
    (torch.tensor([[1.2, -0.2]]), torch.zeros(2, 2), r"probabilities must be finite and non-negative"),
    (torch.tensor([[math.nan, 1.0]]), torch.zeros(2, 2), r"probabilities must be finite and non-negative"),
    (torch.tensor([0.5, 0.5]), torch.zeros(2, 2), r"probabilities must have shape \(N, n\)"),
    (torch.tensor([[1, 0]]), torch.zeros(2, 2), r"probabilities must be a floating-point tensor"),
    (torch.tensor([[0.5, 0.5]]), H4, r"cost must be the \(2, 2\) cost matrix D\(k, j\)"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, math.inf], [1.0, 0.0]]), r"cost must hold finite numbers"),
])
def test_crm_rejects_invalid_inputs(probabilities, cost, message):
    with pytest.raises(ValueError, match=message):
        crm_rank(probabilities, cost)


def test_ranking_metrics_equal_the_logits_metrics():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 4, generator=generator)
    targets = torch.randint(0, 4, (40,), generator=generator)
    ranking = logits.argsort(dim=1, descending=True)
    assert topk_accuracy_of_ranking(ranking, targets, (1, 2, 4)) == topk_accuracy(logits, targets, (1, 2, 4))
    assert mistake_severity_of_ranking(ranking, targets, H4) == mistake_severity(logits, targets, H4)
    for k in (1, 2, 4):
        assert hierarchical_distance_of_ranking(ranking, targets, D4, k) == \
            pytest.approx(hierarchical_distance_at_k(logits, targets, D4, k), rel=1e-15)


def test_ranking_metrics_reject_invalid_arguments():
    ranking = LOGITS.argsort(dim=1, descending=True)
    with pytest.raises(ValueError, match=r"k=3 exceeds the 2 ranked classes per sample"):
        hierarchical_distance_of_ranking(ranking[:, :2], TARGETS, D4, 3)
    with pytest.raises(ValueError, match=r"ks entries=5 exceeds the 4 ranked classes"):
        topk_accuracy_of_ranking(ranking, TARGETS, (1, 5))
    with pytest.raises(ValueError, match=r"ranking must lie in \[0, 3\] \(the distances have 4 classes\)"):
        mistake_severity_of_ranking(ranking + 1, TARGETS, D4)
    with pytest.raises(ValueError, match=r"ranking must hold integer class indices"):
        mistake_severity_of_ranking(ranking.float(), TARGETS, D4)
    with pytest.raises(ValueError, match=r"targets must have shape \(4,\) to match ranking"):
        topk_accuracy_of_ranking(ranking, TARGETS[:2])


def test_summarize_with_lca_on_the_fixture():
    metrics = summarize(LOGITS, TARGETS, D4, lca=H4)
    assert tuple(metrics) == METRIC_KEYS + LCA_METRIC_KEYS + CRM_METRIC_KEYS
    assert LCA_METRIC_KEYS == ("mistake_severity_lca", "hdist_lca@1", "hdist_lca@5")
    assert CRM_METRIC_KEYS == ("crm_top1", "crm_top5", "crm_mistake_severity_lca", "crm_hdist_lca@1",
                               "crm_hdist_lca@5", "crm_mistake_severity", "crm_hdist@1")
    assert all(type(v) is float for v in metrics.values())
    assert {k: metrics[k] for k in METRIC_KEYS} == summarize(LOGITS, TARGETS, D4)
    # Argmax mistakes: target 0 → 1 (h 1), 3 → 2 (h 1), 2 → 0 (h 2); every row of h sums to 5.
    assert metrics["mistake_severity_lca"] == pytest.approx((1 + 1 + 2) / 3)
    assert metrics["hdist_lca@1"] == pytest.approx((0 + 1 + 1 + 2) / 4)
    assert metrics["hdist_lca@5"] == pytest.approx(5 / 4)
    # CRM makes the same top-1 decisions on this fixture (test_crm_ranking_of_the_fixture).
    assert metrics["crm_top1"] == 25.0 and metrics["crm_top5"] == 100.0
    assert metrics["crm_mistake_severity_lca"] == pytest.approx(4 / 3)
    assert metrics["crm_hdist_lca@1"] == pytest.approx(1.0)
    assert metrics["crm_hdist_lca@5"] == pytest.approx(5 / 4)
    assert metrics["crm_mistake_severity"] == pytest.approx((1 + 1 + 3) / 3)
    assert metrics["crm_hdist@1"] == pytest.approx((0 + 1 + 1 + 3) / 4)
    # The LCA heights may come as an int numpy array or a float tensor.
    assert summarize(LOGITS, TARGETS, D4, lca=H4.numpy()) == metrics
    assert summarize(LOGITS, TARGETS, D4, lca=H4.double()) == metrics


def test_summarize_with_lca_where_crm_changes_the_decision():
    # Logits log p. Sample 0 (target a1) and 2 (target a2): p = (.32, .28, .38, .02), argmax b1,
    # CRM a1 (risks 1.08, 1.12, 1.22, 1.58). Sample 1 (target b2): p = (.1, .2, .3, .4), both pick b2.
    p = torch.tensor([[0.32, 0.28, 0.38, 0.02], [0.1, 0.2, 0.3, 0.4], [0.32, 0.28, 0.38, 0.02]],
                     dtype=torch.float64)
    targets = torch.tensor([0, 3, 1])
    assert crm_rank(p, H4).tolist() == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]
    metrics = summarize(p.log(), targets, D4, lca=H4)
    assert metrics["top1"] == pytest.approx(100 / 3) and metrics["crm_top1"] == pytest.approx(200 / 3)
    assert metrics["mistake_severity_lca"] == pytest.approx(2.0)       # a1 → b1, a2 → b1
    assert metrics["crm_mistake_severity_lca"] == pytest.approx(1.0)   # a2 → a1
    assert metrics["mistake_severity"] == pytest.approx(3.0) and metrics["crm_mistake_severity"] == pytest.approx(1.0)
    assert metrics["hdist_lca@1"] == pytest.approx(4 / 3) and metrics["crm_hdist_lca@1"] == pytest.approx(1 / 3)
    assert metrics["hdist@1"] == pytest.approx(2.0) and metrics["crm_hdist@1"] == pytest.approx(1 / 3)
    assert metrics["top5"] == metrics["crm_top5"] == 100.0
    assert metrics["hdist_lca@5"] == metrics["crm_hdist_lca@5"] == pytest.approx(5 / 4)
    # Over the first two ranked classes the rules differ: argmax [2, 0], [3, 2], [2, 0].
    ranking = crm_rank(p, H4)
    assert hierarchical_distance_of_ranking(ranking, targets, H4, 2) == pytest.approx((0 + 1 + 0 + 1 + 1 + 0) / 6)
    assert hierarchical_distance_at_k(p.log(), targets, H4, 2) == pytest.approx((2 + 0 + 0 + 1 + 2 + 1) / 6)


def test_summarize_rejects_a_wrong_lca_matrix():
    with pytest.raises(ValueError, match=r"lca must be the \(4, 4\) matrix of LCA heights h_ij"):
        summarize(LOGITS, TARGETS, D4, lca=H4[:3, :3])
