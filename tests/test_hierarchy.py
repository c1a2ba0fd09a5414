"""Hierarchy: constructors, queries, validation errors (naming the file and line), JSON, layout.

The hand-drawn hierarchies T1 and D1 are defined here and reused by test_distances.py, which
checks e_ij and the LCA heights on them. No WordNet needed here (see test_wordnet.py and
test_shipped_hierarchies.py).
"""
from __future__ import annotations

import json
import random

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from kesl_utils import hierarchy_files as F
from kesl_utils import plots
from kesl_utils.hierarchy import Hierarchy, HierarchyError

# Hand-drawn tree T1 (classes in capitals):
#
#   root ─┬─ A ─┬─ A1 ─┬─ a
#         │     │      └─ b
#         │     └─ A2 ── c
#         └─ B ─┬─ B1 ── d
#               └─ e            (a class one level higher than the others)
T1_EDGES = [("root", "A"), ("root", "B"), ("A", "A1"), ("A", "A2"), ("A1", "a"), ("A1", "b"),
            ("A2", "c"), ("B", "B1"), ("B1", "d"), ("B", "e")]
T1_CLASSES = ["a", "b", "c", "d", "e"]
T1_E = np.array([
    # a  b  c  d  e
    [0, 2, 4, 6, 5],  # a: a-A1-b; a-A1-A-A2-c; a-A1-A-root-B-B1-d; a-A1-A-root-B-e
    [2, 0, 4, 6, 5],
    [4, 4, 0, 6, 5],
    [6, 6, 6, 0, 3],  # d-B1-B-e
    [5, 5, 5, 3, 0],
])

# Hand-drawn DAG D1: m has two parents, q (depth 2) and r (depth 1, its canonical parent).
#
#   root ─┬─ p ── q ─┬─ s
#         │          └─ m
#         └─ r ─┬─── m
#               └─ t
# e(m, s) = 2 through m's second parent q (the canonical tree would say 5);
# e(s, t) = 4 on s-q-m-r-t, which climbs to no common ancestor (via the root: 5).
D1_EDGES = [("root", "p"), ("p", "q"), ("q", "s"), ("q", "m"), ("root", "r"), ("r", "m"),
            ("r", "t")]
D1_CLASSES = ["m", "s", "t"]
D1_E = np.array([[0, 2, 2], [2, 0, 4], [2, 4, 0]])


def t1() -> Hierarchy:
    return Hierarchy.from_edges(T1_EDGES, T1_CLASSES, names={"a": "Alpha", "A": "Group A"})


def d1() -> Hierarchy:
    return Hierarchy.from_edges(D1_EDGES, D1_CLASSES)


def random_hierarchy(seed: int, n_nodes: int = 40, extra_parents: int = 0) -> Hierarchy:
    """A random rooted tree plus ``extra_parents`` edges from shallower nodes (a DAG)."""
    rng = random.Random(seed)
    graph = nx.DiGraph()
    graph.add_node("n0")
    for k in range(1, n_nodes):
        graph.add_edge(f"n{rng.randrange(k)}", f"n{k}")
    for _ in range(extra_parents):
        child = rng.randrange(2, n_nodes)
        graph.add_edge(f"n{rng.randrange(child)}", f"n{child}")  # lower index: stays acyclic
    leaves = [n for n in graph if graph.out_degree(n) == 0]
    rng.shuffle(leaves)
    return Hierarchy(graph, leaves)


# ---------------------------------------------------------------- constructors
def test_from_edges_tree_basic_queries():
    h = t1()
    assert h.root == "root" and h.num_classes == 5 and h.classes == T1_CLASSES
    assert h.is_tree
    assert h.class_names() == ["Alpha", "b", "c", "d", "e"]
    assert h.name("A") == "Group A"
    assert [h.depth(n) for n in ("root", "A", "A1", "a", "e")] == [0, 1, 2, 3, 2]
    assert h.class_index("d") == 3
    with pytest.raises(KeyError, match="'zz'"):
        h.depth("zz")
    with pytest.raises(KeyError, match="not one of the 5 classes"):
        h.class_index("A")


