"""The hierarchy files shipped in ``data/hierarchies/``, and the hierarchy a run uses.

Where the shipped files are (:func:`shipped_hierarchies_dir`): a wheel carries
``data/hierarchies/`` as the data folder ``kesl_utils/hierarchies/`` (``pyproject.toml`` maps it),
found with :mod:`importlib.resources`; a checkout (an editable install, the notebooks, the tests)
reads the repository folder ``data/hierarchies/`` (:func:`kesl_utils.paths.hierarchies_dir`).

Which file and kind each dataset has is read from the registry :data:`kesl_utils.names.DATASETS`:

* :func:`load_hierarchy` — the shipped hierarchy of a dataset: a taxonomy CSV with a
  ``class_id`` column (:func:`load_taxonomy_hierarchy`; CUB-200-2011) or a WordNet subnet JSON
  derived from a class list (:func:`read_class_wnids`; Mini- and Small-ImageNet);
* :func:`resolve_hierarchy` — the hierarchy of a ``(dataset, hierarchy_mode)``, the one place
  that turns a :class:`~kesl_utils.config.Config`'s ``hierarchy_mode`` into a hierarchy: the
  trainer and the nearest-class-mean reference both call it.

The text formats themselves (strict UTF-8 CSV, the hierarchy JSON) are read by
:mod:`kesl_utils.hierarchy`, whose constructors accept paths; the derived WordNet subnets are
rebuilt by :mod:`kesl_utils.wordnet_subnets`.
"""
from __future__ import annotations

import os
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Sequence

from . import paths
from .hierarchy import (Hierarchy, HierarchyError, _level_list, _quoted, _rows, _taxonomy_graph,
                        read_csv_table)
from .names import DATASETS, HIERARCHY_MODES, check_choice, dataset_spec


def shipped_hierarchies_dir() -> Path:
    """The folder of the shipped hierarchy files (CSV taxonomies, class lists, WordNet subnets).

    From a wheel: ``kesl_utils/hierarchies/`` inside the installed package, found with
    :func:`importlib.resources.files`. From a checkout, where the package folder has no
    ``hierarchies/`` (the files stay in ``data/hierarchies/``, the repository's layout), the
    repository folder :func:`kesl_utils.paths.hierarchies_dir`.

    The folder is looked up relative to the ``kesl_utils`` that was imported, never through a
    ``kesl_utils.hierarchies`` import, so two checkouts on one ``sys.path`` cannot mix their
    files. A package imported from a zip archive (no real folder) reads the repository folder.
    """
    packaged = resources.files(__package__).joinpath("hierarchies")
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return paths.hierarchies_dir()


def shipped_file(name: str) -> Path:
    """``<shipped hierarchies>/<name>`` (:func:`shipped_hierarchies_dir`), e.g. ``"cub_taxonomy.csv"``.

    Raises:
        FileNotFoundError: no such shipped file; the message lists the shipped files and where
            they were looked for.
    """
    folder = shipped_hierarchies_dir()
    path = folder / name
    if not path.is_file():
        shipped = sorted(p.name for p in folder.glob("*") if p.suffix in (".csv", ".json"))
        raise FileNotFoundError(f"no shipped hierarchy file {name!r} in {folder}; the shipped "
                                f"files are {', '.join(shipped) or 'none'} (a checkout keeps "
                                "them in data/hierarchies/, a wheel in kesl_utils/hierarchies/)")
    return path


def shipped_hierarchy_path(dataset: str) -> Path:
    """The shipped file of ``dataset``'s registry entry (its ``hierarchy_file``), in
    :func:`shipped_hierarchies_dir` (``data/hierarchies/<file>`` in a checkout)."""
    return shipped_hierarchies_dir() / dataset_spec(dataset).hierarchy_file


def _pretty_class_name(class_name: str) -> str:
    """``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``."""
    return class_name.split(".", 1)[-1].replace("_", " ")


