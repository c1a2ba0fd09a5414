"""Run records: atomic, per profile, and never taken for finished when partial or malformed."""
import json

import pytest

from kesl_utils import paths, records
from kesl_utils.config import Config
from kesl_utils.records import RunRecord

METRICS = {"top1": 50.0, "top5": 80.0, "mistake_severity": 2.0, "hdist@1": 1.0, "hdist@5": 3.0, "ece": 0.1}


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def _record(config, status="finished", **metrics):
    return RunRecord(run_id=config.run_id, config=config.to_dict(), metrics=dict(METRICS, **metrics), status=status,
                     error=None if status == "finished" else "boom")


def test_record_round_trip_and_missing(results_dir):
    config = Config(seed=3)
    assert records.load_record(config) is None
    path = records.save_record(_record(config))
    assert path == results_dir / "runs" / f"{config.run_id}.json"
    assert records.load_record(config) == _record(config)
    assert [r.run_id for r in records.load_records("custom")] == [config.run_id]


def test_a_record_of_another_config_under_the_same_name_is_not_taken(results_dir):
    config = Config(seed=3)
    other = _record(Config(seed=4))
    other.run_id = config.run_id
    records.save_record(other)
    assert records.load_record(config) is None


def test_partial_unfinished_or_malformed_record_is_not_finished(results_dir):
    config = Config()
    text = json.dumps(_record(config).to_dict())
    runs = results_dir / "runs"
    runs.mkdir(parents=True)
    target = runs / f"{config.run_id}.json"
    for cut in (0, 1, len(text) // 2, len(text) - 1):
        target.write_text(text[:cut])
        assert records.load_record(config) is None
    for broken in (dict(status="running"), dict(metrics={}), dict(metrics={"top1": 50.0}),
                   dict(metrics=dict(METRICS, top1="fifty")), dict(metrics=dict(METRICS, ece=None)),
                   dict(metrics=[1, 2]), dict(metrics=dict(METRICS, top1=float("nan")))):
        target.write_text(json.dumps(dict(_record(config).to_dict(), **broken)))
        assert records.load_record(config) is None, broken
    target.write_text("[1, 2]")
    assert records.load_record(config) is None and records.load_records("custom") == []
    # No mistake at all leaves mistake severity undefined: NaN there is a finished run.
    target.write_text(json.dumps(dict(_record(config).to_dict(), metrics=dict(METRICS, mistake_severity=float("nan")))))
    assert records.load_record(config) is not None


def test_a_finished_record_with_malformed_metrics_is_refused(results_dir):
    with pytest.raises(ValueError, match="metrics lack top5"):
        records.save_record(RunRecord(run_id="x", config=Config().to_dict(), metrics={"top1": 1.0}))


def test_failed_record_is_separate_and_removed_on_success(results_dir):
    config = Config()
    records.save_record(_record(config, status="failed"))
    assert (results_dir / "runs" / f"{config.run_id}.failed.json").is_file()
    assert records.load_record(config) is None and records.load_records("custom") == []
    assert records.load_failure(config).error == "boom"
    records.save_record(_record(config))
    assert not (results_dir / "runs" / f"{config.run_id}.failed.json").exists()
    assert records.load_record(config).status == "finished"


def test_each_profile_has_its_own_folder(monkeypatch):
    monkeypatch.delenv("KESL_RESULTS_DIR", raising=False)
    assert paths.results_dir("quick") == paths.PROJECT_ROOT / "results"
    assert paths.results_dir("smoke") == paths.PROJECT_ROOT / "build" / "results-smoke"
    assert paths.results_dir("paper") == paths.PROJECT_ROOT / "results-paper"
    assert records.record_path("x", "smoke") == paths.PROJECT_ROOT / "build" / "results-smoke" / "runs" / "x.json"
    with pytest.raises(ValueError, match="profile='fast'"):
        paths.results_dir("fast")


def test_provenance():
    versions = records.library_versions()
    assert set(versions) == {"python", "torch", "torchvision", "numpy", "kesl_utils"}
    commit = records.git_commit()
    assert commit == "unknown" or len(commit.split("-")[0]) == 40
