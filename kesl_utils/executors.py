"""How :func:`kesl_utils.experiments.run_all` executes its runs: one after another in this process,
or one Ray task per run across the machines of a Ray cluster.

:data:`EXECUTORS` is the registry: ``"serial"`` (:func:`run_serial`, the default) and ``"ray"``
(:func:`run_ray`); ``run_all`` picks the one its :class:`~kesl_utils.context.RunContext` names
(``context.executor``; ``make reproduce EXECUTOR=ray`` builds the notebooks' contexts with it).
Every executor gets the unique configs of a batch and the context, skips those whose finished
record exists (all of them are run if ``force``), records a run that raises as
``<run_id>.failed.json`` without stopping the others, advances the driver's progress bar, appends
one line per run start and end to ``context.progress_log`` (:func:`kesl_utils.context.log_run_event`;
``make reproduce`` prints run k of N, elapsed and ETA from it), and returns
``{run_id: (record, cached)}``.

Ray (``pip install -e '.[cluster]'``)
    ``context.ray_address`` (``$RAY_ADDRESS`` at the entry point) names an existing cluster
    (``ray start --head`` / ``ray up``); without it a local one is started with every core of this
    machine, no dashboard and quiet logging. Each run is one task; a run that Ray loses with its
    worker or node is retried once (it resumes from its last checkpoint). Resources per task: one
    GPU when the cluster has GPUs (and ``context.device`` is not ``"cpu"``), with
    ``min(8, CPUs per GPU)`` CPUs for its loader workers; on a CPU-only cluster one CPU, and torch
    uses one thread, so that a sweep of many small runs fills every core.
    Each task gets the driver's context: the workers write records, checkpoints and artifacts
    themselves (atomically) into its absolute results folder, and read the data under its absolute
    data root: on several machines both must be on a shared filesystem, and the repository
    installed (``pip install -e``) at the same path on each.
    Each task also gets the registry entries of the losses its run needs, so a loss registered in
    your own code (a notebook cell, a script's ``__main__``) trains on the workers too: Ray sends
    the entry, its builder and what the builder refers to (cloudpickle). What cannot be sent (a
    builder that holds a lock, an open file, a CUDA tensor, …) is an error before any run starts
    that says how to make the loss importable by the workers.
    Fine-tuning runs whose pretraining run has no weights yet wait for it: the pretraining runs go
    first, as tasks of their own, so that no two tasks train the same pretraining run.

Ray is imported only when the ``"ray"`` executor runs: importing this module (or
:mod:`kesl_utils.experiments`) does not import it, and without it that executor raises an
``ImportError`` naming the extra to install.
"""
from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Callable, Sequence

from . import names
from .context import RunContext, log_run_event, usable_cpu_count
from .loss_registry import LOSSES, LossSpec
from .progress import tqdm
from .records import RunRecord, git_commit, library_versions, load_record, save_record, utc_now

if TYPE_CHECKING:
    from .config import Config

#: At most this many CPUs per GPU run: the image-file loaders use up to 8 workers.
MAX_CPUS_PER_GPU_RUN = 8
#: Retries of a run whose worker or node Ray lost (not of a run that raised: that is a failed record).
RAY_MAX_RETRIES = 1

Outcome = dict  # run_id -> (RunRecord, cached: bool)


def failure_record(config: Config, error: BaseException) -> RunRecord:
    """The ``failed`` record of a run that raised ``error`` (with its traceback)."""
    trace = "".join(traceback.format_exception(error))
    return RunRecord(run_id=config.run_id, config=config.to_dict(), status="failed",
                     error=f"{type(error).__name__}: {error}\n{trace}",
                     versions=library_versions(), git_commit=git_commit(), finished_at=utc_now())


def run_or_record_failure(config: Config, *, context: RunContext, force: bool = False,
                          save_weights: bool = False) -> RunRecord:
    """``train.run(config)``; a run that raises is saved and returned as a failed record."""
    from . import train  # torch: imported when a run starts, not with the registry

    try:
        return train.run(config, context=context, force=force, save_weights=save_weights)
    except Exception as error:  # noqa: BLE001 - one failed run must not stop the batch
        record = failure_record(config, error)
        save_record(record, context.results_dir)
        return record


def _report(record: RunRecord) -> None:
    if record.status == "failed":
        tqdm.write(f"FAILED {record.run_id}: {(record.error or '').splitlines()[0]}")