def test_constructor_from_graph_and_explicit_root():
    graph = nx.DiGraph(T1_EDGES)
    h = Hierarchy(graph, T1_CLASSES, root="root")
    assert h.graph is graph and h.root == "root"
    assert h == Hierarchy.from_edges(T1_EDGES, T1_CLASSES)


def test_from_taxonomy_dataframe_nodes_names_levels():
    table = pd.DataFrame({
        "order": ["O1", "O1", "O1", "O2"],
        "family": ["F1", "F1", "F2", "F3"],
        "genus": ["Larus", "Larus", "G2", "G3"],
        "species": ["Larus", "L. b", "G2 c", "G3 d"],  # a species spelled like a genus
    })
    h = Hierarchy.from_taxonomy(table, ["order", "family", "genus", "species"])
    assert h.classes == ["Larus", "L. b", "G2 c", "G3 d"]
    assert h.root == "root" and h.is_tree
    assert "genus:Larus" in h.graph and "Larus" in h.graph
    assert h.graph.nodes["genus:Larus"] == {"name": "Larus", "level": "genus"}
    assert h.graph.nodes["order:O1"]["level"] == "order"
    assert sorted(h.graph.successors("root")) == ["order:O1", "order:O2"]
    assert h.parent("Larus") == "genus:Larus"
    assert h.ancestors_at_depth(3) == ["genus:Larus", "genus:Larus", "genus:G2", "genus:G3"]
    assert h.ancestors_at_depth(1) == ["order:O1"] * 3 + ["order:O2"]
    # congeneric: e = 2; confamilial: 4; same order: 6; different orders: 8
    np.testing.assert_array_equal(h.edge_distances(), [[0, 2, 6, 8], [2, 0, 6, 8],
                                                       [6, 6, 0, 8], [8, 8, 8, 0]])


def test_from_taxonomy_csv_path_and_custom_root(tmp_path):
    csv = tmp_path / "tax.csv"
    csv.write_text("family,genus,name,comment\nF,G1,x,\nF,G1,y,note\nF,G2,z,\n")
    h = Hierarchy.from_taxonomy(csv, ["family", "genus", "name"], root="Aves")
    assert h.root == "Aves" and h.classes == ["x", "y", "z"]
    np.testing.assert_array_equal(h.edge_distances(), [[0, 2, 4], [2, 0, 4], [4, 4, 0]])


def test_from_taxonomy_single_level():
    h = Hierarchy.from_taxonomy(pd.DataFrame({"c": ["x", "y", "z"]}), ["c"])
    np.testing.assert_array_equal(h.edge_distances(), 2 * (1 - np.eye(3)))


# ---------------------------------------------------------------- orders and summaries
def test_leaf_order_depth_first_children_by_id():
    h = Hierarchy.from_edges(T1_EDGES, ["e", "d", "c", "b", "a"])
    # DFS: A(A1(a, b), A2(c)), B(B1(d), e) → a b c d e → their label ids
    np.testing.assert_array_equal(h.leaf_order(), [4, 3, 2, 1, 0])
    assert sorted(h.leaf_order()) == list(range(5))


def test_leaf_order_dag_visits_each_class_once():
    # root-p-q-(m, s), then r-(m already placed, t)
    np.testing.assert_array_equal(d1().leaf_order(), [0, 1, 2])


def test_levels_summary_values():
    summary = t1().levels_summary()
    assert list(summary.columns) == ["depth", "n_nodes", "n_classes", "examples"]
    assert summary["depth"].tolist() == [0, 1, 2, 3]
    assert summary["n_nodes"].tolist() == [1, 2, 4, 4]
    assert summary["n_classes"].tolist() == [0, 0, 1, 4]
    assert summary.loc[1, "examples"] == "B, Group A"


def test_children_and_canonical_children_dag():
    h = d1()
    assert h.children("root") == ["p", "r"] and h.children("q") == ["m", "s"]
    assert h.children("m") == []
    tree = h.canonical_children()
    assert set(tree) == set(h.graph)
    assert tree["q"] == ["s"] and tree["r"] == ["m", "t"]  # m sits under its canonical parent r
    assert sum(len(c) for c in tree.values()) == h.graph.number_of_nodes() - 1


