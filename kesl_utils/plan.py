"""The run plan: every run a profile's notebooks need, cached or missing, and what the missing ones cost here.

    python -m kesl_utils.plan [--profile quick] [--data-root data/raw] [--calibrate] [--write plan.csv]

Runs are grouped by the notebook that needs them first, in the order ``make reproduce`` executes
the notebooks (:data:`NOTEBOOKS`): a run shared by several notebooks (the CUB baseline of Tables 1,
4 and 5, the CE runs of the leaderboard, …) is listed once, under the first, and ``needed_by``
names every notebook that reads it. A fine-tuning run's pretraining run (its ``pretrain``
Config) is a run of its own, listed just before the first run that starts from it. Notebook 10's
runs are not Configs: they are its budget (:mod:`kesl_utils.tutorial`) × {CE, KESL} × seeds.

**Cached** means a finished run record exists (:func:`kesl_utils.records.load_record`; for the
tutorial, a stored result with the budget's settings, method and seed). For every missing run
the plan estimates its minutes on this machine (:func:`estimate_minutes`):

    minutes = (training images + FORWARD_FACTOR × evaluated test images) / (images/s) / 60

with training images = full batches per epoch (capped by ``max_batches_per_epoch``) × batch size ×
epochs, evaluated test images = test images × evaluations (every ``eval_every`` epochs and after
the last), and a forward pass costing about a third of a training step (:data:`FORWARD_FACTOR`).
The images/s figure of a (backbone, image size) comes from

* **records** of this machine (device string equal to this process's, e.g. ``cpu (2 threads)``):
  per record, its images processed by the formula above over its ``wall_time_s`` — the effective
  speed of a whole run, start-up, data generation and evaluation included — median over records;
* or a **calibration** (``--calibrate``): a few training steps of the trainer per backbone at the
  profile's image size and batch, on the profile's synthetic data; training only, so estimates
  from it leave out start-up and checkpoints (a few percent on the quick profile).

Records win where both exist (they are whole runs), unless ``--prefer calibration``.

The file of ``--write`` is CSV, one row per run, sorted by notebook and run id, with no timestamp:
the identity columns (:data:`IDENTITY_COLUMNS`) depend only on the profile's configs; ``status``
and ``est_minutes`` (one decimal) on the records and the machine, and come last.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import pandas as pd

__all__ = ["FORWARD_FACTOR", "NOTEBOOKS", "IDENTITY_COLUMNS", "FILE_COLUMNS", "TutorialRun", "notebook_runs",
           "runs_needed", "skipped_notebooks", "plan", "estimate_minutes", "image_counts", "processed_images",
           "record_throughput", "calibrate", "calibration_pairs", "throughput_table", "as_mapping", "with_estimates",
           "totals", "write_plan", "add_arguments", "run", "main"]

#: Cost of one test image (forward pass, no gradient) relative to one training image.
FORWARD_FACTOR = 1 / 3

#: The columns of the written plan that depend only on the profile's configs, then the others.
IDENTITY_COLUMNS = ("run_id", "notebook", "kind", "dataset", "backbone", "needed_by")
FILE_COLUMNS = IDENTITY_COLUMNS + ("status", "est_minutes")


# -- the library this module reads (one place to adapt at a merge) --------------------------------
def _table_configs(table: str) -> Callable[[str], list]:
    def configs(profile: str) -> list:
        from . import table_specs
        return table_specs.table_configs(table, profile)
    return configs


def _leaderboard_configs(profile: str) -> list:
    from . import leaderboard
    return leaderboard.all_configs(profile)


def _sweep_configs(profile: str) -> list:
    from . import sweep
    return sweep.all_configs(profile)


def _pretrain_of(config):
    """The Config whose weights ``config`` starts from, or ``None``."""
    return config.pretrain_run


def _load_record(config, results_dir):
    from .records import load_record
    return load_record(config, results_dir)


def _finished_records(results_dir) -> list:
    from .records import load_records
    return load_records(results_dir)


def _config_from_dict(data):
    from .config import Config
    return Config.from_dict(data)


def _with_data_fingerprint(config, data_root):
    """Real-data configs are named with their files' digest, as the trainer names them."""
    from .data import with_data_fingerprint
    return with_data_fingerprint(config, data_root)


