"""The wheel, installed as a user who never cloned the repository would use it.

Built once from the working tree (the files git tracks or would track, copied to a temporary
folder, so no stale ``build/`` of the checkout leaks in), installed with ``pip install --no-deps
--target`` (the environment's torch is reused), then used from a temporary working directory
outside the repository with only the core dependencies importable: the modules of the extras
(nltk, the notebook stack, Ray, the docs and test tools) are hidden by a ``sitecustomize`` on
``PYTHONPATH``. Each check asserts that ``kesl_utils`` came from the installed wheel, not from
the checkout.
"""
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from kesl_utils import paths

REPO = paths.PROJECT_ROOT
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

#: Modules of the extras, hidden from the installed package: what a core-only install lacks.
HIDDEN_MODULES = ("nltk", "papermill", "nbformat", "ipykernel", "ipywidgets", "jupyterlab", "ray",
                  "sphinx", "myst_nb", "sphinx_book_theme", "pytest", "nbval", "build", "seaborn")

SITECUSTOMIZE = f"""\
# Written by tests/test_wheel.py: a core-only environment. A module set to None in sys.modules
# imports as ModuleNotFoundError and importlib.util.find_spec() answers None, as if not installed.
import sys
for _name in {HIDDEN_MODULES!r}:
    sys.modules.setdefault(_name, None)
"""