class _RunLog:
    """The batch's lines in ``context.progress_log``: run k of N started, run k of N ended."""

    def __init__(self, context: RunContext, configs: Sequence[Config]):
        self.context, self.total = context, len(configs)
        self.index = {c.run_id: k for k, c in enumerate(configs, start=1)}
        self.started: dict[str, float] = {}

    def start(self, config: Config) -> None:
        self.started[config.run_id] = time.perf_counter()
        log_run_event(self.context, "start", run_id=config.run_id, index=self.index[config.run_id], total=self.total)

    def finish(self, config: Config, record: RunRecord, cached: bool) -> None:
        began = self.started.pop(config.run_id, None)
        log_run_event(self.context, "finish", run_id=config.run_id, index=self.index[config.run_id],
                      total=self.total, status=record.status, cached=cached,
                      seconds=0.0 if began is None else round(time.perf_counter() - began, 1))


# -- serial ---------------------------------------------------------------------------------------
def run_serial(configs: Sequence[Config], *, bar, context: RunContext, force: bool = False) -> Outcome:
    """Run ``configs`` one after another in this process (the default executor)."""
    done: Outcome = {}
    log = _RunLog(context, configs)
    for config in configs:
        bar.set_postfix_str(config.run_id, refresh=True)
        # Checked here, not up front: a run may have written the record of a later config (its
        # pretraining run).
        record = None if force else load_record(config, context.results_dir)
        if record is not None:
            done[config.run_id] = (record, True)
        else:
            log.start(config)
            record = run_or_record_failure(config, context=context, force=force)
            _report(record)
            done[config.run_id] = (record, False)
        log.finish(config, record, done[config.run_id][1])
        bar.update(1)
    return done


# -- Ray ------------------------------------------------------------------------------------------
def import_ray():
    """The ``ray`` module, or an ``ImportError`` saying which extra installs it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("executor='ray' needs Ray, an optional dependency of kesl-utils: install it with "
                          "pip install -e '.[cluster]' (make env does)") from error
    return ray


def connect(ray, context: RunContext) -> None:
    """Join the cluster at ``context.ray_address``, or start a local one, unless already connected."""
    if ray.is_initialized():
        return
    import logging

    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    if context.ray_address:
        ray.init(address=context.ray_address, **quiet)
    else:
        ray.init(num_cpus=usable_cpu_count(), include_dashboard=False, **quiet)


def task_resources(cluster: dict, device=None) -> dict:
    """Ray resources of one run on a cluster with ``cluster`` (``ray.cluster_resources()``).

    One GPU per run when the cluster has GPUs and ``device`` is not CPU, with
    ``min(8, CPUs per GPU)`` CPUs; else one CPU (and one torch thread) per run.
    """
    gpus, cpus = float(cluster.get("GPU", 0)), float(cluster.get("CPU", 1))
    wants_cpu = device is not None and str(device).startswith("cpu")
    if gpus >= 1 and not wants_cpu:
        return {"num_gpus": 1, "num_cpus": max(1, min(MAX_CPUS_PER_GPU_RUN, int(cpus // gpus)))}
    return {"num_cpus": 1}


def _ray_task(config: Config, *, context: RunContext, force: bool, save_weights: bool, threads: int,
              losses: Sequence[LossSpec] = ()) -> RunRecord:
    """One run inside a Ray worker: the driver's context and loss entries, one record (finished or failed)."""
    import torch

    for spec in losses:  # a loss registered in the driver's own code exists here only through this
        LOSSES[spec.name] = spec
    torch.set_num_threads(threads)
    return run_or_record_failure(config, context=context.replace(progress=False, verbose=False, progress_log=None),
                                 force=force, save_weights=save_weights)


def loss_entries(configs: Sequence[Config]) -> list[LossSpec]:
    """The registry entries of the losses ``configs`` and their pretraining runs train with."""
    wanted, level = {}, list(configs)
    while level:
        for config in level:
            wanted.setdefault(config.loss, LOSSES[config.loss])
        level = [c.pretrain_run for c in level if c.pretrain_run is not None]
    return list(wanted.values())


def check_sendable(entries: Sequence[LossSpec], dumps) -> None:
    """Refuse, before any run starts, a loss entry that cannot be sent to the workers (``dumps``:
    Ray's cloudpickle), with what to do instead."""
    for spec in entries:
        try:
            dumps(spec)
        except Exception as error:  # noqa: BLE001 - any serialisation failure gets the same advice
            where = getattr(spec.build, "__module__", None) or "an unknown module"
            raise ValueError(
                f"executor='ray': loss {spec.name!r} (registered in {where}) cannot be sent to the Ray workers "
                f"({type(error).__name__}: {error}). Define the loss class and its builder in an importable "
                f"module (a .py file on the workers' Python path, e.g. my_losses.py next to the notebook), "
                f"import that module before run_all, and keep the builder free of objects that cannot be "
                f"pickled (locks, open files, tensors on a GPU); or run with executor='serial'.") from None


def _submit(remote, config: Config, **kwargs):
    """Submit one run (a function of its own so that tests can count submissions)."""
    return remote.remote(config, **kwargs)