def _num_classes(dataset: str) -> int:
    from .hierarchy_files import load_hierarchy
    return load_hierarchy(dataset).num_classes


def _synthetic_default_per_class(split: str) -> int:
    from .data.synthetic import DEFAULT_N_PER_CLASS
    return DEFAULT_N_PER_CLASS[split]


def _real_split_size(config, split: str, data_root) -> Optional[int]:
    """Images of a real dataset's split as the trainer builds it (``None``: the files are not here)."""
    from .data import build_dataset
    from .hierarchy_files import load_hierarchy
    try:
        data = build_dataset(config.dataset, split, source="real", hierarchy=load_hierarchy(config.dataset),
                             data_root=data_root, image_size=config.image_size,
                             n_per_class=config.n_per_class if split == "train" else config.n_test_per_class)
    except FileNotFoundError:
        return None
    return len(data)


def _this_device() -> str:
    """How this process's run records name their machine (``RunRecord.machine``)."""
    from .records import machine_description
    return machine_description()


def _tutorial_budget(profile: str):
    from . import tutorial
    return tutorial.budget(profile)


def _tutorial_classes() -> int:
    """Classes of notebook 10's hierarchy (CIFAR-100's taxonomy, one row per class)."""
    from . import paths
    return len(pd.read_csv(paths.hierarchies_dir() / "cifar100_taxonomy.csv"))


def _tutorial_cached(results_dir, method: str, seed: int, settings: Mapping) -> bool:
    """Whether notebook 10 stored a result for (method, seed) under this budget.

    The notebook's cache key also holds the data's digest and its recipe, which only the notebook
    knows; a stored result with the budget's settings, the method and the seed counts as cached.
    """
    import json

    from . import tutorial
    for path in sorted(tutorial.cache_dir(results_dir).glob(f"{method}-{seed}-*.json")):
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if stored.get("method") == method and stored.get("seed") == seed and all(
                stored.get(k) == v for k, v in settings.items()):
            return True
    return False


def _settings_key(settings: Mapping) -> str:
    from . import tutorial
    return tutorial.settings_key(settings)


def _display_path(path) -> str:
    from . import paths
    return paths.display_path(path)


def _results_dir(profile: str, results_dir=None):
    from . import paths
    return paths.default_results_dir(profile) if results_dir is None else results_dir


# -- what each notebook needs ---------------------------------------------------------------------
@dataclass(frozen=True)
class TutorialRun:
    """One training run of notebook 10: ResNet-18 on CIFAR-100 (or its stand-in) under the tutorial's budget."""

    method: str
    seed: int
    image_size: int
    n_train_per_class: int
    n_test_per_class: int
    epochs: int
    batch_size: int
    classes: int
    settings: tuple  # the budget's settings, sorted (key, value) pairs

    backbone = "resnet18"
    dataset = "cifar100"

    @property
    def run_id(self) -> str:
        key = _settings_key({**dict(self.settings), "method": self.method, "seed": self.seed})
        return f"tutorial-{self.method.lower()}-seed{self.seed}-{key[:10]}"


def _tutorial_runs(profile: str) -> list[TutorialRun]:
    budget = _tutorial_budget(profile)
    settings = tuple(sorted(budget.settings().items()))
    # As the notebook: all of CIFAR-100 (500 training, 100 test images per class) when the budget says None.
    return [TutorialRun(method, int(seed), budget.image_size, budget.n_train_per_class or 500,
                        budget.n_test_per_class or 100, budget.epochs, budget.batch_size, _tutorial_classes(),
                        settings)
            for seed in budget.seeds for method in ("CE", "KESL")]


@dataclass(frozen=True)
class Notebook:
    """A notebook of the series and the runs it needs in a profile (``runs(profile)``)."""

    stem: str
    runs: Callable[[str], list]

    @property
    def prefix(self) -> str:
        return self.stem.split("_", 1)[0]


