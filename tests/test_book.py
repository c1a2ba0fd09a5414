"""The series as a website (``make book``): built once, offline, from the committed notebooks.

Checks that every internal link of every built page resolves (a file, and the anchor in it), that
no page loads anything from the network, that the notebooks are in order, and, in headless
Chromium, that the landing page and a results notebook page show their title, a table and (the
notebook) a figure. Screenshots go to ``build/book/screenshots/``.
"""
import html.parser
import http.server
import importlib.util
import re
import json
import shutil
import struct
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from kesl_utils import paths

REPO = paths.PROJECT_ROOT
BOOK = REPO / "build" / "book"
HTML = BOOK / "html"
SCREENSHOTS = BOOK / "screenshots"
#: What `make book` runs (tests/test_book.py checks the Makefile says the same).
SPHINX_ARGS = ["-b", "html", "-c", "docs", "-d", "build/book/doctrees", ".", "build/book/html"]
DOCS_MODULES = ("sphinx", "myst_nb", "sphinx_book_theme")
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def book() -> dict:
    """Build the site from scratch: no page left from an earlier build, every source re-read
    (``-E``) so that every warning is seen."""
    missing = [m for m in DOCS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)} missing): "
                    "pip install -e '.[docs]' (make env installs it)")
    shutil.rmtree(HTML, ignore_errors=True)
    warnings = BOOK / "warnings.txt"
    BOOK.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "sphinx", *SPHINX_ARGS, "-E", "-q", "-w", str(warnings)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"warnings": warnings.read_text(encoding="utf-8").splitlines()}


class _Page(html.parser.HTMLParser):
    """The links (tag, attribute, value), element ids and title of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.title = ""
        self.headers: list[str] = []  # the text of every <th>
        self._in_title = False
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))
        self._in_title = tag == "title"
        if tag == "th":
            self._in_th = True
            self.headers.append("")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_th:
            self.headers[-1] += data.strip()


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def html_pages() -> list[Path]:
    """The pages of the site (not the theme's template fragments that Sphinx copies to _static/)."""
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.relative_to(HTML).parts)


#: docutils marks bad reST in a docstring as "problematic", linked to a system message that Sphinx
#: drops from the page; the build reports it as a docstring warning (see the test above).
PROBLEMATIC = re.compile(r'<a href="#(id\d+)"><span class="problematic"')


# ---------------------------------------------------------------- the build
def test_makefile_builds_the_same_site():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nbook:", 1)[1].split("\n\n", 1)[0]
    assert "-m sphinx " + " ".join(SPHINX_ARGS) in recipe


def test_the_site_has_every_page_and_no_warning_but_the_docstrings(book):
    expected = (["index", "README", "results/README", "docs/api", "docs/api/kesl_utils.losses"]
                + [f"notebooks/{n}" for n in NOTEBOOKS]
                + [f"results/tables/{p.stem}" for p in (REPO / "results" / "tables").glob("*.md")])
    missing = [name for name in expected if not (HTML / f"{name}.html").is_file()]
    assert not missing
    # Warnings in the library's docstrings (reST markup) are the modules' business; anything else
    # (a toctree entry, a cross-reference, a notebook) is the site's and fails here.
    site_warnings = [w for w in book["warnings"] if w.strip() and "docstring of " not in w
                     and not w.startswith((" ", "\t", "=", "Text in column"))]
    assert not site_warnings, "\n".join(site_warnings)


