"""The run plan: every notebook's runs once, pretraining once, cached vs missing from the records,
the cost formula on a hand example, and a deterministic file."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from kesl_utils import experiments, leaderboard, plan, sweep, table_specs, tutorial
from kesl_utils.config import Config
from kesl_utils.records import RunRecord, machine_description, save_record

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"top1": 50.0, "top5": 80.0, "mistake_severity": 2.0, "hdist@1": 1.0, "hdist@5": 3.0, "ece": 0.1}
SOURCES = {
    "03": lambda p: table_specs.table_configs("cub_comparison", p),
    "04": lambda p: table_specs.table_configs("general_recognition", p),
    "05": lambda p: table_specs.table_configs("label_smoothing", p),
    "06": lambda p: table_specs.table_configs("hyperparameter_ablation", p),
    "07": lambda p: table_specs.table_configs("backbone_ablation", p),
    "08": leaderboard.all_configs,
    "09": sweep.all_configs,
}


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def smoke(results_dir):
    return plan.plan("smoke", results_dir=results_dir, throughput={})


def _finished(config, results_dir, *, wall_time_s=60.0, machine=None):
    save_record(RunRecord(run_id=config.run_id, config=config.to_dict(), metrics=dict(METRICS),
                          wall_time_s=wall_time_s, machine=machine or machine_description()), results_dir)


def test_the_notebook_list_names_the_notebooks_that_exist():
    stems = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert {n.stem for n in plan.NOTEBOOKS} <= stems
    assert [n.prefix for n in plan.NOTEBOOKS] == ["03", "04", "05", "06", "07", "08", "09", "10"]
    assert plan.skipped_notebooks("smoke") == {} and plan.skipped_notebooks("quick") == {}
    assert list(plan.skipped_notebooks("paper")) == ["09_when_does_kesl_help"]  # the sweep needs synthetic data


def test_every_notebooks_runs_are_listed_once_under_the_first_that_needs_them(smoke):
    assert smoke["run_id"].is_unique
    where = dict(zip(smoke["run_id"], smoke["notebook"]))
    needed_by = dict(zip(smoke["run_id"], smoke["needed_by"].str.split()))
    order = [n.prefix for n in plan.NOTEBOOKS]
    for prefix, source in SOURCES.items():
        configs = source("smoke")
        assert configs
        for config in configs:
            assert prefix in needed_by[config.run_id]
            first = where[config.run_id].split("_")[0]
            assert order.index(first) <= order.index(prefix)
            assert first == needed_by[config.run_id][0]
    # The CUB baseline of Table 1 is also Table 4's row 1, Table 5's ResNet-18 baseline and the leaderboard's CE.
    baseline = experiments.profile_config("smoke", "cub")
    assert where[baseline.run_id] == "03_cub_comparison"
    assert {"03", "06", "07", "08", "09"} <= set(needed_by[baseline.run_id])
    every = {c.run_id for source in SOURCES.values() for c in source("smoke")}
    pretraining = {c.pretrain_run.run_id for source in SOURCES.values() for c in source("smoke") if c.pretrain_run}
    tutorial_runs = smoke[smoke["kind"] == "tutorial"]
    assert set(smoke["run_id"]) == every | pretraining | set(tutorial_runs["run_id"])
    assert len(smoke) == len(every | pretraining) + len(tutorial_runs)


def test_pretraining_runs_are_counted_once_before_the_first_run_that_needs_them(smoke):
    pretrain = smoke[smoke["kind"] == "pretrain"]
    expected = {experiments.pretrain_config("smoke", b).run_id for b in ("resnet18", "mobilenet_v2", "resnet50")}
    assert set(pretrain["run_id"]) == expected and len(pretrain) == 3
    notebook = dict(zip(pretrain["run_id"], pretrain["notebook"]))
    assert notebook[experiments.pretrain_config("smoke", "resnet18").run_id] == "03_cub_comparison"
    assert notebook[experiments.pretrain_config("smoke", "resnet50").run_id] == "07_backbone_ablation"
    position = {run_id: k for k, run_id in enumerate(smoke["run_id"])}
    for row in smoke[smoke["kind"] == "train"].itertuples():
        if row.run.pretrain_run is not None:
            assert position[row.run.pretrain_run.run_id] < position[row.run_id]


def test_tutorial_runs_are_two_methods_times_the_budgets_seeds(smoke):
    runs = smoke[smoke["notebook"] == "10_your_own_hierarchy"]
    budget = tutorial.budget("smoke")
    assert len(runs) == 2 * len(budget.seeds) and set(runs["kind"]) == {"tutorial"}
    assert runs.iloc[0]["train_images"] == 100 * budget.n_train_per_class * budget.epochs
    assert runs.iloc[0]["eval_images"] == 100 * budget.n_test_per_class


def test_cached_and_missing_follow_the_records(results_dir):
    baseline = experiments.profile_config("smoke", "cub")
    ours = experiments.profile_config("smoke", "cub", loss="kesl")
    _finished(baseline, results_dir, wall_time_s=90.0)
    save_record(RunRecord(run_id=ours.run_id, config=ours.to_dict(), status="failed", error="boom"), results_dir)
    budget = tutorial.budget("smoke")
    tutorial.store_result(results_dir, {**budget.settings(), "recipe": "r", "method": "KESL", "seed": 0}, {"top1": 1.0})
    frame = plan.plan("smoke", results_dir=results_dir, throughput={}).set_index("run_id")
    assert frame.loc[baseline.run_id, "status"] == "cached"
    assert frame.loc[baseline.run_id, "wall_minutes"] == 1.5
    assert frame.loc[ours.run_id, "status"] == "missing"  # a failed run is to do again
    assert (frame["status"] == "cached").sum() == 2
    tutorial_status = frame[frame["kind"] == "tutorial"].set_index(frame[frame["kind"] == "tutorial"]["run"].map(
        lambda r: r.method))["status"].to_dict()
    assert tutorial_status == {"CE": "missing", "KESL": "cached"}
    summary = plan.totals(frame.reset_index())
    assert summary.loc["all", "cached"] == 2 and summary.loc["all", "missing"] == len(frame) - 2
    assert summary.loc["03_cub_comparison", "min_recorded"] == 1.5


def test_estimate_on_a_hand_example():
    config = Config(dataset="cub", n_per_class=24, n_test_per_class=10, epochs=6, eval_every=6, batch_size=128,
                    image_size=32)
    # 200 × 24 = 4,800 images: 37 full batches of 128 per epoch (the last partial one is dropped).
    assert plan.image_counts(config) == (37 * 128 * 6, 2000.0)
    expected = (37 * 128 * 6 + 2000 / 3) / 100.0 / 60.0
    assert plan.estimate_minutes(config, 100.0) == pytest.approx(expected, rel=1e-12)
    assert plan.estimate_minutes(config, {("resnet18", 32): 100.0}) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(plan.estimate_minutes(config, {("resnet50", 32): 100.0}))
    # Evaluations every 2 of 5 epochs: after 2, 4 and the last; a cap on batches per epoch.
    capped = config.replace(epochs=5, eval_every=2, max_batches_per_epoch=10)
    assert plan.image_counts(capped) == (10 * 128 * 5, 3 * 2000.0)


def test_throughput_from_this_machines_records_only(results_dir):
    config = experiments.profile_config("smoke", "mini_imagenet")
    other = config.replace(seed=7)
    _finished(config, results_dir, wall_time_s=2.0, machine="AMD EPYC, 2 cores, avx512")
    _finished(other, results_dir, wall_time_s=1.0, machine="AMD EPYC, 2 cores, avx2")
    table = plan.record_throughput("smoke", results_dir=results_dir, device="AMD EPYC, 2 cores, avx512")
    assert table[["backbone", "image_size", "runs"]].values.tolist() == [["resnet18", 16, 1]]
    assert table["images_per_s"].iloc[0] == pytest.approx(plan.processed_images(config) / 2.0)
    assert table.attrs["other_devices"] == 1
    calibration = pd.DataFrame([{"backbone": "resnet18", "image_size": 16, "images_per_s": 5.0,
                                 "source": "calibration", "runs": 0},
                                {"backbone": "resnet50", "image_size": 16, "images_per_s": 3.0,
                                 "source": "calibration", "runs": 0}])
    merged = plan.as_mapping(plan.throughput_table(table, calibration))
    assert merged == {("resnet18", 16): table["images_per_s"].iloc[0], ("resnet50", 16): 3.0}
    assert plan.as_mapping(plan.throughput_table(table, calibration, prefer="calibration"))[("resnet18", 16)] == 5.0


def test_the_written_plan_is_deterministic(smoke, tmp_path):
    rates = {(b, 16): 100.0 for b in ("resnet18", "mobilenet_v2", "resnet50")}
    frame = plan.with_estimates(smoke, rates)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    plan.write_plan(frame, first)
    plan.write_plan(frame.sample(frac=1.0, random_state=3), second)  # any row order: the same bytes
    assert first.read_bytes() == second.read_bytes()
    written = pd.read_csv(first, dtype=str, keep_default_na=False)
    assert tuple(written.columns) == plan.FILE_COLUMNS
    assert written[["notebook", "run_id"]].values.tolist() == sorted(written[["notebook", "run_id"]].values.tolist())
    assert written["run_id"].is_unique and len(written) == len(smoke)
    assert all(m.replace(".", "").isdigit() for m in written["est_minutes"])


def test_runs_needed_by_notebooks_08_and_09():
    leaderboard_runs = leaderboard.all_configs("smoke")
    pretraining = {c.pretrain_run.run_id for c in leaderboard_runs if c.pretrain_run}
    assert plan.runs_needed("08", "smoke") == len({c.run_id for c in leaderboard_runs} | pretraining)
    assert plan.runs_needed("09_when_does_kesl_help", "smoke") == len(sweep.all_configs("smoke")) + 1
    new = plan.runs_needed("08", "smoke", new_only=True)
    assert 0 < new < plan.runs_needed("08", "smoke")
    with pytest.raises(ValueError, match="no training notebook"):
        plan.runs_needed("02", "smoke")


def test_command_line_prints_totals_and_writes_the_file(results_dir, tmp_path, capsys):
    assert plan.main(["--profile", "smoke", "--write", str(tmp_path / "plan.csv")]) == 0
    out = capsys.readouterr().out
    assert "03_cub_comparison" in out and "\nall " in out
    assert (tmp_path / "plan.csv").read_text().startswith(",".join(plan.FILE_COLUMNS) + "\n")


def test_readme_block_states_the_plans_minutes_per_notebook(tmp_path):
    frame = pd.DataFrame({"notebook": ["03_a", "03_a", "04_b"], "est_minutes": [1.25, 2.0, float("nan")]})
    frame.attrs["profile"] = "quick"
    table = pd.DataFrame([{"backbone": "resnet18", "image_size": 32, "images_per_s": 612.4, "source": "records",
                           "runs": 7}])
    block = plan.readme_block(frame, table, machine="AMD EPYC, 2 cores, avx512")
    assert "on AMD EPYC, 2 cores, avx512 (resnet18 612 images/s at 32 px (from 7 runs))" in block
    assert "| 03_a | 2 | 3 |" in block and "| 04_b | 1 | 0 (+1 runs without an estimate) |" in block
    assert "| all | 3 | 3 (0.1 h) |" in block
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + plan.README_BEGIN.format(profile="quick") + "\nold\n"
                      + plan.README_END.format(profile="quick") + "\nrest\n")
    assert plan.update_readme(readme, block, "quick")
    assert readme.read_text() == "intro\n" + block + "\nrest\n"
    assert not plan.update_readme(readme, block, "smoke")  # no smoke block: nothing written


COMMITTED_PLAN = ROOT / "results" / "plan_quick.csv"


def test_the_quick_profiles_configs_hash_to_exactly_the_committed_plan(tmp_path):
    """The committed run plan is the frozen protocol: a change that would silently orphan the computed
    records (a renamed field, another budget) fails here; change the plan in the same commit, and say why."""
    written = pd.read_csv(COMMITTED_PLAN, dtype=str, keep_default_na=False)
    assert tuple(written.columns) == plan.FILE_COLUMNS
    frame = plan.plan("quick", results_dir=tmp_path / "empty", throughput={})
    expected = (frame.loc[:, list(plan.IDENTITY_COLUMNS)].astype(str).sort_values(["notebook", "run_id"])
                .reset_index(drop=True))
    got = written.loc[:, list(plan.IDENTITY_COLUMNS)]
    assert got.values.tolist() == expected.values.tolist()


def test_the_readme_states_the_committed_plans_minutes():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = plan.README_BEGIN.format(profile="quick"), plan.README_END.format(profile="quick")
    block = text.split(begin, 1)[1].split(end, 1)[0]
    written = pd.read_csv(COMMITTED_PLAN, dtype={"est_minutes": float}, keep_default_na=True)
    for stem, rows in written.groupby("notebook", sort=False):
        assert f"| {stem} | {len(rows)} | {round(rows['est_minutes'].sum(), 1):.0f}" in block, stem
    total = round(written["est_minutes"].sum(), 1)
    assert f"| all | {len(written)} | {total:.0f} ({total / 60:.1f} h) |" in block