#: The notebooks that train, in the order ``make reproduce`` runs them.
NOTEBOOKS: tuple[Notebook, ...] = (
    Notebook("03_cub_comparison", _table_configs("cub_comparison")),
    Notebook("04_general_recognition", _table_configs("general_recognition")),
    Notebook("05_label_smoothing", _table_configs("label_smoothing")),
    Notebook("06_hyperparameter_ablation", _table_configs("hyperparameter_ablation")),
    Notebook("07_backbone_ablation", _table_configs("backbone_ablation")),
    Notebook("08_hierarchy_aware_methods", _leaderboard_configs),
    Notebook("09_when_does_kesl_help", _sweep_configs),
    Notebook("10_your_own_hierarchy", _tutorial_runs),
)


def _notebook(prefix: str) -> Notebook:
    for notebook in NOTEBOOKS:
        if notebook.prefix == prefix or notebook.stem == prefix:
            return notebook
    raise ValueError(f"no training notebook {prefix!r}; expected one of "
                     f"{', '.join(repr(n.prefix) for n in NOTEBOOKS)}")


def _with_pretraining(runs: Iterable) -> list[tuple[str, object]]:
    """``(kind, run)``: each run preceded by its pretraining run ("pretrain"), each once."""
    out, seen = [], set()
    for run in runs:
        pretrain = _pretrain_of(run) if not isinstance(run, TutorialRun) else None
        items = ([("pretrain", pretrain)] if pretrain is not None else []) + [
            ("tutorial" if isinstance(run, TutorialRun) else "train", run)]
        for kind, item in items:
            if item.run_id not in seen:
                seen.add(item.run_id)
                out.append((kind, item))
    return out


def _notebook_configs(notebook: Notebook, profile: str) -> tuple[list, Optional[str]]:
    """(runs, None), or ([], why) for a notebook that cannot run in ``profile`` (the sweep turns
    knobs of the synthetic generator: not on the paper profile's real data)."""
    try:
        return notebook.runs(profile), None
    except ValueError as error:
        return [], str(error)


def notebook_runs(profile: str) -> dict[str, list[tuple[str, object]]]:
    """``{notebook stem: [(kind, run), …]}``: every run each notebook needs, its pretraining runs
    included, whether or not an earlier notebook needs it too. A notebook that cannot run in
    ``profile`` (the sweep on real data) has none."""
    return {n.stem: _with_pretraining(_notebook_configs(n, profile)[0]) for n in NOTEBOOKS}


def skipped_notebooks(profile: str) -> dict[str, str]:
    """``{notebook stem: why}`` for the notebooks whose runs ``profile`` cannot make."""
    out = {}
    for notebook in NOTEBOOKS:
        _, why = _notebook_configs(notebook, profile)
        if why is not None:
            out[notebook.stem] = why
    return out


def runs_needed(notebook_prefix: str, profile: str, *, new_only: bool = False) -> int:
    """How many runs notebook ``notebook_prefix`` (``"08"`` or its stem) needs in ``profile``,
    pretraining runs included; with ``new_only``, only those no earlier notebook needs (its rows
    of the plan). Counts configs only: no record is read, nothing is trained."""
    target = _notebook(notebook_prefix).stem
    earlier: set = set()
    for stem, runs in notebook_runs(profile).items():
        ids = {run.run_id for _, run in runs}
        if stem == target:
            return len(ids - earlier) if new_only else len(ids)
        earlier |= ids
    raise AssertionError("unreachable")


# -- images and minutes ---------------------------------------------------------------------------
def _split_size(config, split: str, data_root=None) -> Optional[int]:
    per_class = config.n_per_class if split == "train" else config.n_test_per_class
    if config.source == "synthetic":
        return _num_classes(config.dataset) * (per_class or _synthetic_default_per_class(split))
    if per_class is not None and data_root is None:
        return _num_classes(config.dataset) * per_class  # at most; a class may have fewer images
    return _real_split_size(config, split, data_root)


