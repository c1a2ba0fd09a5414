"""Run records: atomic, in the folder the caller names, and never taken for finished when partial or
malformed; each profile's default folder; reading a path creates nothing."""
import json

import pytest

from kesl_utils import paths, records
from kesl_utils.config import Config
from kesl_utils.records import RunRecord

METRICS = {"top1": 50.0, "top5": 80.0, "mistake_severity": 2.0, "hdist@1": 1.0, "hdist@5": 3.0, "ece": 0.1}


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"


def _record(config, status="finished", **metrics):
    return RunRecord(run_id=config.run_id, config=config.to_dict(), metrics=dict(METRICS, **metrics), status=status,
                     error=None if status == "finished" else "boom")


def test_record_round_trip_and_missing(results_dir):
    config = Config(seed=3)
    assert records.load_record(config, results_dir) is None
    path = records.save_record(_record(config), results_dir)
    assert path == results_dir / "runs" / f"{config.run_id}.json"
    assert records.load_record(config, results_dir) == _record(config)
    assert [r.run_id for r in records.load_records(results_dir)] == [config.run_id]


def test_a_record_of_another_config_under_the_same_name_is_not_taken(results_dir):
    config = Config(seed=3)
    other = _record(Config(seed=4))
    other.run_id = config.run_id
    records.save_record(other, results_dir)
    assert records.load_record(config, results_dir) is None


