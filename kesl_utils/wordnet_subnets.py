"""The WordNet subnets shipped in ``data/hierarchies/``, rebuilt from their class lists.

Mini-ImageNet's and Small-ImageNet's hierarchies are derived data: every hypernym path of each
class of ``<dataset>_classes.csv`` up to ``entity.n.01`` in WordNet 3.0
(:meth:`Hierarchy.from_wordnet <kesl_utils.hierarchy.Hierarchy.from_wordnet>`), written as
JSON so that nothing needs WordNet at run time. :func:`regenerate_wordnet_subnets` rebuilds
(or, with ``check``, compares) those files; ``python -m kesl_utils hierarchy regenerate
[--check]`` runs it. Provisioning WordNet itself is :mod:`kesl_utils.wordnet`'s job; this module
sits above :mod:`kesl_utils.hierarchy_files` (it reads the class lists and writes the shipped
files), which is why it is not part of :mod:`kesl_utils.wordnet`, which the hierarchy imports.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from . import paths
from .hierarchy import Hierarchy
from .hierarchy_files import read_class_wnids, shipped_hierarchies_dir, shipped_hierarchy_path
from .names import DATASETS, check_choice, dataset_spec


def wordnet_datasets() -> list[str]:
    """The datasets of the registry whose hierarchy is a WordNet subnet, in registry order."""
    return [name for name, spec in DATASETS.items() if spec.hierarchy_kind == "wordnet"]


def wordnet_subnet(dataset: str) -> tuple[Hierarchy, str]:
    """Rebuild a shipped subnet from its class CSV and WordNet: ``(hierarchy, comment)``."""
    spec = dataset_spec(check_choice("dataset", dataset, wordnet_datasets()))
    hierarchy = Hierarchy.from_wordnet(read_class_wnids(shipped_hierarchies_dir() / spec.class_list),
                                       mode="dag")
    # The comment is part of the shipped JSON files: change the command in both at once.
    comment = (f"WordNet 3.0 subnet (every hypernym path up to entity.n.01) of the classes "
               f"in {spec.class_list}, in its row order; derived data, regenerate with "
               "`python -m kesl_utils hierarchy regenerate`")
    return hierarchy, comment


class Regeneration(dict):
    """``{json_path: changed}`` from :func:`regenerate_wordnet_subnets`; ``check``: compare only."""

    def __init__(self, changed: Mapping[Path, bool], *, check: bool):
        super().__init__(changed)
        self.check = check


def regenerate_wordnet_subnets(*, check: bool = False,
                               datasets: Sequence[str] | None = None) -> Regeneration:
    """Rebuild the WordNet subnet JSON files of the registry from their class CSVs and WordNet 3.0.

    Args:
        check: compare only; write nothing.
        datasets: which datasets (default: every WordNet dataset of the registry).

    Returns:
        ``{json_path: changed}`` — whether the file differed from the regenerated text
        (and, unless ``check``, was rewritten atomically). A command line exits with 1 when
        ``check`` and any value is true.

    Raises:
        ValueError: a dataset that is not a WordNet dataset of the registry (before any work).
    """
    datasets = wordnet_datasets() if datasets is None else list(datasets)
    for dataset in datasets:
        check_choice("dataset", dataset, wordnet_datasets())
    result = {}
    for dataset in datasets:
        hierarchy, comment = wordnet_subnet(dataset)
        text = hierarchy.to_json_text(comment)
        target = shipped_hierarchy_path(dataset)
        old = target.read_text(encoding="utf-8") if target.exists() else None
        result[target] = old != text
        if old != text and not check:
            paths.atomic_write_text(target, text)
    return Regeneration(result, check=check)


def describe_regeneration(result: Mapping[Path, bool], check: bool | None = None) -> list[str]:
    """One line per file of :func:`regenerate_wordnet_subnets`, path relative to the repository.

    ``"data/hierarchies/x.json: up to date (Hierarchy(DAG, …))"``, ``": rewritten (…)"`` or,
    when checking, ``": differs"``. ``check`` defaults to the result's own ``check``.
    """
    check = getattr(result, "check", False) if check is None else check
    lines = []
    for path, changed in result.items():
        state = ("differs" if check else "rewritten") if changed else "up to date"
        shown = path.relative_to(paths.PROJECT_ROOT) if path.is_relative_to(paths.PROJECT_ROOT) \
            else path
        detail = f" ({Hierarchy.from_json(path)!r})" if path.exists() and not (check and changed) \
            else ""
        lines.append(f"{shown}: {state}{detail}")
    return lines
