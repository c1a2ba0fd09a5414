"""Run records: one JSON file per run under ``<results>/runs/``; tables are built only from these.

``<run_id>.json`` holds a *finished* run (config, final metrics, per-epoch history, wall
time, throughput, device, world size, library versions, git commit). A run that raised is saved
as ``<run_id>.failed.json`` instead, so that it never counts as finished and is retried next
time. Files are written atomically, and a reader treats anything it cannot parse, that does not
say ``"status": "finished"``, or whose metrics are missing or not numbers, as not finished: a
half-written or hand-damaged file never counts.

Every function here takes the results folder explicitly (``context.results_dir`` of a
:class:`~kesl_utils.context.RunContext`, or :func:`kesl_utils.paths.default_results_dir`): nothing
is written to a folder the caller did not name.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import numbers
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import __version__, names, paths

STATUSES = ("finished", "failed")


@dataclass
class RunRecord:
    """What one run measured and how.

    metrics: final test metrics (the last evaluation), keys ``top1``, ``top5`` (percent),
        ``mistake_severity``, ``hdist@1``, ``hdist@5`` (mean d_ij), ``ece`` (fraction).
    history: one dict per epoch: ``epoch`` (1-based), ``lr`` (classifier learning rate at
        the epoch's first step), ``train_loss``, ``train_top1``, ``images_per_s``,
        ``epoch_time_s``, and on evaluation epochs ``test_<metric>`` for each metric key.
    images_per_s: mean training throughput over the epochs (evaluation excluded).
    wall_time_s: total time, summed over resumed segments.
    world_size: processes that trained the run (``torchrun``; 1 otherwise).
    machine: the host's processor, core count and vector extensions (:func:`machine_description`):
        machines of one kind differ about 4× in speed, so a throughput is read only beside it.
    artifacts: files kept beside the record, relative to the results folder, with their sha256
        (``weights``: final model weights of a run others start from; ``probabilities``: test-set
        softmax outputs; ``pretrain_weights``: the weights this run started from).
    """

    run_id: str
    config: dict
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    wall_time_s: float = 0.0
    images_per_s: float = 0.0
    device: str = "cpu"
    machine: str = ""
    versions: dict = field(default_factory=dict)
    git_commit: str = "unknown"
    finished_at: str = ""
    status: str = "finished"
    error: Optional[str] = None
    world_size: int = 1
    artifacts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"run_id", "config", "status"} - set(data)
        if missing:
            raise ValueError(f"run record lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def finished(self) -> bool:
        """``status`` is ``"finished"`` and every metric of :data:`names.METRIC_KEYS` is a number."""
        return self.status == "finished" and metrics_problem(self.metrics) is None

    @property
    def profile(self) -> str:
        return self.config.get("profile", "custom") if isinstance(self.config, dict) else "custom"


def metrics_problem(metrics) -> Optional[str]:
    """Why ``metrics`` is not a finished run's metrics (``None`` if it is)."""
    if not isinstance(metrics, dict):
        return f"metrics is a {type(metrics).__name__}, not a mapping"
    missing = [k for k in names.METRIC_KEYS if k not in metrics]
    if missing:
        return f"metrics lack {', '.join(missing)}"
    bad = [k for k in names.METRIC_KEYS
           if isinstance(metrics[k], bool) or not isinstance(metrics[k], numbers.Real)
           or (math.isnan(metrics[k]) and k not in NAN_ALLOWED)]
    if bad:
        return f"metrics {', '.join(bad)} are not numbers"
    return None


#: Metrics that are NaN by definition in some runs (no mistake at all: no mistake severity).
NAN_ALLOWED = {"mistake_severity"}


def record_path(run_id: str, results_dir: str | Path, *, failed: bool = False) -> Path:
    """``<results_dir>/runs/<run_id>.json`` (or ``<run_id>.failed.json``). Creates nothing."""
    return paths.runs_dir(results_dir) / f"{run_id}{'.failed' if failed else ''}.json"


def save_record(record: RunRecord, results_dir: str | Path) -> Path:
    """Write ``record`` atomically into ``<results_dir>/runs/``; a finished record replaces any
    earlier failure file. A "finished" record with malformed metrics is refused."""
    if record.status not in STATUSES:
        raise ValueError(f"RunRecord.status={record.status!r}; expected one of {STATUSES}")
    failed = record.status == "failed"
    if not failed and metrics_problem(record.metrics) is not None:
        raise ValueError(f"run {record.run_id}: refusing to save a finished record whose "
                         f"{metrics_problem(record.metrics)}")
    path = record_path(record.run_id, results_dir, failed=failed)
    paths.atomic_write_text(path, json.dumps(record.to_dict(), indent=1, sort_keys=False) + "\n")
    if not failed:
        record_path(record.run_id, results_dir, failed=True).unlink(missing_ok=True)
    return path


def read_record_file(path: str | Path) -> Optional[RunRecord]:
    """The record in ``path``, or ``None`` if it is missing, unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return RunRecord.from_dict(data)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def load_record(config, results_dir: str | Path) -> Optional[RunRecord]:
    """The *finished* record of ``config`` (a :class:`~kesl_utils.config.Config`) in ``results_dir``,
    or ``None`` (missing, partial, malformed, not finished, or written for another config)."""
    record = read_record_file(record_path(config.run_id, results_dir))
    if record is None or not record.finished or record.run_id != config.run_id:
        return None
    if record.config != config.to_dict():
        return None
    return record


def load_failure(config, results_dir: str | Path) -> Optional[RunRecord]:
    """The record of the last failed attempt of ``config`` in ``results_dir``, if any."""
    return read_record_file(record_path(config.run_id, results_dir, failed=True))


def load_records(results_dir: str | Path) -> list[RunRecord]:
    """All finished records in ``<results_dir>/runs/``, sorted by run id (none if it does not exist)."""
    records = []
    for path in sorted(paths.runs_dir(results_dir).glob("*.json")):
        if path.name.endswith(".failed.json"):
            continue
        record = read_record_file(path)
        if record is not None and record.finished:
            records.append(record)
    return records


# -- provenance ---------------------------------------------------------------------------
def library_versions() -> dict:
    """Versions of python, torch, torchvision, numpy and kesl_utils."""
    # Imported here: reading and writing records needs no torch (tables, the command line).
    import numpy
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "kesl_utils": __version__}


def machine_description() -> str:
    """The processor of this host as run records name it, e.g. ``"AMD EPYC, 2 cores, avx512"``.

    ``device`` ("cpu (2 threads)") cannot tell two machines of one kind apart; their speeds differ
    about 4× (AVX2 vs AVX-512), so throughputs and time estimates are only compared within one
    ``machine`` string.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no-avx2" if flags else "unknown"
    return f"{model}, {os.cpu_count()} cores, {vector}"


#: The files whose changes change what a run computes: a record's commit is "-dirty" only if these
#: differ from it (committing records, notebooks or prose while a long run goes on changes nothing).
CODE_PATHS = ("kesl_utils", "pyproject.toml")


def git_commit() -> str:
    """``git rev-parse HEAD`` of the project, ``"-dirty"`` appended if the library's code
    (:data:`CODE_PATHS`) differs from it; ``"unknown"`` outside a git checkout or before the first commit."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        status = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
        return commit + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds (``2020-01-31T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
