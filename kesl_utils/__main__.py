"""Command line: ``python -m kesl_utils train | table | plan | hierarchy``.

``train`` runs one config through the same engine as the notebooks: ``--profile`` and
``--dataset`` give the base config (:func:`kesl_utils.experiments.profile_config`); every other
:class:`~kesl_utils.config.Config` field and every parameter of a registered loss has a flag, e.g.::

    python -m kesl_utils train --profile paper --dataset cub --backbone resnet50 \\
        --loss kesl --lam 0.5 --T 2 --alpha 1 --beta 0.1 --data-root /data

A loss parameter given with a loss that does not take it is an error naming the loss it belongs to.

``table`` runs every config one paper table needs (cached runs are not repeated), prints the table
and its paired comparisons as the notebook shows them, and writes ``<results>/tables/NAME.*``::

    python -m kesl_utils table cub_comparison --profile quick

``plan [--profile quick] [--calibrate]`` lists every run the profile's notebooks need, cached or
missing, with the minutes each missing one will take on this machine (:mod:`kesl_utils.plan`).

``hierarchy regenerate [--check]`` rebuilds the shipped WordNet subnets (needs WordNet).

Where the runs go is the :class:`~kesl_utils.context.RunContext` this entry point builds
(:func:`kesl_utils.context.from_environment`, flags first, then ``$KESL_PROFILE``,
``$KESL_RESULTS_DIR``, ``$KESL_EXECUTOR``, ``$KESL_PROGRESS``): the profile's results folder unless
``$KESL_RESULTS_DIR`` names another. ``--help`` imports no torch.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

import pandas as pd

from . import context, loss_registry, names, paths, profiles
from .config import Config, field_types

FIELD_HELP = {
    "dataset": "dataset whose hierarchy (and, with --source real, images) is used",
    "source": "synthetic images over the real hierarchy, or the real dataset under --data-root",
    "hierarchy_mode": "shipped hierarchy (dag) or WordNet's tree (needs WordNet; taxonomies: same as dag)",
    "n_per_class": "training images per class ('none': all)",
    "n_test_per_class": "test images per class ('none': all)",
    "alignment": "share of synthetic classes whose appearance follows the hierarchy (0-1)",
    "label_noise": "share of synthetic training labels replaced by another class (0-1)",
    "image_size": "input side in pixels",
    "skip_bad_images": "real data: skip images that fail to decode (counted) instead of failing",
    "backbone": "torchvision backbone",
    "imagenet_weights": "start from the backbone's ImageNet weights (torchvision IMAGENET1K_V1)",
    "loss": "the loss, from the registry: " + ", ".join(f"{n} ({s.summary})" for n, s in loss_registry.LOSSES.items()),
    "optimizer": "optimiser",
    "lr": "learning rate of the new classifier",
    "backbone_lr_mult": "backbone learning rate = lr * this",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (all parameters)",
    "schedule": "per-iteration cosine, or step (x gamma every step_size epochs)",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "step_size": "epochs between learning-rate decays (step schedule)",
    "gamma": "learning-rate decay factor (step schedule)",
    "epochs": "training epochs",
    "batch_size": "global batch size",
    "max_batches_per_epoch": "cap on batches per epoch ('none': whole epoch)",
    "eval_every": "evaluate every N epochs (and after the last)",
    "amp": "mixed precision on CUDA (bf16 where supported, else fp16)",
    "channels_last": "channels_last memory format on CUDA",
    "compile": "torch.compile the model",
    "seed": "random seed",
}

#: Fields with no flag: set by the profile (pretrain_run), computed from the data (data_fingerprint),
#: given as separate flags (loss_params), or the base of the config (profile, dataset).
_NO_FLAG = ("profile", "dataset", "pretrain_run", "data_fingerprint", "loss_params")
_CHOICES = {"source": names.SOURCES, "hierarchy_mode": names.HIERARCHY_MODES, "backbone": names.BACKBONES,
            "optimizer": names.OPTIMIZERS, "schedule": names.SCHEDULES}


def _add_profile_flag(parser) -> None:
    parser.add_argument("--profile", default=None, choices=profiles.profile_names(),
                        help="budget profile (default: $KESL_PROFILE, else quick)")


def _optional(parse):
    def parser(text: str):
        return None if text.lower() in ("none", "null", "") else parse(text)
    parser.__name__ = parse.__name__
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    base = parser.add_argument_group("base config")
    _add_profile_flag(base)
    base.add_argument("--dataset", default="cub", choices=tuple(names.DATASETS),
                      help=FIELD_HELP["dataset"] + " (default: cub)")
    group = parser.add_argument_group("config overrides (default: the profile's value)")
    hints = field_types()
    for field in dataclasses.fields(Config):
        name = field.name
        if name in _NO_FLAG:
            continue
        hint = hints[name]
        optional = typing.get_origin(hint) is typing.Union
        base_type = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
        flag = "--" + name.replace("_", "-")
        kwargs = dict(dest=name, default=argparse.SUPPRESS, help=FIELD_HELP.get(name, name))
        if base_type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if name == "loss":
            kwargs["choices"] = tuple(loss_registry.LOSSES)
        elif name in _CHOICES:
            kwargs["choices"] = _CHOICES[name]
        else:
            kwargs["metavar"] = base_type.__name__.upper() + ("|none" if optional else "")
        kwargs["type"] = _optional(base_type) if optional else base_type
        group.add_argument(flag, **kwargs)
    loss_group = parser.add_argument_group("loss parameters (each belongs to the losses named)")
    seen = {}
    for spec in loss_registry.LOSSES.values():
        for param in spec.params:
            seen.setdefault(param.name, (param, []))[1].append(spec.name)
    for name, (param, owners) in seen.items():
        kwargs = dict(dest=f"loss_param:{name}", default=argparse.SUPPRESS, type=param.type,
                      help=f"{param.help} [{', '.join(owners)}; default {param.default}]")
        if param.choices:
            kwargs["choices"] = param.choices
        else:
            kwargs["metavar"] = param.type.__name__.upper()
        loss_group.add_argument("--" + name.replace("_", "-"), **kwargs)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--data-root", default=None,
                       help="folder holding the real datasets (default: data/raw); unused for synthetic")
    group.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    group.add_argument("--force", action="store_true",
                       help="retrain even if a finished record exists (discards checkpoints)")
    group.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def _context(args) -> context.RunContext:
    """The run context of a command line: its flags, then the environment variables, then defaults."""
    return context.from_environment(args.profile, data_root=args.data_root, device=args.device,
                                    executor=getattr(args, "executor", None), progress=False if args.quiet else None,
                                    verbose=not args.quiet if args.command == "train" else args.verbose,
                                    precedence="arguments")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kesl_utils", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,table,plan,hierarchy}")

    train = commands.add_parser(
        "train", help="train and evaluate one config (cached: reruns print the stored record)",
        description="Train and evaluate one config. --profile and --dataset give the base config; every "
                    "other flag overrides one Config field or loss parameter. A finished run is not repeated "
                    "(use --force); an interrupted one resumes from its checkpoint.")
    _add_config_flags(train)
    _add_run_flags(train)
    train.add_argument("--keep-checkpoints", action="store_true",
                       help="keep <results>/checkpoints/<run_id>/last.pt after the run")

    from .table_specs import TABLES

    table = commands.add_parser(
        "table", help="run every config one paper table needs; print and write the table",
        description="Run the configs of one paper table (cached runs are not repeated, failed ones are "
                    "retried), then print the paper-vs-this-run table and its paired comparisons and write "
                    "<results>/tables/NAME.{csv,md,tex}, as the table's notebook does.")
    table.add_argument("name", choices=tuple(TABLES), help="the paper table")
    _add_profile_flag(table)
    table.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="seeds to run (default: the profile's)")
    _add_run_flags(table)
    table.add_argument("--executor", default=None, choices=names.EXECUTORS,
                       help="serial (in this process) or ray (one Ray task per run) (default: $KESL_EXECUTOR, else "
                            "serial)")
    table.add_argument("--verbose", action="store_true",
                       help="per-epoch progress of each run (default: one bar over the runs)")

    from . import plan

    plan.add_arguments(commands.add_parser(
        "plan", help="every run a profile's notebooks need, cached or missing, with the time it will take here",
        description=plan.__doc__.split("\n\n")[0]))

    hierarchy = commands.add_parser("hierarchy", help="rebuild the shipped WordNet subnets (needs WordNet)")
    hierarchy_commands = hierarchy.add_subparsers(dest="hierarchy_command", required=True)
    regenerate = hierarchy_commands.add_parser("regenerate", help="rebuild data/hierarchies/*_wordnet.json")
    regenerate.add_argument("--check", action="store_true",
                            help="exit with status 1 if a shipped file differs; write nothing")
    regenerate.add_argument("datasets", nargs="*", metavar="dataset",
                            help="WordNet datasets of the registry (default: all)")
    return parser


def config_from_args(args: argparse.Namespace, profile: str = None) -> Config:
    """The config a parsed ``train`` command line describes (``ValueError`` for invalid settings),
    in ``profile`` (default: ``--profile``, else quick)."""
    from .experiments import profile_config

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if f.name not in _NO_FLAG and hasattr(args, f.name)}
    params = {key.split(":", 1)[1]: value for key, value in vars(args).items() if key.startswith("loss_param:")}
    loss = overrides.get("loss", "ce")
    foreign = [p for p in params if p not in {q.name for q in loss_registry.loss_spec(loss).params}]
    if foreign:
        raise ValueError("; ".join(
            f"--{p.replace('_', '-')} is a parameter of {' and '.join(map(repr, loss_registry.owners(p)))}, "
            f"not of the chosen loss {loss!r}" + ("" if "loss" in overrides else " (the default; choose one with --loss)")
            for p in foreign))
    return profile_config(profile or args.profile or "quick", args.dataset, **overrides, **params)


def _train(args, parser) -> int:
    try:
        ctx = _context(args)
        config = config_from_args(args, ctx.profile)
    except ValueError as error:
        parser.error(str(error))
    # Imported only now: torch and the data stack take seconds, a usage error should not wait.
    from . import distributed
    from .data import with_data_fingerprint
    from .records import load_record, record_path
    from .train import run

    config = with_data_fingerprint(config, ctx.data_root)
    cached = not args.force and load_record(config, ctx.results_dir) is not None
    record = run(config, context=ctx, force=args.force, keep_checkpoints=args.keep_checkpoints)
    if not distributed.is_main():  # under torchrun: one summary, from rank 0
        return 0
    print(f"run {record.run_id} ({'cached' if cached else 'trained'} on {record.device}, "
          f"{record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s)")
    print(f"record: {paths.display_path(record_path(record.run_id, ctx.results_dir))}")
    for key, value in record.metrics.items():
        print(f"  {key:>24s}  {value:.4f}")
    return 0


def _table(args, parser) -> int:
    try:
        ctx = _context(args)
    except ValueError as error:
        parser.error(str(error))
    from .experiments import run_all
    from .table_specs import table_configs
    from .prose import describe_gains
    from .tables import format_gains, format_table, report

    results = run_all(table_configs(args.name, ctx.profile, seeds=args.seeds), ctx, force=args.force)
    result = report(args.name, results, profile=ctx.profile, results_dir=ctx.results_dir, seeds=args.seeds)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250,
                           "display.max_colwidth", None):
        print(result.note.replace("**", "").replace("`", ""))
        print()
        print(format_table(result.table).to_string(index=False))
        print()
        print("Comparisons, paired by seed")
        print(format_gains(result.gains).to_string(index=False))
        print(describe_gains(result.gains))
    print("written: " + ", ".join(paths.display_path(p) for p in result.files.values()))
    return 1 if (result.results["status"] == "failed").any() else 0


def _hierarchy(args, parser) -> int:
    from .wordnet_subnets import describe_regeneration, regenerate_wordnet_subnets

    try:
        result = regenerate_wordnet_subnets(check=args.check, datasets=args.datasets or None)
    except ValueError as error:
        parser.error(str(error))
    for line in describe_regeneration(result, check=args.check):
        print(line)
    return 1 if args.check and any(result.values()) else 0


def main(argv: typing.Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args, parser)
    if args.command == "table":
        return _table(args, parser)
    if args.command == "plan":
        from . import plan

        return plan.run(args)
    return _hierarchy(args, parser)


if __name__ == "__main__":
    sys.exit(main())
