"""Class hierarchies: the rooted graphs that KESL's soft labels are built from.

A :class:`Hierarchy` is a rooted, acyclic ``networkx.DiGraph`` of parent → child edges plus
``classes``, the ordered list of the nodes that are classes (list index = label id). The
paper (Yuan et al., ICPR 2020, Sec. III-A) uses two kinds of graph:

* a **WordNet subnet** for general recognition (Mini-ImageNet, Small-ImageNet): every
  hypernym path of each class synset up to ``entity.n.01`` (a DAG), built by
  :meth:`Hierarchy.from_wordnet` and shipped as JSON so that nothing needs WordNet at run
  time;
* a **biological taxonomy** order → family → genus → species for CUB-200-2011, built by
  :meth:`Hierarchy.from_taxonomy` from ``data/hierarchies/cub_taxonomy.csv``.

Which file and kind each dataset has is read from the registry :data:`kesl_utils.names.DATASETS`
(:func:`load_hierarchy`). The distances between classes (e_ij, LCA heights) are computed in
:mod:`kesl_utils.distances` and cached per hierarchy; drawing is in :mod:`kesl_utils.plots`.
Regenerate the shipped WordNet subnets with :func:`regenerate_wordnet_subnets`.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from . import distances, paths
from .names import DATASETS, check_choice, dataset_spec

ROOT_WNID = "n00001740"  # entity.n.01, the single root of WordNet's noun hierarchy


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


def _rows(rows: Sequence[int], lines: Sequence[int] | None = None) -> str:
    """0-based row indices as 1-based table rows (with file lines): ``"row 3 (line 4)"``."""
    plural = "" if len(rows) == 1 else "s"
    text = f"row{plural} " + ", ".join(str(r + 1) for r in rows)
    if lines is not None:
        text += f" (line{plural} " + ", ".join(str(lines[r]) for r in rows) + ")"
    return text


# ---------------------------------------------------------------------- reading files
def _read_text(path: Path, expected: str) -> str:
    """The UTF-8 text of ``path``; a HierarchyError naming the file (and line) otherwise."""
    if path.is_dir():
        raise HierarchyError(f"this is a directory; expected {expected}", str(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HierarchyError(f"the file does not exist; expected {expected}", str(path)) from None
    except OSError as error:
        raise HierarchyError(f"cannot read the file ({error.strerror}); expected {expected}",
                             str(path)) from None
    if b"\0" in raw:
        line = raw[:raw.index(b"\0")].count(b"\n") + 1
        raise HierarchyError(f"line {line}: a NUL byte, so this looks like a binary file; expected "
                             f"{expected} (UTF-8 text)", str(path))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise HierarchyError(f"line {line}: byte 0x{raw[error.start]:02x} is not UTF-8; expected "
                             f"{expected} encoded as UTF-8 (re-save it as UTF-8)",
                             str(path)) from None


def read_csv_table(path: str | os.PathLike, expected: str = "a CSV file with a header line"
                   ) -> tuple[pd.DataFrame, list[int]]:
    """A CSV file as a ``DataFrame`` of strings, and the file line of each row.

    Blank lines are skipped; a row shorter than the header is padded with empty cells.

    Raises:
        HierarchyError: naming the file, the line and ``expected``: a missing file, a
            directory, a binary or non-UTF-8 file, an empty file, duplicate column names, a
            row with more fields than the header, malformed quoting.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path, expected), newline=""))
    header, rows, lines = None, [], []
    try:
        for row in reader:
            if not row:
                continue
            if header is None:
                header, header_line = [c.strip() for c in row], reader.line_num
            elif len(row) > len(header):
                raise HierarchyError(f"line {reader.line_num}: {len(row)} fields, but the header "
                                     f"(line {header_line}) has {len(header)} columns: "
                                     f"{_quoted(header)}", str(path))
            else:
                rows.append(row + [""] * (len(header) - len(row)))
                lines.append(reader.line_num)
    except csv.Error as error:
        raise HierarchyError(f"line {reader.line_num}: not valid CSV ({error}); expected "
                             f"{expected}", str(path)) from None
    if header is None:
        raise HierarchyError(f"the file is empty; expected {expected}", str(path))
    duplicates = [c for c, k in Counter(header).items() if k > 1]
    if duplicates:
        raise HierarchyError(f"line {header_line}: duplicate column names {_quoted(duplicates)}",
                             str(path))
    return pd.DataFrame(rows, columns=header, dtype=str), lines