def test_ancestors_at_depth():
    h = t1()
    assert h.ancestors_at_depth(0) == ["root"] * 5
    assert h.ancestors_at_depth(1) == ["A", "A", "A", "B", "B"]
    assert h.ancestors_at_depth(2) == ["A1", "A1", "A2", "B1", "e"]  # e is shallower
    assert h.ancestors_at_depth(9) == T1_CLASSES
    assert d1().ancestors_at_depth(1) == ["r", "p", "r"]  # m's canonical parent is r
    with pytest.raises(ValueError, match="non-negative"):
        h.ancestors_at_depth(-1)


# ---------------------------------------------------------------- drawing (kesl_utils.plots)
def test_radial_layout_angles_and_radii():
    h = t1()
    layout = plots.radial_layout(h)
    assert set(layout) == set(h.graph)
    angles = [layout[h.classes[i]][0] for i in h.leaf_order()]
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(5) / 5)
    assert layout["e"][1] == 3.0 and plots.radial_layout(h, classes_outside=False)["e"][1] == 2.0
    assert layout["A1"] == (pytest.approx(np.pi * 0.2), 2.0)  # mean of a and b


def test_radial_layout_dag_follows_canonical_parents():
    layout = plots.radial_layout(d1())
    # Leaves in canonical depth-first order: s (under p-q), m and t (under r).
    np.testing.assert_allclose([layout[n][0] for n in ("s", "m", "t")],
                               2 * np.pi * np.arange(3) / 3)
    assert layout["r"][0] == pytest.approx((layout["m"][0] + layout["t"][0]) / 2)
    assert layout["m"][1] == layout["s"][1] == 3.0  # classes on the outer ring


# ---------------------------------------------------------------- JSON
def test_json_round_trip_and_deterministic_text(tmp_path):
    h = t1()
    path = h.to_json(tmp_path / "sub" / "t1.json", comment="hand-drawn")
    data = json.loads(path.read_text())
    assert data["root"] == "root" and data["classes"] == T1_CLASSES
    assert data["edges"] == sorted([list(e) for e in T1_EDGES])
    assert data["names"] == {"A": "Group A", "a": "Alpha"}
    assert data["comment"] == "hand-drawn"
    back = Hierarchy.from_json(path)
    assert back == h
    np.testing.assert_array_equal(back.edge_distances(), T1_E)
    # Same graph, edges inserted in another order: identical text.
    shuffled = Hierarchy.from_edges(T1_EDGES[::-1], T1_CLASSES,
                                    names={"A": "Group A", "a": "Alpha"})
    assert shuffled.to_json_text() == h.to_json_text()
    assert list(tmp_path.glob("sub/*.tmp")) == []


def test_json_round_trip_dag_and_taxonomy(tmp_path):
    for h in (d1(), Hierarchy.from_taxonomy(pd.DataFrame({"g": ["G", "G"], "s": ["x", "y"]}),
                                            ["g", "s"])):
        back = Hierarchy.from_json(h.to_json(tmp_path / "h.json"))
        assert back == h and back.class_names() == h.class_names()
        np.testing.assert_array_equal(back.edge_distances(), h.edge_distances())


def test_equality():
    assert t1() == t1()
    assert t1() != d1()
    assert Hierarchy.from_edges(T1_EDGES, T1_CLASSES) != Hierarchy.from_edges(
        T1_EDGES, T1_CLASSES[::-1])
    assert t1().__eq__("t1") is NotImplemented


# ---------------------------------------------------------------- validation errors
def test_error_is_value_error_listing_problems():
    with pytest.raises(ValueError) as info:
        Hierarchy.from_edges(T1_EDGES, ["a", "zz"])
    assert isinstance(info.value, HierarchyError)
    assert info.value.problems == ["classes missing from the graph: 'zz'"]


def test_error_cycle_lists_every_cycle():
    edges = [("root", "a"), ("a", "b"), ("b", "a"), ("root", "c"), ("c", "d"), ("d", "e"),
             ("e", "c"), ("root", "f"), ("f", "f")]
    with pytest.raises(HierarchyError, match="3 cycle") as info:
        Hierarchy.from_edges(edges, ["b", "d"])
    message = str(info.value)
    assert "'a' -> 'b' -> 'a'" in message or "'b' -> 'a' -> 'b'" in message
    assert "'f' -> 'f'" in message
    assert all(f"'{n}'" in message for n in "cde")


