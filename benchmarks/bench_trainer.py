"""Training throughput of the trainer against a bare PyTorch loop (target ratio ≥ 0.95).

Both sides train the same model (ResNet-18, 200 classes: the CUB stand-in), on the same
synthetic 32 px images through the same data loader, batch 128, on the CPU. They alternate
in one process (trainer, bare, trainer, bare, …) so that machine load hits both alike; each
round is one short epoch of ``--batches`` batches after an unmeasured warm-up round each.
The headline is the median over rounds of trainer/bare (each pair measured back to back).

The trainer side is :func:`kesl_utils.train.train_one_epoch` as :func:`~kesl_utils.train.run`
calls it (two parameter groups, per-iteration LambdaLR schedule, on-device loss/accuracy
accumulation, tqdm progress bar with throttled postfix). The bare side is the textbook loop.

    python benchmarks/bench_trainer.py [--rounds 3] [--batches 8] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kesl_utils import train  # noqa: E402
from kesl_utils.config import Config  # noqa: E402
from kesl_utils.data import build_dataset, build_loader  # noqa: E402
from kesl_utils.hierarchy_files import load_hierarchy  # noqa: E402
from kesl_utils.losses import build_loss  # noqa: E402
from kesl_utils.models import build_model  # noqa: E402


def bare_epoch(model, optimizer, loader, device, max_batches):
    model.train()
    images = 0
    start = time.perf_counter()
    for index, (inputs, targets) in enumerate(loader):
        if index >= max_batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += targets.shape[0]
    return images / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8, help="batches per measured epoch")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quiet-bar", action="store_true", help="trainer without its progress bar")
    parser.add_argument("--backbone", default="resnet18", choices=("resnet18", "mobilenet_v2", "resnet50"))
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    config = Config(dataset="cub", image_size=args.image_size, n_per_class=(args.batches * 128) // 200 + 1,
                    batch_size=128, epochs=args.rounds + 1, loss="ce", lr=0.1, backbone=args.backbone)
    hierarchy = load_hierarchy("cub")
    dataset = build_dataset("cub", "train", source="synthetic", hierarchy=hierarchy,
                            image_size=config.image_size, n_per_class=config.n_per_class, seed=0)
    loader = build_loader(dataset, config.batch_size, train=True, device=device, seed=0)
    criterion = build_loss(config.loss, hierarchy, **config.loss_params)

    torch.manual_seed(0)
    trainer_model = build_model(args.backbone, len(hierarchy.classes))
    torch.manual_seed(0)
    bare_model = build_model(args.backbone, len(hierarchy.classes))
    optimizer = train.build_optimizer(config, trainer_model)
    scheduler = train.build_scheduler(config, optimizer, args.batches)
    bare_optimizer = torch.optim.SGD(bare_model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def trainer_round(epoch):
        train.set_epoch_order(loader, 0, epoch)
        stats = train.train_one_epoch(trainer_model, criterion, optimizer, loader, device,
                                      scheduler=scheduler, max_batches=args.batches,
                                      desc=f"trainer {epoch}", quiet=args.quiet_bar)
        return stats["images_per_s"]

    def bare_round(epoch):
        train.set_epoch_order(loader, 0, epoch)
        return bare_epoch(bare_model, bare_optimizer, loader, device, args.batches)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"loader workers {loader.num_workers}, {args.backbone}, {args.batches} batches x 128 at "
          f"{args.image_size} px per round")
    trainer_round(0), bare_round(0)  # warm-up (allocator, first-call overheads)
    trainer_rates, bare_rates = [], []
    for epoch in range(1, args.rounds + 1):
        trainer_rates.append(trainer_round(epoch))
        bare_rates.append(bare_round(epoch))
        print(f"round {epoch}: trainer {trainer_rates[-1]:7.1f} img/s   bare {bare_rates[-1]:7.1f} img/s")
    # On a shared machine the load changes between rounds; each trainer round is paired with
    # the bare round right after it, and the median of the paired ratios is the headline.
    ratios = [t / b for t, b in zip(trainer_rates, bare_rates)]
    print(f"trainer median {statistics.median(trainer_rates):.1f} img/s, "
          f"bare loop median {statistics.median(bare_rates):.1f} img/s")
    print(f"paired ratios {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median ratio {statistics.median(ratios):.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
