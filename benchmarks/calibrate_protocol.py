"""Calibration of the quick profile's budgets (issues 13 and 20): informative, converged baselines.

A budget is acceptable when every baseline arm (cross-entropy, per dataset and backbone) beats the
raw-pixel nearest-class-mean (NCM) of its own images and its training curve has plateaued: the
last epoch adds less than ``--plateau`` points (default 1) of training top-1. This script trains
candidate configs through the library (``train.run``: records, caching, pretraining as a run of
its own) into a scratch results folder and prints, per run, the training top-1 per epoch, the last
epoch's gain, the test top-1, the NCM on the same images, the margin, whether both criteria hold,
the images processed and the wall time. Accuracies do not depend on machine load; the wall time
does (the records keep it with the machine that ran it).

    .venv/bin/python benchmarks/calibrate_protocol.py --results build/calibration \\
        --grid '[{"dataset": "cub", "backbone": "resnet18", "epochs": 10}]' \\
        [--pretrain '{"n_per_class": 40, "epochs": 8}'] [--log benchmarks/calibration.md]

Each grid entry is ``dataset`` and ``backbone`` plus Config fields (and loss parameters) applied on
top of the quick profile's config of that dataset (``experiments.profile_config``); ``--pretrain``
changes the pretraining run of the fine-tuned datasets. ``--log`` appends the table (with the
command line and the machine) to a Markdown file: the committed evidence for the chosen budget.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kesl_utils import experiments, ncm, paths  # noqa: E402
from kesl_utils.context import RunContext  # noqa: E402
from kesl_utils.records import load_record, machine_description, utc_now  # noqa: E402
from kesl_utils import train  # noqa: E402

HEADER = ("| dataset | backbone | fields | train top-1 per epoch | last-epoch gain | test top-1 | NCM | margin "
          "| informative and plateaued | images | minutes |")


def candidate(entry: dict, pretrain: dict):
    """The Config of one grid entry: the quick profile's config of its dataset with the entry's fields."""
    entry = dict(entry)
    dataset = entry.pop("dataset")
    config = experiments.profile_config("quick", dataset, **entry)
    if config.pretrain_run is not None and pretrain:
        config = config.replace(pretrain_run=config.pretrain_run.replace(**pretrain))
    return config.replace(eval_every=config.epochs)


def row(config, record, reference: float, plateau: float) -> str:
    curve = [h["train_top1"] for h in record.history]
    gain = curve[-1] - curve[-2] if len(curve) > 1 else float("nan")
    top1 = record.metrics["top1"]
    ok = top1 > reference and gain < plateau
    images = sum(h["train_images"] for h in record.history)
    fields = {k: v for k, v in config.to_dict().items()
              if k in ("n_per_class", "n_test_per_class", "epochs", "lr", "warmup_epochs", "loss")}
    if config.loss_params:
        fields.update(config.loss_params)
    return (f"| {config.dataset} | {config.backbone} | {json.dumps(fields)} | {' '.join(f'{v:.0f}' for v in curve)} "
            f"| {gain:+.1f} | {top1:.2f} | {reference:.2f} | {top1 - reference:+.2f} | {'yes' if ok else '**no**'} "
            f"| {images} | {record.wall_time_s / 60:.1f} |")


def table_log(path, header: str, title: str = ""):
    """Print a Markdown table and, with ``path``, append it to that file: a section heading (time, machine,
    ``title``, the command line), ``header`` and its rule now, then each row as it is measured (an interrupted
    calibration keeps what it measured). Returns ``emit(row)``. Shared with ``calibrate_tutorial.py``."""
    log = Path(path) if path else None

    def emit(text: str) -> None:
        print(text, flush=True)
        if log is not None:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")

    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"\n### {utc_now()} · {machine_description()}{title}\n\n"
                         f"`{' '.join(shlex.quote(a) for a in sys.argv)}`\n\n")
    emit(header)
    emit("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    return emit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True, help="JSON list of dicts: dataset, backbone and Config fields")
    parser.add_argument("--pretrain", default="{}", help="JSON dict changing the pretraining run")
    parser.add_argument("--results", default="build/calibration", help="scratch results folder")
    parser.add_argument("--plateau", type=float, default=1.0, help="points of training top-1 the last epoch may add")
    parser.add_argument("--log", default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    context = RunContext.for_profile("quick", results_dir=paths.in_repository(args.results), progress=False)
    pretrain = json.loads(args.pretrain)
    emit = table_log(args.log, HEADER)
    for entry in json.loads(args.grid):
        config = candidate(entry, pretrain)
        record = load_record(config, context.results_dir) or train.run(config, context=context)
        if record.status != "finished":
            line = f"| {config.dataset} | {config.backbone} | {json.dumps(entry)} | FAILED: {record.error} |"
        else:
            line = row(config, record, ncm.ensure(config, context.results_dir), args.plateau)
        if config.pretrain_run is not None:
            pre = load_record(config.pretrain_run, context.results_dir)
            curve = " ".join(f"{h['train_top1']:.0f}" for h in pre.history)
            line += (f"\n| ↳ pretraining | {config.backbone} | "
                     f"{json.dumps({'n_per_class': pre.config['n_per_class'], 'epochs': pre.config['epochs']})} "
                     f"| {curve} | | {pre.metrics['top1']:.2f} | | | | {sum(h['train_images'] for h in pre.history)} "
                     f"| {pre.wall_time_s / 60:.1f} |")
        emit(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
