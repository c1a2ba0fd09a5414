"""Notebook 10's helpers: budgets, the per-run JSON cache, data helpers and the paired comparison."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from kesl_utils import paths, profiles, tutorial
from kesl_utils.comparison import READINGS, Arm


@pytest.fixture
def results_root(tmp_path):
    return tmp_path


SETTINGS = {"recipe": "r1", "data": "synthetic", "image_size": 16, "epochs": 2, "lr": 0.1, "method": "KESL",
            "loss": {"lam": 0.5, "T": 2.0}, "seed": 1}


def test_every_profile_has_a_budget_and_seeds_are_not_settings():
    assert all(tutorial.budget(name) is entry.tutorial for name, entry in profiles.PROFILES.items())
    quick = tutorial.budget("quick")
    assert len(quick.seeds) == 3 and tutorial.budget("smoke").seeds == (0,)
    assert "seeds" not in quick.settings() and quick.settings()["epochs"] == quick.epochs
    with pytest.raises(ValueError, match="profile"):
        tutorial.budget("huge")


def test_settings_key_is_order_free_and_changes_with_any_value():
    key = tutorial.settings_key(SETTINGS)
    assert len(key) == 12 and int(key, 16) >= 0
    assert tutorial.settings_key(dict(reversed(list(SETTINGS.items())))) == key
    assert tutorial.settings_key({**SETTINGS, "seed": 2}) != key
    assert tutorial.settings_key({**SETTINGS, "loss": {"lam": 0.5, "T": 5.0}}) != key
    with pytest.raises(ValueError, match="JSON"):
        tutorial.settings_key({"x": object()})


def test_a_stored_result_is_found_again_only_for_the_same_settings(results_root):
    assert tutorial.cached_result(results_root, SETTINGS) is None
    row = tutorial.store_result(results_root, SETTINGS, {"top1": np.float64(41.5), "mistake_severity": math.nan})
    assert row["top1"] == 41.5 and row["mistake_severity"] is None and row["method"] == "KESL"
    files = list((results_root / "tutorial").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("KESL-1-")
    stored = json.loads(files[0].read_text())
    assert stored["settings"] == SETTINGS and stored["metrics"]["mistake_severity"] is None
    assert tutorial.cached_result(results_root, dict(reversed(list(SETTINGS.items())))) == row
    assert tutorial.cached_result(results_root, {**SETTINGS, "epochs": 3}) is None
    files[0].write_text("{ broken")
    assert tutorial.cached_result(results_root, SETTINGS) is None  # an unreadable file is a cache miss, not an error


def test_tensor_digest_sees_values_shapes_and_dtypes():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    key = tutorial.tensor_digest(x, torch.tensor([0, 1, 2]))
    assert len(key) == 12 and key == tutorial.tensor_digest(x.clone(), torch.tensor([0, 1, 2]))
    assert tutorial.tensor_digest(x, torch.tensor([0, 1, 1])) != key  # a relabelled image
    assert tutorial.tensor_digest(x.reshape(4, 3), torch.tensor([0, 1, 2])) != key
    assert tutorial.tensor_digest(x.double(), torch.tensor([0, 1, 2])) != key


def test_cache_dir_is_inside_the_results_folder():
    smoke = paths.default_results_dir("smoke")
    assert tutorial.cache_dir(smoke) == paths.PROJECT_ROOT / "build/results-smoke/tutorial"


def test_first_per_class_keeps_dataset_order():
    targets = [2, 0, 2, 1, 0, 2, 1, 0]
    assert tutorial.first_per_class(targets, 1) == [0, 1, 3]
    assert tutorial.first_per_class(targets, 2) == [0, 1, 2, 3, 4, 6]
    assert tutorial.first_per_class(targets, None) == list(range(8))
    with pytest.raises(ValueError):
        tutorial.first_per_class(targets, 0)


@pytest.mark.parametrize("baseline, treatment, higher, reading", [
    ({0: 10, 1: 11, 2: 12}, {0: 12, 1: 13.1, 2: 13.9}, True, "better"),
    ({0: 10, 1: 11, 2: 12}, {0: 12, 1: 13.1, 2: 13.9}, False, "worse"),  # e.g. mistake severity went up
    ({0: 10, 1: 11, 2: 12}, {0: 8, 1: 9.2, 2: 9.9}, False, "better"),
    ({0: 10, 1: 11, 2: 12}, {0: 12, 1: 10, 2: 12.5}, True, "no_difference"),
    ({0: 10}, {0: 12}, True, "single"),
])
def test_the_comparison_is_read_by_the_one_reading(baseline, treatment, higher, reading):
    out = tutorial.paired_comparison(baseline, treatment, higher_is_better=higher)
    assert out["reading"] == reading and out["verdict"] == READINGS[reading]
    assert out["n"] == len(baseline)
    assert out["mean"] == pytest.approx(np.mean([treatment[s] - baseline[s] for s in baseline]))
    if out["n"] > 1:
        assert out["ci_low"] < out["mean"] < out["ci_high"]


def test_not_informative_when_an_arm_is_below_the_reference():
    out = tutorial.paired_comparison({0: 1, 1: 1.1}, {0: 3, 1: 3.2}, higher_is_better=True,
                                     arms=[Arm(1.05, 20.0), Arm(3.1, 20.0)])
    assert out["reading"] == "not_informative"


def test_comparison_table_and_its_files(results_root):
    rows = []
    for seed, (ce, kesl) in enumerate([(40.0, 42.0), (41.0, 43.5), (39.0, 40.5)]):
        rows.append({"method": "CE", "seed": seed, "top1": ce, "mistake_severity": 2.0, "superclass_accuracy": 60.0})
        rows.append({"method": "KESL", "seed": seed, "top1": kesl, "mistake_severity": 1.9 - 0.01 * seed,
                     "superclass_accuracy": 60.0 + seed})
    table = tutorial.comparison_table(pd.DataFrame(rows), reference_top1=30.0)
    top1 = table.set_index("metric").loc["top1"]
    assert top1["CE_mean"] == pytest.approx(40.0) and top1["KESL_mean"] == pytest.approx(42.0)
    assert top1["difference"] == pytest.approx(2.0) and top1["reading"] == "better" and top1["n_seeds"] == 3
    assert table.set_index("metric").loc["mistake_severity", "reading"] == "better"  # lower is better
    written = tutorial.write_table(table, profile="quick", folder=results_root / "tables", note="a note")
    assert {p.name for p in written.values()} == {"your_own_hierarchy.csv", "your_own_hierarchy.md",
                                                 "your_own_hierarchy.tex"}
    assert all(p.parent == results_root / "tables" for p in written.values())
    csv = pd.read_csv(written["csv"])
    assert csv.loc[csv.metric == "top1", "difference"].item() == pytest.approx(2.0)
    md = written["md"].read_text()
    assert "a note" in md and "significantly better at 5 %" in md and "KESL − CE" in md
    # An arm below the raw-pixel nearest class mean of the same images: no metric is read.
    assert (tutorial.comparison_table(pd.DataFrame(rows), reference_top1=41.0)["reading"] == "not_informative").all()
    with pytest.raises(ValueError, match="no runs of 'LS'"):
        tutorial.comparison_table(pd.DataFrame(rows), treatment="LS")