def test_error_classes_missing_from_graph_all_listed():
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_edges(T1_EDGES, ["a", "x1", "b", "x2"])
    assert "classes missing from the graph: 'x1', 'x2'" in str(info.value)


def test_error_duplicate_classes():
    with pytest.raises(HierarchyError, match=r"duplicate classes: 'a' \(×2, positions \[0, 2\]\)"
                       r", 'c' \(×2, positions \[1, 3\]\)"):
        Hierarchy.from_edges(T1_EDGES, ["a", "c", "a", "c"])


def test_error_class_ancestor_of_other_classes():
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_edges(T1_EDGES, ["a", "A1", "A", "d"])
    problems = info.value.problems
    assert "class 'A1' is an ancestor of other classes: 'a'" in problems
    assert "class 'A' is an ancestor of other classes: 'A1', 'a'" in problems


def test_error_class_ancestor_in_dag():
    with pytest.raises(HierarchyError, match="'q' is an ancestor of other classes: 'm', 's'"):
        Hierarchy.from_edges(D1_EDGES, ["q", "m", "s"])


def test_error_more_than_one_root_and_unreachable_classes():
    edges = [("r1", "a"), ("r1", "b"), ("r2", "c"), ("r3", "x")]
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_edges(edges, ["a", "b", "c"])
    message = str(info.value)
    assert "more than one root (3 nodes without a parent" in message
    assert "'r1' (2 classes below), 'r2' (1 classes below), 'r3' (0 classes below)" in message
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_edges(edges, ["a", "b", "c"], root="r1")
    assert "classes not reachable from the root 'r1': 'c'" in info.value.problems
    assert "more than one root: besides 'r1', nodes without a parent: 'r2', 'r3'" \
        in info.value.problems


def test_error_root_with_parent_or_absent():
    with pytest.raises(HierarchyError, match="root 'A' has parents: 'root'"):
        Hierarchy(nx.DiGraph(T1_EDGES), T1_CLASSES, root="A")
    with pytest.raises(HierarchyError, match="root 'nope' is not a node"):
        Hierarchy(nx.DiGraph(T1_EDGES), T1_CLASSES, root="nope")


def test_error_no_root_pure_cycle():
    with pytest.raises(HierarchyError, match="no root: every node has a parent"):
        Hierarchy.from_edges([("a", "b"), ("b", "a")], ["a"])


def test_error_non_string_ids_and_bad_pairs_and_empty():
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_edges([(0, 1), (0, 2)], [1, 2])
    assert "class ids must be strings; not strings: 1, 2" in info.value.problems
    assert "node ids must be strings; not strings: 0, 1, 2" in info.value.problems
    with pytest.raises(HierarchyError, match=r"\(parent, child\) pairs, got: \('a', 'b', 'c'\)"):
        Hierarchy.from_edges([("r", "a"), ("a", "b", "c")], ["a"])
    with pytest.raises(HierarchyError, match="no classes given"):
        Hierarchy.from_edges(T1_EDGES, [])
    with pytest.raises(HierarchyError, match="must be a networkx.DiGraph"):
        Hierarchy(nx.Graph(T1_EDGES), T1_CLASSES)


TAXONOMY = pd.DataFrame({
    "order": ["O1", "O1", "O1", "O2", "O2"],
    "family": ["F1", "F1", "F2", "F3", "F3"],
    "genus": ["G1", "G1", "G2", "G3", "G4"],
    "class_name": ["c1", "c2", "c3", "c4", "c5"],
})
LEVELS = ["order", "family", "genus", "class_name"]


def test_taxonomy_error_empty_levels_name_row_and_column(tmp_path):
    table = TAXONOMY.copy()
    table.loc[1, "genus"] = " "
    table.loc[3, "order"] = None
    table.loc[4, "class_name"] = ""
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_taxonomy(table, LEVELS)
    assert info.value.problems == [
        "row 2 (class 'c2'): column 'genus' is empty",
        "row 4 (class 'c4'): column 'order' is empty",
        "row 5: column 'class_name' is empty",
    ]
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    with pytest.raises(HierarchyError, match=r"(?s)t\.csv: .*row 2 \(line 3, class 'c2'\): "
                       "column 'genus' is empty"):
        Hierarchy.from_taxonomy(csv, LEVELS)


