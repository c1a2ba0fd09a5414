"""Distances between the classes of a class hierarchy (a :class:`~kesl_utils.hierarchy.Hierarchy`).

* :func:`edge_distances` — e_ij, the number of edges on the shortest *undirected* path between
  classes i and j (Yuan et al., ICPR 2020, Sec. III-A). :mod:`kesl_utils.soft_labels` turns it
  into c_ij = λ^(e_ij − 1) and g_ij = softmax_j(T c_ij); d_ij = e_ij − 1 is the mistake
  severity of :mod:`kesl_utils.metrics`.
* :func:`lca_heights` — the height of the lowest common ancestor of classes i and j, the mistake
  severity of Bertinetto et al., "Making Better Mistakes", CVPR 2020.

Both return an (n, n) integer matrix in label order (``hierarchy.classes``), symmetric, with a
zero diagonal. They read only what :class:`ClassGraph` names, so this module needs nothing from
:mod:`kesl_utils.hierarchy`; a ``Hierarchy`` computes each matrix once and caches it.
"""
from __future__ import annotations

from typing import Callable, Mapping, Protocol, Sequence

import networkx as nx
import numpy as np


class ClassGraph(Protocol):
    """What the distance functions read of a hierarchy (:class:`kesl_utils.hierarchy.Hierarchy`).

    ``graph``: acyclic parent → child ``networkx.DiGraph`` with the single root ``root``;
    ``classes``: class node ids in label order (``num_classes`` of them); ``depth(node)``: edges
    on the shortest path from the root; ``children(node)``: all children, sorted;
    ``canonical_children()``: children in a spanning tree of shortest root paths.
    """

    graph: nx.DiGraph
    classes: list[str]
    root: str

    @property
    def num_classes(self) -> int: ...

    @property
    def is_tree(self) -> bool: ...

    def depth(self, node: str) -> int: ...

    def children(self, node: str) -> list[str]: ...

    def canonical_children(self) -> dict[str, list[str]]: ...


# Rows of sources processed at once by the DAG breadth-first search; bounds its memory to
# about _BFS_BLOCK × (2·edges) bytes.
_BFS_BLOCK = 256


def _smallest_int(largest: int) -> type:
    return np.int16 if largest < np.iinfo(np.int16).max else np.int32


# ---------------------------------------------------------------------- e_ij
def edge_distances(hierarchy: ClassGraph) -> np.ndarray:
    """e_ij: edges on the shortest undirected path between classes i and j.

    Returns:
        ``numpy.ndarray`` of shape (n, n), dtype ``int16`` (``int32`` for hierarchies deeper
        than 16,000), symmetric, e_ii = 0. Convert before averaging in torch.

    Trees: e_ij = depth_i + depth_j − 2·depth(LCA), vectorised over the blocks of a depth-first
    ordering. DAGs: the shortest path may climb through a second parent, so
    e_ij = min(tree distance in the canonical spanning tree, min_s e_is + e_sj) over the nodes s
    with several parents (every path off the spanning tree passes through one), with e_is from
    a breadth-first search per such node; when there are many of them, a breadth-first search
    from every class, vectorised over classes with numpy.
    """
    graph = hierarchy.graph
    max_depth = max(hierarchy.depth(v) for v in graph)
    dtype = _smallest_int(max(2 * max_depth, graph.number_of_nodes()))
    if hierarchy.is_tree:
        return _tree_distances(hierarchy, dtype, hierarchy.children)
    multi_parent = sorted(v for v in graph if graph.in_degree(v) > 1)
    n, k = hierarchy.num_classes, len(multi_parent)
    bfs_cost = 4 * graph.number_of_edges() * max_depth  # per source
    if k < n and k * (n * n + bfs_cost) <= n * bfs_cost:
        return _spanning_tree_distances(hierarchy, dtype, multi_parent)
    return _bfs_lengths(hierarchy, hierarchy.classes, hierarchy.classes, dtype)


def _spanning_tree_distances(hierarchy: ClassGraph, dtype, via: Sequence[str]) -> np.ndarray:
    e = _tree_distances(hierarchy, dtype, hierarchy.canonical_children().__getitem__)
    to_classes = _bfs_lengths(hierarchy, via, hierarchy.classes, dtype)  # (k, n): e_sj
    for a in to_classes:
        np.minimum(e, a[:, None] + a[None, :], out=e)
    return e


def _tree_distances(hierarchy: ClassGraph, dtype,
                    children: Callable[[str], list[str]]) -> np.ndarray:
    # In a depth-first order the classes below any node form a contiguous range [lo, hi).
    # Every common ancestor of i and j other than the root contributes one block covering
    # (i, j), so subtracting 2 per node block from depth_i + depth_j leaves e_ij.
    # Cost: Σ_v |range(v)|² ≤ depth · n², as plain slice operations.
    n, root = hierarchy.num_classes, hierarchy.root
    index = {c: i for i, c in enumerate(hierarchy.classes)}
    position = np.empty(n, dtype=np.int64)
    ranges = []  # (lo, hi) per non-root node with classes below
    counter = 0
    stack = [(root, False)]
    start: dict[str, int] = {}
    while stack:
        node, leaving = stack.pop()
        if leaving:
            if node != root and counter > start[node]:
                ranges.append((start[node], counter))
            continue
        start[node] = counter
        if node in index:
            position[index[node]] = counter
            counter += 1
        stack.append((node, True))
        for child in reversed(children(node)):
            stack.append((child, False))
    depth_sorted = np.empty(n, dtype=dtype)
    depth_sorted[position] = [hierarchy.depth(c) for c in hierarchy.classes]
    e = depth_sorted[:, None] + depth_sorted[None, :]
    for lo, hi in ranges:
        e[lo:hi, lo:hi] -= 2
    if np.array_equal(position, np.arange(n)):
        return e
    return e[np.ix_(position, position)]


