"""Notebooks tested by their values (issue 22, item 3; PySDM's smoke tests are the model).

Each results notebook (03–10) shows its tables through ``published.show``: one display bundle holding the
table's markdown and its values, which name the record files behind every number. These tests read the
values back and rebuild each number from those records (``published.check``):

* on hand-made values and records: what a mismatch, a missing or damaged record, a stale cell and an edited
  markdown number look like;
* on the values the library's own result objects give (paper tables, leaderboard, sweep, tutorial), with
  several seeds, so that the rebuild with numpy and scipy meets the library's statistics;
* on the committed notebooks, against the committed records of ``results/`` (a stale publication fails);
* on every results notebook executed in the smoke profile, against the smoke records it wrote, and on one of
  them with a number edited by hand, which must fail.
"""
import copy
import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from scipy import stats

from kesl_utils import comparison, names, ncm, paths, published, reproduce
from kesl_utils.context import RunContext
from kesl_utils.comparison import READINGS
from kesl_utils.records import RunRecord, save_record

ROOT = paths.PROJECT_ROOT
RESULTS_NOTEBOOKS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if p.stem[:2] >= "03"]
SEEDS = (0, 1, 2)


# -- hand-made records and values -------------------------------------------------------------------------------
def _save_run(results_dir, run_id, seed, **metrics):
    values = {key: 1.0 for key in names.METRIC_KEYS}
    values.update(metrics)
    save_record(RunRecord(run_id=run_id, config={"seed": seed, "profile": "smoke"}, metrics=values), results_dir)
    return f"runs/{run_id}.json"


CE = {0: 40.0, 1: 41.0, 2: 45.0}
KESL = {0: 42.0, 1: 42.5, 2: 47.5}  # KESL − CE: 2.0, 1.5, 2.5


@pytest.fixture
def hand_made(tmp_path):
    """Records of CE and KESL at three seeds under ``tmp_path``, and the values a notebook would show for them:
    a table of the two arms and their paired gain, every number computed here by hand."""
    ce = [_save_run(tmp_path, f"cub-resnet18-ce-00000000{s}a", s, top1=v) for s, v in CE.items()]
    kesl = [_save_run(tmp_path, f"cub-resnet18-kesl-00000000{s}b", s, top1=v) for s, v in KESL.items()]
    differences = np.array([KESL[s] - CE[s] for s in SEEDS])
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    p_value = 2 * stats.t.sf(2.0 / (0.5 / math.sqrt(3)), 2)
    assert differences.mean() == 2.0 and differences.std(ddof=1) == 0.5
    table = {"kind": "table", "profile": "smoke", "rows": [
        {"key": "ce", "label": "CE", "kind": "run", "paper": 85.8,
         "top1": {"metric": "top1", "records": ce, "missing": [], "mean": 42.0, "sd": float(np.std(list(CE.values()),
                                                                                                  ddof=1)),
                  "n_seeds": 3}},
        {"key": "kesl", "label": "KESL", "kind": "run", "paper": 87.1,
         "top1": {"metric": "top1", "records": kesl, "missing": [], "mean": 44.0,
                  "sd": float(np.std(list(KESL.values()), ddof=1)), "n_seeds": 3}}]}
    gains = {"kind": "gains", "profile": "smoke", "rows": [
        {"label": "KESL − CE", "paper": None, "higher_is_better": True,
         "terms": [{"weight": -1.0, "metric": "top1", "records": ce, "missing": []},
                   {"weight": 1.0, "metric": "top1", "records": kesl, "missing": []}],
         "arms": [{"metric": "top1", "records": ce, "missing": [], "mean": 42.0, "reference": 30.0},
                  {"metric": "top1", "records": kesl, "missing": [], "mean": 44.0, "reference": 30.0}],
         "gain": 2.0, "sd": 0.5, "n_seeds": 3, "ci_low": 2.0 - half, "ci_high": 2.0 + half, "p": p_value,
         "reading": "better", "verdict": READINGS["better"]}]}
    markdown = ("| comparison | paper's gain | this run's gain (mean ± sd) | 95 % CI | p | seeds | reading |\n"
                "|---|---|---|---|---|---|---|\n"
                f"| KESL − CE |  | 2.0 ± 0.5 | [{2 - half:+.1f}, {2 + half:+.1f}] | {p_value:.2g} | 3 | "
                f"{READINGS['better']} |\n")
    return {"dir": tmp_path, "ce": ce, "kesl": kesl, "table": table, "gains": gains, "markdown": markdown}


