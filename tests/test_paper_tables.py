"""The paper's numbers as data, and the paper-vs-this-run tables built from run results."""
import numpy as np
import pytest

from kesl_utils import paper, table_specs, tables


def test_paper_tables_hold_the_published_numbers():
    t1 = paper.cub_comparison().set_index("method")["top1"]
    assert t1["Baseline"] == 85.8 and t1["Ours"] == 87.1 and t1["DPL-CNN"] == 87.1 and len(t1) == 8
    assert paper.cub_comparison()["reproduced_here"].sum() == 2
    t2 = paper.general_recognition().set_index(["dataset", "method"])["top1"]
    assert t2[("mini_imagenet", "Baseline")] == 78.4 and t2[("mini_imagenet", "Ours")] == 81.0
    assert t2[("small_imagenet", "Baseline")] == 80.1 and t2[("small_imagenet", "Ours")] == 80.6
    t3 = paper.label_smoothing()
    assert list(zip(t3["loss"], t3["lr"], t3["top1"])) == [
        ("label_smoothing", 0.01, 85.8), ("label_smoothing", 0.001, 86.5), ("kesl", 0.1, 87.1), ("kesl", 0.01, 86.7)]
    t5 = paper.backbone_ablation().set_index(["backbone", "method"])["top1"]
    assert t5[("mobilenet_v2", "Ours")] == 82.1 and t5[("resnet18", "Baseline")] == 82.6


def test_ablation_keeps_the_printed_value_and_our_reading():
    t4 = paper.hyperparameter_ablation()
    assert len(t4) == 9
    assert t4["top1_printed"].iloc[-1] == 97.1 and t4["top1"].iloc[-1] == 87.1
    assert (t4["top1"].iloc[:-1] == t4["top1_printed"].iloc[:-1]).all()
    assert np.isnan(t4["lam"].iloc[0]) and set(t4["lam"].iloc[1:]) == {0.5}
    assert list(t4["T"].iloc[1:]) == [16.0, 2.0, 5.0, 16.0, 16.0, 16.0, 2.0, 2.0]
    assert (t4.iloc[-1][["alpha", "beta"]] == [1.0, 0.1]).all()


def test_unknown_table_name_is_an_error():
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        paper.paper_table("nope")
    with pytest.raises(ValueError, match="unknown table"):
        tables.build_table("nope", [], profile="smoke")


def test_ours_is_table_4s_last_row():
    table_specs.check_ours_is_the_papers_setting()
