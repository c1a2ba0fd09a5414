"""Paper tables from run records: cells joined by run id, readings, reference rows read (never computed), files."""
import json

import numpy as np
import pandas as pd
import pytest

from kesl_utils import experiments, ncm, paths, profiles, prose, records, tables
from kesl_utils.records import RunRecord
from kesl_utils.table_specs import TABLES, table_spec

METRICS = ("top1", "top5", "mistake_severity", "hdist@1", "hdist@5", "ece")


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def record(config, top1, **metrics):
    values = {k: 1.0 for k in METRICS}
    values.update(metrics, top1=float(top1))
    return RunRecord(run_id=config.run_id, config=config.to_dict(), metrics=values)


def unrelated(profile="smoke"):
    """Records that resemble the tables' runs in every column a matcher would look at, but are other runs."""
    out = []
    for dataset in ("cub", "mini_imagenet", "small_imagenet"):
        for backbone in ("resnet18", "resnet50", "mobilenet_v2"):
            for lr in (0.1, 0.01, 0.001, 0.05):
                for loss in ({"loss": "ce"}, {"loss": "kesl"}, {"loss": "label_smoothing"}):
                    for seed in (0, 1, 2):
                        config = experiments.profile_config(profile, dataset, backbone=backbone, lr=lr, epochs=3,
                                                            seed=seed, **loss)
                        out.append(record(config, 99.0))
    return out


def stored(configs, top1):
    """``references`` as the tables take them: the same no-learning top-1 for every config's images."""
    return {ncm.data_key(c): float(top1) for c in configs}