# ---------------------------------------------------------------------- validation
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


# ---------------------------------------------------------------------- graph builders
def _name_nodes(graph: nx.DiGraph, names: Mapping[str, str]) -> nx.DiGraph:
    for node, name in names.items():
        if node in graph:
            graph.nodes[node]["name"] = name
    return graph


def _edges_graph(pairs, root, names, context: str) -> nx.DiGraph:
    """The graph of :meth:`Hierarchy.from_edges`."""
    pairs = list(pairs)
    bad = [p for p in pairs if isinstance(p, (str, bytes)) or len(p) != 2]
    if bad:
        raise HierarchyError(f"edges must be (parent, child) pairs, got: {_quoted(bad)}", context)
    graph = nx.DiGraph()
    graph.add_edges_from(pairs)
    if root is not None and root not in graph and not graph.number_of_edges():
        graph.add_node(root)
    return _name_nodes(graph, names or {})


def _read_taxonomy(table, levels: list[str]) -> tuple[pd.DataFrame, list[int] | None, str]:
    """``(frame, file line per row or None, context)`` of a taxonomy DataFrame or CSV path."""
    if isinstance(table, (str, os.PathLike)):
        frame, lines = read_csv_table(table, f"a taxonomy CSV with the columns {_quoted(levels)}")
        return frame, lines, str(table)
    if isinstance(table, pd.DataFrame):
        return table, None, "taxonomy table"
    raise TypeError(f"table must be a pandas DataFrame or a CSV path, got {type(table).__name__}")


def _level_list(levels) -> list[str]:
    if isinstance(levels, str):
        raise TypeError(f"levels must be a list of column names (top level first, class column "
                        f"last), got the string {levels!r}; write [{levels!r}]")
    return list(levels)


def _taxonomy_graph(frame: pd.DataFrame, levels: list[str], root: str,
                    lines: Sequence[int] | None, context: str) -> tuple[nx.DiGraph, list[str]]:
    """The graph and classes of :meth:`Hierarchy.from_taxonomy`; ``lines``: file line per row."""
    if not levels:
        raise HierarchyError("levels is empty; give the columns from the top level down "
                             "to the class column", context)
    missing = [c for c in levels if c not in frame.columns]
    if missing:
        raise HierarchyError(f"missing level columns {_quoted(missing)}; the table has "
                             f"{_quoted(frame.columns)}", context)
    if frame.empty:
        raise HierarchyError(f"no rows; expected one row per class with the columns "
                             f"{_quoted(levels)}", context)

    problems: list[str] = []
    cells = []
    for row, values in enumerate(frame[levels].itertuples(index=False, name=None)):
        clean = ["" if pd.isna(v) else str(v).strip() for v in values]
        about = ([f"line {lines[row]}"] if lines is not None else []) \
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
    return graph, [c[-1] for c in cells]


def _wordnet_graph(wnids: list[str], mode: str) -> nx.DiGraph:
    """The graph of :meth:`Hierarchy.from_wordnet`."""
    from . import wordnet as wn  # nltk is slow to import and optional

    if mode not in ("dag", "tree"):
        raise ValueError(f"mode must be 'dag' or 'tree', got {mode!r}")
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
    return graph


def _json_text(data: dict, comment: str | None) -> str:
    """The text of :meth:`Hierarchy.to_json_text` from :meth:`Hierarchy.to_dict`."""
    def block(items: list[str], opening: str, closing: str) -> str:
        if not items:
            return opening + closing
        return opening + "\n" + ",\n".join("    " + i for i in items) + "\n  " + closing

    dump = lambda x: json.dumps(x, ensure_ascii=False)  # noqa: E731
    parts = [f'  "comment": {dump(comment)}'] if comment is not None else []
    parts.append(f'  "root": {dump(data["root"])}')
    parts.append('  "classes": ' + block([dump(c) for c in data["classes"]], "[", "]"))
    parts.append('  "edges": ' + block([dump(e) for e in data["edges"]], "[", "]"))
    parts.append('  "names": ' + block([f"{dump(k)}: {dump(v)}"
                                        for k, v in data["names"].items()], "{", "}"))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _read_json(path: Path):
    try:
        return json.loads(_read_text(path, "a hierarchy JSON file"))
    except json.JSONDecodeError as error:
        raise HierarchyError(f"line {error.lineno}: not valid JSON: {error}", str(path)) from None