def test_hand_made_values_check_clean(hand_made):
    assert published.check("t", hand_made["table"], hand_made["dir"]) == []
    assert published.check("g", hand_made["gains"], hand_made["dir"], markdown=hand_made["markdown"]) == []


@pytest.mark.parametrize("key", ["mean", "sd", "n_seeds"])
def test_a_cell_off_by_more_than_the_tolerance_is_reported_and_within_it_passes(hand_made, key):
    shifted = copy.deepcopy(hand_made["table"])
    cell = shifted["rows"][1]["top1"]
    step = 1 if key == "n_seeds" else 2 * published.TOLERANCE
    cell[key] += step
    problems = published.check("t", shifted, hand_made["dir"])
    assert problems == [f"t · row 2 (KESL) · top1 · {key}: shown {cell[key]:.6g}, rebuilt from the records "
                        f"{cell[key] - step:.6g}"]
    if key != "n_seeds":
        cell[key] -= 0.5 * published.TOLERANCE  # 1.5 × the tolerance away: still reported
        assert published.check("t", shifted, hand_made["dir"])
        cell[key] -= published.TOLERANCE  # half the tolerance away: the same number
        assert published.check("t", shifted, hand_made["dir"]) == []


@pytest.mark.parametrize("key, shift", [("gain", 0.05), ("ci_low", -0.05), ("ci_high", 0.5), ("sd", 0.02),
                                        ("p", 0.01), ("n_seeds", 1)])
def test_a_comparison_off_by_more_than_the_tolerance_is_reported(hand_made, key, shift):
    shifted = copy.deepcopy(hand_made["gains"])
    shifted["rows"][0][key] += shift
    problems = published.check("g", shifted, hand_made["dir"])
    assert len(problems) == 1 and problems[0].startswith(f"g · row 1 (KESL − CE) · {key}: shown ")


def test_a_reading_that_the_records_do_not_give_is_reported(hand_made):
    wrong = copy.deepcopy(hand_made["gains"])
    wrong["rows"][0].update(reading="no_difference", verdict=READINGS["no_difference"])
    assert published.check("g", wrong, hand_made["dir"]) == \
        ["g · row 1 (KESL − CE) · reading: shown 'no_difference', rebuilt from the records 'better'"]
    # the reading weighs the arms against their no-learning reference: above one arm, it is not informative
    below = copy.deepcopy(hand_made["gains"])
    below["rows"][0]["arms"][0]["reference"] = 43.0
    assert published.check("g", below, hand_made["dir"]) == \
        ["g · row 1 (KESL − CE) · reading: shown 'better', rebuilt from the records 'not_informative'"]
    mismatched = copy.deepcopy(hand_made["gains"])
    mismatched["rows"][0]["verdict"] = READINGS["worse"]
    assert "is not the sentence of its reading 'better'" in published.check("g", mismatched, hand_made["dir"])[0]


def test_a_missing_record_is_reported_with_its_run_id(hand_made):
    (hand_made["dir"] / hand_made["kesl"][1]).unlink()
    problems = published.check("t", hand_made["table"], hand_made["dir"])
    assert problems == [f"t · row 2 (KESL) · top1: record runs/cub-resnet18-kesl-000000001b.json is missing from "
                        f"{paths.display_path(hand_made['dir'])}; the number cannot be rebuilt"]
    assert any("cub-resnet18-kesl-000000001b" in p for p in published.check("g", hand_made["gains"], hand_made["dir"]))


