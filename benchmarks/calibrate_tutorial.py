"""Calibration of notebook 10's budget (issue 20): an informative, converged cross-entropy arm.

Notebook 10 trains a ResNet-18 from scratch on the CIFAR-100 taxonomy's synthetic stand-in (when
CIFAR-100 is not on disk) with its own, copyable training loop. Its comparison is informative only
when the CE arm beats the raw-pixel nearest-class-mean (NCM) of the same images, and converged when
its training top-1 gains less than ``--plateau`` points (default 1) in the last epoch: the same two
criteria as ``calibrate_protocol.py``. This script draws the notebook's data for each candidate
budget, trains the notebook's CE recipe (SGD, momentum 0.9, weight decay 5e-4, cosine per step,
seed 0) and prints, per budget, the training top-1 per epoch (measured on the fly, as the batches
pass), the last epoch's gain, the test top-1, the NCM, the margin and the wall time.

    .venv/bin/python benchmarks/calibrate_tutorial.py \\
        --grid '[{"n_train_per_class": 20, "epochs": 6}]' [--log benchmarks/calibration.md]

Each grid entry changes fields of the quick profile's :class:`~kesl_utils.profiles.TutorialBudget`.
The loop mirrors notebook 10's on purpose (the notebook keeps its loop in view for readers to copy);
``tests/test_benchmarks.py`` checks that both use the same recipe.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # calibrate_protocol, beside this script

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from kesl_utils import ncm, paths, tutorial  # noqa: E402
from kesl_utils.data import SyntheticHierarchical  # noqa: E402
from kesl_utils.hierarchy import Hierarchy  # noqa: E402
from calibrate_protocol import table_log  # noqa: E402

#: The recipe of notebook 10's loop (its ``run_settings["recipe"]``): what this script reproduces.
RECIPE = "resnet18-sgd-cosine-v1"
HEADER = ("| budget | train top-1 per epoch | last-epoch gain | test top-1 | NCM | margin "
          "| informative and plateaued | images | minutes |")


def data(budget):
    """Notebook 10's synthetic stand-in at ``budget``: (train_x, train_y, test_x, test_y)."""
    cifar = Hierarchy.from_taxonomy(paths.hierarchies_dir() / "cifar100_taxonomy.csv",
                                    levels=["superclass", "class_name"])
    splits = {split: ncm.as_tensors(SyntheticHierarchical(cifar, split, n_per_class=n, image_size=budget.image_size,
                                                          seed=0))
              for split, n in (("train", budget.n_train_per_class or 500), ("test", budget.n_test_per_class or 100))}
    return (*splits["train"], *splits["test"]), cifar.num_classes


def train_ce(budget, train_x, train_y, test_x, test_y, n_classes: int, seed: int = 0):
    """The notebook's CE arm; returns (training top-1 per epoch, test top-1)."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=n_classes)
    criterion = nn.CrossEntropyLoss()
    optimiser = torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=budget.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=budget.epochs * len(loader))
    curve = []
    for _ in range(budget.epochs):
        model.train()
        correct = seen = 0
        for images, targets in loader:
            logits = model(images)
            loss = criterion(logits, targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
        curve.append(100 * correct / seen)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(batch) for batch in test_x.split(256)])
    return curve, 100 * float((logits.argmax(1) == test_y).double().mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True, help="JSON list of dicts of TutorialBudget fields")
    parser.add_argument("--plateau", type=float, default=1.0, help="points of training top-1 the last epoch may add")
    parser.add_argument("--log", default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    emit = table_log(args.log, HEADER, " · notebook 10's budget")
    for entry in json.loads(args.grid):
        budget = dataclasses.replace(tutorial.budget("quick"), **entry)
        (train_x, train_y, test_x, test_y), n_classes = data(budget)
        reference = ncm.nearest_class_mean_top1(train_x, train_y, test_x, test_y, n_classes)
        start = time.perf_counter()
        curve, top1 = train_ce(budget, train_x, train_y, test_x, test_y, n_classes)
        minutes = (time.perf_counter() - start) / 60
        gain = curve[-1] - curve[-2] if len(curve) > 1 else float("nan")
        ok = top1 > reference and gain < args.plateau
        emit(f"| {json.dumps(budget.settings())} | {' '.join(f'{v:.0f}' for v in curve)} | {gain:+.1f} "
             f"| {top1:.2f} | {reference:.2f} | {top1 - reference:+.2f} | {'yes' if ok else '**no**'} "
             f"| {len(train_y) * budget.epochs} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
