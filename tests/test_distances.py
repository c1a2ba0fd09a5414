"""kesl_utils.distances: exact e_ij and LCA heights on hand-drawn trees and DAGs, and on random
graphs against a brute-force count. The shipped hierarchies are checked in
test_shipped_hierarchies.py.
"""
from __future__ import annotations

import itertools

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
