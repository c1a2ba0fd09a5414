"""Where things live: the repository, shipped hierarchies, user data and generated results.

Every path in the package comes from here, so that notebooks (whose working directory is
``notebooks/`` under papermill and nbval) and the command line agree on where files are.
The results folder is ``results/`` unless the environment variable ``KESL_RESULTS_DIR``
names another one (the tests use temporary folders).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

PROFILES = ("smoke", "quick", "paper")


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


def results_dir() -> Path:
    """The results folder: ``$KESL_RESULTS_DIR`` if set, else ``results/`` in the repository."""
    override = os.environ.get("KESL_RESULTS_DIR")
    return Path(override).expanduser().resolve() if override else PROJECT_ROOT / "results"


def _subdir(name: str) -> Path:
    path = results_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """``<results>/runs/``: one JSON run record per finished run."""
    return _subdir("runs")


def checkpoints_dir() -> Path:
    """``<results>/checkpoints/``: per-run checkpoint folders, removed once the record is written."""
    return _subdir("checkpoints")


def figures_dir() -> Path:
    """``<results>/figures/``."""
    return _subdir("figures")


def tables_dir() -> Path:
    """``<results>/tables/``."""
    return _subdir("tables")


def profile_from_env(profile: str) -> str:
    """The profile a notebook runs in: ``$KESL_PROFILE`` if set, else the ``parameters`` cell's value.

    nbval injects no parameters, so ``make test`` selects the smoke profile through the
    environment; papermill sets ``PROFILE`` directly.
    """
    chosen = os.environ.get("KESL_PROFILE") or profile
    if chosen not in PROFILES:
        raise ValueError(f"profile {chosen!r} is not one of {', '.join(PROFILES)} "
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
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
