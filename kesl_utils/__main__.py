"""Command line: ``python -m kesl_utils train ...`` and ``python -m kesl_utils table NAME ...``.

``train`` runs one config through the same engine as the notebooks: ``--profile`` and
``--dataset`` give the base config (:func:`kesl_utils.experiments.profile_config`), and every
other :class:`~kesl_utils.config.Config` field has a flag that overrides it, e.g.::

    python -m kesl_utils train --profile paper --dataset cub --backbone resnet50 \\
        --loss kesl --lam 0.5 --T 2 --alpha 1 --beta 1 --data-root /data

``table`` runs every config one paper table needs (cached runs are not repeated)::

    python -m kesl_utils table cub_comparison --profile quick --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from . import config as config_module
from .config import Config, field_types

FIELD_HELP = {
    "dataset": "dataset whose hierarchy (and, with --source real, images) is used",
    "source": "synthetic images over the real hierarchy, or the real dataset under --data-root",
    "hierarchy_mode": "shipped hierarchy (dag) or WordNet's tree (needs WordNet; cub: same as dag)",
    "n_per_class": "training images per class ('none': all)",
    "n_test_per_class": "test images per class ('none': all)",
    "alignment": "share of synthetic classes whose appearance follows the hierarchy (0-1)",
    "image_size": "input side in pixels",
    "backbone": "torchvision backbone",
    "pretrained": "start from ImageNet IMAGENET1K_V1 weights",
    "loss": "ce, label smoothing, or KESL (alpha*CE + beta*KL to the soft labels)",
    "lam": "KESL lambda: similarity c_ij = lam**(e_ij - 1)",
    "T": "KESL temperature: g_ij = softmax_j(T * c_ij)",
    "alpha": "KESL weight of the cross-entropy term",
    "beta": "KESL weight of the KL term",
    "kl": "KL direction: reverse KL(p||g) (the paper's) or forward KL(g||p)",
    "epsilon": "label-smoothing mass",
    "optimizer": "optimiser",
    "lr": "learning rate of the new classifier",
    "backbone_lr_mult": "backbone learning rate = lr * this (0.1 when fine-tuning)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (all parameters)",
    "schedule": "per-iteration cosine, or step (x gamma every step_size epochs)",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "step_size": "epochs between learning-rate decays (step schedule)",
    "gamma": "learning-rate decay factor (step schedule)",
    "epochs": "training epochs",
    "batch_size": "batch size",
    "max_batches_per_epoch": "cap on batches per epoch ('none': whole epoch)",
    "eval_every": "evaluate every N epochs (and after the last)",
    "amp": "mixed precision on CUDA (bf16 where supported, else fp16)",
    "channels_last": "channels_last memory format on CUDA",
    "compile": "torch.compile the model",
    "seed": "random seed",
    "profile": "budget profile giving the base config (smoke, quick, paper)",
}

_BASE_FIELDS = ("profile", "dataset")
_DISPLAY_COLUMNS = ["run_id", "dataset", "backbone", "loss", "lam", "T", "alpha", "beta", "epsilon",
                    "lr", "seed", "top1", "top5", "mistake_severity", "hdist@1", "ece", "status",
                    "cached", "wall_time_s"]


def _optional(parse):
    def parser(text: str):
        return None if text.lower() in ("none", "null", "") else parse(text)
    parser.__name__ = parse.__name__
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from .experiments import PROFILES

    choices = {"dataset": config_module.DATASETS, "source": config_module.SOURCES,
               "hierarchy_mode": config_module.HIERARCHY_MODES, "backbone": config_module.BACKBONES,
               "loss": config_module.LOSSES, "kl": config_module.KL_DIRECTIONS,
               "optimizer": config_module.OPTIMIZERS, "schedule": config_module.SCHEDULES,
               "profile": tuple(PROFILES)}
    base = parser.add_argument_group("base config")
    base.add_argument("--profile", default="quick", choices=choices["profile"],
                      help=FIELD_HELP["profile"] + " (default: quick)")
    base.add_argument("--dataset", default="cub", choices=choices["dataset"],
                      help=FIELD_HELP["dataset"] + " (default: cub)")
    group = parser.add_argument_group("config overrides (default: the profile's value)")
    hints = field_types()
    for field in dataclasses.fields(Config):
        name = field.name
        if name in _BASE_FIELDS:
            continue
        hint = hints[name]
        optional = typing.get_origin(hint) is typing.Union
        base_type = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
        flag = "--" + name.replace("_", "-")
        kwargs = dict(dest=name, default=argparse.SUPPRESS, help=FIELD_HELP.get(name, name))
        if base_type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if name in choices:
            kwargs["choices"] = choices[name]
        kwargs["type"] = _optional(base_type) if optional else base_type
        kwargs["metavar"] = base_type.__name__.upper() + ("|none" if optional else "")
        if "choices" in kwargs:
            del kwargs["metavar"]
        group.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kesl_utils", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,table}")

    train = commands.add_parser(
        "train", help="train and evaluate one config (cached: reruns print the stored record)",
        description="Train and evaluate one config. --profile and --dataset give the base "
                    "config; every other flag overrides one Config field. A finished run is "
                    "not repeated (use --force); an interrupted one resumes from its checkpoint.")
    _add_config_flags(train)
    _add_run_flags(train)
    train.add_argument("--keep-checkpoints", action="store_true",
                       help="keep <results>/checkpoints/<run_id>/last.pt after the run")
    train.add_argument("--skip-bad-images", action="store_true",
                       help="skip images that fail to decode (counted once per epoch) instead of failing")

    from .experiments import TABLES

    table = commands.add_parser(
        "table", help="run every config one paper table needs and print the results",
        description="Run the configs of one paper table (table_configs) through run_all; "
                    "cached runs are not repeated, failed ones are retried.")
    table.add_argument("name", choices=TABLES, help="the paper table")
    table.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"),
                       help="budget profile (default: quick)")
    table.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="seeds to run (default: the profile's; quick: 0 1 2)")
    _add_run_flags(table)
    table.add_argument("--verbose", action="store_true",
                       help="per-epoch progress bars of each run (default: one bar over the runs)")
    return parser


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--data-root", default=None,
                       help="folder holding the real datasets (default: data/raw); unused for synthetic")
    group.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    group.add_argument("--force", action="store_true",
                       help="retrain even if a finished record exists (discards checkpoints)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config a parsed ``train`` command line describes."""
    from .experiments import profile_config

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if f.name not in _BASE_FIELDS and hasattr(args, f.name)}
    return profile_config(args.profile, args.dataset, **overrides)


