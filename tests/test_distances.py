"""kesl_utils.distances: exact e_ij and LCA heights on hand-drawn trees and DAGs, and on random
graphs against a brute-force count. The shipped hierarchies are checked in
test_shipped_hierarchies.py.
"""
from __future__ import annotations

import ast
import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from kesl_utils import distances as D
from kesl_utils.hierarchy import Hierarchy
from test_hierarchy import D1_CLASSES, D1_E, T1_CLASSES, T1_E, T1_EDGES, d1, random_hierarchy, t1

# LCA heights of the hand-drawn tree T1 (see test_hierarchy.py). Heights: a-e 0; A1, A2, B1 1;
# A 2; B 2 (B-B1-d, the longer of its two paths down); root 3.
T1_LCA = np.array([
    # a  b  c  d  e
    [0, 1, 2, 3, 3],  # a-b under A1; a-c under A; d, e only under the root
    [1, 0, 2, 3, 3],
    [2, 2, 0, 3, 3],
    [3, 3, 3, 0, 2],  # d-e under B, height 2 although e is B's child
    [3, 3, 3, 2, 0],
])

# D1 (classes m, s, t): heights q 1, r 1, p 2, root 3. m and s meet under q (m's second parent),
# m and t under r; s and t only under the root.
D1_LCA = np.array([[0, 1, 1], [1, 0, 3], [1, 3, 0]])

# Hand-drawn DAG D2, where the common ancestor of least height is not the deepest one:
#
#   root ─┬─ K ─┬─ u            heights: u, v, w 0; N 1; K 1; M 2; L 3; root 4
#         │     └─ v
#         └─ L ─┬─ M ─┬─ N ── u
#               │     └─ v
#               └─ w
# u and v meet under K (depth 1, height 1) and under M (depth 2, height 2): the LCA height is 1.
D2_EDGES = [("root", "K"), ("root", "L"), ("K", "u"), ("K", "v"), ("L", "M"), ("M", "N"),
            ("N", "u"), ("M", "v"), ("L", "w")]
D2_CLASSES = ["u", "v", "w"]
D2_LCA = np.array([[0, 1, 3], [1, 0, 3], [3, 3, 0]])


def reference_distances(h: Hierarchy) -> np.ndarray:
    undirected = h.graph.to_undirected()
    return np.array([[nx.shortest_path_length(undirected, a, b) for b in h.classes]
                     for a in h.classes])


def reference_lca_heights(h: Hierarchy) -> np.ndarray:
    """Pair by pair, from every simple downward path (small graphs only)."""
    classes = set(h.classes)
    height = {v: max((len(p) - 1 for c in classes for p in nx.all_simple_paths(h.graph, v, c)),
                     default=0) for v in h.graph}
    ancestors = {c: nx.ancestors(h.graph, c) | {c} for c in h.classes}
    return np.array([[min(height[v] for v in ancestors[a] & ancestors[b]) for b in h.classes]
                     for a in h.classes])


# ---------------------------------------------------------------- e_ij
def test_tree_distances_exact():
    e = D.edge_distances(t1())
    assert e.dtype == np.int16 and e.shape == (5, 5)
    np.testing.assert_array_equal(e, T1_E)


def test_tree_distances_follow_class_order():
    order = ["e", "c", "a", "d", "b"]
    h = Hierarchy.from_edges(T1_EDGES, order)
    idx = [T1_CLASSES.index(c) for c in order]
    np.testing.assert_array_equal(h.edge_distances(), T1_E[np.ix_(idx, idx)])


def test_dag_distance_goes_through_second_parent():
    h = d1()
    assert not h.is_tree
    assert h.depth("m") == 2 and h.parent("m") == "r"
    e = h.edge_distances()
    np.testing.assert_array_equal(e, D1_E)
    # Both DAG algorithms agree with the hand count.
    np.testing.assert_array_equal(D._bfs_lengths(h, h.classes, h.classes, np.int16), D1_E)
    np.testing.assert_array_equal(D._spanning_tree_distances(h, np.int16, ["m"]), D1_E)


