"""The reproduce runner's bookkeeping: publishing executed notebooks, the results summary page, the
kernels' settings and the run-level progress it prints."""
import io
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kesl_utils import reproduce


def test_publish_strips_papermills_injected_cell(tmp_path):
    executed, target = tmp_path / "executed", tmp_path / "notebooks"
    executed.mkdir(), target.mkdir()
    note = reproduce.NO_OUTPUTS_NOTE + " until the complete quick run is published.*"
    nb = new_notebook(cells=[new_markdown_cell("# t\n\nWhat it is.\n\n" + note), new_code_cell('PROFILE = "quick"'),
                             new_code_cell('PROFILE = "smoke"'), new_code_cell("1 + 1")])
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells[2].metadata["tags"] = ["injected-parameters"]
    for count, cell in enumerate(nb.cells[1:], start=1):
        cell.execution_count = count
    nb.cells[3].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    nb.metadata["papermill"] = {"parameters": {"PROFILE": "smoke"}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, executed / "03_x.ipynb")
    (published,) = reproduce.publish_notebooks(executed, target)
    out = nbformat.read(published, as_version=4)
    # published with outputs: the first cell no longer says it has none
    assert [c.source for c in out.cells] == ["# t\n\nWhat it is.", 'PROFILE = "quick"', "1 + 1"]
    assert out.cells[2].outputs[0]["data"]["text/plain"] == "2"
    assert [out.cells[1].execution_count, out.cells[2].execution_count] == [1, 2]
    assert out.cells[2].outputs[0]["execution_count"] == 2
    assert "papermill" not in out.metadata and "widgets" not in out.metadata


def test_results_readme_collects_tables_and_warns_off_paper_profile(tmp_path):
    from kesl_utils import plan

    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "cub_comparison.md").write_text("### Table 1\n\n| a |\n|---|\n| 1 |\n")
    for name in ("cub_comparison.csv", "cub_comparison_gains.csv", "cub_comparison.tex"):
        (tmp_path / "tables" / name).write_text("")
    (tmp_path / "tables" / "when_kesl_helps.md").write_text("### The sweep\n")
    (tmp_path / "tables" / "when_kesl_helps_hypotheses.csv").write_text("")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "cub_comparison_quick.png").write_bytes(b"png")
    from kesl_utils.records import RunRecord, save_record
    metrics = {"top1": 1.0, "top5": 1.0, "mistake_severity": 1.0, "hdist@1": 1.0, "hdist@5": 1.0, "ece": 0.1}
    for i, (seconds, day) in enumerate(((1800.0, "2026-01-03"), (1800.0, "2026-01-01"))):
        save_record(RunRecord(run_id=f"r{i}", config={"profile": "quick"}, wall_time_s=seconds, device="cpu",
                              machine="AMD EPYC, 2 cores, avx512", git_commit="a" * 40, metrics=metrics,
                              finished_at=f"{day}T12:00:00+00:00"), tmp_path)
    save_record(RunRecord(run_id="s", config={"profile": "smoke"}, wall_time_s=7.0, device="cpu", metrics=metrics), tmp_path)
    text = reproduce.write_results_readme("quick", tmp_path).read_text()
    assert "training time in the 2 `quick` run records: 1.00 h (AMD EPYC, 2 cores, avx512)" in text
    assert "- records finished between 2026-01-01 and 2026-01-03 (UTC)" in text
    assert f"code that trained the records: `{'a' * 12}` (2 runs)" in text and "dirty" not in text
    assert "profile: `quick`" in text and "make reproduce`:" not in text  # nothing of the run that wrote the page
    assert "Not a reproduction of the paper's numbers" in text
    assert "### Table 1" in text and "figures/cub_comparison_quick.png" in text
    assert ("Files: [cub_comparison.csv](tables/cub_comparison.csv) · [cub_comparison_gains.csv]"
            "(tables/cub_comparison_gains.csv) · [cub_comparison.tex](tables/cub_comparison.tex)") in text
    # the studies beyond the paper follow the paper's tables, each with the files it wrote
    assert text.index("### Table 1") < text.index("## Beyond the paper") < text.index("### The sweep")
    assert "Files: [when_kesl_helps_hypotheses.csv](tables/when_kesl_helps_hypotheses.csv)" in text
    assert "leaderboard" not in text.split("## Beyond the paper")[1].split("\n\n", 2)[2]  # no page, no section
    # every notebook of the series, linked to the committed copy, never the git-ignored executed one
    owned = plan.runs_needed("03", "quick", new_only=True)
    assert "| [00_environment.ipynb](../notebooks/00_environment.ipynb) | 0 | — | — |" in text
    assert f"| [03_cub_comparison.ipynb](../notebooks/03_cub_comparison.ipynb) | {owned} | 0 | — |" in text
    assert "](notebooks/" not in text
    assert f"**Runs not all finished:** 03_cub_comparison.ipynb (0 of {owned}), " in text
    # the two records no notebook needs are counted apart, not dropped
    assert "**Not in the run plan:** 2 run records of this profile (60.0 min)" in text


