"""Real-image loaders on tiny fake datasets written to tmp_path in each supported layout
(the builders are in tests/fakes.py)."""
from __future__ import annotations

import dataclasses
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kesl_utils import names, paths
from kesl_utils.data import (
    CUB200,
    DatasetFormatError,
    DatasetLayoutError,
    ImageDecodeError,
    ImageNetSubset,
    MiniImageNet,
    build_dataset,
    build_loader,
    build_transforms,
    data_fingerprint,
)
from kesl_utils.data.cub import cub_class_names
from kesl_utils.data.imagenet import split_per_class
from kesl_utils.data.transforms import resize_size

# tests/ is on sys.path: pytest's default "prepend" import mode adds a test file's folder.
from fakes import (
    CUB_NAMES,
    WNIDS,
    make_cub,
    make_fake_cub_200,
    make_imagenet_tree,
    make_mini_csv,
    make_mini_folders,
    make_tiny,
)


class Classes:
    """Stand-in for a Hierarchy: build_dataset only reads ``.classes``."""

    def __init__(self, classes):
        self.classes = list(classes)


# --------------------------------------------------------------------------------------- CUB
@pytest.fixture
def cub_root(tmp_path):
    make_cub(tmp_path)
    return tmp_path


def test_cub_splits_labels_and_transform(cub_root):
    train = CUB200(cub_root, "train", class_names=CUB_NAMES)
    test = CUB200(cub_root / "CUB_200_2011", "test", class_names=CUB_NAMES)
    assert (len(train), len(test)) == (6, 6)
    assert train.targets == [0, 0, 1, 1, 2, 2] and train.classes == CUB_NAMES
    assert [p.name for p, _ in test.samples[:2]] == ["001.Alpha_bird_3.jpg", "001.Alpha_bird_4.jpg"]
    image, label = train[2]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 1
    tensor_set = CUB200(cub_root, "train", transform=build_transforms("cub", 7, True), class_names=CUB_NAMES)
    x, _ = tensor_set[0]
    assert x.shape == (3, 7, 7) and x.dtype == torch.float32


def test_cub_crop_to_bbox(cub_root):
    ds = CUB200(cub_root, "train", crop_to_bbox=True, class_names=CUB_NAMES)
    assert ds[0][0].size == (4, 5)  # box x=2, y=1, width 4, height 5


def test_cub_default_class_names_come_from_the_taxonomy_csv(cub_root, tmp_path, monkeypatch):
    table = tmp_path / "hier" / "cub_taxonomy.csv"
    table.parent.mkdir()
    rows = [(2, CUB_NAMES[1]), (1, CUB_NAMES[0]), (3, CUB_NAMES[2])]  # read back in class_id order
    table.write_text("class_id,class_name,order,family,genus,species,comment\n"
                     + "".join(f"{i},{n},O,F,G,S,\n" for i, n in rows))
    assert cub_class_names(table) == CUB_NAMES
    monkeypatch.setattr(paths, "hierarchies_dir", lambda: table.parent)
    assert CUB200(cub_root, "train").classes == CUB_NAMES
    table.write_text("class_id,class_name\n1,001.Alpha_bird\n2,002.Beta_bird\n3,003.Delta_bird\n")
    with pytest.raises(ValueError) as info:
        CUB200(cub_root, "train")
    message = str(info.value)
    assert "003.Gamma_bird" in message and "003.Delta_bird" in message and "cub_taxonomy.csv" in message


def test_cub_classes_txt_mismatch_lists_differences(cub_root):
    with pytest.raises(ValueError) as info:
        CUB200(cub_root, "train", class_names=["001.Alpha_bird", "002.Beta_bird", "003.Other_bird", "004.X"])
    message = str(info.value)
    assert "in classes.txt only (1): 003.Gamma_bird" in message
    assert "003.Other_bird" in message and "004.X" in message
    with pytest.raises(ValueError, match="position 1"):
        CUB200(cub_root, "train", class_names=[CUB_NAMES[1], CUB_NAMES[0], CUB_NAMES[2]])


