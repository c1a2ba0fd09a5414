"""Profiles, the configs each paper table needs, and the cached batch runner."""
import json

import pytest

from kesl_utils import experiments, names, paper, profiles, records
from kesl_utils.context import RunContext
from kesl_utils.records import RunRecord
from kesl_utils.table_specs import BASELINE, LABEL_SMOOTHING, OURS, TABLES, all_table_configs, table_configs

METRICS = names.METRIC_KEYS


@pytest.fixture
def ctx(tmp_path):
    return RunContext(results_dir=tmp_path / "results", progress=False)


def test_profile_budgets():
    smoke = experiments.profile_config("smoke", "mini_imagenet")
    assert (smoke.source, smoke.image_size, smoke.n_per_class, smoke.n_test_per_class, smoke.epochs,
            smoke.batch_size, smoke.max_batches_per_epoch, smoke.backbone, smoke.imagenet_weights, smoke.pretrain_run) == \
        ("synthetic", 16, 2, 2, 1, 32, 2, "resnet18", False, None)
    cub = experiments.profile_config("paper", "cub")
    assert (cub.source, cub.image_size, cub.backbone, cub.imagenet_weights, cub.backbone_lr_mult, cub.lr,
            cub.epochs, cub.schedule, cub.step_size, cub.gamma, cub.batch_size, cub.weight_decay,
            cub.n_per_class, cub.amp, cub.channels_last, cub.pretrain_run) == \
        ("real", 448, "resnet50", True, 0.1, 0.1, 90, "step", 30, 0.1, 32, 1e-4, None, True, True, None)
    small = experiments.profile_config("paper", "small_imagenet")
    assert (small.image_size, small.imagenet_weights, small.batch_size) == (224, False, 256)
    assert experiments.profile_seeds("smoke") == experiments.profile_seeds("paper") == (0,)
    assert experiments.profile_config("quick", "cub", epochs=2, seed=2).epochs == 2
    with pytest.raises(ValueError, match="profile='fast' is not allowed; expected one of 'smoke', 'quick', 'paper'"):
        experiments.profile_config("fast", "cub")


def test_cub_fine_tunes_from_the_profiles_pretraining_run():
    for profile in ("smoke", "quick"):
        for backbone in names.BACKBONES:
            tuned = experiments.profile_config(profile, "cub", backbone=backbone)
            source = experiments.pretrain_config(profile, backbone)
            assert tuned.pretrain_run == source and source.backbone == backbone and source.loss == "ce"
            assert source.dataset != "cub" and source.profile == profile
        # The ImageNet subsets train from scratch: a pretrained start would have seen their classes.
        assert experiments.profile_config(profile, "mini_imagenet").pretrain_run is None
        assert experiments.profile_config(profile, "small_imagenet").pretrain_run is None
    assert experiments.pretrain_config("paper", "resnet50") is None


def test_profiles_never_change_the_method():
    for overrides in (OURS, LABEL_SMOOTHING, BASELINE):
        chosen = [experiments.profile_config(p, "cub", **overrides) for p in profiles.PROFILES]
        assert len({(c.loss, tuple(c.loss_params.items()), c.hierarchy_mode, c.alignment, c.label_noise)
                    for c in chosen}) == 1
    ours = experiments.profile_config("smoke", "cub", **OURS)
    assert ours.loss_params == {"lam": 0.5, "T": 2.0, "alpha": 1.0, "beta": 0.1, "kl": "reverse", "distance": "edges"}


def _ids(table, profile="quick", seeds=(0,)):
    return [c.run_id for c in table_configs(table, profile, seeds)]


def test_shared_runs_are_the_same_config():
    ce = experiments.profile_config("quick", "cub", seed=0).run_id
    ours = experiments.profile_config("quick", "cub", seed=0, **OURS).run_id
    for table in ("cub_comparison", "hyperparameter_ablation", "backbone_ablation"):
        assert ce in _ids(table) and ours in _ids(table)
    assert ours in _ids("label_smoothing") and ce not in _ids("label_smoothing")
    # Table 4 prints 9 rows, 2 of them repeat a setting: 7 runs per seed.
    assert len(_ids("hyperparameter_ablation")) == 7
    assert len(set(_ids("cub_comparison", seeds=(0, 1, 2)))) == 6
    every = all_table_configs("quick", seeds=(0,))
    assert len(every) == len({c.run_id for c in every}) == 18


def test_every_row_runs_the_profiles_seeds(monkeypatch):
    quick = profiles.PROFILES["quick"]
    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.Profile(
        **{**quick.__dict__, "seeds": (0, 1, 2, 3), "headline_seeds": {}}))
    assert [c.seed for c in table_configs("cub_comparison", "quick")] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sorted({c.seed for c in table_configs("label_smoothing", "quick")}) == [0, 1, 2, 3]


