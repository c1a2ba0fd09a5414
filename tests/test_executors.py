"""Executors of run_all: a Ray sweep equals the serial one, is not repeated, isolates a failing run;
choosing the executor; Ray stays optional."""
import json
import subprocess
import sys
import time

import pytest
import torch

from kesl_utils import executors, experiments, paths, records, reproduce
from kesl_utils.table_specs import table_configs

TIMING = ("images_per_s", "epoch_time_s")


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    # Set, then removed: whatever the code under test writes into os.environ is undone afterwards.
    for name in ("KESL_EXECUTOR", "KESL_PROFILE", "KESL_PROGRESS"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs, started before any test sets $KESL_RESULTS_DIR: its workers know the
    results folder only from what the driver passes with each task."""
    ray = pytest.importorskip("ray")
    import logging

    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    except Exception:  # noqa: BLE001 - Ray gives its node 30 s to start; a busy machine may need a second try
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def _runs(folder):
    """What a run measured, by run id, from the records in ``folder``: everything but times and dates."""
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        data = json.loads(path.read_text())
        out[path.name] = {"status": data["status"], "metrics": data["metrics"], "world_size": data["world_size"],
                          "history": [{k: v for k, v in h.items() if k not in TIMING} for h in data["history"]],
                          "artifacts": {k: v["sha256"] for k, v in data["artifacts"].items()},
                          "error": (data["error"] or "").splitlines()[:1]}
    return out


def test_a_ray_sweep_equals_the_serial_sweep_and_is_not_repeated(ray_cluster, results, monkeypatch, capsys):
    configs = table_configs("general_recognition", "smoke") + table_configs("backbone_ablation", "smoke")
    # A run that fails in set-up (no complete batch in 200 images): recorded, the others go on.
    bad = configs[0].replace(batch_size=1024)
    configs = configs + [bad]
    torch.set_num_threads(1)  # a Ray task on a CPU-only cluster uses one thread: bit-exact comparison

    timings = {}
    for executor in ("serial", "ray"):
        monkeypatch.setenv("KESL_RESULTS_DIR", str(results / executor))
        start = time.perf_counter()
        frame = experiments.run_all(configs, executor=executor, progress=False)
        timings[executor] = time.perf_counter() - start
        assert capsys.readouterr().out.strip().endswith("0 cached, 10 run, 1 failed")
        assert frame["status"].tolist() == ["finished"] * 10 + ["failed"]
        assert frame.loc[10, "error"].startswith("ValueError") and "yields no batch" in frame.loc[10, "error"]
        assert records.load_failure(bad).status == "failed"
    with capsys.disabled():  # informal: shown with pytest -s
        print(f"\nsmoke sweep of 10 runs + 3 pretraining runs: serial {timings['serial']:.0f} s, "
              f"ray (2 CPUs) {timings['ray']:.0f} s")

    serial, ray = _runs(results / "serial"), _runs(results / "ray")
    assert len(serial) == 14  # 10 runs, 3 pretraining runs, 1 failure
    assert ray == serial

    # Everything is recorded: a second sweep submits nothing but the failed run (retried).
    submitted = []
    real_submit = executors._submit
    monkeypatch.setattr(executors, "_submit", lambda remote, config, **kw: (
        submitted.append(config.run_id), real_submit(remote, config, **kw))[1])
    experiments.run_all(configs[:-1], executor="ray", progress=False)
    assert submitted == [] and capsys.readouterr().out.strip().endswith("10 cached, 0 run, 0 failed")
    experiments.run_all(configs, executor="ray", progress=False)
    assert submitted == [bad.run_id]


def test_pretraining_runs_go_first(results):
    configs = table_configs("backbone_ablation", "smoke")
    (stage,) = executors.pretraining_stages(configs)
    assert [c.backbone for c in stage] == ["mobilenet_v2", "resnet18", "resnet50"]
    assert all(c.run_id == configs[2 * i].pretrain.run_id for i, c in enumerate(stage))
    from kesl_utils.train import weights_path
    for source in stage:
        weights_path(source).parent.mkdir(parents=True)
        weights_path(source).write_bytes(b"weights")
    assert executors.pretraining_stages(configs) == []


def test_the_executor_comes_from_the_argument_then_the_environment(monkeypatch):
    assert executors.resolve_executor() == "serial"
    monkeypatch.setenv("KESL_EXECUTOR", "ray")
    assert executors.resolve_executor() == "ray" and executors.resolve_executor("serial") == "serial"
    monkeypatch.setenv("KESL_EXECUTOR", "dask")
    with pytest.raises(ValueError, match=r"executor='dask' is not allowed; expected one of 'serial', 'ray' "
                                         r"\(from \$KESL_EXECUTOR\)"):
        experiments.run_all(table_configs("general_recognition", "smoke"), progress=False)
    with pytest.raises(ValueError, match="Ray gives each run its own GPU"):
        experiments.run_all(table_configs("general_recognition", "smoke"), executor="ray", device="cuda:1",
                            progress=False)


def test_task_resources():
    assert executors.task_resources({"CPU": 64.0, "GPU": 8.0}) == {"num_gpus": 1, "num_cpus": 8}
    assert executors.task_resources({"CPU": 12.0, "GPU": 4.0}) == {"num_gpus": 1, "num_cpus": 3}
    assert executors.task_resources({"CPU": 128.0, "GPU": 4.0}) == {"num_gpus": 1, "num_cpus": 8}
    assert executors.task_resources({"CPU": 12.0, "GPU": 4.0}, device="cpu") == {"num_cpus": 1}
    assert executors.task_resources({"CPU": 2.0}) == {"num_cpus": 1}


def test_reproduce_hands_the_executor_to_the_kernels(tmp_path):
    assert reproduce.run_notebooks([], profile="smoke", data_root="data/raw", output_dir=tmp_path,
                                   executor="ray") == []
    import os
    assert os.environ["KESL_EXECUTOR"] == "ray"
    with pytest.raises(SystemExit):
        reproduce.main(["--executor", "dask", "--report-only"])


def test_ray_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cluster\]'"):
        executors.import_ray()
    # Importing the library (and the reproduce runner) does not import Ray.
    code = "import sys, kesl_utils.experiments, kesl_utils.reproduce; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=paths.PROJECT_ROOT).returncode == 0
