"""Config identity and validation, run records, profiles, table configs and the batch runner."""
import dataclasses
import json

import pytest

from kesl_utils import experiments, paper, records
from kesl_utils.config import Config
from kesl_utils.records import RunRecord


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


# -- Config ----------------------------------------------------------------------------------
def test_equal_configs_share_run_id():
    a = Config(loss="kesl", lam=0.5, T=2, alpha=1, beta=0.1)
    b = Config(loss="kesl", lam=0.5, T=2.0, alpha=1.0, beta=0.1)
    assert a == b and a.run_id == b.run_id
    assert a.run_id.startswith("cub-resnet18-kesl-") and len(a.run_id.rsplit("-", 1)[1]) == 10
    assert Config.from_dict(json.loads(json.dumps(a.to_dict()))).run_id == a.run_id


def test_irrelevant_fields_do_not_change_the_hash():
    assert Config(loss="ce", lam=0.9, T=7, alpha=3, beta=4, kl="forward", epsilon=0.3).run_id == Config(loss="ce").run_id
    assert Config(loss="label_smoothing", lam=0.9, T=7).run_id == Config(loss="label_smoothing").run_id
    assert Config(loss="kesl", epsilon=0.4).run_id == Config(loss="kesl").run_id
    assert Config(schedule="cosine", step_size=3, gamma=0.5).run_id == Config(schedule="cosine").run_id
    assert Config(dataset="cub", hierarchy_mode="tree").run_id == Config(dataset="cub").run_id
    assert Config(loss="ce").lam is None and Config(loss="label_smoothing").epsilon == 0.1


