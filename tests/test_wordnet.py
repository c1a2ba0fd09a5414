"""WordNet provisioning (kesl_utils.wordnet) and Hierarchy.from_wordnet on real synsets.

Tests that need WordNet 3.0 skip when it cannot be provisioned without the network
(install it with `apt-get install wordnet-base wordnet-sense-index`).
"""
from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from kesl_utils import paths
from kesl_utils import wordnet as W
from kesl_utils.hierarchy import ROOT_WNID, Hierarchy, HierarchyError

HOUSE_FINCH, TABBY, PERSIAN_CAT = "n01532829", "n02123045", "n02123394"
DUGONG, MINIATURE_POODLE = "n02074367", "n02113712"
BIRD = "n01503061"


def reference_distances(h: Hierarchy) -> np.ndarray:
    undirected = h.graph.to_undirected()
    return np.array([[nx.shortest_path_length(undirected, a, b) for b in h.classes]
                     for a in h.classes])


# ---------------------------------------------------------------- provisioning
def test_lexnames_text_matches_manual_page():
    lines = W.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3"
    category = {"noun": "1", "verb": "2", "adj": "3", "adv": "4"}
    for line in lines:
        number, name, pos = line.split("\t")
        assert pos == category[name.split(".")[0]]
    man = Path("/usr/share/man/man5/lexnames.5WN.gz")
    if man.exists():
        rows = re.findall(r"^(\d\d)\t(\S+)", gzip.decompress(man.read_bytes()).decode(),
                          flags=re.M)
        assert [f"{n}\t{name}" for n, name in rows] == [l.rsplit("\t", 1)[0] for l in lines]


def test_parse_wnid_and_wnid_of_format():
    assert W.parse_wnid("n01532829") == ("n", 1532829)
    for bad in ("01532829", "n1532829", "x01532829", "n015328290", 1532829, " n01532829"):
        with pytest.raises(ValueError, match="is not a wnid"):
            W.parse_wnid(bad)


def test_unavailable_error_names_both_install_routes(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "WORDNET_DIR", tmp_path / "corpora" / "wordnet")
    monkeypatch.setattr(W, "debian_wordnet_dirs", lambda: [])
    monkeypatch.setattr(W, "_find_nltk_wordnet", lambda: None)
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_download=False)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "apt-get install wordnet-base wordnet-sense-index" in message
    assert "nltk.download('wordnet')" in message
    assert "download not allowed" in message
    assert not W.wordnet_available()


def test_copies_debian_database_with_lexnames_once(tmp_path, monkeypatch):
    sources = W.debian_wordnet_dirs()
    if not sources:
        pytest.skip("Debian's wordnet-base is not installed")
    target = tmp_path / "corpora" / "wordnet"
    monkeypatch.setattr(W, "WORDNET_DIR", target)
    monkeypatch.setattr(W, "_find_nltk_wordnet", lambda: None)
    target.mkdir(parents=True)
    (target / "data.noun").write_text("half a copy")  # an interrupted earlier attempt
    first = W.ensure_wordnet(allow_download=False)
    assert f"nltk data at {target} (WordNet 3.0); Debian wordnet-base copied from " \
           f"{sources[0]}" == first
    assert (target / "lexnames").read_text() == W.lexnames_text()
    for name in W.REQUIRED_FILES:
        assert (target / name).stat().st_size == (sources[0] / name).stat().st_size
    stamp = (target / "data.noun").stat().st_mtime_ns
    assert W.ensure_wordnet(allow_download=False) == first
    assert (target / "data.noun").stat().st_mtime_ns == stamp  # not copied again
    assert [p.name for p in target.parent.iterdir()] == ["wordnet"]  # no staging left


def test_project_data_dir_is_on_nltk_path(wn):
    import nltk

    assert str(W.NLTK_DATA_DIR) in nltk.data.path
    assert W.NLTK_DATA_DIR == paths.PROJECT_ROOT / ".nltk_data"


def test_ensure_wordnet_is_idempotent_and_reports_3_0(wn):
    first = W.ensure_wordnet()
    assert "WordNet 3.0" in first or "downloaded" in first
    assert W.ensure_wordnet() == first
    assert wn.get_version() == "3.0"