def _project_files() -> list[str]:
    """What a clean checkout holds, plus files not yet committed: git's tracked and untracked,
    not ignored."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel . --no-deps`` of a copy of the working tree (no build isolation: no network)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in _project_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                            "--no-build-isolation", "--no-input", "--disable-pip-version-check",
                            "-q", "-w", str(root / "dist")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((root / "dist").glob("kesl_utils-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder of its own, with its console script in ``bin/``."""
    site = tmp_path_factory.mktemp("install") / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
                           "--disable-pip-version-check", "-q", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    hide = site.parent / "core-only"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return site


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory outside the repository."""
    work = tmp_path / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(REPO.resolve())
    return work


def run_outside(site: Path, cwd: Path, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``argv`` with the installed wheel first on the path and the extras hidden; no ``KESL_*``
    variable of the test run (``make test`` sets ``KESL_RESULTS_DIR``) leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESL_", "PYTHON", "COVERAGE_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(site.parent / "core-only")]),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def python_outside(site: Path, cwd: Path, code: str, timeout: float = 300) -> str:
    """Run ``code`` (after a check that ``kesl_utils`` is the installed one); its stdout."""
    prelude = textwrap.dedent(f"""\
        import importlib.util, pathlib, sys
        import kesl_utils
        SITE = pathlib.Path({str(site)!r}).resolve()
        assert pathlib.Path(kesl_utils.__file__).resolve().is_relative_to(SITE), kesl_utils.__file__
        for hidden in {HIDDEN_MODULES!r}:
            assert importlib.util.find_spec(hidden) is None, hidden
        import torch
        torch.set_num_threads(1)
        """)
    done = run_outside(site, cwd, [sys.executable, "-c", prelude + textwrap.dedent(code)], timeout)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


# ---------------------------------------------------------------- what the wheel holds
def test_wheel_holds_the_package_and_the_shipped_hierarchies_only(wheel):
    names = sorted(zipfile.ZipFile(wheel).namelist())
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "kesl_utils").rglob("*.py")
                     if "__pycache__" not in p.parts)
    hierarchies = sorted(f"kesl_utils/hierarchies/{p.name}" for p in (REPO / "data" / "hierarchies").iterdir()
                         if p.suffix in (".csv", ".json"))
    dist_info = [n for n in names if n.startswith("kesl_utils-") and ".dist-info/" in n]
    assert sorted(set(names) - set(dist_info)) == sorted(modules + hierarchies)
    assert {n.rsplit("/", 1)[1] for n in dist_info} == {"METADATA", "WHEEL", "RECORD", "entry_points.txt",
                                                         "top_level.txt"}
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "results/", "data/", "docs/"))]
    # Every Python package of the checkout is listed in pyproject.toml (the list is explicit).
    packages = {p.parent.relative_to(REPO).as_posix().replace("/", ".")
                for p in (REPO / "kesl_utils").rglob("__init__.py")}
    assert packages | {"kesl_utils.hierarchies"} == set(PYPROJECT["tool"]["setuptools"]["packages"])
    metadata = zipfile.ZipFile(wheel).read(next(n for n in dist_info if n.endswith("METADATA"))).decode()
    core = [line.split(": ", 1)[1] for line in metadata.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert core == PYPROJECT["project"]["dependencies"]
    print(f"\n{wheel.name}: {wheel.stat().st_size:,} bytes, {len(names)} files")


# ---------------------------------------------------------------- used from elsewhere
def test_three_objects_and_a_training_step_from_the_wheel(site, outside):
    out = python_outside(site, outside, """
        from torch import nn
        from kesl_utils.hierarchy import Hierarchy
        from kesl_utils.hierarchy_files import shipped_file, shipped_hierarchies_dir
        from kesl_utils.losses import KESLLoss
        from kesl_utils.soft_labels import soft_label_matrix

        assert shipped_hierarchies_dir() == SITE / "kesl_utils" / "hierarchies", shipped_hierarchies_dir()
        hierarchy = Hierarchy.from_taxonomy(shipped_file("cifar100_taxonomy.csv"),
                                            levels=["superclass", "class_name"])
        g = soft_label_matrix(hierarchy.edge_distances(), lam=0.5, T=2.0)
        criterion = KESLLoss(g, alpha=1.0, beta=0.1)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, hierarchy.num_classes))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        images, targets = torch.randn(16, 3, 8, 8), torch.randint(0, hierarchy.num_classes, (16,))
        before = criterion(model(images), targets)
        before.backward()
        optimizer.step()
        after = criterion(model(images), targets)
        assert torch.isfinite(before) and after < before, (before, after)
        print(hierarchy.num_classes, tuple(g.shape), round(float(g.sum(1).mean()), 6))
        """)
    assert out.split() == ["100", "(100,", "100)", "1.0"]


def test_every_shipped_hierarchy_loads_by_name_from_the_wheel(site, outside):
    out = python_outside(site, outside, """
        from kesl_utils.extras import MissingExtra
        from kesl_utils.hierarchy import Hierarchy
        from kesl_utils.hierarchy_files import load_hierarchy, load_taxonomy_hierarchy, shipped_file
        from kesl_utils.names import DATASETS

        for name in DATASETS:
            h = load_hierarchy(name)
            print(name, h.num_classes, h.is_tree)
        cifar = load_taxonomy_hierarchy(shipped_file("cifar100_taxonomy.csv"), ["superclass", "class_name"])
        print("cifar100", cifar.num_classes, cifar.is_tree)
        try:
            Hierarchy.from_wordnet(["n01532829"])
        except MissingExtra as error:
            print("wordnet:", error)
        """)
    lines = out.splitlines()
    assert lines[:4] == ["cub 200 True", "mini_imagenet 100 False", "small_imagenet 200 False",
                         "cifar100 100 True"]
    assert 'needs nltk, which is not installed: pip install "kesl-utils[wordnet]"' in lines[4]


def test_console_script_from_the_wheel(site, outside):
    script = site / "bin" / "kesl"
    assert script.is_file()
    done = run_outside(site, outside, [str(script), "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "train" in done.stdout
    assert done.stderr == ""


def test_smoke_run_from_the_wheel_writes_its_record_under_the_working_directory(site, outside):
    out = python_outside(site, outside, """
        from kesl_utils import records
        from kesl_utils.context import RunContext
        from kesl_utils.experiments import profile_config
        from kesl_utils.train import run

        context = RunContext.for_profile("smoke", device="cpu", progress=False)
        record = run(profile_config("smoke", "cub", loss="kesl"), context=context)
        print(record.run_id)
        print(records.record_path(record.run_id, context.results_dir))
        """, timeout=600)
    run_id, where = out.split()[-2:]
    installed = [p for p in site.rglob(f"{run_id}.json")]
    assert not installed, f"the run wrote into the installation: {installed}"
    found = list(outside.rglob(f"runs/{run_id}.json"))
    assert found and Path(where).resolve() == found[0].resolve(), (where, found)
    assert Path(where).resolve().is_relative_to(outside.resolve())
