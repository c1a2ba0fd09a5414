"""Keeps the notebook lists honest: every notebook is run by `make reproduce` and checked by nbval."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_environment", "01_hierarchy_graphs", "02_soft_label_matrices", "03_cub_comparison",
            "04_general_recognition", "05_label_smoothing", "06_hyperparameter_ablation", "07_backbone_ablation",
            "08_hierarchy_aware_methods", "09_when_does_kesl_help", "10_your_own_hierarchy"]


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


def test_the_series_is_complete_and_ordered():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


def test_makefile_runs_and_checks_every_notebook():
    makefile = (ROOT / "Makefile").read_text()
    pattern = re.search(r"^NOTEBOOKS\s*:=\s*\$\(sort \$\(wildcard (\S+)\)\)", makefile, re.M).group(1)
    matched = sorted(ROOT.glob(pattern.replace("[0-9][0-9]", "[0-9][0-9]")))
    assert matched == NOTEBOOKS  # every notebook matches the glob used by both targets
    reproduce = re.search(r"^reproduce:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    test = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "$(NOTEBOOKS)" in reproduce and "kesl_utils.reproduce" in reproduce
    assert "--nbval-lax $(NOTEBOOKS)" in test and "KESL_PROFILE=smoke" in test


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown", "the first cell says what the notebook reproduces"
    code = [c for c in cells if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "exactly one parameters cell, the first code cell"
    tree = ast.parse(_source(tagged[0]))
    for statement in tree.body:
        assert isinstance(statement, ast.Assign), f"{path.name}: parameters cell holds assignments only"
        ast.literal_eval(statement.value)  # raises if the value is not a literal
    names = {t.id for s in tree.body for t in s.targets}
    assert {"PROFILE", "DATA_ROOT"} <= names
    built = _source(code[1])
    assert "CTX = context.from_environment(PROFILE, data_root=DATA_ROOT" in built, \
        "the next cell builds the run context (and lets $KESL_PROFILE override)"
    assert "PROFILE = CTX.profile" in built
    for parameter, argument in (("DEVICE", "device=DEVICE"), ("EXECUTOR", "executor=EXECUTOR"),
                                ("PROGRESS", "progress=PROGRESS")):
        assert (parameter in names) == (argument in built), f"{path.name}: {parameter} goes into the context"
    for cell in code[2:]:
        assert "from_environment" not in _source(cell) and "os.environ" not in _source(cell), \
            f"{path.name}: only the cell after the parameters reads the environment"
    for cell in code:
        assert not re.search(r"^\s*(class |def )", _source(cell), re.M), f"{path.name}: notebooks define no classes/functions"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_what_a_web_reader_sees(path):
    """Published outputs: no stderr (progress bars, warnings), no widget state, no paths of the machine that
    ran them, no error; markdown with no placeholder left."""
    nb = json.loads(path.read_text())
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: widget state in the notebook metadata"
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            assert "PENDING" not in _source(cell), f"{path.name}: a markdown cell still waits for its text"
            continue
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"{path.name}: stderr stored: {''.join(output.get('text', ''))[:80]}"
            assert output.get("output_type") != "error", f"{path.name}: a stored error ({output.get('ename')})"
            data = output.get("data", {})
            assert "application/vnd.jupyter.widget-view+json" not in data, f"{path.name}: a widget output"
            text = "".join(output.get("text", "")) + json.dumps(data)
            assert "PosixPath(" not in text and str(ROOT) not in text, f"{path.name}: a machine path in an output"
