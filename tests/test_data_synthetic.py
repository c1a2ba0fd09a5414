"""SyntheticHierarchical: determinism, shapes, label order, alignment and the hierarchy property."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kesl_utils.data import SyntheticHierarchical, build_dataset, build_loader, build_transforms

TEN_CLASSES = (2, 5)  # branching of a 10-class toy tree


class TinyHierarchy:
    """The part of kesl_utils.hierarchy.Hierarchy the generator uses, on a hand-built tree."""

    def __init__(self, branching=(3, 3, 2), root="root"):
        graph = nx.DiGraph()
        frontier = [root]
        for depth, k in enumerate(branching, 1):
            nxt = []
            for parent in frontier:
                for j in range(k):
                    child = f"{parent}/{j}" if parent != root else f"n{j}"
                    graph.add_edge(parent, child)
                    nxt.append(child)
            frontier = nxt
        self.graph, self.root = graph, root
        # Not sorted by name on purpose: label order must follow .classes, whatever it is.
        self.classes = frontier[::-1]
        self._depth = nx.single_source_shortest_path_length(graph, root)

    def depth(self, node):
        return self._depth[node]

    def edge_distances(self):
        undirected = self.graph.to_undirected()
        return np.array([[nx.shortest_path_length(undirected, a, b) for b in self.classes] for a in self.classes])


@pytest.fixture(scope="module")
def tree():
    return TinyHierarchy()


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end - 1) / 2
            start = end
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def test_spearman_helper_matches_known_values():
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # ties: x = [1, 1, 2] has ranks [0.5, 0.5, 2]
    assert np.allclose(_ranks(np.array([1.0, 1.0, 2.0])), [0.5, 0.5, 2.0])


def test_shapes_dtypes_labels_and_order(tree):
    ds = SyntheticHierarchical(tree, "train", n_per_class=3, image_size=16)
    assert len(ds) == 18 * 3
    assert ds.classes == tree.classes
    image, label = ds[4]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert image.shape == (3, 16, 16)
    assert isinstance(label, int) and label == 1
    assert ds.targets == [i // 3 for i in range(len(ds))]
    assert ds[-1][1] == 17
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_same_seed_split_index_gives_identical_images(tree):
    a = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=16, seed=3)
    b = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=16, seed=3)
    for i in (0, 7, 71):
        assert torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][0], a[i][0])
    test = SyntheticHierarchical(tree, "test", n_per_class=4, image_size=16, seed=3)
    other_seed = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=16, seed=4)
    assert not torch.allclose(a[7][0], test[7][0])
    assert not torch.allclose(a[7][0], other_seed[7][0])
    assert not torch.allclose(a[7][0], a[6][0])
    assert a.image_seed(7) == b.image_seed(7) != test.image_seed(7)


def test_batched_generation_equals_single_images(tree):
    ds = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=16)
    batch = ds.__getitems__([9, 2, 40])
    for (image, label), index in zip(batch, [9, 2, 40]):
        single, single_label = ds[index]
        assert label == single_label
        assert torch.allclose(image, single, atol=1e-5)
    loader = DataLoader(ds, batch_size=8, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 16, 16)
    assert torch.allclose(images[5], ds[5][0], atol=1e-5)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_noise_and_scale_match_the_parameters(tree):
    ds = SyntheticHierarchical(tree, "train", n_per_class=40, image_size=16, noise_std=1.5, colour_jitter=0.0,
                               max_shift=0.0, scale_range=(1.0, 1.0))
    templates = ds.class_templates()
    images = torch.stack([ds[i][0] for i in range(80)])
    labels = torch.tensor([ds[i][1] for i in range(80)])
    residual = images - templates[labels]
    assert residual.std().item() == pytest.approx(1.5, rel=0.05)
    # A class template sums unit-RMS node patterns at amplitudes 1, ½, ¼ (this tree has 3 levels).
    rms = templates.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert 0.6 < rms.mean().item() < 1.6


def test_siblings_look_alike_more_than_cousins(tree):
    templates = SyntheticHierarchical(tree, "train", n_per_class=1, image_size=16).class_templates()
    flat = templates.flatten(1)
    dist = torch.cdist(flat, flat).numpy()
    e = tree.edge_distances()
    # Mean template distance strictly grows with the tree distance e_ij ∈ {2, 4, 6}.
    means = [dist[e == k].mean() for k in (2, 4, 6)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("alignment,low,high", [(1.0, 0.5, 1.0), (0.0, -0.2, 0.2)])
def test_class_mean_distance_follows_tree_distance(alignment, low, high):
    """Spearman ρ between class-mean image distances and e_ij: > 0.5 aligned, ≈ 0 shuffled."""
    tree = TinyHierarchy(branching=(3, 3, 3))
    ds = SyntheticHierarchical(tree, "train", n_per_class=12, image_size=16, alignment=alignment, seed=1)
    images, labels = [], []
    for batch_images, batch_labels in DataLoader(ds, batch_size=256):
        images.append(batch_images)
        labels.append(batch_labels)
    images, labels = torch.cat(images), torch.cat(labels)
    n = len(tree.classes)
    means = torch.stack([images[labels == c].mean(0) for c in range(n)]).flatten(1)
    dist = torch.cdist(means, means).numpy()
    e = tree.edge_distances()
    upper = np.triu_indices(n, 1)
    rho = spearman(dist[upper], e[upper].astype(float))
    assert low < rho < high, rho


def test_mistakes_of_a_nearest_class_mean_classifier_fall_among_near_relatives():
    """Cheap stand-in for the ResNet calibration (benchmarks/calibrate_synthetic.py): the task is
    neither trivial nor hopeless, and confusions stay within the family (d_ij = e_ij − 1)."""
    tree = TinyHierarchy(branching=(3, 3, 3))
    n = len(tree.classes)
    d = tree.edge_distances() - 1
    np.fill_diagonal(d, 0)
    train = SyntheticHierarchical(tree, "train", 20, image_size=16)
    test = SyntheticHierarchical(tree, "test", 10, image_size=16)
    x, y = next(iter(DataLoader(train, batch_size=len(train))))
    xt, yt = next(iter(DataLoader(test, batch_size=len(test))))
    means = torch.stack([x[y == c].mean(0) for c in range(n)]).flatten(1)
    pred = torch.cdist(xt.flatten(1), means).argmin(1).numpy()
    yt = yt.numpy()
    wrong = pred != yt
    assert 0.3 < 1 - wrong.mean() < 0.85
    mean_pairwise = d[~np.eye(n, dtype=bool)].mean()  # 4.23 on this tree
    assert d[yt[wrong], pred[wrong]].mean() < 0.4 * mean_pairwise


def test_alignment_permutes_a_share_of_classes(tree):
    n = len(tree.classes)
    aligned = SyntheticHierarchical(tree, "train", n_per_class=1, image_size=8, alignment=1.0)
    assert aligned.appearance_class.tolist() == list(range(n))
    shuffled = SyntheticHierarchical(tree, "train", n_per_class=1, image_size=8, alignment=0.0)
    source = shuffled.appearance_class
    assert sorted(source.tolist()) == list(range(n))  # a permutation: every class stays distinct
    assert (source != np.arange(n)).all()              # a derangement at alignment 0
    half = SyntheticHierarchical(tree, "train", n_per_class=1, image_size=8, alignment=0.5)
    assert (half.appearance_class != np.arange(n)).sum() == n // 2
    # Shuffled class c is drawn exactly like aligned class source[c] (same patterns).
    t_shuffled, t_aligned = shuffled.class_templates(), aligned.class_templates()
    assert torch.allclose(t_shuffled[0], t_aligned[source[0]], atol=1e-5)


def test_dag_uses_all_ancestors():
    graph = nx.DiGraph([("root", "a"), ("root", "b"), ("a", "x"), ("b", "x"), ("a", "y"), ("b", "z")])

    class Dag:
        pass

    dag = Dag()
    dag.graph, dag.classes, dag.root = graph, ["x", "y", "z"], "root"
    ds = SyntheticHierarchical(dag, "train", n_per_class=2, image_size=8)
    assert ds.class_nodes["x"] == ["a", "b", "x"]
    assert ds.class_nodes["y"] == ["a", "y"]
    assert ds[0][0].shape == (3, 8, 8)


@pytest.mark.parametrize("kwargs,match", [
    (dict(alignment=1.5), "alignment"),
    (dict(n_per_class=0), "n_per_class"),
    (dict(image_size=2), "image_size"),
    (dict(split=""), "split"),
    (dict(scale_range=(1.2, 1.0)), "scale_range"),
    (dict(label_noise=-0.1), "label_noise must be a real number in \\[0, 1\\]"),
    (dict(label_noise=float("nan")), "label_noise must be a real number"),
])
def test_bad_arguments_are_named(tree, kwargs, match):
    args = dict(split="train", n_per_class=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SyntheticHierarchical(tree, **args)


def test_hierarchy_without_graph_is_rejected():
    with pytest.raises(TypeError, match="graph"):
        SyntheticHierarchical(object(), "train", 2)


def test_build_dataset_and_loader_for_synthetic(tree):
    ds = build_dataset("cub", "train", source="synthetic", hierarchy=tree, image_size=16, n_per_class=5, seed=2)
    assert isinstance(ds, SyntheticHierarchical)
    assert (ds.n_per_class, ds.image_size, ds.seed, ds.transform) == (5, 16, 2, None)
    default = build_dataset("cub", "test", source="synthetic", hierarchy=tree, image_size=16)
    assert default.n_per_class == 10
    assert build_transforms("synthetic", 16, True) is None

    loader = build_loader(ds, 16, train=True, device="cpu", seed=5)
    assert loader.num_workers == 0 and not loader.pin_memory and loader.drop_last
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    assert loader.generator is not None
    first = [labels.tolist() for _, labels in loader]
    loader.generator.manual_seed(5)
    again = [labels.tolist() for _, labels in loader]
    assert first == again and len(first) == len(ds) // 16

    test_loader = build_loader(default, 64, train=False, device="cpu")
    assert isinstance(test_loader.sampler, torch.utils.data.SequentialSampler) and not test_loader.drop_last
    assert sum(len(labels) for _, labels in test_loader) == len(default)
    gpu_loader = build_loader(ds, 16, train=True, device="cuda")
    # Training workers are started afresh each epoch (exact resume, see build_loader).
    assert gpu_loader.pin_memory and gpu_loader.num_workers >= 1 and not gpu_loader.persistent_workers


def test_report_skipped_is_empty(tree):
    assert SyntheticHierarchical(tree, "train", 1, image_size=8).report_skipped() == set()


def test_shipped_cub_hierarchy_label_order():
    hierarchy_module = pytest.importorskip("kesl_utils.hierarchy_files")
    try:
        hierarchy = hierarchy_module.load_hierarchy("cub")
    except (FileNotFoundError, OSError) as error:  # pragma: no cover - while the CSV is authored
        pytest.skip(f"CUB hierarchy not available: {error}")
    ds = SyntheticHierarchical(hierarchy, "test", n_per_class=1, image_size=8)
    assert ds.classes == list(hierarchy.classes) and len(ds) == 200
    assert all(len(nodes) == 4 for nodes in ds.class_nodes.values())  # order, family, genus, class
    assert [ds[i][1] for i in (0, 50, 100, 150)] == [0, 50, 100, 150]


# ------------------------------------------------------------------------------ label noise
def test_images_and_labels_are_pinned(tree):
    """The image RNG streams must not move (runs and their cached records depend on them):
    values computed before label noise existed, to a tolerance far below any stream change."""
    ds = SyntheticHierarchical(tree, "train", n_per_class=3, image_size=8, seed=5)
    assert ds[4][0][0, 2, :4].tolist() == pytest.approx([-0.6827, -4.5828, 2.904, 3.9491], abs=1e-3)
    assert ds[40][0][0, 2, :4].tolist() == pytest.approx([-0.0699, 1.8902, 2.8547, 2.4189], abs=1e-3)
    assert (ds[4][1], ds[40][1]) == (1, 13)


@pytest.mark.parametrize("label_noise", [0.1, 0.25, 0.5, 1.0])
def test_label_noise_relabels_exactly_round_share_to_another_class(tree, label_noise):
    ds = SyntheticHierarchical(tree, "train", n_per_class=7, image_size=8, label_noise=label_noise)
    n = len(ds)  # 18 classes × 7 = 126
    noisy = ds.noisy_indices
    assert len(noisy) == round(label_noise * n) and len(set(noisy.tolist())) == len(noisy)
    assert noisy.tolist() == sorted(noisy.tolist()) and 0 <= noisy.min() and noisy.max() < n
    targets, true = np.array(ds.targets), np.array(ds.true_targets)
    assert true.tolist() == [i // 7 for i in range(n)]
    assert (np.flatnonzero(targets != true) == noisy).all()  # a replaced label never equals the true one
    assert ((0 <= targets) & (targets < 18)).all()
    assert [ds[int(i)][1] for i in noisy[:5]] == targets[noisy[:5]].tolist()
    assert [label for _, label in ds.__getitems__(noisy[:5].tolist())] == targets[noisy[:5]].tolist()


def test_label_noise_is_uniform_over_the_other_classes():
    ten = TinyHierarchy(branching=TEN_CLASSES)
    ds = SyntheticHierarchical(ten, "train", n_per_class=600, image_size=4, label_noise=1.0)
    targets, true = np.array(ds.targets), np.array(ds.true_targets)
    pairs = np.zeros((10, 10), dtype=int)
    np.add.at(pairs, (true, targets), 1)
    assert np.trace(pairs) == 0
    off_diagonal = pairs[~np.eye(10, dtype=bool)]  # 90 cells, 6000 / 90 ≈ 66.7 expected each
    expected = 600 / 9
    chi_square = ((off_diagonal - expected) ** 2 / expected).sum()
    assert chi_square < 150  # 80 degrees of freedom: p ≈ 1e-6 at 150
    assert off_diagonal.min() > 30 and off_diagonal.max() < 110
    offsets = np.bincount((targets - true) % 10, minlength=10)
    assert offsets[0] == 0 and offsets[1:].min() > 550 and offsets[1:].max() < 790


def test_label_noise_depends_on_seed_and_split_only(tree):
    def noisy(**kwargs):
        args = dict(split="train", n_per_class=5, image_size=8, seed=0, label_noise=0.3)
        args.update(kwargs)
        ds = SyntheticHierarchical(tree, **args)
        return ds.noisy_indices.tolist(), ds.targets

    assert noisy() == noisy()
    assert noisy() == noisy(image_size=16, noise_std=0.5)  # nuisance settings do not move it
    assert noisy()[0] != noisy(seed=1)[0]
    assert noisy()[0] != noisy(split="test")[0]
    assert noisy(n_per_class=5)[0] != noisy(n_per_class=6)[0]


def test_relabelled_image_keeps_its_appearance(tree):
    clean = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=8, seed=2)
    noisy = SyntheticHierarchical(tree, "train", n_per_class=4, image_size=8, seed=2, label_noise=0.4)
    for i in noisy.noisy_indices[:6].tolist():
        image, label = noisy[i]
        clean_image, clean_label = clean[i]
        assert torch.equal(image, clean_image) and label != clean_label == noisy.true_targets[i]
    batch = noisy.__getitems__(list(range(len(noisy))))
    clean_batch = clean.__getitems__(list(range(len(clean))))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batch, clean_batch))


def test_no_label_noise_is_the_clean_dataset(tree):
    ds = SyntheticHierarchical(tree, "train", n_per_class=3, image_size=8, seed=5, label_noise=0.0)
    assert ds.targets == ds.true_targets == [i // 3 for i in range(len(ds))]
    assert len(ds.noisy_indices) == 0 and ds.label_noise == 0.0
    default = SyntheticHierarchical(tree, "train", n_per_class=3, image_size=8, seed=5)
    assert all(torch.equal(ds[i][0], default[i][0]) and ds[i][1] == default[i][1] for i in (0, 4, 40, 53))
    assert "label_noise" not in repr(ds)
    assert "label_noise=0.2" in repr(SyntheticHierarchical(tree, "train", 3, image_size=8, label_noise=0.2))


def test_label_noise_needs_two_classes():
    graph = nx.DiGraph([("root", "only")])

    class One:
        pass

    one = One()
    one.graph, one.classes, one.root = graph, ["only"], "root"
    assert len(SyntheticHierarchical(one, "train", 2, image_size=8)) == 2
    with pytest.raises(ValueError, match="at least 2 classes"):
        SyntheticHierarchical(one, "train", 2, image_size=8, label_noise=0.5)


def test_build_dataset_adds_label_noise_to_the_training_split_only(tree):
    kwargs = dict(source="synthetic", hierarchy=tree, image_size=8, n_per_class=5, seed=3, label_noise=0.2)
    train = build_dataset("cub", "train", **kwargs)
    test = build_dataset("cub", "test", **kwargs)
    assert train.label_noise == 0.2 and len(train.noisy_indices) == round(0.2 * 90)
    assert test.label_noise == 0.0 and test.targets == test.true_targets
    loader = build_loader(train, 90, train=False, device="cpu")
    assert next(iter(loader))[1].tolist() == train.targets
    with pytest.raises(ValueError, match="label_noise must be a real number in \\[0, 1\\]"):
        build_dataset("cub", "train", **dict(kwargs, label_noise=1.5))
