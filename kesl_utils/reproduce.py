"""``make reproduce``: run every notebook in order through papermill, then write ``results/README.md``.

    python -m kesl_utils.reproduce --profile quick --data-root data/raw notebooks/*.ipynb

This is an entry point: it builds its :class:`~kesl_utils.context.RunContext` from its flags and
the environment (:func:`kesl_utils.context.from_environment`; a flag wins over a variable). Each
profile writes to its own results folder (``results/`` for quick, ``build/results-smoke/`` for
smoke, ``results-paper/`` for paper; ``$KESL_RESULTS_DIR`` names another), so a smoke run never
touches the committed quick results. Executed copies go to ``<results>/notebooks/``. The first
notebook that fails stops the series, and the message names the notebook and the cell. The
summary page is assembled from the files the notebooks wrote (tables under ``<results>/tables/``,
figures under ``<results>/figures/``), the run records and the run plan (:mod:`kesl_utils.plan`: which
notebook owns which run), so it can be rebuilt with ``--report-only`` without running anything. It
is a function of those files alone: rebuilt from the same records, it is the same page, byte for
byte, so a fresh clone's ``make reproduce`` leaves ``git status`` clean. What differs from machine to
machine and run to run (date, commit, seconds per notebook) goes to ``<results>/notebooks/reproduce.json``,
next to the executed copies, which git ignores.

The kernels get their settings as environment variables of their own (:func:`kernel_environment`;
this process's ``os.environ`` is left as it is): the profile, the results folder, the executor
(``--executor ray``: each notebook's ``run_all`` runs its runs as Ray tasks, ``$RAY_ADDRESS``
names the cluster), ``KESL_PROGRESS=0`` (a stored output holds no progress bars and no widget
state) and ``KESL_PROGRESS_LOG``, a file to which every ``run_all`` appends one line per run. A
thread reads that file and prints run-level progress here, in the terminal: run k of N, its name,
the time elapsed and an estimate of the time left (:class:`RunProgress`). The notebooks never
carry it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from . import comparison, extras, leaderboard, names, ncm, paths, plan, profiles, sweep, tables, tutorial
from .context import RunContext, from_environment
from .paper import TITLES
from .records import git_commit, load_records
from .table_specs import TABLES

TABLE_ORDER = list(TITLES)


def _failed_cell(error) -> str:
    """A one-line description of the cell that raised, from papermill's execution error."""
    cell = getattr(error, "exec_count", None)
    name = getattr(error, "ename", type(error).__name__)
    value = getattr(error, "evalue", str(error))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{where} raised {name}: {value}"


def kernel_environment(context: RunContext, progress_log: Path) -> dict:
    """The environment variables of the notebook kernels (this process's, plus the context's settings)."""
    env = dict(os.environ)
    env.update(KESL_PROFILE=context.profile, KESL_RESULTS_DIR=str(context.results_dir),
               KESL_EXECUTOR=context.executor, KESL_PROGRESS="0", KESL_PROGRESS_LOG=str(progress_log))
    if context.ray_address:
        env["RAY_ADDRESS"] = context.ray_address
    return env


