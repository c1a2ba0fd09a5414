"""The stand-in figure's rows: which relatives are chosen (hand tree, exact values) and that their
images are the generator's own."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from kesl_utils import experiments, stand_in
from kesl_utils.data import SyntheticHierarchical, build_dataset
from kesl_utils.hierarchy import Hierarchy
from kesl_utils.hierarchy_files import load_hierarchy

# root ─ A ─ A1 ─ a, b, e          d(a, b) = d(a, e) = 1 (siblings)
#        │   A2 ─ c                d(a, c) = 3 (cousin)
#        B ─ B1 ─ x                d(a, x) = 5 (distant)
EDGES = [("root", "A"), ("root", "B"), ("A", "A1"), ("A", "A2"), ("A1", "a"), ("A1", "b"), ("A1", "e"),
         ("A2", "c"), ("B", "B1"), ("B1", "x")]
CLASSES = ["x", "e", "c", "a", "b"]  # not in tree order: ties must go to the lowest index (e before b)


@pytest.fixture(scope="module")
def hand():
    return Hierarchy.from_edges(EDGES, CLASSES)


def test_relatives_of_a_class_on_a_hand_tree(hand):
    d = hand.edge_distances() - 1
    np.fill_diagonal(d, 0)
    assert d[3].tolist() == [5, 1, 3, 0, 1]
    assert stand_in.choose_relatives(d, 3) == {"anchor": 3, "sibling": 1, "cousin": 2, "distant": 0}
    # From x, every other class is at d = 5: a sibling-distance class, nothing nearer or farther.
    assert stand_in.choose_relatives(d, 0) == {"anchor": 0, "sibling": 1, "cousin": None, "distant": None}
    # From c: a, b, e at d = 3 and x at d = 5, nothing between: no cousin.
    assert stand_in.choose_relatives(d, 2) == {"anchor": 2, "sibling": 1, "cousin": None, "distant": 0}


def test_cousin_is_the_lower_middle_distance():
    row = np.array([[0, 1, 2, 3, 4, 9]])
    d = np.vstack([row, np.ones((5, 6), dtype=int)])
    assert stand_in.choose_relatives(d, 0)["cousin"] == 3  # distances between: 2, 3, 4 → 3
    d[0, 4] = 3
    assert stand_in.choose_relatives(d, 0)["cousin"] == 2  # 2, 3 → the lower, 2


def test_relatives_carry_names_distances_and_the_generators_images(hand):
    result = stand_in.relatives("cub", hierarchy=hand, anchor=3, seed=5, image_size=16, per_class=2,
                                n_per_class=4)
    assert [(r.role, r.index, r.class_id, r.d) for r in result.rows] == [
        ("anchor", 3, "a", 0), ("sibling", 1, "e", 1), ("cousin", 2, "c", 3), ("distant", 0, "x", 5)]
    data = SyntheticHierarchical(hand, "train", 4, image_size=16, seed=5)
    for row in result.rows:
        assert row.dataset_indices == (row.index * 4, row.index * 4 + 1)
        expected = torch.stack([data[i][0] for i in row.dataset_indices])
        assert torch.equal(row.images, expected)
        assert all(data[i][1] == row.index for i in row.dataset_indices)
        assert torch.equal(row.template, data.class_templates()[row.index])


def test_relatives_of_a_config_are_the_images_the_run_trains_on():
    config = experiments.profile_config("smoke", "cub")
    result = stand_in.relatives_of_config(config, per_class=2)
    train_set = build_dataset("cub", "train", source="synthetic", hierarchy=load_hierarchy("cub"),
                              image_size=config.image_size, n_per_class=config.n_per_class, seed=config.seed)
    assert [r.role for r in result.rows] == list(stand_in.ROLES)
    assert [r.d for r in result.rows] == [0, 1, 3, 7]  # CUB: same genus, same family, another order
    for row in result.rows:
        assert row.images.shape == (2, 3, config.image_size, config.image_size)
        assert torch.equal(row.images, torch.stack([train_set[i][0] for i in row.dataset_indices]))


def test_figure_has_a_row_per_relative_and_labels_them(hand):
    result = stand_in.relatives("cub", hierarchy=hand, anchor=3, image_size=8, per_class=3)
    fig = stand_in.figure(result)
    axes = np.array(fig.axes).reshape(4, 4)  # template + 3 images
    labels = [ax.get_ylabel() for ax in axes[:, 0]]
    assert labels == ["anchor\na", "sibling\ne\nd = 1", "cousin\nc\nd = 3", "distant\nx\nd = 5"]
    assert len(stand_in.figure(result, templates=False).axes) == 12
