"""How :func:`kesl_utils.experiments.run_all` executes its runs: one after another in this process,
or one Ray task per run across the machines of a Ray cluster.

:data:`EXECUTORS` is the registry: ``"serial"`` (:func:`run_serial`, the default) and ``"ray"``
(:func:`run_ray`). ``run_all(configs, executor=...)`` picks one; without the argument it reads
``$KESL_EXECUTOR`` (which ``make reproduce EXECUTOR=ray`` sets for the notebook kernels), else
``"serial"``. Every executor gets the unique configs of a batch, skips those whose finished record
exists (all of them are run if ``force``), records a run that raises as ``<run_id>.failed.json``
without stopping the others, advances the driver's progress bar, and returns
``{run_id: (record, cached)}``.

Ray (``pip install -e '.[cluster]'``)
    ``$RAY_ADDRESS`` names an existing cluster (``ray start --head`` / ``ray up``); without it a
    local one is started with every core of this machine, no dashboard and quiet logging. Each run
    is one task; a run that Ray loses with its worker or node is retried once (it resumes from its
    last checkpoint). Resources per task: one GPU when the cluster has GPUs (and ``device`` is not
    ``"cpu"``), with ``min(8, CPUs per GPU)`` CPUs for its loader workers; on a CPU-only cluster one
    CPU, and torch uses one thread, so that a sweep of many small runs fills every core.
    The workers write records, checkpoints and artifacts themselves (atomically) into the driver's
    results folder, whose absolute path the driver passes with each task, and read the data under
    the driver's absolute ``data_root``: on several machines both must be on a shared filesystem,
    and the repository installed (``pip install -e``) at the same path on each.
    Fine-tuning runs whose pretraining run has no weights yet wait for it: the pretraining runs go
    first, as tasks of their own, so that no two tasks train the same pretraining run.

Ray is imported only when the ``"ray"`` executor runs: importing this module (or
:mod:`kesl_utils.experiments`) does not import it, and without it that executor raises an
``ImportError`` naming the extra to install.
"""
from __future__ import annotations

import logging
import os
import traceback
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from . import names, paths
from .progress import tqdm
from .records import RunRecord, git_commit, library_versions, load_record, save_record, utc_now

if TYPE_CHECKING:  # kesl_utils.config imports torch; this module stays light (reproduce, the CLI)
    from .config import Config

#: The environment variable ``run_all`` reads when no executor is given.
EXECUTOR_ENV = "KESL_EXECUTOR"
DEFAULT_EXECUTOR = "serial"
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


def run_or_record_failure(config: Config, *, data_root=None, device=None, force: bool = False,
                          quiet: bool = True, save_weights: bool = False) -> RunRecord:
    """``train.run(config)``; a run that raises is saved and returned as a failed record."""
    from . import train  # torch: imported when a run starts, not with the registry

    try:
        return train.run(config, data_root=data_root, device=device, force=force, quiet=quiet,
                         save_weights=save_weights)
    except Exception as error:  # noqa: BLE001 - one failed run must not stop the batch
        record = failure_record(config, error)
        save_record(record)
        return record


def _report(record: RunRecord) -> None:
    if record.status == "failed":
        tqdm.write(f"FAILED {record.run_id}: {(record.error or '').splitlines()[0]}")


# -- serial ---------------------------------------------------------------------------------------
def run_serial(configs: Sequence[Config], *, bar, data_root=None, device=None, force: bool = False,
               quiet: bool = True) -> Outcome:
    """Run ``configs`` one after another in this process (the default executor)."""
    done: Outcome = {}
    for config in configs:
        bar.set_postfix_str(config.run_id, refresh=True)
        # Checked here, not up front: a run may have written the record of a later config (its
        # pretraining run).
        record = None if force else load_record(config)
        if record is not None:
            done[config.run_id] = (record, True)
        else:
            record = run_or_record_failure(config, data_root=data_root, device=device, force=force, quiet=quiet)
            _report(record)
            done[config.run_id] = (record, False)
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


def connect(ray) -> None:
    """Join the cluster at ``$RAY_ADDRESS``, or start a local one, unless already connected."""
    if ray.is_initialized():
        return
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=_cpu_count(), include_dashboard=False, **quiet)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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