def _kernel_manager(env: dict, ipc_prefix: Optional[Path] = None):
    """A Jupyter kernel manager class whose kernels start with ``env`` as their environment.

    The terminal of ``make reproduce`` shows only the series' own lines, so the kernels are started
    without the two messages Jupyter would print there:

    * ``Kernel is running over TCP without encryption``, which ipykernel logs for every kernel on the
      default TCP transport: with ``ipc_prefix`` (POSIX), the kernels talk over Unix sockets named
      ``<ipc_prefix>-<n>``, which no other machine can reach, so there is nothing to warn about.
    * ``KeyboardInterrupt caught in kernel``: jupyter_client's ``shutdown_kernel`` sends SIGINT
      before its shutdown request, and a kernel that is handling a message when the signal lands
      logs that error although nothing went wrong. papermill shuts a kernel down
      only after its last cell, so the interrupt has nothing to stop: it is left out; a kernel that
      does not exit after the request is still killed (``shutdown_wait_time``). Interrupts at other
      times (a cell's timeout) are sent as before.
    """
    from jupyter_client.manager import AsyncKernelManager

    class KernelWithEnvironment(AsyncKernelManager):
        def __init__(self, **kwargs):
            if ipc_prefix is not None:
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", str(ipc_prefix))
            super().__init__(**kwargs)

        async def start_kernel(self, **kw):
            kw["env"] = dict(env)
            return await AsyncKernelManager.start_kernel(self, **kw)

        async def _async_interrupt_kernel(self):
            if self.shutting_down:
                return
            await AsyncKernelManager._async_interrupt_kernel(self)

    return KernelWithEnvironment


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class RunProgress:
    """Run-level progress from a progress log (:func:`kesl_utils.context.log_run_event`): one line
    per run started or failed, with run k of N, its name, the time elapsed and the time left.

    ``estimates`` (``{run_id: seconds}``, the run plan's estimate of every run the series still has to
    train: :func:`series_estimates`) makes k of N and the time left the *series'*: the plan's
    estimate of the runs not yet finished, scaled by how the finished ones measured against their
    own estimates. Without it (or for a run the plan does not list) they are the batch's: the mean
    time of the runs trained so far (cached runs cost nothing and are not counted) times the runs of
    the batch not yet started, this one included, an estimate that says so until one run has finished.

    ``runs_dir`` (the results folder's ``runs/``): a planned run trained inside another (a pretraining, as
    a fine-tune's dependency) logs no event of its own, and its time is part of the run that needed it.
    When a run finishes, every planned run not yet begun whose record now exists there is counted as done
    inside it: its estimate joins that run's, and it is no longer left.
    """

    def __init__(self, log: Path, *, estimates: Optional[dict] = None, out=None, clock=time.perf_counter,
                 runs_dir: Optional[Path] = None):
        self.log, self.out, self.clock = Path(log), out or sys.stdout, clock
        self.offset, self.notebook, self.started = 0, "", clock()
        self.trained_seconds: list[float] = []
        self.estimates = dict(estimates or {})
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self.begun: list[str] = []
        self.inside: list[str] = []  # planned runs trained inside another (no events of their own)
        self.measured, self.expected = 0.0, 0.0  # seconds of the finished planned runs, measured and estimated

    def _trained_inside(self) -> float:
        """Count the planned, not begun runs whose records exist now as done; their estimated seconds."""
        if self.runs_dir is None:
            return 0.0
        found = [run_id for run_id in self.estimates if run_id not in self.begun and run_id not in self.inside
                 and (self.runs_dir / f"{run_id}.json").is_file()]
        self.inside += found
        return sum(self.estimates[run_id] for run_id in found)

    def _series_eta(self) -> str:
        done = set(self.begun[:-1]) | set(self.inside)
        left = sum(seconds for run_id, seconds in self.estimates.items() if run_id not in done)
        scale = self.measured / self.expected if self.expected > 0 else 1.0
        basis = "plan × measured/planned so far" if self.expected > 0 else "plan estimate"
        return f"about {_minutes(left * scale)} left in the series ({basis})"

    def line(self, event: dict) -> Optional[str]:
        """The terminal line of one log event (``None``: nothing to print)."""
        where = f"{self.notebook}: " if self.notebook else ""
        run_id = event.get("run_id")
        planned = run_id in self.estimates
        if event.get("event") == "start":
            if planned:
                self.begun.append(run_id)
                position = f"run {len(self.begun) + len(self.inside)}/{len(self.estimates)} {run_id}"
                eta = self._series_eta()
            else:
                position = f"run {event.get('index')}/{event.get('total')} {run_id}"
                left = int(event.get("total", 0)) - int(event.get("index", 0)) + 1
                eta = (f"about {_minutes(left * sum(self.trained_seconds) / len(self.trained_seconds))} left in "
                       "this batch" if self.trained_seconds else "time left: after the first run")
            return f"[reproduce] {where}{position} started; elapsed {_minutes(self.clock() - self.started)}, {eta}"
        if event.get("event") == "finish" and not event.get("cached"):
            seconds = float(event.get("seconds", 0.0))
            self.trained_seconds.append(seconds)
            if planned and event.get("status") != "failed":
                self.measured += seconds
                self.expected += self.estimates[run_id] + self._trained_inside()
            if event.get("status") == "failed":
                position = f"run {event.get('index')}/{event.get('total')} {run_id}"
                return f"[reproduce] {where}{position} FAILED after {_minutes(seconds)}"
        return None

    def poll(self) -> None:
        """Print the lines of the events appended since the last poll (complete lines only)."""
        if not self.log.is_file():
            return
        with open(self.log, encoding="utf-8") as handle:
            handle.seek(self.offset)
            text = handle.read()
        complete = text[:text.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for raw in complete.splitlines():
            try:
                shown = self.line(json.loads(raw))
            except (ValueError, TypeError, AttributeError):
                continue
            if shown:
                print(shown, file=self.out, flush=True)

    def follow(self, stop: threading.Event, every: float = 1.0) -> None:
        """Poll until ``stop`` is set, then once more."""
        while not stop.wait(every):
            self.poll()
        self.poll()


def series_estimates(context: RunContext, *, echo=print) -> dict:
    """``{run_id: estimated seconds}`` of every run the series still has to train (the run plan,
    :func:`kesl_utils.plan.plan`), after printing what it will cost: runs to train, runs cached, and
    the estimate on this machine (from its own records; runs without a figure are counted apart)."""
    frame = plan.plan(context.profile, results_dir=context.results_dir, data_root=context.data_root)
    missing = frame[(frame["status"] == "missing") & (frame["kind"] != "tutorial")]
    known = missing[missing["est_minutes"].notna()]
    unknown = len(missing) - len(known)
    echo(f"[reproduce] run plan of profile {context.profile!r}: {len(frame)} runs, {int((frame['status'] == 'cached').sum())} "
         f"cached, {len(missing)} to train"
         + (f", about {_minutes(60 * known['est_minutes'].sum())} on this machine" if len(known) else "")
         + (f"; {unknown} of them without an images/s figure of this machine (python -m kesl_utils plan "
            "--calibrate measures one)" if unknown else "") + "; python -m kesl_utils plan lists them")
    return {row.run_id: 60.0 * row.est_minutes for row in known.itertuples()}


def run_notebooks(notebooks: list[Path], *, context: RunContext, data_root: str, output_dir: Path,
                  estimates: Optional[dict] = None) -> list[dict]:
    """Execute ``notebooks`` in order with papermill; stop at the first failure (SystemExit(1)).

    The kernels run with :func:`kernel_environment` of ``context``; the runs they start are
    reported here as they go (:class:`RunProgress`, with the plan's ``estimates`` for the series' ETA).
    """
    pm = extras.require("papermill", "make reproduce (running the notebooks)")

    output_dir.mkdir(parents=True, exist_ok=True)
    log = output_dir / "progress.jsonl"
    log.write_text("")
    # Unix sockets need a short path (about 100 bytes on macOS); Windows has none: TCP there.
    sockets = Path(tempfile.mkdtemp(prefix="kesl-kernels-")) if os.name == "posix" else None
    kernel = _kernel_manager(kernel_environment(context, log), sockets / "kernel" if sockets else None)
    progress = RunProgress(log, estimates=estimates, runs_dir=paths.runs_dir(context.results_dir))
    stop = threading.Event()
    follower = threading.Thread(target=progress.follow, args=(stop,), daemon=True)
    follower.start()
    timings = []
    try:
        for notebook in notebooks:
            progress.poll()
            progress.notebook = notebook.name
            target = output_dir / notebook.name
            print(f"[reproduce] {notebook.name} (profile {context.profile}) ...", flush=True)
            start = time.perf_counter()
            try:
                pm.execute_notebook(str(notebook), str(target),
                                    parameters={"PROFILE": context.profile, "DATA_ROOT": data_root},
                                    cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
                                    kernel_manager_class=kernel)
            except pm.PapermillExecutionError as error:
                print(f"[reproduce] FAILED: {notebook.name}: {_failed_cell(error)}\n"
                      f"[reproduce] the executed copy with the traceback is {target}", file=sys.stderr)
                raise SystemExit(1) from None
            seconds = time.perf_counter() - start
            timings.append({"notebook": notebook.name, "seconds": round(seconds, 1)})
            progress.poll()
            print(f"[reproduce] {notebook.name} done in {seconds:.0f} s", flush=True)
    finally:
        stop.set()
        follower.join(timeout=5)
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)
    return timings