# -- joins by run id ------------------------------------------------------------------------------------
def test_cells_come_from_the_rows_own_runs(results_dir):
    spec = table_spec("cub_comparison")
    base, ours = spec.row("baseline"), spec.row("ours")
    runs = [record(c, 40.0 + 2 * c.seed) for c in base.configs("smoke", seeds=(0, 1, 2))]
    runs += [record(c, 41.0 + 2 * c.seed + 0.5 * c.seed) for c in ours.configs("smoke", seeds=(0, 1, 2))]
    alone = tables.build_table("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2))
    crowded = tables.build_table("cub_comparison", runs + unrelated(), profile="smoke", seeds=(0, 1, 2))
    pd.testing.assert_frame_equal(alone, crowded)
    row = alone.set_index("key").loc["baseline"]
    assert (row["this_run"], row["n_seeds"]) == (42.0, 3) and row["this_run_sd"] == pytest.approx(2.0)
    # the paper's number and this run's side by side, no difference between unrelated scales
    assert "difference" not in alone.columns and (row["paper"], row["paper backbone"]) == (85.8, "ResNet-50")
    assert row["this_run_backbone"] == "ResNet-18"  # from the configs of the run ids that filled the row
    assert alone.set_index("key").loc["KERL", "n_seeds"] == 0 and alone.set_index("key").loc["KERL", "kind"] == "quoted"
    references = stored(base.configs("smoke", seeds=(0, 1, 2)), 30.0)
    gains = tables.gains("cub_comparison", runs + unrelated(), profile="smoke", seeds=(0, 1, 2),
                         references=references).iloc[0]
    assert gains["this_run"] == pytest.approx(np.mean([1.0, 1.5, 2.0])) and gains["paper"] == 1.3
    # [+0.26, +2.74] holds the paper's +1.3, both arms above the reference of 30 %
    assert (gains["reading"], gains["verdict"]) == ("agrees", "agrees with the paper") and gains["reference"] == 30.0
    # without its stored reference the comparison is not read, only measured
    unread = tables.gains("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2)).iloc[0]
    assert unread["reading"] == "reference_missing" and unread["this_run"] == gains["this_run"]
    below = tables.gains("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2), references=stored(
        base.configs("smoke", seeds=(0, 1, 2)), 42.5)).iloc[0]
    assert below["reading"] == "not_informative"  # the baseline's 42.0 is below 42.5


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_ignores_unrelated_records(name):
    spec = table_spec(name)
    configs = spec.configs("smoke", seeds=(0, 1, 2))
    rng = np.random.default_rng(0)
    runs = [record(c, rng.uniform(20, 60)) for c in configs]
    alone = tables.build_table(name, runs, profile="smoke", seeds=(0, 1, 2))
    crowded = tables.build_table(name, runs + unrelated(), profile="smoke", seeds=(0, 1, 2))
    pd.testing.assert_frame_equal(alone, crowded)
    pd.testing.assert_frame_equal(tables.gains(name, runs, profile="smoke", seeds=(0, 1, 2)),
                                  tables.gains(name, runs + unrelated(), profile="smoke", seeds=(0, 1, 2)))
    assert (alone.loc[alone["kind"] == "run", "n_seeds"] == 3).all()


def test_ablation_comparisons_are_each_row_against_only_ce():
    spec = table_spec("hyperparameter_ablation")
    labels = [c.label for c in spec.comparisons]
    # rows 6 and 8 repeat the settings of rows 5 and 3: no second comparison for them
    assert labels == ["row 2 − row 1 (only L_CE)", "row 3 − row 1 (only L_CE)", "row 4 − row 1 (only L_CE)",
                      "row 5 − row 1 (only L_CE)", "row 7 − row 1 (only L_CE)", "row 9 − row 1 (only L_CE)"]
    assert [spec.paper_gain(c) for c in spec.comparisons] == [-0.4, 0.9, 0.4, 0.0, 0.7, 1.3]


def test_paper_gains_are_computed_from_the_papers_rows():
    assert [table_spec("general_recognition").paper_gain(c) for c in table_spec("general_recognition").comparisons] \
        == [2.6, 0.5]
    assert [table_spec("backbone_ablation").paper_gain(c) for c in table_spec("backbone_ablation").comparisons] \
        == [0.4, 0.7, 1.3]
    assert [table_spec("label_smoothing").paper_gain(c) for c in table_spec("label_smoothing").comparisons] \
        == [0.9, 0.6]


def test_not_learned_arm_is_flagged_in_table_and_gain():
    spec = table_spec("backbone_ablation")
    runs = []
    for row in spec.rows:
        for c in row.configs("smoke", seeds=(0, 1)):
            runs.append(record(c, 1.0 if row.key.startswith("resnet50") else 30.0 + c.seed))
    references = stored(spec.configs("smoke", seeds=(0, 1)), 20.0)
    table = tables.build_table("backbone_ablation", runs, profile="smoke", seeds=(0, 1), references=references)
    flagged = table.set_index("key")["learned"]
    assert not flagged["resnet50/baseline"] and flagged["resnet18/baseline"]
    assert table.set_index("key").loc["resnet50/ours", "below_reference"]
    shown = tables.format_table(table)
    assert shown.loc[table["key"] == "resnet50/ours", "this run"].item().endswith("(did not learn)")
    gains = tables.gains("backbone_ablation", runs, profile="smoke", seeds=(0, 1), references=references)
    gains = gains.set_index("comparison")
    assert gains.loc["Ours − Baseline (ResNet-50)", "verdict"] == \
        "not informative: an arm is below the no-learning reference"
    assert not gains.loc["Ours − Baseline (ResNet-50)", "learned"]
    assert gains.loc["Ours − Baseline (ResNet-18)", "reading"] != "not_informative"


def test_an_arm_below_the_reference_is_marked_in_the_display_table():
    spec = table_spec("cub_comparison")
    runs = [record(c, 40.0) for c in spec.row("baseline").configs("smoke", seeds=(0, 1))]
    table = tables.build_table("cub_comparison", runs, profile="smoke", seeds=(0, 1),
                               references=stored(spec.configs("smoke", seeds=(0, 1)), 45.0))
    row = tables.format_table(table).set_index(table["key"]).loc["baseline"]
    assert row["this run"] == "40.0 ± 0.0 (below the no-learning reference)"


def test_reference_rows_are_read_from_the_stored_references_never_computed(monkeypatch):
    monkeypatch.setattr(ncm, "compute", lambda config: pytest.fail("a table computed a reference"))
    configs = table_spec("general_recognition").configs("smoke")
    references = {ncm.data_key(c): 10.0 + i for i, c in enumerate(configs)}
    table = tables.build_table("general_recognition", [], profile="smoke", references=references)
    reference = table[table["kind"] == "reference"].set_index("key")
    assert list(reference.index) == ["ncm/mini_imagenet", "ncm/small_imagenet"]
    for dataset in ("mini_imagenet", "small_imagenet"):
        expected = [references[ncm.data_key(c)] for c in configs if c.dataset == dataset]
        assert reference.loc[f"ncm/{dataset}", "this_run"] == pytest.approx(np.mean(expected))
    missing = tables.build_table("general_recognition", [], profile="smoke")
    assert missing.loc[missing["kind"] == "reference", "n_seeds"].eq(0).all()
    assert missing.loc[missing["kind"] == "reference", "this_run"].isna().all()


def test_written_files_hold_numbers_intervals_and_words(results_dir):
    spec = table_spec("cub_comparison")
    runs = [record(c, 40.0 + c.seed) for c in spec.row("baseline").configs("smoke", seeds=(0, 1, 2))]
    runs += [record(c, 40.5 + 1.1 * c.seed) for c in spec.row("ours").configs("smoke", seeds=(0, 1, 2))]
    references = stored(spec.configs("smoke", seeds=(0, 1, 2)), 20.0)
    table = tables.build_table("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2), references=references)
    gains = tables.gains("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2), references=references)
    note = prose.profile_note("smoke", spec.configs("smoke", seeds=(0,)))
    written = tables.write_table("cub_comparison", table, gains, profile="smoke", folder=results_dir / "tables",
                                 note=note)
    assert written["csv"] == results_dir / "tables" / "cub_comparison.csv"
    md = written["md"].read_text()
    assert "95 % CI" in md and "sample standard deviation" in md and "16-px" in md and "2 training" in md
    assert "nearest class mean" in md and gains.loc[0, "verdict"] in md
    back = pd.read_csv(written["gains_csv"])
    assert back.loc[0, "n_seeds"] == 3 and back.loc[0, "ci_low"] < back.loc[0, "this_run"] < back.loc[0, "ci_high"]
    assert "\\begin{tabular}" in written["tex"].read_text()


def test_chance_level_of_the_shipped_hierarchies():
    assert tables.chance_top1("cub") == 0.5 and tables.chance_top1("mini_imagenet") == 1.0
    assert tables.chance_top1("small_imagenet") == 0.5


def test_mean_pair_distance_of_the_cub_taxonomy():
    assert tables.mean_pair_distance("cub") == pytest.approx(5.95, abs=0.01)


def test_committed_quick_tables_are_rebuilt_from_the_records_by_run_id(monkeypatch):
    """Every committed quick table, rebuilt from all quick records plus unrelated ones, holds the committed numbers."""
    committed = paths.default_results_dir("quick")
    quick = records.load_records(committed)
    if not quick or not any((committed / "tables" / f"{name}.csv").exists() for name in TABLES):
        pytest.skip("no committed quick run of the current protocol (the complete quick run publishes one)")
    for name in TABLES:
        expected = pd.read_csv(committed / "tables" / f"{name}.csv")
        references = ncm.references(table_spec(name).configs("quick"), committed)
        got = tables.build_table(name, quick + unrelated("quick"), profile="quick", references=references)
        for column in ("this_run", "this_run_sd", "n_seeds"):
            np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float),
                                       rtol=1e-9, err_msg=f"{name}.{column}")
        expected_gains = pd.read_csv(committed / "tables" / f"{name}_gains.csv")
        got_gains = tables.gains(name, quick + unrelated("quick"), profile="quick", references=references)
        for column in ("this_run", "ci_low", "ci_high", "p_value", "n_seeds"):
            np.testing.assert_allclose(got_gains[column].to_numpy(float), expected_gains[column].to_numpy(float),
                                       rtol=1e-9, err_msg=f"{name}_gains.{column}")


def test_protocol_checks_state_the_ncm_margin_and_the_arms_that_did_not_learn():
    spec = table_spec("backbone_ablation")
    recs = []
    for row in spec.rows:
        if not row.runs_here:
            continue
        # MobileNetV2 arms stay at 1 % (chance 0.5 %: below 5 x chance); the others learn.
        top1 = 1.0 if row.config("quick").backbone == "mobilenet_v2" else 50.0 + (2.0 if "kesl" in row.key else 0.0)
        recs += [record(config, top1) for config in row.configs("quick")]
    table = tables.build_table("backbone_ablation", recs, profile="quick",
                               references=stored(spec.configs("quick"), 46.0))
    text = prose.protocol_checks("backbone_ablation", table, profile="quick")
    baseline = table[table["this_run"].notna() & (table["kind"] == "run")]
    # each backbone's CE baseline has its margin, the profile's own (ResNet-18 in quick) first
    margins = [line for line in text.splitlines() if "the cross-entropy baseline" in line]
    assert margins == [
        "- cub: the cross-entropy baseline (ResNet-18) scores 50.0 %, +4.0 points against the nearest class mean on "
        "raw pixels (46.0 %); criterion ≥ +5: **not met**.",
        "- cub: the cross-entropy baseline (MobileNetV2) scores 1.0 %, -45.0 points against the nearest class mean on "
        "raw pixels (46.0 %); criterion ≥ +5: **not met**.",
        "- cub: the cross-entropy baseline (ResNet-50) scores 50.0 %, +4.0 points against the nearest class mean on "
        "raw pixels (46.0 %); criterion ≥ +5: **not met**."]
    assert "2 of 6 measured arms stay below 5 × chance" in text and len(baseline) == 6
    assert "2 of 6 measured arms score below the nearest class mean of their dataset: " \
           "Baseline (backbone MobileNetV2) (1.0 % against 46.0 %); " \
           "Ours (backbone MobileNetV2) (1.0 % against 46.0 %)." \
           in text
    assert "Every measured arm scores above" not in text
    learned = [record(config, 50.0) for row in spec.rows if row.runs_here for config in row.configs("quick")]
    everyone = prose.protocol_checks("backbone_ablation", tables.build_table(
        "backbone_ablation", learned, profile="quick", references=stored(spec.configs("quick"), 46.0)), profile="quick")
    assert "- Every measured arm scores above the nearest class mean of its dataset (6 of 6 rows have a stored " \
           "reference)." in everyone
    empty = tables.build_table("backbone_ablation", [], profile="quick")
    assert prose.protocol_checks("backbone_ablation", empty, profile="quick").startswith("- No run")
    unreferenced = prose.protocol_checks("backbone_ablation", tables.build_table("backbone_ablation", recs,
                                                                                  profile="quick"), profile="quick")
    assert "cub: the nearest-class-mean reference of these images is not stored" in unreferenced
    assert "Every measured arm scores above" not in unreferenced


def test_report_reads_results_and_references_and_never_trains(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tables.report trained or computed")

    monkeypatch.setattr("kesl_utils.train.run", refuse)
    monkeypatch.setattr("kesl_utils.experiments.run_all", refuse)
    spec = table_spec("cub_comparison")
    configs = spec.configs("smoke", seeds=(0, 1, 2))
    for config in configs:  # the stored references, as run_all leaves them
        path = ncm.record_path(config, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"data": ncm.data_fields(config), "top1": 30.0}))
    monkeypatch.setattr(ncm, "compute", refuse)
    runs = [record(c, 40.0 + c.seed) for c in spec.row("baseline").configs("smoke", seeds=(0, 1, 2))]
    runs += [record(c, 40.5 + 1.1 * c.seed) for c in spec.row("ours").configs("smoke", seeds=(0, 1, 2))]
    result = tables.report("cub_comparison", runs, profile="smoke", results_dir=tmp_path, seeds=(0, 1, 2))
    assert result.results is runs and result.table.set_index("key").loc["ncm/cub", "this_run"] == 30.0
    # the gain is 0.5 + 0.1·seed: [+0.35, +0.85], above zero, below the paper's +1.3
    assert result.gains.loc[0, "reading"] == "smaller_gain"
    assert {p.parent for p in result.files.values()} == {tmp_path / "tables"}
    assert tables.report("cub_comparison", runs, profile="smoke", results_dir=tmp_path / "elsewhere",
                         seeds=(0, 1, 2), write=False).files == {}
    assert not (tmp_path / "elsewhere").exists()  # reading references created nothing