def test_a_hand_edited_record_is_damaged_and_reported(hand_made):
    path = hand_made["dir"] / hand_made["ce"][0]
    data = json.loads(path.read_text())
    data["metrics"]["top1"] = 60.0  # its digest no longer matches
    path.write_text(json.dumps(data))
    problems = published.check("t", hand_made["table"], hand_made["dir"])
    assert len(problems) == 1 and "cub-resnet18-ce-000000000a.json is damaged: its digest does not match" in problems[0]


def test_a_record_written_after_the_notebook_ran_makes_it_stale(hand_made):
    values = copy.deepcopy(hand_made["table"])
    values["rows"][0]["top1"]["missing"] = ["runs/cub-resnet18-ce-000000003a.json"]
    assert published.check("t", values, hand_made["dir"]) == []
    _save_run(hand_made["dir"], "cub-resnet18-ce-000000003a", 3, top1=50.0)
    assert published.check("t", values, hand_made["dir"]) == [
        "t · row 1 (CE) · top1: record runs/cub-resnet18-ce-000000003a.json exists now, but the notebook shows no number "
        "from it (it ran before the record was written: stale)"]


def test_the_tolerance_is_explicit():
    assert published.TOLERANCE == 0.01 and published.P_TOLERANCE == 0.001 and published.FRACTION_METRICS == {"ece": 0.01}
    assert "TOLERANCE" in published.__doc__ and "0.01" in published.__doc__


@pytest.mark.parametrize("edit, reported", [
    (("2.0 ± 0.5", "2.1 ± 0.5"), "column \"this run's gain (mean ± sd)\": shows 2.1, the values hold 2"),
    (("| 3 |", "| 4 |"), "column 'seeds': shows 4, the values hold 3"),
    ((READINGS["better"], READINGS["no_difference"]), "column 'reading': shows"),
    (("2.0 ± 0.5", "2.0"), "column \"this run's gain (mean ± sd)\": shows '2.0' (1 numbers)"),
])
def test_a_hand_edited_number_in_the_markdown_is_reported(hand_made, edit, reported):
    old, new = edit
    markdown = hand_made["markdown"].replace(old, new, 1)
    problems = published.check("g", hand_made["gains"], hand_made["dir"], markdown=markdown)
    assert len(problems) == 1 and reported in problems[0], problems


def test_the_markdown_is_compared_at_the_precision_it_shows(hand_made):
    values = copy.deepcopy(hand_made["gains"])
    values["rows"][0]["gain"] = 2.04  # prints 2.0: the markdown agrees; the records do not
    assert published.check("g", values, hand_made["dir"], markdown=hand_made["markdown"]) == \
        ["g · row 1 (KESL − CE) · gain: shown 2.04, rebuilt from the records 2"]
    values["rows"][0]["gain"] = 2.06  # prints 2.1
    assert len(published.check("g", values, hand_made["dir"], markdown=hand_made["markdown"])) == 2
    assert published.check("g", hand_made["gains"], hand_made["dir"], markdown="no table") == ["g: its markdown holds no table"]
    two_rows = hand_made["markdown"] + hand_made["markdown"].splitlines()[-1] + "\n"
    assert published.check("g", hand_made["gains"], hand_made["dir"], markdown=two_rows) == \
        ["g: its markdown table has 2 rows, its values 1"]


def test_an_unknown_kind_is_refused(hand_made):
    assert published.check("x", {"kind": "pie", "rows": []}, hand_made["dir"])[0].startswith("x: not a values dict")


