"""Time and memory of :mod:`kesl_utils.distances` against the budgets of issues 3 and 14.

Budgets: ``edge_distances`` of a 1,000-class WordNet subnet "well under" 1 s and of a
10,000-class four-level taxonomy under 5 s and under 2 GB peak memory; ``lca_heights`` of the
shipped 100- and 200-class WordNet subnets well under 1 s. Run from the repository root:

    python benchmarks/bench_hierarchy.py [--repeat 3]

Times are the best of ``--repeat`` runs; peak memory is the tracemalloc peak of one extra
run (numpy reports its buffers to tracemalloc), plus the process's maximum resident size.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kesl_utils import distances  # noqa: E402
from kesl_utils.hierarchy import Hierarchy  # noqa: E402
from kesl_utils.hierarchy_files import load_hierarchy  # noqa: E402

#: Roots of the synthetic WordNet subnet: mammal, bird, fish, reptile, amphibian, insect.
ANIMAL_ROOTS = ("n01861778", "n01503061", "n02512053", "n01661091", "n01627424", "n02159955")


def wordnet_leaf_wnids(n: int = 1000) -> list[str]:
    """``n`` WordNet leaf synsets (no hyponyms) below ANIMAL_ROOTS, evenly spaced by wnid."""
    from kesl_utils import wordnet as wn

    leaves = set()
    for root in ANIMAL_ROOTS:
        synset = wn.synset_from_wnid(root)
        for s in synset.closure(lambda x: x.hyponyms() + x.instance_hyponyms()):
            if not s.hyponyms() and not s.instance_hyponyms():
                leaves.add(wn.wnid_of(s))
    leaves = sorted(leaves)
    if len(leaves) < n:
        raise RuntimeError(f"only {len(leaves)} leaves below {ANIMAL_ROOTS}")
    picks = np.linspace(0, len(leaves) - 1, n).round().astype(int)
    return [leaves[k] for k in picks]


def synthetic_taxonomy(n_classes: int = 10_000, n_genera: int = 2_000, n_families: int = 250,
                       n_orders: int = 25) -> pd.DataFrame:
    """Four levels order → family → genus → species; classes of a genus are not adjacent."""
    k = np.arange(n_classes)
    genus = k % n_genera
    family = genus % n_families
    order = family % n_orders
    return pd.DataFrame({"order": [f"O{o}" for o in order], "family": [f"F{f}" for f in family],
                         "genus": [f"G{g}" for g in genus], "species": [f"S{s}" for s in k]})


def measure(hierarchy: Hierarchy, repeat: int, method: str) -> tuple[float, float, np.ndarray]:
    if method == "bfs":  # the all-classes breadth-first search used for dense DAGs
        compute = lambda: distances._bfs_lengths(hierarchy, hierarchy.classes,  # noqa: E731
                                                 hierarchy.classes, np.int16)
    else:
        compute = lambda: getattr(distances, method)(hierarchy)  # noqa: E731
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        e = compute()
        best = min(best, time.perf_counter() - start)
        del e
    tracemalloc.start()
    e = compute()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, e


def report(label: str, hierarchy: Hierarchy, repeat: int, budget_s: float | None,
           budget_mb: float | None = None, method: str = "edge_distances") -> None:
    """One line: time (best of ``repeat``) and peak memory of ``distances.<method>``."""
    seconds, peak_mb, e = measure(hierarchy, repeat, method)
    line = (f"{label:<44} {hierarchy.num_classes:>6} classes {hierarchy.graph.number_of_nodes():>6}"
            f" nodes  {'tree' if hierarchy.is_tree else 'DAG ':<4}  {seconds * 1000:9.1f} ms")
    if budget_s is not None:
        line += f" ({seconds / budget_s:6.1%} of {budget_s:g} s)"
    line += f"  peak {peak_mb:8.1f} MiB"
    if budget_mb is not None:
        line += f" ({peak_mb / budget_mb:6.1%} of {budget_mb / 1024:g} GiB)"
    line += f"  max={int(e.max())} dtype={e.dtype}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    for dataset in ("mini_imagenet", "small_imagenet"):
        try:
            hierarchy = load_hierarchy(dataset)
            report(f"{dataset} WordNet subnet (shipped JSON)", hierarchy, args.repeat, None)
            report("  same, lca_heights", hierarchy, args.repeat, 1.0, method="lca_heights")
        except Exception as error:  # noqa: BLE001 - report and continue with the rest
            print(f"{dataset} subnet: skipped ({error})")

    try:
        start = time.perf_counter()
        wnids = wordnet_leaf_wnids(1000)
        dag = Hierarchy.from_wordnet(wnids, mode="dag")
        tree = Hierarchy.from_wordnet(wnids, mode="tree")
        print(f"(building the two 1,000-class WordNet subnets took "
              f"{time.perf_counter() - start:.1f} s, not budgeted)")
        report("1,000 WordNet animal leaves, mode='dag'", dag, args.repeat, 1.0)
        report("1,000 WordNet animal leaves, mode='tree'", tree, args.repeat, 1.0)
        report("  same DAG, BFS from every class (fallback)", dag, args.repeat, 1.0,
               method="bfs")
        report("  same DAG, lca_heights", dag, args.repeat, None, method="lca_heights")
    except Exception as error:  # noqa: BLE001
        print(f"1,000-class WordNet subnet: skipped ({error})")

    start = time.perf_counter()
    taxonomy = Hierarchy.from_taxonomy(synthetic_taxonomy(),
                                       ["order", "family", "genus", "species"])
    print(f"(building the 10,000-class taxonomy took {time.perf_counter() - start:.1f} s, "
          "not budgeted)")
    report("10,000-class four-level taxonomy", taxonomy, args.repeat, 5.0, 2048.0)
    report("  same, lca_heights", taxonomy, args.repeat, None, 2048.0, method="lca_heights")
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process maximum resident set size: {maxrss_mb:.0f} MiB "
          f"(includes Python, numpy, pandas, networkx, WordNet)")


if __name__ == "__main__":
    main()