# -- what a row shows: this run's backbone, never the paper's row text -----------------------------------
def _records_of(name, profile="quick", seeds=None, top1=50.0):
    return [record(c, top1 + c.seed) for c in table_spec(name).configs(profile, seeds)]


def test_table_3_trains_the_profiles_mapping_of_the_papers_learning_rates_and_shows_both():
    """The paper's 0.1, 0.01, 0.001 become the quick profile's 0.1, 0.0562, 0.0316; the paper profile keeps them.
    The table keeps the paper's value as ``paper lr`` and shows this run's, read from the configs, as ``lr``."""
    quick, paper = profiles.profile("quick"), profiles.profile("paper")
    assert [quick.learning_rate(lr) for lr in (0.1, 0.01, 0.001)] == [0.1, 0.0562, 0.0316]
    assert [paper.learning_rate(lr) for lr in (0.1, 0.01, 0.001)] == [0.1, 0.01, 0.001]
    with pytest.raises(ValueError, match="paper_lr must be a positive learning rate, got 0"):
        quick.learning_rate(0)
    runs = _records_of("label_smoothing")
    table = tables.build_table("label_smoothing", runs, profile="quick").set_index("key")
    assert tables.row_columns("label_smoothing") == ["method", "paper lr", "lr"]
    run_rows = table.loc[["ls@0.01", "ls@0.001", "ours@0.1", "ours@0.01"]]
    assert list(run_rows["paper lr"]) == ["0.01", "0.001", "0.1", "0.01"]
    assert list(run_rows["lr"]) == ["0.0562", "0.0316", "0.1", "0.0562"]
    labels = tables.row_labels(table.reset_index())
    assert "label smoothing · lr 0.0316" in [label.lower() for label in labels]
    shown = tables.format_table(table.reset_index())
    assert {"paper lr", "lr"} <= set(shown.columns)


