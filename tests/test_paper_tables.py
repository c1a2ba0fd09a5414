"""The paper's numbers as data, and the paper-vs-this-run tables built from run results."""
import math

import numpy as np
import pandas as pd
import pytest

from kesl_utils import paper, tables


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
        tables.build_table("nope", pd.DataFrame())


def _runs(rows):
    base = dict(dataset="cub", backbone="resnet18", lam=None, T=None, alpha=None, beta=None, kl=None, lr=0.1,
                status="finished")
    return pd.DataFrame([{**base, **r} for r in rows])


def test_cub_table_mean_std_difference_from_runs():
    ours = dict(tables.OURS)
    results = _runs([dict(loss="ce", seed=0, top1=40.0), dict(loss="ce", seed=1, top1=44.0),
                     dict(ours, seed=0, top1=43.0), dict(ours, seed=1, top1=45.0),
                     dict(ours, seed=2, top1=50.0, status="failed")])
    table = tables.build_table("cub_comparison", results).set_index("method")
    assert table.loc["Baseline", "this_run"] == 42.0
    assert table.loc["Baseline", "this_run_std"] == pytest.approx(math.sqrt(8.0))
    assert table.loc["Baseline", "n_seeds"] == 2
    assert table.loc["Baseline", "difference"] == pytest.approx(42.0 - 85.8)
    assert table.loc["Ours", "this_run"] == 44.0 and table.loc["Ours", "n_seeds"] == 2  # the failed run is left out
    assert np.isnan(table.loc["KERL", "this_run"]) and table.loc["KERL", "n_seeds"] == 0
    assert table.loc["Ours", "this_run_backbone"] == "resnet18"
    gains = tables.gains("cub_comparison", results)
    # paired by seed: (43-40, 45-44) -> mean 2, std sqrt(2)
    assert gains.loc[0, "this_run"] == 2.0 and gains.loc[0, "this_run_std"] == pytest.approx(math.sqrt(2.0))
    assert gains.loc[0, "paper"] == pytest.approx(1.3)


def test_ablation_rows_with_the_same_setting_share_one_run():
    results = _runs([dict(loss="ce", seed=0, top1=30.0),
                     dict(loss="kesl", lam=0.5, T=16.0, alpha=1.0, beta=1.0, seed=0, top1=33.0),
                     dict(loss="kesl", lam=0.5, T=2.0, alpha=1.0, beta=0.1, seed=0, top1=35.0)])
    table = tables.build_table("hyperparameter_ablation", results)
    assert list(table["this_run"].iloc[[0, 4, 5, 8]]) == [30.0, 33.0, 33.0, 35.0]
    assert table["this_run"].iloc[[1, 2, 3, 6, 7]].isna().all()
    assert table["paper"].iloc[8] == 87.1 and table["top1_printed"].iloc[8] == 97.1


def test_format_and_write(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path))
    results = _runs([dict(loss="label_smoothing", lr=0.01, seed=s, top1=v) for s, v in enumerate([10.0, 12.0])])
    table = tables.build_table("label_smoothing", results)
    shown = tables.format_table(table)
    assert list(shown.columns[-4:]) == ["paper", "this run", "difference", "seeds"]
    assert shown["this run"].iloc[0] == "11.0 ± 1.4" and shown["difference"].iloc[0] == "-74.8"
    assert shown["this run"].iloc[1] == ""
    files = tables.write_table("label_smoothing", table, profile="smoke")
    assert pd.read_csv(files["csv"])["this_run"].iloc[0] == 11.0
    assert "| Label smoothing |" in files["md"].read_text()
    assert "\\begin{tabular}" in files["tex"].read_text()
    assert not list(tmp_path.rglob("*.tmp"))


def test_written_table_carries_the_paired_gain(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path))
    ours = dict(tables.OURS)
    results = _runs([dict(loss="ce", seed=0, top1=40.0), dict(loss="ce", seed=1, top1=44.0),
                     dict(ours, seed=0, top1=43.0), dict(ours, seed=1, top1=45.0)])
    gains = tables.gains("cub_comparison", results)
    files = tables.write_table("cub_comparison", tables.build_table("cub_comparison", results),
                               profile="smoke", gains=gains)
    md = files["md"].read_text()
    assert "| Ours − Baseline (CUB) | 1.3 | 2.0 ± 1.4 | +0.7 | 2 |" in md
    assert "same direction as the paper" in md
    assert pd.read_csv(files["gains_csv"])["this_run"].iloc[0] == 2.0


