"""Progress bars that render in terminals and JupyterLab.

:data:`tqdm` is a ``tqdm`` *class* (so ``tqdm.write`` works): the notebook widget when running in a
Jupyter kernel with ipywidgets installed, the plain text bar otherwise. Whether a bar is shown at
all is the caller's ``disable=`` argument, which the library sets from its
:class:`~kesl_utils.context.RunContext` (``context.progress``; ``make reproduce`` and ``make test``
build contexts without progress, so executed notebooks store neither stderr lines nor widget
state). Nothing here reads the environment.
"""
from __future__ import annotations

import importlib.util
import sys

from tqdm.std import tqdm as _text_tqdm


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (``ZMQInteractiveShell``): not plain Python, not the
    IPython terminal, not pytest."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return shell.get_ipython().__class__.__name__ == "ZMQInteractiveShell"
    except AttributeError:
        return False


def widgets_available() -> bool:
    """Whether Jupyter widgets can be drawn here: a Jupyter kernel with ipywidgets installed."""
    return in_kernel() and importlib.util.find_spec("ipywidgets") is not None


def _choose():
    if widgets_available():
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm
    return _text_tqdm


class _Chooser:
    """``tqdm``'s interface, with the widget or the text bar chosen when a bar is made."""

    def __call__(self, *args, **kwargs):
        return _choose()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(_choose(), name)

    @staticmethod
    def write(text: str, file=None) -> None:
        """Print a line without breaking a running bar."""
        _text_tqdm.write(text, file=file if file is not None else sys.stdout)


#: Use like the ``tqdm`` class: ``tqdm(iterable, desc=..., disable=not context.progress)``, ``tqdm.write(line)``.
tqdm = _Chooser()
