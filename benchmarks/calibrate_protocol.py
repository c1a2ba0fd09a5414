"""Calibration of the quick profile's protocol (issue 13): pretraining, fine-tuning budget, convergence.

Trains single runs through the library (``kesl_utils.train.run``: records, caching, pretraining as a
run of its own) into a scratch results folder, and prints per run: the final test top-1, the
raw-pixel nearest-class-mean top-1 on the same images, the training accuracy per epoch (has it
plateaued?) and the images processed (what the run costs). Accuracy does not depend on machine
load; the images column is what turns a grid into a time budget at a measured images/s.

    KESL_RESULTS_DIR=build/calibration .venv/bin/python benchmarks/calibrate_protocol.py \\
        --grid '[{"n_per_class": 16, "epochs": 6}, {"n_per_class": 24, "epochs": 8}]'

Every grid entry is a dict of Config fields (and loss parameters) on top of ``--base``; the key
``start`` is ``"scratch"`` or ``"pretrained"`` (the pretraining run given by ``--pretrain``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kesl_utils import context, train  # noqa: E402
from kesl_utils.config import Config, split_overrides  # noqa: E402
from kesl_utils.records import load_record  # noqa: E402
from kesl_utils import ncm  # noqa: E402

BASE = dict(dataset="cub", source="synthetic", image_size=32, backbone="resnet18", loss="ce", lr=0.1,
            backbone_lr_mult=1.0, weight_decay=5e-4, schedule="cosine", batch_size=128, n_test_per_class=10,
            seed=0, profile="custom")
PRETRAIN = dict(dataset="small_imagenet", source="synthetic", image_size=32, backbone="resnet18", loss="ce",
                n_per_class=40, n_test_per_class=10, epochs=5, lr=0.1, batch_size=128, seed=100, profile="custom")


def make(fields: dict) -> Config:
    config_fields, params = split_overrides(fields)
    return Config(**config_fields, loss_params=params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True, help="JSON list of dicts of Config fields (and 'start')")
    parser.add_argument("--base", default="{}", help="JSON dict changing the base fine-tuning config")
    parser.add_argument("--pretrain", default="{}", help="JSON dict changing the pretraining config")
    args = parser.parse_args()
    if not os.environ.get("KESL_RESULTS_DIR"):
        parser.error("set KESL_RESULTS_DIR to a scratch folder (e.g. build/calibration)")
    ctx = context.from_environment(device="cpu", progress=False, precedence="arguments")
    base = dict(BASE, **json.loads(args.base))
    print("| start | fields | images | train top-1 per epoch | test top-1 | NCM | gap |")
    print("|---|---|---|---|---|---|---|")
    for entry in json.loads(args.grid):
        entry = dict(entry)
        start = entry.pop("start", "pretrained")
        fields = dict(base, **entry)
        if start == "pretrained":
            pretrain_fields = dict(PRETRAIN, **json.loads(args.pretrain))
            pretrain_fields["backbone"] = fields["backbone"]
            fields["pretrain_run"] = make(pretrain_fields)
        config = make(fields)
        fields["eval_every"] = config.epochs
        config = make(fields)
        record = load_record(config, ctx.results_dir) or train.run(config, context=ctx)
        images = sum(h["train_images"] for h in record.history)
        curve = " ".join(f"{h['train_top1']:.0f}" for h in record.history)
        ncm_top1 = ncm.compute(config)
        shown = {k: v for k, v in entry.items()}
        print(f"| {start} | {json.dumps(shown)} | {images} | {curve} | {record.metrics['top1']:.2f} | {ncm_top1:.2f} | "
              f"{record.metrics['top1'] - ncm_top1:+.2f} |", flush=True)
        if config.pretrain_run is not None:
            pre = load_record(config.pretrain_run, ctx.results_dir)
            print(f"|   pretraining {config.pretrain_run.run_id}: test top-1 {pre.metrics['top1']:.2f}, "
                  f"{sum(h['train_images'] for h in pre.history)} images | | | | | | |", flush=True)


if __name__ == "__main__":
    main()