CHANGES = {
    "dataset": "mini_imagenet", "source": "real", "n_per_class": 3, "n_test_per_class": 4,
    "alignment": 0.5, "image_size": 16, "backbone": "resnet50", "pretrained": True, "loss": "ce",
    "lam": 0.25, "T": 4.0, "alpha": 0.5, "beta": 1.0, "kl": "forward", "lr": 0.01,
    "backbone_lr_mult": 0.1, "momentum": 0.5, "weight_decay": 0.0, "schedule": "step",
    "warmup_epochs": 1, "epochs": 6, "batch_size": 64, "max_batches_per_epoch": 2, "eval_every": 2,
    "amp": True, "channels_last": True, "compile": True, "seed": 1, "profile": "quick",
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_every_relevant_field_changes_the_hash(name):
    base = Config(loss="kesl")
    assert base.replace(**{name: CHANGES[name]}).run_id != base.run_id


def test_relevant_fields_of_other_losses_and_schedules_change_the_hash():
    assert Config(loss="label_smoothing", epsilon=0.2).run_id != Config(loss="label_smoothing").run_id
    step = Config(schedule="step")
    assert step.replace(step_size=10).run_id != step.run_id
    assert step.replace(gamma=0.5).run_id != step.run_id
    assert Config(dataset="small_imagenet", hierarchy_mode="tree").run_id != Config(dataset="small_imagenet").run_id


@pytest.mark.parametrize("kwargs, words", [
    (dict(dataset="cifar"), ["dataset", "'cub'", "'mini_imagenet'"]),
    (dict(backbone="vgg16"), ["backbone", "'resnet18'", "'mobilenet_v2'"]),
    (dict(loss="focal"), ["loss", "'kesl'"]),
    (dict(loss="kesl", kl="both"), ["kl", "'reverse'", "'forward'"]),
    (dict(loss="kesl", lam=0.0), ["lam", "0 < lam <= 1"]),
    (dict(loss="kesl", T=-1.0), ["T", "T > 0"]),
    (dict(loss="kesl", alpha=0, beta=0), ["alpha", "beta"]),
    (dict(loss="kesl", lam=None), ["lam", "required"]),
    (dict(epochs=0), ["epochs", ">= 1"]),
    (dict(warmup_epochs=9, epochs=5), ["warmup_epochs"]),
    (dict(alignment=1.5), ["alignment"]),
    (dict(lr="0.1"), ["lr", "float"]),
    (dict(pretrained=1), ["pretrained", "bool"]),
    (dict(epochs=2.5), ["epochs", "int"]),
    (dict(schedule="step", step_size=None), ["step_size", "required"]),
])
def test_validation_names_field_and_allowed_values(kwargs, words):
    with pytest.raises(ValueError) as info:
        Config(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_unknown_fields_list_the_fields():
    for call in (lambda: Config().replace(learning_rate=0.1),
                 lambda: Config.from_dict({**Config().to_dict(), "learning_rate": 0.1}),
                 lambda: experiments.profile_config("quick", "cub", learning_rate=0.1)):
        with pytest.raises(ValueError, match="learning_rate.*fields are: dataset, source"):
            call()


def test_replace_refills_normalised_fields_with_defaults():
    ce = Config(loss="ce")
    assert ce.replace(loss="kesl") == Config(loss="kesl")
    assert ce.replace(loss="kesl", T=16).T == 16.0
    assert Config(schedule="cosine").replace(schedule="step").step_size == 30
    with pytest.raises(dataclasses.FrozenInstanceError):
        ce.lr = 1.0


# -- records ---------------------------------------------------------------------------------
def _record(run_id="r1", status="finished", top1=50.0):
    return RunRecord(run_id=run_id, config={"seed": 0}, metrics={"top1": top1}, status=status,
                     error=None if status == "finished" else "boom")


def test_record_round_trip_and_missing(results_dir):
    assert records.load_record("nope") is None
    path = records.save_record(_record())
    assert path == results_dir / "runs" / "r1.json"
    assert records.load_record("r1") == _record()
    assert [r.run_id for r in records.load_records()] == ["r1"]


def test_partial_or_unfinished_record_is_not_finished(results_dir):
    text = json.dumps(_record().to_dict())
    runs = results_dir / "runs"
    runs.mkdir(parents=True)
    for cut in (0, 1, len(text) // 2, len(text) - 1):
        (runs / "r1.json").write_text(text[:cut])
        assert records.load_record("r1") is None
    (runs / "r1.json").write_text(json.dumps(dict(_record().to_dict(), status="running")))
    assert records.load_record("r1") is None
    (runs / "r2.json").write_text("[1, 2]")
    assert records.load_record("r2") is None
    assert records.load_records() == []


def test_failed_record_is_separate_and_removed_on_success(results_dir):
    records.save_record(_record(status="failed"))
    assert (results_dir / "runs" / "r1.failed.json").is_file()
    assert records.load_record("r1") is None and records.load_records() == []
    assert records.load_failure("r1").error == "boom"
    records.save_record(_record())
    assert not (results_dir / "runs" / "r1.failed.json").exists()
    assert records.load_record("r1").status == "finished"


def test_provenance():
    versions = records.library_versions()
    assert set(versions) == {"python", "torch", "torchvision", "numpy", "kesl_utils"}
    commit = records.git_commit()
    assert commit == "unknown" or len(commit.split("-")[0]) == 40


# -- profiles and tables ---------------------------------------------------------------------------
def test_profile_budgets():
    smoke = experiments.profile_config("smoke", "cub")
    assert (smoke.source, smoke.image_size, smoke.n_per_class, smoke.n_test_per_class, smoke.epochs,
            smoke.batch_size, smoke.max_batches_per_epoch, smoke.backbone, smoke.pretrained) == \
        ("synthetic", 16, 2, 2, 1, 32, 2, "resnet18", False)
    quick = experiments.profile_config("quick", "mini_imagenet")
    assert (quick.source, quick.image_size, quick.n_per_class, quick.n_test_per_class, quick.epochs,
            quick.batch_size, quick.eval_every, quick.lr, quick.weight_decay, quick.schedule) == \
        ("synthetic", 32, 12, 10, 4, 128, 4, 0.1, 5e-4, "cosine")
    cub = experiments.profile_config("paper", "cub")
    assert (cub.source, cub.image_size, cub.backbone, cub.pretrained, cub.backbone_lr_mult, cub.lr,
            cub.epochs, cub.schedule, cub.step_size, cub.gamma, cub.batch_size, cub.weight_decay,
            cub.n_per_class, cub.amp, cub.channels_last) == \
        ("real", 448, "resnet50", True, 0.1, 0.1, 90, "step", 30, 0.1, 32, 1e-4, None, True, True)
    small = experiments.profile_config("paper", "small_imagenet")
    assert (small.image_size, small.pretrained, small.batch_size) == (224, False, 256)
    assert experiments.profile_seeds("quick") == (0, 1, 2)
    assert experiments.profile_seeds("smoke") == experiments.profile_seeds("paper") == (0,)
    assert experiments.profile_config("quick", "cub", epochs=2, seed=2).epochs == 2
    with pytest.raises(ValueError, match="smoke, quick, paper"):
        experiments.profile_config("fast", "cub")


def test_profiles_never_change_the_method():
    fields = ("loss", "lam", "T", "alpha", "beta", "kl", "epsilon", "hierarchy_mode", "alignment")
    for overrides in (experiments.OURS, experiments.LABEL_SMOOTHING, experiments.BASELINE):
        chosen = {p: experiments.profile_config(p, "cub", **overrides) for p in experiments.PROFILES}
        assert len({tuple(getattr(c, f) for f in fields) for c in chosen.values()}) == 1
    ours = experiments.profile_config("smoke", "cub", **experiments.OURS)
    assert (ours.lam, ours.T, ours.alpha, ours.beta, ours.kl) == (0.5, 2.0, 1.0, 0.1, "reverse")


def _ids(table, profile="quick", seeds=(0,)):
    return [c.run_id for c in experiments.table_configs(table, profile, seeds)]


def test_shared_runs_are_the_same_config():
    ce = experiments.profile_config("quick", "cub", seed=0).run_id
    ours = experiments.profile_config("quick", "cub", seed=0, **experiments.OURS).run_id
    for table in ("cub_comparison", "hyperparameter_ablation", "backbone_ablation"):
        assert ce in _ids(table) and ours in _ids(table)
    assert ours in _ids("label_smoothing") and ce not in _ids("label_smoothing")
    # Table 4 prints 9 rows, 2 of them repeat a setting: 7 runs per seed.
    assert len(_ids("hyperparameter_ablation")) == 7
    assert len(_ids("hyperparameter_ablation", seeds=(0, 1, 2))) == 21
    assert len(set(_ids("cub_comparison", seeds=(0, 1, 2)))) == 6
    every = experiments.all_table_configs("quick")
    assert len(every) == len({c.run_id for c in every}) == 3 * 18


def test_table_contents():
    configs = experiments.table_configs("backbone_ablation", "smoke")
    assert [(c.backbone, c.loss) for c in configs] == [
        (b, l) for b in ("mobilenet_v2", "resnet18", "resnet50") for l in ("ce", "kesl")]
    configs = experiments.table_configs("label_smoothing", "paper")
    assert [(c.loss, c.lr) for c in configs] == [("label_smoothing", 0.01), ("label_smoothing", 0.001),
                                                 ("kesl", 0.1), ("kesl", 0.01)]
    assert {c.dataset for c in experiments.table_configs("general_recognition", "quick")} == \
        {"mini_imagenet", "small_imagenet"}
    assert [c.seed for c in experiments.table_configs("cub_comparison", "quick")] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="cub_comparison"):
        experiments.table_configs("table9", "quick")


def test_ablation_rows_match_the_papers_table():
    printed = paper.hyperparameter_ablation()
    overrides = experiments.ablation_overrides()
    assert len(overrides) == len(printed) == 9
    configs = [experiments.profile_config("quick", "cub", **o) for o in overrides]
    assert configs[0].loss == "ce"
    assert [(c.loss, c.lam, c.T, c.alpha, c.beta) for c in configs[1:]] == [
        ("kesl", 0.5, 16.0, 0.0, 1.0), ("kesl", 0.5, 2.0, 1.0, 1.0), ("kesl", 0.5, 5.0, 1.0, 1.0),
        ("kesl", 0.5, 16.0, 1.0, 1.0), ("kesl", 0.5, 16.0, 1.0, 1.0), ("kesl", 0.5, 16.0, 0.1, 1.0),
        ("kesl", 0.5, 2.0, 1.0, 1.0), ("kesl", 0.5, 2.0, 1.0, 0.1)]
    # printed duplicates share one run; the last row is "Ours"
    assert configs[4].run_id == configs[5].run_id and configs[2].run_id == configs[7].run_id
    assert configs[8] == experiments.profile_config("quick", "cub", **experiments.OURS)


# -- run_all ------------------------------------------------------------------------------------
def test_run_all_counts_caches_and_isolates_failures(monkeypatch, capsys):
    configs = experiments.table_configs("cub_comparison", "smoke", seeds=(0, 1))
    bad = configs[1].run_id
    calls = []

    def fake_run(config, **kwargs):
        calls.append(config.run_id)
        if config.run_id == bad:
            raise RuntimeError("out of memory")
        record = RunRecord(run_id=config.run_id, config=config.to_dict(),
                           metrics={k: float(config.seed) for k in ("top1", "top5", "mistake_severity",
                                                                    "hdist@1", "hdist@5", "ece")},
                           wall_time_s=1.0)
        records.save_record(record)
        return record

    monkeypatch.setattr("kesl_utils.train.run", fake_run)
    frame = experiments.run_all(configs + configs[:1], progress=False)
    assert "3 run" in capsys.readouterr().out and calls == [c.run_id for c in configs]
    assert list(frame["run_id"]) == [c.run_id for c in configs + configs[:1]]
    assert list(frame["status"]) == ["finished", "failed", "finished", "finished", "finished"]
    assert frame.loc[1, "error"].startswith("RuntimeError: out of memory")
    assert frame["top1"].isna().tolist() == [False, True, False, False, False]
    assert list(frame["seed"]) == [0, 0, 1, 1, 0] and list(frame["top1"][[0, 2]]) == [0.0, 1.0]
    assert records.load_failure(bad).status == "failed" and records.load_record(bad) is None

    calls.clear()
    frame = experiments.run_all(configs, progress=False)
    assert capsys.readouterr().out.strip().endswith("3 cached, 0 run, 1 failed")
    assert calls == [bad]  # only the failed run is retried
    assert frame["cached"].tolist() == [True, False, True, True]

    results = experiments.results_frame(configs)
    assert results["status"].tolist() == ["finished", "missing", "finished", "finished"]
    assert set(experiments.RESULT_COLUMNS) <= set(results.columns)
