"""KESL loss α·L_CE + β·L_KL against float64 references written from the paper's formulas."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kesl_utils.losses import LOSSES, KESLLoss, build_loss
from kesl_utils.soft_labels import soft_label_matrix

E4 = np.array([[0, 2, 4, 4],
               [2, 0, 4, 4],
               [4, 4, 0, 2],
               [4, 4, 2, 0]])
G4 = soft_label_matrix(E4, lam=0.5, T=2)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(6, 4, generator=generator)
    targets = torch.tensor([0, 1, 2, 3, 3, 0])
    return logits, targets


def reference_loss(logits, targets, g, alpha, beta, kl):
    """Per-sample loops in float64, straight from the formulas."""
    logits, g = logits.double(), g.double()
    total = 0.0
    for s, y in zip(logits.tolist(), targets.tolist()):
        z = sum(math.exp(v) for v in s)
        p = [math.exp(v) / z for v in s]
        ce = -math.log(p[y])
        gy = g[y].tolist()
        if kl == "reverse":   # KL(y' ‖ g_y)
            divergence = sum(pk * (math.log(pk) - math.log(gk)) for pk, gk in zip(p, gy))
        else:                 # KL(g_y ‖ y')
            divergence = sum(gk * (math.log(gk) - math.log(pk)) for pk, gk in zip(p, gy))
        total += alpha * ce + beta * divergence
    return total / len(targets)


def test_beta_zero_is_cross_entropy(batch):
    logits, targets = batch
    loss = KESLLoss(G4, alpha=1.0, beta=0.0)(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets), rtol=0, atol=0)


@pytest.mark.parametrize("kl", ["reverse", "forward"])
@pytest.mark.parametrize("alpha,beta", [(0.0, 1.0), (1.0, 1.0), (0.7, 1.3)])
def test_matches_float64_reference(batch, kl, alpha, beta):
    logits, targets = batch
    loss = KESLLoss(G4, alpha=alpha, beta=beta, kl=kl)(logits, targets)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert float(loss) == pytest.approx(reference_loss(logits, targets, G4, alpha, beta, kl), rel=1e-5)


@pytest.mark.parametrize("kl", ["reverse", "forward"])
def test_float64_soft_labels_give_float64_exact_loss(batch, kl):
    logits, targets = batch
    g = G4.double()
    loss = KESLLoss(g, alpha=0.5, beta=2.0, kl=kl)(logits.double(), targets)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(reference_loss(logits, targets, g, 0.5, 2.0, kl), rel=1e-12)


def test_reverse_and_forward_differ(batch):
    logits, targets = batch
    reverse = KESLLoss(G4, alpha=0, beta=1, kl="reverse")(logits, targets)
    forward = KESLLoss(G4, alpha=0, beta=1, kl="forward")(logits, targets)
    assert abs(float(reverse) - float(forward)) > 1e-3


def test_batch_mean_of_per_sample_losses(batch):
    logits, targets = batch
    loss = KESLLoss(G4)
    each = torch.stack([loss(logits[i:i + 1], targets[i:i + 1]) for i in range(len(targets))])
    torch.testing.assert_close(loss(logits, targets), each.mean())


@pytest.mark.parametrize("kl", ["reverse", "forward"])
def test_kl_is_zero_when_prediction_equals_soft_label(kl):
    targets = torch.tensor([0, 1, 2, 3, 2])
    g = G4.double() / G4.double().sum(dim=1, keepdim=True)  # rows sum to 1 in float64 too
    loss = KESLLoss(g, alpha=0.0, beta=1.0, kl=kl)(g.log()[targets] + 5.0, targets)
    assert abs(float(loss)) < 1e-12
    loss32 = KESLLoss(G4, alpha=0.0, beta=1.0, kl=kl)(G4.log()[targets], targets)
    assert abs(float(loss32)) < 1e-6


@pytest.mark.parametrize("kl", ["reverse", "forward"])
def test_gradcheck_float64(batch, kl):
    logits, targets = batch
    loss = KESLLoss(G4.double(), alpha=0.7, beta=1.3, kl=kl)
    logits = logits.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda s: loss(s, targets), (logits,))


def test_one_hot_soft_labels_stay_finite():
    # T so large that g underflows to exactly 0 off the diagonal: log g is clamped, not -inf.
    g = soft_label_matrix(E4, 0.5, 1e6)
    assert torch.equal(g, torch.eye(4))
    logits, targets = torch.randn(3, 4), torch.tensor([0, 1, 2])
    for kl in ("reverse", "forward"):
        loss = KESLLoss(g, kl=kl)(logits.requires_grad_(), targets)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    forward = KESLLoss(g, alpha=0.0, beta=1.0, kl="forward")(logits, targets)
    torch.testing.assert_close(forward, F.cross_entropy(logits, targets))


def test_soft_labels_are_buffers_in_state_dict():
    loss = KESLLoss(G4, alpha=0.5, beta=2.0)
    state = loss.state_dict()
    assert set(state) == {"soft_labels", "log_soft_labels"}
    torch.testing.assert_close(state["soft_labels"], G4)
    torch.testing.assert_close(state["log_soft_labels"], G4.log())
    restored = KESLLoss(torch.full((4, 4), 0.25))
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.soft_labels, G4)


def test_buffers_follow_to_device():
    loss = KESLLoss(G4).to("meta")
    assert loss.soft_labels.device.type == "meta" and loss.log_soft_labels.device.type == "meta"
    if torch.cuda.is_available():
        loss = KESLLoss(G4).to("cuda")
        value = loss(torch.randn(3, 4, device="cuda"), torch.tensor([0, 1, 2], device="cuda"))
        assert value.device.type == "cuda"


def test_works_under_cpu_autocast_and_returns_float32(batch):
    logits, targets = batch
    model = nn.Linear(4, 4)
    loss = KESLLoss(G4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_precision_logits = model(logits)
        assert low_precision_logits.dtype == torch.bfloat16
        value = loss(low_precision_logits, targets)
    assert value.dtype == torch.float32
    expected = loss(low_precision_logits.float(), targets)
    torch.testing.assert_close(value, expected, rtol=0, atol=0)
    value.backward()
    assert torch.isfinite(model.weight.grad).all()


def test_accepts_numpy_soft_labels_and_int32_targets(batch):
    logits, targets = batch
    expected = KESLLoss(G4)(logits, targets)
    torch.testing.assert_close(KESLLoss(G4.numpy())(logits, targets.int()), expected)


def test_repr_names_settings():
    assert repr(KESLLoss(G4, alpha=0.5, beta=2, kl="forward")) == \
        "KESLLoss(num_classes=4, alpha=0.5, beta=2, kl='forward')"


@pytest.mark.parametrize("kwargs,message", [
    (dict(alpha=-1.0), r"alpha \(α\) must be a finite real number ≥ 0"),
    (dict(beta=-0.1), r"beta \(β\) must be a finite real number ≥ 0"),
    (dict(beta=float("nan")), r"beta \(β\) must be a finite real number ≥ 0, got nan"),
    (dict(alpha="1"), r"alpha \(α\) must be a finite real number ≥ 0, got '1'"),
    (dict(alpha=0.0, beta=0.0), r"alpha \(α\) and beta \(β\) must not both be zero"),
    (dict(kl="sideways"), r"kl='sideways' is not allowed; expected one of 'reverse', 'forward'"),
])
def test_rejects_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KESLLoss(G4, **kwargs)


@pytest.mark.parametrize("g,message", [
    (torch.full((3, 4), 0.25), r"soft_labels must be a non-empty square \(n, n\) matrix, got shape \(3, 4\)"),
    (torch.ones(4), r"soft_labels must be a non-empty square"),
    (torch.full((4, 4), 0.3), r"soft_labels rows must sum to 1 \(within 0.0001\); row 0 sums to 1.2"),
    (torch.tensor([[1.5, -0.5], [0.5, 0.5]]), r"soft_labels must hold finite, non-negative"),
    (torch.tensor([[float("nan"), 1.0], [0.5, 0.5]]), r"soft_labels must hold finite, non-negative"),
])
def test_rejects_invalid_soft_labels(g, message):
    with pytest.raises(ValueError, match=message):
        KESLLoss(g)


def test_rejects_invalid_inputs(batch):
    logits, targets = batch
    loss = KESLLoss(G4)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\] \(logits have 4 columns\), got values in \[0, 4\]"):
        loss(logits, torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\] \(logits have 4 columns\), got values in \[-1, 3\]"):
        loss(logits, torch.tensor([0, 1, 2, 3, -1, 0]))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 4\).*got \(6, 5\)"):
        loss(torch.randn(6, 5), targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(6,\)"):
        loss(logits, targets[:5])
    with pytest.raises(ValueError, match=r"targets must be integer class indices"):
        loss(logits, targets.float())


def four_leaf_hierarchy():
    """The hand-drawn tree of E4: root → {a, b}, a → {a1, a2}, b → {b1, b2}."""
    from kesl_utils.hierarchy import Hierarchy

    return Hierarchy.from_edges([("r", "a"), ("r", "b"), ("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")],
                                ["a1", "a2", "b1", "b2"])


def test_build_loss_from_the_registry():
    logits, targets = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    h = four_leaf_hierarchy()
    assert np.array_equal(h.edge_distances(), E4)
    ce = build_loss("ce")
    assert type(ce) is nn.CrossEntropyLoss
    torch.testing.assert_close(ce(logits, targets), F.cross_entropy(logits, targets))
    smoothing = build_loss("label_smoothing", epsilon=0.2)
    assert type(smoothing) is nn.CrossEntropyLoss and smoothing.label_smoothing == 0.2
    torch.testing.assert_close(smoothing(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.2))
    kesl = build_loss("kesl", h, alpha=0.5, beta=2.0, kl="forward")
    assert isinstance(kesl, KESLLoss) and (kesl.alpha, kesl.beta, kesl.kl) == (0.5, 2.0, "forward")
    torch.testing.assert_close(kesl.soft_labels, G4)  # λ 0.5, T 2: the registry's defaults
    assert LOSSES["kesl"].defaults == {"lam": 0.5, "T": 2.0, "alpha": 1.0, "beta": 0.1, "kl": "reverse",
                                       "distance": "edges"}


def test_build_loss_rejects_bad_arguments():
    h = four_leaf_hierarchy()
    with pytest.raises(ValueError, match=r"unknown loss 'focal'; registered losses: 'ce', 'label_smoothing', 'kesl'"):
        build_loss("focal")
    with pytest.raises(ValueError, match=r"loss 'kesl' needs the class hierarchy"):
        build_loss("kesl")
    with pytest.raises(ValueError, match=r"epsilon \(ε\) must be a real number in \[0, 1\)"):
        build_loss("label_smoothing", epsilon=1.5)
    with pytest.raises(ValueError, match=r"kl=.both. is not allowed"):
        build_loss("kesl", h, kl="both")
    with pytest.raises(ValueError, match=r"'T' is a parameter of 'kesl'"):
        build_loss("ce", T=2.0)


def test_numpy_targets_are_a_type_error():
    with pytest.raises(TypeError, match=r"targets must be a torch.Tensor, got ndarray"):
        KESLLoss(G4)(torch.randn(2, 4), np.array([0, 1]))


def test_the_wrong_argument_types_say_what_was_expected():
    """Issue 23: KESLLoss(hierarchy) said "Could not infer dtype of Hierarchy", build_loss("kesl", g) raised an
    AttributeError."""
    h = four_leaf_hierarchy()
    with pytest.raises(TypeError, match=r"KESLLoss\(soft_labels\): the argument soft_labels is the \(n, n\) "
                                        r"soft-label matrix g, got a Hierarchy; build g with soft_label_matrix"):
        KESLLoss(h)
    with pytest.raises(TypeError, match=r"soft_labels must be an \(n, n\) tensor, array or nested list .*got str"):
        KESLLoss("g.csv")
    with pytest.raises(TypeError, match=r"build_loss\('kesl', hierarchy\): the argument hierarchy must be a "
                                        r"kesl_utils.hierarchy.Hierarchy, got Tensor; .* use KESLLoss\(g"):
        build_loss("kesl", G4)
    with pytest.raises(TypeError, match=r"build_loss\('hxe', hierarchy\): .* got ndarray$"):
        build_loss("hxe", E4)