def _dict_graph(data, context: str) -> tuple[nx.DiGraph, list[str], str]:
    """The graph, classes and root of :meth:`Hierarchy.from_dict`, every type checked."""
    if not isinstance(data, Mapping):
        raise HierarchyError(f"expected a JSON object, got {type(data).__name__}", context)
    missing = [k for k in ("root", "classes", "edges") if k not in data]
    if missing:
        raise HierarchyError(f"missing keys {_quoted(missing)} (expected 'root', "
                             "'classes', 'edges' and optionally 'names')", context)
    root, classes, edges = data["root"], data["classes"], data["edges"]
    names = {} if data.get("names") is None else data["names"]
    problems = []
    if not isinstance(root, str):
        problems.append(f"'root' must be a node id (a string), got {json.dumps(root)}")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        problems.append("'classes' must be a list of node ids (strings), got "
                        + (type(classes).__name__ if not isinstance(classes, list) else
                           "non-strings: " + _quoted(c for c in classes if not isinstance(c, str))))
    if not isinstance(edges, list):
        problems.append(f"'edges' must be a list of [parent, child] pairs, got "
                        f"{type(edges).__name__}")
    else:
        bad = [e for e in edges if not isinstance(e, list) or len(e) != 2
               or not all(isinstance(v, str) for v in e)]
        if bad:
            problems.append(f"edges must be [parent, child] pairs of node ids, got: {_quoted(bad)}")
    if not isinstance(names, Mapping):
        problems.append(f"'names' must be an object mapping node ids to names, got "
                        f"{type(names).__name__}")
    elif not all(isinstance(v, str) for v in names.values()):
        problems.append("'names' values must be strings")
    if problems:
        raise HierarchyError(problems, context)
    graph = nx.DiGraph()
    graph.add_node(root)
    graph.add_edges_from((u, v) for u, v in edges)
    return _name_nodes(graph, names), classes, root


