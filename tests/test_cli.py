"""``python -m kesl_utils``: help, flags for every Config field and loss parameter, the non-quiet
train path, and the ``table`` command printing and writing the paper table."""
import dataclasses
import subprocess
import sys

import pytest

from kesl_utils import experiments, losses, paths, profiles, records, train
from kesl_utils.__main__ import build_parser, config_from_args, main
from kesl_utils.config import Config
from kesl_utils.hierarchy import Hierarchy
from kesl_utils.table_specs import OURS, table_configs

TINY = Hierarchy.from_edges([("r", "a"), ("r", "b"), ("a", "a1"), ("a", "a2"), ("a", "a3"),
                             ("b", "b1"), ("b", "b2"), ("b", "b3")], ["a1", "a2", "a3", "b1", "b2", "b3"])


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    """The command line is an entry point: it reads the environment (and nothing else does)."""
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    for name in ("KESL_PROFILE", "KESL_EXECUTOR", "KESL_PROGRESS", "KESL_PROGRESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "results"


def test_module_help_runs():
    out = subprocess.run([sys.executable, "-m", "kesl_utils", "--help"], cwd=paths.PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "table" in out.stdout and "hierarchy" in out.stdout


def test_train_help_documents_every_field_and_loss_parameter(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(Config):
        if field.name not in ("pretrain_run", "data_fingerprint", "loss_params"):
            assert "--" + field.name.replace("_", "-") in text, field.name
    for spec in losses.LOSSES.values():
        for param in spec.params:
            assert "--" + param.name.replace("_", "-") in text, param.name
    for flag in ("--no-imagenet-weights", "--data-root", "--device", "--force", "--quiet", "--keep-checkpoints"):
        assert flag in text


def test_flags_override_the_profile():
    args = build_parser().parse_args(
        ["train", "--profile", "paper", "--dataset", "cub", "--backbone", "resnet18", "--loss", "kesl",
         "--lam", "0.5", "--T", "2", "--alpha", "1", "--beta", "1", "--epochs", "4", "--no-imagenet-weights",
         "--n-per-class", "none", "--max-batches-per-epoch", "3"])
    expected = experiments.profile_config("paper", "cub", backbone="resnet18", loss="kesl", lam=0.5, T=2,
                                          alpha=1, beta=1, epochs=4, imagenet_weights=False,
                                          max_batches_per_epoch=3)
    assert config_from_args(args) == expected
    args = build_parser().parse_args(["train", "--profile", "quick"])
    assert config_from_args(args) == experiments.profile_config("quick", "cub")


def test_the_profile_flag_wins_over_the_environment_and_the_environment_over_the_default(monkeypatch, capsys,
                                                                                        results_dir):
    from kesl_utils.__main__ import _context
    monkeypatch.setenv("KESL_PROFILE", "smoke")
    parse = build_parser().parse_args
    assert _context(parse(["train"])).profile == "smoke"
    assert _context(parse(["train", "--profile", "quick"])).profile == "quick"
    assert _context(parse(["train", "--profile", "quick"])).results_dir == results_dir  # $KESL_RESULTS_DIR
    monkeypatch.delenv("KESL_RESULTS_DIR")
    assert _context(parse(["train", "--profile", "quick"])).results_dir == paths.PROJECT_ROOT / "results"


@pytest.mark.parametrize("argv,message", [
    (["--loss", "kesl", "--lam", "0"], "lam (λ) must be a real number in the open interval (0, 1), got 0"),
    (["--loss", "kesl", "--T", "inf"], "T must be a finite real number > 0, got inf"),
    (["--loss", "kesl", "--alpha", "inf"], "alpha (α) must be a finite real number ≥ 0, got inf"),
    (["--lam", "2", "--T", "-5"], "--lam is a parameter of 'kesl', not of the chosen loss 'ce' (the default"),
    (["--loss", "label_smoothing", "--beta", "0.5"], "--beta is a parameter of 'kesl', not of the chosen loss "
                                                     "'label_smoothing'"),
    (["--loss", "kesl", "--epsilon", "0.2"], "--epsilon is a parameter of 'label_smoothing'"),
])
def test_bad_or_foreign_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--profile", "smoke"] + argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_train_without_quiet_then_cached(monkeypatch, capsys, results_dir):
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: TINY)
    argv = ["train", "--profile", "smoke", "--dataset", "mini_imagenet", "--loss", "kesl", "--n-per-class", "6",
            "--batch-size", "8", "--epochs", "2", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr()
    config = experiments.profile_config("smoke", "mini_imagenet", n_per_class=6, batch_size=8, epochs=2, **OURS)
    assert f"run {config.run_id} (trained" in out.out and "hdist@5" in out.out
    assert f"{config.run_id} epoch 2/2: loss" in out.out + out.err  # the per-epoch lines of a non-quiet run
    assert records.load_record(config, results_dir).status == "finished"
    assert main(argv) == 0
    assert f"run {config.run_id} (cached" in capsys.readouterr().out


def _fake_run(seen):
    def fake_run(config, **kwargs):
        seen.append(config)
        record = records.RunRecord(run_id=config.run_id, config=config.to_dict(),
                                   metrics={"top1": 10.0 + config.seed + (config.loss == "kesl"), "top5": 20.0,
                                            "mistake_severity": 1.0, "hdist@1": 0.5, "hdist@5": 1.5, "ece": 0.1})
        records.save_record(record, kwargs["context"].results_dir)
        return record
    return fake_run


def test_table_prints_the_paper_table_and_writes_its_files(monkeypatch, capsys, results_dir):
    seen = []
    monkeypatch.setattr("kesl_utils.train.run", _fake_run(seen))
    assert main(["table", "backbone_ablation", "--profile", "smoke", "--seeds", "0", "1", "--quiet"]) == 0
    assert seen == table_configs("backbone_ablation", "smoke", seeds=(0, 1))
    out = capsys.readouterr().out
    assert "Profile `smoke`" not in out and "Profile smoke" in out  # the banner, without markdown
    assert "MobileNetV2" in out and "paper" in out and "this run" in out and "backbone (this run)" in out
    assert "Ours − Baseline (ResNet-50)" in out and "95 % CI" in out
    assert "raw dump" not in out and "run_id" not in out
    for suffix in (".csv", ".md", ".tex", "_gains.csv"):
        assert (results_dir / "tables" / f"backbone_ablation{suffix}").is_file()
    assert "written: " in out


def test_table_verbose_runs_the_non_quiet_path(monkeypatch, capsys):
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: TINY)
    monkeypatch.setattr("kesl_utils.tables.num_classes", lambda dataset: 6)
    smoke = profiles.PROFILES["smoke"]
    monkeypatch.setitem(profiles.PROFILES, "smoke", profiles.Profile(
        **{**smoke.__dict__, "base": dict(smoke.base, n_per_class=6, batch_size=8)}))
    monkeypatch.setattr("kesl_utils.ncm.compute", lambda config: 20.0)
    assert main(["table", "general_recognition", "--profile", "smoke", "--verbose", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "epoch 1/1: loss" in out.out + out.err and "Ours − Baseline (Mini-ImageNet)" in out.out
    # run_all stored each data config's reference (patched to 20 %), which the table then read
    assert "no reading: the no-learning reference of these images is missing" not in out.out
    assert "20.0" in out.out


def test_hierarchy_regenerate_rejects_a_taxonomy(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["hierarchy", "regenerate", "--check", "cub"])
    assert exit_.value.code == 2 and "cub" in capsys.readouterr().err


# -- named errors and strict inputs (issue 23) -------------------------------------------------------
def _fails_naming(capsys, status, *texts):
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and all(text in err for text in texts), err
    return err


def test_every_command_names_a_results_folder_that_is_a_file(monkeypatch, capsys, tmp_path):
    """Issue 23: a results folder that is a file gave NotADirectoryError tracebacks (and `plan` read nothing)."""
    from kesl_utils import reproduce

    results = tmp_path / "results-file"
    results.write_text("not a folder")
    monkeypatch.setenv("KESL_RESULTS_DIR", str(results))
    monkeypatch.setattr(train, "run", lambda *a, **k: pytest.fail("a run started"))
    for argv in (["train", "--profile", "smoke", "--device", "cpu"], ["table", "backbone_ablation", "--profile", "smoke"],
                 ["plan", "--profile", "smoke", "--summary"]):
        _fails_naming(capsys, main(argv), "error: ", str(results))
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["--profile", "smoke", "--report-only"])
    _fails_naming(capsys, exit_.value.code, "error: cannot write in", str(results))
    assert results.read_text() == "not a folder"


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_every_writing_command_names_a_read_only_results_folder(monkeypatch, capsys, tmp_path):
    results = tmp_path / "ro"
    results.mkdir()
    results.chmod(0o500)
    monkeypatch.setenv("KESL_RESULTS_DIR", str(results))
    for argv in (["train", "--profile", "smoke", "--device", "cpu"], ["table", "backbone_ablation", "--profile", "smoke"]):
        _fails_naming(capsys, main(argv), "error: cannot write in", str(results))


def test_errors_raised_on_purpose_are_one_line_and_exit_2_and_debug_keeps_the_traceback(capsys, tmp_path):
    """Issue 23: `--device foo` was torch's raw error, a missing dataset a 20–95-line traceback."""
    _fails_naming(capsys, main(["train", "--profile", "smoke", "--device", "foo"]),
                  "error: device 'foo' is not a device name; this machine has: cpu")
    _fails_naming(capsys, main(["train", "--profile", "smoke", "--source", "real", "--no-imagenet-weights",
                                "--data-root", str(tmp_path / "nowhere"), "--device", "cpu"]),
                  "error: CUB-200-2011: dataset root does not exist:", "Expected layout:")
    with pytest.raises(ValueError, match="device 'foo' is not a device name"):
        main(["train", "--profile", "smoke", "--device", "foo", "--debug"])
    with pytest.raises(ValueError, match="device 'foo' is not a device name"):
        main(["--debug", "train", "--profile", "smoke", "--device", "foo"])


def test_deliberate_errors_are_those_the_library_raises_itself():
    import json

    import torch

    from kesl_utils.__main__ import deliberate
    from kesl_utils.data import DatasetLayoutError

    def caught(function, *args):
        try:
            function(*args)
        except BaseException as error:  # noqa: BLE001
            return error
        raise AssertionError("no error")

    assert deliberate(caught(Config, "cub", "synthetic", "dag", None, None, 1.0, 0.0, 32, False, None, "resnet18",
                             False, None, "ce", {}, "sgd", 0.1, 1.0, 0.9, 5e-4, "cosine", 0, None, None, 1, 8,
                             None, 1, False, False, False, -1))                      # a raise statement of Config
    assert deliberate(DatasetLayoutError("x", "cub", "layout", "url"))            # a class the library defines
    assert not deliberate(caught(torch.device, "foo"))                             # raised inside torch
    assert not deliberate(caught(json.loads, "{"))                                 # inside the standard library
    assert not deliberate(caught(paths.sha256_file, None))                         # a bad call in the package: a bug
    assert not deliberate(KeyboardInterrupt())


@pytest.mark.parametrize("argv,message", [
    (["train", "--profile", "smoke", "--seed", "18446744073709551616"], "Config.seed=18446744073709551616 is out of "
                                                                        "range (expected 0 <= seed < 2**32"),
    (["table", "backbone_ablation", "--profile", "smoke", "--seeds", "0", "-1"], "--seeds=-1 is out of range"),
    (["train", "--profile", "quick", "--gamma", "0.5"], "--gamma is a parameter of the 'step' schedule, not of the "
                                                        "chosen schedule 'cosine' (the profile's; choose one with "
                                                        "--schedule)"),
    (["train", "--profile", "paper", "--schedule", "cosine", "--step-size", "3"], "--step-size is a parameter of "
                                                                                  "the 'step' schedule, not of the "
                                                                                  "chosen schedule 'cosine'"),
])
def test_out_of_range_seeds_and_unused_schedule_flags_are_usage_errors(argv, message, capsys, monkeypatch):
    """Issue 23: a huge seed overflowed inside torch, `--seeds -1` was a traceback, and `--gamma` with the cosine
    schedule was dropped silently, the run getting the plain run's id."""
    monkeypatch.setattr(train, "run", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_schedule_flags_of_the_chosen_schedule_are_taken():
    args = build_parser().parse_args(["train", "--profile", "quick", "--schedule", "step", "--step-size", "3",
                                      "--gamma", "0.5"])
    config = config_from_args(args)
    assert (config.schedule, config.step_size, config.gamma) == ("step", 3, 0.5)


def test_imagenet_weights_replace_the_profiles_pretraining_run_and_no_pretrain_run_drops_it():
    """Issue 23: `--pretrained` on the CUB configs failed with "two initialisations; give one", and no flag dropped
    the synthetic pretraining."""
    from kesl_utils.__main__ import replaced_pretraining

    parse = build_parser().parse_args
    profile_run = config_from_args(parse(["train", "--profile", "quick", "--dataset", "cub"]))
    assert profile_run.pretrain_run is not None and not profile_run.imagenet_weights
    args = parse(["train", "--profile", "quick", "--dataset", "cub", "--imagenet-weights"])
    imagenet = config_from_args(args)
    assert imagenet.imagenet_weights and imagenet.pretrain_run is None
    assert imagenet == experiments.profile_config("quick", "cub", imagenet_weights=True, pretrain_run=None)
    note = replaced_pretraining(args, imagenet)
    assert note.startswith("note: --imagenet-weights: this run starts from torchvision's ImageNet weights, not from "
                           f"the profile's synthetic pretraining run {profile_run.pretrain_run.run_id}")
    args = parse(["train", "--profile", "quick", "--dataset", "cub", "--no-pretrain-run"])
    scratch = config_from_args(args)
    assert scratch.pretrain_run is None and not scratch.imagenet_weights
    assert "--no-pretrain-run: this run starts from random weights" in replaced_pretraining(args, scratch)
    assert replaced_pretraining(parse(["train", "--profile", "quick"]), profile_run) is None
    plain = parse(["train", "--profile", "quick", "--dataset", "mini_imagenet"])  # trained from scratch anyway
    assert replaced_pretraining(plain, config_from_args(plain)) is None


def test_train_says_it_replaced_a_damaged_record(monkeypatch, capsys, results_dir):
    """Issue 23: a truncated record was retrained and overwritten, and the command line said "trained"."""
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: TINY)
    argv = ["train", "--profile", "smoke", "--dataset", "mini_imagenet", "--n-per-class", "6", "--batch-size", "8",
            "--epochs", "1", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    config = experiments.profile_config("smoke", "mini_imagenet", n_per_class=6, batch_size=8, epochs=1)
    path = records.record_path(config.run_id, results_dir)
    text = path.read_text()
    path.write_text(text[:100])
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr()
    (aside,) = records.set_aside_records(config.run_id, results_dir)
    assert f"run {config.run_id} (trained" in out.out
    assert ("replaced a damaged record (not valid JSON, truncated or cut by an edit" in out.out
            and paths.display_path(aside) in out.out)
    assert f"warning: run record {paths.display_path(path)} was damaged" in out.err and "Traceback" not in out.err
    assert aside.read_text() == text[:100] and records.load_record(config, results_dir) is not None
