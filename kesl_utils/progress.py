"""Progress bars that render in notebooks and terminals alike.

``tqdm.auto`` picks the notebook widget when it runs in a kernel, but without ipywidgets (not a
dependency of this project) it warns on every import and falls back anyway; this picks the widget
only where it can work, and the plain text bar everywhere else (papermill and nbval capture it).
"""
from __future__ import annotations

import importlib.util


def tqdm(*args, **kwargs):
    """A ``tqdm`` progress bar: the notebook widget when ipywidgets is installed, else text."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm as bar
    else:
        from tqdm.std import tqdm as bar
    return bar(*args, **kwargs)
