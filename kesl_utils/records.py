"""Run records: one JSON file per run under ``<results>/runs/``; tables are built only from these.

``<run_id>.json`` holds a *finished* run (config, final metrics, per-epoch history, wall
time, throughput, device, world size, library versions, git commit). A run that raised is saved
as ``<run_id>.failed.json`` instead, so that it never counts as finished and is retried next
time. Files are written atomically.

Damaged records are reported and set aside, never used and never overwritten
    Each record carries ``digest``, the sha256 of its run id, status, config and metrics
    (:func:`record_digest`), written by :func:`save_record`. A ``<run_id>.json`` that cannot be
    parsed (truncated), is not a finished run's record, or whose digest does not match its
    content (a hand-edited ``top1``) is *damaged*: every reader warns with its path
    (:class:`DamagedRecordWarning`) and treats the run as not finished, so no table shows its
    numbers. Before the run is trained again, :func:`set_aside_damaged_record` renames the file
    to ``<run_id>.damaged-<UTC time>.json`` beside it (git-ignored), so the evidence, and a
    user's hand edit, survive the retraining. A digest is not a signature: anyone can recompute
    it; it catches edits and damage, not forgery.

    Records written before digests existed have none; they are read as before (their content
    is checked, their digest cannot be), since refusing them would retrain runs that may have
    cost days of GPU time. A record with a digest is always checked.

Every function here takes the results folder explicitly (``context.results_dir`` of a
:class:`~kesl_utils.context.RunContext`, or :func:`kesl_utils.paths.default_results_dir`): nothing
is written to a folder the caller did not name.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import numbers
import os
import platform
import subprocess
import warnings
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
    bad_images: real data: the files the pre-flight check left out of each split (``{"train":
        [...], "test": [...]}``, paths relative to the dataset root; empty lists: every file was
        checked and read), with ``skip_bad_images``; ``{}`` for synthetic data.
    digest: sha256 of the run id, status, config and metrics (:func:`record_digest`), written by
        :func:`save_record`; ``None`` in records older than digests. Not compared by ``==``.
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
    bad_images: dict = field(default_factory=dict)
    digest: Optional[str] = field(default=None, compare=False)

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


#: What :func:`record_digest` covers: what a table reads, and what names the run.
DIGEST_FIELDS = ("run_id", "status", "config", "metrics")
#: The infix of a damaged record set aside: ``<run_id>.damaged-<UTC time>.json`` (git-ignored).
DAMAGED_INFIX = ".damaged-"


class DamagedRecordWarning(UserWarning):
    """A run record that is damaged (unparseable, not a finished run's, or edited after it was
    written); it is not used, and it is set aside before the run is trained again."""


def record_digest(data: dict) -> str:
    """sha256 hex digest of the :data:`DIGEST_FIELDS` of a record's dict (key-sorted, compact JSON)."""
    payload = {key: data.get(key) for key in DIGEST_FIELDS}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_record(record: RunRecord, results_dir: str | Path) -> Path:
    """Write ``record`` atomically into ``<results_dir>/runs/`` with its digest (set on ``record``
    too); a finished record replaces any earlier failure file. A "finished" record with malformed
    metrics is refused. A damaged file where the record goes is set aside first
    (:func:`set_aside_damaged_record`), never overwritten."""
    if record.status not in STATUSES:
        raise ValueError(f"RunRecord.status={record.status!r}; expected one of {STATUSES}")
    failed = record.status == "failed"
    if not failed and metrics_problem(record.metrics) is not None:
        raise ValueError(f"run {record.run_id}: refusing to save a finished record whose "
                         f"{metrics_problem(record.metrics)}")
    path = record_path(record.run_id, results_dir, failed=failed)
    if not failed:
        _set_aside_if_damaged(path, record.config)
    data = record.to_dict()
    data["digest"] = record.digest = record_digest(data)
    paths.atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False) + "\n")
    if not failed:
        record_path(record.run_id, results_dir, failed=True).unlink(missing_ok=True)
    return path


