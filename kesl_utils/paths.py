"""Where things live: the repository, shipped hierarchies, user data and generated results.

Every path in the package comes from here, so that notebooks (whose working directory is
``notebooks/`` under papermill and nbval) and the command line agree on where files are.
Each profile writes its results to its own folder (:data:`PROFILE_RESULTS`: ``results/`` for the
committed quick run, ``build/results-smoke/``, ``results-paper/``), unless the environment variable
``KESL_RESULTS_DIR`` names one folder for all (the tests use temporary folders).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from . import names

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Where each profile's results go unless ``$KESL_RESULTS_DIR`` says otherwise (relative to the
#: repository). ``quick`` is the committed run; ``smoke`` is what ``make test`` exercises and never
#: overwrites it; ``paper`` results (days of GPU time) get their own folder that ``make clean``
#: leaves alone; ``custom`` is a Config made by hand.
PROFILE_RESULTS = {
    "quick": "results",
    "smoke": "build/results-smoke",
    "paper": "results-paper",
    "custom": "build/results-custom",
}


def hierarchies_dir() -> Path:
    """``data/hierarchies/``: the plain-text class hierarchies shipped with the project."""
    return PROJECT_ROOT / "data" / "hierarchies"


def raw_data_dir() -> Path:
    """``data/raw/``: the default ``DATA_ROOT`` for user-downloaded datasets (git-ignored)."""
    return PROJECT_ROOT / "data" / "raw"


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """A data root as given by a user or a notebook parameter, made absolute.

    Relative paths are taken relative to the repository root (not the working directory),
    so ``DATA_ROOT = "data/raw"`` means the same folder from a notebook and from a shell.
    """
    if data_root is None:
        return raw_data_dir()
    path = Path(data_root).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def results_dir(profile: str = "quick") -> Path:
    """The results folder of ``profile``: ``$KESL_RESULTS_DIR`` if set, else :data:`PROFILE_RESULTS`.

    ``KESL_RESULTS_DIR`` serves every profile (the tests point it at a temporary folder).
    """
    override = os.environ.get("KESL_RESULTS_DIR")
    if override:
        return Path(override).expanduser().resolve()
    names.check_choice("profile", profile, PROFILE_RESULTS)
    return PROJECT_ROOT / PROFILE_RESULTS[profile]


def _subdir(profile: str, name: str) -> Path:
    path = results_dir(profile) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(profile: str = "quick") -> Path:
    """``<results>/runs/``: one JSON run record per finished run."""
    return _subdir(profile, "runs")


def checkpoints_dir(profile: str = "quick") -> Path:
    """``<results>/checkpoints/``: per-run checkpoint folders, removed once the record is written."""
    return _subdir(profile, "checkpoints")


def artifacts_dir(profile: str = "quick") -> Path:
    """``<results>/artifacts/`` (git-ignored): pretrained weights and test-set probabilities of runs."""
    return _subdir(profile, "artifacts")


def figures_dir(profile: str = "quick") -> Path:
    """``<results>/figures/``."""
    return _subdir(profile, "figures")


def tables_dir(profile: str = "quick") -> Path:
    """``<results>/tables/``."""
    return _subdir(profile, "tables")


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when it lies inside it (what notebooks print), else as is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def check_writable(folder: str | os.PathLike) -> Path:
    """``folder`` (created if missing) after proving a file can be written in it, in milliseconds.

    Called before training so that a read-only results folder fails at once, not after the run.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(f"cannot write in {folder} ({type(error).__name__}: {error.strerror or error}); "
                              "make it writable, or point $KESL_RESULTS_DIR at a writable folder") from None
    return folder


def profile_from_env(profile: str) -> str:
    """The profile a notebook runs in: ``$KESL_PROFILE`` if set, else the ``parameters`` cell's value.

    nbval injects no parameters, so ``make test`` selects the smoke profile through the
    environment; papermill sets ``PROFILE`` directly.
    """
    chosen = os.environ.get("KESL_PROFILE") or profile
    if chosen not in names.PROFILES:
        raise ValueError(f"profile {chosen!r} is not one of {', '.join(names.PROFILES)} "
                         "(set PROFILE in the notebook's parameters cell or $KESL_PROFILE)")
    return chosen


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, and are renamed
    over the target; an interrupted write leaves at most a stray ``*.tmp`` file, never a
    truncated target.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` with the same all-or-nothing guarantee as :func:`atomic_write_bytes`."""
    import torch  # this module stays torch-free for the command line's fast start

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
