"""The no-learning reference: the raw-pixel nearest class mean, keyed by data config and stored as a record."""
import json

import numpy as np
import pytest
import torch

from kesl_utils import experiments, hierarchy_files, ncm, train


def smoke(**changes):
    return experiments.profile_config("smoke", "cub", **changes)


def test_as_tensors_stacks_images_and_labels():
    dataset = [(np.full((3, 2, 2), k, dtype=np.float32), k % 2) for k in range(3)]
    images, labels = ncm.as_tensors(dataset)
    assert images.shape == (3, 3, 2, 2) and images.dtype == torch.float32
    assert labels.tolist() == [0, 1, 0] and labels.dtype == torch.long
    with pytest.raises(ValueError, match="empty"):
        ncm.as_tensors([])


def test_nearest_class_mean_on_hand_made_templates():
    means = torch.eye(3).repeat_interleave(4, dim=1)  # three well separated class templates of 12 values
    train_x = means.repeat(2, 1).reshape(6, 3, 2, 2)
    train_y = torch.tensor([0, 1, 2, 0, 1, 2])
    test_x = (means + 0.1).reshape(3, 3, 2, 2)
    assert ncm.nearest_class_mean_top1(train_x, train_y, test_x, torch.tensor([0, 1, 2]), 3) == 100.0
    assert ncm.nearest_class_mean_top1(train_x, train_y, test_x, torch.tensor([1, 2, 0]), 3) == 0.0


def test_the_key_follows_the_images_not_the_method():
    base = smoke()
    assert ncm.data_key(base) == ncm.data_key(smoke(loss="kesl", lr=0.01, backbone="mobilenet_v2", epochs=3))
    assert ncm.data_key(base) == ncm.data_key(base.to_dict())  # a record's config dict names the same images
    for change in (dict(seed=1), dict(n_per_class=3), dict(n_test_per_class=3), dict(alignment=0.5),
                   dict(label_noise=0.2), dict(image_size=24)):
        assert ncm.data_key(smoke(**change)) != ncm.data_key(base), change
    assert len(ncm.data_key(base)) == 12
    assert ncm.record_path(base, "/r").as_posix() == f"/r/references/ncm-cub-{ncm.data_key(base)}.json"


def test_ensure_computes_once_stores_a_record_and_load_only_reads(tmp_path, monkeypatch):
    config = smoke()
    assert ncm.load(config, tmp_path / "results") is None
    assert not (tmp_path / "results").exists()  # reading creates nothing
    resolved = []
    real = hierarchy_files.resolve_hierarchy
    monkeypatch.setattr(hierarchy_files, "resolve_hierarchy", lambda d, m: resolved.append((d, m)) or real(d, m))
    top1 = ncm.ensure(config, tmp_path / "results")
    assert resolved == [(config.dataset, config.hierarchy_mode)]  # the trainer's own resolver names the classes
    assert 0.0 <= top1 <= 100.0 and ncm.load(config, tmp_path / "results") == top1
    stored = json.loads(ncm.record_path(config, tmp_path / "results").read_text())
    assert stored["data"] == ncm.data_fields(config) and stored["top1"] == top1 and "torch" in stored["versions"]
    monkeypatch.setattr(ncm, "compute", lambda c: pytest.fail("computed again"))
    assert ncm.ensure(config, tmp_path / "results") == top1
    assert ncm.references([config, smoke(seed=5)], tmp_path / "results") == {ncm.data_key(config): top1}


def test_a_record_written_for_other_images_is_not_read(tmp_path):
    config = smoke()
    path = ncm.record_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"data": ncm.data_fields(smoke(seed=9)), "top1": 12.0}))
    assert ncm.load(config, tmp_path) is None
    path.write_text("{ broken")
    assert ncm.load(config, tmp_path) is None


def test_compute_is_the_ncm_of_the_runs_own_images():
    from kesl_utils.data import build_dataset

    config = smoke()
    hierarchy = train.load_run_hierarchy(config)
    kwargs = dict(source="synthetic", hierarchy=hierarchy, image_size=config.image_size, seed=config.seed,
                  alignment=config.alignment)
    train_x, train_y = ncm.as_tensors(build_dataset("cub", "train", n_per_class=config.n_per_class, **kwargs))
    test_x, test_y = ncm.as_tensors(build_dataset("cub", "test", n_per_class=config.n_test_per_class, **kwargs))
    means = np.stack([train_x.flatten(1).double().numpy()[train_y.numpy() == k].mean(0)
                      for k in range(hierarchy.num_classes)])
    distances = ((test_x.flatten(1).double().numpy()[:, None, :] - means[None]) ** 2).sum(-1)
    expected = 100.0 * float((distances.argmin(1) == test_y.numpy()).mean())
    assert ncm.compute(config) == pytest.approx(expected)


def test_real_data_has_no_ncm_reference(tmp_path):
    config = experiments.profile_config("paper", "cub")
    assert not ncm.applies(config) and ncm.load(config, tmp_path) is None
    with pytest.raises(ValueError, match="synthetic"):
        ncm.ensure(config, tmp_path)
