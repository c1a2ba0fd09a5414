"""Optional dependencies: pyproject.toml's extras, and the error a missing one gives."""
import sys
import tomllib

import pytest

from kesl_utils import extras, paths
from kesl_utils import wordnet as W

PYPROJECT = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CORE = ["torch", "torchvision", "numpy", "scipy", "networkx", "pandas", "tqdm", "pillow", "matplotlib"]


def _names(requirements):
    return [r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
            for r in requirements]


def test_core_dependencies_are_what_training_needs():
    assert _names(PYPROJECT["project"]["dependencies"]) == CORE


def test_every_optional_module_is_in_the_extra_it_names():
    optional = PYPROJECT["project"]["optional-dependencies"]
    assert set(optional) == {"wordnet", "notebooks", "cluster", "docs", "dev"}
    for module, extra in extras.EXTRAS.items():
        assert module in _names(optional[extra]), (module, extra)
    assert "seaborn" not in {n for reqs in optional.values() for n in _names(reqs)}


def test_makefile_installs_every_extra():
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    extras_line = next(line for line in makefile.splitlines() if "pip install" in line and " -e " in line)
    listed = extras_line.split("[", 1)[1].split("]", 1)[0].split(",")
    assert sorted(listed) == sorted(PYPROJECT["project"]["optional-dependencies"])


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is not installed
    with pytest.raises(extras.MissingExtra) as info:
        extras.require("ray", "EXECUTOR=ray")
    assert str(info.value).startswith('EXECUTOR=ray needs ray, which is not installed: '
                                      'pip install "kesl-utils[cluster]"')
    assert info.value.name == "ray" and isinstance(info.value, ImportError)
    with pytest.raises(ValueError, match="'seaborn' is not an optional dependency"):
        extras.require("seaborn", "plots")


def test_require_keeps_the_error_of_a_broken_install(monkeypatch):
    """Only the optional module itself being absent is a missing extra."""
    def broken(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(extras.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError) as info:
        extras.require("ray", "EXECUTOR=ray")
    assert type(info.value) is ModuleNotFoundError and info.value.name == "pyarrow"


def test_wordnet_without_nltk_names_the_wordnet_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)
    with pytest.raises(extras.MissingExtra, match=r'needs nltk, which is not installed: '
                                                  r'pip install "kesl-utils\[wordnet\]"'):
        W.ensure_wordnet(allow_download=False)
    assert not W.wordnet_available()
    assert W.main(["--optional"]) == 0
    assert W.main([]) == 1