def load_taxonomy_hierarchy(path: str | os.PathLike, levels: Sequence[str]) -> Hierarchy:
    """A taxonomy CSV with a ``class_id`` column: classes ordered by ``class_id``.

    Class nodes are named without number prefix and underscores
    (``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``). Errors name the file's
    rows and lines.
    """
    levels = _level_list(levels)
    frame, lines = read_csv_table(path, "a taxonomy CSV with the columns "
                                  + _quoted(["class_id", *levels]))
    graph, file_order = _taxonomy_graph(frame, levels, "root", lines, str(path))
    if "class_id" not in frame.columns:
        raise HierarchyError(f"no 'class_id' column; columns are {_quoted(frame.columns)}",
                             str(path))
    ids: list[int | None] = []
    for text in frame["class_id"]:
        try:
            ids.append(int(text.strip()))
        except ValueError:
            ids.append(None)
    bad = [row for row, i in enumerate(ids) if i is None]
    if bad:
        raise HierarchyError(f"class_id is not an integer in {_rows(bad, lines)}", str(path))
    repeated = [i for i, k in Counter(ids).items() if k > 1]
    if repeated:
        raise HierarchyError(f"duplicate class_id values {_quoted(repeated)}", str(path))
    by_id = [c for _, c in sorted(zip(ids, file_order))]
    hierarchy = Hierarchy(graph, by_id, "root", context=str(path))
    for c in hierarchy.classes:
        graph.nodes[c]["name"] = _pretty_class_name(c)
    return hierarchy


def load_cub_hierarchy(path: str | os.PathLike | None = None) -> Hierarchy:
    """CUB-200-2011 taxonomy root → order → family → genus → class (``cub_taxonomy.csv``).

    Classes are the ``class_name`` values (``"001.Black_footed_Albatross"``) ordered by
    ``class_id`` (label id = class_id − 1 for the shipped file).
    """
    return load_taxonomy_hierarchy(path if path is not None else shipped_hierarchy_path("cub"),
                                   DATASETS["cub"].taxonomy_levels)


def load_hierarchy(dataset: str) -> Hierarchy:
    """The shipped hierarchy of a dataset of :data:`kesl_utils.names.DATASETS`.

    A ``"taxonomy"`` dataset reads its CSV (:func:`load_taxonomy_hierarchy` with the
    registry's ``taxonomy_levels``), a ``"wordnet"`` dataset its derived JSON subnet. Read
    from the file on every call: each call returns a new :class:`Hierarchy`.
    """
    spec = dataset_spec(dataset)
    if spec.hierarchy_kind == "taxonomy":
        return load_taxonomy_hierarchy(shipped_hierarchy_path(dataset), spec.taxonomy_levels)
    if spec.hierarchy_kind == "wordnet":
        return Hierarchy.from_json(shipped_hierarchy_path(dataset))
    raise ValueError(f"dataset {dataset!r} has hierarchy_kind={spec.hierarchy_kind!r}; "
                     "expected 'taxonomy' or 'wordnet'")


def resolve_hierarchy(dataset: str, mode: str) -> Hierarchy:
    """The class hierarchy of ``dataset`` in hierarchy ``mode`` (``Config.hierarchy_mode``).

    ``"dag"``: the shipped hierarchy (:func:`load_hierarchy`). ``"tree"``: a tree over the same
    classes in the same label order — the shipped hierarchy itself when it is a tree (every
    taxonomy), else WordNet's first-hypernym tree built at run time
    (:meth:`Hierarchy.from_wordnet` with ``mode="tree"``), which needs WordNet
    (:class:`~kesl_utils.wordnet.WordNetUnavailable` names the ways to get it).

    Raises:
        ValueError: an unknown dataset or mode (naming the allowed ones), or ``"tree"`` for a
            DAG that is not a WordNet subnet (no tree of it is defined).
    """
    check_choice("hierarchy_mode", mode, HIERARCHY_MODES)
    hierarchy = load_hierarchy(dataset)
    if mode == "dag" or hierarchy.is_tree:
        return hierarchy
    kind = dataset_spec(dataset).hierarchy_kind
    if kind != "wordnet":
        raise ValueError(f"hierarchy_mode='tree' for dataset {dataset!r}: its shipped "
                         f"{kind} hierarchy is a DAG and only WordNet subnets have a tree mode; "
                         "use hierarchy_mode='dag'")
    return Hierarchy.from_wordnet(list(hierarchy.classes), mode="tree")


def read_class_wnids(csv_path: str | os.PathLike) -> list[str]:
    """The ``wnid`` column of a class list CSV, in file order."""
    table, _ = read_csv_table(csv_path, "a class list CSV with a 'wnid' column")
    if "wnid" not in table.columns:
        raise HierarchyError(f"no 'wnid' column; columns are {_quoted(table.columns)}",
                             str(csv_path))
    return [w.strip() for w in table["wnid"]]
