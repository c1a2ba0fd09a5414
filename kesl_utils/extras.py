"""Optional dependencies: which extra of ``pip install "kesl-utils[...]"`` brings which module.

``pip install kesl-utils`` installs what the library needs to train, evaluate and draw (torch,
torchvision, numpy, scipy, networkx, pandas, tqdm, pillow, matplotlib). The rest is optional and
imported only where it is used, through :func:`require`, so that a missing module fails with a
message that names the extra to install instead of a bare ``ModuleNotFoundError``:

==============  ===============  ==============================================================
module          extra            needed for
==============  ===============  ==============================================================
``nltk``        ``[wordnet]``    :meth:`~kesl_utils.hierarchy.Hierarchy.from_wordnet`,
                                 ``hierarchy_mode="tree"`` of a WordNet subnet, regenerating
                                 the shipped subnets
``papermill``   ``[notebooks]``  ``make reproduce`` / ``python -m kesl_utils.reproduce``
``nbformat``    ``[notebooks]``  publishing executed notebooks
``ipywidgets``  ``[notebooks]``  the interactive explorers of :mod:`kesl_utils.explore`
``ray``         ``[cluster]``    ``EXECUTOR=ray``
==============  ===============  ==============================================================

``make env`` (and so ``make reproduce`` and ``make test``) installs every extra.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: The extra of ``pyproject.toml``'s ``[project.optional-dependencies]`` that brings each optional
#: module (the distribution has the module's name). tests/test_extras.py checks it against
#: pyproject.toml.
EXTRAS = {
    "nltk": "wordnet",
    "papermill": "notebooks",
    "nbformat": "notebooks",
    "ipywidgets": "notebooks",
    "ray": "cluster",
}

DISTRIBUTION = "kesl-utils"


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that brings it.

    A :class:`ModuleNotFoundError` (so ``except ImportError`` still catches it) whose ``name``
    is the missing module.
    """


def extra_of(module: str) -> str:
    """The extra that brings the optional ``module``; ``ValueError`` for a module that is not one."""
    if module not in EXTRAS:
        raise ValueError(f"{module!r} is not an optional dependency; expected one of "
                         f"{', '.join(map(repr, EXTRAS))}")
    return EXTRAS[module]


def install_hint(module: str) -> str:
    """``pip install "kesl-utils[<extra>]"`` for an optional ``module`` of :data:`EXTRAS`."""
    return f'pip install "{DISTRIBUTION}[{extra_of(module)}]"'


def missing_extra(module: str, purpose: str) -> MissingExtra:
    """The error to raise when ``module`` (a key of :data:`EXTRAS`) is not installed.

    ``purpose`` says what needed it ("Hierarchy.from_wordnet", "make reproduce").
    """
    return MissingExtra(f"{purpose} needs {module}, which is not installed: {install_hint(module)} "
                        "(in a checkout of the repository, `make env` installs every extra)",
                        name=module)


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional ``module`` (a key of :data:`EXTRAS`), or raise :class:`MissingExtra`.

    Only the module itself being absent becomes :class:`MissingExtra`; an installed module that
    fails to import (one of *its* dependencies missing, a broken install) raises its own error.
    """
    extra_of(module)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        raise missing_extra(module, purpose) from None


def check_installed(module: str, purpose: str) -> None:
    """Raise :class:`MissingExtra` unless the optional ``module`` can be imported, without
    importing it (for a check made up front, before work that needs the module later)."""
    extra_of(module)
    if importlib.util.find_spec(module) is None:
        raise missing_extra(module, purpose)