def test_the_paper_budget_of_a_dataset_comes_from_its_registry_entry(monkeypatch):
    spec = names.DATASETS["mini_imagenet"]
    monkeypatch.setitem(names.DATASETS, "mini_imagenet", names.DatasetSpec(
        **{**spec.__dict__, "paper_budget": dict(spec.paper_budget, image_size=96, batch_size=64)}))
    config = experiments.profile_config("paper", "mini_imagenet")
    assert (config.image_size, config.batch_size) == (96, 64)
    with pytest.raises(ValueError, match="paper_budget must be a mapping of Config fields naming at least"):
        names.DatasetSpec(**{**spec.__dict__, "paper_budget": {}})


def test_table_contents():
    configs = table_configs("backbone_ablation", "smoke")
    assert [(c.backbone, c.loss) for c in configs] == [
        (b, l) for b in ("mobilenet_v2", "resnet18", "resnet50") for l in ("ce", "kesl")]
    configs = table_configs("label_smoothing", "paper")
    assert [(c.loss, c.lr) for c in configs] == [("label_smoothing", 0.01), ("label_smoothing", 0.001),
                                                 ("kesl", 0.1), ("kesl", 0.01)]
    assert {c.dataset for c in table_configs("general_recognition", "quick")} == {"mini_imagenet", "small_imagenet"}
    with pytest.raises(ValueError, match="cub_comparison"):
        table_configs("table9", "quick")


def test_ablation_rows_match_the_papers_table():
    spec = TABLES["hyperparameter_ablation"]
    printed = paper.hyperparameter_ablation()
    configs = [row.config("quick") for row in spec.rows]
    assert len(configs) == len(printed) == 9
    assert configs[0].loss == "ce"
    assert [(c.loss, c.param("lam"), c.param("T"), c.param("alpha"), c.param("beta")) for c in configs[1:]] == [
        ("kesl", 0.5, 16.0, 0.0, 1.0), ("kesl", 0.5, 2.0, 1.0, 1.0), ("kesl", 0.5, 5.0, 1.0, 1.0),
        ("kesl", 0.5, 16.0, 1.0, 1.0), ("kesl", 0.5, 16.0, 1.0, 1.0), ("kesl", 0.5, 16.0, 0.1, 1.0),
        ("kesl", 0.5, 2.0, 1.0, 1.0), ("kesl", 0.5, 2.0, 1.0, 0.1)]
    # printed duplicates share one run; the last row is "Ours"
    assert configs[4].run_id == configs[5].run_id and configs[2].run_id == configs[7].run_id
    assert configs[8] == experiments.profile_config("quick", "cub", **OURS)


# -- run_all ------------------------------------------------------------------------------------
def test_run_all_counts_caches_and_isolates_failures(ctx, monkeypatch, capsys):
    configs = table_configs("general_recognition", "smoke", seeds=(0, 1))
    bad = configs[1]
    calls = []

    def fake_run(config, **kwargs):
        calls.append(config.run_id)
        if config.run_id == bad.run_id:
            raise RuntimeError("out of memory")
        record = RunRecord(run_id=config.run_id, config=config.to_dict(),
                           metrics={k: float(config.seed) for k in METRICS}, wall_time_s=1.0)
        records.save_record(record, kwargs["context"].results_dir)
        return record

    monkeypatch.setattr("kesl_utils.train.run", fake_run)
    frame = experiments.run_all(configs + configs[:1], context=ctx)
    assert "7 run, 1 failed" in capsys.readouterr().out and calls == [c.run_id for c in configs]
    assert list(frame["run_id"]) == [c.run_id for c in configs + configs[:1]]
    assert frame["status"].tolist() == ["finished", "failed"] + ["finished"] * 7
    assert frame.loc[1, "error"].startswith("RuntimeError: out of memory")
    assert frame["seed"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert records.load_failure(bad, ctx.results_dir).status == "failed"
    assert records.load_record(bad, ctx.results_dir) is None

    calls.clear()
    frame = experiments.run_all(configs, context=ctx)
    assert capsys.readouterr().out.strip().endswith("7 cached, 0 run, 1 failed")
    assert calls == [bad.run_id]  # only the failed run is retried
    assert frame["cached"].tolist() == [True, False] + [True] * 6

    results = experiments.results_frame(configs, context=ctx)
    assert results["status"].tolist() == ["finished", "missing"] + ["finished"] * 6


def test_run_all_refuses_what_is_not_a_config_or_a_context(ctx):
    with pytest.raises(TypeError, match="run_all needs Config objects, got dict"):
        experiments.run_all([{"dataset": "cub"}], context=ctx)
    with pytest.raises(TypeError, match="run_all needs a kesl_utils.context.RunContext, got str"):
        experiments.run_all([], context="results")


def test_run_all_logs_each_run_for_reproduce(ctx, tmp_path, monkeypatch):
    """One JSON line when a run starts and when it ends (cached runs: an end only): what make reproduce tails."""
    configs = table_configs("general_recognition", "smoke")[:2]

    def fake_run(config, **kwargs):
        record = RunRecord(run_id=config.run_id, config=config.to_dict(), metrics={k: 1.0 for k in METRICS})
        records.save_record(record, kwargs["context"].results_dir)
        return record

    monkeypatch.setattr("kesl_utils.train.run", fake_run)
    log = tmp_path / "progress.jsonl"
    experiments.run_all(configs[:1], context=ctx)
    experiments.run_all(configs, context=ctx.replace(progress_log=log))
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["index"], e["total"], e["run_id"]) for e in events] == [
        ("finish", 1, 2, configs[0].run_id), ("start", 2, 2, configs[1].run_id), ("finish", 2, 2, configs[1].run_id)]
    assert [e["cached"] for e in events if e["event"] == "finish"] == [True, False]