def _outputs(stem: str) -> list[dict]:
    nb = json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    return [o for cell in nb["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]


def shown_notebook() -> tuple[str, str]:
    """The notebook whose page the tests look at: the first results notebook (03 onwards) committed with
    a figure and a table among its outputs, else the latest earlier one that has both (notebooks 03-10
    are committed without outputs until the complete quick run is published). Its stem and title."""
    def shows(stem):
        kinds = {key for o in _outputs(stem) for key in o.get("data", {})}
        return "image/png" in kinds and bool(kinds & {"text/html", "text/markdown"})

    order = [n for n in NOTEBOOKS if n[:2] >= "03"] + [n for n in reversed(NOTEBOOKS) if n[:2] < "03"]
    stem = next(n for n in order if shows(n))
    nb = json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    heading = next(line for line in "".join(nb["cells"][0]["source"]).splitlines() if line.startswith("# "))
    return stem, heading[2:].strip()


def test_notebook_pages_are_rendered_without_executing(book):
    """The committed outputs appear (a table displayed as HTML or Markdown, not pipes as text, and every
    figure), and no kernel ran."""
    stem, _ = shown_notebook()
    page = parse(HTML / "notebooks" / f"{stem}.html")
    assert page.tags.get("table", 0) >= 1 and page.headers
    figures = sum("image/png" in o.get("data", {}) for o in _outputs(stem))
    assert page.tags.get("img", 0) >= figures >= 1
    assert not (BOOK / ".jupyter_cache").exists()


def test_notebooks_in_order_in_the_navigation(book):
    page = parse(HTML / "README.html")
    order = []
    for tag, attribute, value in page.links:
        match = re.fullmatch(r"notebooks/([0-9][0-9]_[^/#]+)\.html", value)
        if tag == "a" and match and match.group(1) not in order:
            order.append(match.group(1))
    assert order == NOTEBOOKS  # the sidebar comes first in the page: 00 to 10


# ---------------------------------------------------------------- links
def test_every_internal_link_resolves(book):
    pages = html_pages()
    ids = {}
    broken = []
    for page_path in pages:
        page = parse(page_path)
        ids[page_path.resolve()] = page.ids
    for page_path in pages:
        problematic = {f"#{m}" for m in PROBLEMATIC.findall(page_path.read_text(encoding="utf-8"))}
        for tag, attribute, value in parse(page_path).links:
            parts = urlsplit(value)
            if parts.scheme or value.startswith("//") or value in problematic:
                continue  # external (checked below: none of them loads anything)
            target = page_path if not parts.path else (page_path.parent / unquote(parts.path))
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(HTML)}: <{tag} {attribute}={value!r}>"
            if not target.is_file():
                broken.append(f"{where}: no file {target.relative_to(HTML) if target.is_relative_to(HTML) else target}")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in ids.get(target.resolve(), set()):
                    broken.append(f"{where}: no id {parts.fragment!r} in {target.relative_to(HTML)}")
    assert len(pages) > 30
    assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken[:40])


def test_readme_links_point_at_pages_of_the_site(book):
    links = {value for tag, _, value in parse(HTML / "README.html").links if tag == "a"}
    assert "notebooks/03_cub_comparison.html" in links
    assert "results/README.html" in links
    assert "#real-datasets-the-paper-profile" in links
    results = {value for tag, _, value in parse(HTML / "results" / "README.html").links if tag == "a"}
    assert "../notebooks/00_environment.html" in results  # the committed copy, not the git-ignored one
    assert not [v for v in results if v.startswith("notebooks/")]


def test_nothing_is_loaded_from_the_network(book):
    remote = []
    for page_path in html_pages():
        for tag, attribute, value in parse(page_path).links:
            external = urlsplit(value).scheme in ("http", "https") or value.startswith("//")
            if external and tag != "a":  # a link a reader may follow is fine; a resource is not
                remote.append(f"{page_path.relative_to(HTML)}: <{tag} {attribute}={value!r}>")
    for sheet in HTML.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", sheet.read_text(encoding="utf-8",
                                                                                         errors="replace")):
            remote.append(f"{sheet.relative_to(HTML)}: url({url})")
    assert not remote, "\n".join(remote[:20])


# ---------------------------------------------------------------- in a browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed, so the browser test cannot run: install Debian's "
                "package with `apt-get install -y chromium` (as root; `make test` does it when it can)")


@pytest.fixture(scope="module")
def server(book):
    """The built site over HTTP on 127.0.0.1 (what GitHub Pages serves, locally)."""
    handler = partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run that can reach 127.0.0.1 and nothing else."""
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                           *args], capture_output=True, text=True, timeout=120)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


SHOWN, SHOWN_TITLE = shown_notebook()


@pytest.mark.parametrize("page, shot, height, title, headers, figure", [
    ("index.html", "landing.png", 2000, "kesl — knowledge-embedded soft labels, reproduced",
     ["notebook", "paper", "what it shows"], False),
    # Tall enough to show the notebook's first table and figure.
    (f"notebooks/{SHOWN}.html", f"notebook_{SHOWN}.png", 4200, SHOWN_TITLE, [], True),
])
def test_pages_in_headless_chromium(server, tmp_path, page, shot, height, title, headers, figure):
    browser = chromium()
    dom = headless(browser, tmp_path / "dom", "--dump-dom", f"{server}/{page}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Page()
    parsed.feed(dom.stdout)
    assert parsed.title.startswith(title), parsed.title
    assert parsed.tags.get("table", 0) >= 1, "no table on the page"
    assert set(headers) <= set(parsed.headers), parsed.headers
    if figure:
        images = [value for tag, attribute, value in parsed.links if tag == "img"]
        assert images, "no figure on the page"
        for src in images:  # each figure is a file the server has
            assert (HTML / Path(page).parent / unquote(urlsplit(src).path)).is_file(), src
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / shot
    target.unlink(missing_ok=True)
    done = headless(browser, tmp_path / "shot", f"--window-size=1280,{height}", f"--screenshot={target}",
                    f"{server}/{page}")
    assert done.returncode == 0 and target.is_file(), done.stderr[-2000:]
    assert png_size(target) == (1280, height)
    assert target.stat().st_size > 50_000  # a rendered page, not a blank one
    print(f"\nscreenshot: {target.relative_to(REPO)}")
