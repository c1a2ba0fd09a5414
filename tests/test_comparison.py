"""The comparison module: paired statistics against scipy, every reading on hand-made intervals, the one
writer, and the readings of a real quick run (the protocol-1 fixture)."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kesl_utils import comparison
from kesl_utils.comparison import READINGS, Arm, paired_stats, reading

FIXTURE = Path(__file__).parent / "fixtures" / "quick_protocol1"


# -- statistics ---------------------------------------------------------------------------------------
def test_paired_stats_match_scipys_paired_t_test():
    a = np.array([30.0, 31.5, 29.0, 33.0, 28.5])
    b = np.array([31.0, 33.0, 29.5, 35.0, 29.0])
    got = paired_stats(b - a)
    reference = stats.ttest_rel(b, a)
    assert got.mean == pytest.approx(np.mean(b - a)) and got.n == 5
    assert got.sd == pytest.approx(np.std(b - a, ddof=1))
    assert got.p_value == pytest.approx(reference.pvalue)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(b - a), scale=stats.sem(b - a))
    assert got.interval == pytest.approx((low, high)) and got.half_width == pytest.approx((high - low) / 2)


def test_paired_stats_of_one_none_and_constant_differences():
    one = paired_stats([2.0])
    assert one.n == 1 and one.mean == 2.0 and all(math.isnan(v) for v in (one.sd, one.ci_low, one.p_value))
    none = paired_stats([math.nan])
    assert none.n == 0 and math.isnan(none.mean)
    constant = paired_stats([1.0, 1.0, 1.0])
    assert constant.interval == (1.0, 1.0) and constant.p_value == 0.0
    assert paired_stats([0.0, 0.0]).p_value == 1.0


def test_summary_is_mean_sample_sd_and_count():
    assert comparison.summary(pd.Series([1.0, 2.0, math.nan, 3.0])) == (2.0, 1.0, 3)
    mean, sd, n = comparison.summary([5.0])
    assert (mean, n) == (5.0, 1) and math.isnan(sd)
    assert comparison.summary([])[2] == 0


# -- the reading, on hand-made intervals ------------------------------------------------------------
ABOVE = [Arm(55.0, 48.0), Arm(54.0, 48.0)]


@pytest.mark.parametrize("interval, paper, key", [
    # the paper's gain is positive (+1.3)
    ((0.5, 2.0), 1.3, "agrees"),
    ((0.2, 0.9), 1.3, "smaller_gain"),
    ((1.5, 3.0), 1.3, "larger_gain"),
    ((-0.79, 0.62), 1.3, "ruled_out_gain"),
    ((-1.0, 2.0), 1.3, "inconclusive"),
    ((-2.0, -0.5), 1.3, "opposite"),
    ((1.3, 2.0), 1.3, "agrees"),  # the paper's value on the edge is inside
    ((0.0, 1.0), 1.3, "ruled_out_gain"),  # 0 on the edge: not significant
    # the paper's gain is negative (Table 4, row 2: -0.4): mirrored, the words say "loss"
    ((-1.0, -0.1), -0.4, "agrees"),
    ((-0.3, -0.1), -0.4, "smaller_loss"),
    ((-2.0, -0.6), -0.4, "larger_loss"),
    ((-0.2, 0.5), -0.4, "ruled_out_loss"),
    ((-1.0, 0.5), -0.4, "inconclusive"),
    ((0.1, 0.9), -0.4, "opposite"),
    # the paper reports no difference (Table 4, row 5: 0.0)
    ((-0.5, 0.5), 0.0, "no_difference_as_paper"),
    ((0.2, 0.5), 0.0, "gain_paper_none"),
    ((-0.5, -0.2), 0.0, "loss_paper_none"),
    # no paper value (leaderboard, sweep, tutorial)
    ((0.2, 0.5), None, "better"),
    ((-0.5, -0.2), None, "worse"),
    ((-0.5, 0.2), None, "no_difference"),
    ((-0.5, 0.2), math.nan, "no_difference"),
])
def test_each_reading_of_an_interval(interval, paper, key):
    got = reading(interval, 3, paper=paper, arms=ABOVE)
    assert got.key == key and str(got) == READINGS[key] and got.informative


@pytest.mark.parametrize("interval, paper, key", [
    ((-0.5, -0.2), None, "better"),  # severity fell: an improvement
    ((0.2, 0.5), None, "worse"),
    ((-2.0, -0.5), -1.3, "agrees"),  # the paper's severity fell by 1.3: a gain in the better direction
    ((-0.62, 0.79), -1.3, "ruled_out_gain"),
])
def test_lower_is_better_metrics_are_mirrored(interval, paper, key):
    assert reading(interval, 3, paper=paper, higher_is_better=False).key == key


def test_readings_before_any_interval_and_their_order():
    below = [Arm(40.9, 48.6), Arm(54.3, 48.6)]
    assert reading((math.nan, math.nan), 0, paper=1.3, arms=below).key == "missing"
    # an arm below its reference overrides everything, a significant interval in the paper's direction included
    assert reading((0.5, 2.0), 3, paper=1.3, arms=below).key == "not_informative"
    assert reading((math.nan, math.nan), 1, paper=1.3, arms=below).key == "not_informative"
    assert reading((0.5, 2.0), 3, paper=1.3, arms=[Arm(55.0, math.nan), Arm(56.0, 48.0)]).key == "reference_missing"
    assert reading((0.5, 2.0), 3, paper=1.3, arms=[(55.0, None), (56.0, None)]).key == "agrees"  # no reference applies
    assert reading((math.nan, math.nan), 1, paper=1.3, arms=ABOVE).key == "single"
    assert reading((0.5, 2.0), 3, paper=1.3).key == "agrees"  # no arms given: no check
    assert not reading((0.5, 2.0), 3, paper=1.3, arms=below).informative
    # an arm exactly at the reference is not below it
    assert reading((0.5, 2.0), 3, paper=1.3, arms=[Arm(48.6, 48.6)]).key == "agrees"


def test_every_sentence_is_reachable_and_defined_once():
    assert len(set(READINGS.values())) == len(READINGS)
    assert set(comparison.INTERVAL_READINGS) | {"missing", "not_informative", "reference_missing", "single"} \
        == set(READINGS)


# -- the real quick run of protocol 1 -------------------------------------------------------------------
def _fixture_records() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((FIXTURE / "runs").glob("*.json"))]


def _arm(records, **fields) -> dict[int, dict]:
    """``{seed: record}`` of the records whose stored config has ``fields`` (KESL at the paper's setting)."""
    out = {}
    for record in records:
        config = record["config"]
        if all(config[k] == v for k, v in fields.items()):
            assert config["seed"] not in out, f"two records match {fields} at seed {config['seed']}"
            out[config["seed"]] = record
    return out


def _fixture_reading(baseline: dict, ours: dict, paper: float):
    from kesl_utils import ncm

    seeds = sorted(set(baseline) & set(ours))
    paired = paired_stats([ours[s]["metrics"]["top1"] - baseline[s]["metrics"]["top1"] for s in seeds])
    references = [ncm.load(baseline[s]["config"], FIXTURE) for s in seeds]
    reference = float(np.mean(references))
    arms = [Arm(np.mean([arm[s]["metrics"]["top1"] for s in seeds]), reference) for arm in (baseline, ours)]
    return paired, reference, reading(paired.interval, paired.n, paper=paper, arms=arms)


def test_the_quick_run_of_protocol_1_reads_as_the_issue_says():
    """CUB Table 1 rules out a gain of the paper's size; both of Table 3's comparisons are not informative."""
    from kesl_utils.table_specs import table_spec

    records = _fixture_records()
    assert len(records) == 35
    cub = dict(dataset="cub", backbone="resnet18", lr=0.1)
    ce = _arm(records, loss="ce", **cub)
    kesl = _arm(records, loss="kesl", **cub)
    spec = table_spec("cub_comparison")
    paired, ncm_top1, got = _fixture_reading(ce, kesl, spec.paper_gain(spec.comparisons[0]))
    assert paired.n == 3 and paired.interval == pytest.approx((-0.7896, 0.6229), abs=1e-4)
    assert ncm_top1 == pytest.approx(48.583, abs=1e-3)
    assert got.sentence == "no gain detected; a gain of the paper's size is ruled out"

    spec = table_spec("label_smoothing")
    smoothing = {lr: _arm(records, loss="label_smoothing", dataset="cub", backbone="resnet18", lr=lr)
                 for lr in (0.01, 0.001)}
    ours = {lr: _arm(records, loss="kesl", dataset="cub", backbone="resnet18", lr=lr) for lr in (0.1, 0.01)}
    both_at_001, best_vs_best = spec.comparisons
    for comparison_, baseline, treatment in ((both_at_001, smoothing[0.01], ours[0.01]),
                                             (best_vs_best, smoothing[0.001], ours[0.1])):
        paired, _, got = _fixture_reading(baseline, treatment, spec.paper_gain(comparison_))
        assert paired.ci_low > 0  # significant "in the paper's direction" — and still not evidence
        assert got.sentence == "not informative: an arm is below the no-learning reference", comparison_.label


def test_the_fixture_references_are_the_ncm_of_the_fixture_configs():
    from kesl_utils import ncm

    records = _fixture_records()
    keys = {ncm.data_key(r["config"]) for r in records}
    stored = {p.stem.split("-")[-1] for p in (FIXTURE / "references").glob("ncm-*.json")}
    assert keys == stored
    assert all(ncm.load(r["config"], FIXTURE) is not None for r in records)


# -- the one writer ----------------------------------------------------------------------------------------
def test_the_writer_writes_numbers_page_and_latex(tmp_path):
    numbers = pd.DataFrame({"comparison": ["B − A"], "this_run": [1.5], "ci_low": [0.2], "ci_high": [2.8]})
    shown = pd.DataFrame({"comparison": ["B − A"], "95 % CI": [comparison.interval_text(0.2, 2.8)]})
    written = comparison.write_study(
        tmp_path / "tables", "probe", profile="smoke", title="A probe — profile `smoke`",
        numbers={"": numbers, "gains": numbers.assign(extra=1)},
        blocks=["a note", comparison.DisplayTable(shown, label="tab:probe"),
                comparison.DisplayTable(shown, heading="Only on the page"), "", "the end"])
    assert written == {"csv": tmp_path / "tables" / "probe.csv", "gains_csv": tmp_path / "tables" / "probe_gains.csv",
                       "md": tmp_path / "tables" / "probe.md", "tex": tmp_path / "tables" / "probe.tex"}
    back = pd.read_csv(written["csv"])
    assert list(back.columns) == ["comparison", "this_run", "ci_low", "ci_high", "profile"]
    assert back.loc[0, "profile"] == "smoke" and back.loc[0, "this_run"] == 1.5
    assert pd.read_csv(written["gains_csv"]).loc[0, "extra"] == 1
    md = written["md"].read_text()
    assert md.startswith("### A probe — profile `smoke`\n\na note\n\n| comparison | 95 % CI |\n|---|---|\n"
                         "| B − A | [+0.2, +2.8] |\n")
    assert "**Only on the page**" in md and md.endswith("the end\n")
    tex = written["tex"].read_text()
    assert tex.count("\\begin{tabular}") == 1 and "\\label{tab:probe}" in tex and "A probe — profile smoke" in tex
    assert not list((tmp_path / "tables").glob("*.tmp"))


def test_every_study_writes_through_the_one_writer(tmp_path, monkeypatch):
    """tables, sweep, leaderboard and tutorial: each study's files come from comparison.write_study."""
    from kesl_utils import leaderboard, sweep, tables, tutorial

    calls = []
    monkeypatch.setattr(comparison, "write_study", lambda folder, name, **kwargs: calls.append(name) or {})
    folder = tmp_path / "tables"
    tables.write_table("cub_comparison", tables.build_table("cub_comparison", [], profile="smoke"),
                       tables.gains("cub_comparison", [], profile="smoke"), profile="smoke", folder=folder)
    sweep.write(sweep.gains([], "smoke"), sweep.hypotheses([], "smoke"), profile="smoke", folder=folder)
    leaderboard.write(leaderboard.build([], "smoke", datasets=("cub",)), profile="smoke", folder=folder)
    rows = pd.DataFrame([{"method": m, "seed": s, "top1": 40.0 + s, "mistake_severity": 2.0,
                          "superclass_accuracy": 50.0} for m in ("CE", "KESL") for s in (0, 1)])
    tutorial.write_table(tutorial.comparison_table(rows), profile="smoke", folder=folder)
    assert calls == ["cub_comparison", "when_kesl_helps", "leaderboard", tutorial.TABLE_NAME]
    assert not folder.exists()


def test_the_studies_import_their_statistics_only_from_comparison():
    import ast

    root = Path(comparison.__file__).parent
    statistics = {"summary", "paired_stats", "reading", "READINGS", "mean_sd", "to_markdown", "interval_text",
                  "STATISTICS_NOTE", "Arm", "Paired", "write_study"}
    for module in ("tables", "sweep", "leaderboard", "tutorial", "prose"):
        tree = ast.parse((root / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module not in ("comparison", None):
                assert not statistics & {alias.name for alias in node.names}, (module, node.module)
            if isinstance(node, ast.FunctionDef):
                assert node.name not in statistics, f"{module}.{node.name} redefines a statistic"


# -- the forest plot --------------------------------------------------------------------------------------------
def test_forest_plot_draws_intervals_paper_marks_and_flags_not_informative():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from kesl_utils import plots

    gain_table = pd.DataFrame({
        "comparison": ["CUB", "LS at lr 0.01", "one seed", "not run"],
        "paper": [1.3, 0.9, 0.5, 2.6],
        "this_run": [-0.08, 1.22, 0.4, math.nan],
        "ci_low": [-0.79, 0.71, math.nan, math.nan],
        "ci_high": [0.62, 1.72, math.nan, math.nan],
        "reading": ["ruled_out_gain", "not_informative", "single", "missing"],
    })
    fig, ax = plt.subplots()
    plots.forest(gain_table, ax=ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(gain_table["comparison"])
    # this run's informative rows: one error bar container, its dots at the means of rows 0 and 2
    (bars,) = ax.containers
    assert list(bars.lines[0].get_xdata()) == [-0.08, 0.4] and list(bars.lines[0].get_ydata()) == [0, 2]
    paper = [line for line in ax.lines if line.get_marker() == "D"]
    assert len(paper) == 1 and list(paper[0].get_xdata()) == [1.3, 0.9, 0.5, 2.6]
    assert any(line.get_xdata()[0] == 0 for line in ax.lines if line.get_linestyle() == "-"
               and len(line.get_xdata()) == 2)  # the zero line
    hatched = [p for p in ax.patches if p.get_hatch() == "///"]
    assert len(hatched) == 1 and hatched[0].get_x() == pytest.approx(0.71)
    assert hatched[0].get_width() == pytest.approx(1.01)
    hollow = [line for line in ax.lines if line.get_marker() == "o" and line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_ydata()) == [1]
    assert [t.get_text() for t in ax.texts] == ["not informative", "not measured"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper's gain" in legend and any(t.startswith("not informative") for t in legend)
    plt.close(fig)


def test_to_markdown_escapes_a_pipe_in_a_header_or_a_cell():
    frame = pd.DataFrame({"½ |paper gain|": ["0.35"], "reading": ["a | b"]})
    lines = comparison.to_markdown(frame).splitlines()
    assert lines[0] == "| ½ \\|paper gain\\| | reading |"
    assert lines[2] == "| 0.35 | a \\| b |"
    # every line splits into the same number of columns once the escaped pipes are set aside
    assert {len(line.replace("\\|", "").strip("|").split("|")) for line in lines} == {2}