def _record_of_notebook_03(seconds: float, finished_at: str):
    """A finished record of the first run notebook 03 owns in the quick profile's run plan."""
    from kesl_utils import plan
    from kesl_utils.records import RunRecord

    _, config = plan.notebook_runs("quick")["03_cub_comparison"][0]
    metrics = {"top1": 1.0, "top5": 1.0, "mistake_severity": 1.0, "hdist@1": 1.0, "hdist@5": 1.0, "ece": 0.1}
    return RunRecord(run_id=config.run_id, config=config.to_dict(), wall_time_s=seconds, device="cpu",
                     machine="AMD EPYC, 2 cores, avx512", git_commit="a" * 40, metrics=metrics, finished_at=finished_at)


def test_results_readme_is_the_same_whatever_the_last_run_timed(tmp_path):
    """A fresh clone's `make reproduce` from committed records must leave `git status` clean: the page reads no date
    and no seconds of the run that writes it, only the records (reproduce.json, where the timings go, is not read)."""
    from kesl_utils.records import save_record

    save_record(_record_of_notebook_03(90.0, "2026-01-02T08:00:00+00:00"), tmp_path)
    pages = []
    for date, seconds in (("2026-02-01 10:00 UTC", 12.0), ("2027-03-04 23:59 UTC", 3456.0)):
        log = {"profile": "quick", "date": date, "git_commit": date, "total_seconds": seconds,
               "notebooks": [{"notebook": "03_cub_comparison.ipynb", "seconds": seconds}]}
        summary = reproduce.write_summary("quick", log["notebooks"], "data/raw", tmp_path)
        summary.write_text(json.dumps(log))
        (tmp_path / "reproduce.json").write_text(json.dumps(log))  # where an older runner wrote it: not read either
        pages.append(reproduce.write_results_readme("quick", tmp_path).read_bytes())
    assert pages[0] == pages[1]
    text = pages[0].decode()
    assert "- records finished on 2026-01-02 (UTC)" in text
    assert "| [03_cub_comparison.ipynb](../notebooks/03_cub_comparison.ipynb) | " in text
    row = next(line for line in text.splitlines() if line.startswith("| [03_cub_comparison.ipynb]"))
    assert row.endswith(" | 1 | 1.5 |")  # one finished run, 90 s from its record
    assert "2026-02-01" not in text and "3456" not in text


def test_the_timings_of_make_reproduce_go_where_git_ignores_them(tmp_path):
    """reproduce.json (date, seconds per notebook: new every run) lives in <results>/notebooks/, which git ignores
    for every profile's results folder; a results folder git tracks (results/) never gets an untracked file."""
    import shutil
    import subprocess

    from kesl_utils import paths, profiles

    if shutil.which("git") is None or not paths.IN_CHECKOUT:
        pytest.skip("needs git and a checkout")
    written = reproduce.write_summary("quick", [{"notebook": "03_cub_comparison.ipynb", "seconds": 1.0}],
                                      "data/raw", tmp_path)
    assert json.loads(written.read_text())["notebooks"][0]["seconds"] == 1.0
    inside = written.relative_to(tmp_path)
    for profile in profiles.profile_names():
        target = (paths.default_results_dir(profile) / inside).relative_to(paths.PROJECT_ROOT)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=paths.PROJECT_ROOT)
        if ignored.returncode == 128:
            pytest.skip("not a git checkout")
        assert ignored.returncode == 0, f"{target} is not ignored by git: `make reproduce` would leave it untracked"