def test_command_line_prints_source(wn):
    done = subprocess.run([sys.executable, "-m", "kesl_utils.wordnet"], capture_output=True,
                          text=True, cwd=paths.PROJECT_ROOT, timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == W.ensure_wordnet()


# ---------------------------------------------------------------- synsets
def test_synset_from_wnid_round_trip(wn):
    synset = W.synset_from_wnid(HOUSE_FINCH)
    assert synset.name() == "house_finch.n.01"
    assert W.wnid_of(synset) == HOUSE_FINCH
    assert W.wnid_of(W.synset_from_wnid(ROOT_WNID)) == ROOT_WNID
    assert W.synset_from_wnid(ROOT_WNID).name() == "entity.n.01"
    assert W.find_synset("n99999999") is None
    with pytest.raises(ValueError, match="'n00000002' is not a WordNet 3.0 synset"):
        W.synset_from_wnid("n00000002")


# ---------------------------------------------------------------- from_wordnet
def test_from_wordnet_dag_exact_distances_and_names(wn):
    h = Hierarchy.from_wordnet([HOUSE_FINCH, TABBY, PERSIAN_CAT])
    assert h.root == ROOT_WNID and h.classes == [HOUSE_FINCH, TABBY, PERSIAN_CAT]
    assert h.name(ROOT_WNID) == "entity" and h.class_names() == ["house finch", "tabby",
                                                                  "Persian cat"]
    # tabby and Persian cat are both domestic cats: e = 2, d = 1.
    np.testing.assert_array_equal(h.edge_distances(), [[0, 10, 10], [10, 0, 2], [10, 2, 0]])
    assert h.depth(HOUSE_FINCH) == W.synset_from_wnid(HOUSE_FINCH).min_depth() == 13


def test_from_wordnet_dag_holds_every_hypernym_path(wn):
    h = Hierarchy.from_wordnet([DUGONG, MINIATURE_POODLE, TABBY])
    for wnid in h.classes:
        paths_ = W.synset_from_wnid(wnid).hypernym_paths()
        assert paths_
        for path in paths_:
            ids = [W.wnid_of(s) for s in path]
            assert ids[0] == ROOT_WNID and ids[-1] == wnid
            assert all(h.graph.has_edge(a, b) for a, b in zip(ids, ids[1:]))
    expected_nodes = {W.wnid_of(s) for c in h.classes
                      for p in W.synset_from_wnid(c).hypernym_paths() for s in p}
    assert set(h.graph) == expected_nodes


def test_from_wordnet_dag_shortcut_through_second_hypernym(wn):
    wnids = [DUGONG, MINIATURE_POODLE]
    dag = Hierarchy.from_wordnet(wnids, mode="dag")
    tree = Hierarchy.from_wordnet(wnids, mode="tree")
    assert not dag.is_tree and tree.is_tree
    # dog's shallowest hypernym is domestic animal; the short path climbs through canine
    assert dag.edge_distances()[0, 1] == 8   # dugong…placental…canine, dog, poodle
    assert tree.edge_distances()[0, 1] == 11  # only the shortest hypernym path of each
    np.testing.assert_array_equal(dag.edge_distances(), reference_distances(dag))
    np.testing.assert_array_equal(tree.edge_distances(), reference_distances(tree))


def test_from_wordnet_tree_keeps_a_shortest_path_per_class(wn):
    wnids = [DUGONG, MINIATURE_POODLE, TABBY, HOUSE_FINCH]
    tree = Hierarchy.from_wordnet(wnids, mode="tree")
    assert set(tree.graph) <= set(Hierarchy.from_wordnet(wnids).graph)
    for wnid in wnids:
        assert tree.depth(wnid) == W.synset_from_wnid(wnid).min_depth()
        assert all(tree.graph.in_degree(n) == 1 for n in tree.graph if n != ROOT_WNID)


def test_from_wordnet_lists_every_bad_wnid(wn):
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_wordnet([HOUSE_FINCH, "n99999999", "cat", "n00000002", "v01234567",
                                "n0153282"])
    assert info.value.problems == [
        "malformed wnids (expected 'n' + 8 digits, e.g. 'n01532829'): 'cat', 'n0153282'",
        "unknown wnids (no WordNet 3.0 noun synset at that offset): 'n99999999', "
        "'n00000002'",
        "wnids that are not nouns: 'v01234567'",
    ]


def test_from_wordnet_rejects_class_above_class_duplicates_and_bad_mode(wn):
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_wordnet([HOUSE_FINCH, BIRD, TABBY, TABBY])
    assert f"class {BIRD!r} is an ancestor of other classes: {HOUSE_FINCH!r}" \
        in info.value.problems
    assert any(p.startswith(f"duplicate classes: {TABBY!r}") for p in info.value.problems)
    with pytest.raises(ValueError, match="mode must be 'dag' or 'tree'"):
        Hierarchy.from_wordnet([HOUSE_FINCH], mode="forest")


def test_from_wordnet_json_round_trip(wn, tmp_path):
    h = Hierarchy.from_wordnet([DUGONG, MINIATURE_POODLE, TABBY])
    back = Hierarchy.from_json(h.to_json(tmp_path / "w.json"))
    assert back == h
    np.testing.assert_array_equal(back.edge_distances(), h.edge_distances())
