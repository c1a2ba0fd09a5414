"""WordNet 3.0 through nltk, provisioned without surprises.

The WordNet subnets of Mini-ImageNet and Small-ImageNet (:mod:`kesl_utils.hierarchy`) are
built from WordNet 3.0, the version whose noun offsets ImageNet's wnids use
(``n01532829`` = noun synset at offset 1532829, *house finch*). Nothing at training time
needs WordNet — the subnets are shipped as JSON — but regenerating them and testing them
does.

:func:`ensure_wordnet` makes nltk's WordNet reader usable, trying in order:

1. nltk already finds ``corpora/wordnet`` on ``nltk.data.path`` (which always includes the
   project-local, git-ignored ``<repo>/.nltk_data``);
2. Debian's ``wordnet-base`` package (the Princeton WordNet 3.0 database files, found with
   ``dpkg -L wordnet-base``) is copied into ``<repo>/.nltk_data/corpora/wordnet/`` together
   with the ``lexnames`` file nltk expects and Debian does not ship;
3. ``nltk.download('wordnet')`` into ``<repo>/.nltk_data`` (needs the network).

The local copy comes before the download so that an offline machine never waits on the
network and so that tests never download anything. Once provisioned, route 1 answers and a
second call costs a few file-system look-ups.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

from .paths import PROJECT_ROOT

NLTK_DATA_DIR = PROJECT_ROOT / ".nltk_data"
"""Project-local nltk data folder (git-ignored); always on ``nltk.data.path``."""

WORDNET_DIR = NLTK_DATA_DIR / "corpora" / "wordnet"

#: Files nltk's ``WordNetCorpusReader`` opens; ``lexnames`` is written by us.
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

INSTALL_HINT = ("install it with `apt-get install wordnet-base wordnet-sense-index` "
                "or `python -c \"import nltk; nltk.download('wordnet')\"`")

_WNID_RE = re.compile(r"^([nvars])(\d{8})$")


class WordNetUnavailable(RuntimeError):
    """WordNet 3.0 could not be found, copied or downloaded."""


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


def _nltk():
    import nltk

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


def _copy_database(source: Path, target: Path) -> None:
    """Copy a WordNet database folder into nltk's layout, all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".wordnet."))
    try:
        for item in sorted(source.iterdir()):
            if item.is_file():
                shutil.copyfile(item, staging / item.name)
        if not (staging / "lexnames").exists():
            (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        (staging / SOURCE_MARKER).write_text(f"Debian wordnet-base copied from {source}\n",
                                             encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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


def ensure_wordnet(verbose: bool = False, *, allow_download: bool = True) -> str:
    """Make nltk's WordNet 3.0 usable and return a one-line description of where it is.

    Args:
        verbose: print each route tried.
        allow_download: whether the last route, ``nltk.download('wordnet')``, may run.

    Returns:
        e.g. ``"nltk data at /…/.nltk_data/corpora/wordnet (WordNet 3.0); Debian wordnet-base
        copied from /usr/share/wordnet"``.

    Raises:
        WordNetUnavailable: when no route works; the message says how to install WordNet.
    """
    say = print if verbose else (lambda *_: None)
    _register_data_dir()
    if _is_database(WORDNET_DIR):
        _check_version(WORDNET_DIR)
        say(f"WordNet: found {WORDNET_DIR}")
        return _describe(WORDNET_DIR)
    found = _find_nltk_wordnet()
    if found is not None and (found.suffix == ".zip" or (found / "data.noun").is_file()):
        _check_version(found)
        say(f"WordNet: nltk finds {found}")
        return _describe(found)

    tried = []
    for directory in debian_wordnet_dirs():
        version = _version_of(directory)
        if version not in (None, "3.0"):
            tried.append(f"{directory} holds WordNet {version}, not 3.0")
            continue
        say(f"WordNet: copying {directory} to {WORDNET_DIR}")
        _copy_database(directory, WORDNET_DIR)
        return _describe(WORDNET_DIR)
    tried.append("no Debian wordnet-base database found (dpkg -L wordnet-base)")

    if allow_download:
        say(f"WordNet: trying nltk.download('wordnet', download_dir={NLTK_DATA_DIR})")
        nltk = _nltk()
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(15)
        try:
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                ok = nltk.download("wordnet", download_dir=str(NLTK_DATA_DIR), quiet=True,
                                   raise_on_error=False, print_error_to=sink)
        except Exception as error:  # noqa: BLE001 - any failure means "try the next route"
            ok = False
            sink.write(repr(error))
        finally:
            socket.setdefaulttimeout(previous)
        found = _find_nltk_wordnet()
        if ok and found is not None:
            _check_version(found)
            return f"downloaded to {found}"
        tried.append("nltk.download('wordnet') failed"
                     + (f": {sink.getvalue().strip().splitlines()[-1]}"
                        if sink.getvalue().strip() else ""))
    else:
        tried.append("download not allowed")
    raise WordNetUnavailable("WordNet 3.0 is not available (" + "; ".join(tried) + "); "
                             + INSTALL_HINT)


def wordnet_available() -> bool:
    """Whether :func:`ensure_wordnet` succeeds without downloading (for skipping tests)."""
    try:
        ensure_wordnet(allow_download=False)
    except WordNetUnavailable:
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

    root = (FileSystemPathPointer(str(WORDNET_DIR)) if _is_database(WORDNET_DIR)
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


def main() -> None:
    print(ensure_wordnet(verbose=True))


if __name__ == "__main__":
    main()