def test_taxonomy_error_node_with_two_parents():
    table = TAXONOMY.copy()
    table.loc[2, "genus"] = "G1"  # G1 now under F1 (rows 1, 2) and F2 (row 3)
    table.loc[4, "family"] = "F1"  # F1 now under O1 (rows 1, 2) and O2 (row 5)
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_taxonomy(table, LEVELS)
    problems = info.value.problems
    assert "genus 'G1' is filed under 2 different family values: 'F1' (rows 1, 2); " \
           "'F2' (row 3)" in problems
    assert "family 'F1' is filed under 2 different order values: 'O1' (rows 1, 2); " \
           "'O2' (row 5)" in problems


def test_taxonomy_error_duplicates_missing_columns_clash(tmp_path):
    table = TAXONOMY.copy()
    table.loc[4, "class_name"] = "c1"
    with pytest.raises(HierarchyError, match=r"duplicate class 'c1' in rows 1, 5"):
        Hierarchy.from_taxonomy(table, LEVELS)
    with pytest.raises(HierarchyError, match=r"missing level columns 'tribe', 'kingdom'"):
        Hierarchy.from_taxonomy(TAXONOMY, ["tribe", "kingdom", "class_name"])
    with pytest.raises(HierarchyError, match="levels is empty"):
        Hierarchy.from_taxonomy(TAXONOMY, [])
    table = TAXONOMY.copy()
    table.loc[0, "class_name"] = "root"
    with pytest.raises(HierarchyError, match="class ids equal to internal node ids: 'root'"):
        Hierarchy.from_taxonomy(table, LEVELS)
    with pytest.raises(HierarchyError, match=r"none\.csv: .*the file does not exist; expected a "
                       "taxonomy CSV with the columns 'order', 'family'"):
        Hierarchy.from_taxonomy(tmp_path / "none.csv", LEVELS)
    with pytest.raises(TypeError, match="DataFrame or a CSV path"):
        Hierarchy.from_taxonomy([["a"]], LEVELS)


# ---------------------------------------------------------------- unreadable files (issue 11)
CSV_HEADER = "order,family,genus,class_name\n"


def test_taxonomy_csv_empty_file_or_header_only(tmp_path):
    csv = tmp_path / "empty.csv"
    for text in ("", "\n\n"):
        csv.write_text(text)
        with pytest.raises(HierarchyError, match=r"empty\.csv: .*the file is empty; expected a "
                           "taxonomy CSV with the columns 'order', 'family', 'genus', "
                           "'class_name'"):
            Hierarchy.from_taxonomy(csv, LEVELS)
    csv.write_text(CSV_HEADER)
    with pytest.raises(HierarchyError, match=r"empty\.csv: .*no rows; expected one row per class"):
        Hierarchy.from_taxonomy(csv, LEVELS)


