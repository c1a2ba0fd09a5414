"""Sphinx configuration of the series as a website (``make book``).

The site is built from the repository root as Sphinx's source folder, with this folder as the
configuration folder::

    sphinx-build -b html -c docs . build/book/html

so that every page is the committed file itself, read in place: ``README.md`` (the landing page,
also written as ``index.html``), ``notebooks/NN_*.ipynb`` with their committed outputs (MyST-NB,
execution off: nothing is re-run), ``results/README.md`` and ``results/tables/*.md``, and the API
reference (``docs/api.md``: autosummary over every module of ``kesl_utils``, pages generated into
the git-ignored ``docs/api/``). A relative link in the README (``notebooks/03_cub_comparison.ipynb``,
``results/README.md``) therefore points at a page of the site without any rewriting.

Everything is offline: no intersphinx, no MathJax or widget JavaScript from a CDN, no web fonts;
tests/test_book.py checks that no built page loads a script or stylesheet over the network.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the API reference documents this checkout's kesl_utils

import kesl_utils  # noqa: E402
from kesl_utils import published  # noqa: E402

project = "kesl"
author = "the kesl authors"
copyright = "the kesl authors"  # noqa: A001 - Sphinx's name
release = version = kesl_utils.__version__

extensions = [
    "myst_nb",  # Markdown (MyST) and notebooks; it loads myst_parser itself
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the library's docstrings use Google-style Args:/Returns:/Raises:
]

# -- what is a page ------------------------------------------------------------------------------
root_doc = "README"
#: The source folder is the repository: only these files are pages (notebooks in order 00–10).
include_patterns = [
    "README.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "results/README.md",
    "results/tables/*.md",
    "docs/*.md",
    "docs/api/*.rst",
]
#: Folders never walked (Sphinx walks the tree before it applies include_patterns, following
#: links: .venv alone is thousands of folders). Every top-level entry but the four that hold pages.
_PAGE_FOLDERS = {"README.md", "notebooks", "results", "docs"}
exclude_patterns = sorted(name for name in os.listdir(ROOT) if name not in _PAGE_FOLDERS) + [
    "results/runs", "results/notebooks", "results/checkpoints", "results/artifacts",
    "**/.ipynb_checkpoints",
]


def _table_pages() -> list[str]:
    """results/tables/*.md in the paper's order (the table registry's), then any other table."""
    from kesl_utils.table_specs import TABLES

    present = {p.stem for p in (ROOT / "results" / "tables").glob("*.md")}
    ordered = [name for name in TABLES if name in present] + sorted(present - set(TABLES))
    return [f"results/tables/{name}" for name in ordered]


#: The root page's navigation, added to README.md when Sphinx reads it (the README on GitHub
#: stays as it is). The notebooks come in file-name order, 00 to 10; the tables in the paper's.
ROOT_TOCTREE = """

```{toctree}
:hidden:
:caption: The notebooks
:glob:

notebooks/[0-9][0-9]_*
```

```{toctree}
:hidden:
:caption: Results

results/README
%s
```

```{toctree}
:hidden:
:caption: Library

docs/api
```
""" % "\n".join(_table_pages())


def _add_navigation(app, docname: str, source: list[str]) -> None:
    if docname == root_doc:
        source[0] += ROOT_TOCTREE


def _drop_values_bundles(app, docname: str, source: list[str]) -> None:
    """A committed notebook's values (:data:`kesl_utils.published.MIME`, the numbers ``tests/test_published.py``
    rebuilds) are for the tests, not for a reader, who sees the same table as markdown beside them: leave them out of
    the page rather than have myst-nb warn that it cannot render them."""
    if Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    notebook = json.loads(source[0])
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(published.MIME, None)
    source[0] = json.dumps(notebook)


def _write_index(app, exception) -> None:
    """The landing page also as ``index.html`` (what a web server and GitHub Pages serve for ``/``).

    A copy, not a redirect: the two files sit in the same folder, so every relative link works.
    """
    if exception is None and app.builder.format == "html":
        out = Path(app.outdir)
        shutil.copyfile(out / f"{root_doc}.html", out / "index.html")
        # A site published from a branch would go through Jekyll, which drops _static/ and _images/.
        (out / ".nojekyll").touch()


def setup(app):
    app.connect("source-read", _add_navigation)
    app.connect("source-read", _drop_values_bundles)
    app.connect("build-finished", _write_index)


# -- notebooks: shown as committed, never executed --------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
# The notebooks display their tables as Markdown (display(Markdown(...))): GitHub-flavoured, so
# that pipe tables render as tables (CommonMark has none).
nb_render_markdown_format = "gfm"
nb_ipywidgets_js = {}  # would load require.js and the widget manager from a CDN
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 4  # README links such as #real-datasets-the-paper-profile
# The tables of results/tables/*.md start at "###" (they are sections of results/README.md too).
suppress_warnings = ["myst.header"]

# -- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
# Each object on the page of the module that defines it, once: a package's __all__ (kesl_utils.data
# re-exports its loaders) would document the same class twice, under two names.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "kesl — knowledge-embedded soft labels, reproduced"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
# No intersphinx (offline), and no math renderer from a CDN: the pages have no math markup; if
# one ever does, MathJax must be served from _static/ (mathjax_path), which the offline test enforces.