def _evaluations(epochs: int, eval_every: int) -> int:
    """Epochs with a test pass: every ``eval_every``-th and the last (as the trainer does)."""
    return epochs // eval_every + (1 if epochs % eval_every else 0)


def image_counts(run, data_root=None) -> tuple[float, float]:
    """(training images, evaluated test images) of a whole run; NaN where the data size is unknown."""
    if isinstance(run, TutorialRun):
        # The notebook's loader keeps the last partial batch and evaluates once, after training.
        return (float(run.classes * run.n_train_per_class * run.epochs), float(run.classes * run.n_test_per_class))
    train_size = _split_size(run, "train", data_root)
    test_size = _split_size(run, "test", data_root)
    if train_size is None or test_size is None:
        return math.nan, math.nan
    batches = train_size // run.batch_size  # the training loader drops the last partial batch
    if run.max_batches_per_epoch is not None:
        batches = min(batches, run.max_batches_per_epoch)
    return (float(batches * run.batch_size * run.epochs),
            float(test_size * _evaluations(run.epochs, run.eval_every)))


def processed_images(run, data_root=None) -> float:
    """Training images + :data:`FORWARD_FACTOR` × evaluated test images of a whole run."""
    train, test = image_counts(run, data_root)
    return train + FORWARD_FACTOR * test


def _lookup(throughput, run) -> float:
    if isinstance(throughput, Mapping):
        value = throughput.get((run.backbone, int(run.image_size)))
        return math.nan if value is None else float(value)
    return float(throughput)


def estimate_minutes(config, throughput, *, data_root=None) -> float:
    """Estimated minutes of run ``config`` (a Config or a :class:`TutorialRun`) on a machine that
    processes ``throughput`` images/s — a number, or ``{(backbone, image size): images/s}`` —
    by the formula of the module docstring. NaN when no figure fits the run."""
    rate = _lookup(throughput, config)
    if not rate > 0:
        return math.nan
    return processed_images(config, data_root) / rate / 60.0


# -- images per second ----------------------------------------------------------------------------
THROUGHPUT_COLUMNS = ("backbone", "image_size", "images_per_s", "source", "runs")


def record_throughput(profile: str, *, results_dir=None, device: Optional[str] = None) -> pd.DataFrame:
    """Effective images/s per (backbone, image size) from ``profile``'s finished records made on
    ``device`` (default: this machine's device string): per record, :func:`processed_images` /
    ``wall_time_s``; the median over records. ``frame.attrs["other_devices"]``: how many records
    were left out as made elsewhere."""
    device = _this_device() if device is None else device
    rates: dict[tuple, list] = {}
    other = 0
    for record in _finished_records(_results_dir(profile, results_dir)):
        if record.machine != device:
            other += 1
            continue
        try:
            config = _config_from_dict(record.config)
        except (ValueError, TypeError):
            continue  # a record of an older Config layout
        if not record.wall_time_s > 0:
            continue
        images = processed_images(config)
        if images > 0:
            rates.setdefault((config.backbone, config.image_size), []).append(images / record.wall_time_s)
    frame = pd.DataFrame([{"backbone": b, "image_size": s, "images_per_s": statistics.median(v),
                           "source": "records", "runs": len(v)} for (b, s), v in sorted(rates.items())],
                         columns=list(THROUGHPUT_COLUMNS))
    frame.attrs["device"] = device
    frame.attrs["other_devices"] = other
    return frame


