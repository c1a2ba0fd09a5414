"""Where things live: the repository, shipped hierarchies, user data and generated results.

Every path in the package comes from here, so that notebooks (whose working directory is
``notebooks/`` under papermill and nbval) and the command line agree on where files are.

A results folder holds ``runs/`` (one record per run), ``checkpoints/``, ``artifacts/``,
``figures/``, ``tables/`` and ``references/`` (:data:`RESULT_FOLDERS`). Which results folder a
run writes to is the caller's choice, passed down as a path (``context.results_dir`` of a
:class:`~kesl_utils.context.RunContext`): each profile has its own default
(:func:`default_results_dir`: ``results/`` for the committed quick run, ``build/results-smoke/``,
``results-paper/``), and nothing here reads the environment. Reading a path creates nothing;
:func:`check_writable` (called by :meth:`RunContext.prepare`) creates folders and proves they can be
written.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from . import profiles

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Whether the package runs from a checkout of the repository (``make``, the notebooks) rather than
#: from an installed wheel, whose parent folder is ``site-packages``: only a checkout keeps results
#: and data beside the code; an installation never writes inside itself.
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "notebooks").is_dir()
#: Where an installed package (not a checkout) keeps results by default: under the working directory.
INSTALLED_RESULTS = "kesl-results"


def base_dir() -> Path:
    """What relative paths are relative to: the repository root in a checkout, else the working directory."""
    return PROJECT_ROOT if IN_CHECKOUT else Path.cwd()

#: The sub-folders of a results folder.
RESULT_FOLDERS = ("runs", "checkpoints", "artifacts", "figures", "tables", "references")


def hierarchies_dir() -> Path:
    """``data/hierarchies/``: the plain-text class hierarchies shipped with the project."""
    return PROJECT_ROOT / "data" / "hierarchies"


def raw_data_dir() -> Path:
    """``data/raw/``: the default ``DATA_ROOT`` for user-downloaded datasets (git-ignored), under
    :func:`base_dir` (the repository, or the working directory of an installed package)."""
    return base_dir() / "data" / "raw"


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """A data root as given by a user or a notebook parameter, made absolute.

    Relative paths are taken relative to the repository root (not the working directory),
    so ``DATA_ROOT = "data/raw"`` means the same folder from a notebook and from a shell; an
    installed package takes them relative to the working directory.
    """
    return raw_data_dir() if data_root is None else in_repository(data_root)


def in_repository(path: str | os.PathLike) -> Path:
    """``path`` made absolute, a relative path being taken relative to :func:`base_dir` (the
    repository root in a checkout, the working directory for an installed package)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else base_dir() / path


def default_results_dir(profile: str) -> Path:
    """The results folder a profile's entry names (:attr:`kesl_utils.profiles.Profile.results`), absolute.

    ``"custom"`` (a Config made by hand) has one too. No default profile: the argument is required.
    An installed package (not a checkout) uses ``./kesl-results/<profile>`` under the working
    directory instead: never a folder inside the installation.
    """
    folder = profiles.results_folder(profile)
    return in_repository(folder) if IN_CHECKOUT else Path.cwd() / INSTALLED_RESULTS / profile


def _inside(results_dir: str | os.PathLike, name: str) -> Path:
    # Absolute only: a profile name passed where a folder belongs ("quick") must fail, not write to ./quick.
    if not isinstance(results_dir, (str, os.PathLike)) or not Path(results_dir).is_absolute():
        raise ValueError(f"a results folder must be an absolute path (e.g. context.results_dir, or "
                         f"paths.default_results_dir(profile)), got {results_dir!r}")
    return Path(results_dir) / name


def runs_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/runs/``: one JSON run record per finished run. Creates nothing."""
    return _inside(results_dir, "runs")


def checkpoints_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/checkpoints/``: per-run checkpoint folders, removed once the record is written."""
    return _inside(results_dir, "checkpoints")


def artifacts_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/artifacts/`` (git-ignored): pretrained weights and test-set outputs of runs."""
    return _inside(results_dir, "artifacts")


def figures_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/figures/``."""
    return _inside(results_dir, "figures")


def tables_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/tables/``."""
    return _inside(results_dir, "tables")


def references_dir(results_dir: str | os.PathLike) -> Path:
    """``<results>/references/``: the no-learning reference records (nearest class mean)."""
    return _inside(results_dir, "references")


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
                              "make it writable, or choose another results folder ($KESL_RESULTS_DIR, or "
                              "RunContext(results_dir=...))") from None
    return folder


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