def test_taxonomy_csv_not_utf8_latin1_and_binary(tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((CSV_HEADER + "O,F,G,x\nO,F,G,Pie-grièche\n").encode("latin-1"))
    with pytest.raises(HierarchyError, match=r"latin1\.csv: .*line 3: byte 0xe8 is not UTF-8; "
                       "expected a taxonomy CSV"):
        Hierarchy.from_taxonomy(latin1, LEVELS)
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(HierarchyError, match=r"image\.csv: .*line 3: a NUL byte, so this looks "
                       "like a binary file"):
        Hierarchy.from_taxonomy(binary, LEVELS)
    binary.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(HierarchyError, match=r"image\.csv: .*line 1: byte 0xff is not UTF-8"):
        Hierarchy.from_taxonomy(binary, LEVELS)


def test_taxonomy_csv_row_with_an_extra_field(tmp_path):
    csv = tmp_path / "extra.csv"
    csv.write_text(CSV_HEADER + "O,F,G,x\nO,F,G,y,surplus\n")
    with pytest.raises(HierarchyError, match=r"extra\.csv: .*line 3: 5 fields, but the header "
                       r"\(line 1\) has 4 columns"):
        Hierarchy.from_taxonomy(csv, LEVELS)


def test_taxonomy_csv_directory_and_duplicate_columns(tmp_path):
    with pytest.raises(HierarchyError, match=f"{tmp_path.name}: .*this is a directory; expected a "
                       "taxonomy CSV"):
        Hierarchy.from_taxonomy(tmp_path, LEVELS)
    csv = tmp_path / "dup.csv"
    csv.write_text("order,genus,genus,class_name\nO,G,G,x\n")
    with pytest.raises(HierarchyError, match=r"dup\.csv: .*line 1: duplicate column names 'genus'"):
        Hierarchy.from_taxonomy(csv, LEVELS)


def test_taxonomy_csv_unterminated_quote_names_the_line_where_it_opened(tmp_path):
    # Issue 23: read leniently, the quote on line 3 swallows lines 4-5 into one class name
    # ('c2\nO1,F1,G1,c3\nO2,F2,G2,c4\n') and the file loads with 2 classes instead of 4.
    csv = tmp_path / "quote.csv"
    csv.write_text(CSV_HEADER + 'O1,F1,G1,c1\nO1,F1,G1,"c2\nO1,F1,G1,c3\nO2,F2,G2,c4\n')
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_taxonomy(csv, LEVELS)
    assert info.value.problems == [
        "line 3: a quote opened on this line ('O1,F1,G1,\"c2') is never closed, so lines 3-5 "
        "(the end of the file) would be read as one field; expected a taxonomy CSV with the "
        "columns 'order', 'family', 'genus', 'class_name', one row per line (close the quote on "
        "line 3, or remove it)"]
    assert str(info.value).startswith(f"{csv}: invalid hierarchy: line 3: a quote opened")
    # The same file through the registry's loader names the same file and line.
    with pytest.raises(HierarchyError, match=r"quote\.csv: invalid hierarchy: line 3: a quote "
                       "opened on this line .* is never closed"):
        F.load_taxonomy_hierarchy(csv, LEVELS)


def test_taxonomy_csv_quote_closed_on_a_later_line_is_an_error(tmp_path):
    csv = tmp_path / "quote.csv"
    csv.write_text(CSV_HEADER + '\nO1,F1,G1,"c1\nO1,F1,G1,c2"\nO2,F2,G2,c3\n')
    with pytest.raises(HierarchyError, match=r"line 3: a quote opened on this line "
                       r"\('O1,F1,G1,\"c1'\) is closed only on line 4, so lines 3-4 would be "
                       "read as one field; expected a taxonomy CSV"):
        Hierarchy.from_taxonomy(csv, LEVELS)
    csv.write_text(CSV_HEADER + 'O1,F1,G1,"c1"x\n')  # text after a closing quote
    with pytest.raises(HierarchyError, match=r"line 2: not valid CSV \(',' expected after '\"'\); "
                       "expected a taxonomy CSV"):
        Hierarchy.from_taxonomy(csv, LEVELS)


def test_taxonomy_csv_quoted_fields_on_one_line_are_read(tmp_path):
    csv = tmp_path / "quote.csv"
    csv.write_text(CSV_HEADER + 'O1,F1,"Larus, gulls","c ""1"""\r\nO1,F1,G2,c2\r\n')
    h = Hierarchy.from_taxonomy(csv, LEVELS)
    assert h.classes == ['c "1"', "c2"]
    assert h.name("genus:Larus, gulls") == "Larus, gulls"


def test_taxonomy_csv_lines_count_blank_lines_bom_and_short_rows(tmp_path):
    csv = tmp_path / "t.csv"
    # A byte order mark, a blank line and a row without its trailing comment field: all accepted;
    # an empty cell is reported on its real line of the file.
    csv.write_text("\ufefforder,family,genus,class_name,comment\nO,F,G,x\n\nO,,G,y,z\n",
                   encoding="utf-8")
    with pytest.raises(HierarchyError,
                       match=r"row 2 \(line 4, class 'y'\): column 'family' is empty"):
        Hierarchy.from_taxonomy(csv, LEVELS)
    csv.write_text("\ufefforder,family,genus,class_name,comment\nO,F,G,x\n\nO,F,G,y,z\n",
                   encoding="utf-8")
    assert Hierarchy.from_taxonomy(csv, LEVELS).classes == ["x", "y"]


def test_taxonomy_levels_must_be_a_list(tmp_path):
    csv = tmp_path / "t.csv"
    TAXONOMY.to_csv(csv, index=False)
    for table in (TAXONOMY, csv):
        with pytest.raises(TypeError, match="levels must be a list of column names .* got the "
                           "string 'class_name'"):
            Hierarchy.from_taxonomy(table, "class_name")
    with pytest.raises(TypeError, match="levels must be a list"):
        F.load_taxonomy_hierarchy(csv, "class_name")
    assert Hierarchy.from_taxonomy(TAXONOMY, ("class_name",)).num_classes == 5  # a tuple is fine


GOOD = {"root": "r", "classes": ["a"], "edges": [["r", "a"]]}


@pytest.mark.parametrize("data, expected", [
    ({**GOOD, "edges": 5}, r"'edges' must be a list of \[parent, child\] pairs, got int"),
    ({**GOOD, "names": ["a", "b"]}, "'names' must be an object mapping node ids to names, got list"),
    ({**GOOD, "names": []}, "'names' must be an object mapping node ids to names, got list"),
    ({**GOOD, "root": None}, r"'root' must be a node id \(a string\), got null"),
    ({**GOOD, "classes": "a"}, r"'classes' must be a list of node ids \(strings\), got str"),
    ({**GOOD, "classes": ["a", 3]}, "'classes' must be .* got non-strings: 3"),
    ({**GOOD, "edges": ["ra"]}, r"edges must be \[parent, child\] pairs of node ids, got: 'ra'"),
    ({**GOOD, "edges": [["r", ["a"]]]}, r"pairs of node ids, got: \['r', \['a'\]\]"),
    ({**GOOD, "names": {"a": 1}}, "'names' values must be strings"),
    ({"classes": ["a"], "edges": [["r", "a"]]}, "missing keys 'root'"),
    (["r", "a"], "expected a JSON object, got list"),
])
def test_json_wrong_types_name_the_file(tmp_path, data, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(HierarchyError, match=r"bad\.json: invalid hierarchy.*" + expected):
        Hierarchy.from_json(bad)


def test_json_unreadable_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "root": "r",\n  "classes": ["a"]\n  "edges": []\n}\n')
    with pytest.raises(HierarchyError, match=r"bad\.json: .*line 4: not valid JSON: Expecting ','"):
        Hierarchy.from_json(bad)
    bad.write_bytes('{"root": "é"}'.encode("latin-1"))
    with pytest.raises(HierarchyError, match=r"bad\.json: .*line 1: byte 0xe9 is not UTF-8; "
                       "expected a hierarchy JSON file"):
        Hierarchy.from_json(bad)
    with pytest.raises(HierarchyError, match="this is a directory; expected a hierarchy JSON file"):
        Hierarchy.from_json(tmp_path)
    with pytest.raises(HierarchyError, match=r"none\.json: .*the file does not exist"):
        Hierarchy.from_json(tmp_path / "none.json")


def test_json_errors(tmp_path):
    with pytest.raises(HierarchyError, match="does not exist"):
        Hierarchy.from_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HierarchyError, match=r"bad\.json: .*line 1: not valid JSON"):
        Hierarchy.from_json(bad)
    bad.write_text(json.dumps({"root": "r", "edges": []}))
    with pytest.raises(HierarchyError, match=r"bad\.json: .*missing keys 'classes'"):
        Hierarchy.from_json(bad)
    bad.write_text(json.dumps({"root": "r", "classes": ["a"], "edges": [["r", "a", "x"]]}))
    with pytest.raises(HierarchyError, match=r"\[parent, child\] pairs"):
        Hierarchy.from_json(bad)
    bad.write_text(json.dumps({"root": "r", "classes": ["a", "b"], "edges": [["r", "a"]]}))
    with pytest.raises(HierarchyError, match=r"bad\.json: .*'b'"):
        Hierarchy.from_json(bad)