def test_quick_budget_is_the_calibrated_one():
    """benchmarks/calibration.md: CUB fine-tunes on 24 images/class for 10 epochs from a 40 x 8 pretraining,
    Mini-/Small-ImageNet train 15 epochs from scratch, 50 test images per class; ResNet-50 warms up in both
    stages (its 24-epoch pretraining for 5 epochs: with one it diverged in the complete run); MobileNetV2 trains channels-last; headline rows run 5 seeds (Mini-ImageNet 10), others 3."""
    cub = experiments.profile_config("quick", "cub")
    assert (cub.n_per_class, cub.n_test_per_class, cub.epochs, cub.image_size, cub.backbone_lr_mult,
            cub.warmup_epochs, cub.channels_last) == (24, 50, 10, 32, 1.0, 0, False)
    pre = cub.pretrain_run
    assert (pre.dataset, pre.n_per_class, pre.epochs, pre.seed) == ("small_imagenet", 40, 8, 100)
    r50 = experiments.profile_config("quick", "cub", backbone="resnet50")
    assert r50.warmup_epochs == 1 and (r50.pretrain_run.warmup_epochs, r50.pretrain_run.epochs) == (5, 24)
    mobile = experiments.profile_config("quick", "cub", backbone="mobilenet_v2")
    assert mobile.channels_last and mobile.pretrain_run.channels_last
    for dataset in ("mini_imagenet", "small_imagenet"):
        config = experiments.profile_config("quick", dataset)
        assert (config.n_per_class, config.n_test_per_class, config.epochs, config.pretrain_run) == (12, 50, 15, None)
    assert experiments.profile_seeds("quick") == (0, 1, 2)
    assert [len(experiments.profile_seeds("quick", d, headline=True))
            for d in ("cub", "small_imagenet", "mini_imagenet")] == [5, 5, 10]


def test_headline_rows_run_the_profiles_headline_seeds_and_share_their_first_runs(monkeypatch):
    from kesl_utils import profiles
    from kesl_utils.table_specs import table_spec

    smoke = profiles.PROFILES["smoke"]
    monkeypatch.setitem(profiles.PROFILES, "smoke", profiles.Profile(
        **{**smoke.__dict__, "seeds": (0, 1), "headline_seeds": {"cub": (0, 1, 2, 3)}}))
    table1, table4 = table_spec("cub_comparison"), table_spec("hyperparameter_ablation")
    headline = table1.row("baseline").configs("smoke")
    ablation = table4.row("row1").configs("smoke")  # only L_CE: the same config, not a headline row
    assert [c.seed for c in headline] == [0, 1, 2, 3] and [c.seed for c in ablation] == [0, 1]
    assert [c.run_id for c in ablation] == [c.run_id for c in headline[:2]]
    # a dataset without headline seeds of its own runs the profile's seeds
    assert [c.seed for c in table_spec("general_recognition").row("mini_imagenet/baseline").configs("smoke")] == [0, 1]
    with pytest.raises(ValueError, match="must start with the profile's seeds"):
        profiles.Profile(**{**smoke.__dict__, "seeds": (0, 1), "headline_seeds": {"cub": (1, 2, 3)}})


def test_a_backbones_pretraining_fields_apply_to_its_pretraining_run_only(monkeypatch):
    quick = profiles.PROFILES["quick"]
    monkeypatch.setitem(profiles.PROFILES, "quick", profiles.Profile(**{
        **quick.__dict__, "backbones": {"mobilenet_v2": dict(channels_last=True, epochs=7)},
        "pretrain_backbones": {"mobilenet_v2": dict(epochs=13, eval_every=13)}}))
    finetune = experiments.profile_config("quick", "cub", backbone="mobilenet_v2")
    assert (finetune.epochs, finetune.channels_last) == (7, True)
    pretrain = finetune.pretrain_run
    assert (pretrain.epochs, pretrain.eval_every, pretrain.channels_last, pretrain.loss) == (13, 13, True, "ce")
    assert pretrain.dataset == quick.pretrain["dataset"] and pretrain.n_per_class == quick.pretrain["n_per_class"]
    other = experiments.profile_config("quick", "cub", backbone="resnet18").pretrain_run
    assert other.epochs == quick.pretrain["epochs"]
