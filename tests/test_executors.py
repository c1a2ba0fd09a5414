"""Executors of run_all: a Ray sweep equals the serial one, is not repeated, isolates a failing run;
a loss registered in the test's own code trains under Ray, one that cannot be sent fails before any run;
choosing the executor; Ray stays optional."""
import json
import subprocess
import sys
import threading
import time

import pytest
import torch

from kesl_utils import executors, experiments, losses, paths, records
from kesl_utils.context import RunContext
from kesl_utils.table_specs import table_configs

TIMING = ("images_per_s", "epoch_time_s")


@pytest.fixture
def results(tmp_path):
    return tmp_path


def context(folder, **changes) -> RunContext:
    return RunContext(results_dir=folder, progress=False, **changes)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs: its workers know the results folder only from the context the driver
    passes with each task."""
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
        ctx = context(results / executor, executor=executor)
        start = time.perf_counter()
        frame = experiments.run_all(configs, context=ctx)
        timings[executor] = time.perf_counter() - start
        assert capsys.readouterr().out.strip().endswith("0 cached, 10 run, 1 failed")
        assert frame["status"].tolist() == ["finished"] * 10 + ["failed"]
        assert frame.loc[10, "error"].startswith("ValueError") and "yields no batch" in frame.loc[10, "error"]
        assert records.load_failure(bad, ctx.results_dir).status == "failed"
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
    experiments.run_all(configs[:-1], context=ctx)
    assert submitted == [] and capsys.readouterr().out.strip().endswith("10 cached, 0 run, 0 failed")
    experiments.run_all(configs, context=ctx)
    assert submitted == [bad.run_id]


def test_pretraining_runs_go_first(results):
    configs = table_configs("backbone_ablation", "smoke")
    (stage,) = executors.pretraining_stages(configs, results)
    assert [c.backbone for c in stage] == ["mobilenet_v2", "resnet18", "resnet50"]
    assert all(c.run_id == configs[2 * i].pretrain_run.run_id for i, c in enumerate(stage))
    from kesl_utils.train import weights_path
    for source in stage:
        weights_path(source, results).parent.mkdir(parents=True)
        weights_path(source, results).write_bytes(b"weights")
    assert executors.pretraining_stages(configs, results) == []


def test_the_executor_is_the_contexts(results):
    with pytest.raises(ValueError, match=r"RunContext.executor='dask' is not allowed; expected one of 'serial', 'ray'"):
        context(results, executor="dask")
    with pytest.raises(ValueError, match="Ray gives each run its own GPU"):
        experiments.run_all(table_configs("general_recognition", "smoke"),
                            context=context(results, executor="ray", device="cuda:1"))
    assert tuple(executors.EXECUTORS) == ("serial", "ray")


def test_task_resources():
    assert executors.task_resources({"CPU": 64.0, "GPU": 8.0}) == {"num_gpus": 1, "num_cpus": 8}
    assert executors.task_resources({"CPU": 12.0, "GPU": 4.0}) == {"num_gpus": 1, "num_cpus": 3}
    assert executors.task_resources({"CPU": 128.0, "GPU": 4.0}) == {"num_gpus": 1, "num_cpus": 8}
    assert executors.task_resources({"CPU": 12.0, "GPU": 4.0}, device="cpu") == {"num_cpus": 1}
    assert executors.task_resources({"CPU": 2.0}) == {"num_cpus": 1}


# -- a loss of the user's own code under Ray ----------------------------------------------------------------
def _toy_loss(lock=None):
    """Register loss "toy_ray" from a function local to this test: cloudpickle sends it by value, as it
    would a function defined in a notebook cell (``__main__``). ``lock``: something that cannot be sent."""

    @losses.register_loss("toy_ray", params=(losses.LossParam("focus", 2.0, float, "focusing"),),
                          needs_hierarchy=False, summary="a loss defined in a test")
    def build(hierarchy, *, focus):
        _ = lock  # the builder holds it (a closure): one that holds a lock cannot be pickled

        class Focal(torch.nn.Module):
            def forward(self, logits, targets):
                log_p = torch.log_softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
                return (-(1 - log_p.exp()) ** focus * log_p).mean()
        return Focal()

    return "toy_ray"


@pytest.fixture
def toy_ray():
    yield _toy_loss
    losses.LOSSES.pop("toy_ray", None)


def test_a_loss_of_the_users_own_code_trains_under_ray(ray_cluster, toy_ray, results):
    config = experiments.profile_config("smoke", "mini_imagenet", loss=toy_ray(), focus=1.5)
    frame = experiments.run_all([config], context=context(results / "ray", executor="ray"))
    assert frame["status"].tolist() == ["finished"], frame["error"].tolist()
    assert records.load_record(config, results / "ray").config["loss_params"] == {"focus": 1.5}


def test_a_loss_that_cannot_be_sent_fails_before_any_run(toy_ray, results, monkeypatch):
    pytest.importorskip("ray")
    config = experiments.profile_config("smoke", "mini_imagenet", loss=toy_ray(lock=threading.Lock()))
    monkeypatch.setattr(executors, "connect", lambda *a, **k: pytest.fail("a cluster was started"))
    monkeypatch.setattr(executors, "_submit", lambda *a, **k: pytest.fail("a run was submitted"))
    with pytest.raises(ValueError, match=r"loss 'toy_ray' .*cannot be sent to the Ray workers.*importable module"):
        experiments.run_all([config], context=context(results, executor="ray"))
    assert not list((results / "runs").glob("*.json"))


def test_ray_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cluster\]'"):
        executors.import_ray()
    # Importing the library (and the reproduce runner) does not import Ray.
    code = "import sys, kesl_utils.experiments, kesl_utils.reproduce; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=paths.PROJECT_ROOT).returncode == 0