def test_backbone_labels_come_from_the_configs_that_filled_the_cells():
    """Table 1 prints ResNet-50 for the paper's rows; the quick profile runs ResNet-18: the table, its display,
    its labels, its title and its mistake table say ResNet-18 for this run, and keep ResNet-50 as the paper's."""
    runs = _records_of("cub_comparison")
    assert {r.config["backbone"] for r in runs} == {"resnet18"}
    table = tables.build_table("cub_comparison", runs, profile="quick")
    measured = table[table["n_seeds"] > 0]
    run_rows = table[table["kind"] == "run"].set_index("key")
    assert list(run_rows["paper backbone"]) == ["ResNet-50", "ResNet-50"]
    assert list(run_rows["this_run_backbone"]) == ["ResNet-18", "ResNet-18"]
    assert (table.loc[table["kind"] != "run", "this_run_backbone"] == "").all()
    shown = tables.format_table(table)
    assert list(shown.columns) == ["method", "paper backbone", "paper", tables.BACKBONE_COLUMN, "this run", "seeds"]
    assert "difference" not in shown.columns
    labels = tables.row_labels(table)
    assert "ResNet-50" not in " ".join(labels[measured.index]) and labels[run_rows.index.get_loc("ours")] != ""
    assert list(labels[table["kind"] == "run"]) == ["Baseline · ResNet-18", "Ours · ResNet-18"]
    title = tables.table_title("cub_comparison", table, profile="quick")
    assert title.endswith("profile `quick`, this run: ResNet-18")
    mistakes = tables.mistake_summary("cub_comparison", runs, profile="quick")
    assert list(mistakes["this_run_backbone"]) == ["ResNet-18", "ResNet-18"]
    assert list(tables.format_mistakes(mistakes)[tables.BACKBONE_COLUMN]) == ["ResNet-18", "ResNet-18"]
    # Table 4's title names the paper's ResNet-50: marked as the paper's, this run's backbone beside it
    ablation = tables.build_table("hyperparameter_ablation", _records_of("hyperparameter_ablation"), profile="quick")
    title = tables.table_title("hyperparameter_ablation", ablation, profile="quick")
    assert "(paper: ResNet-50)" in title and title.endswith("this run: ResNet-18")