def test_cub_missing_root_and_files(tmp_path, cub_root):
    with pytest.raises(FileNotFoundError) as info:
        CUB200(tmp_path / "nowhere", "train", class_names=CUB_NAMES)
    message = str(info.value)
    assert "nowhere" in message and "Expected layout" in message and "train_test_split.txt" in message
    assert "vision.caltech.edu" in message
    (cub_root / "CUB_200_2011" / "train_test_split.txt").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        CUB200(cub_root, "train", class_names=CUB_NAMES)
    assert str(cub_root / "CUB_200_2011" / "train_test_split.txt") in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_cub_missing_image_file_is_named(cub_root):
    victim = cub_root / "CUB_200_2011" / "images" / "002.Beta_bird" / "002.Beta_bird_1.jpg"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="002.Beta_bird_1.jpg"):
        CUB200(cub_root, "train", class_names=CUB_NAMES)
    assert len(CUB200(cub_root, "test", class_names=CUB_NAMES)) == 6  # the test split does not need it


def test_cub_bad_split(cub_root):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        CUB200(cub_root, "val", class_names=CUB_NAMES)


@pytest.mark.skipif(not (paths.raw_data_dir() / "CUB_200_2011").is_dir(), reason="real CUB-200-2011 not in data/raw")
def test_real_cub_counts():
    assert len(CUB200(paths.raw_data_dir(), "train")) == 5994
    assert len(CUB200(paths.raw_data_dir(), "test")) == 5794


# ------------------------------------------------------------------------- undecodable images
@pytest.fixture
def corrupt_cub(cub_root):
    bad = cub_root / "CUB_200_2011" / "images" / "002.Beta_bird" / "002.Beta_bird_1.jpg"
    bad.write_bytes(b"this is not a jpeg")
    return cub_root, bad


def test_undecodable_image_error_names_the_file(corrupt_cub):
    root, bad = corrupt_cub
    ds = CUB200(root, "train", class_names=CUB_NAMES)
    with pytest.raises(ImageDecodeError) as info:
        ds[2]
    assert str(bad) in str(info.value) and "skip_bad_images" in str(info.value)
    assert isinstance(info.value, OSError)


