"""The soft-label explorer (static and interactive paths), byte-stable figure data, and the KESL optimum."""
import math
import sys
import types

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kesl_utils import explore
from kesl_utils.hierarchy import Hierarchy
from kesl_utils.losses import KESLLoss
from kesl_utils.soft_labels import soft_label_matrix

# root → two orders → three genera → six classes: distances 1, 3 and 5 all occur.
EDGES = [("root", "A"), ("root", "B"), ("A", "a1"), ("A", "a2"), ("B", "b1"),
         ("a1", "x1"), ("a1", "x2"), ("a2", "y1"), ("a2", "y2"), ("b1", "z1"), ("b1", "z2")]
CLASSES = ["x1", "x2", "y1", "y2", "z1", "z2"]


@pytest.fixture(scope="module")
def tree():
    return Hierarchy.from_edges(EDGES, CLASSES)


def row_in_distance_order(hierarchy, i, lam, T):
    g = soft_label_matrix(hierarchy.edge_distances(), lam, T).numpy()
    d = hierarchy.edge_distances()[i]
    order = sorted((j for j in range(hierarchy.num_classes) if j != i), key=lambda j: (d[j], CLASSES[j]))
    return g[i, order], order


def test_static_path_returns_a_figure_whose_bars_are_the_soft_label(tree):
    fig = explore.soft_label_explorer(tree, "y1", lam=0.5, T=2.0, interactive=False)
    assert isinstance(fig, Figure)
    heights = np.array([bar.get_height() for bar in fig.axes[0].patches])
    expected, _ = row_in_distance_order(tree, 2, 0.5, 2.0)
    np.testing.assert_allclose(heights, expected, rtol=1e-5)  # plotted values keep 6 significant digits
    # The heatmap is g itself, in leaf order.
    g = soft_label_matrix(tree.edge_distances(), 0.5, 2.0).numpy()
    order = tree.leaf_order()
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), g[np.ix_(order, order)], rtol=1e-5)


def test_bars_are_nearest_first(tree):
    plot = explore.SoftLabelFigure(tree, 0, 0.3, 16.0)
    d = tree.edge_distances()[0][plot.order]
    assert list(plot.order) == [1, 2, 3, 4, 5] and list(d) == sorted(d)
    expected, _ = row_in_distance_order(tree, 0, 0.3, 16.0)
    np.testing.assert_allclose(plot.bar_heights(), expected, rtol=1e-5)
    assert np.all(np.diff(plot.bar_heights()) <= 0)  # farther classes get less


def test_interactive_path_builds_sliders_and_redraws(tree):
    explorer = explore.soft_label_explorer(tree, 0, lam=0.5, T=2.0, interactive=True)
    assert isinstance(explorer, explore.SoftLabelExplorer)
    lam, T_slider = explorer.lam_slider, explorer.T_slider
    assert (lam.min, lam.max, lam.step, lam.value) == (0.05, 0.95, 0.05, 0.5)
    stops = np.array(T_slider.options)
    assert stops[0] == 0.5 and stops[-1] == 32 and T_slider.value == 2.0
    assert {2.0, 5.0, 16.0} <= set(stops)
    assert np.all(stops[1:] / stops[:-1] > 1) and np.all(stops[1:] / stops[:-1] <= 1.5)  # log-ish steps
    first_png = explorer.view.value

    lam.value = 0.8
    np.testing.assert_allclose(explorer.plot.bar_heights(), row_in_distance_order(tree, 0, 0.8, 2.0)[0], rtol=1e-5)
    T_slider.value = 16.0
    np.testing.assert_allclose(explorer.plot.bar_heights(), row_in_distance_order(tree, 0, 0.8, 16.0)[0], rtol=1e-5)
    assert explorer.view.value != first_png  # the image widget shows the new figure

    explorer.class_menu.value = 4
    expected, order = row_in_distance_order(tree, 4, 0.8, 16.0)
    assert list(explorer.plot.order) == order
    np.testing.assert_allclose(explorer.plot.bar_heights(), expected, rtol=1e-5)


