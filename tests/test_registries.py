"""One entry per backbone, dataset and profile: each is registered here, in the test, with no edit
anywhere else, and trained through the smoke path (``train.run``, one tiny epoch); the record must land.
Also: the dataset markers come from the layouts the loaders read, and the loss registry is torch-free."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import WNIDS, make_cub, make_imagenet_tree, make_mini_csv, make_mini_folders, make_tiny, random_jpeg
from torch import nn

from kesl_utils import environment, experiments, names, paths, profiles, records, sweep, train, tutorial
from kesl_utils.config import Config
from kesl_utils.context import RunContext
from kesl_utils.data import build_dataset
from kesl_utils.data.image_files import ImageFileDataset, list_images

TINY_RUN = dict(image_size=16, n_per_class=2, n_test_per_class=1, epochs=1, batch_size=4, max_batches_per_epoch=1,
                eval_every=1, profile="custom")


@pytest.fixture
def ctx(tmp_path):
    torch.set_num_threads(1)
    return RunContext(results_dir=tmp_path / "results", device="cpu", progress=False)


# -- a backbone is one entry ---------------------------------------------------------------------------
class TinyNet(nn.Module):
    """A two-layer network with torchvision's constructor signature."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def tiny_net(weights=None, num_classes: int = 1000) -> nn.Module:
    return TinyNet(num_classes)


@pytest.fixture
def tiny_backbone():
    spec = names.register_backbone(names.BackboneSpec("tiny_net", "TinyNet", tiny_net, head="head"))
    yield spec.name
    del names.BACKBONES[spec.name]


def test_a_backbone_is_one_entry(tiny_backbone, ctx):
    config = Config(dataset="cub", backbone=tiny_backbone, **TINY_RUN)
    record = train.run(config, context=ctx)
    assert record.status == "finished" and records.load_record(config, ctx.results_dir) == record
    assert (ctx.runs_dir / f"{config.run_id}.json").is_file() and config.run_id.startswith("cub-tiny_net-ce-")
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        Config(backbone=tiny_backbone, imagenet_weights=True)
    # The command line offers it, from the same entry.
    from kesl_utils.__main__ import build_parser
    assert build_parser().parse_args(["train", "--backbone", tiny_backbone]).backbone == tiny_backbone


# -- a real dataset is one entry and its loader class ---------------------------------------------------
class FolderPerClass(ImageFileDataset):
    """``<root>/<class>/*.jpg``; the first two images of each class train, the rest test."""

    @classmethod
    def for_run(cls, root, split, *, classes, transform, skip_bad_images):
        samples = [(path, label) for label, name in enumerate(classes)
                   for path in list_images(Path(root) / name)[slice(0, 2) if split == "train" else slice(2, None)]]
        return cls(samples, classes, transform, skip_bad_images, root=root)


@pytest.fixture
def tiny_dataset(tmp_path):
    """A four-class taxonomy written by the test, and images in the loader's layout."""
    taxonomy = tmp_path / "tiny_taxonomy.csv"
    taxonomy.write_text("class_id,group,class_name\n1,cats,lion\n2,cats,tiger\n3,cars,bus\n4,cars,tank\n")
    data_root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("lion", "tiger", "bus", "tank"):
        for k in range(3):
            random_jpeg(data_root / "tiny_photos" / name / f"{name}_{k}.jpg", rng, size=(20, 20))
    spec = names.register_dataset(names.DatasetSpec(
        "tiny_photos", "Tiny photos", str(taxonomy), "taxonomy", loader=FolderPerClass, transform="imagenet",
        root_candidates=("tiny_photos",), markers=("lion/",), paper_budget=dict(image_size=16, batch_size=8),
        taxonomy_levels=("group", "class_name")))
    yield spec, data_root
    del names.DATASETS[spec.name]


def test_a_dataset_is_one_entry_synthetic_and_real(tiny_dataset, ctx):
    spec, data_root = tiny_dataset
    synthetic = train.run(Config(dataset=spec.name, **TINY_RUN), context=ctx)
    assert synthetic.status == "finished" and synthetic.metrics["top1"] >= 0
    real_ctx = ctx.replace(data_root=data_root)
    config = Config(dataset=spec.name, source="real", **dict(TINY_RUN, n_per_class=None, n_test_per_class=None))
    record = train.run(config, context=real_ctx)
    assert record.status == "finished" and record.config["data_fingerprint"]
    assert (ctx.runs_dir / f"{record.run_id}.json").is_file()
    assert sum(h["train_images"] for h in record.history) == 4  # one batch of the 8 training images
    # Its paper budget and its markers come from the same entry.
    paper = experiments.profile_config("paper", spec.name)
    assert (paper.image_size, paper.batch_size, paper.source) == (16, 8, "real")
    found = environment.datasets_found(data_root).set_index("dataset").loc["Tiny photos", "status"]
    assert found.startswith("found: ") and found.endswith("tiny_photos")