def main(argv: typing.Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import pandas as pd

    if args.command == "train":
        try:
            config = config_from_args(args)
        except ValueError as error:
            parser.error(str(error))
        # Imported only now: torch/torchvision take seconds, a usage error should not wait.
        from .records import load_record, record_path
        from .train import run

        cached = not args.force and load_record(config.run_id) is not None
        record = run(config, data_root=args.data_root, device=args.device, force=args.force,
                     quiet=args.quiet, keep_checkpoints=args.keep_checkpoints,
                     skip_bad_images=args.skip_bad_images)
        print(f"run {record.run_id} ({'cached' if cached else 'trained'} on {record.device}, "
              f"{record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s)")
        print(f"record: {record_path(record.run_id)}")
        for key, value in record.metrics.items():
            print(f"  {key:>16s}  {value:.4f}")
        return 0

    from .experiments import run_all, table_configs

    configs = table_configs(args.name, args.profile, args.seeds)
    frame = run_all(configs, data_root=args.data_root, device=args.device, force=args.force,
                    quiet=args.quiet or not args.verbose, progress=not args.quiet)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(frame[_DISPLAY_COLUMNS].to_string(index=False))
    return 1 if (frame["status"] == "failed").any() else 0


if __name__ == "__main__":
    sys.exit(main())
