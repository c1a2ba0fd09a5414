"""Class hierarchies and the edge distances e_ij that KESL's soft labels are built from.

A :class:`Hierarchy` is a rooted, acyclic ``networkx.DiGraph`` of parent → child edges plus
``classes``, the ordered list of the nodes that are classes (list index = label id). The
paper (Yuan et al., ICPR 2020, Sec. III-A) uses two kinds of graph:

* a **WordNet subnet** for general recognition (Mini-ImageNet, Small-ImageNet): every
  hypernym path of each class synset up to ``entity.n.01`` (a DAG), built by
  :meth:`Hierarchy.from_wordnet` and shipped as JSON so that nothing needs WordNet at run
  time;
* a **biological taxonomy** order → family → genus → species for CUB-200-2011, built by
  :meth:`Hierarchy.from_taxonomy` from ``data/hierarchies/cub_taxonomy.csv``.

From it, :meth:`Hierarchy.edge_distances` gives e_ij, the number of edges on the shortest
*undirected* path between classes i and j (e_ii = 0). The next layer
(:mod:`kesl_utils.soft_labels`) turns it into c_ij = λ^(e_ij − 1) and g_ij = softmax_j(T c_ij);
d_ij = e_ij − 1 (i ≠ j) is the mistake severity used by :mod:`kesl_utils.metrics`.

Regenerate the shipped WordNet subnets with ``python -m kesl_utils.hierarchy regenerate``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import networkx as nx
import numpy as np

from . import paths

ROOT_WNID = "n00001740"  # entity.n.01, the single root of WordNet's noun hierarchy

#: The class column and levels (root side first) of the shipped CUB taxonomy.
CUB_LEVELS = ("order", "family", "genus", "class_name")

#: dataset → (class list CSV, derived WordNet subnet JSON), both in ``data/hierarchies/``.
WORDNET_SUBNETS = {
    "mini_imagenet": ("mini_imagenet_classes.csv", "mini_imagenet_wordnet.json"),
    "small_imagenet": ("small_imagenet_classes.csv", "small_imagenet_wordnet.json"),
}

DATASETS = ("cub", "mini_imagenet", "small_imagenet")

# Rows of sources processed at once by the DAG breadth-first search; bounds its memory to
# about _BFS_BLOCK × (2·edges) bytes.
_BFS_BLOCK = 256


class HierarchyError(ValueError):
    """An invalid hierarchy; ``problems`` lists every offending item, one string each."""

    def __init__(self, problems: str | Sequence[str], context: str = ""):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.context = context
        head = f"{context}: " if context else ""
        if len(self.problems) == 1:
            message = f"{head}invalid hierarchy: {self.problems[0]}"
        else:
            message = (f"{head}invalid hierarchy ({len(self.problems)} problems):\n  - "
                       + "\n  - ".join(self.problems))
        super().__init__(message)


def _quoted(items: Iterable) -> str:
    return ", ".join(repr(item) for item in items)


def _rows(rows: Sequence[int]) -> str:
    """0-based row indices as 1-based table rows: ``"row 3"``, ``"rows 1, 2"``."""
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r + 1) for r in rows)


def _validate(graph, classes: Sequence, root) -> tuple[object, list[str]]:
    """Every problem of (graph, classes, root) at once, and the root (inferred if None)."""
    problems: list[str] = []
    if not isinstance(graph, nx.DiGraph):
        return root, [f"graph must be a networkx.DiGraph, got {type(graph).__name__}"]
    if len(classes) == 0:
        problems.append("no classes given")
    bad_type = [c for c in classes if not isinstance(c, str)]
    if bad_type:
        problems.append(f"class ids must be strings; not strings: {_quoted(bad_type)}")
    bad_nodes = sorted((n for n in graph if not isinstance(n, str)), key=repr)
    if bad_nodes:
        problems.append(f"node ids must be strings; not strings: {_quoted(bad_nodes)}")
    counts = Counter(classes)
    duplicates = [c for c, k in counts.items() if k > 1]
    if duplicates:
        problems.append("duplicate classes: " + ", ".join(
            f"{c!r} (×{counts[c]}, positions {[i for i, x in enumerate(classes) if x == c]})"
            for c in duplicates))
    missing = [c for c in counts if c not in graph]
    if missing:
        problems.append(f"classes missing from the graph: {_quoted(missing)}")

    acyclic = nx.is_directed_acyclic_graph(graph)
    if not acyclic:
        cycles = []
        for component in nx.strongly_connected_components(graph):
            if len(component) > 1:
                cycle = nx.find_cycle(graph.subgraph(component))
                cycles.append(" -> ".join(repr(u) for u, _ in cycle) + f" -> {cycle[0][0]!r}")
        cycles += [f"{n!r} -> {n!r}" for n in nx.nodes_with_selfloops(graph)]
        problems.append(f"the graph has {len(cycles)} cycle(s): " + "; ".join(sorted(cycles)))

    sources = sorted((n for n, k in graph.in_degree() if k == 0), key=str)
    if root is not None:
        if root not in graph:
            problems.append(f"root {root!r} is not a node of the graph")
            root = None
        elif graph.in_degree(root) > 0:
            problems.append(f"root {root!r} has parents: {_quoted(graph.predecessors(root))}")
        others = [s for s in sources if s != root]
        if others and root is not None:
            problems.append(f"more than one root: besides {root!r}, nodes without a parent: "
                            f"{_quoted(others)}")
    elif len(sources) == 1:
        root = sources[0]
    elif len(graph) and not sources:
        problems.append("no root: every node has a parent")
    elif len(sources) > 1:
        under = {s: sum(1 for d in nx.descendants(graph, s) | {s} if d in counts)
                 for s in sources}
        problems.append(f"more than one root ({len(sources)} nodes without a parent; a "
                        "hierarchy needs exactly one): "
                        + ", ".join(f"{s!r} ({under[s]} classes below)" for s in sources))
    if root is not None:
        reachable = nx.descendants(graph, root) | {root}
        unreachable = [c for c in counts if c in graph and c not in reachable]
        if unreachable:
            problems.append(f"classes not reachable from the root {root!r}: "
                            f"{_quoted(unreachable)}")

    if acyclic:
        # A class above another class would give e_ij = 1, d_ij = 0: the same similarity
        # as the class with itself. One upward sweep from all classes finds every such class.
        class_set = set(counts)
        seen: set = set()
        queue = deque(p for c in class_set if c in graph for p in graph.predecessors(c))
        while queue:
            node = queue.popleft()
            if node not in seen:
                seen.add(node)
                queue.extend(graph.predecessors(node))
        for ancestor in [c for c in counts if c in seen]:
            below = sorted(class_set & nx.descendants(graph, ancestor))
            problems.append(f"class {ancestor!r} is an ancestor of other classes: "
                            f"{_quoted(below)}")
    return root, problems


class Hierarchy:
    """A rooted class hierarchy: ``graph`` (parent → child ``networkx.DiGraph``) + ``classes``.

    Attributes:
        graph: acyclic, single root; node attribute ``"name"`` = human-readable label
            (optional). Treat as read-only: derived values are cached at construction.
        classes: class node ids, ``classes[k]`` is label id k.
        root: the single node without a parent.

    In a DAG (WordNet) a node may have several parents; its *depth* is the length of the
    shortest path from the root, and its *canonical parent* is the parent on such a path
    (ties broken by the smallest node id). A hierarchy is a *tree* when every node but the
    root has exactly one parent.

    Raises:
        HierarchyError: on a cycle, a class missing from the graph, duplicate classes, a
            class that is an ancestor of another class, more than one root or a class not
            reachable from the root — every offending item is named.
    """

    def __init__(self, graph: nx.DiGraph, classes: Sequence[str], root: str | None = None,
                 *, context: str = ""):
        classes = list(classes)
        root, problems = _validate(graph, classes, root)
        if problems:
            raise HierarchyError(problems, context)
        self.graph = graph
        self.classes = classes
        self.root = root
        self._index = {c: i for i, c in enumerate(classes)}
        self._depth = nx.single_source_shortest_path_length(graph, root)
        self._is_tree = all(graph.in_degree(n) == 1 for n in graph if n != root)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, parent_child_pairs: Iterable[Sequence[str]], classes: Sequence[str],
                   *, root: str | None = None, names: Mapping[str, str] | None = None,
                   context: str = "") -> "Hierarchy":
        """From ``(parent, child)`` pairs; ``names`` optionally maps nodes to readable labels.

        The root is the single node without a parent (or ``root`` if given).
        """
        graph = nx.DiGraph()
        bad = []
        for pair in parent_child_pairs:
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                bad.append(pair)
            else:
                graph.add_edge(pair[0], pair[1])
        if bad:
            raise HierarchyError(f"edges must be (parent, child) pairs, got: {_quoted(bad)}",
                                 context)
        if root is not None and root not in graph and not graph.number_of_edges():
            graph.add_node(root)
        for node, name in (names or {}).items():
            if node in graph:
                graph.nodes[node]["name"] = name
        return cls(graph, classes, root, context=context)

    @classmethod
    def from_taxonomy(cls, table, levels: Sequence[str], *, root: str = "root") -> "Hierarchy":
        """From a table with one row per class and one column per taxonomic level.

        Args:
            table: a ``pandas.DataFrame`` or the path of a CSV file.
            levels: column names from the top level down to the class column, e.g.
                ``["order", "family", "genus", "class_name"]``. A single root node joins the
                top level.
            root: id of the root node.

        Node ids: classes are the values of the class column (``classes`` keeps the row
        order); a node of another level is ``"<level>:<value>"`` (``"genus:Larus"``), so that
        equal strings on different levels stay different nodes. Node attributes: ``name``
        (the cell value) and ``level`` (the column name).

        Raises:
            HierarchyError: missing columns, empty cells (row and column named), a node with
                two different parents (e.g. a genus under two families), duplicate classes.
        """
        import pandas as pd

        if isinstance(table, (str, os.PathLike)):
            context = str(table)
            try:
                frame = pd.read_csv(table, dtype=str, keep_default_na=False)
            except FileNotFoundError:
                raise HierarchyError(f"taxonomy file {table} does not exist") from None
            line_offset = 2  # the header is line 1
        elif isinstance(table, pd.DataFrame):
            context, frame, line_offset = "taxonomy table", table, None
        else:
            raise TypeError(f"table must be a pandas DataFrame or a CSV path, got "
                            f"{type(table).__name__}")
        levels = list(levels)
        if not levels:
            raise HierarchyError("levels is empty; give the columns from the top level down "
                                 "to the class column", context)
        missing = [c for c in levels if c not in frame.columns]
        if missing:
            raise HierarchyError(f"missing level columns {_quoted(missing)}; the table has "
                                 f"{_quoted(frame.columns)}", context)
        class_column = levels[-1]

        problems: list[str] = []
        cells = []
        for row, values in enumerate(frame[levels].itertuples(index=False, name=None)):
            clean = ["" if pd.isna(v) else str(v).strip() for v in values]
            about = ([f"line {row + line_offset}"] if line_offset is not None else []) \
                + ([f"class {clean[-1]!r}"] if clean[-1] else [])
            where = f"row {row + 1}" + (f" ({', '.join(about)})" if about else "")
            for column, text in zip(levels, clean):
                if not text:
                    problems.append(f"{where}: column {column!r} is empty")
            cells.append(clean)

        def node_id(depth: int, value: str) -> str:
            return value if depth == len(levels) - 1 else f"{levels[depth]}:{value}"

        parents: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        class_rows: dict[str, list[int]] = defaultdict(list)
        for row, clean in enumerate(cells):
            if any(not v for v in clean):
                continue
            class_rows[clean[-1]].append(row)
            for depth in range(1, len(levels) - 1):
                parents[node_id(depth, clean[depth])][node_id(depth - 1, clean[depth - 1])] \
                    .append(row)
        for cls_id, rows in class_rows.items():
            if len(rows) > 1:
                problems.append(f"duplicate class {cls_id!r} in {_rows(rows)}")
        for node, above in parents.items():
            if len(above) > 1:
                level, _, value = node.partition(":")
                upper = levels[levels.index(level) - 1]
                problems.append(
                    f"{level} {value!r} is filed under {len(above)} different {upper} values: "
                    + "; ".join(f"{p.partition(':')[2]!r} ({_rows(rows)})"
                                for p, rows in above.items()))
        internal = {root} | {node_id(d, c[d]) for c in cells for d in range(len(levels) - 1)}
        clashes = sorted(set(class_rows) & internal)
        if clashes:
            problems.append(f"class ids equal to internal node ids: {_quoted(clashes)}")
        if problems:
            raise HierarchyError(problems, context)

        graph = nx.DiGraph()
        graph.add_node(root, name=root, level="root")
        for clean in cells:
            parent = root
            for depth, value in enumerate(clean):
                node = node_id(depth, value)
                if node not in graph:
                    graph.add_node(node, name=value, level=levels[depth])
                graph.add_edge(parent, node)
                parent = node
        return cls(graph, [c[-1] for c in cells], root, context=context)

    @classmethod
    def from_wordnet(cls, wnids: Sequence[str], mode: str = "dag") -> "Hierarchy":
        """The WordNet 3.0 subnet above ImageNet-style wnids (``"n01532829"``).

        Args:
            wnids: noun wnids, in label order.
            mode: ``"dag"`` — every hypernym path of each class up to ``entity.n.01``
                (hypernyms and instance hypernyms, as nltk's ``hypernym_paths``);
                ``"tree"`` — only the shortest hypernym path of each class. To make the union
                a tree, every synset keeps one parent: the hypernym of smallest
                ``min_depth`` (ties: smallest wnid); each class's path is then a shortest one.

        Node ids are wnids; node ``name`` = the synset's first lemma with spaces
        (``"house finch"``).

        Raises:
            HierarchyError: listing every malformed, unknown or non-noun wnid.
            kesl_utils.wordnet.WordNetUnavailable: WordNet 3.0 cannot be provisioned.
        """
        from . import wordnet as wn

        if mode not in ("dag", "tree"):
            raise ValueError(f"mode must be 'dag' or 'tree', got {mode!r}")
        wnids = list(wnids)
        malformed, unknown, not_noun, synsets = [], [], [], []
        for wnid in wnids:
            try:
                pos, _ = wn.parse_wnid(wnid)
            except ValueError:
                malformed.append(wnid)
                continue
            if pos != "n":
                not_noun.append(wnid)
                continue
            synset = wn.find_synset(wnid)
            if synset is None:
                unknown.append(wnid)
            else:
                synsets.append(synset)
        problems = []
        if malformed:
            problems.append("malformed wnids (expected 'n' + 8 digits, e.g. 'n01532829'): "
                            + _quoted(malformed))
        if unknown:
            problems.append(f"unknown wnids (no WordNet 3.0 noun synset at that offset): "
                            f"{_quoted(unknown)}")
        if not_noun:
            problems.append(f"wnids that are not nouns: {_quoted(not_noun)}")
        if problems:
            raise HierarchyError(problems, "from_wordnet")

        graph = nx.DiGraph()

        def add(synset) -> str:
            node = wn.wnid_of(synset)
            if node not in graph:
                graph.add_node(node, name=synset.lemmas()[0].name().replace("_", " "))
            return node

        queue = deque(synsets)
        done = set()
        while queue:
            synset = queue.popleft()
            if synset in done:
                continue
            done.add(synset)
            child = add(synset)
            parents = synset.hypernyms() + synset.instance_hypernyms()
            if mode == "tree" and parents:
                parents = [min(parents, key=lambda s: (s.min_depth(), wn.wnid_of(s)))]
            for parent in parents:
                graph.add_edge(add(parent), child)
                queue.append(parent)
        return cls(graph, wnids, ROOT_WNID if ROOT_WNID in graph else None, context=f"from_wordnet({mode})")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """``{"root", "classes", "edges": sorted [[parent, child], …], "names": {node: name}}``."""
        names = {n: str(d["name"]) for n, d in self.graph.nodes(data=True) if "name" in d}
        return {"root": self.root, "classes": list(self.classes),
                "edges": sorted([u, v] for u, v in self.graph.edges()),
                "names": dict(sorted(names.items()))}

    def to_json_text(self, comment: str | None = None) -> str:
        """Deterministic JSON: sorted edges and names, one item per line for readable diffs."""
        data = self.to_dict()

        def block(items: list[str], opening: str, closing: str) -> str:
            if not items:
                return opening + closing
            return opening + "\n" + ",\n".join("    " + i for i in items) + "\n  " + closing

        dump = lambda x: json.dumps(x, ensure_ascii=False)  # noqa: E731
        parts = []
        if comment is not None:
            parts.append(f'  "comment": {dump(comment)}')
        parts.append(f'  "root": {dump(data["root"])}')
        parts.append('  "classes": ' + block([dump(c) for c in data["classes"]], "[", "]"))
        parts.append('  "edges": ' + block([dump(e) for e in data["edges"]], "[", "]"))
        parts.append('  "names": ' + block([f"{dump(k)}: {dump(v)}"
                                            for k, v in data["names"].items()], "{", "}"))
        return "{\n" + ",\n".join(parts) + "\n}\n"

    def to_json(self, path: str | os.PathLike, *, comment: str | None = None) -> Path:
        """Write :meth:`to_json_text` atomically to ``path``; returns the path."""
        return paths.atomic_write_text(path, self.to_json_text(comment))

    @classmethod
    def from_dict(cls, data: Mapping, *, context: str = "hierarchy dict") -> "Hierarchy":
        """Inverse of :meth:`to_dict` (an optional ``"comment"`` key is ignored)."""
        if not isinstance(data, Mapping):
            raise HierarchyError(f"expected a JSON object, got {type(data).__name__}", context)
        missing = [k for k in ("root", "classes", "edges") if k not in data]
        if missing:
            raise HierarchyError(f"missing keys {_quoted(missing)} (expected 'root', "
                                 "'classes', 'edges' and optionally 'names')", context)
        graph = nx.DiGraph()
        graph.add_node(data["root"])
        bad = [e for e in data["edges"] if not isinstance(e, (list, tuple)) or len(e) != 2]
        if bad:
            raise HierarchyError(f"edges must be [parent, child] pairs, got: {_quoted(bad)}",
                                 context)
        graph.add_edges_from((u, v) for u, v in data["edges"])
        for node, name in (data.get("names") or {}).items():
            if node in graph:
                graph.nodes[node]["name"] = name
        return cls(graph, data["classes"], data["root"], context=context)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Hierarchy":
        """Read a file written by :meth:`to_json`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HierarchyError(f"hierarchy file {path} does not exist") from None
        except json.JSONDecodeError as error:
            raise HierarchyError(f"not valid JSON: {error}", str(path)) from None
        return cls.from_dict(data, context=str(path))

    # ------------------------------------------------------------------ queries
    @property
    def num_classes(self) -> int:
        """n, the number of classes."""
        return len(self.classes)

    @property
    def is_tree(self) -> bool:
        """Whether every node except the root has exactly one parent."""
        return self._is_tree

    def class_index(self, class_id: str) -> int:
        """Label id of a class node."""
        try:
            return self._index[class_id]
        except KeyError:
            raise KeyError(f"{class_id!r} is not one of the {self.num_classes} classes") from None

    def name(self, node: str) -> str:
        """Readable label of a node: its ``name`` attribute, else its id."""
        return str(self.graph.nodes[node].get("name", node))

    def class_names(self) -> list[str]:
        """Readable names of the classes, in label order."""
        return [self.name(c) for c in self.classes]

    def depth(self, node: str) -> int:
        """Edges on the shortest path from the root (root = 0)."""
        try:
            return self._depth[node]
        except KeyError:
            raise KeyError(f"{node!r} is not a node of the hierarchy") from None

    def parent(self, node: str) -> str | None:
        """Canonical parent: on a shortest root path, smallest id among ties; None for the root."""
        if node == self.root:
            return None
        above = [p for p in self.graph.predecessors(node)
                 if self._depth[p] == self._depth[node] - 1]
        return min(above)

    def path_from_root(self, node: str) -> list[str]:
        """The canonical path root → … → node (follows :meth:`parent`)."""
        path = [node]
        while path[-1] != self.root:
            path.append(self.parent(path[-1]))
        return path[::-1]

    def ancestors_at_depth(self, depth: int) -> list[str]:
        """For each class (label order), its canonical ancestor at ``depth``.

        A class shallower than ``depth`` is its own answer. For the CUB taxonomy depth 1 is
        the order, 2 the family, 3 the genus; two classes share a genus iff their entries
        at depth 3 are equal.
        """
        if not isinstance(depth, (int, np.integer)) or depth < 0:
            raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
        out = []
        for c in self.classes:
            path = self.path_from_root(c)
            out.append(path[min(depth, len(path) - 1)])
        return out

    def levels_summary(self):
        """``pandas.DataFrame`` with one row per depth: ``depth``, ``n_nodes``, ``n_classes``,
        ``examples`` (names of up to three nodes, alphabetically first)."""
        import pandas as pd

        by_depth: dict[int, list[str]] = defaultdict(list)
        for node, d in self._depth.items():
            by_depth[d].append(node)
        classes = set(self.classes)
        rows = []
        for d in sorted(by_depth):
            nodes = by_depth[d]
            rows.append({"depth": d, "n_nodes": len(nodes),
                         "n_classes": sum(1 for n in nodes if n in classes),
                         "examples": ", ".join(sorted(self.name(n) for n in nodes)[:3])})
        return pd.DataFrame(rows, columns=["depth", "n_nodes", "n_classes", "examples"])

    def _children(self, node: str) -> list[str]:
        return sorted(self.graph.successors(node))

    def leaf_order(self) -> np.ndarray:
        """Permutation of class indices in depth-first order (children by id), shape (n,).

        ``e[np.ix_(order, order)]`` puts classes of the same subtree next to each other
        (heatmaps). In a DAG a class is placed where it is first met.
        """
        order, seen = [], {self.root}
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node in self._index:
                order.append(self._index[node])
            for child in reversed(self._children(node)):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return np.asarray(order, dtype=np.int64)

    def _tree_children(self) -> dict[str, list[str]]:
        """Children in the canonical spanning tree (each node under :meth:`parent`), sorted."""
        children: dict[str, list[str]] = {n: [] for n in self.graph}
        for node in sorted(self.graph):
            if node != self.root:
                children[self.parent(node)].append(node)
        return children

    def radial_layout(self, *, classes_outside: bool = True) -> dict[str, tuple[float, float]]:
        """Polar coordinates ``{node: (angle, radius)}`` for drawing the hierarchy.

        Classes (and any other leaves) are spaced evenly on the circle in depth-first order
        of the canonical spanning tree — for a tree, :meth:`leaf_order`; a node sits midway
        between the angles of its first and last canonical child, at radius = depth (classes
        at the maximum depth if ``classes_outside``). DAG edges off that tree are ignored.
        """
        children = self._tree_children()
        slots, stack = [], [self.root]
        while stack:
            node = stack.pop()
            if node in self._index or not children[node]:
                slots.append(node)
            stack.extend(reversed(children[node]))
        angle = {n: 2 * math.pi * k / len(slots) for k, n in enumerate(slots)}
        for node in sorted(self.graph, key=lambda n: -self._depth[n]):
            if node not in angle:
                below = [angle[c] for c in children[node]]
                angle[node] = (min(below) + max(below)) / 2
        max_depth = max(self._depth.values())
        return {n: (angle[n], float(max_depth if classes_outside and n in self._index
                                    else self._depth[n])) for n in self.graph}

    # ------------------------------------------------------------------ distances
    def edge_distances(self) -> np.ndarray:
        """e_ij: edges on the shortest undirected path between classes i and j.

        Returns:
            ``numpy.ndarray`` of shape (n, n), dtype ``int16`` (``int32`` for hierarchies
            deeper than 16,000), symmetric, e_ii = 0. Convert before averaging in torch.

        Trees: e_ij = depth_i + depth_j − 2·depth(LCA), vectorised over the blocks of a
        depth-first ordering. DAGs: the shortest path may climb through a second parent, so
        e_ij = min(tree distance in the canonical spanning tree, min_s e_is + e_sj) over the
        nodes s with several parents (every path off the spanning tree passes through one),
        with e_is from a breadth-first search per such node; when there are many of them,
        a breadth-first search from every class, vectorised over classes with numpy.
        """
        max_depth = max(self._depth.values())
        dtype = np.int16 if 2 * max_depth < np.iinfo(np.int16).max and \
            self.graph.number_of_nodes() < np.iinfo(np.int16).max else np.int32
        if self._is_tree:
            return self._tree_distances(dtype, self._children)
        multi_parent = sorted(v for v in self.graph if self.graph.in_degree(v) > 1)
        n, k = self.num_classes, len(multi_parent)
        bfs_cost = 4 * self.graph.number_of_edges() * max_depth  # per source
        if k < n and k * (n * n + bfs_cost) <= n * bfs_cost:
            return self._spanning_tree_distances(dtype, multi_parent)
        return self._bfs_lengths(self.classes, self.classes, dtype)

    def _spanning_tree_distances(self, dtype, via: Sequence[str]) -> np.ndarray:
        tree_children = self._tree_children()
        e = self._tree_distances(dtype, tree_children.__getitem__)
        to_classes = self._bfs_lengths(via, self.classes, dtype)  # (k, n): e_sj
        for a in to_classes:
            np.minimum(e, a[:, None] + a[None, :], out=e)
        return e

    def _tree_distances(self, dtype, children) -> np.ndarray:
        # In a depth-first order the classes below any node form a contiguous range
        # [lo, hi). Every common ancestor of i and j other than the root contributes one
        # block covering (i, j), so subtracting 2 per node block from depth_i + depth_j
        # leaves e_ij. Cost: Σ_v |range(v)|² ≤ depth · n², as plain slice operations.
        position = np.empty(self.num_classes, dtype=np.int64)
        ranges = []  # (lo, hi) per non-root node with classes below
        counter = 0
        stack = [(self.root, False)]
        start: dict[str, int] = {}
        while stack:
            node, leaving = stack.pop()
            if leaving:
                if node != self.root and counter > start[node]:
                    ranges.append((start[node], counter))
                continue
            start[node] = counter
            if node in self._index:
                position[self._index[node]] = counter
                counter += 1
            stack.append((node, True))
            for child in reversed(children(node)):
                stack.append((child, False))
        depth_sorted = np.empty(self.num_classes, dtype=dtype)
        depth_sorted[position] = [self._depth[c] for c in self.classes]
        e = depth_sorted[:, None] + depth_sorted[None, :]
        for lo, hi in ranges:
            e[lo:hi, lo:hi] -= 2
        if np.array_equal(position, np.arange(self.num_classes)):
            return e
        return e[np.ix_(position, position)]

    def _bfs_lengths(self, sources: Sequence[str], targets: Sequence[str], dtype) -> np.ndarray:
        """Undirected shortest-path lengths, shape (len(sources), len(targets)).

        Breadth-first search from all sources at once: the frontier is a boolean matrix
        (sources × nodes) and one step ORs each node's neighbour columns (``reduceat``).
        """
        nodes = list(self.graph)
        node_index = {v: k for k, v in enumerate(nodes)}
        edges = np.array([(node_index[u], node_index[v]) for u, v in self.graph.edges()],
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
                if not frontier.any():  # cannot happen once validated
                    raise HierarchyError("the graph is not connected")
                visited |= frontier
                new = frontier[:, target_nodes]
                block[new] = step
                found |= new
            out[rows] = block
        return out

    # ------------------------------------------------------------------ misc
    def __eq__(self, other) -> bool:
        if not isinstance(other, Hierarchy):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self) -> str:
        kind = "tree" if self._is_tree else "DAG"
        return (f"Hierarchy({kind}, {self.num_classes} classes, "
                f"{self.graph.number_of_nodes()} nodes, root={self.root!r})")


# ---------------------------------------------------------------------- shipped files
def _pretty_cub_name(class_name: str) -> str:
    """``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``."""
    return class_name.split(".", 1)[-1].replace("_", " ")


def load_cub_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """CUB-200-2011 taxonomy root → order → family → genus → class (``cub_taxonomy.csv``).

    Classes are the ``class_name`` values (``"001.Black_footed_Albatross"``) ordered by
    ``class_id`` (label id = class_id − 1 for the shipped file); class nodes are named
    without number and underscores.
    """
    import pandas as pd

    path = Path(path) if path is not None else paths.hierarchies_dir() / "cub_taxonomy.csv"
    file_order = Hierarchy.from_taxonomy(path, CUB_LEVELS)  # errors name the file's rows
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "class_id" not in table.columns:
        raise HierarchyError(f"no 'class_id' column; columns are {_quoted(table.columns)}",
                             str(path))
    ids = pd.to_numeric(table["class_id"].str.strip(), errors="coerce")
    if ids.isna().any():
        raise HierarchyError(f"class_id is not an integer in {_rows(np.flatnonzero(ids.isna()))}",
                             str(path))
    by_id = [c for _, c in sorted(zip(ids, file_order.classes), key=lambda pair: pair[0])]
    hierarchy = Hierarchy(file_order.graph, by_id, file_order.root, context=str(path))
    for c in hierarchy.classes:
        hierarchy.graph.nodes[c]["name"] = _pretty_cub_name(c)
    return hierarchy


def _subnet_json(dataset: str) -> Path:
    return paths.hierarchies_dir() / WORDNET_SUBNETS[dataset][1]


def load_mini_imagenet_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """The WordNet DAG subnet of the 100 Mini-ImageNet classes (shipped JSON; no WordNet)."""
    return Hierarchy.from_json(path if path is not None else _subnet_json("mini_imagenet"))


def load_small_imagenet_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """The WordNet DAG subnet of the 200 Small-ImageNet (= Tiny-ImageNet) classes."""
    return Hierarchy.from_json(path if path is not None else _subnet_json("small_imagenet"))


def load_hierarchy(dataset: str) -> Hierarchy:
    """The shipped hierarchy of ``"cub"``, ``"mini_imagenet"`` or ``"small_imagenet"``."""
    loaders = {"cub": load_cub_hierarchy, "mini_imagenet": load_mini_imagenet_hierarchy,
               "small_imagenet": load_small_imagenet_hierarchy}
    if dataset not in loaders:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {_quoted(DATASETS)}")
    return loaders[dataset]()


def read_class_wnids(csv_path: str | os.PathLike) -> list[str]:
    """The ``wnid`` column of a class list CSV, in file order."""
    import pandas as pd

    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "wnid" not in table.columns:
        raise HierarchyError(f"no 'wnid' column; columns are {_quoted(table.columns)}",
                             str(csv_path))
    return [w.strip() for w in table["wnid"]]


def wordnet_subnet(dataset: str) -> tuple[Hierarchy, str]:
    """Rebuild a shipped subnet from its class CSV and WordNet: ``(hierarchy, comment)``."""
    csv_name, _ = WORDNET_SUBNETS[dataset]
    csv_path = paths.hierarchies_dir() / csv_name
    hierarchy = Hierarchy.from_wordnet(read_class_wnids(csv_path), mode="dag")
    comment = (f"WordNet 3.0 subnet (every hypernym path up to entity.n.01) of the classes "
               f"in {csv_name}, in its row order; derived data, regenerate with "
               "`python -m kesl_utils.hierarchy regenerate`")
    return hierarchy, comment


def regenerate_wordnet_subnets(*, check: bool = False,
                               datasets: Sequence[str] = tuple(WORDNET_SUBNETS)) -> dict:
    """Rebuild ``data/hierarchies/*_wordnet.json`` from the class CSVs and WordNet 3.0.

    Args:
        check: compare only; write nothing.
        datasets: which subnets.

    Returns:
        ``{json_path: changed}`` — whether the file differed from the regenerated text
        (and, unless ``check``, was rewritten atomically).
    """
    result = {}
    for dataset in datasets:
        hierarchy, comment = wordnet_subnet(dataset)
        text = hierarchy.to_json_text(comment)
        target = _subnet_json(dataset)
        old = target.read_text(encoding="utf-8") if target.exists() else None
        result[target] = old != text
        if old != text and not check:
            paths.atomic_write_text(target, text)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kesl_utils.hierarchy",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate", help="rebuild the WordNet subnet JSON files")
    regen.add_argument("--check", action="store_true",
                       help="exit with status 1 if a shipped file differs; write nothing")
    regen.add_argument("datasets", nargs="*", metavar="dataset",
                       help=f"any of {', '.join(WORDNET_SUBNETS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [d for d in args.datasets if d not in WORDNET_SUBNETS]
    if unknown:
        parser.error(f"unknown dataset(s) {_quoted(unknown)}; expected "
                     f"{_quoted(WORDNET_SUBNETS)}")
    result = regenerate_wordnet_subnets(check=args.check,
                                        datasets=args.datasets or list(WORDNET_SUBNETS))
    for path, changed in result.items():
        h = Hierarchy.from_json(path) if path.exists() and not (args.check and changed) \
            else None
        state = ("differs" if args.check else "rewritten") if changed else "up to date"
        detail = f" ({h!r})" if h is not None else ""
        shown = path.relative_to(paths.PROJECT_ROOT) if path.is_relative_to(paths.PROJECT_ROOT) \
            else path
        print(f"{shown}: {state}{detail}")
    return 1 if args.check and any(result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
