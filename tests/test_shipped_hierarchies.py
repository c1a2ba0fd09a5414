"""The hierarchy files shipped in data/hierarchies/: CUB taxonomy, Mini-/Small-ImageNet subnets.

The WordNet checks (wnids resolve, names are lemmas, the JSON subnets regenerate exactly)
skip when WordNet 3.0 is not available offline.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kesl_utils import hierarchy as H
from kesl_utils import paths
from kesl_utils import wordnet as W

DIR = paths.hierarchies_dir()


@pytest.fixture(scope="module")
def cub_table() -> pd.DataFrame:
    return pd.read_csv(DIR / "cub_taxonomy.csv", dtype=str, keep_default_na=False)


def normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


# ---------------------------------------------------------------- CUB
def test_cub_columns_ids_and_names(cub_table):
    assert list(cub_table.columns) == ["class_id", "class_name", "order", "family", "genus",
                                       "species", "comment"]
    ids = cub_table["class_id"].astype(int)
    assert sorted(ids) == list(range(1, 201))
    assert cub_table["class_name"].is_unique and len(cub_table) == 200
    for class_id, name in zip(ids, cub_table["class_name"]):
        assert name.startswith(f"{class_id:03d}.") and " " not in name, name
    for column in ("order", "family", "genus", "species"):
        assert (cub_table[column].str.strip() != "").all(), column
    # Scientific names: the species binomial starts with its genus.
    for genus, species in zip(cub_table["genus"], cub_table["species"]):
        assert species.split()[0] == genus, (genus, species)


def test_cub_level_counts(cub_table):
    counts = {level: cub_table[level].nunique() for level in ("order", "family", "genus")}
    print(f"CUB taxonomy: {counts['order']} orders, {counts['family']} families, "
          f"{counts['genus']} genera, {len(cub_table)} classes")
    assert 11 <= counts["order"] <= 15        # Chen et al. 2018: 13
    assert 33 <= counts["family"] <= 41       # 37
    assert 110 <= counts["genus"] <= 135      # about 122


def test_cub_each_node_has_one_parent(cub_table):
    for child, parent in (("genus", "family"), ("family", "order")):
        parents = cub_table.groupby(child)[parent].nunique()
        assert (parents == 1).all(), f"{child} under several {parent}: " \
            f"{parents[parents > 1].index.tolist()}"


def test_cub_hierarchy_loads_as_tree_by_class_id(cub_table):
    h = H.load_hierarchy("cub")
    assert h.is_tree and h.num_classes == 200
    assert h.classes == list(cub_table.sort_values("class_id", key=lambda s: s.astype(int))
                             ["class_name"])
    assert h.class_names()[0] == "Black footed Albatross"
    summary = h.levels_summary()
    assert summary["depth"].tolist() == [0, 1, 2, 3, 4]
    assert summary["n_nodes"].tolist() == [1, cub_table["order"].nunique(),
                                           cub_table["family"].nunique(),
                                           cub_table["genus"].nunique(), 200]
    e = h.edge_distances()
    assert set(np.unique(e)) <= {0, 2, 4, 6, 8}
    # 001 Black-footed and 002 Laysan Albatross are both Phoebastria: e = 2, d = 1.
    assert e[0, 1] == 2
    genus, family, order = (np.array(h.ancestors_at_depth(d)) for d in (3, 2, 1))
    same = lambda a: a[:, None] == a[None, :]  # noqa: E731
    expected = np.where(same(genus), 2, np.where(same(family), 4, np.where(same(order), 6, 8)))
    np.fill_diagonal(expected, 0)
    np.testing.assert_array_equal(e, expected)


# ---------------------------------------------------------------- ImageNet class lists
@pytest.mark.parametrize("dataset, n_classes", [("mini_imagenet", 100), ("small_imagenet", 200)])
def test_class_lists_shape(dataset, n_classes):
    table = pd.read_csv(DIR / H.WORDNET_SUBNETS[dataset][0], dtype=str, keep_default_na=False)
    assert len(table) == n_classes and table["wnid"].is_unique
    assert table["wnid"].str.fullmatch(r"n\d{8}").all()
    assert (table["name"].str.strip() != "").all()
    if dataset == "mini_imagenet":
        assert list(table.columns) == ["wnid", "name", "split"]
        assert table["split"].value_counts().to_dict() == {"train": 64, "val": 16, "test": 20}
    else:
        assert list(table.columns) == ["wnid", "name"]


@pytest.mark.parametrize("dataset", list(H.WORDNET_SUBNETS))
def test_wnids_resolve_and_names_are_lemmas(wn, dataset):
    table = pd.read_csv(DIR / H.WORDNET_SUBNETS[dataset][0], dtype=str, keep_default_na=False)
    unknown, mismatched = [], []
    for wnid, name in zip(table["wnid"], table["name"]):
        synset = W.find_synset(wnid)
        if synset is None:
            unknown.append(wnid)
        elif normalise(name) not in {normalise(l) for l in synset.lemma_names()}:
            mismatched.append((wnid, name, synset.lemma_names()))
    assert unknown == [] and mismatched == []


# ---------------------------------------------------------------- derived JSON subnets
@pytest.mark.parametrize("dataset", list(H.WORDNET_SUBNETS))
def test_subnet_json_loads_without_wordnet(dataset):
    h = H.load_hierarchy(dataset)
    table = pd.read_csv(DIR / H.WORDNET_SUBNETS[dataset][0], dtype=str, keep_default_na=False)
    assert h.classes == table["wnid"].tolist() and h.root == H.ROOT_WNID
    e = h.edge_distances()
    assert (e == e.T).all() and (np.diag(e) == 0).all()
    assert e[~np.eye(h.num_classes, dtype=bool)].min() >= 2
    data = json.loads((DIR / H.WORDNET_SUBNETS[dataset][1]).read_text())
    assert data["edges"] == sorted(data["edges"])


@pytest.mark.parametrize("dataset", list(H.WORDNET_SUBNETS))
def test_subnet_json_regenerates_exactly(wn, dataset):
    hierarchy, comment = H.wordnet_subnet(dataset)
    shipped = DIR / H.WORDNET_SUBNETS[dataset][1]
    assert hierarchy.to_json_text(comment) == shipped.read_text(encoding="utf-8"), \
        "run `python -m kesl_utils.hierarchy regenerate`"
    assert H.regenerate_wordnet_subnets(check=True, datasets=[dataset]) == {shipped: False}


def test_regenerate_writes_missing_files_and_command_line(wn, tmp_path, monkeypatch, capsys):
    for csv, _ in H.WORDNET_SUBNETS.values():
        (tmp_path / csv).write_bytes((DIR / csv).read_bytes())
    monkeypatch.setattr(H.paths, "hierarchies_dir", lambda: tmp_path)
    assert H.main(["regenerate", "--check"]) == 1  # nothing written yet
    assert not list(tmp_path.glob("*.json"))
    assert H.main(["regenerate"]) == 0
    for _, json_name in H.WORDNET_SUBNETS.values():
        assert (tmp_path / json_name).read_bytes() == (DIR / json_name).read_bytes()
    assert H.main(["regenerate", "--check", "mini_imagenet"]) == 0
    out = capsys.readouterr().out
    assert "mini_imagenet_wordnet.json: differs" in out
    assert "mini_imagenet_wordnet.json: rewritten (Hierarchy(DAG, 100 classes" in out
    assert "mini_imagenet_wordnet.json: up to date" in out
    with pytest.raises(SystemExit):
        H.main(["regenerate", "imagenet"])