def test_table_five_labels_each_backbone_by_its_own_runs():
    runs = _records_of("backbone_ablation", "smoke", seeds=(0,))
    table = tables.build_table("backbone_ablation", runs, profile="smoke", seeds=(0,))
    by_key = table.set_index("key")
    for backbone, display in (("mobilenet_v2", "MobileNetV2"), ("resnet18", "ResNet-18"), ("resnet50", "ResNet-50")):
        assert by_key.loc[f"{backbone}/baseline", "this_run_backbone"] == display
        assert by_key.loc[f"{backbone}/ours", "paper backbone"] == display
    labels = tables.row_labels(table)
    assert labels.iloc[0] == "Baseline · MobileNetV2"
    assert labels[table["kind"] == "reference"].item() == "no learning: nearest class mean on raw pixels (CUB-200-2011)"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_figure_labels_have_no_empty_fields(name):
    table = tables.build_table(name, _records_of(name, "smoke", seeds=(0,)), profile="smoke", seeds=(0,))
    for label in tables.row_labels(table):
        assert label and "()" not in label and not label.endswith(("·", " lr", " ")) and "· ·" not in label
        assert "nan" not in label and "row no" not in label


def test_gains_show_the_papers_gain_beside_this_runs_interval_and_reading():
    runs = _records_of("cub_comparison", "smoke", seeds=(0, 1, 2))
    gains = tables.gains("cub_comparison", runs, profile="smoke", seeds=(0, 1, 2),
                         references=stored(table_spec("cub_comparison").configs("smoke", seeds=(0, 1, 2)), 10.0))
    assert "difference" not in gains.columns
    shown = tables.format_gains(gains)
    assert list(shown.columns) == ["comparison", "paper's gain", "this run's gain (mean ± sd)", "95 % CI", "p",
                                   "seeds", "reading"]
    assert shown.loc[0, "paper's gain"] == "+1.3" and shown.loc[0, "reading"] == gains.loc[0, "verdict"]