def test_dag_distance_diamond():
    # root → x → {u, v} → w; classes w and a sibling leaf z under u.
    h = Hierarchy.from_edges([("root", "x"), ("x", "u"), ("x", "v"), ("u", "w"), ("v", "w"),
                              ("u", "z"), ("root", "y")], ["w", "z", "y"])
    np.testing.assert_array_equal(h.edge_distances(), [[0, 2, 4], [2, 0, 4], [4, 4, 0]])


@pytest.mark.parametrize("seed", range(6))
def test_random_trees_match_networkx(seed):
    h = random_hierarchy(seed)
    assert h.is_tree
    np.testing.assert_array_equal(h.edge_distances(), reference_distances(h))


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_match_networkx_both_algorithms(seed):
    h = random_hierarchy(seed, n_nodes=50, extra_parents=8)
    assert not h.is_tree
    ref = reference_distances(h)
    np.testing.assert_array_equal(h.edge_distances(), ref)
    np.testing.assert_array_equal(D._bfs_lengths(h, h.classes, h.classes, np.int16), ref)
    multi = sorted(v for v in h.graph if h.graph.in_degree(v) > 1)
    np.testing.assert_array_equal(D._spanning_tree_distances(h, np.int16, multi), ref)


def test_bfs_in_blocks(monkeypatch):
    monkeypatch.setattr(D, "_BFS_BLOCK", 3)
    h = random_hierarchy(11, n_nodes=60, extra_parents=10)
    np.testing.assert_array_equal(D._bfs_lengths(h, h.classes, h.classes, np.int16),
                                  reference_distances(h))


def test_distances_symmetric_zero_diagonal_positive():
    for h in (t1(), d1(), random_hierarchy(3, extra_parents=5)):
        e = h.edge_distances()
        assert (e == e.T).all() and (np.diag(e) == 0).all()
        assert (e[~np.eye(h.num_classes, dtype=bool)] >= 2).all()  # no class above a class


def test_hierarchy_methods_delegate():
    h = Hierarchy.from_edges(D2_EDGES, D2_CLASSES)
    np.testing.assert_array_equal(h.edge_distances(), D.edge_distances(h))
    np.testing.assert_array_equal(h.lca_heights(), D.lca_heights(h))


# ---------------------------------------------------------------- LCA heights
def test_node_heights_longest_path_down_to_a_class():
    assert D.node_heights(t1()) == {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "A1": 1, "A2": 1,
                                    "B1": 1, "A": 2, "B": 2, "root": 3}
    # Leaves that are not classes do not count, and nodes with no class below have no height.
    assert D.node_heights(Hierarchy.from_edges(T1_EDGES, ["a", "d"])) == {
        "a": 0, "d": 0, "A1": 1, "B1": 1, "A": 2, "B": 2, "root": 3}
    assert D.node_heights(Hierarchy.from_edges(D2_EDGES, D2_CLASSES)) == {
        "u": 0, "v": 0, "w": 0, "N": 1, "K": 1, "M": 2, "L": 3, "root": 4}


def test_lca_heights_tree_exact():
    lca = D.lca_heights(t1())
    assert lca.shape == (5, 5) and np.issubdtype(lca.dtype, np.integer)
    np.testing.assert_array_equal(lca, T1_LCA)


def test_lca_heights_dag_exact():
    np.testing.assert_array_equal(D.lca_heights(d1()), D1_LCA)
    assert d1().classes == D1_CLASSES


def test_lca_heights_dag_least_height_not_deepest_ancestor():
    h = Hierarchy.from_edges(D2_EDGES, D2_CLASSES)
    assert h.depth("M") == 2 and h.depth("K") == 1  # M is the deeper common ancestor of u, v
    np.testing.assert_array_equal(D.lca_heights(h), D2_LCA)


