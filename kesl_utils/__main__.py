"""Command line: ``python -m kesl_utils train | table | plan | hierarchy``.

``train`` runs one config through the same engine as the notebooks: ``--profile`` and
``--dataset`` give the base config (:func:`kesl_utils.experiments.profile_config`); every other
:class:`~kesl_utils.config.Config` field and every parameter of a registered loss has a flag, e.g.::

    python -m kesl_utils train --profile paper --dataset cub --backbone resnet50 \\
        --loss kesl --lam 0.5 --T 2 --alpha 1 --beta 0.1 --data-root /data

A loss parameter given with a loss that does not take it is an error naming the loss it belongs to,
and so is a schedule parameter (``--step-size``, ``--gamma``) with a schedule that does not use it.
A profile's fine-tuning runs start from the weights of its synthetic pretraining run:
``--imagenet-weights`` replaces that run by torchvision's ImageNet weights (saying so), and
``--no-pretrain-run`` drops it (random initialisation).

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

Errors: an error the library raises on purpose (:func:`deliberate`: one raised by a ``raise``
statement of ``kesl_utils``, or of an exception class it defines, e.g. a missing dataset, a results
folder that cannot be written, a device this machine lacks, a run that diverged) is printed as
``error: <message>`` and the command exits with status 2; ``--debug`` shows its traceback instead.
Anything else (a bug, an error inside torch) keeps its traceback. Warnings print as
``warning: <message>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
import typing
import warnings
from pathlib import Path

import pandas as pd

from . import context, loss_registry, names, paths, profiles
from .config import SCHEDULE_FIELDS, Config, field_types

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
    "imagenet_weights": "start from the backbone's ImageNet weights (torchvision IMAGENET1K_V1); replaces the "
                        "profile's synthetic pretraining run where it has one",
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
    base.add_argument("--no-pretrain-run", action="store_true",
                      help="drop the profile's synthetic pretraining run (quick, smoke: CUB): start from random "
                           "weights, or from ImageNet's with --imagenet-weights, which replaces it anyway")
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
    _add_debug_flag(group)


def _add_debug_flag(parser) -> None:
    # On the command and on each subcommand; SUPPRESS keeps a subcommand from resetting the top-level flag.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error instead of one 'error: ...' line")


def _context(args) -> context.RunContext:
    """The run context of a command line: its flags, then the environment variables, then defaults."""
    return context.from_environment(args.profile, data_root=args.data_root, device=args.device,
                                    executor=getattr(args, "executor", None), progress=False if args.quiet else None,
                                    verbose=not args.quiet if args.command == "train" else args.verbose,
                                    precedence="arguments")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kesl_utils", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one 'error: ...' line")
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

    _add_debug_flag(plan.add_arguments(commands.add_parser(
        "plan", help="every run a profile's notebooks need, cached or missing, with the time it will take here",
        description=plan.__doc__.split("\n\n")[0])))

    hierarchy = commands.add_parser("hierarchy", help="rebuild the shipped WordNet subnets (needs WordNet)")
    hierarchy_commands = hierarchy.add_subparsers(dest="hierarchy_command", required=True)
    regenerate = hierarchy_commands.add_parser("regenerate", help="rebuild data/hierarchies/*_wordnet.json")
    regenerate.add_argument("--check", action="store_true",
                            help="exit with status 1 if a shipped file differs; write nothing")
    regenerate.add_argument("datasets", nargs="*", metavar="dataset",
                            help="WordNet datasets of the registry (default: all)")
    _add_debug_flag(regenerate)
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
    if overrides.get("imagenet_weights") or getattr(args, "no_pretrain_run", False):
        overrides["pretrain_run"] = None  # ImageNet's weights, or random ones, instead of the profile's pretraining
    config = profile_config(profile or args.profile or "quick", args.dataset, **overrides, **params)
    unused = [name for name in overrides
              if name not in SCHEDULE_FIELDS[config.schedule] and any(name in used for used in SCHEDULE_FIELDS.values())]
    if unused:
        owner = {name: schedule for schedule, used in SCHEDULE_FIELDS.items() for name in used}
        raise ValueError("; ".join(
            f"--{name.replace('_', '-')} is a parameter of the {owner[name]!r} schedule, not of the chosen schedule "
            f"{config.schedule!r}" + ("" if "schedule" in overrides else " (the profile's; choose one with --schedule)")
            for name in unused))
    return config


def replaced_pretraining(args: argparse.Namespace, config: Config) -> typing.Optional[str]:
    """What the command line says when its flags drop the profile's pretraining run (else ``None``)."""
    from .experiments import pretrain_config

    if config.pretrain_run is not None or config.dataset not in profiles.profile(config.profile).finetune_datasets:
        return None
    dropped = pretrain_config(config.profile, config.backbone)
    if dropped is None:
        return None
    start = "torchvision's ImageNet weights" if config.imagenet_weights else "random weights"
    flag = "--imagenet-weights" if config.imagenet_weights else "--no-pretrain-run"
    return (f"note: {flag}: this run starts from {start}, not from the profile's synthetic pretraining run "
            f"{dropped.run_id}; it is another run (id {config.run_id}) than the profile's")