def _ray_task(config: Config, *, results_dir: str, data_root: str, device, force: bool, save_weights: bool,
              threads: int) -> RunRecord:
    """One run inside a Ray worker: the driver's results folder, one record (finished or failed)."""
    import torch

    previous = os.environ.get("KESL_RESULTS_DIR")
    os.environ["KESL_RESULTS_DIR"] = results_dir
    torch.set_num_threads(threads)
    try:
        return run_or_record_failure(config, data_root=data_root, device=device, force=force, quiet=True,
                                     save_weights=save_weights)
    finally:
        if previous is None:
            os.environ.pop("KESL_RESULTS_DIR", None)
        else:
            os.environ["KESL_RESULTS_DIR"] = previous


def _submit(remote, config: Config, **kwargs):
    """Submit one run (a function of its own so that tests can count submissions)."""
    return remote.remote(config, **kwargs)


def pretraining_stages(configs: Sequence[Config]) -> list[list[Config]]:
    """The pretraining runs ``configs`` start from whose weights are missing, deepest first."""
    from .train import weights_path

    stages, level = [], list(configs)
    while True:
        needed = {}
        for config in level:
            source = config.pretrain
            if source is not None and not weights_path(source).is_file():
                needed.setdefault(source.run_id, source)
        if not needed:
            return stages[::-1]
        stages.append(list(needed.values()))
        level = list(needed.values())


def _wait_all(ray, refs: dict, *, bar=None, on_done: Callable[[Config, RunRecord], None]) -> None:
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
                save_record(record)
            on_done(config, record)
            if bar is not None:
                bar.set_postfix_str(config.run_id, refresh=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise


def run_ray(configs: Sequence[Config], *, bar, data_root=None, device=None, force: bool = False,
            quiet: bool = True) -> Outcome:
    """Run ``configs`` as one Ray task each (see the module docstring); ``quiet`` is implied."""
    if device is not None and ":" in str(device):
        raise ValueError(f"device={device!r} with executor='ray': Ray gives each run its own GPU; "
                         "pass device=None (or 'cuda', or 'cpu')")
    ray = import_ray()
    done: Outcome = {}
    todo = []
    for config in configs:
        record = None if force else load_record(config)
        if record is not None:
            done[config.run_id] = (record, True)
            bar.update(1)
        else:
            todo.append(config)
    if not todo:
        return done
    connect(ray)
    resources = task_resources(ray.cluster_resources(), device)
    remote = ray.remote(_ray_task).options(max_retries=RAY_MAX_RETRIES, **resources)
    root = str(paths.resolve_data_root(data_root))

    def submit(config: Config, *, save_weights: bool, force: bool):
        return _submit(remote, config, results_dir=str(paths.results_dir(config.profile)), data_root=root,
                       device=device, force=force, save_weights=save_weights, threads=int(resources["num_cpus"]))

    wanted = {c.run_id for c in todo}
    failed_sources: dict[str, RunRecord] = {}

    def without_failed_source(stage: list[Config]) -> list[Config]:
        """``stage`` less the runs whose pretraining run failed (recorded as failed, not run)."""
        kept = []
        for config in stage:
            source = failed_sources.get(config.pretrain.run_id) if config.pretrain is not None else None
            if source is None:
                kept.append(config)
                continue
            record = failure_record(config, RuntimeError(
                f"its pretraining run {source.run_id} failed: {(source.error or '').splitlines()[0]}"))
            save_record(record)
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
            bar.update(1)

    for stage in pretraining_stages(todo):
        bar.set_postfix_str(f"pretraining {len(stage)} run(s) first", refresh=True)
        # force is not passed on (as in a serial run): a pretraining run whose record exists only
        # re-creates its weights.
        stage = without_failed_source(stage)
        _wait_all(ray, {submit(c, save_weights=True, force=False): c for c in stage}, on_done=pretrained)
    runs = without_failed_source(todo)
    _wait_all(ray, {submit(c, save_weights=False, force=force): c for c in runs}, bar=bar, on_done=finished)
    return {c.run_id: done[c.run_id] for c in configs}


#: name -> executor(configs, *, bar, data_root, device, force, quiet) -> {run_id: (record, cached)}.
EXECUTORS: dict[str, Callable[..., Outcome]] = {"serial": run_serial, "ray": run_ray}


def resolve_executor(name: Optional[str] = None) -> str:
    """``name``, else ``$KESL_EXECUTOR``, else ``"serial"``; ``ValueError`` if it is not in :data:`EXECUTORS`."""
    chosen = name if name is not None else (os.environ.get(EXECUTOR_ENV) or DEFAULT_EXECUTOR)
    source = "" if name is not None else f" (from ${EXECUTOR_ENV})"
    try:
        return names.check_choice("executor", chosen, EXECUTORS)
    except ValueError as error:
        raise ValueError(f"{error}{source}") from None