# -- showing and reading ------------------------------------------------------------------------------------------
def test_show_displays_one_bundle_of_values_markdown_and_plain_text(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.append((objs, kw)))
    published.show("t", {"kind": "table", "x": np.float64(1.5), "n": np.int64(3), "gone": math.nan,
                         "ok": np.bool_(True), "pair": (1, 2)}, markdown="| a |\n|---|\n| 1.5 |\n")
    ((bundle,), kw), = shown
    assert kw == {"raw": True}
    assert bundle[published.MIME] == {"name": "t", "values": {"kind": "table", "x": 1.5, "n": 3, "gone": None,
                                                              "ok": True, "pair": [1, 2]}}
    assert bundle["text/markdown"] == bundle["text/plain"] == "| a |\n|---|\n| 1.5 |\n"
    with pytest.raises(TypeError, match=r"values of 't'.x is a object"):
        published.show("t", {"x": object()})
    with pytest.raises(ValueError, match="non-empty name"):
        published.show("", {})


def _notebook_with(*payloads, markdown="| a |\n|---|\n| 1 |\n"):
    cells = [new_markdown_cell("# t")]
    for payload in payloads:
        cell = new_code_cell("published.show(...)")
        cell.outputs = [new_output("display_data", {published.MIME: payload, "text/markdown": markdown,
                                                    "text/plain": markdown})]
        cells.append(cell)
    return new_notebook(cells=cells)


def test_read_returns_every_bundle_and_refuses_a_name_twice(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(_notebook_with({"name": "a", "values": {"kind": "table", "rows": []}},
                                  {"name": "b", "values": {"kind": "gains", "rows": []}}), path)
    assert published.read(path) == {"a": {"kind": "table", "rows": []}, "b": {"kind": "gains", "rows": []}}
    found = published.bundles(path)
    assert [b.cell for b in found.values()] == [1, 2] and found["a"].markdown == "| a |\n|---|\n| 1 |\n"
    nbformat.write(_notebook_with({"name": "a", "values": {}}, {"name": "a", "values": {}}), path)
    with pytest.raises(ValueError, match=r"nb.ipynb: the values named 'a' appear twice \(cells 1 and 2\)"):
        published.read(path)
    nbformat.write(_notebook_with({"values": {}}), path)
    with pytest.raises(ValueError, match="nb.ipynb: cell 1 has a .* output without a name"):
        published.read(path)
    path.write_text("{ not json")
    with pytest.raises(ValueError, match="nb.ipynb: not a readable notebook"):
        published.read(path)


# -- the library's result objects, with several seeds -----------------------------------------------------------
def _metrics(run_id: str, seed: int) -> dict:
    """Metrics that differ by run and seed, deterministically; no mistake at all (NaN severity) in one run in seven."""
    k = int(run_id.rsplit("-", 1)[1][:6], 16)
    top1 = 20.0 + (k % 37) + 1.7 * seed + 0.37 * ((k + seed) % 5)
    values = {key: 1.0 + ((k + 3 * seed) % 11) / 7 for key in names.ALL_METRIC_KEYS}
    values.update(top1=top1, crm_top1=top1 - 0.2 * seed, ece=0.05 + ((k + seed) % 7) / 100,
                  mistake_severity=math.nan if (k + seed) % 7 == 0 else 2.0 + ((k + seed) % 13) / 10)
    return values


def _records(configs, results_dir, *, leave_out=()):
    runs = {}
    for config in configs:
        if config.run_id in runs or config.run_id in leave_out:
            continue
        runs[config.run_id] = RunRecord(run_id=config.run_id, config=config.to_dict(),
                                        metrics=_metrics(config.run_id, config.seed))
        save_record(runs[config.run_id], results_dir)
    return list(runs.values())


def _references(configs, results_dir, top1=10.0):
    for config in configs:
        target = ncm.record_path(config, results_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"data": ncm.data_fields(config), "top1": top1 + config.seed}))
    return ncm.references(configs, results_dir)


@pytest.mark.parametrize("name", ["cub_comparison", "general_recognition", "label_smoothing",
                                  "hyperparameter_ablation", "backbone_ablation"])
