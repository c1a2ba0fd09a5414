"""Figures flag what their tables flag, and never put the paper's accuracies on one axis with this run's."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
import pandas as pd  # noqa: E402

from kesl_utils import ncm, plots, tables  # noqa: E402
from kesl_utils.records import RunRecord  # noqa: E402
from kesl_utils.table_specs import table_spec  # noqa: E402


def _table(top1_of):
    spec = table_spec("backbone_ablation")
    configs = spec.configs("smoke", seeds=(0, 1))
    metrics = dict.fromkeys(("top5", "mistake_severity", "hdist@1", "hdist@5", "ece"), 1.0)
    runs = [RunRecord(run_id=c.run_id, config=c.to_dict(), metrics={**metrics, "top1": top1_of(c) + c.seed})
            for c in configs]
    return tables.build_table("backbone_ablation", runs, profile="smoke", seeds=(0, 1),
                              references={ncm.data_key(c): 30.0 for c in configs})


def test_accuracy_bars_show_this_runs_arms_only_with_the_reference_and_flag_those_below_it():
    table = _table(lambda c: 10.0 if c.backbone == "mobilenet_v2" else 50.0)
    fig, ax = plt.subplots()
    plots.this_run_accuracy(table, ax=ax)
    bars = [patch for patch in ax.patches if patch.get_height() > 0]
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == [10.5, 10.5, 50.5, 50.5, 50.5, 50.5]  # six arms; no paper bar (81.7 … 87.1), no reference bar
    assert ax.get_ylim()[1] < 80
    grey = [b for b in bars if b.get_hatch() == "///"]
    assert sorted(b.get_height() for b in grey) == [10.5, 10.5]  # the MobileNetV2 arms, below the reference
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["Baseline · MobileNetV2", "Ours · MobileNetV2", "Baseline · ResNet-18", "Ours · ResNet-18",
                     "Baseline · ResNet-50", "Ours · ResNet-50"]
    lines = ax.collections  # the reference, one dashed segment over each bar
    assert any(np.allclose(np.asarray(c.get_segments())[:, :, 1], 30.0) for c in lines)
    plt.close(fig)


def test_training_curves_plot_an_accuracy_and_say_the_last_epochs_gain():
    history = [{"epoch": 1, "train_top1": 10.0, "train_loss": 9.0}, {"epoch": 2, "train_top1": 30.0},
               {"epoch": 3, "train_top1": 30.5}]
    fig, ax = plt.subplots()
    plots.training_curves({"Baseline": [history, history]}, ax=ax)
    assert ax.get_ylabel() == "training top-1 (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Baseline (last epoch +0.5)"]
    plt.close(fig)
    frame = pd.DataFrame(history)
    assert frame["train_top1"].iloc[-1] - frame["train_top1"].iloc[-2] == 0.5


def _seeds(values_of_seed, epochs=3, every=None):
    """Histories of three seeds: train_top1 at every epoch, test_top1 at ``every`` epochs (None: the last only)."""
    runs = []
    for seed, value in enumerate(values_of_seed):
        history = []
        for epoch in range(1, epochs + 1):
            entry = {"epoch": epoch, "train_top1": 10.0 * epoch + seed, "train_loss": 1.0 / epoch}
            if (every is None and epoch == epochs) or (every is not None and epoch % every == 0):
                entry["test_top1"] = value + epoch
            history.append(entry)
        runs.append(history)
    return runs


def test_test_top1_recorded_only_at_the_last_epoch_is_one_point_with_the_sample_sd():
    runs = _seeds([20.0, 22.0, 27.0])  # test_top1 at epoch 3 only: 23, 25, 30
    fig, ax = plt.subplots()
    plots.training_curves({"Baseline": runs}, metric="test_top1", ax=ax)
    assert ax.get_ylabel() == "test top-1 (%)"
    assert len(ax.containers) == 1 and not any(isinstance(c, PolyCollection) for c in ax.collections)  # no band
    container = ax.containers[0]
    data_line, _, (bar,) = container.lines
    assert list(data_line.get_xdata()) == [3] and list(data_line.get_ydata()) == [26.0]
    sd = float(np.std([23.0, 25.0, 30.0], ddof=1))
    assert np.allclose(bar.get_segments()[0], [[3, 26.0 - sd], [3, 26.0 + sd]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Baseline"]  # no last-epoch gain
    assert [t.get_text() for t in ax.texts] == []
    assert list(ax.get_xticks()) == [3]
    plt.close(fig)


def test_a_metric_at_every_epoch_is_a_line_with_a_band_and_its_last_epochs_gain():
    runs = _seeds([20.0, 22.0, 27.0], every=1)
    fig, ax = plt.subplots()
    plots.training_curves({"Baseline": runs, "Ours": _seeds([30.0, 30.0, 30.0], every=1)}, metric="test_top1", ax=ax)
    baseline, ours = ax.get_lines()
    assert list(baseline.get_xdata()) == [1, 2, 3] and list(baseline.get_ydata()) == [24.0, 25.0, 26.0]
    assert list(ours.get_ydata()) == [31.0, 32.0, 33.0]
    assert baseline.get_color() != ours.get_color()
    band = ax.collections[0].get_paths()[0].vertices  # ± the sample sd around the mean
    sd = float(np.std([20.0, 22.0, 27.0], ddof=1))
    assert np.isclose(band[:, 1].max(), 26.0 + sd)
    assert np.isclose(band[:, 1].min(), 24.0 - sd)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Baseline (last epoch +1.0)",
                                                                  "Ours (last epoch +1.0)"]
    assert not ax.containers
    plt.close(fig)


def test_a_rise_between_epochs_evaluated_two_apart_is_not_called_the_last_epochs():
    runs = _seeds([20.0, 22.0, 27.0], epochs=4, every=2)  # test_top1 at epochs 2 and 4
    fig, ax = plt.subplots()
    plots.training_curves({"Baseline": runs}, metric="test_top1", ax=ax)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [2, 4] and list(line.get_ydata()) == [25.0, 27.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Baseline"]
    plt.close(fig)


def test_a_metric_no_run_recorded_says_so_in_the_axes():
    runs = _seeds([20.0, 22.0, 27.0])
    for history in runs:
        for entry in history:
            entry.pop("test_top1", None)
    fig, ax = plt.subplots()
    plots.training_curves({"Baseline": runs, "Ours": [[]]}, metric="test_top1", ax=ax)
    assert [t.get_text() for t in ax.texts] == [plots.NOT_EVALUATED] == ["not evaluated during training"]
    assert not ax.get_lines() and not ax.containers and ax.get_legend() is None
    plt.close(fig)


def test_a_label_keeps_its_colour_in_a_panel_where_another_label_is_missing():
    with_test, without = _seeds([20.0, 22.0, 27.0]), _seeds([20.0])
    for entry in without[0]:
        entry.pop("test_top1", None)
    fig, (train_ax, test_ax) = plt.subplots(1, 2)
    curves = {"Baseline": without, "Ours": with_test}
    plots.training_curves(curves, metric="train_top1", ax=train_ax)
    plots.training_curves(curves, metric="test_top1", ax=test_ax)
    ours_train = train_ax.get_lines()[1]
    ours_test = test_ax.containers[0].lines[0]
    assert ours_train.get_color() == ours_test.get_color() == "C1"
    assert [t.get_text() for t in test_ax.get_legend().get_texts()] == ["Ours"]
    plt.close(fig)


def test_single_points_of_several_labels_at_one_epoch_stand_side_by_side():
    curves = {"Baseline": _seeds([20.0, 22.0, 27.0]), "Ours": _seeds([25.0, 26.0, 30.0])}
    fig, ax = plt.subplots()
    plots.training_curves(curves, metric="test_top1", ax=ax)
    xs = [list(c.lines[0].get_xdata()) for c in ax.containers]
    ys = [list(c.lines[0].get_ydata()) for c in ax.containers]
    assert np.allclose(xs, [[2.85], [3.15]]) and ys == [[26.0], [30.0]]  # epoch 3 ∓ 0.15
    assert list(ax.get_xticks()) == [3]
    plt.close(fig)
