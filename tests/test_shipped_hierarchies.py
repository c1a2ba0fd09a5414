"""The hierarchy files shipped in data/hierarchies/: CUB and CIFAR-100 taxonomies, Mini-/Small-
ImageNet subnets, and the loaders that read them through the registry kesl_utils.names.DATASETS.

The WordNet checks (wnids resolve, names are lemmas, the JSON subnets regenerate exactly)
skip when WordNet 3.0 is not available offline.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kesl_utils import distances as D
from kesl_utils import hierarchy_files as F
from kesl_utils import names, paths
from kesl_utils import wordnet as W
from kesl_utils import wordnet_subnets as S
from kesl_utils.hierarchy import ROOT_WNID, Hierarchy

DIR = paths.hierarchies_dir()
WORDNET_DATASETS = [name for name, spec in names.DATASETS.items()
                    if spec.hierarchy_kind == "wordnet"]


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
    h = F.load_hierarchy("cub")
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


def test_cub_lca_heights_real_pairs():
    h = F.load_hierarchy("cub")
    lca = h.lca_heights()
    pair = lambda a, b: lca[h.class_index(a), h.class_index(b)]  # noqa: E731
    assert pair("059.California_Gull", "062.Herring_Gull") == 1       # both Larus
    assert pair("059.California_Gull", "063.Ivory_Gull") == 2         # Larus, Pagophila: Laridae
    assert pair("059.California_Gull", "071.Long_tailed_Jaeger") == 3  # Laridae, Stercorariidae
    assert pair("059.California_Gull", "017.Cardinal") == 4           # different orders
    assert pair("017.Cardinal", "017.Cardinal") == 0


def test_cub_lca_height_counts_follow_the_taxonomy(cub_table):
    def ordered_pairs_within(column: str) -> int:  # ordered pairs of distinct classes sharing it
        sizes = cub_table[column].value_counts().to_numpy()
        return int((sizes * (sizes - 1)).sum())

    n = len(cub_table)
    genus, family, order = (ordered_pairs_within(c) for c in ("genus", "family", "order"))
    values, counts = np.unique(F.load_hierarchy("cub").lca_heights(), return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {
        0: n, 1: genus, 2: family - genus, 3: order - family, 4: n * (n - 1) - order}


# ---------------------------------------------------------------- ImageNet class lists
@pytest.mark.parametrize("dataset, n_classes", [("mini_imagenet", 100), ("small_imagenet", 200)])
def test_class_lists_shape(dataset, n_classes):
    table = pd.read_csv(DIR / names.DATASETS[dataset].class_list, dtype=str, keep_default_na=False)
    assert len(table) == n_classes and table["wnid"].is_unique
    assert table["wnid"].str.fullmatch(r"n\d{8}").all()
    assert (table["name"].str.strip() != "").all()
    if dataset == "mini_imagenet":
        assert list(table.columns) == ["wnid", "name", "split"]
        assert table["split"].value_counts().to_dict() == {"train": 64, "val": 16, "test": 20}
    else:
        assert list(table.columns) == ["wnid", "name"]


@pytest.mark.parametrize("dataset", WORDNET_DATASETS)
def test_wnids_resolve_and_names_are_lemmas(wn, dataset):
    table = pd.read_csv(DIR / names.DATASETS[dataset].class_list, dtype=str, keep_default_na=False)
    unknown, mismatched = [], []
    for wnid, name in zip(table["wnid"], table["name"]):
        synset = W.find_synset(wnid)
        if synset is None:
            unknown.append(wnid)
        elif normalise(name) not in {normalise(l) for l in synset.lemma_names()}:
            mismatched.append((wnid, name, synset.lemma_names()))
    assert unknown == [] and mismatched == []


# ---------------------------------------------------------------- derived JSON subnets
@pytest.mark.parametrize("dataset", WORDNET_DATASETS)
def test_subnet_json_loads_without_wordnet(dataset):
    h = F.load_hierarchy(dataset)
    table = pd.read_csv(DIR / names.DATASETS[dataset].class_list, dtype=str, keep_default_na=False)
    assert h.classes == table["wnid"].tolist() and h.root == ROOT_WNID
    e = h.edge_distances()
    assert (e == e.T).all() and (np.diag(e) == 0).all()
    assert e[~np.eye(h.num_classes, dtype=bool)].min() >= 2
    data = json.loads((DIR / names.DATASETS[dataset].hierarchy_file).read_text())
    assert data["edges"] == sorted(data["edges"])


@pytest.mark.parametrize("dataset", WORDNET_DATASETS)
def test_subnet_lca_heights_bounded(dataset):
    h = F.load_hierarchy(dataset)
    lca = D.lca_heights(h)
    top = D.node_heights(h)[h.root]
    off = lca[~np.eye(h.num_classes, dtype=bool)]
    assert lca.shape == (h.num_classes,) * 2 and np.issubdtype(lca.dtype, np.integer)
    assert np.isfinite(lca.astype(float)).all()
    assert (lca == lca.T).all() and (np.diag(lca) == 0).all()
    assert off.min() >= 1 and off.max() <= top


@pytest.mark.parametrize("dataset", WORDNET_DATASETS)
def test_subnet_json_regenerates_exactly(wn, dataset):
    hierarchy, comment = S.wordnet_subnet(dataset)
    shipped = DIR / names.DATASETS[dataset].hierarchy_file
    assert hierarchy.to_json_text(comment) == shipped.read_text(encoding="utf-8"), \
        "run `python -m kesl_utils hierarchy regenerate`"
    assert S.regenerate_wordnet_subnets(check=True, datasets=[dataset]) == {shipped: False}


def test_regenerate_writes_missing_files(wn, tmp_path, monkeypatch):
    files = [(names.DATASETS[d].class_list, names.DATASETS[d].hierarchy_file)
             for d in WORDNET_DATASETS]
    for csv, _ in files:
        (tmp_path / csv).write_bytes((DIR / csv).read_bytes())
    monkeypatch.setattr(paths, "hierarchies_dir", lambda: tmp_path)
    result = S.regenerate_wordnet_subnets(check=True)
    assert result.check and all(result.values())  # nothing written yet
    assert not list(tmp_path.glob("*.json"))
    lines = S.describe_regeneration(result)
    assert lines[0] == f"{tmp_path / 'mini_imagenet_wordnet.json'}: differs"
    result = S.regenerate_wordnet_subnets()
    assert not result.check and all(result.values())
    for _, json_name in files:
        assert (tmp_path / json_name).read_bytes() == (DIR / json_name).read_bytes()
    assert S.describe_regeneration(result)[0].startswith(
        f"{tmp_path / 'mini_imagenet_wordnet.json'}: rewritten (Hierarchy(DAG, 100 classes")
    result = S.regenerate_wordnet_subnets(check=True, datasets=["mini_imagenet"])
    assert result == {tmp_path / "mini_imagenet_wordnet.json": False}
    assert S.describe_regeneration(result)[0].startswith(
        f"{tmp_path / 'mini_imagenet_wordnet.json'}: up to date (Hierarchy(DAG, 100 classes")


def test_regenerate_rejects_datasets_that_are_not_wordnet_subnets():
    assert S.wordnet_datasets() == WORDNET_DATASETS == ["mini_imagenet", "small_imagenet"]
    for dataset in ("cub", "imagenet"):  # checked before WordNet is needed
        with pytest.raises(ValueError, match=f"dataset='{dataset}' is not allowed; expected one of "
                           "'mini_imagenet', 'small_imagenet'"):
            S.regenerate_wordnet_subnets(check=True, datasets=["mini_imagenet", dataset])


def test_describe_regeneration_lines_relative_to_the_repository(tmp_path):
    shipped = DIR / "mini_imagenet_wordnet.json"
    elsewhere = F.load_hierarchy("mini_imagenet").to_json(tmp_path / "mini.json")
    checked = S.Regeneration({shipped: False, tmp_path / "missing.json": True, elsewhere: True},
                             check=True)
    assert S.describe_regeneration(checked) == [
        "data/hierarchies/mini_imagenet_wordnet.json: up to date "
        "(Hierarchy(DAG, 100 classes, 331 nodes, root='n00001740'))",
        f"{tmp_path / 'missing.json'}: differs",
        f"{elsewhere}: differs",
    ]
    written = S.Regeneration({shipped: True}, check=False)
    assert S.describe_regeneration(written) == [
        "data/hierarchies/mini_imagenet_wordnet.json: rewritten "
        "(Hierarchy(DAG, 100 classes, 331 nodes, root='n00001740'))"]
    # A plain {path: changed} dict with check given explicitly reads the same.
    assert S.describe_regeneration({shipped: True}, check=True) == [
        "data/hierarchies/mini_imagenet_wordnet.json: differs"]
    assert S.describe_regeneration(dict(written), check=False) == S.describe_regeneration(written)


# ---------------------------------------------------------------- the registry
def test_load_hierarchy_reads_the_registry(monkeypatch):
    for name, spec in names.DATASETS.items():
        h = F.load_hierarchy(name)
        assert h.is_tree == (spec.hierarchy_kind == "taxonomy")
    # A new taxonomy dataset is one registry entry: file name, kind and levels come from it.
    spec = names.DatasetSpec("cifar100_test", "CIFAR-100", "cifar100_taxonomy.csv", "taxonomy",
                             loader="torchvision.datasets:CIFAR100", transform="imagenet", root_candidates=("cifar-100",),
                             markers=("cifar-100-python/",), paper_budget=dict(image_size=32, batch_size=128),
                             taxonomy_levels=("superclass", "class_name"))
    monkeypatch.setitem(names.DATASETS, spec.name, spec)
    h = F.load_hierarchy(spec.name)
    assert h.num_classes == 100 and h.classes[:2] == ["apple", "aquarium_fish"]
    assert h.class_names()[1] == "aquarium fish"


# ---------------------------------------------------------------- the resolver
@pytest.mark.parametrize("dataset", list(names.DATASETS))
def test_resolve_hierarchy_dag_is_the_shipped_hierarchy(dataset):
    h = F.resolve_hierarchy(dataset, "dag")
    assert h == F.load_hierarchy(dataset)
    assert h.is_tree == (names.DATASETS[dataset].hierarchy_kind == "taxonomy")


def test_resolve_hierarchy_taxonomy_is_the_same_in_either_mode():
    tree, dag = F.resolve_hierarchy("cub", "tree"), F.resolve_hierarchy("cub", "dag")
    assert tree == dag == F.load_hierarchy("cub") and tree.is_tree
    assert tree.num_classes == 200 and tree.classes[0] == "001.Black_footed_Albatross"
    np.testing.assert_array_equal(tree.edge_distances(), dag.edge_distances())


def test_resolve_hierarchy_rejects_an_unknown_mode_or_dataset():
    with pytest.raises(ValueError, match="hierarchy_mode='forest' is not allowed; expected one "
                       "of 'dag', 'tree'"):
        F.resolve_hierarchy("cub", "forest")
    with pytest.raises(ValueError, match="dataset='imagenet' is not allowed"):
        F.resolve_hierarchy("imagenet", "dag")


def test_resolve_hierarchy_tree_of_a_wordnet_subnet(wn):
    dag, tree = F.resolve_hierarchy("mini_imagenet", "dag"), F.resolve_hierarchy("mini_imagenet",
                                                                                  "tree")
    assert not dag.is_tree and tree.is_tree
    assert tree.classes == dag.classes and tree.root == dag.root == ROOT_WNID
    # The tree keeps one of each synset's hypernyms: a subgraph of the DAG, whose paths are
    # never shorter than the DAG's, and some of them longer.
    assert set(tree.graph.edges) < set(dag.graph.edges)
    e_tree, e_dag = tree.edge_distances(), dag.edge_distances()
    assert (e_tree >= e_dag).all() and (e_tree > e_dag).any()


def test_training_and_the_ncm_reference_resolve_the_hierarchy_in_one_place(monkeypatch):
    from kesl_utils import hierarchy_files, ncm
    from kesl_utils.data import load_run_hierarchy
    from kesl_utils.config import Config

    calls = []

    class Resolved(Exception):
        pass

    def resolve(dataset, mode):
        calls.append((dataset, mode))
        raise Resolved

    monkeypatch.setattr(hierarchy_files, "resolve_hierarchy", resolve)
    config = Config(dataset="mini_imagenet", hierarchy_mode="tree", source="synthetic",
                    n_per_class=2, n_test_per_class=1)
    for caller in (load_run_hierarchy, ncm.compute):
        with pytest.raises(Resolved):
            caller(config)
    assert calls == [("mini_imagenet", "tree")] * 2


# ---------------------------------------------------------------- CIFAR-100
CIFAR_SUPERCLASSES = {
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"}


@pytest.fixture(scope="module")
def cifar_table() -> pd.DataFrame:
    return pd.read_csv(DIR / "cifar100_taxonomy.csv", dtype=str, keep_default_na=False)


def test_cifar100_classes_in_fine_label_order(cifar_table):
    assert list(cifar_table.columns) == ["class_id", "class_name", "superclass"]
    assert cifar_table["class_id"].tolist() == [str(k) for k in range(100)]
    fine = cifar_table["class_name"].tolist()
    # torchvision's CIFAR100(...).classes: the dataset's fine_label_names, alphabetical.
    assert fine == sorted(fine) and len(set(fine)) == 100
    assert all(name.replace("_", "").isalpha() and name.islower() for name in fine)
    assert {k: fine[k] for k in (0, 1, 2, 39, 41, 47, 58, 83, 96, 99)} == {
        0: "apple", 1: "aquarium_fish", 2: "baby", 39: "keyboard", 41: "lawn_mower",
        47: "maple_tree", 58: "pickup_truck", 83: "sweet_pepper", 96: "willow_tree", 99: "worm"}


def test_cifar100_twenty_superclasses_of_five(cifar_table):
    sizes = cifar_table["superclass"].value_counts()
    assert set(sizes.index) == CIFAR_SUPERCLASSES and (sizes == 5).all()
    superclass = dict(zip(cifar_table["class_name"], cifar_table["superclass"]))
    spot = ("maple_tree", "aquarium_fish", "pickup_truck", "lawn_mower", "whale", "sweet_pepper",
            "skyscraper", "spider", "keyboard")
    assert {c: superclass[c] for c in spot} == {
        "maple_tree": "trees", "aquarium_fish": "fish", "pickup_truck": "vehicles_1",
        "lawn_mower": "vehicles_2", "whale": "aquatic_mammals",
        "sweet_pepper": "fruit_and_vegetables", "skyscraper": "large_man-made_outdoor_things",
        "spider": "non-insect_invertebrates", "keyboard": "household_electrical_devices"}


def test_cifar100_hierarchy_edge_distances(cifar_table):
    h = Hierarchy.from_taxonomy(DIR / "cifar100_taxonomy.csv",
                                  levels=["superclass", "class_name"])
    assert h.is_tree and h.classes == cifar_table["class_name"].tolist()
    assert h.levels_summary()["n_nodes"].tolist() == [1, 20, 100]
    same = cifar_table["superclass"].to_numpy()
    same = same[:, None] == same[None, :]
    expected = np.where(same, 2, 4)
    np.fill_diagonal(expected, 0)
    np.testing.assert_array_equal(h.edge_distances(), expected)
    np.testing.assert_array_equal(h.lca_heights(), expected // 2)
    assert F.load_taxonomy_hierarchy(DIR / "cifar100_taxonomy.csv", ["superclass", "class_name"]) \
        .classes == h.classes