def _calibration_rate(backbone: str, image_size: int, batch_size: int, dataset: str, *, steps: int,
                      warmup: int) -> float:
    """Training images/s of the trainer's epoch loop on ``dataset``'s synthetic images (data
    generation included), ``warmup`` unmeasured steps first."""
    import torch

    from .data import build_dataset, build_loader
    from .hierarchy_files import load_hierarchy
    from .losses import build_loss
    from .models import build_model
    from .train import train_one_epoch

    hierarchy = load_hierarchy(dataset)
    n = hierarchy.num_classes
    per_class = -(-(max(steps, warmup) * batch_size) // n)
    device = torch.device("cpu")
    data = build_dataset(dataset, "train", source="synthetic", hierarchy=hierarchy, image_size=image_size,
                         n_per_class=per_class)
    loader = build_loader(data, batch_size, train=True, device=device)
    torch.manual_seed(0)
    model = build_model(backbone, n)
    criterion = build_loss("kesl", hierarchy)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    if warmup:
        train_one_epoch(model, criterion, optimizer, loader, device, max_batches=warmup, quiet=True)
    return train_one_epoch(model, criterion, optimizer, loader, device, max_batches=steps, quiet=True)["images_per_s"]


def calibrate(pairs: Iterable[tuple[str, int, int, str]], *, steps: int = 3, warmup: int = 1,
              echo: Optional[Callable[[str], None]] = print) -> pd.DataFrame:
    """Measured training images/s for each ``(backbone, image size, batch size, dataset)``."""
    rows = []
    for backbone, image_size, batch_size, dataset in pairs:
        rate = _calibration_rate(backbone, image_size, batch_size, dataset, steps=steps, warmup=warmup)
        if echo is not None:
            echo(f"calibration: {backbone} at {image_size} px, batch {batch_size}: {rate:.1f} images/s "
                 f"(training, {steps} steps after {warmup} unmeasured)")
        rows.append({"backbone": backbone, "image_size": image_size, "images_per_s": rate,
                     "source": "calibration", "runs": 0})
    return pd.DataFrame(rows, columns=list(THROUGHPUT_COLUMNS))


def calibration_pairs(frame: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """One ``(backbone, image size, batch, dataset)`` per (backbone, image size) of the missing runs:
    the batch and dataset of its first missing Config run (a size only the tutorial needs is
    measured with the tutorial's batch on CUB's hierarchy: the classifier's width barely changes a step)."""
    out = {}
    missing = frame[frame["status"] == "missing"]
    for row in sorted(missing.itertuples(), key=lambda r: r.kind == "tutorial"):  # stable: Configs first
        dataset = "cub" if row.kind == "tutorial" else row.dataset
        out.setdefault((row.backbone, int(row.image_size)), (row.backbone, int(row.image_size), int(row.batch_size),
                                                             dataset))
    return sorted(out.values())


def throughput_table(records: pd.DataFrame, calibration: Optional[pd.DataFrame] = None, *,
                     prefer: str = "records") -> pd.DataFrame:
    """One images/s figure per (backbone, image size): ``prefer``'s source where both have one."""
    if prefer not in ("records", "calibration"):
        raise ValueError(f"prefer={prefer!r}; expected 'records' or 'calibration'")
    frames = [f for f in (records, calibration) if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=list(THROUGHPUT_COLUMNS))
    both = pd.concat(frames, ignore_index=True)
    both["rank"] = (both["source"] != prefer).astype(int)
    best = both.sort_values(["backbone", "image_size", "rank"]).drop_duplicates(["backbone", "image_size"])
    return best.drop(columns="rank").reset_index(drop=True)


def as_mapping(table: pd.DataFrame) -> dict:
    """``{(backbone, image size): images/s}`` of a throughput table."""
    return {(r.backbone, int(r.image_size)): float(r.images_per_s) for r in table.itertuples()}


# -- the plan -------------------------------------------------------------------------------------
PLAN_COLUMNS = ("notebook", "run_id", "kind", "dataset", "backbone", "image_size", "batch_size", "needed_by",
                "status", "train_images", "eval_images", "images_per_s", "est_minutes", "wall_minutes", "note", "run")


def plan(profile: str = "quick", *, results_dir=None, data_root=None, throughput=None) -> pd.DataFrame:
    """Every run ``profile``'s notebooks need, one row each, in the order they would run.

    Columns (:data:`PLAN_COLUMNS`): notebook (the first that needs the run), run_id, kind
    (``train`` | ``pretrain`` | ``tutorial``), dataset, backbone, image_size, batch_size, needed_by
    (the prefixes of every notebook that needs it), status (``cached`` | ``missing``),
    train_images and eval_images (whole run), images_per_s (the figure used), est_minutes (missing
    runs), wall_minutes (cached runs: their recorded wall time), note.

    throughput: images/s, ``{(backbone, image size): images/s}``; ``None``: this machine's
    records (:func:`record_throughput`). results_dir: where the records are (default: the
    profile's folder).
    """
    results_dir = _results_dir(profile, results_dir)
    if throughput is None:
        throughput = as_mapping(record_throughput(profile, results_dir=results_dir))
    rows, where = [], {}
    for stem, runs in notebook_runs(profile).items():
        prefix = stem.split("_", 1)[0]
        for kind, run in runs:
            note = ""
            if kind != "tutorial":
                try:
                    run = _with_data_fingerprint(run, data_root)
                except FileNotFoundError:
                    note = "real data not found under the data root"
            if run.run_id in where:
                rows[where[run.run_id]]["needed_by"].append(prefix)
                continue
            if kind == "tutorial":
                cached, wall = _tutorial_cached(results_dir, run.method, run.seed, dict(run.settings)), math.nan
            else:
                record = None if note else _load_record(run, results_dir)
                cached, wall = record is not None, (record.wall_time_s / 60 if record is not None else math.nan)
            train, test = image_counts(run, data_root)
            where[run.run_id] = len(rows)
            rows.append({"notebook": stem, "run_id": run.run_id, "kind": kind, "dataset": run.dataset,
                         "backbone": run.backbone, "image_size": run.image_size, "batch_size": run.batch_size,
                         "needed_by": [prefix], "status": "cached" if cached else "missing",
                         "train_images": train, "eval_images": test, "images_per_s": math.nan,
                         "est_minutes": math.nan, "wall_minutes": wall, "note": note, "run": run})
    frame = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    frame["needed_by"] = [" ".join(p) for p in frame["needed_by"]]
    frame = with_estimates(frame, throughput)
    frame.attrs["profile"] = profile
    frame.attrs["results_dir"] = results_dir
    frame.attrs["skipped"] = skipped_notebooks(profile)
    return frame


def with_estimates(frame: pd.DataFrame, throughput) -> pd.DataFrame:
    """``frame`` with images_per_s and est_minutes of every run, cached or not (what it costs from
    scratch on this machine; the totals count the missing ones), from ``throughput`` (as in
    :func:`estimate_minutes`)."""
    frame = frame.copy()
    rates = [_lookup(throughput, row) for row in frame.itertuples()]
    images = frame["train_images"] + FORWARD_FACTOR * frame["eval_images"]
    frame["images_per_s"] = rates
    frame["est_minutes"] = [n / rate / 60 if rate > 0 else math.nan for n, rate in zip(images, rates)]
    return frame


def totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per notebook and overall: runs, cached, missing, minutes recorded (cached), minutes estimated
    (missing), and missing runs with no images/s figure."""
    def summary(rows: pd.DataFrame) -> dict:
        missing = rows["status"] == "missing"
        return {"runs": len(rows), "cached": int((~missing).sum()), "missing": int(missing.sum()),
                "min_recorded": float(rows.loc[~missing, "wall_minutes"].sum()),
                "min_estimated": float(rows.loc[missing, "est_minutes"].sum()),
                "no_estimate": int((missing & rows["est_minutes"].isna()).sum())}
    out = {stem: summary(rows) for stem, rows in frame.groupby("notebook", sort=False)}
    out["all"] = summary(frame)
    return pd.DataFrame.from_dict(out, orient="index")


README_BEGIN = "<!-- plan:{profile} begin: python -m kesl_utils plan --profile {profile} --readme README.md -->"
README_END = "<!-- plan:{profile} end -->"


def readme_block(frame: pd.DataFrame, table: pd.DataFrame, *, machine: str) -> str:
    """The README's statement of what ``frame``'s profile costs, from scratch, on ``machine``:
    the images/s figures it was estimated with, then runs and minutes per notebook (the sums of the
    written plan's ``est_minutes``, which a test recomputes from the committed plan file)."""
    profile = frame.attrs.get("profile", "?")
    rates = "; ".join(f"{r.backbone} {r.images_per_s:.0f} images/s at {int(r.image_size)} px "
                      f"({'from ' + str(r.runs) + ' runs' if r.source == 'records' else r.source})"
                      for r in table.itertuples())
    lines = [README_BEGIN.format(profile=profile),
             f"Estimated by the run plan on {machine} ({rates or 'no images/s figure'}):", "",
             "| notebook | runs | minutes from scratch |", "|---|---|---|"]
    def written(minutes: pd.Series) -> pd.Series:  # as write_plan writes them, so the file reproduces the sums
        return minutes.dropna().map(lambda m: float(f"{m:.1f}"))

    def total(minutes: pd.Series) -> float:  # a sum of tenths, to a tenth: the same whatever the order summed
        return round(float(minutes.sum()), 1)

    for stem, rows in frame.groupby("notebook", sort=False):
        known = written(rows["est_minutes"])
        lines.append(f"| {stem} | {len(rows)} | {total(known):.0f}"
                     + (f" (+{len(rows) - len(known)} runs without an estimate)" if len(known) < len(rows) else "")
                     + " |")
    known = total(written(frame["est_minutes"]))
    lines += [f"| all | {len(frame)} | {known:.0f} ({known / 60:.1f} h) |", "", README_END.format(profile=profile)]
    return "\n".join(lines)


def update_readme(path, block: str, profile: str) -> bool:
    """Replace the plan block of ``profile`` in the Markdown file ``path``; False if it has none."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    begin, end = README_BEGIN.format(profile=profile), README_END.format(profile=profile)
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    Path(path).write_text(head + block + rest.split(end, 1)[1], encoding="utf-8")
    return True


def write_plan(frame: pd.DataFrame, path) -> None:
    """The plan as CSV (:data:`FILE_COLUMNS`), sorted by notebook and run id, est_minutes to 0.1."""
    from pathlib import Path

    out = frame.loc[:, list(FILE_COLUMNS)].sort_values(["notebook", "run_id"]).reset_index(drop=True)
    out["est_minutes"] = [f"{m:.1f}" if m == m else "" for m in out["est_minutes"]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(out.to_csv(index=False, lineterminator="\n"), encoding="utf-8")


# -- the command line -----------------------------------------------------------------------------
def _minutes(value: float) -> str:
    return "—" if value != value else f"{value:.1f}"


def _print_plan(frame: pd.DataFrame, table: pd.DataFrame, *, summary_only: bool, echo) -> None:
    profile = frame.attrs.get("profile", "?")
    echo(f"Run plan of profile {profile!r}: {len(frame)} runs in {frame['notebook'].nunique()} notebooks "
         f"(records in {_display_path(frame.attrs.get('results_dir', _results_dir(profile)))})")
    device = table.attrs.get("device", _this_device())
    echo(f"images/s on this machine ({device}); records: a whole run's images "
         f"(test images × {FORWARD_FACTOR:.2f}) / wall time, median; calibration: training steps only")
    needed = sorted({(r.backbone, int(r.image_size)) for r in frame.itertuples() if r.status == "missing"})
    shown = sorted(set(needed) | {(r.backbone, int(r.image_size)) for r in table.itertuples()})
    lookup = {(r.backbone, int(r.image_size)): r for r in table.itertuples()}
    for key in shown:
        row = lookup.get(key)
        if row is None:
            echo(f"  {key[0]:<13} {key[1]:>4} px  {'—':>8}  no record of this machine; run with --calibrate")
        else:
            origin = f"{row.runs} records" if row.source == "records" else "calibration"
            echo(f"  {key[0]:<13} {key[1]:>4} px  {row.images_per_s:>8.1f}  {origin}")
    if table.attrs.get("other_devices"):
        echo(f"  ({table.attrs['other_devices']} records made on another device are not used)")
    if not summary_only:
        for stem, rows in frame.groupby("notebook", sort=False):
            echo(f"\n{stem}")
            for r in rows.itertuples():
                shared = f"  also {r.needed_by.split(' ', 1)[1]}" if " " in r.needed_by else ""
                cost = f"est. {_minutes(r.est_minutes)} min" if r.status == "missing" else (
                    f"took {_minutes(r.wall_minutes)} min" if r.wall_minutes == r.wall_minutes else "")
                echo(f"  {r.run_id:<44} {r.kind:<8} {r.status:<7} {cost}{shared}"
                     + (f"  ({r.note})" if r.note else ""))
    for stem, why in frame.attrs.get("skipped", {}).items():
        echo(f"\n{stem}: no runs in this profile ({why})")
    summary = totals(frame)
    echo(f"\n{'notebook':<28} {'runs':>5} {'cached':>7} {'missing':>8} {'min recorded':>13} {'min to do (est.)':>17}")
    for stem, r in summary.iterrows():
        gap = f"  ({int(r.no_estimate)} without an estimate)" if r.no_estimate else ""
        todo = "—" if r.missing and r.no_estimate == r.missing else f"{r.min_estimated:.1f}"
        echo(f"{stem:<28} {int(r.runs):>5} {int(r.cached):>7} {int(r.missing):>8} {r.min_recorded:>13.1f} "
             f"{todo:>17}{gap}")
    left = summary.loc["all", "min_estimated"]
    unknown = int(summary.loc["all", "no_estimate"])
    echo(f"to do: {int(summary.loc['all', 'missing'])} runs, about {left / 60:.1f} h on this machine"
         + (f", plus {unknown} runs without an images/s figure (--calibrate measures one)" if unknown else ""))


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``plan`` (for ``python -m kesl_utils plan`` and ``python -m kesl_utils.plan``)."""
    from . import profiles
    parser.add_argument("--profile", default="quick", choices=profiles.profile_names(), help="budget profile (default: quick)")
    parser.add_argument("--data-root", default=None, help="real datasets (paper profile; default data/raw)")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure training images/s per backbone at the profile's image size and batch")
    parser.add_argument("--calibration-steps", type=int, default=3, help="measured steps per backbone (default 3)")
    parser.add_argument("--prefer", choices=("records", "calibration"), default="records",
                        help="which images/s figure to use where both exist (default: records)")
    parser.add_argument("--write", metavar="PATH", help="write the plan as CSV (deterministic: sorted, no timestamp)")
    parser.add_argument("--summary", action="store_true", help="totals only, not one line per run")
    parser.add_argument("--readme", metavar="PATH", help="rewrite the profile's plan block in this Markdown file")
    return parser


def run(args: argparse.Namespace, echo=print) -> int:
    from .context import from_environment

    ctx = from_environment(args.profile, data_root=args.data_root, precedence="arguments")
    records = record_throughput(args.profile, results_dir=ctx.results_dir)
    frame = plan(args.profile, results_dir=ctx.results_dir, data_root=ctx.data_root, throughput=as_mapping(records))
    calibration = None
    if args.calibrate:
        pairs = calibration_pairs(frame)
        calibration = calibrate(pairs, steps=args.calibration_steps, echo=echo)
    table = throughput_table(records, calibration, prefer=args.prefer)
    table.attrs.update(records.attrs)
    frame = with_estimates(frame, as_mapping(table))
    _print_plan(frame, table, summary_only=args.summary, echo=echo)
    if args.write:
        write_plan(frame, args.write)
        echo(f"wrote {_display_path(args.write)}")
    if args.readme:
        block = readme_block(frame, table, machine=_this_device())
        if not update_readme(args.readme, block, args.profile):
            raise SystemExit(f"{args.readme} has no block {README_BEGIN.format(profile=args.profile)!r}")
        echo(f"updated the plan block of {_display_path(args.readme)}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="python -m kesl_utils.plan",
                                                   description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
