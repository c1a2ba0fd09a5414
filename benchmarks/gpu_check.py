"""A short check of the paper profile's training step on one CUDA GPU: throughput, peak memory, and
what bf16 autocast does to the loss.

Two configurations, both read from the ``paper`` profile (:func:`kesl_utils.experiments.profile_config`):

* ``cub``: the CUB runs, ResNet-50 at 448 px, batch 32, 200 classes;
* ``imagenet``: the Mini-ImageNet runs, ResNet-50 at 224 px, batch 256, 100 classes.

Each is trained for ``--warmup`` + ``--steps`` steps on synthetic tensors already on the GPU (the
same seed, hence the same initial weights and the same batches, for every variant) through the
library's own code path: :func:`kesl_utils.models.build_model`, the KESL loss of
:func:`kesl_utils.losses.build_loss` over the dataset's hierarchy, :func:`kesl_utils.train.build_optimizer`
and ``build_scheduler``, and :func:`kesl_utils.train.train_one_epoch` with the autocast dtype of
:func:`kesl_utils.train.autocast_dtype`. The warm-up steps (cuDNN autotuning, ``torch.compile``'s
compilation) are not timed.

Variants per configuration (5 of the 8 combinations, so that both fit in 5 minutes on one modern
GPU): AMP (bf16) off/on × ``channels_last`` off/on in eager mode, plus ``torch.compile`` with AMP
and ``channels_last`` on (the paper profile's setting, where compilation would be used). Each
compilation costs about a minute of warm-up; the other compiled combinations would add four
more. ``--budget-s`` (default 270) skips the variants that would start after it (a compiled one
needs 120 s of it left).

Printed: images/s over the timed steps, peak GPU memory, the mean training loss of the timed
steps, and for each eager pair the bf16-minus-fp32 loss difference (same seed, same data).
``--json PATH`` also writes the rows as JSON.

    python benchmarks/gpu_check.py [--steps 20] [--warmup 5] [--json gpu_check.json]

Without CUDA it prints ``gpu_check: SKIPPED, no CUDA device ...`` and exits with status 0
(``--require-cuda``: status 2 instead).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kesl_utils import train  # noqa: E402
from kesl_utils.experiments import profile_config  # noqa: E402
from kesl_utils.hierarchy_files import load_hierarchy  # noqa: E402
from kesl_utils.losses import build_loss  # noqa: E402
from kesl_utils.models import build_model  # noqa: E402

#: (name, dataset of the paper profile): the configuration's model, image size and batch.
CONFIGURATIONS = (("cub", "cub"), ("imagenet", "mini_imagenet"))
#: (amp, channels_last, compile) per configuration; eager pairs first, the compiled one last.
VARIANTS = ((False, False, False), (True, False, False), (False, True, False), (True, True, False),
            (True, True, True))
#: Seconds of the budget a torch.compile variant needs left to start (compilation + its steps).
COMPILE_RESERVE_S = 120.0
#: Distinct synthetic batches, cycled (the memory of 4 ImageNet batches is 0.6 GB).
DISTINCT_BATCHES = 4


def synthetic_batches(n_batches: int, batch: int, size: int, classes: int, device, seed: int) -> list:
    """``n_batches`` (inputs, targets) pairs on ``device``, cycling through DISTINCT_BATCHES of them."""
    generator = torch.Generator(device=device).manual_seed(seed)
    distinct = [(torch.randn(batch, 3, size, size, device=device, generator=generator),
                 torch.randint(0, classes, (batch,), device=device, generator=generator))
                for _ in range(min(n_batches, DISTINCT_BATCHES))]
    return [distinct[i % len(distinct)] for i in range(n_batches)]


def check(name: str, dataset: str, amp: bool, channels_last: bool, compile_: bool, *, steps: int, warmup: int,
          seed: int, device: torch.device) -> dict:
    config = profile_config("paper", dataset, amp=amp, channels_last=channels_last, compile=compile_,
                            imagenet_weights=False)  # ImageNet weights do not change the speed; no download
    hierarchy = load_hierarchy(dataset)
    classes = len(hierarchy.classes)
    torch.manual_seed(seed)
    model = build_model(config.backbone, classes, imagenet_weights=False)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format)
    criterion = build_loss("kesl", hierarchy).to(device)
    optimizer = train.build_optimizer(config, model)
    scheduler = train.build_scheduler(config, optimizer, warmup + steps)
    amp_dtype = train.autocast_dtype(device, config.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if compile_:
        torch._dynamo.reset()
    forward_model = torch.compile(model) if compile_ else model
    batches = synthetic_batches(warmup + steps, config.batch_size, config.image_size, classes, device, seed)
    common = dict(scheduler=scheduler, scaler=scaler, amp_dtype=amp_dtype, channels_last=channels_last, quiet=True)

    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train.train_one_epoch(forward_model, criterion, optimizer, batches[:warmup], device, **common)
    warmup_s = time.perf_counter() - start
    stats = train.train_one_epoch(forward_model, criterion, optimizer, batches[warmup:], device, **common)
    return {"configuration": name, "backbone": config.backbone, "image_size": config.image_size,
            "batch_size": config.batch_size, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "channels_last": channels_last, "compile": compile_, "images_per_s": stats["images_per_s"],
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30, "train_loss": stats["train_loss"],
            "warmup_s": warmup_s, "timed_s": stats["time_s"]}


def loss_differences(rows: list[dict]) -> list[dict]:
    """AMP (bf16) minus fp32 mean training loss for each eager pair (same configuration and memory format)."""
    out = []
    for row in rows:
        if row["amp"] == "off" or row["compile"]:
            continue
        for other in rows:
            if (other["configuration"], other["channels_last"], other["compile"], other["amp"]) == \
                    (row["configuration"], row["channels_last"], False, "off"):
                out.append({"configuration": row["configuration"], "channels_last": row["channels_last"],
                            "amp": row["amp"], "fp32": other["train_loss"], "amp_loss": row["train_loss"],
                            "difference": row["train_loss"] - other["train_loss"],
                            "relative": (row["train_loss"] - other["train_loss"]) / other["train_loss"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=270.0,
                        help="start no variant after this many seconds (default 270: the whole check < 5 min)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--require-cuda", action="store_true", help="exit with status 2 (not 0) without CUDA")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")

    if not torch.cuda.is_available():
        print(f"gpu_check: SKIPPED, no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is "
              "False); this check needs one GPU")
        return 2 if args.require_cuda else 0
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"gpu_check on {train.describe_device(device)}, torch {torch.__version__}, "
          f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN {torch.backends.cudnn.allow_tf32}; "
          f"{args.warmup} warm-up + {args.steps} timed steps per variant", flush=True)
    start = time.perf_counter()
    rows, skipped = [], []
    for name, dataset in CONFIGURATIONS:
        for amp, channels_last, compile_ in VARIANTS:
            label = f"{name} amp={'bf16' if amp else 'off'} channels_last={channels_last} compile={compile_}"
            # A compilation takes about a minute: it starts only with COMPILE_RESERVE_S of the budget left.
            reserve = COMPILE_RESERVE_S if compile_ else 0.0
            if (compile_ and args.no_compile) or time.perf_counter() - start > args.budget_s - reserve:
                skipped.append(label)
                continue
            row = check(name, dataset, amp, channels_last, compile_, steps=args.steps, warmup=args.warmup,
                        seed=args.seed, device=device)
            rows.append(row)
            print(f"{label:<62s} {row['images_per_s']:8.0f} img/s  peak {row['peak_memory_gib']:6.2f} GiB  "
                  f"loss {row['train_loss']:.5f}  (warm-up {row['warmup_s']:.0f} s)", flush=True)
            torch.cuda.empty_cache()
    differences = loss_differences(rows)
    print("\nAMP − fp32 mean training loss over the timed steps (same seed, same batches):")
    for d in differences:
        print(f"  {d['configuration']:<9s} channels_last={d['channels_last']!s:<5s} fp32 {d['fp32']:.5f}  "
              f"{d['amp']} {d['amp_loss']:.5f}  difference {d['difference']:+.5f} ({100 * d['relative']:+.3f} %)")
    if skipped:
        print(f"\nskipped ({'--no-compile or ' if args.no_compile else ''}over the {args.budget_s:.0f} s budget): "
              + "; ".join(skipped))
    print(f"\ngpu_check done in {time.perf_counter() - start:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "amp_minus_fp32": differences, "skipped": skipped},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