def _train(args, parser) -> int:
    try:
        ctx = _context(args)
        config = config_from_args(args, ctx.profile)
    except ValueError as error:
        parser.error(str(error))
    note = replaced_pretraining(args, config)
    if note:
        print(note, file=sys.stderr)
    ctx.prepare()  # the results folder: a file or a read-only folder fails here, before anything else
    # Imported only now: torch and the data stack take seconds, a usage error should not wait.
    from . import distributed
    from .data import with_data_fingerprint
    from .records import load_record, record_path, record_problem, set_aside_records
    from .train import run

    if args.device is not None:
        context.resolve_device(args.device)  # a device this machine lacks fails now, before any set-up
    config = with_data_fingerprint(config, ctx.data_root)
    damaged = record_problem(config, ctx.results_dir)
    cached = not args.force and damaged is None and load_record(config, ctx.results_dir) is not None
    record = run(config, context=ctx, force=args.force, keep_checkpoints=args.keep_checkpoints)
    if not distributed.is_main():  # under torchrun: one summary, from rank 0
        return 0
    print(f"run {record.run_id} ({'cached' if cached else 'trained'} on {record.device}, "
          f"{record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s)")
    if damaged is not None:
        aside = set_aside_records(record.run_id, ctx.results_dir)
        print(f"replaced a damaged record ({damaged}); the damaged file is kept as "
              f"{paths.display_path(aside[-1]) if aside else '(not found)'}")
    print(f"record: {paths.display_path(record_path(record.run_id, ctx.results_dir))}")
    for key, value in record.metrics.items():
        print(f"  {key:>24s}  {value:.4f}")
    return 0


def _table(args, parser) -> int:
    from .table_specs import table_configs

    try:
        ctx = _context(args)
        configs = table_configs(args.name, ctx.profile, seeds=args.seeds)
    except ValueError as error:
        parser.error(str(error).replace("Config.seed", "--seeds"))
    ctx.prepare()  # the results folder: a file or a read-only folder fails here, before anything else
    if args.device is not None:
        context.resolve_device(args.device)
    from .experiments import run_all
    from .prose import describe_gains
    from .tables import format_gains, format_table, report

    results = run_all(configs, ctx, force=args.force)
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


def _plan(args, parser) -> int:
    from . import plan

    # plan only reads the results folder (a read-only one is fine), but one that is a file holds no records.
    results = context.from_environment(args.profile, data_root=args.data_root, precedence="arguments").results_dir
    if results.exists() and not results.is_dir():
        raise NotADirectoryError(f"the results folder {results} is a file, not a folder; remove it, or choose "
                                 "another results folder ($KESL_RESULTS_DIR)")
    return plan.run(args)


#: Where the package lives: an error raised by a ``raise`` statement here is raised on purpose.
_PACKAGE = Path(__file__).resolve().parent


def deliberate(error: BaseException) -> bool:
    """Whether the library raised ``error`` on purpose, with a message meant for the user.

    That is: an ``Exception`` (not a ``KeyboardInterrupt``) whose class is defined in
    ``kesl_utils`` (``DatasetLayoutError``, ``BadImagesError``, ``DivergenceError``, …), or that a
    ``raise`` statement of ``kesl_utils`` raised (its innermost frame is in the package and its
    line starts with ``raise``: the ``ValueError``s, ``TypeError``s and ``PermissionError``s of
    validation). An error raised inside torch, numpy or Python itself, or a ``TypeError`` from a
    bad call inside the package, is not: that is a bug, and its traceback is what to report.
    """
    if not isinstance(error, Exception):
        return False
    if type(error).__module__.split(".")[0] == __package__:
        return True
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    try:
        inside = Path(last.filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False
    return inside and (last.line or "").lstrip().startswith("raise")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: typing.Optional[list] = None) -> int:
    """The command line; returns the exit status (2 for errors, see :func:`deliberate`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    commands = {"train": _train, "table": _table, "plan": _plan, "hierarchy": _hierarchy}
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        try:
            return commands[args.command](args, parser)
        except Exception as error:  # noqa: BLE001 - sorted by deliberate(): a message, or the traceback
            if debug or not deliberate(error):
                raise
            print(f"error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
