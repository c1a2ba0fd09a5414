"""What this machine offers: library versions, compute device, WordNet, and datasets under DATA_ROOT."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import paths

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "networkx", "nltk", "matplotlib",
            "tqdm", "papermill", "nbval")

#: Where each real dataset is looked for under DATA_ROOT, and the file that proves it is there.
DATASET_MARKERS = {
    "CUB-200-2011": ["CUB_200_2011/classes.txt", "classes.txt"],
    "Mini-ImageNet": ["mini-imagenet/train.csv", "mini_imagenet/train.csv", "miniImageNet/train.csv"],
    "Small-ImageNet (Tiny-ImageNet)": ["tiny-imagenet-200/wnids.txt", "small_imagenet/wnids.txt"],
}


def versions() -> pd.DataFrame:
    """Python, the platform and every dependency's installed version."""
    rows = [("python", sys.version.split()[0]), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def device_report() -> pd.DataFrame:
    """The compute device the trainer will use, with CPU threads and any CUDA devices."""
    import torch

    rows = [("cpu threads", str(torch.get_num_threads())), ("os cpu count", str(os.cpu_count()))]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append((f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                      f"bf16={'yes' if torch.cuda.is_bf16_supported() else 'no'}"))
    else:
        rows.append(("cuda", "not available — the quick and smoke profiles run on the CPU"))
    rows.append(("trainer device", "cuda" if torch.cuda.is_available() else "cpu"))
    return pd.DataFrame(rows, columns=["item", "value"])


def datasets_found(data_root: str | os.PathLike | None) -> pd.DataFrame:
    """Which real datasets (needed only by the ``paper`` profile) exist under ``data_root``."""
    root = paths.resolve_data_root(data_root)
    rows = []
    for name, markers in DATASET_MARKERS.items():
        hits = [m for m in markers if (root / m).exists()]
        rows.append((name, "found: " + str(root / Path(hits[0]).parent) if hits else "not found",
                     " or ".join(str(Path(m)) for m in markers)))
    return pd.DataFrame(rows, columns=["dataset", "status", "looked for"])