def test_results_readme_says_what_the_intervals_can_resolve(tmp_path):
    """The "can and cannot show" section is computed from the records: half-widths, significance, time."""
    import numpy as np
    from scipy import stats

    from kesl_utils.records import RunRecord, save_record
    from kesl_utils.table_specs import table_spec
    spec = table_spec("cub_comparison")
    base, ours = spec.row("baseline"), spec.row("ours")
    gains = {0: 2.0, 1: 2.5, 2: 3.0}
    for row, offset in ((base, 0.0), (ours, 1.0)):
        for config in row.configs("quick", seeds=(0, 1, 2)):  # the headline rows would run more seeds
            top1 = 40.0 + config.seed + (gains[config.seed] if offset else 0.0)
            metrics = {"top1": top1, "top5": 90.0, "mistake_severity": 1.0, "hdist@1": 1.0, "hdist@5": 1.0,
                       "ece": 0.1}
            save_record(RunRecord(run_id=config.run_id, config=config.to_dict(), wall_time_s=60.0, device="cpu",
                                  metrics=metrics), tmp_path)
    text = reproduce.write_results_readme("quick", tmp_path).read_text()
    half = stats.t.ppf(0.975, 2) * np.std([2.0, 2.5, 3.0], ddof=1) / np.sqrt(3)
    assert "## What this run can and cannot show" in text
    # the same six runs are Table 1's comparison, Table 4's "paper setting vs only CE" and Table 5's
    # ResNet-18 row: one distinct comparison, whatever tables show it
    assert "; 1 have two or more paired seeds" in text
    assert f"median {half:.2f} points, smallest {half:.2f}, largest {half:.2f}" in text
    power = text[text.index("### Power"):]
    row = next(line for line in power.splitlines() if line.startswith("| cub_comparison: Ours − Baseline (CUB)"))
    assert "backbone_ablation: Ours − Baseline (ResNet-18)" in row and "hyperparameter_ablation: row 9" in row
    assert f"| {half:.2f} |" in row and "+0.7, +1.3" in row
    # no stored no-learning reference in this folder: the reading says so rather than guessing
    assert "no reading: the no-learning reference of these images is missing" in row
    assert "a dirty" not in text and "-dirty" not in text
    dirty = RunRecord(run_id="x", config={"profile": "quick"}, git_commit="b" * 40 + "-dirty")
    assert reproduce.provenance([dirty])[-1] == f"- **trained from uncommitted or unknown code:** `{'b' * 40}-dirty` (1 runs)"
    assert "| cub | resnet18 | fine-tune | 6 | 6.0 | 1.0 |" in text


def test_the_kernels_get_the_contexts_settings_and_this_process_keeps_its_own(tmp_path, monkeypatch):
    import os

    from kesl_utils.context import RunContext

    monkeypatch.setenv("KESL_PROGRESS", "1")
    before = dict(os.environ)
    ctx = RunContext.for_profile("smoke", results_dir=tmp_path, executor="ray")
    env = reproduce.kernel_environment(ctx, tmp_path / "progress.jsonl")
    assert (env["KESL_PROFILE"], env["KESL_RESULTS_DIR"], env["KESL_EXECUTOR"], env["KESL_PROGRESS"]) == \
        ("smoke", str(tmp_path), "ray", "0")
    assert env["KESL_PROGRESS_LOG"] == str(tmp_path / "progress.jsonl")
    assert dict(os.environ) == before  # the runner writes nothing into its own environment
    assert reproduce.run_notebooks([], context=ctx, data_root="data/raw", output_dir=tmp_path / "nb") == []
    assert dict(os.environ) == before
    with pytest.raises(SystemExit):
        reproduce.main(["--executor", "dask", "--report-only"])


def test_run_level_progress_lines(tmp_path):
    """run k of N, its name, the time elapsed and the time left, from the lines run_all appends."""
    log = tmp_path / "progress.jsonl"
    now = {"t": 0.0}
    out = io.StringIO()
    progress = reproduce.RunProgress(log, out=out, clock=lambda: now["t"])
    progress.notebook = "03_cub_comparison.ipynb"
    events = [dict(event="finish", run_id="a", index=1, total=4, status="finished", cached=True, seconds=0.0),
              dict(event="start", run_id="b", index=2, total=4),
              dict(event="finish", run_id="b", index=2, total=4, status="finished", cached=False, seconds=120.0),
              dict(event="start", run_id="c", index=3, total=4)]
    with open(log, "w") as handle:
        for event in events[:2]:
            handle.write(json.dumps(event) + "\n")
        handle.write('{"event": "start", "run_')  # a line still being written is left for the next poll
    now["t"] = 30.0
    progress.poll()
    with open(log, "w") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
    now["t"] = 150.0
    progress.offset = len("".join(json.dumps(e) + "\n" for e in events[:2]).encode())
    progress.poll()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[reproduce] 03_cub_comparison.ipynb: run 2/4 b started; elapsed 30 s, time left: after the first run",
        "[reproduce] 03_cub_comparison.ipynb: run 3/4 c started; elapsed 2.5 min, about 4.0 min left in this batch"]