def inspect_record_file(path: str | Path, *, finished: bool = True) -> tuple[Optional[RunRecord], Optional[str]]:
    """``(record, problem)`` of the record file ``path``: ``(record, None)`` when it is sound,
    ``(None, problem)`` when it is damaged, ``(None, None)`` when there is no file.

    Damaged: not JSON (a truncated file), not a record, a run id that is not the file's name, a
    digest that does not match (:func:`record_digest`), and with ``finished`` (a ``<run_id>.json``,
    which :func:`save_record` writes only for finished runs) a status or metrics of a run that
    did not finish."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"unreadable ({type(error).__name__}: {error})"
    try:
        data = json.loads(text)
    except ValueError as error:
        return None, f"not valid JSON, truncated or cut by an edit ({error})"
    if not isinstance(data, dict):
        return None, f"not a run record (a JSON {type(data).__name__})"
    try:
        record = RunRecord.from_dict(data)
    except (TypeError, ValueError) as error:
        return None, f"not a run record ({error})"
    if path.name not in (f"{record.run_id}.json", f"{record.run_id}.failed.json"):
        return None, f"it holds run {record.run_id!r}, not the run its file name says"
    if data.get("digest") is not None and data["digest"] != record_digest(data):
        return None, "its digest does not match its run id, status, config and metrics: it was edited after it was written"
    if finished and record.status != "finished":
        return None, f"status {record.status!r} in the file of a finished run"
    if finished and metrics_problem(record.metrics) is not None:
        return None, metrics_problem(record.metrics)
    return record, None


def _warn_damaged(path: Path, problem: str) -> None:
    warnings.warn(f"run record {paths.display_path(path)} is damaged: {problem}. It is not used; it is set aside "
                  "(renamed, not overwritten) when the run is trained again", DamagedRecordWarning, stacklevel=3)


def _set_aside_if_damaged(path: Path, config: dict) -> Optional[Path]:
    record, problem = inspect_record_file(path)
    if problem is None and record is not None and record.config != config:
        problem = "it is the record of another config under this run's name"
    if problem is None:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = path.name[:-len(".json")]
    target, n = path.with_name(f"{base}{DAMAGED_INFIX}{stamp}.json"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{base}{DAMAGED_INFIX}{stamp}-{n}.json")
    os.replace(path, target)
    warnings.warn(f"run record {paths.display_path(path)} was damaged ({problem}); set aside as "
                  f"{paths.display_path(target)}, so that the new record does not overwrite it",
                  DamagedRecordWarning, stacklevel=3)
    return target


def record_problem(config, results_dir: str | Path) -> Optional[str]:
    """Why the file at ``config``'s record path is damaged (:func:`inspect_record_file`), or holds
    another config's record; ``None`` when it is missing or ``config``'s sound record. Warns nothing."""
    record, problem = inspect_record_file(record_path(config.run_id, results_dir))
    if problem is None and record is not None and record.config != config.to_dict():
        problem = "it is the record of another config under this run's name"
    return problem


def set_aside_damaged_record(config, results_dir: str | Path) -> Optional[Path]:
    """Rename a damaged ``<run_id>.json`` of ``config`` (:func:`record_problem`) to
    ``<run_id>.damaged-<UTC time>.json`` beside it, warning with both paths; returns the new path
    (``None``: nothing to set aside). The trainer calls it before it trains a run again."""
    return _set_aside_if_damaged(record_path(config.run_id, results_dir), config.to_dict())


def set_aside_records(run_id: str, results_dir: str | Path) -> list[Path]:
    """The damaged records of ``run_id`` set aside so far, oldest first."""
    folder = paths.runs_dir(results_dir)
    return sorted(folder.glob(f"{run_id}{DAMAGED_INFIX}*.json")) if folder.is_dir() else []


def read_record_file(path: str | Path) -> Optional[RunRecord]:
    """The record in ``path``, or ``None`` if it is missing or damaged (:func:`inspect_record_file`,
    without the finished-run checks); warns nothing."""
    return inspect_record_file(path, finished=False)[0]


def load_record(config, results_dir: str | Path) -> Optional[RunRecord]:
    """The *finished* record of ``config`` (a :class:`~kesl_utils.config.Config`) in ``results_dir``,
    or ``None`` (missing, damaged, or written for another config). A damaged record is reported
    (:class:`DamagedRecordWarning`, naming the file) and never used."""
    path = record_path(config.run_id, results_dir)
    record, problem = inspect_record_file(path)
    if problem is not None:
        _warn_damaged(path, problem)
        return None
    if record is None or record.config != config.to_dict():
        return None
    return record


def load_failure(config, results_dir: str | Path) -> Optional[RunRecord]:
    """The record of the last failed attempt of ``config`` in ``results_dir``, if any."""
    return read_record_file(record_path(config.run_id, results_dir, failed=True))


def load_records(results_dir: str | Path) -> list[RunRecord]:
    """All finished records in ``<results_dir>/runs/``, sorted by run id (none if it does not exist);
    damaged ones are reported (:class:`DamagedRecordWarning`) and left out."""
    records = []
    for path in sorted(paths.runs_dir(results_dir).glob("*.json")):
        if path.name.endswith(".failed.json") or DAMAGED_INFIX in path.name:
            continue
        record, problem = inspect_record_file(path)
        if problem is not None:
            _warn_damaged(path, problem)
        elif record is not None:
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
