"""``python -m kesl_utils``: help, flags for every Config field, a smoke train run, a table."""
import dataclasses
import subprocess
import sys

import pytest

from kesl_utils import experiments, paths, records
from kesl_utils.__main__ import build_parser, config_from_args, main
from kesl_utils.config import Config


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))


def test_module_help_runs():
    out = subprocess.run([sys.executable, "-m", "kesl_utils", "--help"], cwd=paths.PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "table" in out.stdout


def test_train_help_documents_every_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(Config):
        assert "--" + field.name.replace("_", "-") in text, field.name
    for flag in ("--no-pretrained", "--data-root", "--device", "--force", "--quiet", "--keep-checkpoints"):
        assert flag in text


def test_flags_override_the_profile():
    args = build_parser().parse_args(
        ["train", "--profile", "paper", "--dataset", "cub", "--backbone", "resnet18", "--loss", "kesl",
         "--lam", "0.5", "--T", "2", "--alpha", "1", "--beta", "1", "--epochs", "4", "--no-pretrained",
         "--n-per-class", "none", "--max-batches-per-epoch", "3"])
    expected = experiments.profile_config("paper", "cub", backbone="resnet18", loss="kesl", lam=0.5, T=2,
                                          alpha=1, beta=1, epochs=4, pretrained=False,
                                          max_batches_per_epoch=3)
    assert config_from_args(args) == expected
    args = build_parser().parse_args(["train", "--profile", "quick"])
    assert config_from_args(args) == experiments.profile_config("quick", "cub")


def test_bad_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--profile", "smoke", "--loss", "kesl", "--lam", "0"])
    assert exit_.value.code == 2 and "lam" in capsys.readouterr().err


def test_smoke_train_then_cached(capsys, monkeypatch):
    from kesl_utils import train
    from kesl_utils.hierarchy import Hierarchy

    # A 6-class hierarchy instead of CUB's 200 classes keeps the test to a few seconds.
    tiny = Hierarchy.from_edges([("r", "a"), ("r", "b"), ("a", "a1"), ("a", "a2"), ("a", "a3"),
                                 ("b", "b1"), ("b", "b2"), ("b", "b3")], ["a1", "a2", "a3", "b1", "b2", "b3"])
    monkeypatch.setattr(train, "load_run_hierarchy", lambda config: tiny)
    argv = ["train", "--profile", "smoke", "--loss", "kesl", "--n-per-class", "6", "--batch-size", "8",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    config = experiments.profile_config("smoke", "cub", n_per_class=6, batch_size=8, **experiments.OURS)
    assert f"run {config.run_id} (trained" in out and "top1" in out and "hdist@5" in out
    assert records.load_record(config.run_id).status == "finished"
    assert main(argv) == 0
    assert f"run {config.run_id} (cached" in capsys.readouterr().out


def test_table_command_runs_the_tables_configs(monkeypatch, capsys):
    seen = []

    def fake_run(config, **kwargs):
        seen.append(config)
        record = records.RunRecord(run_id=config.run_id, config=config.to_dict(),
                                   metrics={"top1": 1.0, "top5": 2.0, "mistake_severity": 1.0,
                                            "hdist@1": 0.5, "hdist@5": 1.5, "ece": 0.1})
        records.save_record(record)
        return record

    monkeypatch.setattr("kesl_utils.train.run", fake_run)
    assert main(["table", "backbone_ablation", "--profile", "smoke", "--seeds", "0", "1", "--quiet"]) == 0
    assert seen == experiments.table_configs("backbone_ablation", "smoke", seeds=(0, 1))
    out = capsys.readouterr().out
    assert "0 cached, 12 run, 0 failed" in out and "mobilenet_v2" in out
