"""Soft labels g_ij = softmax_j(T λ^(e_ij − 1)) on hand-drawn hierarchies."""
import math

import numpy as np
import pytest
import torch

from kesl_utils.soft_labels import (
    check_edge_distances,
    mass_by_distance,
    similarity,
    soft_label_entropy,
    soft_label_matrix,
)

# Two genera of two species each under one root: siblings are 2 edges apart, cousins 4.
E4 = np.array([[0, 2, 4, 4],
               [2, 0, 4, 4],
               [4, 4, 0, 2],
               [4, 4, 2, 0]])


def binary_tree_edges(depth: int) -> np.ndarray:
    """Leaves of a complete binary tree: e_ij = 2 · (levels up to the lowest common ancestor)."""
    n = 2 ** depth
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    levels = np.vectorize(lambda x: int(x).bit_length())(i ^ j)
    return 2 * levels


E8 = binary_tree_edges(3)  # e_ij ∈ {2, 4, 6}, d_ij ∈ {1, 3, 5}


def test_binary_tree_helper():
    assert E8[0].tolist() == [0, 2, 4, 4, 6, 6, 6, 6]
    check_edge_distances(E8)


def test_similarity_exact_values():
    c = similarity(E4, 0.5)
    expected = np.array([[1, 0.5, 0.125, 0.125],
                         [0.5, 1, 0.125, 0.125],
                         [0.125, 0.125, 1, 0.5],
                         [0.125, 0.125, 0.5, 1]])
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, expected)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_similarity_symmetric_with_unit_diagonal(lam):
    c = similarity(E8, lam)
    np.testing.assert_array_equal(c, c.T)
    np.testing.assert_array_equal(np.diagonal(c), 1.0)
    off = c[~np.eye(8, dtype=bool)]
    assert np.all((off > 0) & (off < 1))
    assert c[0, 7] == pytest.approx(lam ** 5)


def test_soft_label_matrix_exact_values():
    g = soft_label_matrix(E4, lam=0.5, T=2)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float32 and g.shape == (4, 4)
    # Row 0: T·c = (2, 1, 0.25, 0.25).
    z = math.exp(2) + math.exp(1) + 2 * math.exp(0.25)
    row0 = [math.exp(2) / z, math.exp(1) / z, math.exp(0.25) / z, math.exp(0.25) / z]
    torch.testing.assert_close(g[0], torch.tensor(row0, dtype=torch.float32), rtol=1e-6, atol=1e-7)
    # Class 3 sees the mirror image: itself, its sibling 2, then the other genus.
    torch.testing.assert_close(g[3], torch.tensor(row0[::-1], dtype=torch.float32), rtol=1e-6, atol=1e-7)


def test_soft_label_matrix_paper_setting_on_binary_tree():
    g = soft_label_matrix(E8, lam=0.5, T=16).double()
    # T·c for one row: 16, 8 (d=1), 2 ×2 (d=3), 0.5 ×4 (d=5).
    z = math.exp(16) + math.exp(8) + 2 * math.exp(2) + 4 * math.exp(0.5)
    assert float(g[5, 5]) == pytest.approx(math.exp(16) / z, rel=1e-6)
    assert float(g[5, 4]) == pytest.approx(math.exp(8) / z, rel=1e-6)
    assert float(g[5, 0]) == pytest.approx(math.exp(0.5) / z, rel=1e-5)


@pytest.mark.parametrize("lam,T", [(0.3, 1), (0.5, 2), (0.7, 5), (0.9, 16), (0.5, 1e-3)])
def test_rows_sum_to_one(lam, T):
    g = soft_label_matrix(E8, lam, T)
    torch.testing.assert_close(g.double().sum(dim=1), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-6)
    assert bool((g > 0).all())


@pytest.mark.parametrize("lam,T", [(0.3, 1), (0.5, 2), (0.9, 16)])
def test_soft_label_decreases_with_distance(lam, T):
    g = soft_label_matrix(E8, lam, T).double().numpy()
    d = np.where(E8 > 0, E8 - 1, 0)
    for i in range(8):
        values = {}
        for j in range(8):
            values.setdefault(int(d[i, j]), []).append(g[i, j])
        by_distance = [values[k] for k in sorted(values)]
        # Same distance, same mass; farther classes strictly less.
        assert all(max(v) - min(v) < 1e-7 for v in by_distance)
        means = [np.mean(v) for v in by_distance]
        assert all(a > b for a, b in zip(means, means[1:]))


def test_symmetric_tree_gives_symmetric_soft_labels():
    g = soft_label_matrix(E8, 0.5, 2)
    torch.testing.assert_close(g, g.T)


def test_large_temperature_approaches_one_hot():
    torch.testing.assert_close(soft_label_matrix(E8, 0.5, 200), torch.eye(8), rtol=0, atol=1e-20)
    # No overflow even where exp(T) would be inf in float64.
    torch.testing.assert_close(soft_label_matrix(E8, 0.5, 1e6), torch.eye(8), rtol=0, atol=0)


def test_small_temperature_approaches_uniform():
    torch.testing.assert_close(soft_label_matrix(E8, 0.5, 1e-8), torch.full((8, 8), 1 / 8), rtol=0, atol=1e-7)


def test_accepts_tensors_lists_and_whole_floats():
    expected = soft_label_matrix(E4, 0.5, 2)
    torch.testing.assert_close(soft_label_matrix(torch.tensor(E4), 0.5, 2), expected)
    torch.testing.assert_close(soft_label_matrix(E4.tolist(), 0.5, 2), expected)
    torch.testing.assert_close(soft_label_matrix(E4.astype(float), np.float32(0.5), np.int64(2)), expected)