# ---------------------------------------------------------------- loaders
def test_load_hierarchy_unknown_dataset():
    # The registry's own check (kesl_utils.names.dataset_spec) lists the datasets.
    with pytest.raises(ValueError, match="dataset='imagenet' is not allowed; expected one of "
                       "'cub', 'mini_imagenet'"):
        F.load_hierarchy("imagenet")


def test_load_cub_hierarchy_orders_by_class_id_and_pretty_names(tmp_path):
    csv = tmp_path / "cub.csv"
    csv.write_text("class_id,class_name,order,family,genus,species,comment\n"
                   "2,002.Laysan_Albatross,P,D,Ph,Ph im,\n"
                   "10,010.Red_winged_Blackbird,Pa,I,Ag,Ag ph,\n"
                   "1,001.Black_footed_Albatross,P,D,Ph,Ph ni,\n")
    h = F.load_cub_hierarchy(csv)
    assert h.classes == ["001.Black_footed_Albatross", "002.Laysan_Albatross",
                         "010.Red_winged_Blackbird"]
    assert h.class_names() == ["Black footed Albatross", "Laysan Albatross",
                               "Red winged Blackbird"]
    np.testing.assert_array_equal(h.edge_distances(), [[0, 2, 8], [2, 0, 8], [8, 8, 0]])
    csv.write_text("class_id,class_name,order,family,genus\nx,001.A,P,D,G\n")
    with pytest.raises(HierarchyError, match=r"cub\.csv: .*class_id is not an integer in row 1 "
                       r"\(line 2\)"):
        F.load_cub_hierarchy(csv)
    csv.write_text("class_id,class_name,order,family,genus\n1,001.A,P,D,G\n1,002.B,P,D,G\n")
    with pytest.raises(HierarchyError, match=r"cub\.csv: .*duplicate class_id values 1"):
        F.load_cub_hierarchy(csv)
    csv.write_text("class_name,order,family,genus\n001.A,P,D,G\n")
    with pytest.raises(HierarchyError, match=r"cub\.csv: .*no 'class_id' column"):
        F.load_cub_hierarchy(csv)
    csv.write_text("class_id,class_name,order,family,genus\n1,001.A,P,,G\n")
    with pytest.raises(HierarchyError, match=r"cub\.csv: .*row 1 \(line 2, class '001.A'\): "
                       "column 'family' is empty"):
        F.load_cub_hierarchy(csv)


