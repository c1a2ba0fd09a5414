"""Progress bars that render in terminals and JupyterLab, and stay out of published notebooks.

:data:`tqdm` is a ``tqdm`` *class* (so ``tqdm.write`` works): the notebook widget when running in a
Jupyter kernel with ipywidgets installed, the plain text bar otherwise. Bars are switched off
entirely when ``$KESL_PROGRESS`` is ``0`` — ``make reproduce`` (papermill) and ``make test`` (nbval)
set it, so executed notebooks store neither stderr lines nor widget state.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from tqdm.std import tqdm as _text_tqdm


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return shell.get_ipython().__class__.__name__ == "ZMQInteractiveShell"
    except AttributeError:
        return False


def enabled() -> bool:
    """Whether progress bars are shown (``$KESL_PROGRESS`` is not ``0``)."""
    return os.environ.get("KESL_PROGRESS", "1") != "0"


def _choose():
    if _in_kernel() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm
    return _text_tqdm


class _Switchable:
    """``tqdm``'s interface with ``disable`` forced on when :func:`enabled` is false."""

    def __call__(self, *args, **kwargs):
        if not enabled():
            kwargs["disable"] = True
        return _choose()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(_choose(), name)

    @staticmethod
    def write(text: str, file=None) -> None:
        """Print a line without breaking a running bar (plain ``print`` when bars are off)."""
        if enabled():
            _choose().write(text, file=file)
        else:
            print(text, file=file if file is not None else sys.stdout)


#: Use like the ``tqdm`` class: ``tqdm(iterable, desc=...)``, ``tqdm.write(line)``.
tqdm = _Switchable()