def test_a_paper_tables_values_rebuild_from_its_records(name, tmp_path):
    from kesl_utils import tables
    from kesl_utils.table_specs import table_spec

    configs = table_spec(name).configs("smoke", SEEDS)
    left_out = configs[-1].run_id  # a run not trained yet: its cell names it as missing
    runs = _records(configs, tmp_path, leave_out={left_out})
    _references(configs, tmp_path)
    report = tables.report(name, runs, profile="smoke", results_dir=tmp_path, seeds=SEEDS, write=False)
    mistakes = tables.mistake_summary(name, runs, profile="smoke", seeds=SEEDS)
    shown = {name: (published.table_values(report), tables.format_table(report.table)),
             f"{name}/gains": (published.gains_values(report), tables.format_gains(report.gains)),
             f"{name}/mistakes": (published.mistakes_values(mistakes, report), tables.format_mistakes(mistakes))}
    assert (report.gains["n_seeds"] >= 2).any() and report.table["this_run_sd"].notna().any()
    for key, (values, frame) in shown.items():
        assert published.check(key, values, tmp_path, markdown=comparison.to_markdown(frame)) == [], key
    table = shown[name][0]
    assert [row["key"] for row in table["rows"]] == list(report.table["key"])
    assert any(cell["records"][0].startswith("references/ncm-") for cell in (r["top1"] for r in table["rows"]) if cell)
    # the run left out is named as missing; once trained, the table is stale
    _records([c for c in configs if c.run_id == left_out], tmp_path)
    stale = published.check(name, table, tmp_path)
    assert stale and all(f"runs/{left_out}.json exists now" in p for p in stale)


def test_the_leaderboards_values_rebuild_from_its_records(tmp_path):
    from kesl_utils import leaderboard

    configs = leaderboard.all_configs("smoke", seeds=SEEDS, datasets=("cub",))
    runs = _records(configs, tmp_path)
    references = {ncm.data_key(c): 5.0 for c in configs}
    board = leaderboard.build(runs, "smoke", seeds=SEEDS, datasets=("cub",), references=references)
    values = published.board_values(board, "cub", runs, profile="smoke", seeds=SEEDS)
    markdown = "#### cub\n\n" + comparison.to_markdown(leaderboard.format_board(board, "cub"))
    assert published.check("leaderboard/cub", values, tmp_path, markdown=markdown) == []
    readings = {row["vs_ce"]["ECE"]["reading"] for row in values["rows"] if row["vs_ce"]["ECE"]}
    assert readings <= set(READINGS) and values["metrics"][0] == "top-1 (%)"
    wrong = copy.deepcopy(values)
    wrong["rows"][2]["cells"]["ECE"]["mean"] += 0.0002  # ECE is a fraction: its tolerance is 0.0001
    assert published.check("leaderboard/cub", wrong, tmp_path) == [
        f"leaderboard/cub · row 3 (label smoothing (ε 0.1)) · cells · ECE · mean: shown "
        f"{wrong['rows'][2]['cells']['ECE']['mean']:.6g}, rebuilt from the records "
        f"{values['rows'][2]['cells']['ECE']['mean']:.6g}"]


def test_the_sweeps_values_rebuild_from_its_records(tmp_path):
    from kesl_utils import sweep

    configs = sweep.all_configs("smoke", seeds=SEEDS)
    runs = _records(configs, tmp_path)
    references = _references(configs, tmp_path, top1=1.0)
    table = sweep.gains(runs, "smoke", seeds=SEEDS, references=references)
    tested = sweep.hypotheses(runs, "smoke", seeds=SEEDS, references=references)
    cells = published.sweep_values(table, runs, profile="smoke", seeds=SEEDS, references=references)
    contrasts = published.hypotheses_values(tested, runs, profile="smoke", seeds=SEEDS, references=references)
    assert published.check("when_kesl_helps", cells, tmp_path,
                           markdown=comparison.to_markdown(sweep.format_gains(table))) == []
    assert published.check("when_kesl_helps/hypotheses", contrasts, tmp_path,
                           markdown=comparison.to_markdown(sweep.format_hypotheses(tested))) == []
    assert [row["label"] for row in contrasts["rows"]] == list(tested["hypothesis"])
    first = contrasts["rows"][0]
    assert len(first["terms"]) == 4 * len(sweep.grid("smoke").n_per_class)  # ±, CE and KESL, per pair of cells