def test_radial_dendrogram_colours_more_groups_than_its_palette():
    """25 top-level groups (the palette has 18 shades): every group gets a legend entry, shades repeat."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    table = pd.DataFrame({"group": [f"g{i:02d}" for i in range(25) for _ in range(2)],
                          "class_name": [f"c{i:02d}_{j}" for i in range(25) for j in range(2)]})
    h = Hierarchy.from_taxonomy(table, levels=["group", "class_name"])
    fig, ax = plt.subplots()
    plots.radial_dendrogram(h, 1, ax, "25 groups")
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"g{i:02d}" for i in range(25)]
    colours = [tuple(p.get_facecolor()) for p in legend.get_patches()]
    assert colours[0] == colours[18] and len(set(colours[:18])) == 18
    plt.close(fig)


def test_radial_dendrogram_draws_the_same_lines_whatever_order_the_edges_were_read_in():
    """A DAG read with its edges in another order (as WordNet read through another route lists hypernyms) draws the
    same segments in the same order, so the saved figure is byte-identical."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    edges = [("r", "a"), ("r", "b"), ("a", "x"), ("a", "y"), ("b", "y"), ("b", "z"), ("a", "z")]

    def drawn(pairs):
        fig, ax = plt.subplots()
        plots.radial_dendrogram(Hierarchy.from_edges(pairs, ["x", "y", "z"]), 1, ax, "dag")
        lines = [[np.asarray(seg).round(9).tolist() for seg in c.get_segments()] for c in ax.collections]
        plt.close(fig)
        return lines

    forward, backward = drawn(edges), drawn(edges[::-1])
    assert len(forward[1]) == 2  # two second-hypernym chords (y under b, z under a or b)
    assert forward == backward


def test_save_figure_is_byte_stable_and_goes_to_the_folder_it_is_given(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    contents = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0.1 + 1e-12, 0.2])
        path = plots.save_figure(fig, "probe", tmp_path / "figures")
        plt.close(fig)
        contents.append(path.read_bytes())
    assert path == tmp_path / "figures" / "probe.png"
    assert contents[0] == contents[1] and b"Software" not in contents[0] and b"Creation" not in contents[0]