def _bfs_lengths(hierarchy: ClassGraph, sources: Sequence[str], targets: Sequence[str],
                 dtype) -> np.ndarray:
    """Undirected shortest-path lengths, shape (len(sources), len(targets)).

    Breadth-first search from all sources at once: the frontier is a boolean matrix
    (sources × nodes) and one step ORs each node's neighbour columns (``reduceat``).
    """
    graph = hierarchy.graph
    nodes = list(graph)
    node_index = {v: k for k, v in enumerate(nodes)}
    edges = np.array([(node_index[u], node_index[v]) for u, v in graph.edges()],
                     dtype=np.int64).reshape(-1, 2)
    # Undirected adjacency grouped by destination: the neighbours of node k are
    # src[starts[k]:starts[k+1]]; every node has one (connected, more than one node).
    both = np.concatenate([edges, edges[:, ::-1]])
    both = both[np.lexsort((both[:, 0], both[:, 1]))]
    src, dst = both[:, 0], both[:, 1]
    starts = np.searchsorted(dst, np.arange(len(nodes)))
    source_nodes = np.array([node_index[v] for v in sources], dtype=np.int64)
    target_nodes = np.array([node_index[v] for v in targets], dtype=np.int64)
    out = np.zeros((len(sources), len(targets)), dtype=dtype)
    if len(nodes) == 1:
        return out
    for lo in range(0, len(sources), _BFS_BLOCK):
        rows = np.arange(lo, min(lo + _BFS_BLOCK, len(sources)))
        frontier = np.zeros((len(rows), len(nodes)), dtype=bool)
        frontier[np.arange(len(rows)), source_nodes[rows]] = True
        visited = frontier.copy()
        found = frontier[:, target_nodes]
        block = np.zeros((len(rows), len(targets)), dtype=dtype)
        step = 0
        while not found.all():
            step += 1
            reached = np.logical_or.reduceat(frontier[:, src], starts, axis=1)
            frontier = reached & ~visited
            if not frontier.any():  # a validated Hierarchy is connected
                raise RuntimeError("the hierarchy's graph is not connected")
            visited |= frontier
            new = frontier[:, target_nodes]
            block[new] = step
            found |= new
        out[rows] = block
    return out


# ---------------------------------------------------------------------- LCA heights
def node_heights(hierarchy: ClassGraph) -> dict[str, int]:
    """The height of every node with a class below it: the longest downward path to a class.

    Classes have height 0; the root has the largest height. Nodes with no class below them
    (possible when not every leaf is a class) have no height and are left out.
    """
    graph, classes = hierarchy.graph, set(hierarchy.classes)
    height: dict[str, int] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        if node in classes:
            height[node] = 0
            continue
        below = [height[c] for c in graph.successors(node) if c in height]
        if below:
            height[node] = max(below) + 1
    return height


def lca_heights(hierarchy: ClassGraph, heights: Mapping[str, int] | None = None) -> np.ndarray:
    """The height of the lowest common ancestor of classes i and j (Bertinetto et al., 2020).

    The height of a node is the length of the longest downward path from it to a class below
    it (:func:`node_heights`; classes 0). In a DAG, two classes may have several lowest common
    ancestors; the one of least height counts. A class is its own ancestor, so the diagonal
    is 0. For the CUB taxonomy (root → order → family → genus → species): 1 for two species
    of one genus, 2 within a family, 3 within an order, 4 otherwise.

    Args:
        heights: :func:`node_heights` of ``hierarchy`` when already computed (a ``Hierarchy``
            passes its cached ones); computed here otherwise.

    Returns:
        ``numpy.ndarray`` of shape (n, n), dtype ``int16`` (``int32`` above 16,000 levels),
        symmetric, zero diagonal, every other entry in [1, height(root)].
    """
    # Every pair starts at the root's height; then each other node with ≥ 2 classes below
    # writes its height over the block of its classes, tallest first, so the last write to
    # (i, j) is the least height of a common ancestor. Cost: Σ_v |classes below v|².
    graph, root = hierarchy.graph, hierarchy.root
    index = {c: i for i, c in enumerate(hierarchy.classes)}
    height = node_heights(hierarchy) if heights is None else heights
    below: dict[str, set[int]] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        if node in index:
            below[node] = {index[node]}
        elif node in height:
            below[node] = set().union(*(below[c] for c in graph.successors(node) if c in below))
    out = np.full((hierarchy.num_classes,) * 2, height[root], dtype=_smallest_int(height[root]))
    blocks = [v for v in below if v != root and v not in index and len(below[v]) > 1]
    for node in sorted(blocks, key=height.__getitem__, reverse=True):
        rows = np.fromiter(below[node], dtype=np.int64, count=len(below[node]))
        out[np.ix_(rows, rows)] = height[node]
    np.fill_diagonal(out, 0)
    return out
