"""Looking at the knowledge-embedded soft labels: an interactive λ/T explorer, and what the loss wants.

* :func:`soft_label_explorer` — one class's soft label g_i (bars over the other classes, nearest first,
  coloured by d_ij) beside the (n, n) matrix g (hierarchy order). In a JupyterLab session it adds
  sliders for λ and T (and a class menu) and redraws on every change; in an executed notebook
  (papermill, nbval) and outside Jupyter it draws the static figure of the given λ, T and returns it.
* :func:`plotted_values`, :func:`decade_log_norm` — what the figures of notebook 02 draw: values
  rounded to a few significant digits and a colour scale whose bounds are powers of ten, so that
  a last-bit difference in g (another CPU's SIMD ``exp``, another numpy) cannot move a pixel.
* :func:`reverse_kl_at_uniform`, :func:`optimal_true_class_probability`, :func:`minimise_kesl_loss` —
  the size of the paper's KL term KL(y′ ‖ g_y) and the prediction that minimises
  α·L_CE + β·KL(y′ ‖ g_y) (paper, Eq. 3–5), in closed form and numerically.

When is the explorer interactive? (:func:`interactive_session`) Only when both hold: the caller
allows widgets (``allowed``: a notebook passes ``CTX.interactive`` of its
:class:`~kesl_utils.context.RunContext`, which ``make reproduce`` (papermill) and ``make test``
(nbval) build with ``KESL_PROGRESS=0``, so no widget state is stored), and the code runs in a
Jupyter kernel with ipywidgets installed (:func:`kesl_utils.progress.widgets_available`; not plain
Python, not the IPython terminal, not pytest). A kernel cannot ask whether a widget front-end is
listening, so the context is the reliable signal. ``interactive=True/False`` overrides the rule.
"""
from __future__ import annotations

import io
import math
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from scipy.optimize import brentq, minimize
from scipy.special import expit, logit

from . import names
from .losses import KESLLoss
from .metrics import class_distance_matrix
from .progress import widgets_available
from .soft_labels import as_float64_matrix, soft_label_matrix

__all__ = [
    "LAMBDA_RANGE",
    "T_STEPS",
    "interactive_session",
    "soft_label_explorer",
    "SoftLabelFigure",
    "SoftLabelExplorer",
    "plotted_values",
    "decade_log_norm",
    "distance_order",
    "reverse_kl_at_uniform",
    "optimal_true_class_probability",
    "minimise_kesl_loss",
]

#: (min, max, step) of the λ slider.
LAMBDA_RANGE = (0.05, 0.95, 0.05)
#: The T slider's stops: roughly logarithmic from 0.5 to 32, through the paper's 2, 5 and 16.
T_STEPS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 16.0, 22.0, 32.0)
#: Significant digits kept in plotted values (far below what a colour or a pixel can show).
PLOT_DIGITS = 6


