"""Cost of the KESL loss in a training step: ResNet-18 step with KESLLoss vs F.cross_entropy.

One step = forward, loss, backward, SGD update of torchvision's ResNet-18 (200 classes) on a
random batch of 128 images of 3×32×32. The two losses are timed alternately in one process
(order swapped every round, so drift of a shared machine hits both alike), after warm-up steps;
the medians and the ratio KESL/CE are printed. Target: ratio ≤ 1.03. Because whole steps on a
shared CPU are noisy, the loss alone (forward + backward on fixed logits) is timed the same way,
and its extra cost is printed as a fraction of a step.

    python benchmarks/bench_loss_step.py [--rounds 10] [--warmup 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from kesl_utils.losses import KESLLoss
from kesl_utils.soft_labels import soft_label_matrix


def balanced_tree_edges(branching: tuple[int, ...]) -> np.ndarray:
    """e_ij between the leaves of a tree with the given branching per level (200 = 4·5·10)."""
    n = int(np.prod(branching))
    codes = np.array(np.unravel_index(np.arange(n), branching)).T        # (n, depth)
    same_prefix = np.cumprod(codes[:, None, :] == codes[None, :, :], axis=2)
    levels_up = len(branching) - same_prefix.sum(axis=2)
    return 2 * levels_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per loss before timing")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--loss-reps", type=int, default=200, help="repetitions of the loss-only timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    num_classes = 200
    soft_labels = soft_label_matrix(balanced_tree_edges((4, 5, 10)), lam=0.5, T=2)
    kesl = KESLLoss(soft_labels, alpha=1.0, beta=1.0).to(device)
    model = torchvision.models.resnet18(num_classes=num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    targets = torch.randint(0, num_classes, (args.batch_size,), device=device)
    losses = {"CE": F.cross_entropy, "KESL": kesl}

    def step(loss_fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    model.train()
    for _ in range(args.warmup):
        for loss_fn in losses.values():
            step(loss_fn)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for round_index in range(args.rounds):
        order = list(losses) if round_index % 2 == 0 else list(losses)[::-1]
        for name in order:
            times[name].append(step(losses[name]))

    # The loss alone (forward + backward on fixed logits), also alternating: far less noisy than
    # whole steps on a shared machine, and it bounds the step overhead from above.
    logits = torch.randn(args.batch_size, num_classes, device=device)
    loss_times: dict[str, list[float]] = {name: [] for name in losses}
    for round_index in range(args.loss_reps):
        order = list(losses) if round_index % 2 == 0 else list(losses)[::-1]
        for name in order:
            leaf = logits.clone().requires_grad_()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            losses[name](leaf, targets).backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            loss_times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"ResNet-18, {num_classes} classes, batch {args.batch_size}, {args.image_size}px, {device}, "
          f"{torch.get_num_threads()} threads, {args.rounds} alternating rounds after {args.warmup} warm-up")
    for name, values in times.items():
        print(f"  {name:>4}: median {medians[name] * 1e3:8.1f} ms/step  "
              f"(min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})")
    print(f"  ratio KESL/CE = {medians['KESL'] / medians['CE']:.3f} (target ≤ 1.03); "
          f"ratio of minima = {min(times['KESL']) / min(times['CE']):.3f}")
    loss_medians = {name: statistics.median(values) for name, values in loss_times.items()}
    overhead = (loss_medians["KESL"] - loss_medians["CE"]) / min(times["CE"])
    print(f"  loss alone (forward + backward, median of {args.loss_reps}): "
          + ", ".join(f"{name} {value * 1e6:.0f} µs" for name, value in loss_medians.items())
          + f"; extra cost of KESL = {overhead * 100:.3f} % of the fastest CE step")


if __name__ == "__main__":
    main()