# ---------------------------------------------------------------------- the hierarchy
class Hierarchy:
    """A rooted class hierarchy: ``graph`` (parent → child ``networkx.DiGraph``) + ``classes``.

    Attributes:
        graph: acyclic, single root; node attribute ``"name"`` = human-readable label
            (optional). Treat as read-only: derived values are cached (depths at
            construction, the distance matrices on first use).
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
        self._cache: dict[str, object] = {}  # distances, computed on first use

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, parent_child_pairs: Iterable[Sequence[str]], classes: Sequence[str],
                   *, root: str | None = None, names: Mapping[str, str] | None = None,
                   context: str = "") -> "Hierarchy":
        """From ``(parent, child)`` pairs; ``names`` optionally maps nodes to readable labels.

        The root is the single node without a parent (or ``root`` if given).
        """
        return cls(_edges_graph(parent_child_pairs, root, names, context), classes, root,
                   context=context)

    @classmethod
    def from_taxonomy(cls, table, levels: Sequence[str], *, root: str = "root") -> "Hierarchy":
        """From a table with one row per class and one column per taxonomic level.

        Args:
            table: a ``pandas.DataFrame`` or the path of a UTF-8 CSV file.
            levels: a list of column names from the top level down to the class column,
                e.g. ``["order", "family", "genus", "class_name"]``. A root joins the top level.
            root: id of the root node.

        Node ids: classes are the values of the class column (``classes`` keeps the row
        order); a node of another level is ``"<level>:<value>"`` (``"genus:Larus"``), so that
        equal strings on different levels stay different nodes. Node attributes: ``name``
        (the cell value) and ``level`` (the column name).

        Raises:
            HierarchyError: an unreadable file (see :func:`read_csv_table`), missing columns,
                no rows, empty cells (row, line and column named), a node with two different
                parents (e.g. a genus under two families), duplicate classes.
            TypeError: ``table`` is neither; ``levels`` is a single string.
        """
        levels = _level_list(levels)
        frame, lines, context = _read_taxonomy(table, levels)
        graph, classes = _taxonomy_graph(frame, levels, root, lines, context)
        return cls(graph, classes, root, context=context)

    @classmethod
    def from_wordnet(cls, wnids: Sequence[str], mode: str = "dag") -> "Hierarchy":
        """The WordNet 3.0 subnet above ImageNet-style noun wnids (``"n01532829"``), in label order.

        ``mode="dag"``: every hypernym path of each class up to ``entity.n.01`` (hypernyms and
        instance hypernyms, as nltk's ``hypernym_paths``). ``mode="tree"``: every synset keeps
        one parent, the hypernym of smallest ``min_depth`` (ties: smallest wnid), so each class
        keeps a shortest path. Node ids are wnids; ``name`` = the first lemma (``"house finch"``).

        Raises:
            HierarchyError: listing every malformed, unknown or non-noun wnid.
            kesl_utils.wordnet.WordNetUnavailable: WordNet 3.0 cannot be provisioned.
        """
        wnids = list(wnids)
        graph = _wordnet_graph(wnids, mode)
        return cls(graph, wnids, ROOT_WNID if ROOT_WNID in graph else None,
                   context=f"from_wordnet({mode})")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """``{"root", "classes", "edges": sorted [[parent, child], …], "names": {node: name}}``"""
        names = {n: str(d["name"]) for n, d in self.graph.nodes(data=True) if "name" in d}
        return {"root": self.root, "classes": list(self.classes),
                "edges": sorted([u, v] for u, v in self.graph.edges()),
                "names": dict(sorted(names.items()))}

    def to_json_text(self, comment: str | None = None) -> str:
        """Deterministic JSON: sorted edges and names, one item per line for readable diffs."""
        return _json_text(self.to_dict(), comment)

    def to_json(self, path: str | os.PathLike, *, comment: str | None = None) -> Path:
        """Write :meth:`to_json_text` atomically to ``path``; returns the path."""
        return paths.atomic_write_text(path, self.to_json_text(comment))

    @classmethod
    def from_dict(cls, data: Mapping, *, context: str = "hierarchy dict") -> "Hierarchy":
        """Inverse of :meth:`to_dict` (an optional ``"comment"`` key is ignored)."""
        graph, classes, root = _dict_graph(data, context)
        return cls(graph, classes, root, context=context)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Hierarchy":
        """Read a file written by :meth:`to_json`; errors name the file (and line)."""
        return cls.from_dict(_read_json(Path(path)), context=str(path))

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
        return min(p for p in self.graph.predecessors(node)
                   if self._depth[p] == self._depth[node] - 1)

    def children(self, node: str) -> list[str]:
        """All children of ``node`` in the graph, sorted by id."""
        return sorted(self.graph.successors(node))

    def canonical_children(self) -> dict[str, list[str]]:
        """Children in the canonical spanning tree (each node under :meth:`parent`), sorted."""
        children: dict[str, list[str]] = {n: [] for n in self.graph}
        for node in sorted(self.graph):
            if node != self.root:
                children[self.parent(node)].append(node)
        return children

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
        return [path[min(depth, len(path) - 1)] for path in map(self.path_from_root, self.classes)]

    def levels_summary(self) -> pd.DataFrame:
        """One row per depth: ``depth``, ``n_nodes``, ``n_classes``, ``examples`` (names of up
        to three nodes, alphabetically first)."""
        by_depth: dict[int, list[str]] = defaultdict(list)
        for node, d in self._depth.items():
            by_depth[d].append(node)
        rows = [{"depth": d, "n_nodes": len(by_depth[d]),
                 "n_classes": sum(1 for n in by_depth[d] if n in self._index),
                 "examples": ", ".join(sorted(self.name(n) for n in by_depth[d])[:3])}
                for d in sorted(by_depth)]
        return pd.DataFrame(rows, columns=["depth", "n_nodes", "n_classes", "examples"])

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
            for child in reversed(self.children(node)):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return np.asarray(order, dtype=np.int64)

    # ------------------------------------------------------------------ distances
    # Each is computed once per hierarchy (the graph is read-only) and handed out as a copy:
    # callers pass these arrays to torch.as_tensor, which shares memory with its argument and
    # warns on a read-only array, so a copy is what keeps the cached value safe for them.
    def _cached(self, key: str, compute):
        if key not in self._cache:
            value = compute()
            if isinstance(value, np.ndarray):
                value.flags.writeable = False  # nothing in here may change the cached value
            self._cache[key] = value
        return self._cache[key]

    def edge_distances(self) -> np.ndarray:
        """e_ij, shape (n, n): see :func:`kesl_utils.distances.edge_distances`.

        Computed on the first call, then cached; every call returns a new writable copy.
        """
        return self._cached("edge_distances", lambda: distances.edge_distances(self)).copy()

    def node_heights(self) -> dict[str, int]:
        """Height of each node with a class below it: see :func:`kesl_utils.distances.node_heights`.

        Computed on the first call, then cached; every call returns a new dict.
        """
        return dict(self._node_heights())

    def _node_heights(self) -> dict[str, int]:
        return self._cached("node_heights", lambda: distances.node_heights(self))

    def lca_heights(self) -> np.ndarray:
        """LCA heights, shape (n, n): see :func:`kesl_utils.distances.lca_heights`.

        Computed on the first call (from the cached :meth:`node_heights`), then cached; every
        call returns a new writable copy.
        """
        return self._cached("lca_heights", lambda: distances.lca_heights(
            self, heights=self._node_heights())).copy()

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
def _shipped_path(dataset: str) -> Path:
    return paths.hierarchies_dir() / dataset_spec(dataset).hierarchy_file


def _pretty_class_name(class_name: str) -> str:
    """``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``."""
    return class_name.split(".", 1)[-1].replace("_", " ")


def load_taxonomy_hierarchy(path: str | os.PathLike, levels: Sequence[str]) -> Hierarchy:
    """A taxonomy CSV with a ``class_id`` column: classes ordered by ``class_id``.

    Class nodes are named without number prefix and underscores
    (``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``). Errors name the file's
    rows and lines.
    """
    levels = _level_list(levels)
    frame, lines = read_csv_table(path, "a taxonomy CSV with the columns "
                                  + _quoted(["class_id", *levels]))
    graph, file_order = _taxonomy_graph(frame, levels, "root", lines, str(path))
    if "class_id" not in frame.columns:
        raise HierarchyError(f"no 'class_id' column; columns are {_quoted(frame.columns)}",
                             str(path))
    ids: list[int | None] = []
    for text in frame["class_id"]:
        try:
            ids.append(int(text.strip()))
        except ValueError:
            ids.append(None)
    bad = [row for row, i in enumerate(ids) if i is None]
    if bad:
        raise HierarchyError(f"class_id is not an integer in {_rows(bad, lines)}", str(path))
    repeated = [i for i, k in Counter(ids).items() if k > 1]
    if repeated:
        raise HierarchyError(f"duplicate class_id values {_quoted(repeated)}", str(path))
    by_id = [c for _, c in sorted(zip(ids, file_order))]
    hierarchy = Hierarchy(graph, by_id, "root", context=str(path))
    for c in hierarchy.classes:
        graph.nodes[c]["name"] = _pretty_class_name(c)
    return hierarchy


def load_cub_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """CUB-200-2011 taxonomy root → order → family → genus → class (``cub_taxonomy.csv``).

    Classes are the ``class_name`` values (``"001.Black_footed_Albatross"``) ordered by
    ``class_id`` (label id = class_id − 1 for the shipped file).
    """
    return load_taxonomy_hierarchy(path if path is not None else _shipped_path("cub"),
                                   DATASETS["cub"].taxonomy_levels)


def load_mini_imagenet_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """The WordNet DAG subnet of the 100 Mini-ImageNet classes (shipped JSON; no WordNet)."""
    return Hierarchy.from_json(path if path is not None else _shipped_path("mini_imagenet"))


def load_hierarchy(dataset: str) -> Hierarchy:
    """The shipped hierarchy of a dataset of :data:`kesl_utils.names.DATASETS`.

    A ``"taxonomy"`` dataset reads its CSV (:func:`load_taxonomy_hierarchy` with the
    registry's ``taxonomy_levels``), a ``"wordnet"`` dataset its derived JSON subnet.
    """
    spec = dataset_spec(dataset)
    if spec.hierarchy_kind == "taxonomy":
        return load_taxonomy_hierarchy(_shipped_path(dataset), spec.taxonomy_levels)
    if spec.hierarchy_kind == "wordnet":
        return Hierarchy.from_json(_shipped_path(dataset))
    raise ValueError(f"dataset {dataset!r} has hierarchy_kind={spec.hierarchy_kind!r}; "
                     "expected 'taxonomy' or 'wordnet'")


def read_class_wnids(csv_path: str | os.PathLike) -> list[str]:
    """The ``wnid`` column of a class list CSV, in file order."""
    table, _ = read_csv_table(csv_path, "a class list CSV with a 'wnid' column")
    if "wnid" not in table.columns:
        raise HierarchyError(f"no 'wnid' column; columns are {_quoted(table.columns)}",
                             str(csv_path))
    return [w.strip() for w in table["wnid"]]


# ---------------------------------------------------------------------- derived WordNet subnets
def wordnet_datasets() -> list[str]:
    """The datasets of the registry whose hierarchy is a WordNet subnet, in registry order."""
    return [name for name, spec in DATASETS.items() if spec.hierarchy_kind == "wordnet"]


def wordnet_subnet(dataset: str) -> tuple[Hierarchy, str]:
    """Rebuild a shipped subnet from its class CSV and WordNet: ``(hierarchy, comment)``."""
    spec = dataset_spec(check_choice("dataset", dataset, wordnet_datasets()))
    hierarchy = Hierarchy.from_wordnet(read_class_wnids(paths.hierarchies_dir() / spec.class_list),
                                       mode="dag")
    # The comment is part of the shipped JSON files: change the command in both at once.
    comment = (f"WordNet 3.0 subnet (every hypernym path up to entity.n.01) of the classes "
               f"in {spec.class_list}, in its row order; derived data, regenerate with "
               "`python -m kesl_utils hierarchy regenerate`")
    return hierarchy, comment


class Regeneration(dict):
    """``{json_path: changed}`` from :func:`regenerate_wordnet_subnets`; ``check``: compare only."""

    def __init__(self, changed: Mapping[Path, bool], *, check: bool):
        super().__init__(changed)
        self.check = check


def regenerate_wordnet_subnets(*, check: bool = False,
                               datasets: Sequence[str] | None = None) -> Regeneration:
    """Rebuild the WordNet subnet JSON files of the registry from their class CSVs and WordNet 3.0.

    Args:
        check: compare only; write nothing.
        datasets: which datasets (default: every WordNet dataset of the registry).

    Returns:
        ``{json_path: changed}`` — whether the file differed from the regenerated text
        (and, unless ``check``, was rewritten atomically). A command line exits with 1 when
        ``check`` and any value is true.

    Raises:
        ValueError: a dataset that is not a WordNet dataset of the registry (before any work).
    """
    datasets = wordnet_datasets() if datasets is None else list(datasets)
    for dataset in datasets:
        check_choice("dataset", dataset, wordnet_datasets())
    result = {}
    for dataset in datasets:
        hierarchy, comment = wordnet_subnet(dataset)
        text = hierarchy.to_json_text(comment)
        target = _shipped_path(dataset)
        old = target.read_text(encoding="utf-8") if target.exists() else None
        result[target] = old != text
        if old != text and not check:
            paths.atomic_write_text(target, text)
    return Regeneration(result, check=check)


def describe_regeneration(result: Mapping[Path, bool], check: bool | None = None) -> list[str]:
    """One line per file of :func:`regenerate_wordnet_subnets`, path relative to the repository.

    ``"data/hierarchies/x.json: up to date (Hierarchy(DAG, …))"``, ``": rewritten (…)"`` or,
    when checking, ``": differs"``. ``check`` defaults to the result's own ``check``.
    """
    check = getattr(result, "check", False) if check is None else check
    lines = []
    for path, changed in result.items():
        state = ("differs" if check else "rewritten") if changed else "up to date"
        shown = path.relative_to(paths.PROJECT_ROOT) if path.is_relative_to(paths.PROJECT_ROOT) \
            else path
        detail = f" ({Hierarchy.from_json(path)!r})" if path.exists() and not (check and changed) \
            else ""
        lines.append(f"{shown}: {state}{detail}")
    return lines