def test_run_progress_with_the_plan_counts_the_series_and_scales_its_estimate(tmp_path):
    log, out, now = tmp_path / "progress.jsonl", io.StringIO(), {"t": 0.0}
    # The plan: three runs to train, estimated 60, 120 and 240 s; "x" is not in the plan (a batch line).
    progress = reproduce.RunProgress(log, estimates={"a": 60.0, "b": 120.0, "c": 240.0}, out=out,
                                     clock=lambda: now["t"])
    progress.notebook = "08_hierarchy_aware_methods.ipynb"
    events = [dict(event="start", run_id="a", index=1, total=2),
              dict(event="finish", run_id="a", index=1, total=2, status="finished", cached=False, seconds=120.0),
              dict(event="start", run_id="b", index=2, total=2),
              dict(event="start", run_id="x", index=1, total=1)]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    now["t"] = 130.0
    progress.poll()
    assert out.getvalue().splitlines() == [
        "[reproduce] 08_hierarchy_aware_methods.ipynb: run 1/3 a started; elapsed 2.2 min, "
        "about 7.0 min left in the series (plan estimate)",
        # a took twice its estimate: b and c, 360 s planned, are expected to take 720 s
        "[reproduce] 08_hierarchy_aware_methods.ipynb: run 2/3 b started; elapsed 2.2 min, "
        "about 12.0 min left in the series (plan × measured/planned so far)",
        "[reproduce] 08_hierarchy_aware_methods.ipynb: run 1/1 x started; elapsed 2.2 min, "
        "about 2.0 min left in this batch"]


def test_the_kernels_print_neither_the_tcp_warning_nor_a_spurious_keyboard_interrupt(tmp_path, monkeypatch):
    """Issue 23: every kernel logged "Kernel is running over TCP without encryption", and one logged "KeyboardInterrupt
    caught in kernel" when papermill shut it down after its last cell (jupyter_client interrupts before shutting
    down). The kernels talk over Unix sockets, and a shutdown sends no interrupt; other interrupts still go."""
    import asyncio
    import os

    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        pytest.skip("Unix sockets: POSIX only (TCP elsewhere)")
    interrupts = []

    async def interrupt(self):
        interrupts.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = reproduce._kernel_manager({"A": "1"}, tmp_path / "kernel")(kernel_name="python3")
    assert manager.transport == "ipc" and manager.ip == str(tmp_path / "kernel")
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())
    assert interrupts == []
    manager.shutting_down = False  # a cell's timeout: interrupted as before
    asyncio.run(manager._async_interrupt_kernel())
    assert interrupts == [False]


def test_run_progress_counts_a_pretraining_trained_inside_a_fine_tune(tmp_path):
    """A pretraining trained as a fine-tune's dependency logs no event: once its record exists, it is done, and
    its estimate joins the fine-tune's (before: it stayed "left", and the fine-tune looked 6x over its plan)."""
    log, out, runs = tmp_path / "progress.jsonl", io.StringIO(), tmp_path / "runs"
    runs.mkdir()
    progress = reproduce.RunProgress(log, estimates={"pre": 600.0, "a": 60.0, "b": 120.0}, out=out,
                                     clock=lambda: 0.0, runs_dir=runs)
    log.write_text(json.dumps(dict(event="start", run_id="a", index=1, total=2)) + "\n")
    progress.poll()
    (runs / "pre.json").write_text("{}")  # a's pretraining finished inside it
    with open(log, "a") as handle:
        for event in (dict(event="finish", run_id="a", index=1, total=2, status="finished", cached=False, seconds=700.0),
                      dict(event="start", run_id="b", index=2, total=2)):
            handle.write(json.dumps(event) + "\n")
    progress.poll()
    assert out.getvalue().splitlines() == [
        "[reproduce] run 1/3 a started; elapsed 0 s, about 13.0 min left in the series (plan estimate)",
        # a and its pretraining: 700 s measured against 660 planned; b's 120 s scale to 127 s
        "[reproduce] run 3/3 b started; elapsed 0 s, about 2.1 min left in the series "
        "(plan × measured/planned so far)"]
    assert progress.inside == ["pre"]
