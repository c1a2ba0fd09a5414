"""Where and how runs execute: the :class:`RunContext`, built once at an entry point and passed down.

A :class:`~kesl_utils.config.Config` says *what* is measured; a :class:`RunContext` says *where*
(results folder, data root, device) and *how* (executor, progress display). Nothing in it can
change a result, so it is not part of a run's id.

The entry points build it: the command line (:mod:`kesl_utils.__main__`), ``make reproduce``
(:mod:`kesl_utils.reproduce`) and, in every notebook, the cell after the ``parameters`` cell.
They are the only places that read environment variables, through the one function
:func:`from_environment`; the library below them reads the context it is given and never reads
or writes ``os.environ``.

The environment variables (the README has the same table):

=====================  ===============================================================  ====================
variable               meaning                                                          default
=====================  ===============================================================  ====================
``KESL_PROFILE``       the profile (``make test`` runs the notebooks under nbval with    the ``PROFILE``
                       ``smoke``; nbval cannot inject parameters)                       parameter
``KESL_RESULTS_DIR``   one results folder for every profile (the tests use temporary    the profile's folder
                       folders); relative paths are taken from the repository root
``KESL_EXECUTOR``      ``serial`` or ``ray`` (``make reproduce EXECUTOR=ray``)          ``serial``
``KESL_PROGRESS``      ``0``: no progress bars and no widgets (stored notebook          ``1``
                       outputs carry neither)
``KESL_PROGRESS_LOG``  a file to which ``run_all`` appends one JSON line per run start  none
                       and end (``make reproduce`` sets it for its kernels and prints
                       run k of N, elapsed and ETA from it)
``RAY_ADDRESS``        the Ray cluster of ``executor="ray"`` (Ray's own variable)       a local cluster
=====================  ===============================================================  ====================

Torch-free: the command line builds a context before it decides whether it needs torch.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from . import names, paths, profiles

__all__ = ["RunContext", "from_environment", "ENVIRONMENT_VARIABLES", "log_run_event", "usable_cpu_count",
           "resolve_device", "available_devices"]

#: The variables :func:`from_environment` reads, with what each sets.
ENVIRONMENT_VARIABLES = {
    "KESL_PROFILE": "profile",
    "KESL_RESULTS_DIR": "results_dir",
    "KESL_EXECUTOR": "executor",
    "KESL_PROGRESS": "progress (and interactive)",
    "KESL_PROGRESS_LOG": "progress_log",
    "RAY_ADDRESS": "ray_address",
}


@dataclass(frozen=True)
class RunContext:
    """Where and how runs execute (nothing here changes a result).

    results_dir: the results folder (absolute; a relative path is taken from the repository root).
    data_root: where the real datasets lie (absolute; default ``data/raw``).
    device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … or ``None``: CUDA if available, else CPU
        (:func:`resolve_device`).
    executor: how ``run_all`` executes its runs, ``"serial"`` or ``"ray"`` (:mod:`kesl_utils.executors`).
    progress: progress bars (the batch's run bar; the epoch bars when ``verbose``).
    verbose: per-epoch bars and lines of each run (the command line's ``train``; off in batches).
    interactive: Jupyter widgets (the soft-label explorer's sliders) may be shown.
    progress_log: a file to which ``run_all`` appends one JSON line when a run starts and when it
        ends (:func:`log_run_event`); ``make reproduce`` tails it. ``None``: no log.
    ray_address: the Ray cluster to join (``None``: start a local one).
    profile: the profile this context serves (the notebooks' ``PROFILE``); informational, since
        every Config carries its own profile.
    """

    results_dir: Path
    data_root: Path = dataclasses.field(default_factory=paths.raw_data_dir)
    device: Optional[str] = None
    executor: str = "serial"
    progress: bool = True
    verbose: bool = False
    interactive: bool = True
    progress_log: Optional[Path] = None
    ray_address: Optional[str] = None
    profile: str = profiles.CUSTOM

    def __post_init__(self):
        if self.results_dir is None:
            raise ValueError("RunContext.results_dir is required (RunContext.for_profile(profile) picks the "
                             "profile's folder)")
        object.__setattr__(self, "results_dir", paths.in_repository(self.results_dir).resolve())
        object.__setattr__(self, "data_root", paths.resolve_data_root(self.data_root))
        if self.progress_log is not None:
            object.__setattr__(self, "progress_log", paths.in_repository(self.progress_log))
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise ValueError(f"RunContext.device must be a device name such as 'cpu' or 'cuda:0', or None, "
                             f"got {self.device!r}")
        names.check_choice("RunContext.executor", self.executor, names.EXECUTORS)
        names.check_choice("RunContext.profile", self.profile, profiles.config_profiles())
        for flag in ("progress", "verbose", "interactive"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"RunContext.{flag} must be True or False, got {getattr(self, flag)!r}")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def for_profile(cls, profile: str, **overrides) -> "RunContext":
        """The context of ``profile`` inside the repository: its own results folder
        (:attr:`kesl_utils.profiles.Profile.results`), ``data/raw``, and the defaults above;
        ``overrides`` set any field."""
        fields = dict(results_dir=paths.default_results_dir(profile), profile=profile)
        fields.update(overrides)
        return cls(**fields)

    def replace(self, **changes) -> "RunContext":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    # -- the folders of the results folder: reading them creates nothing ---------------------
    @property
    def runs_dir(self) -> Path:
        return paths.runs_dir(self.results_dir)

    @property
    def checkpoints_dir(self) -> Path:
        return paths.checkpoints_dir(self.results_dir)

    @property
    def artifacts_dir(self) -> Path:
        return paths.artifacts_dir(self.results_dir)

    @property
    def figures_dir(self) -> Path:
        return paths.figures_dir(self.results_dir)

    @property
    def tables_dir(self) -> Path:
        return paths.tables_dir(self.results_dir)

    @property
    def references_dir(self) -> Path:
        return paths.references_dir(self.results_dir)

    def prepare(self) -> "RunContext":
        """Create the results folder and its sub-folders and prove each can be written, in
        milliseconds; a folder that is a file or read-only fails at once (``PermissionError``),
        naming it. Returns self. Every entry point that writes calls it before anything else
        touches the folder (the command line's ``train`` and ``table``, ``make reproduce``, ``run_all``)."""
        paths.check_writable(self.results_dir)
        for name in paths.RESULT_FOLDERS:
            paths.check_writable(self.results_dir / name)
        if self.progress_log is not None:
            paths.check_writable(self.progress_log.parent)
        return self


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"${name}={text!r}: expected 1 or 0")


def from_environment(profile: Optional[str] = None, *, data_root=None, device: Optional[str] = None,
                     executor: Optional[str] = None, progress: Optional[bool] = None, verbose: bool = False,
                     precedence: str = "environment", environ: Optional[Mapping[str, str]] = None) -> RunContext:
    """The :class:`RunContext` of an entry point: its arguments combined with the environment
    variables of :data:`ENVIRONMENT_VARIABLES` (the module docstring says what each means).

    This is the one function of the package that reads the environment. Call it at an entry point
    only: the command line, ``reproduce``, a notebook's cell after ``parameters``.

    precedence: who wins where an argument and a variable both say something.
        ``"environment"`` (a notebook): a variable that is set overrides the argument, so that
        ``KESL_PROFILE=smoke pytest --nbval-lax`` runs a notebook whose parameters cell says
        ``PROFILE = "quick"`` in the smoke profile.
        ``"arguments"`` (a command line): an argument that is not ``None`` overrides the variable,
        as a flag on the command line overrides the shell's settings.
    Without either, ``profile`` defaults to ``"quick"``, the results folder to the profile's, the
    executor to ``"serial"`` and ``progress`` to on; ``interactive`` follows ``progress``.
    environ: the variables to read (default: ``os.environ``).
    """
    names.check_choice("precedence", precedence, ("environment", "arguments"))
    env = os.environ if environ is None else environ

    def pick(variable: str, argument, parse=lambda text: text):
        text = env.get(variable)
        found = parse(text) if text not in (None, "") else None
        if precedence == "environment":
            return found if found is not None else argument
        return argument if argument is not None else found

    chosen_profile = pick("KESL_PROFILE", profile) or "quick"
    if chosen_profile not in profiles.PROFILES:
        raise ValueError(f"profile {chosen_profile!r} is not one of {names.quoted(profiles.PROFILES)} "
                         "(set PROFILE in the notebook's parameters cell, --profile, or $KESL_PROFILE)")
    shown = pick("KESL_PROGRESS", progress, lambda text: _flag("KESL_PROGRESS", text))
    shown = True if shown is None else shown
    results = env.get("KESL_RESULTS_DIR") or None
    log = env.get("KESL_PROGRESS_LOG") or None
    return RunContext.for_profile(
        chosen_profile,
        **({"results_dir": results} if results else {}),
        data_root=data_root,
        device=device,
        executor=pick("KESL_EXECUTOR", executor) or "serial",
        progress=shown,
        verbose=bool(verbose) and shown,
        interactive=shown,
        progress_log=Path(log) if log else None,
        ray_address=env.get("RAY_ADDRESS") or None,
    )


# -- helpers of the layers below the entry points --------------------------------------------------
def log_run_event(context: RunContext, event: str, **fields) -> None:
    """Append ``{"event": event, "time": ..., **fields}`` as one JSON line to ``context.progress_log``
    (nothing without one). The executors call it when a run starts (``"start"``) and ends
    (``"finish"``), with ``run_id``, ``index`` (1-based) and ``total`` of the batch, and on ``finish``
    ``status``, ``cached`` and ``seconds``."""
    if context.progress_log is None:
        return
    line = json.dumps({"event": event, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), **fields}, sort_keys=False)
    with open(context.progress_log, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def usable_cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask on Linux), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_devices() -> list[str]:
    """The devices this machine can train on: ``cpu``, then ``cuda:0`` … and ``mps`` where present."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: Optional[str] = None):
    """``device`` as a ``torch.device``; ``None`` means CUDA if available, else CPU (the one default).

    A name torch does not know (``"foo"``) or a device this machine does not have (``"cuda"``
    without a GPU, ``"cuda:3"`` with two) is a ``ValueError`` naming the devices that are
    available, raised in milliseconds, before any set-up."""
    import torch  # this module stays torch-free for the command line's fast start

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = available_devices()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r} is not a device name; this machine has: {', '.join(available)}") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            reason = ("this torch build has no CUDA" if torch.version.cuda is None
                      else "no CUDA GPU or driver is visible (torch.cuda.is_available() is False)")
            raise ValueError(f"device {device!r} is not available: {reason}; this machine has: {', '.join(available)}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} is not available: this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s): {', '.join(available)}")
        return resolved
    if f"{resolved.type}" in available or str(resolved) in available:
        return resolved
    raise ValueError(f"device {device!r} is not available; this machine has: {', '.join(available)}")
