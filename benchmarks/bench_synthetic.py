"""Generation speed of SyntheticHierarchical on one core (issue 5 asks ≥ 5,000 images/s at 32 px).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_synthetic.py [--dataset cub] [--image-size 32]

Prints images/s through a DataLoader (batched ``__getitems__``, the trainer's path) and for
one-by-one indexing. Timings on a shared machine vary; take the best of ``--repeats``.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from kesl_utils.data import SyntheticHierarchical
from kesl_utils.hierarchy_files import load_hierarchy


def best_rate(fn, n_images: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_images / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cub", choices=["cub", "mini_imagenet", "small_imagenet"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-per-class", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    hierarchy = load_hierarchy(args.dataset)
    start = time.perf_counter()
    ds = SyntheticHierarchical(hierarchy, "train", args.n_per_class, image_size=args.image_size)
    print(f"{ds!r}: built in {time.perf_counter() - start:.2f} s")

    def through_loader():
        for _ in DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=0):
            pass

    def one_by_one():
        for i in range(min(len(ds), 1000)):
            ds[i]

    print(f"DataLoader (batch {args.batch_size}, 0 workers, 1 thread): "
          f"{best_rate(through_loader, len(ds), args.repeats):,.0f} images/s")
    print(f"dataset[i] one by one: {best_rate(one_by_one, min(len(ds), 1000), args.repeats):,.0f} images/s")


if __name__ == "__main__":
    main()