def test_training_curves_are_labelled_by_this_runs_rows(results_dir):
    spec = table_spec("hyperparameter_ablation")
    for config in spec.configs("smoke", seeds=(0,)):
        rec = record(config, 50.0)
        rec.history = [{"epoch": 1, "train_top1": 10.0, "train_loss": 3.0},
                       {"epoch": 2, "train_top1": 20.0, "train_loss": 2.0}]
        records.save_record(rec, results_dir)
    curves = tables.histories("hyperparameter_ablation", profile="smoke", seeds=(0,), results_dir=results_dir)
    # rows 3 and 8 (and 5 and 6) print the same setting: one line, both names; no empty field, no paper backbone
    assert "row 3 · T 2 · α 1 · β 1 = row 8 · T 2 · α 1 · β 1" in curves
    assert len(curves) == 7 and all("ResNet-50" not in key for key in curves)


def test_the_seeds_below_their_own_reference_are_named():
    """An arm above the reference on average can hide a seed below that seed's own reference; the table
    names those seeds and the protocol checks say so (MobileNetV2's seed 3 in the complete quick run)."""
    spec = table_spec("cub_comparison")
    configs = {row.key: row.configs("quick") for row in spec.rows if row.runs_here}
    recs = [record(c, 52.0 if c.seed == 3 and key == "baseline" else 60.0)
            for key, cs in configs.items() for c in cs]
    refs = {ncm.data_key(c): 55.0 for cs in configs.values() for c in cs}
    table = tables.build_table("cub_comparison", recs, profile="quick", references=refs)
    runs = table[table["kind"] == "run"].set_index("key")
    assert runs.loc["baseline", "seeds_below_reference"] == "3" and runs.loc["ours", "seeds_below_reference"] == ""
    assert not runs.loc["baseline", "below_reference"]  # its mean (58.4) is above 55
    text = prose.protocol_checks("cub_comparison", table, profile="quick")
    assert ("- Seed by seed, against the reference of that seed's own images: Baseline (backbone ResNet-18): "
            "seed 3 of 5 scored below it.") in text
    everyone = tables.build_table("cub_comparison", [record(c, 60.0) for cs in configs.values() for c in cs],
                                  profile="quick", references=refs)
    assert "- Seed by seed, every measured arm scores above the reference of that seed's own images." in \
        prose.protocol_checks("cub_comparison", everyone, profile="quick")


def test_the_profile_note_lists_images_per_class_in_numeric_order():
    from kesl_utils import experiments, prose
    configs = [experiments.profile_config("smoke", "cub", n_per_class=n) for n in (12, 24, 6)]
    note = prose.profile_note("quick", configs)
    assert "6, 12, 24 training" in note, note
    assert prose.budget(configs + [experiments.profile_config("smoke", "cub", n_per_class=None)])["n_per_class"] == \
        [6, 12, 24, None]
