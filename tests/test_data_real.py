"""Real-image loaders on tiny fake datasets written to tmp_path in each supported layout."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from kesl_utils import paths
from kesl_utils.data import (
    CUB200,
    DatasetLayoutError,
    ImageDecodeError,
    ImageNetSubset,
    MiniImageNet,
    build_dataset,
    build_loader,
    build_transforms,
)
from kesl_utils.data.cub import cub_class_names
from kesl_utils.data.imagenet import split_per_class
from kesl_utils.data.transforms import resize_size

CUB_NAMES = ["001.Alpha_bird", "002.Beta_bird", "003.Gamma_bird"]
WNIDS = ["n01000003", "n01000001", "n01000002"]  # deliberately not sorted


def jpeg(path: Path, value: int = 128, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path, "JPEG")
    return path


class Classes:
    """Stand-in for a Hierarchy: build_dataset only reads ``.classes``."""

    def __init__(self, classes):
        self.classes = list(classes)


# --------------------------------------------------------------------------------------- CUB
def make_cub(root: Path) -> Path:
    """3 classes × 4 images; images 1, 2 of each class train, 3, 4 test."""
    base = root / "CUB_200_2011"
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    for c, name in enumerate(CUB_NAMES, 1):
        for k in range(1, 5):
            image_id += 1
            rel = f"{name}/{name}_{k}.jpg"
            jpeg(base / "images" / rel, value=40 * c + k)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {1 if k <= 2 else 0}")
            boxes.append(f"{image_id} 2.0 1.0 4.0 5.0")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (base / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    (base / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(CUB_NAMES, 1)))
    return base


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
def make_mini_csv(root: Path, per_class: int = 6) -> Path:
    rows = {"train": [], "val": [], "test": []}
    for k, wnid in enumerate(WNIDS):
        split = ("train", "val", "test")[k]
        for i in range(per_class):
            name = f"{wnid}{i:08d}.jpg"
            jpeg(root / "images" / name, value=30 * k + i)
            rows[split].append(f"{name},{wnid}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(lines) + "\n")
    return root


def make_mini_folders(root: Path, per_class: int = 6, nested: bool = False) -> Path:
    for k, wnid in enumerate(WNIDS):
        folder = root / ("train" if nested else "") / wnid
        for i in reversed(range(per_class)):  # written out of order: the split sorts by name
            jpeg(folder / f"{wnid}_{i}.jpg", value=30 * k + i)
    return root


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
def make_tiny(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    annotations = []
    for k, wnid in enumerate(WNIDS):
        for i in range(3):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", value=20 * k + i)
        for i in range(2):
            name = f"val_{k * 2 + i}.JPEG"
            jpeg(root / "val" / "images" / name, value=20 * k + i)
            annotations.append(f"{name}\t{wnid}\t0\t0\t7\t7")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations[::-1]) + "\n")
    return root


def make_imagenet_tree(root: Path, wnids=WNIDS) -> Path:
    for k, wnid in enumerate(wnids):
        for split, n in (("train", 3), ("val", 2)):
            for i in range(n):
                jpeg(root / split / wnid / f"{wnid}_{i}.JPEG", value=20 * k + i)
    return root


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
    assert loader.persistent_workers and not loader.pin_memory and loader.drop_last
    assert loader.worker_init_fn is not None
    assert build_loader(ds, 4, train=False, device=torch.device("cuda"), num_workers=0).pin_memory
    with pytest.raises(ValueError, match="batch_size"):
        build_loader(ds, 0, train=True, device="cpu")