def test_the_tutorials_values_rebuild_from_its_stored_results(tmp_path):
    from kesl_utils import tutorial

    rows = []
    for seed in SEEDS:
        for method, top1 in (("CE", 40.0 + seed), ("KESL", 41.5 + 1.2 * seed)):
            settings = {"recipe": "r", "method": method, "seed": seed}
            rows.append(tutorial.store_result(tmp_path, settings, {"top1": top1, "mistake_severity": 2.0 - seed / 10,
                                                                   "superclass_accuracy": 50.0 + seed}))
            assert rows[-1]["result_id"] == tutorial.result_id(settings)
            assert tutorial.cached_result(tmp_path, settings) == rows[-1]
    results = tutorial.results_frame(rows)
    table = tutorial.comparison_table(results, reference_top1=30.0)
    values = published.tutorial_values(table, results, profile="smoke")
    assert published.check("your_own_hierarchy", values, tmp_path,
                           markdown=comparison.to_markdown(tutorial.format_comparison(table))) == []
    alone = published.tutorial_values(tutorial.comparison_table(results), results, profile="smoke")
    assert alone["rows"][0]["difference"]["arms"] == [] and published.check("t", alone, tmp_path) == []


# -- the committed notebooks ---------------------------------------------------------------------------------------
def _has_outputs(notebook: dict) -> bool:
    return any(cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")


def committed_problems(path: Path, results_dir: Path, profile: str = "quick") -> list[str]:
    """What is wrong with the values of a results notebook that has outputs: none at all, values of another
    profile, or numbers the records under ``results_dir`` do not give."""
    found = published.bundles(path)
    if not found:
        return [f"{path.name} has outputs but no values bundle (kesl_utils.published.show): its numbers cannot be "
                "checked against the records"]
    problems = [f"{path.name} · {name}: values of profile {bundle.values.get('profile')!r}, not {profile!r}"
                for name, bundle in found.items() if bundle.values.get("profile") != profile]
    for name, bundle in found.items():
        problems += published.check(name, bundle.values, results_dir, markdown=bundle.markdown)
    return problems


@pytest.mark.parametrize("path", RESULTS_NOTEBOOKS, ids=lambda p: p.stem)
def test_the_committed_notebook_shows_the_numbers_of_the_committed_records(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    if not _has_outputs(notebook):
        first = "".join(notebook["cells"][0]["source"])
        assert reproduce.NO_OUTPUTS_NOTE in first, f"{path.name} has no outputs and its first cell does not say so"
        pytest.skip(f"{path.name} is committed without outputs, as its first cell says; the complete quick run "
                    "publishes them (issue 21), and then its values are checked against results/")
    problems = committed_problems(path, paths.default_results_dir("quick"))
    assert not problems, "\n".join(problems)


def test_a_notebook_with_outputs_but_no_values_fails(tmp_path):
    path = tmp_path / "03_x.ipynb"
    notebook = _notebook_with({"name": "a", "values": {}})
    notebook.cells[1].outputs = [new_output("display_data", {"text/markdown": "| a |\n|---|\n| 41.2 |\n"})]
    nbformat.write(notebook, path)
    assert committed_problems(path, tmp_path) == [
        "03_x.ipynb has outputs but no values bundle (kesl_utils.published.show): its numbers cannot be checked "
        "against the records"]


# -- the notebooks executed in the smoke profile -------------------------------------------------------------------
class SmokeRuns:
    """Each results notebook executed once in the smoke profile (as ``make reproduce PROFILE=smoke`` runs it: papermill,
    the kernels' settings from a RunContext), all into one temporary results folder, so that the runs notebooks
    share (the CUB pretraining) are trained once."""

    def __init__(self, root: Path):
        self.results_dir = root / "results"
        self.executed_dir = root / "executed"
        self.context = RunContext.for_profile("smoke", results_dir=self.results_dir, progress=False)
        self.done: dict[str, Path] = {}

    def executed(self, stem: str) -> Path:
        if stem not in self.done:
            try:
                reproduce.run_notebooks([ROOT / "notebooks" / f"{stem}.ipynb"], context=self.context,
                                        data_root="data/raw", output_dir=self.executed_dir)
            except SystemExit:
                pytest.fail(f"{stem} failed in the smoke profile; the executed copy with the traceback is "
                            f"{self.executed_dir / f'{stem}.ipynb'}")
            self.done[stem] = self.executed_dir / f"{stem}.ipynb"
        return self.done[stem]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    pytest.importorskip("papermill")
    return SmokeRuns(tmp_path_factory.mktemp("smoke-values"))


@pytest.mark.parametrize("path", RESULTS_NOTEBOOKS, ids=lambda p: p.stem)
def test_a_smoke_run_shows_the_numbers_of_the_records_it_wrote(path, smoke):
    executed = smoke.executed(path.stem)
    found = published.bundles(executed)
    assert found, f"{path.name} shows no values bundle (kesl_utils.published.show)"
    assert all(bundle.values["profile"] == "smoke" and bundle.markdown for bundle in found.values())
    problems = published.check_notebook(executed, smoke.results_dir)
    assert not problems, "\n".join(problems)


def _first_run_row(values: dict) -> tuple[int, dict]:
    return next((k, row) for k, row in enumerate(values["rows"]) if row["kind"] == "run")


def test_a_hand_edited_number_fails(smoke, tmp_path):
    """In a smoke run of notebook 03: a number of the values moved by more than the tolerance is reported, and
    only it; a number of the visible table changed is reported, and only it; the notebook file with either fails."""
    executed = smoke.executed("03_cub_comparison")
    name = "cub_comparison"
    bundle = published.bundles(executed)[name]
    assert published.check(name, bundle.values, smoke.results_dir, markdown=bundle.markdown) == []

    edited = copy.deepcopy(bundle.values)
    k, row = _first_run_row(edited)
    row["top1"]["mean"] += 10 * published.TOLERANCE
    problems = published.check(name, edited, smoke.results_dir)
    assert problems == [f"{name} · row {k + 1} ({row['label']}) · top1 · mean: shown {row['top1']['mean']:.6g}, "
                        f"rebuilt from the records {row['top1']['mean'] - 10 * published.TOLERANCE:.6g}"]

    header, rows = published.markdown_table(bundle.markdown)
    cell = rows[k][header.index("this run")]
    number = re.search(r"\d+\.\d", cell).group(0)
    changed = cell.replace(number, f"{float(number) + 1:.1f}", 1)
    line = next(line for line in bundle.markdown.splitlines() if f"| {cell} |" in line and row["label"].split(" · ")[0]
                in line)
    markdown = bundle.markdown.replace(line, line.replace(f"| {cell} |", f"| {changed} |", 1), 1)
    problems = published.check(name, bundle.values, smoke.results_dir, markdown=markdown)
    assert problems == [f"{name} · markdown row {k + 1} ({row['label']}) · column 'this run': shows "
                        f"{float(number) + 1:.1f}, the values hold {row['top1']['mean'] - 10 * published.TOLERANCE:.6g}"]

    notebook = json.loads(executed.read_text(encoding="utf-8"))
    output = next(o for o in notebook["cells"][bundle.cell]["outputs"] if published.MIME in o.get("data", {}))
    output["data"]["text/markdown"] = markdown
    copy_path = tmp_path / executed.name
    copy_path.write_text(json.dumps(notebook), encoding="utf-8")
    assert published.check_notebook(copy_path, smoke.results_dir) == problems
    assert committed_problems(copy_path, smoke.results_dir, profile="smoke") == problems
