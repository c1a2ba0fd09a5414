"""Speed options of the trainer's step on the CPU: eager vs channels_last vs torch.compile vs both.

    python benchmarks/bench_options.py [--backbones resnet18,mobilenet_v2,resnet50] [--rounds 5]
        [--steps 5] [--warmup 3] [--image-size 32] [--batch 128] [--threads 1,2]
        [--options eager,channels_last,compile,channels_last+compile] [--json PATH]

What is timed is :func:`kesl_utils.train.train_one_epoch` as the trainer calls it (model, KESL loss
on the CUB hierarchy, the trainer's SGD with two parameter groups — momentum 0.9, weight decay
5e-4 — and its per-iteration schedule), over ``--steps`` batches of random tensors of the quick
profile's shape (32 px, batch 128, 200 classes): data loading is not what is measured.

Method. Per backbone, every (threads, option) pair gets its own model from one initialisation and
its own optimiser. All pairs first take the same ``--warmup`` steps on the same batches: this
excludes compilation (the first step's time is printed; compile ≈ first step − median step) and
doubles as the exactness check — the losses of those steps and the weights after them are
compared with eager's at the same thread count. Then ``--rounds`` rounds each time ``--steps``
steps of every pair, in an order rotated per round, so that load on a shared machine hits all
alike; the same rounds time a large fp32 matrix multiply (``--matmul-size``², median of
``--matmul-repeats``) at each thread count: this machine's practical peak.

Printed per pair: median step time over rounds, images/s, the speed-up over eager (eager's step
time / this option's, per round, median over rounds, with the range), the achieved GFLOP/s of
the training step (forward + backward FLOPs counted once per backbone by
``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix multiplies only) and its
fraction of the matmul rate, then the exactness line, then where the eager step's time goes
(``torch.profiler``, self CPU time by kind of operator) and what that implies.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own log lines on stderr: errors only

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OPTIONS = ("eager", "channels_last", "compile", "channels_last+compile")
NUM_CLASSES_DATASET = "cub"  # 200 classes, the hierarchy KESL's soft labels come from


# -- the library this script uses (one place to adapt at a merge) ---------------------------------
def _criterion():
    from kesl_utils.hierarchy_files import load_hierarchy
    from kesl_utils.losses import build_loss
    hierarchy = load_hierarchy(NUM_CLASSES_DATASET)
    return build_loss("kesl", hierarchy), hierarchy.num_classes


def _model(backbone: str, num_classes: int):
    from kesl_utils.models import build_model
    return build_model(backbone, num_classes)


def _optimizer_and_schedule(model, backbone: str, image_size: int, batch: int, total_steps: int):
    """The trainer's SGD (backbone and classifier groups, momentum 0.9, weight decay 5e-4, lr 0.1)
    and its per-iteration cosine schedule over ``total_steps``."""
    from kesl_utils import train
    from kesl_utils.config import Config
    config = Config(dataset=NUM_CLASSES_DATASET, backbone=backbone, image_size=image_size, batch_size=batch,
                    loss="kesl", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=1)
    optimizer = train.build_optimizer(config, model)
    return optimizer, train.build_scheduler(config, optimizer, total_steps)


def _train_steps(model, criterion, optimizer, scheduler, batches, *, channels_last: bool) -> dict:
    """The trainer's epoch loop over ``batches``: ``train_loss``, ``time_s``, ``images``."""
    from kesl_utils.train import train_one_epoch
    return train_one_epoch(model, criterion, optimizer, batches, torch.device("cpu"), scheduler=scheduler,
                           channels_last=channels_last, quiet=True)


# -- measuring --------------------------------------------------------------------------------------
class Pair:
    """One (threads, option): its model, optimiser, schedule and measurements."""

    def __init__(self, threads: int, option: str, *, backbone, init_state, num_classes, criterion, image_size,
                 batch, total_steps):
        self.threads, self.option = threads, option
        self.channels_last = "channels_last" in option
        self.compiled = "compile" in option
        self.model = _model(backbone, num_classes)
        self.model.load_state_dict(init_state)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer, self.scheduler = _optimizer_and_schedule(self.model, backbone, image_size, batch, total_steps)
        self.forward = torch.compile(self.model) if self.compiled else self.model
        self.criterion = criterion
        self.warmup_losses: list[float] = []
        self.first_step_s = math.nan
        self.step_s: list[float] = []  # per round: mean seconds per step
        self.error = None

    def steps(self, batches) -> dict:
        return _train_steps(self.forward, self.criterion, self.optimizer, self.scheduler, batches,
                            channels_last=self.channels_last)