def test_skip_bad_images_substitutes_counts_and_reports_once(corrupt_cub):
    root, bad = corrupt_cub
    ds = CUB200(root, "train", class_names=CUB_NAMES, skip_bad_images=True)
    image, label = ds[2]
    assert label == 1 and image.getpixel((0, 0)) == ds[3][0].getpixel((0, 0))  # the next sample
    assert ds.n_skipped == 1 and ds.bad_images == {str(bad)}
    with pytest.warns(RuntimeWarning, match="002.Beta_bird_1.jpg"):
        assert ds.report_skipped() == {str(bad)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds.report_skipped() == set()  # nothing new since the last report
    ds[2]
    assert ds.n_skipped == 2  # cumulative: the trainer takes per-epoch differences
    with pytest.warns(RuntimeWarning):
        assert ds.report_skipped() == {str(bad)}


def test_skip_counts_reach_the_main_process_from_workers(corrupt_cub):
    root, bad = corrupt_cub
    ds = CUB200(root, "train", transform=build_transforms("cub", 8, False), class_names=CUB_NAMES,
                skip_bad_images=True)
    loader = build_loader(ds, 2, train=False, device="cpu", num_workers=2)
    labels = torch.cat([y for _, y in loader])
    assert len(labels) == 6
    assert ds.n_skipped == 1 and ds.bad_images == {str(bad)}


# ---------------------------------------------------------------------------- Mini-ImageNet
@pytest.mark.parametrize("maker", [make_mini_csv, make_mini_folders,
                                   lambda r: make_mini_folders(r, nested=True)])
def test_mini_imagenet_layouts_split_and_label_order(tmp_path, maker):
    maker(tmp_path)
    train = MiniImageNet(tmp_path, "train", classes=WNIDS, train_per_class=5)
    test = MiniImageNet(tmp_path, "test", classes=WNIDS, train_per_class=5)
    assert (len(train), len(test)) == (15, 3)
    assert train.classes == WNIDS
    assert test.targets == [0, 1, 2]
    # sorted file names: the last one of each class is the test image
    assert all(p.stem.endswith("5") for p, _ in test.samples)
    assert all(WNIDS[label] in p.name for p, label in train.samples + test.samples)
    default = MiniImageNet(tmp_path, "train", train_per_class=5)
    assert default.classes == sorted(WNIDS)


def test_mini_imagenet_split_rule():
    files = [Path(f"x{i:03d}.jpg") for i in range(600)][::-1]
    train, test = split_per_class(files, 500)
    assert len(train) == 500 and len(test) == 100 and train[0].name == "x000.jpg" and test[0].name == "x500.jpg"
    train, test = split_per_class(files[:300], 500)  # fewer images: ⌊5n/6⌋ = 250 train
    assert (len(train), len(test)) == (250, 50)


def test_mini_imagenet_class_mismatch_lists_classes(tmp_path):
    make_mini_folders(tmp_path)
    with pytest.raises(ValueError) as info:
        MiniImageNet(tmp_path, "train", classes=["n01000001", "n01000002", "n09999999"])
    message = str(info.value)
    assert "n01000003" in message and "n09999999" in message and "hierarchy" in message


def test_mini_imagenet_missing_root_and_csv(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        MiniImageNet(tmp_path / "absent", "train")
    assert "absent" in str(info.value) and "train.csv" in str(info.value) and "Ravi" in str(info.value)
    make_mini_csv(tmp_path)
    (tmp_path / "val.csv").unlink()
    with pytest.raises(FileNotFoundError, match="val.csv"):
        MiniImageNet(tmp_path, "train")
    make_mini_csv(tmp_path)
    (tmp_path / "images" / f"{WNIDS[0]}00000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=f"{WNIDS[0]}00000002.jpg"):
        MiniImageNet(tmp_path, "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        MiniImageNet(empty, "train")


# --------------------------------------------------------------------------- Small-ImageNet
def test_tiny_imagenet_layout(tmp_path):
    make_tiny(tmp_path)
    train = ImageNetSubset(tmp_path, split="train")
    assert train.layout == "tiny" and train.classes == WNIDS and len(train) == 9
    order = ["n01000001", "n01000002", "n01000003"]
    test = ImageNetSubset(tmp_path, order, "test", transform=build_transforms("imagenet", 8, False))
    assert len(test) == 6 and test.targets == [0, 0, 1, 1, 2, 2]
    assert test[0][0].shape == (3, 8, 8)
    assert [p.name for p, _ in test.samples[:2]] == ["val_2.JPEG", "val_3.JPEG"]  # n01000001 is WNIDS[1]
    assert len(ImageNetSubset(tmp_path, order, "val")) == 6


def test_imagenet_style_tree_and_extra_classes(tmp_path):
    make_imagenet_tree(tmp_path)
    ds = ImageNetSubset(tmp_path, split="test")
    assert ds.layout == "imagenet" and ds.classes == sorted(WNIDS) and len(ds) == 6
    with pytest.raises(ValueError, match="n01000003"):
        ImageNetSubset(tmp_path, ["n01000001", "n01000002"], "train")
    subset = ImageNetSubset(tmp_path, ["n01000002", "n01000001"], "train", ignore_extra_classes=True)
    assert len(subset) == 6 and subset.targets == [0, 0, 0, 1, 1, 1]


def test_small_imagenet_errors(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        ImageNetSubset(tmp_path / "absent")
    assert "tiny-imagenet-200.zip" in str(info.value) and "wnids.txt" in str(info.value)
    make_tiny(tmp_path)
    with pytest.raises(ValueError) as info:
        ImageNetSubset(tmp_path, ["n01000001", "n01000002", "n01000009"])
    assert "n01000003" in str(info.value) and "n01000009" in str(info.value)
    (tmp_path / "val" / "val_annotations.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val_annotations.txt"):
        ImageNetSubset(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        ImageNetSubset(tmp_path, split="valid")


# ------------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("kind", ["cub", "imagenet"])
@pytest.mark.parametrize("train", [True, False])
def test_transforms_shapes_and_normalisation(kind, train):
    transform = build_transforms(kind, 14, train)
    x = transform(Image.new("RGB", (30, 20), (124, 116, 104)))  # ≈ the ImageNet mean colour
    assert x.shape == (3, 14, 14) and x.dtype == torch.float32
    assert x.abs().max() < 0.05


def test_transform_sizes_and_errors():
    assert (resize_size(448), resize_size(224), resize_size(32)) == (512, 256, 37)
    names = [type(t).__name__ for t in build_transforms("cub", 448, True).transforms]
    assert names == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert build_transforms("cub", 448, False).transforms[0].size == (512, 512)
    assert [type(t).__name__ for t in build_transforms("imagenet", 224, True).transforms][:2] == [
        "RandomResizedCrop", "RandomHorizontalFlip"]
    assert build_transforms("imagenet", 224, False).transforms[0].size == 256
    with pytest.raises(ValueError, match="kind"):
        build_transforms("cifar", 32, True)


# --------------------------------------------------------------------- build_dataset / loader
def test_build_dataset_real_sources(tmp_path):
    make_cub(tmp_path)
    make_tiny(tmp_path / "tiny-imagenet-200")
    make_mini_folders(tmp_path / "mini_imagenet")
    cub = build_dataset("cub", "train", source="real", hierarchy=Classes(CUB_NAMES), data_root=tmp_path,
                        image_size=8)
    assert isinstance(cub, CUB200) and len(cub) == 6 and cub[0][0].shape == (3, 8, 8)
    small = build_dataset("small_imagenet", "test", source="real", hierarchy=Classes(WNIDS), data_root=tmp_path,
                          image_size=8, n_per_class=1)
    assert isinstance(small, ImageNetSubset) and small.targets == [0, 1, 2]
    mini = build_dataset("mini_imagenet", "train", source="real", hierarchy=Classes(WNIDS),
                         data_root=tmp_path, image_size=8)
    assert isinstance(mini, MiniImageNet) and mini.classes == WNIDS and len(mini) == 15
    with pytest.raises(ValueError, match="alignment"):
        build_dataset("cub", "train", source="real", hierarchy=Classes(CUB_NAMES), data_root=tmp_path,
                      image_size=8, alignment=0.5)
    with pytest.raises(ValueError, match="source"):
        build_dataset("cub", "train", source="web", hierarchy=Classes(CUB_NAMES), image_size=8)
    with pytest.raises(ValueError, match="label_noise=0.1 only applies to synthetic data"):
        build_dataset("cub", "train", source="real", hierarchy=Classes(CUB_NAMES), data_root=tmp_path,
                      image_size=8, label_noise=0.1)
    with pytest.raises(ValueError, match="dataset='cifar'"):
        build_dataset("cifar", "train", source="real", hierarchy=Classes(CUB_NAMES), image_size=8)
    with pytest.raises(ValueError, match="split='val'"):
        build_dataset("cub", "val", source="real", hierarchy=Classes(CUB_NAMES), image_size=8)


def test_build_dataset_looks_up_the_registry(tmp_path, monkeypatch):
    """The folder names and the loader come from names.DATASETS, not from a copy in data/."""
    make_cub(tmp_path / "my_birds")
    (tmp_path / "my_birds" / "CUB_200_2011").rename(tmp_path / "birds_renamed")
    shutil.rmtree(tmp_path / "my_birds")
    spec = names.DATASETS["cub"]
    monkeypatch.setitem(names.DATASETS, "cub", dataclasses.replace(spec, root_candidates=("birds_renamed",)))
    cub = build_dataset("cub", "train", source="real", hierarchy=Classes(CUB_NAMES), data_root=tmp_path,
                        image_size=8)
    assert isinstance(cub, CUB200) and cub.root == tmp_path / "birds_renamed" and len(cub) == 6


def test_build_dataset_missing_data_root(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        build_dataset("cub", "test", source="real", hierarchy=Classes(CUB_NAMES), data_root=tmp_path, image_size=8)
    assert str(tmp_path / "CUB_200_2011" / "images.txt") in str(info.value)
    with pytest.raises(DatasetLayoutError, match="Expected layout"):
        build_dataset("mini_imagenet", "train", source="real", hierarchy=Classes(WNIDS),
                      data_root=tmp_path / "raw", image_size=8)


def test_build_loader_settings_for_images(cub_root):
    ds = CUB200(cub_root, "train", transform=build_transforms("cub", 8, True), class_names=CUB_NAMES)
    loader = build_loader(ds, 4, train=True, device="cpu")
    cores = len(os.sched_getaffinity(0))
    assert loader.num_workers == min(8, cores)
    # Training workers live one epoch (exact resume, see build_loader); test workers persist.
    assert not loader.persistent_workers and not loader.pin_memory and loader.drop_last
    assert loader.worker_init_fn is not None
    assert build_loader(ds, 4, train=False, device="cpu", num_workers=2).persistent_workers
    assert build_loader(ds, 4, train=False, device=torch.device("cuda"), num_workers=0).pin_memory
    with pytest.raises(ValueError, match="batch_size"):
        build_loader(ds, 0, train=True, device="cpu")


def test_skip_counts_reach_the_main_process_from_short_lived_training_workers(corrupt_cub):
    """Training workers are started afresh each epoch; the shared counters still add up."""
    root, bad = corrupt_cub
    ds = CUB200(root, "train", transform=build_transforms("cub", 8, True), class_names=CUB_NAMES,
                skip_bad_images=True)
    loader = build_loader(ds, 2, train=True, device="cpu", num_workers=2, seed=3)
    for epoch in (1, 2):
        loader.generator.manual_seed(3 * 1_000_000 + epoch)
        assert sum(len(y) for _, y in loader) == 6
    assert ds.n_skipped == 2 and ds.bad_images == {str(bad)}


# ------------------------------------------------------------ worker seeding (exact resume)
class RandomDraws:
    """A random augmentation that draws once from each of torch, NumPy and Python's ``random``."""

    def __call__(self, image):
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        draws = torch.tensor([torch.rand(()).item(), float(np.random.rand()), random.random()])
        return {"image": pixels + draws.sum(), "draws": draws}


def _epoch_batches(loader, seed: int, epoch: int) -> list:
    """What the trainer does before each epoch: re-seed the generator with epoch_seed(seed, epoch)."""
    loader.generator.manual_seed(seed * 1_000_000 + epoch)
    return [(batch["image"], batch["draws"], labels) for batch, labels in loader]


def test_resumed_epoch_draws_the_same_augmentations_as_an_uninterrupted_run(cub_root):
    ds = CUB200(cub_root, "train", transform=RandomDraws(), class_names=CUB_NAMES)
    uninterrupted = build_loader(ds, 2, train=True, device="cpu", num_workers=2, seed=7)
    epoch1 = _epoch_batches(uninterrupted, 7, 1)
    epoch2 = _epoch_batches(uninterrupted, 7, 2)
    resumed = build_loader(ds, 2, train=True, device="cpu", num_workers=2, seed=7)
    epoch2_resumed = _epoch_batches(resumed, 7, 2)  # a run resumed at epoch 2 never iterated epoch 1

    assert [len(labels) for _, _, labels in epoch2] == [2, 2, 2]
    for (image, draws, labels), (image_r, draws_r, labels_r) in zip(epoch2, epoch2_resumed, strict=True):
        assert torch.equal(labels, labels_r)
        assert torch.equal(draws, draws_r)
        assert torch.equal(image, image_r)
    # Epoch 2 is not epoch 1 again: the order or every RNG's draws differ.
    draws1 = torch.cat([d for _, d, _ in epoch1])
    draws2 = torch.cat([d for _, d, _ in epoch2])
    for column, rng in enumerate(("torch", "numpy", "python")):
        assert not torch.equal(draws1[:, column], draws2[:, column]), rng
    # The two workers draw differently (their seeds differ by the worker id).
    assert len(set(draws2[:, 0].tolist())) == 6 and len(set(draws2[:, 1].tolist())) == 6


def test_test_loader_with_workers_keeps_dataset_order(cub_root):
    ds = CUB200(cub_root, "test", transform=build_transforms("cub", 8, False), class_names=CUB_NAMES)
    loader = build_loader(ds, 4, train=False, device="cpu", num_workers=2)
    for _ in range(2):  # persistent workers: the second pass is the same
        images, labels = zip(*loader)
        assert torch.cat(labels).tolist() == ds.targets
        assert torch.equal(torch.cat(images), torch.stack([ds[i][0] for i in range(len(ds))]))


# ----------------------------------------------------------------------------- fingerprints
def _cub_fingerprint(root, n_per_class=None, n_test_per_class=None) -> str:
    return data_fingerprint("cub", hierarchy=Classes(CUB_NAMES), data_root=root, n_per_class=n_per_class,
                            n_test_per_class=n_test_per_class)


def _drop_image(base: Path, image_id: int) -> None:
    """Remove image ``image_id`` from CUB's metadata files and its file from images/."""
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"):
        lines = (base / name).read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.split()[0] != str(image_id)]
        if name == "images.txt":
            (base / "images" / lines[image_id - 1].split()[1]).unlink()
        (base / name).write_text("".join(kept))


def test_data_fingerprint_is_stable_and_survives_moving_the_root(tmp_path):
    make_cub(tmp_path / "a")
    first = _cub_fingerprint(tmp_path / "a")
    assert len(first) == 64 and int(first, 16) >= 0  # a sha256 hex digest
    assert _cub_fingerprint(tmp_path / "a") == first
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert _cub_fingerprint(tmp_path / "b") == first
    # The root may also be named directly (CUB_200_2011/ itself).
    assert _cub_fingerprint(tmp_path / "b" / "CUB_200_2011") == first
    train = CUB200(tmp_path / "b", "train", class_names=CUB_NAMES)
    assert len(train.fingerprint()) == 64 and train.fingerprint() != CUB200(
        tmp_path / "b", "test", class_names=CUB_NAMES).fingerprint()


def test_fingerprint_reads_no_image(tmp_path):
    base = make_cub(tmp_path)
    (base / "images" / "001.Alpha_bird" / "001.Alpha_bird_1.jpg").write_bytes(b"not a jpeg")
    assert len(_cub_fingerprint(tmp_path)) == 64  # an undecodable file is listed, not decoded


@pytest.mark.parametrize("change", ["resize", "remove", "relabel", "n_per_class", "n_test_per_class"])
def test_data_fingerprint_changes_with_the_data(tmp_path, change):
    base = make_cub(tmp_path)
    before = _cub_fingerprint(tmp_path)
    kwargs = {}
    if change == "resize":
        with open(base / "images" / "002.Beta_bird" / "002.Beta_bird_3.jpg", "ab") as handle:
            handle.write(b"\0")  # a test image one byte longer
    elif change == "remove":
        _drop_image(base, 5)  # 002.Beta_bird_1.jpg, a training image
    elif change == "relabel":
        labels = base / "image_class_labels.txt"
        labels.write_text(labels.read_text().replace("\n2 1\n", "\n2 3\n"))  # image 2: class 1 → 3
    elif change == "n_per_class":
        kwargs["n_per_class"] = 1
    else:
        kwargs["n_test_per_class"] = 1
    assert _cub_fingerprint(tmp_path, **kwargs) != before


def test_fingerprint_of_the_imagenet_layouts_survives_a_move_and_sees_a_removed_file(tmp_path):
    make_mini_folders(tmp_path / "one" / "mini_imagenet")
    make_tiny(tmp_path / "one" / "tiny-imagenet-200")
    digests = {d: data_fingerprint(d, hierarchy=Classes(WNIDS), data_root=tmp_path / "one")
               for d in ("mini_imagenet", "small_imagenet")}
    assert digests["mini_imagenet"] != digests["small_imagenet"]
    shutil.move(tmp_path / "one", tmp_path / "two")
    for dataset, digest in digests.items():
        assert data_fingerprint(dataset, hierarchy=Classes(WNIDS), data_root=tmp_path / "two") == digest
    (tmp_path / "two" / "mini_imagenet" / WNIDS[0] / f"{WNIDS[0]}_3.jpg").unlink()
    assert data_fingerprint("mini_imagenet", hierarchy=Classes(WNIDS), data_root=tmp_path / "two") != \
        digests["mini_imagenet"]


def test_data_fingerprint_of_a_missing_dataset(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        _cub_fingerprint(tmp_path)
    assert str(tmp_path / "CUB_200_2011" / "images.txt") in str(info.value)
    with pytest.raises(DatasetLayoutError, match="Expected layout"):
        data_fingerprint("small_imagenet", hierarchy=Classes(WNIDS), data_root=tmp_path)


# -------------------------------------------------------------- malformed metadata files
def _edit_line(path: Path, line_no: int, text) -> None:
    """Replace line ``line_no`` (1-based) of ``path`` by ``text``; ``None`` deletes it."""
    lines = path.read_text().splitlines()
    if text is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _format_error(root, file_name: str, line_no, **kwargs) -> str:
    with pytest.raises(DatasetFormatError) as info:
        CUB200(root, "train", class_names=CUB_NAMES, **kwargs)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.path.name == file_name and error.line == line_no
    message = str(error)
    assert (f"{file_name}:{line_no}:" if line_no is not None else file_name) in message
    return message


def test_cub_non_integer_image_id(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "images.txt", 3, "3x 001.Alpha_bird/001.Alpha_bird_3.jpg")
    message = _format_error(cub_root, "images.txt", 3)
    assert "image id is not a positive integer: '3x'" in message
    assert "expected the image id as a positive integer" in message


def test_cub_non_integer_class_id(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "image_class_labels.txt", 4, "4 one")
    message = _format_error(cub_root, "image_class_labels.txt", 4)
    assert "'one'" in message and "an integer from 1 to 3" in message


@pytest.mark.parametrize("file_name", ["images.txt", "image_class_labels.txt", "train_test_split.txt",
                                       "classes.txt", "bounding_boxes.txt"])
def test_cub_utf8_bom_is_tolerated(cub_root, file_name):
    """Notepad saves UTF-8 with a byte-order mark; it carries nothing and is dropped."""
    clean = CUB200(cub_root, "train", class_names=CUB_NAMES, crop_to_bbox=True)
    path = cub_root / "CUB_200_2011" / file_name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with_bom = CUB200(cub_root, "train", class_names=CUB_NAMES, crop_to_bbox=True)
    assert with_bom.samples == clean.samples and with_bom.classes == clean.classes
    assert with_bom[0][0].size == (4, 5)


def test_cub_crlf_line_ends_are_read(cub_root):
    for path in (cub_root / "CUB_200_2011").glob("*.txt"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    ds = CUB200(cub_root, "train", class_names=CUB_NAMES)
    assert ds.targets == [0, 0, 1, 1, 2, 2] and ds.classes == CUB_NAMES


def test_cub_wrong_number_of_fields(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "train_test_split.txt", 2, "2 1 0")
    message = _format_error(cub_root, "train_test_split.txt", 2)
    assert "3 field(s) instead of 2: '2 1 0'" in message and "<image_id> <is_training_image>" in message


def test_cub_missing_field(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "images.txt", 6, "6")
    message = _format_error(cub_root, "images.txt", 6)
    assert "1 field(s) instead of 2: '6'" in message and "<image_id> <relative_path>" in message


def test_cub_split_flag_other_than_0_or_1(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "train_test_split.txt", 5, "5 2")
    message = _format_error(cub_root, "train_test_split.txt", 5)
    assert "split flag of image 5 is neither 0 nor 1: '2'" in message and "1 (training image) or 0" in message
    with pytest.raises(DatasetFormatError):  # the test split refuses it too: it is in neither
        CUB200(cub_root, "test", class_names=CUB_NAMES)


def test_cub_duplicate_image_id(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "image_class_labels.txt", 8, "7 2")
    message = _format_error(cub_root, "image_class_labels.txt", 8)
    assert "duplicate image id 7 (first on line 7)" in message


def test_cub_image_id_missing_from_a_file(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "image_class_labels.txt", 9, None)
    message = _format_error(cub_root, "images.txt", 9)
    assert "image id 9 has no line in image_class_labels.txt" in message


def test_cub_image_id_only_in_the_split_file(cub_root):
    path = cub_root / "CUB_200_2011" / "train_test_split.txt"
    path.write_text(path.read_text() + "13 1\n")
    message = _format_error(cub_root, "train_test_split.txt", 13)
    assert "image id 13 is not in images.txt" in message


def test_cub_class_ids_out_of_order(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "classes.txt", 2, "3 003.Gamma_bird")
    _edit_line(cub_root / "CUB_200_2011" / "classes.txt", 3, "2 002.Beta_bird")
    message = _format_error(cub_root, "classes.txt", 2)
    assert "class id 3 out of order" in message and "class id 2" in message


def test_cub_non_utf8_file(cub_root):
    path = cub_root / "CUB_200_2011" / "classes.txt"
    path.write_bytes(path.read_bytes().replace(b"Beta", b"B\xe9ta"))  # Latin-1 é
    message = _format_error(cub_root, "classes.txt", 2)
    assert "not UTF-8 (byte 0xe9 at column 8)" in message and "UTF-8 text" in message


def test_cub_binary_file(cub_root):
    path = cub_root / "CUB_200_2011" / "images.txt"
    path.write_bytes(path.read_text().encode("utf-16"))  # what "Unicode" means to some Windows editors
    message = _format_error(cub_root, "images.txt", 1)
    assert "binary content (a NUL byte)" in message and "UTF-16" in message


def test_cub_bad_bounding_box(cub_root):
    _edit_line(cub_root / "CUB_200_2011" / "bounding_boxes.txt", 2, "2 2.0 1.0 four 5.0")
    message = _format_error(cub_root, "bounding_boxes.txt", 2, crop_to_bbox=True)
    assert "box of image 2 is not four numbers: '2.0 1.0 four 5.0'" in message
    _edit_line(cub_root / "CUB_200_2011" / "bounding_boxes.txt", 2, "2 2.0 1.0 0 5.0")
    assert "box of image 2 is empty" in _format_error(cub_root, "bounding_boxes.txt", 2, crop_to_bbox=True)
    _edit_line(cub_root / "CUB_200_2011" / "bounding_boxes.txt", 2, None)
    message = _format_error(cub_root, "bounding_boxes.txt", None, crop_to_bbox=True)
    assert "no box for image id(s) 2" in message


def test_cub_taxonomy_csv_errors_name_the_line(tmp_path):
    table = tmp_path / "cub_taxonomy.csv"
    table.write_text("\ufeffclass_id,class_name\n2,002.Beta_bird\n1,001.Alpha_bird\n")
    assert cub_class_names(table) == ["001.Alpha_bird", "002.Beta_bird"]  # BOM dropped, sorted by id
    table.write_text("class_id,class_name\n1,001.Alpha_bird\nx,002.Beta_bird\n")
    with pytest.raises(DatasetFormatError, match="cub_taxonomy.csv:3: class id is not a positive integer: 'x'"):
        cub_class_names(table)
    table.write_text("id,name\n1,001.Alpha_bird\n")
    with pytest.raises(DatasetFormatError, match="cub_taxonomy.csv:1: column 'class_id' missing"):
        cub_class_names(table)


def _mini_format_error(root, file_name: str, line_no: int) -> str:
    with pytest.raises(DatasetFormatError) as info:
        MiniImageNet(root, "train", classes=WNIDS)
    assert info.value.path.name == file_name and info.value.line == line_no
    assert f"{file_name}:{line_no}:" in str(info.value)
    return str(info.value)


def test_mini_imagenet_csv_wrong_number_of_fields(tmp_path):
    make_mini_csv(tmp_path)
    _edit_line(tmp_path / "val.csv", 3, f"{WNIDS[1]}00000001.jpg,{WNIDS[1]},extra")
    assert "3 field(s) instead of 2" in _mini_format_error(tmp_path, "val.csv", 3)


def test_mini_imagenet_csv_label_not_a_wnid(tmp_path):
    make_mini_csv(tmp_path)
    _edit_line(tmp_path / "test.csv", 4, f"{WNIDS[2]}00000002.jpg,bird")
    message = _mini_format_error(tmp_path, "test.csv", 4)
    assert "label is not a WordNet id: 'bird'" in message and "n01532829" in message


def test_mini_imagenet_csv_duplicate_image(tmp_path):
    make_mini_csv(tmp_path)
    path = tmp_path / "test.csv"
    path.write_text(path.read_text() + f"{WNIDS[0]}00000004.jpg,{WNIDS[0]}\n")
    message = _mini_format_error(tmp_path, "test.csv", 8)
    assert "image listed twice (first in train.csv line 6)" in message


def test_mini_imagenet_csv_header_bom_and_encoding(tmp_path):
    make_mini_csv(tmp_path)
    clean = MiniImageNet(tmp_path, "train", classes=WNIDS)
    for name in ("train.csv", "val.csv", "test.csv"):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert MiniImageNet(tmp_path, "train", classes=WNIDS).samples == clean.samples  # BOM dropped
    (tmp_path / "val.csv").write_bytes(b"filename,label\nn0100000100000000.jpg,n01000001\n\xff\xfe\n")
    assert "not UTF-8" in _mini_format_error(tmp_path, "val.csv", 3)
    (tmp_path / "val.csv").write_text("file,class\n")
    assert "header without the columns filename and label" in _mini_format_error(tmp_path, "val.csv", 1)


def test_tiny_imagenet_annotation_with_too_few_fields(tmp_path):
    make_tiny(tmp_path)
    _edit_line(tmp_path / "val" / "val_annotations.txt", 3, "val_3.JPEG")
    with pytest.raises(DatasetFormatError) as info:
        ImageNetSubset(tmp_path, split="test")
    assert "val_annotations.txt:3: fewer than 2 tab-separated fields: 'val_3.JPEG'" in str(info.value)


# ------------------------------------------------------------------------------------ fakes
def test_fake_cub_200_matches_the_shipped_taxonomy(tmp_path):
    root = make_fake_cub_200(tmp_path, images_per_class=2, test_per_class=1, size=(10, 6), seed=1)
    names_200 = cub_class_names()
    train = CUB200(root, "train")  # default class names: the shipped taxonomy
    test = CUB200(root, "test", transform=build_transforms("cub", 8, False))
    assert train.classes == names_200 and len(names_200) == 200
    assert (len(train), len(test)) == (400, 200)
    assert train.targets == [k // 2 for k in range(400)] and test.targets == list(range(200))
    image, label = train[3]
    assert image.size == (10, 6) and label == 1
    assert test[0][0].shape == (3, 8, 8)
    hierarchy_module = pytest.importorskip("kesl_utils.hierarchy_files")
    assert list(hierarchy_module.load_hierarchy("cub").classes) == names_200
    # Random content: two images of one class differ; the same seed writes the same bytes.
    first, second = (np.asarray(train[k][0], dtype=int) for k in (0, 1))
    assert np.abs(first - second).mean() > 20
    again = make_fake_cub_200(tmp_path / "again", images_per_class=2, test_per_class=1, size=(10, 6), seed=1)
    assert again == tmp_path / "again"
    assert [p.read_bytes() for p, _ in CUB200(again, "train").samples[:3]] == \
        [p.read_bytes() for p, _ in train.samples[:3]]