def test_lca_heights_follow_class_order():
    order = ["e", "c", "a", "d", "b"]
    idx = [T1_CLASSES.index(c) for c in order]
    np.testing.assert_array_equal(D.lca_heights(Hierarchy.from_edges(T1_EDGES, order)),
                                  T1_LCA[np.ix_(idx, idx)])


@pytest.mark.parametrize("seed, extra_parents", list(itertools.product(range(4), (0, 8))))
def test_lca_heights_random_match_brute_force(seed, extra_parents):
    h = random_hierarchy(seed, n_nodes=40, extra_parents=extra_parents)
    np.testing.assert_array_equal(D.lca_heights(h), reference_lca_heights(h))


def test_lca_heights_symmetric_zero_diagonal_bounded():
    for h in (t1(), d1(), Hierarchy.from_edges(D2_EDGES, D2_CLASSES),
              random_hierarchy(3, extra_parents=5)):
        lca = D.lca_heights(h)
        top = D.node_heights(h)[h.root]
        off = lca[~np.eye(h.num_classes, dtype=bool)]
        assert (lca == lca.T).all() and (np.diag(lca) == 0).all()
        assert off.min() >= 1 and off.max() <= top


# ---------------------------------------------------------------- caching and layering
def test_distances_computed_once_per_hierarchy(monkeypatch):
    calls = {"edge_distances": 0, "node_heights": 0, "lca_heights": 0}

    def counting(name):
        compute = getattr(D, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return compute(*args, **kwargs)
        return counted

    for name in calls:
        monkeypatch.setattr(D, name, counting(name))
    h = t1()
    for _ in range(3):
        np.testing.assert_array_equal(h.edge_distances(), T1_E)
        np.testing.assert_array_equal(h.lca_heights(), T1_LCA)
        assert h.node_heights()["root"] == 3
    # lca_heights reuses the cached node heights instead of computing its own.
    assert calls == {"edge_distances": 1, "node_heights": 1, "lca_heights": 1}
    t1().edge_distances()  # another hierarchy computes its own
    assert calls["edge_distances"] == 2


def test_cached_distances_are_handed_out_as_writable_copies():
    h = d1()
    e, lca, heights = h.edge_distances(), h.lca_heights(), h.node_heights()
    assert e.flags.writeable and lca.flags.writeable and e is not h.edge_distances()
    e[0, 1], lca[0, 1], heights["root"] = 99, 99, 99  # the caller's copies only
    np.testing.assert_array_equal(h.edge_distances(), D1_E)
    np.testing.assert_array_equal(h.lca_heights(), D1_LCA)
    assert h.node_heights()["root"] == 3
    # torch.as_tensor shares memory with a numpy array and warns on a read-only one: none here.
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.as_tensor(h.lca_heights()).tolist() == D1_LCA.tolist()


def test_distances_module_does_not_import_the_hierarchy():
    # One-way layers: distances reads a ClassGraph (graph, classes, depth, ...), the hierarchy
    # imports distances, never the other way; the hierarchy imports none of the file layers.
    code = ("import sys\n"
            "import kesl_utils.distances\n"
            "print(sorted(m for m in sys.modules if m.startswith('kesl_utils.')))\n"
            "import kesl_utils.hierarchy\n"
            "print(sorted(m for m in sys.modules if m.startswith('kesl_utils.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(D.__file__).resolve().parent.parent, check=True)
    after_distances, after_hierarchy = map(ast.literal_eval, done.stdout.splitlines())
    assert after_distances == ["kesl_utils.distances"]  # so no kesl_utils.hierarchy
    assert "kesl_utils.hierarchy" in after_hierarchy
    assert not {"kesl_utils.hierarchy_files", "kesl_utils.wordnet_subnets",
                "kesl_utils.wordnet"} & set(after_hierarchy)