def test_describe_gains_words_follow_the_numbers():
    frame = pd.DataFrame([
        dict(comparison="a", paper=1.3, this_run=2.0, this_run_std=0.5, n_seeds=3, difference=0.7),
        dict(comparison="b", paper=1.3, this_run=-2.0, this_run_std=0.5, n_seeds=3, difference=-3.3),
        dict(comparison="c", paper=1.3, this_run=0.2, this_run_std=0.5, n_seeds=3, difference=-1.1),
        dict(comparison="d", paper=0.5, this_run=float("nan"), this_run_std=float("nan"), n_seeds=0,
             difference=float("nan")),
    ])
    text = tables.describe_gains(frame).splitlines()
    assert "+2.0 ± 0.5" in text[0] and "same direction" in text[0]
    assert "opposite direction" in text[1]
    assert "within one standard deviation" in text[2]
    assert "not measured" in text[3]


def test_chance_level_of_the_shipped_hierarchies():
    assert tables.chance_top1("cub") == pytest.approx(0.5)
    assert tables.chance_top1("mini_imagenet") == pytest.approx(1.0)
    assert tables.chance_top1("small_imagenet") == pytest.approx(0.5)
    assert np.isnan(tables.chance_top1("my_own_dataset"))


def test_a_gain_against_an_arm_that_did_not_learn_is_called_out():
    # ResNet-50 at 1.4 % on 200 classes (2.8 × chance) next to MobileNetV2 at 12 % (24 × chance)
    ours = dict(tables.OURS)
    results = _runs([dict(loss="ce", backbone="resnet50", seed=0, top1=1.5),
                     dict(ours, backbone="resnet50", seed=0, top1=1.0),
                     dict(loss="ce", backbone="mobilenet_v2", seed=0, top1=12.0),
                     dict(ours, backbone="mobilenet_v2", seed=0, top1=15.0)])
    gains = tables.gains("backbone_ablation", results).set_index("comparison")
    r50 = gains.loc["Ours − Baseline (ResNet-50)"]
    assert r50["baseline_top1"] == 1.5 and r50["ours_top1"] == 1.0 and r50["chance_top1"] == pytest.approx(0.5)
    text = dict(zip(gains.index, tables.describe_gains(gains.reset_index()).splitlines()))
    assert "did not learn" in text["Ours − Baseline (ResNet-50)"] and "1.0 %" in text["Ours − Baseline (ResNet-50)"]
    assert "did not learn" not in text["Ours − Baseline (MobileNetV2)"]
    assert "baseline_top1" not in tables.format_table(gains.reset_index()).columns


def test_mean_pair_distance_of_the_cub_taxonomy():
    # all CUB leaves sit four edges below the root: e ∈ {2, 4, 6, 8}, so d ∈ {1, 3, 5, 7}
    assert tables.mean_pair_distance("cub") == pytest.approx(5.95, abs=0.005)
    assert 1.0 < tables.mean_pair_distance("mini_imagenet")


def test_mistake_summary_reads_severity_from_the_records():
    ours = dict(tables.OURS)
    results = _runs([dict(loss="ce", seed=0, top1=30.0, mistake_severity=2.0, **{"hdist@1": 1.4}),
                     dict(loss="ce", seed=1, top1=31.0, mistake_severity=3.0, **{"hdist@1": 2.0}),
                     dict(ours, seed=0, top1=29.0, mistake_severity=2.5, **{"hdist@1": 1.8})])
    summary = tables.mistake_summary(results).set_index("method")
    all_pairs = tables.mean_pair_distance("cub")
    assert summary.loc["Baseline", "mistake_severity"] == 2.5
    assert summary.loc["Baseline", "mistake_severity_std"] == pytest.approx(math.sqrt(0.5))
    assert summary.loc["Baseline", "hdist@1"] == pytest.approx(1.7)
    assert summary.loc["Baseline", "ratio"] == pytest.approx(2.5 / all_pairs)
    assert summary.loc["Ours", "n_seeds"] == 1 and np.isnan(summary.loc["Ours", "mistake_severity_std"])
    shown = tables.format_mistakes(summary.reset_index())
    assert shown["mean d of mistakes"].tolist() == ["2.50 ± 0.71", "2.50"]
    assert tables.mistake_summary(results.iloc[0:0]).empty
