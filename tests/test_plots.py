"""Figures flag what their tables flag, and never put the paper's accuracies on one axis with this run's."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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