def pretraining_stages(configs: Sequence[Config], results_dir) -> list[list[Config]]:
    """The pretraining runs ``configs`` start from whose weights are missing in ``results_dir``, deepest first."""
    from .train import weights_path

    stages, level = [], list(configs)
    while True:
        needed = {}
        for config in level:
            source = config.pretrain_run
            if source is not None and not weights_path(source, results_dir).is_file():
                needed.setdefault(source.run_id, source)
        if not needed:
            return stages[::-1]
        stages.append(list(needed.values()))
        level = list(needed.values())


def _wait_all(ray, refs: dict, results_dir, *, bar=None, on_done: Callable[[Config, RunRecord], None]) -> None:
    """Wait for ``refs`` (ObjectRef -> Config), calling ``on_done`` as each run ends; on Ctrl-C,
    cancel the runs still pending (they keep their last checkpoint) and re-raise."""
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ref = ready[0]
            config = refs[ref]
            try:
                record = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - the worker or its node died: record it like a raise
                record = failure_record(config, error)
                save_record(record, results_dir)
            on_done(config, record)
            if bar is not None:
                bar.set_postfix_str(config.run_id, refresh=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise


def run_ray(configs: Sequence[Config], *, bar, context: RunContext, force: bool = False) -> Outcome:
    """Run ``configs`` as one Ray task each (see the module docstring)."""
    device = context.device
    if device is not None and ":" in str(device):
        raise ValueError(f"device={device!r} with executor='ray': Ray gives each run its own GPU; "
                         "pass device=None (or 'cuda', or 'cpu')")
    ray = import_ray()
    folder = context.results_dir
    done: Outcome = {}
    log = _RunLog(context, configs)
    todo = []
    for config in configs:
        record = None if force else load_record(config, folder)
        if record is not None:
            done[config.run_id] = (record, True)
            log.finish(config, record, True)
            bar.update(1)
        else:
            todo.append(config)
    if not todo:
        return done
    entries = loss_entries(todo)
    check_sendable(entries, ray.cloudpickle.dumps)
    connect(ray, context)
    resources = task_resources(ray.cluster_resources(), device)
    remote = ray.remote(_ray_task).options(max_retries=RAY_MAX_RETRIES, **resources)

    def submit(config: Config, *, save_weights: bool, force: bool):
        return _submit(remote, config, context=context, force=force, save_weights=save_weights,
                       threads=int(resources["num_cpus"]), losses=entries)

    wanted = {c.run_id for c in todo}
    failed_sources: dict[str, RunRecord] = {}

    def without_failed_source(stage: list[Config]) -> list[Config]:
        """``stage`` less the runs whose pretraining run failed (recorded as failed, not run)."""
        kept = []
        for config in stage:
            source = failed_sources.get(config.pretrain_run.run_id) if config.pretrain_run is not None else None
            if source is None:
                kept.append(config)
                continue
            record = failure_record(config, RuntimeError(
                f"its pretraining run {source.run_id} failed: {(source.error or '').splitlines()[0]}"))
            save_record(record, folder)
            failed_sources[config.run_id] = record
            finished(config, record)
        return kept

    def pretrained(config: Config, record: RunRecord) -> None:
        _report(record)
        if record.status == "failed":
            failed_sources[config.run_id] = record

    def finished(config: Config, record: RunRecord) -> None:
        if config.run_id in wanted:
            _report(record)
            done[config.run_id] = (record, False)
            log.finish(config, record, False)
            bar.update(1)

    def submitted(config: Config, **kwargs):
        if config.run_id in wanted:
            log.start(config)
        return submit(config, **kwargs)

    for stage in pretraining_stages(todo, folder):
        bar.set_postfix_str(f"pretraining {len(stage)} run(s) first", refresh=True)
        # force is not passed on (as in a serial run): a pretraining run whose record exists only
        # re-creates its weights.
        stage = without_failed_source(stage)
        _wait_all(ray, {submitted(c, save_weights=True, force=False): c for c in stage}, folder, on_done=pretrained)
    runs = without_failed_source(todo)
    _wait_all(ray, {submitted(c, save_weights=False, force=force): c for c in runs}, folder, bar=bar,
              on_done=finished)
    return {c.run_id: done[c.run_id] for c in configs}


#: name → executor(configs, *, bar, context, force) -> {run_id: (record, cached)}; its names are
#: :data:`kesl_utils.names.EXECUTORS`, the choices a RunContext accepts.
EXECUTORS: dict[str, Callable[..., Outcome]] = {"serial": run_serial, "ray": run_ray}
if tuple(EXECUTORS) != names.EXECUTORS:
    raise RuntimeError("kesl_utils.executors.EXECUTORS and kesl_utils.names.EXECUTORS must name the same executors")