def test_detection_rule(monkeypatch):
    class ZMQInteractiveShell:  # the class name is what the rule looks at
        pass

    fake_ipython = types.SimpleNamespace(get_ipython=lambda: ZMQInteractiveShell())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not explore.interactive_session()  # IPython imported, but no kernel (pytest, terminal)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert explore.interactive_session()  # a Jupyter kernel with ipywidgets installed
    assert not explore.interactive_session(allowed=False)  # CTX.interactive off (papermill, nbval): static


def test_automatic_choice_follows_the_rule(tree, monkeypatch):
    monkeypatch.setattr(explore, "interactive_session", lambda: True)
    assert isinstance(explore.soft_label_explorer(tree), explore.SoftLabelExplorer)
    monkeypatch.setattr(explore, "interactive_session", lambda: False)
    assert isinstance(explore.soft_label_explorer(tree), Figure)


def test_figure_data_and_png_are_identical_on_two_computations(tree):
    first, second = (explore.SoftLabelFigure(tree, 3, 0.5, 2.0) for _ in range(2))
    assert np.array_equal(first.bar_heights(), second.bar_heights())
    assert np.array_equal(first.image.get_array(), second.image.get_array())
    assert first.png() == second.png()


def test_plotted_values_ignore_last_bit_noise():
    g = soft_label_matrix(Hierarchy.from_edges(EDGES, CLASSES).edge_distances(), 0.5, 2.0).double().numpy()
    nudged = np.nextafter(g, 2.0)  # what another CPU's exp could give
    assert not np.array_equal(g, nudged)
    assert np.array_equal(explore.plotted_values(g), explore.plotted_values(nudged))
    assert explore.plotted_values(torch.from_numpy(g)).dtype == np.float64
    norm, nudged_norm = explore.decade_log_norm(g), explore.decade_log_norm(nudged)
    assert (norm.vmin, norm.vmax) == (nudged_norm.vmin, nudged_norm.vmax)
    assert norm.vmin == 10.0 ** math.floor(math.log10(g.min())) and norm.vmax == 1.0


def test_reverse_kl_at_uniform_is_the_loss_of_a_uniform_prediction(tree):
    g = soft_label_matrix(tree.edge_distances(), 0.5, 16.0).double()
    n = tree.num_classes
    criterion = KESLLoss(g, alpha=0.0, beta=1.0, kl="reverse")
    per_class = [float(criterion(torch.zeros(1, n, dtype=torch.float64), torch.tensor([i]))) for i in range(n)]
    np.testing.assert_allclose(explore.reverse_kl_at_uniform(g), per_class, rtol=1e-12)


@pytest.mark.parametrize("alpha, beta, T", [(1.0, 0.1, 2.0), (1.0, 1.0, 2.0), (1.0, 1.0, 16.0), (0.5, 2.0, 5.0)])
def test_closed_form_optimum_is_the_numerical_minimiser(tree, alpha, beta, T):
    g = soft_label_matrix(tree.edge_distances(), 0.5, T).double().numpy()
    closed = explore.optimal_true_class_probability(g.diagonal(), alpha, beta)
    numeric = explore.minimise_kesl_loss(g, alpha=alpha, beta=beta)
    np.testing.assert_allclose(np.diagonal(numeric), closed, atol=1e-7)
    # The rest of the mass is spread in proportion to the soft label.
    for y in range(len(g)):
        others = np.arange(len(g)) != y
        np.testing.assert_allclose(numeric[y, others] / g[y, others],
                                   (1 - closed[y]) / (1 - g[y, y]), rtol=1e-5)


def test_optimum_limits():
    g_yy = np.array([0.03, 0.5, 0.99])
    assert np.array_equal(explore.optimal_true_class_probability(g_yy, 1.0, 0.0), np.ones(3))  # CE alone: one-hot
    np.testing.assert_array_equal(explore.optimal_true_class_probability(g_yy, 0.0, 1.0), g_yy)  # KL alone: g
    p = explore.optimal_true_class_probability(g_yy, 1.0, 0.1)
    assert np.all((p > g_yy) & (p < 1))
    with pytest.raises(ValueError, match="open interval"):
        explore.optimal_true_class_probability([0.0], 1.0, 0.1)