def test_row_blocks_agree_with_one_block(monkeypatch):
    import kesl_utils.soft_labels as module

    e = binary_tree_edges(5)
    whole = soft_label_matrix(e, 0.7, 5)
    monkeypatch.setattr(module, "_ROW_BLOCK", 7)
    torch.testing.assert_close(soft_label_matrix(e, 0.7, 5), whole, rtol=0, atol=0)


def test_single_class():
    torch.testing.assert_close(soft_label_matrix([[0]], 0.5, 2), torch.ones(1, 1))


@pytest.mark.parametrize("lam", [0, 1, -0.5, 1.5, float("nan"), "0.5", None, True])
def test_rejects_lambda_outside_open_unit_interval(lam):
    with pytest.raises(ValueError, match=r"lam \(λ\).*\(0, 1\)"):
        similarity(E4, lam)
    with pytest.raises(ValueError, match=r"lam \(λ\).*\(0, 1\)"):
        soft_label_matrix(E4, lam, 2)


@pytest.mark.parametrize("T", [0, -1, float("inf"), float("nan"), "2", None])
def test_rejects_non_positive_temperature(T):
    with pytest.raises(ValueError, match=r"T must be a finite real number > 0"):
        soft_label_matrix(E4, 0.5, T)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((3, 4), dtype=int), r"edge_distances must be a non-empty square \(n, n\) matrix"),
    (np.zeros(4, dtype=int), r"edge_distances must be a non-empty square"),
    (np.zeros((0, 0), dtype=int), r"edge_distances must be a non-empty square"),
    (np.array([[0, 2.5], [2.5, 0]]), r"edge_distances must hold finite whole numbers"),
    (np.array([[0, np.inf], [np.inf, 0]]), r"edge_distances must hold finite whole numbers"),
    (np.array([["a", "b"], ["b", "a"]]), r"edge_distances must hold integers"),
    (np.array([[0, -2], [-2, 0]]), r"edge_distances must be non-negative"),
    (np.array([[1, 2], [2, 0]]), r"edge_distances must have a zero diagonal.*e\[0,0\] = 1"),
    (np.array([[0, 2], [4, 0]]), r"edge_distances must be symmetric.*e\[0,1\] = 2 but e\[1,0\] = 4"),
    (np.array([[0, 1], [1, 0]]), r"edge_distances must be ≥ 2 off the diagonal.*parent"),
])
def test_rejects_invalid_edge_distances(bad, message):
    with pytest.raises(ValueError, match=message):
        similarity(bad, 0.5)
    with pytest.raises(ValueError, match=message):
        soft_label_matrix(bad, 0.5, 2)


def test_entropy_values():
    assert soft_label_entropy(torch.eye(3)).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(soft_label_entropy(np.full((4, 4), 0.25)), [math.log(4)] * 4)
    g = soft_label_matrix(E4, 0.5, 2).double().numpy()
    expected = -sum(p * math.log(p) for p in g[0])
    np.testing.assert_allclose(soft_label_entropy(g), [expected] * 4, rtol=1e-12)
    with pytest.raises(ValueError, match=r"g \(soft-label matrix\) must be a square"):
        soft_label_entropy(np.ones((2, 3)) / 3)


def test_mass_by_distance_on_binary_tree():
    g = soft_label_matrix(E8, 0.5, 2).double().numpy()
    mass = mass_by_distance(g, E8)
    assert list(mass) == ["d=0", "d=1", "d=2–3", "d>3"]
    # Every row of this tree has the same profile: itself, 1 sibling, 2 cousins, 4 far classes.
    z = math.exp(2) + math.exp(1) + 2 * math.exp(0.25) + 4 * math.exp(0.0625)
    assert mass["d=0"] == pytest.approx(math.exp(2) / z, rel=1e-6)
    assert mass["d=1"] == pytest.approx(math.exp(1) / z, rel=1e-6)
    assert mass["d=2–3"] == pytest.approx(2 * math.exp(0.25) / z, rel=1e-6)
    assert mass["d>3"] == pytest.approx(4 * math.exp(0.0625) / z, rel=1e-6)
    assert sum(mass.values()) == pytest.approx(1.0)
    assert list(mass_by_distance(g, E8, upper_bounds=(0, 4))) == ["d=0", "d=1–4", "d>4"]


def test_mass_by_distance_rejects_bad_arguments():
    g = soft_label_matrix(E8, 0.5, 2)
    with pytest.raises(ValueError, match=r"g has shape \(8, 8\) but edge_distances has shape \(4, 4\)"):
        mass_by_distance(g, E4)
    with pytest.raises(ValueError, match=r"upper_bounds must be a non-empty strictly increasing"):
        mass_by_distance(g, E8, upper_bounds=(3, 1))


def test_lookup_by_distinct_distances_agrees_with_direct_table(monkeypatch):
    import kesl_utils.soft_labels as module

    direct_g, direct_c = soft_label_matrix(E8, 0.7, 5), similarity(E8, 0.7)
    monkeypatch.setattr(module, "_MAX_DIRECT_TABLE", 3)
    torch.testing.assert_close(soft_label_matrix(E8, 0.7, 5), direct_g, rtol=0, atol=0)
    np.testing.assert_array_equal(similarity(E8, 0.7), direct_c)