# -- byte-stable figure data -------------------------------------------------------------------------
def plotted_values(values, digits: int = PLOT_DIGITS) -> np.ndarray:
    """``values`` (any shape, tensor or array) as float64 rounded to ``digits`` significant digits.

    Rounding goes through Python's correctly rounded decimal formatting, once per distinct value
    (a soft-label matrix has only as many distinct entries as distinct distances per row), so the
    result depends on the values only, never on the CPU or the library that computed them up to
    their last bits — unless a value lies within those bits of a rounding boundary.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    distinct, inverse = np.unique(array, return_inverse=True)
    rounded = np.array([float(f"{v:.{digits}g}") for v in distinct], dtype=np.float64)
    return rounded[inverse].reshape(array.shape)


def decade_log_norm(values, vmax: float = 1.0) -> LogNorm:
    """A ``LogNorm`` from the power of ten at or below the smallest positive value up to ``vmax``.

    Bounds that are powers of ten do not move with the last bits of the data (a minimum taken
    from the data does), and they give round colour-bar ticks.
    """
    array = np.asarray(values, dtype=np.float64)
    positive = array[array > 0]
    smallest = float(positive.min()) if positive.size else vmax / 10
    exponent = math.floor(math.log10(smallest))
    return LogNorm(vmin=float(f"1e{exponent}"), vmax=vmax)


def distance_order(distances: np.ndarray, names_: Sequence[str], class_index: int) -> np.ndarray:
    """The classes other than ``class_index``, nearest first: by d_ij, then by name. Shape (n − 1,)."""
    d_i = np.asarray(distances)[class_index]
    others = [j for j in range(len(d_i)) if j != class_index]
    return np.array(sorted(others, key=lambda j: (int(d_i[j]), names_[j])), dtype=np.int64)


# -- the explorer ------------------------------------------------------------------------------------
def interactive_session(allowed: bool = True) -> bool:
    """Whether :func:`soft_label_explorer` draws sliders: ``allowed`` (the context's ``interactive``)
    and a Jupyter kernel with ipywidgets (the rule is in the module docstring)."""
    return bool(allowed) and widgets_available()


class SoftLabelFigure:
    """The explorer's figure, redrawn in place by :meth:`update` (no pyplot: nothing shows by itself).

    Left: g_ij for the classes j ≠ i (``class_index``), nearest first, coloured by d_ij, on a log
    axis, with 1/n (the uniform label) dotted and g_ii (the class itself) dashed green. Right: the
    (n, n) matrix g with the classes in ``hierarchy.leaf_order()``, log colour scale.
    ``bars`` are the bar patches in the order of :attr:`order`; ``image`` is the heatmap.
    """

    def __init__(self, hierarchy, class_index: int = 0, lam: float = 0.5, T: float = 2.0, *,
                 figsize=(13.5, 5.0)):
        self.hierarchy = hierarchy
        self.edge_distances = hierarchy.edge_distances()
        self.distances = class_distance_matrix(self.edge_distances).numpy()
        self.names = hierarchy.class_names()
        self.leaf_order = hierarchy.leaf_order()
        n = hierarchy.num_classes
        if n < 2:
            raise ValueError(f"the explorer needs at least 2 classes, the hierarchy has {n}")
        self.figure = Figure(figsize=figsize)
        grid = self.figure.add_gridspec(1, 4, width_ratios=[3.0, 0.07, 1.5, 0.07], wspace=0.32,
                                        left=0.06, right=0.95, bottom=0.2, top=0.86)
        self.bar_axes = self.figure.add_subplot(grid[0, 0])
        self.matrix_axes = self.figure.add_subplot(grid[0, 2])
        d_max = max(int(self.distances.max()), 1)
        self.distance_colours = ScalarMappable(Normalize(0.5, d_max + 0.5), "plasma_r")
        self.bars = self.bar_axes.bar(np.arange(n - 1), np.ones(n - 1), width=1.0, linewidth=0)
        self.bar_axes.set_yscale("log")
        self.bar_axes.set_xlim(-0.5, n - 1.5)
        self.bar_axes.axhline(1.0 / n, color="0.3", ls=":", lw=1)
        self.self_line = self.bar_axes.axhline(1.0, color="tab:green", ls="--", lw=1.2)
        self.bar_axes.set_ylabel("g_ij (log scale)")
        distance_bar = self.figure.colorbar(self.distance_colours, cax=self.figure.add_subplot(grid[0, 1]),
                                            label="d_ij (bar colour)")
        occurring = np.unique(self.distances[self.distances > 0])
        if len(occurring) <= 12:  # few distances (a shallow taxonomy): tick exactly those
            distance_bar.set_ticks(occurring)
        self.image = self.matrix_axes.imshow(np.ones((n, n)), norm=LogNorm(1e-3, 1.0), cmap="viridis",
                                             interpolation="nearest")
        self.matrix_axes.set_xticks([]), self.matrix_axes.set_yticks([])
        self.matrix_axes.set_xlabel("classes in hierarchy order")
        self.colorbar = self.figure.colorbar(self.image, cax=self.figure.add_subplot(grid[0, 3]),
                                             label="g_ij (log scale)")
        self.update(class_index, lam, T)

    def update(self, class_index=None, lam=None, T=None) -> None:
        """Redraw for a new class (index or class id), λ and/or T; arguments left ``None`` keep their value."""
        if class_index is not None:
            self.class_index = (self.hierarchy.class_index(class_index) if isinstance(class_index, str)
                                else int(class_index))
            if not 0 <= self.class_index < self.hierarchy.num_classes:
                raise ValueError(f"class_index must lie in [0, {self.hierarchy.num_classes - 1}], "
                                 f"got {class_index!r}")
            self.order = distance_order(self.distances, self.names, self.class_index)
            self._draw_class()
        if lam is not None:
            self.lam = names.check_lambda(lam)
        if T is not None:
            self.T = names.check_temperature(T)
        self.g = plotted_values(soft_label_matrix(self.edge_distances, self.lam, self.T))
        self._draw_values()

    def _draw_class(self) -> None:
        d_i = self.distances[self.class_index, self.order]
        for bar, d in zip(self.bars, d_i):
            bar.set_facecolor(self.distance_colours.to_rgba(d))
        # The bars form blocks of equal d: one tick per block start, unlabelled where the previous
        # label is too close to leave room (the colour bar gives every d anyway).
        starts = np.flatnonzero(np.r_[True, d_i[1:] != d_i[:-1]])
        labels, last = [], -np.inf
        for s in starts:
            room = s - last >= len(d_i) / 60
            labels.append(f"d={d_i[s]}" if room else "")
            last = s if room else last
        self.bar_axes.set_xticks(starts, labels, rotation=90, fontsize=7)
        self.bar_axes.set_xlabel(f"the other {len(self.order)} classes, nearest first (d_ij, then name)")

    def _draw_values(self) -> None:
        i, n = self.class_index, self.hierarchy.num_classes
        row = self.g[i, self.order]
        for bar, height in zip(self.bars, row):
            bar.set_height(height)
        low = decade_log_norm(np.r_[row, 1.0 / n]).vmin
        self.bar_axes.set_ylim(low, 1.5)  # above 1, so that g_ii ≈ 1 stays visible
        self.self_line.set_ydata([self.g[i, i]] * 2)
        self.bar_axes.set_title(f"soft label of '{self.names[i]}' at λ = {self.lam:g}, T = {self.T:g}\n"
                                f"dashed: g_ii = {self.g[i, i]:.4f} (the class itself); dotted: 1/n = {1.0 / n:.4f}",
                                fontsize=9)
        self.image.set_data(self.g[np.ix_(self.leaf_order, self.leaf_order)])
        norm = decade_log_norm(self.g)
        self.image.set_norm(norm)
        self.colorbar.update_normal(self.image)
        self.matrix_axes.set_title(f"g ({n} × {n}) at λ = {self.lam:g}, T = {self.T:g}", fontsize=9)

    def bar_heights(self) -> np.ndarray:
        """The drawn bar heights, in the order of :attr:`order` (what the tests compare)."""
        return np.array([bar.get_height() for bar in self.bars])

    def png(self, dpi: int = 90) -> bytes:
        """The figure as PNG bytes, without metadata."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
        return buffer.getvalue()


class SoftLabelExplorer:
    """Sliders for λ and T and a class menu over a :class:`SoftLabelFigure` (ipywidgets).

    ``lam_slider`` (``FloatSlider``, :data:`LAMBDA_RANGE`), ``T_slider`` (``SelectionSlider`` over
    :data:`T_STEPS`), ``class_menu`` (``Dropdown``), ``view`` (an ``Image`` widget showing the
    figure) and ``widget`` (all of them, what Jupyter displays). Every change redraws.
    """

    def __init__(self, hierarchy, class_index=0, lam: float = 0.5, T: float = 2.0):
        import ipywidgets as widgets

        self.plot = SoftLabelFigure(hierarchy, class_index, lam, T)
        low, high, step = LAMBDA_RANGE
        steps = tuple(sorted(set(T_STEPS) | {float(self.plot.T)}))
        self.lam_slider = widgets.FloatSlider(value=self.plot.lam, min=low, max=high, step=step, description="λ",
                                              continuous_update=False, readout_format=".2f")
        self.T_slider = widgets.SelectionSlider(options=steps, value=float(self.plot.T), description="T",
                                                continuous_update=False)
        self.class_menu = widgets.Dropdown(options=[(name, k) for k, name in enumerate(self.plot.names)],
                                           value=self.plot.class_index, description="class")
        self.view = widgets.Image(value=self.plot.png(), format="png")
        self.widget = widgets.VBox([widgets.HBox([self.class_menu, self.lam_slider, self.T_slider]), self.view])
        for control in (self.lam_slider, self.T_slider, self.class_menu):
            control.observe(self._redraw, names="value")

    @property
    def figure(self) -> Figure:
        return self.plot.figure

    def _redraw(self, _change=None) -> None:
        self.plot.update(self.class_menu.value if self.class_menu.value != self.plot.class_index else None,
                         self.lam_slider.value, self.T_slider.value)
        self.view.value = self.plot.png()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def soft_label_explorer(hierarchy, class_index=0, lam: float = 0.5, T: float = 2.0, *,
                        interactive: Optional[bool] = None):
    """Show one class's soft label and the soft-label matrix g of ``hierarchy`` at λ, T.

    Args:
        hierarchy: a :class:`kesl_utils.hierarchy.Hierarchy`.
        class_index: label id or class id of the class whose soft label g_i is drawn as bars.
        lam, T: λ in (0, 1) and T > 0 to draw (paper: λ = 0.5, T = 2).
        interactive: ``None`` follows :func:`interactive_session`; ``True``/``False`` force it.

    Returns:
        Interactive: a :class:`SoftLabelExplorer` (Jupyter displays its sliders and figure).
        Static: the ``matplotlib.figure.Figure`` at λ, T (Jupyter displays it once; it is not
        registered with pyplot). Its first axes hold the bars, in :func:`distance_order`.
    """
    if interactive is None:
        interactive = interactive_session()
    if interactive:
        return SoftLabelExplorer(hierarchy, class_index, lam, T)
    return SoftLabelFigure(hierarchy, class_index, lam, T).figure


# -- what the loss wants -----------------------------------------------------------------------------
def reverse_kl_at_uniform(g) -> np.ndarray:
    """KL(u ‖ g_i) = −ln n − (1/n) Σ_j ln g_ij for each class i, in nats; shape (n,), float64.

    The paper's KL term KL(y′ ‖ g_y) of a network that predicts the uniform distribution y′ = u
    (an untrained one, roughly).
    """
    g = as_float64_matrix(g)
    n = g.shape[0]
    return -math.log(n) - np.log(g).mean(axis=1)


def optimal_true_class_probability(g_true, alpha: float = 1.0, beta: float = 0.1) -> np.ndarray:
    """The p_y of the prediction p that minimises α·(−ln p_y) + β·KL(p ‖ g_y) over the simplex.

    ``g_true``: g_yy, the soft label's own probability on the true class (scalar or array).
    Setting the gradient of the Lagrangian to zero gives p_k ∝ g_yk for k ≠ y, so the loss reduces
    to −α ln p + β·KL_binary(p ‖ g_yy), whose minimiser solves β(logit p − logit g_yy) = α / p; this
    is solved for u = logit p with Brent's method (the left side minus the right is increasing
    in u). β = 0 gives 1 (cross-entropy alone), α = 0 gives g_yy (the soft label itself).
    Returns float64 of the shape of ``g_true``.
    """

    alpha = names.check_weight(alpha, "alpha (α)")
    beta = names.check_weight(beta, "beta (β)")
    g_true = np.asarray(g_true, dtype=np.float64)
    if np.any((g_true <= 0) | (g_true >= 1)):
        raise ValueError("g_true must lie in the open interval (0, 1)")
    if beta == 0:
        return np.ones_like(g_true)
    if alpha == 0:
        return g_true.copy()
    distinct, inverse = np.unique(g_true, return_inverse=True)
    solutions = []
    for g in distinct:
        u0 = float(logit(g))
        u1 = u0 + alpha / beta * (1.0 + math.exp(-u0)) + 1.0
        u = brentq(lambda u: beta * (u - u0) - alpha * (1.0 + math.exp(-u)), u0, u1, xtol=1e-13, rtol=1e-15)
        solutions.append(float(expit(u)))
    return np.asarray(solutions)[inverse].reshape(g_true.shape)


def minimise_kesl_loss(g, targets=None, alpha: float = 1.0, beta: float = 0.1, kl: str = "reverse") -> np.ndarray:
    """The prediction minimising :class:`~kesl_utils.losses.KESLLoss` for each target, found numerically.

    L-BFGS (scipy) over the logits in float64, all targets at once (the loss is a sum of
    independent per-target terms, scaled by N so that each keeps its own scale), from the soft
    label's own logits ln g_y. ``targets``: class indices (default: every class).
    Returns the predictions softmax(s*) as float64 of shape (len(targets), n).
    """

    g = as_float64_matrix(g)
    n = g.shape[0]
    targets = np.arange(n) if targets is None else np.asarray(targets, dtype=np.int64)
    criterion = KESLLoss(torch.from_numpy(g), alpha=alpha, beta=beta, kl=kl)
    target_tensor = torch.from_numpy(targets)
    start = np.log(np.maximum(g[targets], np.finfo(np.float64).tiny))

    def loss_and_gradient(flat):
        logits = torch.from_numpy(flat.reshape(len(targets), n)).requires_grad_(True)
        loss = criterion(logits, target_tensor) * len(targets)
        loss.backward()
        return float(loss.detach()), logits.grad.numpy().ravel().copy()

    result = minimize(loss_and_gradient, start.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "gtol": 1e-13, "ftol": 1e-16})
    logits = torch.from_numpy(result.x.reshape(len(targets), n))
    return torch.softmax(logits, dim=1).numpy()