def _random_batches(count: int, batch: int, image_size: int, num_classes: int, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, image_size, image_size, generator=generator),
             torch.randint(0, num_classes, (batch,), generator=generator)) for _ in range(count)]


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: each gradient asked for (input, weight) costs what the
    forward convolution costs. torch's own formula (2.14) counts the weight gradient of a grouped
    convolution as if it were dense, ``groups`` times too much: 20× MobileNetV2's backward at 32 px."""
    from torch.utils.flop_counter import conv_flop_count
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(model, criterion, batch) -> dict:
    """FLOPs of one forward + loss + backward (convolutions and matrix multiplies, 2 per MAC):
    ``{"forward", "total", "torch_total"}`` (torch_total: with torch's grouped-convolution backward)."""
    import torch.utils.flop_counter as fc
    model = copy.deepcopy(model).train()
    inputs, targets = batch
    counts = {}
    for key, mapping in (("torch_total", None), ("total", {torch.ops.aten.convolution_backward: _conv_backward_flop})):
        with fc.FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            loss = criterion(model(inputs), targets)
            counts.setdefault("forward", int(counter.get_total_flops()))
            loss.backward()
        counts[key] = int(counter.get_total_flops())
        model.zero_grad(set_to_none=True)
    return counts


def matmul_seconds(size: int, repeats: int) -> float:
    """Median seconds of one fp32 ``size × size @ size × size`` over ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: Kinds of operators for "where the time goes" (first match wins; self CPU time of aten ops).
OP_KINDS = (
    ("convolution/matmul", r"conv|mkldnn_convolution|\baten::(addmm|mm|bmm|matmul|linear)\b"),
    ("batch norm", r"batch_norm"),
    ("elementwise (ReLU, add, …)", r"relu|threshold|hardtanh|aten::add|aten::mul|clamp|aten::sub|aten::div"),
    ("pooling", r"pool"),
    ("loss (softmax, KL)", r"softmax|nll|kl_div|xlogy|aten::log\b|aten::exp\b|cross_entropy|index|gather"),
    ("copies and allocation", r"copy_|clone|contiguous|empty|zero_|fill_|aten::to\b|_to_copy|resize|as_strided|view|"
                              r"reshape|transpose|permute|aten::t\b|detach|expand"),
)


def _under_optimizer(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return True
        parent = parent.cpu_parent
    return False


def time_breakdown(pair: Pair, batches) -> dict:
    """Seconds of self CPU time per kind of operator over one pass of ``pair.steps(batches)``: every
    event's self time (so nothing is counted twice), the optimiser's by its ``Optimizer.step`` parent,
    the aten operators by name (:data:`OP_KINDS`), the rest (autograd engine, Python) as "other"."""
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(pair.threads)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pair.steps(batches)
    kinds: dict[str, float] = {}
    for event in prof.events():
        seconds = event.self_cpu_time_total / 1e6
        if event.name.startswith("Optimizer.") or _under_optimizer(event):
            kind = "optimizer"
        elif event.name.startswith("aten::"):
            kind = next((name for name, pattern in OP_KINDS if re.search(pattern, event.name)), "other")
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    return kinds


def bench_backbone(backbone: str, args, echo=print) -> dict:
    criterion, num_classes = _criterion()
    torch.manual_seed(0)
    init_state = copy.deepcopy(_model(backbone, num_classes).state_dict())
    warmup = _random_batches(args.warmup, args.batch, args.image_size, num_classes, seed=1)
    timed = _random_batches(min(args.steps, 4), args.batch, args.image_size, num_classes, seed=2)
    timed = [timed[k % len(timed)] for k in range(args.steps)]
    total_steps = args.warmup + args.rounds * args.steps + 2
    flops_model = _model(backbone, num_classes)
    flops_model.load_state_dict(init_state)
    counted = count_flops(flops_model, criterion, warmup[0])
    flops = counted["total"]
    torch_note = ("" if counted["torch_total"] == flops else
                  f"; torch's own count, {counted['torch_total'] / 1e9:.2f}, takes grouped convolutions' weight "
                  "gradients for dense ones")
    echo(f"\n== {backbone}: {args.image_size} px, batch {args.batch}, {num_classes} classes; "
         f"{flops / 1e9:.2f} GFLOP per training step (forward {counted['forward'] / 1e9:.2f} + backward, "
         f"FlopCounterMode{torch_note})")

    pairs = []
    for threads in args.threads:
        for option in args.options:
            torch.set_num_threads(threads)
            pair = Pair(threads, option, backbone=backbone, init_state=init_state, num_classes=num_classes,
                        criterion=criterion, image_size=args.image_size, batch=args.batch, total_steps=total_steps)
            torch.manual_seed(3)  # the same dropout masks (MobileNetV2) for every pair's warm-up
            try:
                for k, batch in enumerate(warmup):
                    result = pair.steps([batch])
                    if k == 0:
                        pair.first_step_s = result["time_s"]
                    pair.warmup_losses.append(result["train_loss"])
            except Exception as error:  # noqa: BLE001 - an option that cannot run here is reported, not fatal
                pair.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            pairs.append(pair)
    live = [p for p in pairs if p.error is None]

    # Rounds: every live pair and one matmul per thread count, in an order rotated per round.
    matmul = {threads: [] for threads in args.threads}
    torch.set_num_threads(args.threads[0])
    matmul_seconds(args.matmul_size, 1)  # allocate and warm the BLAS once
    slots = [("pair", p) for p in live] + [("matmul", t) for t in args.threads]
    for round_index in range(args.rounds):
        shift = round_index % len(slots)
        for kind, item in slots[shift:] + slots[:shift]:
            if kind == "matmul":
                torch.set_num_threads(item)
                matmul[item].append(matmul_seconds(args.matmul_size, args.matmul_repeats))
            else:
                torch.set_num_threads(item.threads)
                item.step_s.append(item.steps(timed)["time_s"] / args.steps)

    peak = {t: 2 * args.matmul_size ** 3 / statistics.median(v) for t, v in matmul.items()}
    rows = []
    for pair in pairs:
        row = {"backbone": backbone, "threads": pair.threads, "option": pair.option, "error": pair.error}
        if pair.error is None:
            eager = next((p for p in live if p.threads == pair.threads and p.option == "eager"), None)
            step = statistics.median(pair.step_s)
            ratios = ([e / s for e, s in zip(eager.step_s, pair.step_s)] if eager is not None else [])
            row.update(step_ms=1e3 * step, images_per_s=args.batch / step,
                       speedup=statistics.median(ratios) if ratios else math.nan,
                       speedup_min=min(ratios) if ratios else math.nan, speedup_max=max(ratios) if ratios else math.nan,
                       gflops=flops / step / 1e9, matmul_fraction=flops / step / peak[pair.threads],
                       first_step_s=pair.first_step_s,
                       compile_s=pair.first_step_s - step if pair.compiled else math.nan,
                       final_loss=pair.warmup_losses[-1], step_s_per_round=pair.step_s)
            if eager is not None and eager is not pair:
                row["loss_max_abs_diff"] = max(abs(a - b) for a, b in zip(pair.warmup_losses, eager.warmup_losses))
                row["weights_max_abs_diff"] = max(
                    float((a.detach() - b.detach()).abs().max())
                    for a, b in zip(pair.model.parameters(), eager.model.parameters()))
                row["warmup_losses"], row["eager_warmup_losses"] = pair.warmup_losses, eager.warmup_losses
        rows.append(row)

    _print_table(rows, peak, args, echo)
    _print_exactness(rows, args, echo)
    breakdowns = {}
    if not args.no_profile:
        for pair in live:
            if pair.threads == args.threads[0] and not pair.compiled:
                breakdowns[pair.option] = time_breakdown(pair, timed[:1])
        _print_breakdown(breakdowns, rows, flops, peak[args.threads[0]], args, echo)
    return {"backbone": backbone, "flops_per_step": flops, "flops_counted": counted,
            "matmul_gflops": {t: p / 1e9 for t, p in peak.items()},
            "matmul_s_per_round": matmul,
            "rows": rows, "time_breakdown_s": breakdowns}


# -- printing ---------------------------------------------------------------------------------------
TABLE_HEADER = ("threads", "option", "step ms", "img/s", "speed-up", "range", "GFLOP/s", "of matmul",
                "first step s", "compile s")


def _fmt(value, spec) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _print_table(rows, peak, args, echo) -> None:
    echo("matmul rate (fp32 {0}×{0} @ {0}×{0}, median): ".format(args.matmul_size)
         + ", ".join(f"{p / 1e9:.1f} GFLOP/s at {t} thread{'s' if t > 1 else ''}" for t, p in peak.items()))
    widths = (7, 22, 9, 8, 9, 12, 8, 9, 12, 9)
    echo("  ".join(h.rjust(w) if k != 1 else h.ljust(w) for k, (h, w) in enumerate(zip(TABLE_HEADER, widths))))
    for row in rows:
        if row["error"] is not None:
            echo(f"{row['threads']:>7}  {row['option']:<22}  failed: {row['error']}")
            continue
        cells = (str(row["threads"]), row["option"], _fmt(row["step_ms"], ".1f"), _fmt(row["images_per_s"], ".1f"),
                 _fmt(row["speedup"], ".3f") + "×",
                 f"{_fmt(row['speedup_min'], '.2f')}–{_fmt(row['speedup_max'], '.2f')}",
                 _fmt(row["gflops"], ".1f"), _fmt(100 * row["matmul_fraction"], ".1f") + " %",
                 _fmt(row["first_step_s"], ".2f"), _fmt(row["compile_s"], ".1f"))
        echo("  ".join(c.rjust(w) if k != 1 else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths))))
    echo(f"(speed-up: eager's step time / this option's, per round at the same thread count, median of "
         f"{args.rounds} rounds of {args.steps} steps; range: min–max over rounds. compile s: first step − median "
         f"step; a later compiled pair reuses what inductor cached for an earlier one)")


def _print_exactness(rows, args, echo) -> None:
    for row in rows:
        if "loss_max_abs_diff" not in row:
            continue
        same = row["loss_max_abs_diff"] == 0 and row["weights_max_abs_diff"] == 0
        echo(f"exactness vs eager ({row['threads']} threads, {args.warmup} steps from one init on the same batches): "
             f"{row['option']}: {'identical' if same else 'NOT identical'} — loss max |Δ| "
             f"{row['loss_max_abs_diff']:.3g}, weights max |Δ| {row['weights_max_abs_diff']:.3g} (losses "
             + ", ".join(f"{a:.6g}" for a in row["warmup_losses"]) + " vs eager's "
             + ", ".join(f"{a:.6g}" for a in row["eager_warmup_losses"]) + ")")


def _print_breakdown(breakdowns, rows, flops, peak, args, echo) -> None:
    for option, kinds in breakdowns.items():
        total = sum(kinds.values())
        if total <= 0:
            continue
        row = next(r for r in rows if r["option"] == option and r["threads"] == args.threads[0])
        step = row["step_ms"] / 1e3
        shares = sorted(kinds.items(), key=lambda kv: -kv[1])
        echo(f"where {option}'s step goes ({args.threads[0]} threads, profiler self time): "
             + ", ".join(f"{name} {100 * s / total:.0f} %" for name, s in shares))
        conv_share = kinds.get("convolution/matmul", 0.0) / total
        conv_s = conv_share * step
        rest_s = step - conv_s
        if conv_s > 0 and flops / conv_s >= peak:
            echo(f"  → convolutions and matmuls: {100 * conv_share:.0f} % of the step at {flops / conv_s / 1e9:.1f} "
                 "GFLOP/s, at or above the matmul rate measured: the machine's load changed between measurements; "
                 "rerun on an idle machine.")
        elif conv_s > 0:
            ideal = flops / peak
            echo(f"  → convolutions and matmuls: {100 * conv_share:.0f} % of the step at "
                 f"{flops / conv_s / 1e9:.1f} GFLOP/s ({100 * flops / conv_s / peak:.0f} % of the matmul rate). The "
                 f"other {100 * (1 - conv_share):.0f} % ({1e3 * rest_s:.0f} ms: batch norm, elementwise, optimizer, "
                 f"copies) does no counted FLOPs: it is memory- and overhead-bound. At the matmul rate the "
                 f"convolutions would take {1e3 * ideal:.0f} ms, so the step could be at most "
                 f"{step / (ideal + rest_s):.2f}× faster unless the memory-bound part shrinks (fusion: compile).")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet18,mobilenet_v2,resnet50")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated, from {', '.join(OPTIONS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per pair and round")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps first (compilation, exactness)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", default=str(torch.get_num_threads()), help="comma-separated thread counts")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true", help="skip the profiler's breakdown")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    parser.add_argument("--keep-compile-cache", action="store_true",
                        help="reuse inductor's on-disk cache (default: a fresh one, so compile time is compile time)")
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    args.backbones = [b for b in args.backbones.split(",") if b]
    args.options = [o for o in args.options.split(",") if o]
    unknown = sorted(set(args.options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)}; expected {', '.join(OPTIONS)}")
    if "eager" not in args.options:
        args.options.insert(0, "eager")  # every ratio and exactness check is against eager
    args.threads = [int(t) for t in args.threads.split(",") if t]
    if min(args.rounds, args.steps, args.warmup, *args.threads) < 1:
        parser.error("--rounds, --steps, --warmup and --threads must be ≥ 1")

    print(f"bench_options: torch {torch.__version__}, {_cpu_name()}, {default_threads} threads by default; options "
          f"{', '.join(args.options)}; threads {', '.join(map(str, args.threads))}; {args.rounds} rounds × "
          f"{args.steps} steps after {args.warmup} warm-up steps")
    with tempfile.TemporaryDirectory(prefix="bench-options-inductor-") as cache:
        if not args.keep_compile_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        results = [bench_backbone(backbone, args) for backbone in args.backbones]
    if args.json:
        machine = {"torch": torch.__version__, "cpu": _cpu_name(), "platform": platform.platform(),
                   "default_threads": default_threads}
        Path(args.json).write_text(json.dumps({"args": vars(args), "machine": machine, "results": results}, indent=1,
                                              default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
