"""What this machine offers: library versions, compute device, WordNet, and datasets under DATA_ROOT."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import names, paths
from .context import resolve_device

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "networkx", "nltk", "matplotlib",
            "tqdm", "papermill", "nbval")

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
    rows.append(("trainer device (DEVICE = None)", resolve_device(None).type))
    return pd.DataFrame(rows, columns=["item", "value"])


def marker_hits(folder: Path, marker: str) -> list[Path]:
    """The paths under ``folder`` that match the glob ``marker`` (a trailing ``/``: folders only)."""
    if not folder.is_dir():
        return []
    folders_only = marker.endswith("/")
    return sorted(p for p in folder.glob(marker.rstrip("/")) if p.is_dir() or not folders_only)


def datasets_found(data_root: str | os.PathLike | None) -> pd.DataFrame:
    """Which real datasets (needed only by the ``paper`` profile) exist under ``data_root``: for each
    dataset of the registry, the first of its ``root_candidates`` holding one of its ``markers``
    (one marker per layout its loader reads)."""
    root = paths.resolve_data_root(data_root)
    rows = []
    for spec in names.DATASETS.values():
        found = next((root / candidate for candidate in spec.root_candidates for marker in spec.markers
                      if marker_hits(root / candidate, marker)), None)
        looked_for = " or ".join(f"{candidate}/{marker}".replace("./", "") for candidate in spec.root_candidates
                                 for marker in spec.markers)
        status = "found: " + paths.display_path(found) if found is not None else "not found"
        rows.append((spec.display, status, looked_for))
    return pd.DataFrame(rows, columns=["dataset", "status", "looked for"])