# -- a profile is one entry ----------------------------------------------------------------------------
@pytest.fixture
def tiny_profile(tmp_path):
    entry = profiles.register_profile(profiles.Profile(
        "tiny_test", results=str(tmp_path / "tiny-results"),
        base=dict(source="synthetic", backbone="resnet18", lr=0.05, **{k: v for k, v in TINY_RUN.items()
                                                                        if k != "profile"}),
        seeds=(0, 1),
        sweep=profiles.Grid(alignments=(1.0,), n_per_class=(2,), noise=0.2, noisy=()),
        tutorial=profiles.TutorialBudget(image_size=16, n_train_per_class=2, n_test_per_class=1, epochs=1,
                                         batch_size=8, lr=0.1, seeds=(0,))))
    yield entry
    del profiles.PROFILES[entry.name]


def test_a_profile_is_one_entry(tiny_profile, tmp_path):
    ctx = RunContext.for_profile(tiny_profile.name, device="cpu", progress=False)
    assert ctx.results_dir == tmp_path / "tiny-results" and ctx.profile == tiny_profile.name
    config = experiments.profile_config(tiny_profile.name, "mini_imagenet")
    assert config.profile == tiny_profile.name and config.image_size == 16
    assert experiments.profile_seeds(tiny_profile.name) == (0, 1)
    record = train.run(config, context=ctx)
    assert record.status == "finished" and (ctx.runs_dir / f"{config.run_id}.json").is_file()
    assert sweep.grid(tiny_profile.name).cells() == [(1.0, 2, 0.0)]
    assert tutorial.budget(tiny_profile.name).epochs == 1
    assert paths.default_results_dir(tiny_profile.name) == tmp_path / "tiny-results"
    from kesl_utils.__main__ import build_parser
    assert build_parser().parse_args(["train", "--profile", tiny_profile.name]).profile == tiny_profile.name


def test_the_paper_profile_needs_a_budget_from_every_dataset():
    """A dataset entry without a paper budget is refused: it can never silently get 32 px and batch 128."""
    spec = names.DATASETS["cub"]
    with pytest.raises(TypeError, match="paper_budget"):
        names.DatasetSpec(**{k: v for k, v in spec.__dict__.items() if k != "paper_budget"})


# -- the markers of a dataset are the layouts its loader reads ------------------------------------------
class Classes:
    def __init__(self, classes):
        self.classes = list(classes)


@pytest.mark.parametrize("dataset,build,folder", [
    ("cub", make_cub, "."),
    ("mini_imagenet", make_mini_csv, "mini_imagenet"),
    ("mini_imagenet", make_mini_folders, "mini_imagenet"),
    ("mini_imagenet", lambda root: make_mini_folders(root, nested=True), "mini_imagenet"),
    ("small_imagenet", make_tiny, "tiny-imagenet-200"),
    ("small_imagenet", make_imagenet_tree, "small_imagenet"),
])
def test_every_layout_a_loader_reads_is_found_by_a_marker(tmp_path, dataset, build, folder):
    build(tmp_path / folder)
    classes = {"cub": ["001.Alpha_bird", "002.Beta_bird", "003.Gamma_bird"]}.get(dataset, WNIDS)
    assert len(build_dataset(dataset, "train", source="real", hierarchy=Classes(classes), data_root=tmp_path,
                             image_size=8)) > 0
    status = environment.datasets_found(tmp_path).set_index("dataset").loc[names.DATASETS[dataset].display, "status"]
    assert status.startswith("found: "), (dataset, build)
    assert environment.datasets_found(tmp_path / "empty").set_index("dataset").loc[
        names.DATASETS[dataset].display, "status"] == "not found"


# -- layers ----------------------------------------------------------------------------------------------
def _imports_torch(code: str) -> bool:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])"],
                         cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] != "[]"


def test_config_and_the_command_lines_help_import_no_torch():
    assert not _imports_torch("import kesl_utils.config\nkesl_utils.config.Config(loss='kesl').run_id")
    assert not _imports_torch("import runpy, sys\nsys.argv = ['kesl_utils', '--help']\ntry:\n"
                              "    runpy.run_module('kesl_utils', run_name='__main__')\nexcept SystemExit:\n    pass")
    assert not _imports_torch("import kesl_utils.context, kesl_utils.profiles, kesl_utils.experiments")
