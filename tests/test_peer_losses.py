"""The losses KESL competes with (Bertinetto et al., "Making Better Mistakes", CVPR 2020): the soft
labels ("mbm") and the hierarchical cross-entropy ("hxe"), against float64 references written from
the formulas on hand-drawn hierarchies."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kesl_utils.config import Config
from kesl_utils.hierarchy import Hierarchy
from kesl_utils.hierarchy_files import load_hierarchy
from kesl_utils.losses import LOSSES, HXELoss, MBMLoss, build_loss, mbm_soft_labels

# Balanced tree:  root ─┬─ A ─┬─ a1
#                       │     └─ a2
#                       └─ B ─┬─ b1
#                             ├─ b2
#                             └─ b3
BALANCED_PARENT = {"A": "root", "B": "root", "a1": "A", "a2": "A", "b1": "B", "b2": "B", "b3": "B"}
BALANCED_CLASSES = ["a1", "a2", "b1", "b2", "b3"]
# LCA heights: 1 within A or B, 2 across (the root).
BALANCED_LCA = [[0, 1, 2, 2, 2],
                [1, 0, 2, 2, 2],
                [2, 2, 0, 1, 1],
                [2, 2, 1, 0, 1],
                [2, 2, 1, 1, 0]]

# Unbalanced tree, classes at depths 1 to 4 and a node with a single child (N3):
#   root ─┬─ c1
#         └─ N1 ─┬─ c2
#                ├─ N2 ─┬─ c3
#                │      └─ c4
#                └─ N3 ── N4 ─┬─ c5
#                             └─ c6
UNBALANCED_PARENT = {"c1": "root", "N1": "root", "c2": "N1", "N2": "N1", "N3": "N1", "c3": "N2", "c4": "N2",
                     "N4": "N3", "c5": "N4", "c6": "N4"}
UNBALANCED_CLASSES = ["c4", "c1", "c6", "c2", "c5", "c3"]  # label order differs from the drawing


def tree(parent: dict, classes: list) -> Hierarchy:
    return Hierarchy.from_edges([(p, c) for c, p in parent.items()], classes)


TREES = {"balanced": (BALANCED_PARENT, BALANCED_CLASSES), "unbalanced": (UNBALANCED_PARENT, UNBALANCED_CLASSES)}


def batch(n_classes: int, n: int = 7, seed: int = 0, scale: float = 3.0):
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, n_classes, generator=generator)
    targets = torch.arange(n) % n_classes
    return logits, targets


def softmax_list(row) -> list:
    z = sum(math.exp(v) for v in row)
    return [math.exp(v) / z for v in row]


# -- float64 references, straight from the formulas (per-sample loops) ---------------------------
def path_to_root(parent: dict, node) -> list:
    path = [node]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    return path  # node, …, root


def lca_height_reference(parent: dict, classes: list) -> np.ndarray:
    """h(i, j): the longest downward path from the lowest common ancestor to a class below it."""
    children = {}
    for child, p in parent.items():
        children.setdefault(p, []).append(child)

    def height(v):
        return 0 if v not in children else 1 + max(height(c) for c in children[v])

    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            up = path_to_root(parent, b)
            out[i, j] = height(next(v for v in path_to_root(parent, a) if v in up))
    return out


def mbm_reference(logits, targets, distances, hardness) -> float:
    d = np.asarray(distances, dtype=float)
    largest = d.max()
    total = 0.0
    for s, y in zip(logits.double().tolist(), targets.tolist()):
        weights = [math.exp(-hardness * d[y, j] / largest) for j in range(len(s))]
        q = [w / sum(weights) for w in weights]
        p = softmax_list(s)
        total += -sum(qj * math.log(pj) for qj, pj in zip(q, p))
    return total / len(targets)


def hxe_reference(parent: dict, classes: list, logits, targets, decay) -> float:
    """−Σ_l exp(−α·depth(C⁽ˡ⁾)) · log(p(C⁽ˡ⁾) / p(C⁽ˡ⁺¹⁾)) along the path of the true class."""
    below = {}
    for k, c in enumerate(classes):
        for v in path_to_root(parent, c):
            below.setdefault(v, []).append(k)
    total = 0.0
    for s, y in zip(logits.double().tolist(), targets.tolist()):
        p = softmax_list(s)
        path = path_to_root(parent, classes[y])
        for node, up in zip(path, path[1:]):
            depth = len(path_to_root(parent, node)) - 1
            conditional = sum(p[k] for k in below[node]) / sum(p[k] for k in below[up])
            total += -math.exp(-decay * depth) * math.log(conditional)
    return total / len(targets)


def test_reference_lca_heights_match_the_hierarchy():
    for parent, classes in TREES.values():
        assert np.array_equal(tree(parent, classes).lca_heights(), lca_height_reference(parent, classes))
    assert lca_height_reference(BALANCED_PARENT, BALANCED_CLASSES).tolist() == BALANCED_LCA


# -- MBM soft labels ------------------------------------------------------------------------------
def test_mbm_soft_labels_hand_values():
    # β = 2 and max h = 2: target_j(y) ∝ exp(−h(y, j)).
    g = mbm_soft_labels(BALANCED_LCA, 2.0)
    assert g.dtype == torch.float64 and g.shape == (5, 5)
    e1, e2 = math.exp(-1), math.exp(-2)
    za, zb = 1 + e1 + 3 * e2, 1 + 2 * e1 + 2 * e2
    expected = [[1 / za, e1 / za, e2 / za, e2 / za, e2 / za],
                [e1 / za, 1 / za, e2 / za, e2 / za, e2 / za],
                [e2 / zb, e2 / zb, 1 / zb, e1 / zb, e1 / zb],
                [e2 / zb, e2 / zb, e1 / zb, 1 / zb, e1 / zb],
                [e2 / zb, e2 / zb, e1 / zb, e1 / zb, 1 / zb]]
    torch.testing.assert_close(g, torch.tensor(expected, dtype=torch.float64), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(TREES))
@pytest.mark.parametrize("hardness", [0.5, 4.0, 30.0])
def test_mbm_rows_sum_to_one_and_peak_on_the_true_class(name, hardness):
    g = mbm_soft_labels(tree(*TREES[name]).lca_heights(), hardness)
    torch.testing.assert_close(g.sum(dim=1), torch.ones(len(g), dtype=torch.float64), rtol=0, atol=1e-15)
    off_diagonal = g.masked_fill(torch.eye(len(g), dtype=torch.bool), -1.0)
    assert bool((g.diagonal() > off_diagonal.max(dim=1).values).all())


def test_mbm_divides_by_the_largest_distance():
    # The authors' normalisation: the target depends on h / max h only.
    h = np.array(BALANCED_LCA)
    torch.testing.assert_close(mbm_soft_labels(3 * h, 7.0), mbm_soft_labels(h, 7.0), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(TREES))
@pytest.mark.parametrize("hardness", [1.0, 4.0, 30.0])
def test_mbm_matches_float64_reference(name, hardness):
    h = tree(*TREES[name]).lca_heights()
    logits, targets = batch(h.shape[0])
    expected = mbm_reference(logits, targets, h, hardness)
    loss32 = MBMLoss(h, hardness)(logits, targets)
    assert loss32.dtype == torch.float32 and loss32.ndim == 0
    assert float(loss32) == pytest.approx(expected, rel=1e-5)
    loss64 = MBMLoss(h.astype(np.float64), hardness)(logits.double(), targets)
    assert loss64.dtype == torch.float64
    assert float(loss64) == pytest.approx(expected, rel=1e-12)


def test_mbm_large_hardness_is_cross_entropy():
    h = tree(*TREES["unbalanced"]).lca_heights()
    loss = MBMLoss(h, hardness=1e4)
    assert torch.equal(loss.soft_labels, torch.eye(6))  # exp(−1e4 · h / 4) underflows to 0
    logits, targets = batch(6)
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets), rtol=1e-6, atol=1e-6)


def test_mbm_buffer_dtype_and_state_dict():
    h = np.array(BALANCED_LCA)
    assert MBMLoss(h).soft_labels.dtype == torch.float32  # integer heights
    assert MBMLoss(h.astype(np.float64)).soft_labels.dtype == torch.float64
    assert MBMLoss(torch.tensor(BALANCED_LCA, dtype=torch.float64)).soft_labels.dtype == torch.float64
    loss = MBMLoss(h, 2.0)
    assert set(loss.state_dict()) == {"soft_labels"}
    torch.testing.assert_close(loss.state_dict()["soft_labels"], mbm_soft_labels(h, 2.0).float())
    assert repr(loss) == "MBMLoss(num_classes=5, hardness=2)"


def test_mbm_gradcheck_float64():
    h = tree(*TREES["unbalanced"]).lca_heights().astype(np.float64)
    loss = MBMLoss(h, 4.0)
    logits, targets = batch(6)
    assert torch.autograd.gradcheck(lambda s: loss(s, targets), (logits.double().requires_grad_(),))


@pytest.mark.parametrize("hardness", [0.0, -1.0, math.nan, math.inf, "3"])
def test_mbm_rejects_invalid_hardness(hardness):
    with pytest.raises(ValueError, match=r"hardness must be a finite real number > 0"):
        MBMLoss(BALANCED_LCA, hardness)


@pytest.mark.parametrize("distances,message", [
    ([[0, 1, 2], [1, 0, 2]], r"distances must be a non-empty square \(n, n\) matrix, got shape \(2, 3\)"),
    ([[1, 1], [1, 0]], r"zero diagonal"),
    ([[0, -1], [-1, 0]], r"non-negative"),
    ([[0, math.nan], [1, 0]], r"finite"),
])
def test_mbm_rejects_invalid_distances(distances, message):
    with pytest.raises(ValueError, match=message):
        MBMLoss(distances, 4.0)


# -- HXE ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TREES))
@pytest.mark.parametrize("decay", [0.1, 0.7])
def test_hxe_matches_float64_reference(name, decay):
    parent, classes = TREES[name]
    logits, targets = batch(len(classes))
    expected = hxe_reference(parent, classes, logits, targets, decay)
    loss = HXELoss(tree(parent, classes), decay)
    loss32 = loss(logits, targets)
    assert loss32.dtype == torch.float32 and loss32.ndim == 0
    assert float(loss32) == pytest.approx(expected, rel=1e-5)
    loss64 = loss(logits.double(), targets)
    assert loss64.dtype == torch.float64
    assert float(loss64) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(TREES))
def test_hxe_decay_zero_is_cross_entropy(name):
    loss = HXELoss(tree(*TREES[name]), decay=0.0)
    logits, targets = batch(len(TREES[name][1]), n=11, seed=3)
    logits64 = logits.double()
    torch.testing.assert_close(loss(logits64, targets), F.cross_entropy(logits64, targets), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets), rtol=1e-6, atol=1e-6)


def test_hxe_edge_weights_decay_with_depth_from_the_root():
    alpha = 0.3
    loss = HXELoss(tree(*TREES["unbalanced"]), alpha)
    column = loss.nodes.index
    w = [math.exp(-alpha * depth) for depth in range(5)]  # w[d]: the edge into a node at depth d
    # c5's path root → N1 → N3 → N4 → c5: −Σ w(C) (log p(C) − log p(parent)); log p(root) = 0.
    expected = torch.zeros(len(loss.nodes), dtype=torch.float64)
    expected[column("c5")] = -w[4]
    expected[column("N4")] = w[4] - w[3]
    expected[column("N3")] = w[3] - w[2]
    expected[column("N1")] = w[2] - w[1]
    c5 = UNBALANCED_CLASSES.index("c5")
    torch.testing.assert_close(loss.path_coefficients[c5], expected, rtol=1e-15, atol=0)
    # c1 hangs from the root: −w(1) log p(c1).
    c1 = UNBALANCED_CLASSES.index("c1")
    assert loss.path_coefficients[c1].nonzero().flatten().tolist() == [c1]
    assert float(loss.path_coefficients[c1, c1]) == -w[1]
    assert loss.paths[c5] == ("root", "N1", "N3", "N4", "c5")


def test_hxe_node_probabilities_sum_the_leaves_below():
    loss = HXELoss(tree(*TREES["unbalanced"]), 0.1)
    logits, _ = batch(6, n=4, seed=5)
    p = torch.softmax(logits.double(), dim=1)
    node_p = loss.node_log_probabilities(logits.double()).exp()
    index = {c: k for k, c in enumerate(UNBALANCED_CLASSES)}
    for node, leaves in {"N2": ["c3", "c4"], "N4": ["c5", "c6"], "N3": ["c5", "c6"],
                         "N1": ["c2", "c3", "c4", "c5", "c6"]}.items():
        torch.testing.assert_close(node_p[:, loss.nodes.index(node)], p[:, [index[c] for c in leaves]].sum(dim=1),
                                   rtol=1e-13, atol=0)
    assert loss.nodes[:6] == tuple(UNBALANCED_CLASSES) and "root" not in loss.nodes


@pytest.mark.parametrize("name", sorted(TREES))
def test_hxe_gradcheck_float64(name):
    loss = HXELoss(tree(*TREES[name]), 0.4)
    logits, targets = batch(len(TREES[name][1]))
    assert torch.autograd.gradcheck(lambda s: loss(s, targets), (logits.double().requires_grad_(),))


def test_hxe_is_stable_for_confident_wrong_predictions():
    # The true class (and its whole subtree) gets probability e^-1000: a float32 softmax underflows,
    # the log-space computation does not.
    loss = HXELoss(tree(*TREES["unbalanced"]), 0.0)
    logits = torch.zeros(2, 6)
    logits[:, UNBALANCED_CLASSES.index("c1")] = 1000.0
    targets = torch.tensor([UNBALANCED_CLASSES.index("c5"), UNBALANCED_CLASSES.index("c3")])
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets))
    logits.requires_grad_()
    value = HXELoss(tree(*TREES["unbalanced"]), 0.5)(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


# A DAG where the spanning tree matters: x hangs from A (depth 1) and from C (depth 2), y from A
# and B (both depth 1, the tie goes to the smaller id A).
#   root ─┬─ A ─┬─ a1
#         │     ├─ x
#         │     └─ y
#         └─ B ─┬─ b1
#               ├─ y
#               └─ C ─┬─ c1
#                     └─ x
DAG_EDGES = [("root", "A"), ("root", "B"), ("A", "a1"), ("A", "x"), ("A", "y"), ("B", "b1"), ("B", "y"),
             ("B", "C"), ("C", "c1"), ("C", "x")]
DAG_CLASSES = ["x", "a1", "b1", "c1", "y"]
CANONICAL_PARENT = {"A": "root", "B": "root", "a1": "A", "x": "A", "y": "A", "b1": "B", "C": "B", "c1": "C"}
OTHER_PARENT = {**CANONICAL_PARENT, "x": "C", "y": "B"}


@pytest.mark.parametrize("decay", [0.3, 1.0])
def test_hxe_on_a_dag_uses_the_canonical_spanning_tree(decay):
    h = Hierarchy.from_edges(DAG_EDGES, DAG_CLASSES)
    assert not h.is_tree
    loss = HXELoss(h, decay)
    logits, targets = batch(5, n=10, seed=1)
    expected = hxe_reference(CANONICAL_PARENT, DAG_CLASSES, logits, targets, decay)
    assert float(loss(logits.double(), targets)) == pytest.approx(expected, rel=1e-12)
    # The other choice of parents gives a different loss, so the test tells them apart.
    assert abs(hxe_reference(OTHER_PARENT, DAG_CLASSES, logits, targets, decay) - expected) > 1e-3
    assert loss.paths[0] == ("root", "A", "x") and loss.paths[4] == ("root", "A", "y")
    assert repr(loss) == f"HXELoss(num_classes=5, decay={decay:g}, tree='the canonical spanning tree of the DAG')"
    assert repr(HXELoss(tree(*TREES["balanced"]), 0.1)) == \
        "HXELoss(num_classes=5, decay=0.1, tree='the hierarchy (a tree)')"


@pytest.mark.parametrize("decay", [-0.1, math.nan, math.inf, "0.1"])
def test_hxe_rejects_invalid_decay(decay):
    with pytest.raises(ValueError, match=r"decay must be a finite real number ≥ 0"):
        HXELoss(tree(*TREES["balanced"]), decay)


@pytest.mark.parametrize("make", [lambda h: MBMLoss(h.lca_heights(), 4.0), lambda h: HXELoss(h, 0.2)])
def test_inputs_are_validated(make):
    loss = make(tree(*TREES["balanced"]))
    logits, targets = batch(5)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 5\)"):
        loss(torch.randn(3, 4), targets[:3])
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\]"):
        loss(logits[:2], torch.tensor([0, 5]))
    with pytest.raises(TypeError, match=r"targets must be a torch.Tensor"):
        loss(logits[:2], np.array([0, 1]))


@pytest.mark.parametrize("make", [lambda h: MBMLoss(h.lca_heights(), 4.0), lambda h: HXELoss(h, 0.2)])
def test_works_under_cpu_autocast_and_returns_float32(make):
    loss = make(tree(*TREES["balanced"]))
    logits, targets = batch(5)
    model = nn.Linear(5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(logits)
        assert low.dtype == torch.bfloat16
        value = loss(low, targets)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(low.float(), targets), rtol=0, atol=0)
    value.backward()
    assert torch.isfinite(model.weight.grad).all()


def test_buffers_follow_to_device():
    h = tree(*TREES["unbalanced"])
    hxe = HXELoss(h, 0.2).to("meta")
    assert {b.device.type for b in hxe.buffers()} == {"meta"}
    if torch.cuda.is_available():
        logits, targets = batch(6)
        for loss in (HXELoss(h, 0.2), MBMLoss(h.lca_heights(), 4.0)):
            value = loss.to("cuda")(logits.cuda(), targets.cuda())
            assert value.device.type == "cuda"
            torch.testing.assert_close(value.cpu(), loss.to("cpu")(logits, targets))


# -- through the registry and the Config -------------------------------------------------------------
def test_build_from_the_registry():
    h = tree(*TREES["unbalanced"])
    mbm = build_loss("mbm", h, hardness=4)
    assert type(mbm) is MBMLoss and mbm.hardness == 4.0
    torch.testing.assert_close(mbm.soft_labels, mbm_soft_labels(h.lca_heights(), 4.0).float())
    hxe = build_loss("hxe", h, decay=0.3)
    assert type(hxe) is HXELoss and hxe.decay == 0.3
    assert build_loss("mbm", h).hardness == 30.0 and build_loss("hxe", h).decay == 0.1
    assert LOSSES["mbm"].defaults == {"hardness": 30.0} and LOSSES["hxe"].defaults == {"decay": 0.1}
    with pytest.raises(ValueError, match=r"loss 'hxe' needs the class hierarchy"):
        build_loss("hxe")


@pytest.mark.parametrize("name,params,message", [
    ("mbm", {"hardness": -1.0}, r"hardness must be a finite real number > 0, got -1"),
    ("mbm", {"hardness": 0.0}, r"hardness must be a finite real number > 0, got 0"),
    ("mbm", {"hardness": math.inf}, r"hardness must be a finite real number > 0, got inf"),
    ("hxe", {"decay": math.nan}, r"decay must be a finite real number ≥ 0, got nan"),
    ("hxe", {"decay": math.inf}, r"decay must be a finite real number ≥ 0, got inf"),
    ("hxe", {"decay": -0.5}, r"decay must be a finite real number ≥ 0, got -0.5"),
    ("hxe", {"hardness": 4.0}, r"'hardness' is a parameter of 'mbm'"),
])
def test_registry_rejects_invalid_parameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        build_loss(name, tree(*TREES["balanced"]), **params)
    with pytest.raises(ValueError, match=r"Config.loss_params: .*" + message):
        Config(loss=name, loss_params=params)


def test_config_names_the_run_by_the_peer_loss_parameters():
    ten = Config(loss="mbm", loss_params={"hardness": 10})
    assert ten.loss_params == {"hardness": 10.0}
    assert ten.run_id.startswith("cub-resnet18-mbm-")
    assert ten.run_id != Config(loss="mbm", loss_params={"hardness": 20}).run_id
    assert ten.run_id != Config(loss="mbm").run_id
    assert Config(loss="mbm", loss_params={"hardness": 10.0}).run_id == ten.run_id
    hxe = Config(loss="hxe", loss_params={"decay": 0})
    assert hxe.loss_params == {"decay": 0.0} and hxe.run_id != Config(loss="hxe").run_id
    assert ten.replace(loss="hxe").loss_params == {"decay": 0.1}


# -- the shipped hierarchies ------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["cub", "mini_imagenet", "small_imagenet"])
def shipped(request):
    return request.param, load_hierarchy(request.param)


@pytest.mark.parametrize("name,params", [("mbm", {}), ("hxe", {}), ("hxe", {"decay": 0.6})])
def test_runs_on_the_shipped_hierarchies(shipped, name, params):
    dataset, h = shipped
    loss = build_loss(name, h, **params)
    logits, targets = batch(h.num_classes, n=128, seed=2)
    logits.requires_grad_()
    value = loss(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    if name == "hxe":
        assert loss.is_tree == (dataset == "cub")


def test_hxe_decay_zero_is_cross_entropy_on_the_shipped_hierarchies(shipped):
    _, h = shipped
    logits, targets = batch(h.num_classes, n=128, seed=4)
    logits = logits.double()
    torch.testing.assert_close(build_loss("hxe", h, decay=0.0)(logits, targets), F.cross_entropy(logits, targets),
                               rtol=1e-12, atol=1e-12)