def series_notebooks() -> list[Path]:
    """The notebooks of the series, ``notebooks/NN_*.ipynb``, in the order they run."""
    return sorted((paths.PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def executed_dir(results_dir: Path) -> Path:
    """``<results_dir>/notebooks/``: the executed copies and this machine's logs of the last run (git-ignored)."""
    return Path(results_dir) / "notebooks"


def write_summary(profile: str, timings: list[dict], data_root: str, results_dir: Path) -> Path:
    """Write ``<results_dir>/notebooks/reproduce.json`` (what ran, where, how long).

    A log of this machine's last run, kept with the executed copies (:func:`executed_dir`, git-ignored):
    its date and seconds change every run, so nothing committed reads it.
    """
    summary = {
        "profile": profile,
        "data_root": data_root,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": git_commit(),
        "notebooks": timings,
        "total_seconds": round(sum(t["seconds"] for t in timings), 1),
    }
    return paths.atomic_write_text(executed_dir(results_dir) / "reproduce.json", json.dumps(summary, indent=2) + "\n")


def write_results_readme(profile: str, results_dir: Path, data_root=None) -> Path:
    """Assemble ``<results_dir>/README.md`` from the records, the run plan, tables and figures.

    Every number on the page is computed here from those files, and nothing else: no date, no timing
    of the run that wrote it, so the same records give the same page (``reproduce.json`` is not read).
    Links point at files git keeps (the committed notebooks under ``notebooks/``, the tables and figures
    of this folder), so they resolve on the web; the provenance is the commit of the code that trained
    the records (:func:`provenance`). ``data_root``: where the real datasets are, whose fingerprints
    name the real-data runs of the plan (synthetic profiles read no data).
    """
    root = Path(results_dir)
    records = [r for r in load_records(root) if r.config.get("profile") == profile]
    lines = ["# Results", "", f"- profile: `{profile}`"]
    if records:
        # Training time comes from the records, so a re-run that found every run cached still reports
        # what the runs cost when they were trained.
        hours = sum(r.wall_time_s for r in records) / 3600
        machines = "; ".join(sorted({r.machine or r.device for r in records}))
        lines += finished_dates(records)
        lines.append(f"- training time in the {len(records)} `{profile}` run records: {hours:.2f} h ({machines})")
    lines += provenance(records) + [""]
    if profile != "paper":
        lines += ["> **Not a reproduction of the paper's numbers.** In the `" + profile + "` profile every dataset is a "
                  "synthetic stand-in (generated images whose classes follow the real CUB taxonomy or WordNet subnet), "
                  "at a small budget stated above each table (read from its records). The \"this run\" columns "
                  "measure what KESL does in that setting; the \"paper\" columns are the published numbers on the "
                  "real datasets. Compare the *gains* (Ours − Baseline, paired by seed), not the absolute accuracies.",
                  ""]
    if records:
        lines += where_the_time_goes(records) + what_this_run_can_show(profile, records, root)
    lines += the_notebooks(plan.plan(profile, results_dir=root, data_root=data_root, throughput={}), records)
    tables = root / "tables"
    for name in TABLE_ORDER:
        lines += table_section(tables, name)
    studies = [line for name in STUDY_TABLES for line in table_section(tables, name)]
    if studies:
        lines += ["## Beyond the paper", "",
                  "The studies of notebooks 08–10, in the same harness and from the same kind of records: the "
                  "hierarchy-aware methods KESL competes with, the map of when KESL helps, and the tutorial on a "
                  "hierarchy of one's own.", ""] + studies
    figures = sorted((root / "figures").glob("*.png")) if (root / "figures").exists() else []
    if figures:
        lines += ["## Figures", ""] + [f"- [{f.stem}](figures/{f.name})" for f in figures] + [""]
    return paths.atomic_write_text(root / "README.md", "\n".join(lines))


def finished_dates(records) -> list[str]:
    """A Markdown line: the first and last day (UTC) on which ``records`` finished, from their ``finished_at``."""
    days = sorted(r.finished_at[:10] for r in records if r.finished_at)
    if not days:
        return []
    span = f"on {days[0]}" if days[0] == days[-1] else f"between {days[0]} and {days[-1]}"
    return [f"- records finished {span} (UTC)"]


def _notebook_row(notebook: Path, rows: pd.DataFrame) -> str:
    """The table row of one notebook: its runs in the plan, those finished, and their recorded minutes."""
    link = f"[{notebook.name}](../notebooks/{notebook.name})"
    if rows.empty:
        return f"| {link} | 0 | — | — |"
    finished = rows[rows["status"] == "cached"]
    timed = finished["wall_minutes"].dropna()
    minutes = f"{timed.sum():.1f}" if len(timed) else "—"
    if len(timed) < len(finished):
        minutes += f" (+{len(finished) - len(timed)} runs without a recorded time)"
    return f"| {link} | {len(rows)} | {len(finished)} | {minutes} |"


def the_notebooks(frame: pd.DataFrame, records) -> list[str]:
    """Markdown lines: each notebook of the series with a link, the runs it owns in the run plan ``frame``
    (:func:`kesl_utils.plan.plan`: a run shared by several notebooks belongs to the first), how many are
    finished and the minutes their records took; then what is not finished and what the plan does not list."""
    lines = ["## The notebooks", "",
             "Runs are counted under the first notebook that needs them (the run plan: `python -m kesl_utils plan "
             f"--profile {frame.attrs['profile']}`); minutes are summed from the finished runs' records. "
             "The links go to the committed notebooks, which hold outputs once a run is published "
             "(`python -m kesl_utils.reproduce --report-only --publish`).", "",
             "| notebook | runs | finished | training minutes |", "|---|---|---|---|"]
    by_stem = {stem: rows for stem, rows in frame.groupby("notebook", sort=False)}
    owned = {notebook: by_stem.get(notebook.stem, frame.iloc[0:0]) for notebook in series_notebooks()}
    lines += [_notebook_row(notebook, rows) for notebook, rows in owned.items()] + [""]
    unfinished = [f"{notebook.name} ({int((rows['status'] == 'cached').sum())} of {len(rows)})"
                  for notebook, rows in owned.items() if (rows["status"] != "cached").any()]
    if unfinished:
        lines += [f"**Runs not all finished:** {', '.join(unfinished)}. The tables these notebooks fill show only "
                  "the rows whose runs are finished.", ""]
    for stem, why in sorted(frame.attrs.get("skipped", {}).items()):
        lines += [f"**No runs in this profile:** {stem}.ipynb ({why}).", ""]
    planned = set(frame["run_id"])
    unlisted = [r for r in records if r.run_id not in planned]
    if unlisted:
        lines += [f"**Not in the run plan:** {len(unlisted)} run records of this profile "
                  f"({sum(r.wall_time_s for r in unlisted) / 60:.1f} min), which no notebook of the series needs.", ""]
    return lines


#: The tables of the studies beyond the paper, as notebooks 08, 09 and 10 write them under ``tables/``.
STUDY_TABLES = (leaderboard.TABLE_NAME, sweep.TABLE_NAME, tutorial.TABLE_NAME)


def table_section(tables: Path, name: str) -> list[str]:
    """Markdown lines: table ``name``'s page (``<tables>/<name>.md``) and links to those of its csv and tex
    files that exist (a study may write several csv files); nothing if it has no page."""
    md = tables / f"{name}.md"
    if not md.exists():
        return []
    files = sorted(tables.glob(f"{name}.csv")) + sorted(tables.glob(f"{name}_*.csv")) + sorted(tables.glob(f"{name}.tex"))
    links = " · ".join(f"[{f.name}](tables/{f.name})" for f in files)
    return [md.read_text().rstrip(), ""] + ([f"Files: {links}", ""] if links else [])


def provenance(records) -> list[str]:
    """Markdown lines naming the commit(s) of the code that trained ``records``.

    A record's ``git_commit`` is the commit of the library's code when it trained
    (:func:`kesl_utils.records.git_commit`: "-dirty" only if the code itself differed from it). A
    record trained from uncommitted code is said to be so, run by run: no dirty provenance is
    presented as a clean one.
    """
    if not records:
        return []
    commits: dict[str, int] = {}
    for record in records:
        commits[record.git_commit] = commits.get(record.git_commit, 0) + 1
    clean = {c: n for c, n in commits.items() if not c.endswith("-dirty") and c != "unknown"}
    lines = ["- code that trained the records: " + ", ".join(f"`{c[:12]}` ({n} runs)" for c, n in sorted(clean.items()))
             if clean else "- code that trained the records: no clean commit"]
    unclean = {c: n for c, n in commits.items() if c not in clean}
    if unclean:
        lines.append("- **trained from uncommitted or unknown code:** " + ", ".join(
            f"`{c}` ({n} runs)" for c, n in sorted(unclean.items())))
    return lines


def where_the_time_goes(records) -> list[str]:
    """Markdown lines: training time summed from the records per dataset × backbone × stage."""
    groups: dict[tuple, list] = {}
    for record in records:
        config = record.config
        stage = "fine-tune" if config.get("pretrain_run") else ("pretrain" if record.artifacts.get("weights") else "train")
        groups.setdefault((config.get("dataset"), config.get("backbone"), stage), []).append(record.wall_time_s)
    lines = ["## Where the time goes", "", "| dataset | backbone | stage | runs | minutes | minutes per run |",
             "|---|---|---|---|---|---|"]
    for (dataset, backbone, stage), times in sorted(groups.items(), key=lambda item: -sum(item[1])):
        lines.append(f"| {dataset} | {backbone} | {stage} | {len(times)} | {sum(times) / 60:.1f} | "
                     f"{sum(times) / 60 / len(times):.1f} |")
    return lines + ["", "Summed from each record's `wall_time_s` (resumed segments included).", ""]


def comparisons(profile: str, records, results_dir) -> pd.DataFrame:
    """Every comparison of the five tables (:func:`kesl_utils.tables.gains`), with its table and the
    identity of the configs it compares (``pair``: the baseline's and the treatment's run ids at the
    first seed), so that a comparison several tables share (e.g. CUB KESL − CE in Tables 1, 4 and 5) is
    counted once."""
    rows = []
    for name in TABLE_ORDER:
        if name not in TABLES:
            continue
        spec = TABLES[name]
        references = ncm.references(spec.configs(profile), results_dir)
        gain_table = tables.gains(name, records, profile=profile, references=references)
        for comparison_, row in zip(spec.comparisons, gain_table.to_dict("records")):
            # the configs compared, whatever seeds a table runs them at (a headline row runs more)
            pair = tuple(spec.row(key).config(profile).run_id for key in (comparison_.baseline, comparison_.ours))
            rows.append(dict(row, table=name, pair=pair))
    return pd.DataFrame(rows)


def power_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per *distinct* comparison (same runs, whatever table shows it): where it appears, the
    paper's gain(s), the paired seeds, this run's 95 % half-width against half the paper's smallest
    gain (what a run needs to tell a gain of that size from zero) and 1 point, and its reading."""
    out = []
    for pair, group in frame.groupby("pair", sort=False):
        first = group.sort_values("n_seeds", ascending=False, kind="stable").iloc[0]  # the best-powered reading
        half = (first["ci_high"] - first["ci_low"]) / 2 if first["n_seeds"] >= 2 else math.nan
        papers = sorted({float(p) for p in group["paper"]})
        target = min(abs(p) for p in papers) / 2
        out.append({"comparison": " = ".join(dict.fromkeys(f"{r.table}: {r.comparison}" for r in group.itertuples())),
                    "paper gain": ", ".join(f"{p:+.1f}" for p in papers), "seeds": int(first["n_seeds"]),
                    "half-width": half, "½ |paper gain|": target,
                    "resolves ½ paper gain": "—" if math.isnan(half) else ("yes" if half <= target else "no"),
                    "within 1 point": "—" if math.isnan(half) else ("yes" if half <= 1.0 else "no"),
                    "readings": "; ".join(dict.fromkeys(group["verdict"]))})
    return pd.DataFrame(out)


def what_this_run_can_show(profile: str, records, results_dir) -> list[str]:
    """Markdown lines: what the paired intervals of this run can and cannot resolve (the power
    table over distinct comparisons) and how each reads, all computed from the records."""
    frame = comparisons(profile, records, results_dir)
    lines = ["## What this run can and cannot show", ""]
    if frame.empty:
        return lines + ["No comparison is defined.", ""]
    power = power_table(frame)
    measured = power[power["seeds"] >= 2]
    if measured.empty:
        return lines + ["No comparison has two or more paired seeds yet: no interval, no reading.", ""]
    halves = measured["half-width"]
    counts = measured["readings"].value_counts()
    lines += [
        f"- {len(power)} distinct comparisons (a comparison several tables show counts once; the tables hold "
        f"{len(frame)}); {len(measured)} have two or more paired seeds, {len(power) - len(measured)} have none.",
        f"- Half-width of their 95 % intervals: median {statistics.median(halves):.2f} points, smallest "
        f"{halves.min():.2f}, largest {halves.max():.2f}; {int((measured['resolves ½ paper gain'] == 'yes').sum())} "
        f"of {len(measured)} are at most half the paper's gain, {int((measured['within 1 point'] == 'yes').sum())} "
        "at most 1 point.",
        "- Readings: " + "; ".join(f"{text} ({n})" for text, n in counts.items()) + ".",
        "- The CUB runs of one seed share one pretraining run (the backbone's synthetic ImageNet stand-in, seed "
        "100): the interval measures the spread over fine-tuning seeds and stand-in datasets, not over "
        "pretrainings, so it is narrower than a protocol that re-pretrains per seed would give.",
        "- It cannot show anything about real images, nor compare absolute accuracies with the paper; a single "
        "run's difference is noise (runs are bit-exact on one machine, not across machines): only the seeds "
        "measure the spread.", "",
        "### Power: each distinct comparison's interval against the paper's gain", "",
        comparison.to_markdown(power.assign(**{
            "half-width": [("—" if math.isnan(v) else f"{v:.2f}") for v in power["half-width"]],
            "½ |paper gain|": [f"{v:.2f}" for v in power["½ |paper gain|"]]})), ""]
    return lines


#: How a notebook committed without outputs says so (the last paragraph of its first cell);
#: :func:`publish_notebooks` removes it from a notebook it publishes with outputs.
NO_OUTPUTS_NOTE = "*This notebook is committed without outputs"


def without_no_outputs_note(source: str) -> str:
    """``source`` (a markdown cell) without its paragraph starting with :data:`NO_OUTPUTS_NOTE`."""
    paragraphs = source.split("\n\n")
    return "\n\n".join(p for p in paragraphs if not p.lstrip().startswith(NO_OUTPUTS_NOTE)).rstrip("\n")


def publish_notebooks(executed_dir: Path, target_dir: Path) -> list[Path]:
    """Copy executed notebooks over the committed ones, minus papermill's injected-parameters cell.

    This is how the committed notebooks come to hold the outputs of a clean top-to-bottom run: the
    parameters cell keeps its literals (the profile that ran is in the executed copy and in
    ``<results>/notebooks/reproduce.json``), and the outputs below it are the run's own. Execution counts are closed up
    over the removed cell, so they read 1, 2, 3, … as in a top-to-bottom run in JupyterLab.
    """

    nbformat = extras.require("nbformat", "publishing the executed notebooks")
    written = []
    for executed in sorted(executed_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(executed, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
        nb.metadata.pop("papermill", None)
        nb.metadata.pop("widgets", None)  # widget state would be noise for a web reader
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = without_no_outputs_note(cell.source)  # it has outputs now
        count = 0
        for cell in nb.cells:
            cell.get("metadata", {}).pop("papermill", None)
            cell.get("metadata", {}).pop("execution", None)
            if cell.cell_type == "code" and cell.get("execution_count") is not None:
                # The kernel ran the remaining cells in this order; only the removed cell's number is closed up.
                count += 1
                cell.execution_count = count
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "execute_result":
                        output["execution_count"] = count
        target = target_dir / executed.name
        paths.atomic_write_text(target, nbformat.writes(nb) + "\n")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run, in order (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--profile", default=None, choices=profiles.profile_names(),
                        help="the profile (default: $KESL_PROFILE, else quick)")
    parser.add_argument("--data-root", default="data/raw", help="root of the real datasets (paper profile)")
    parser.add_argument("--executor", default=None, choices=names.EXECUTORS,
                        help="how the notebooks run their runs: serial (in the kernel) or ray (one Ray task "
                             "per run, on $RAY_ADDRESS or a local cluster; needs pip install -e '.[cluster]') "
                             "(default: $KESL_EXECUTOR, else serial)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild results/README.md")
    parser.add_argument("--publish", action="store_true",
                        help="copy the executed notebooks of the last run over notebooks/ (outputs for readers)")
    args = parser.parse_args(argv)
    try:
        context = from_environment(args.profile, data_root=args.data_root, executor=args.executor,
                                   precedence="arguments").prepare()
    except (ValueError, PermissionError) as error:
        parser.error(str(error))
    executed = executed_dir(context.results_dir)
    if not args.report_only:
        notebooks = args.notebooks or series_notebooks()
        missing = [str(n) for n in notebooks if not n.exists()]
        if missing:
            parser.error(f"notebook(s) not found: {', '.join(missing)}")
        start = time.perf_counter()
        estimates = series_estimates(context)
        timings = run_notebooks([n.resolve() for n in notebooks], context=context, data_root=args.data_root,
                                output_dir=executed, estimates=estimates)
        write_summary(context.profile, timings, args.data_root, context.results_dir)
        print(f"[reproduce] all {len(timings)} notebooks ran in {(time.perf_counter() - start) / 60:.1f} min")
    if args.publish:
        if context.profile != "quick":
            parser.error("--publish copies the quick run's notebooks over notebooks/; the committed notebooks "
                         f"are the quick profile's, not {context.profile!r}'s")
        for target in publish_notebooks(executed, paths.PROJECT_ROOT / "notebooks"):
            print(f"[reproduce] published {target.relative_to(paths.PROJECT_ROOT)}")
    readme = write_results_readme(context.profile, context.results_dir, data_root=context.data_root)
    print(f"[reproduce] wrote {paths.display_path(readme)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
