"""Difficulty calibration of the synthetic stand-ins (issue 5): one short cross-entropy run.

Trains a ResNet-18 with the quick profile's budget on ``SyntheticHierarchical`` built from a
shipped hierarchy and prints top-1 and the mean class distance d of its mistakes next to the
mean d over all class pairs (d_ij = e_ij − 1). Single-threaded on purpose (shared machine)::

    PYTHONPATH=. .venv/bin/python benchmarks/calibrate_synthetic.py --dataset cub --stem imagenet

``--stem imagenet`` is kesl_utils.models.build_model("resnet18") (torchvision's stem, what the
quick profile trains); ``--stem cifar`` replaces conv1 by a 3×3 stride-1 conv and drops the
max-pool (the usual small-input variant, ~15× more compute at 32 px).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from kesl_utils.data.synthetic import SyntheticHierarchical


def build_resnet18(num_classes: int, stem: str) -> nn.Module:
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cub", choices=["cub", "mini_imagenet", "small_imagenet"])
    parser.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-per-class", type=int, default=15)
    parser.add_argument("--n-test-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alignment", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gen", default="{}", help="JSON dict of extra SyntheticHierarchical keyword arguments")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from kesl_utils.hierarchy_files import load_hierarchy

    hierarchy = load_hierarchy(args.dataset)
    extra = json.loads(args.gen)
    common = dict(image_size=args.image_size, seed=args.seed, alignment=args.alignment, **extra)
    train_set = SyntheticHierarchical(hierarchy, "train", args.n_per_class, **common)
    test_set = SyntheticHierarchical(hierarchy, "test", args.n_test_per_class, **common)
    n = len(hierarchy.classes)
    e = hierarchy.edge_distances()
    d = np.where(np.eye(n, dtype=bool), 0, e - 1)

    torch.manual_seed(args.seed)
    model = build_resnet18(n, args.stem)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    steps = args.epochs * len(loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps))))
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for images, labels in loader:
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        print(f"epoch {epoch + 1}: train loss {loss_sum / total:.3f} acc {100 * correct / total:.1f}% "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    model.eval()
    predictions, targets = [], []
    with torch.no_grad():
        for images, labels in DataLoader(test_set, batch_size=256):
            predictions.append(model(images).argmax(1))
            targets.append(labels)
    pred, true = torch.cat(predictions).numpy(), torch.cat(targets).numpy()
    wrong = pred != true
    off_diagonal = d[~np.eye(n, dtype=bool)]
    result = {
        "dataset": args.dataset, "stem": args.stem, "image_size": args.image_size,
        "n_per_class": args.n_per_class, "n_test_per_class": args.n_test_per_class,
        "epochs": args.epochs, "alignment": args.alignment, "seed": args.seed, "gen": extra,
        "top1": round(100 * float(1 - wrong.mean()), 2),
        "mean_mistake_d": round(float(d[true[wrong], pred[wrong]].mean()), 3) if wrong.any() else None,
        "mean_pairwise_d": round(float(off_diagonal.mean()), 3),
        "share_mistakes_d<=1": round(float((d[true[wrong], pred[wrong]] <= 1).mean()), 3) if wrong.any() else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