def test_partial_unfinished_or_malformed_record_is_not_finished(results_dir):
    config = Config()
    text = json.dumps(_record(config).to_dict())
    runs = results_dir / "runs"
    runs.mkdir(parents=True)
    target = runs / f"{config.run_id}.json"
    damaged = pytest.warns(records.DamagedRecordWarning, match=f"{config.run_id}.json is damaged")
    for cut in (0, 1, len(text) // 2, len(text) - 1):
        target.write_text(text[:cut])
        with damaged:
            assert records.load_record(config, results_dir) is None
    for broken in (dict(status="running"), dict(metrics={}), dict(metrics={"top1": 50.0}),
                   dict(metrics=dict(METRICS, top1="fifty")), dict(metrics=dict(METRICS, ece=None)),
                   dict(metrics=[1, 2]), dict(metrics=dict(METRICS, top1=float("nan")))):
        target.write_text(json.dumps(dict(_record(config).to_dict(), **broken)))
        with damaged:
            assert records.load_record(config, results_dir) is None, broken
    target.write_text("[1, 2]")
    with damaged:
        assert records.load_record(config, results_dir) is None and records.load_records(results_dir) == []
    # No mistake at all leaves mistake severity undefined: NaN there is a finished run.
    target.write_text(json.dumps(dict(_record(config).to_dict(), metrics=dict(METRICS, mistake_severity=float("nan")))))
    assert records.load_record(config, results_dir) is not None


def test_a_finished_record_with_malformed_metrics_is_refused(results_dir):
    with pytest.raises(ValueError, match="metrics lack top5"):
        records.save_record(RunRecord(run_id="x", config=Config().to_dict(), metrics={"top1": 1.0}), results_dir)


def test_failed_record_is_separate_and_removed_on_success(results_dir):
    config = Config()
    records.save_record(_record(config, status="failed"), results_dir)
    assert (results_dir / "runs" / f"{config.run_id}.failed.json").is_file()
    assert records.load_record(config, results_dir) is None and records.load_records(results_dir) == []
    assert records.load_failure(config, results_dir).error == "boom"
    records.save_record(_record(config), results_dir)
    assert not (results_dir / "runs" / f"{config.run_id}.failed.json").exists()
    assert records.load_record(config, results_dir).status == "finished"


def test_each_profile_has_its_own_folder_and_no_writer_assumes_one(tmp_path):
    assert paths.default_results_dir("quick") == paths.PROJECT_ROOT / "results"
    assert paths.default_results_dir("smoke") == paths.PROJECT_ROOT / "build" / "results-smoke"
    assert paths.default_results_dir("paper") == paths.PROJECT_ROOT / "results-paper"
    assert paths.default_results_dir("custom") == paths.PROJECT_ROOT / "build" / "results-custom"
    smoke = paths.default_results_dir("smoke")
    assert records.record_path("x", smoke) == smoke / "runs" / "x.json"
    with pytest.raises(ValueError, match="profile='fast'"):
        paths.default_results_dir("fast")
    # A profile name where a folder belongs fails instead of writing to ./quick/runs.
    with pytest.raises(ValueError, match="absolute path"):
        records.record_path("x", "quick")
    with pytest.raises(TypeError):
        records.save_record(_record(Config()))  # no default folder
    with pytest.raises(TypeError):
        paths.default_results_dir()  # no default profile


def test_reading_a_path_creates_nothing(tmp_path):
    root = tmp_path / "results"
    for folder in (paths.runs_dir(root), paths.checkpoints_dir(root), paths.artifacts_dir(root), paths.figures_dir(root),
                   paths.tables_dir(root), paths.references_dir(root), records.record_path("x", root)):
        assert folder.is_relative_to(root)
    assert records.load_records(root) == [] and records.load_record(Config(), root) is None
    assert not root.exists()


def test_provenance():
    versions = records.library_versions()
    assert set(versions) == {"python", "torch", "torchvision", "numpy", "kesl_utils"}
    commit = records.git_commit()
    assert commit == "unknown" or len(commit.split("-")[0]) == 40


# -- damaged records (issue 23) -----------------------------------------------------------------------
def test_a_record_carries_a_digest_of_its_config_and_metrics(results_dir):
    config = Config(seed=5)
    path = records.save_record(_record(config), results_dir)
    data = json.loads(path.read_text())
    assert data["digest"] == records.record_digest(data) and len(data["digest"]) == 64
    assert records.load_record(config, results_dir).digest == data["digest"]
    # Older records have no digest: read as before, their content still checked.
    del data["digest"]
    path.write_text(json.dumps(data))
    assert records.load_record(config, results_dir) == _record(config)


def test_a_hand_edited_record_is_reported_never_used_and_set_aside_not_overwritten(results_dir):
    config = Config(seed=6)
    path = records.save_record(_record(config), results_dir)
    data = json.loads(path.read_text())
    data["metrics"]["top1"] = 99.0  # a hand edit
    edited = json.dumps(data)
    path.write_text(edited)
    with pytest.warns(records.DamagedRecordWarning, match=rf"{config.run_id}\.json is damaged: its digest does not "
                                                          "match"):
        assert records.load_record(config, results_dir) is None
    with pytest.warns(records.DamagedRecordWarning, match="digest"):
        assert records.load_records(results_dir) == []
    with pytest.warns(records.DamagedRecordWarning, match=rf"set aside as .*{config.run_id}\.damaged-"):
        records.save_record(_record(config), results_dir)  # the retrained run's record
    (aside,) = records.set_aside_records(config.run_id, results_dir)
    assert aside.read_text() == edited and aside.name.startswith(f"{config.run_id}.damaged-")
    assert records.load_record(config, results_dir).metrics["top1"] == 50.0
    assert [r.run_id for r in records.load_records(results_dir)] == [config.run_id]  # the set-aside file is skipped


def test_a_truncated_record_is_set_aside_with_a_warning_then_retrained(tmp_path):
    from kesl_utils import train
    from kesl_utils.context import RunContext

    ctx = RunContext(results_dir=tmp_path / "results", device="cpu", progress=False)
    config = Config(dataset="cub", image_size=16, n_per_class=2, n_test_per_class=1, epochs=1, batch_size=50,
                    max_batches_per_epoch=1, profile="custom")
    first = train.run(config, context=ctx)
    path = records.record_path(config.run_id, ctx.results_dir)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a disk that filled up, a copy cut short
    with pytest.warns(records.DamagedRecordWarning, match=rf"{config.run_id}\.json was damaged \(not valid JSON"):
        again = train.run(config, context=ctx)
    (aside,) = records.set_aside_records(config.run_id, ctx.results_dir)
    assert aside.read_text() == text[: len(text) // 2]
    assert again.metrics == first.metrics and records.load_record(config, ctx.results_dir) is not None
