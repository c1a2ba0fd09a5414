"""Keeps the notebook lists honest (every notebook is run by `make reproduce` and checked by nbval), and what a web
reader sees: stored outputs without stderr or machine paths, links that resolve, labels that match the records."""
import ast
import json
import re
import shutil
import subprocess
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 asks every cell for an id (papermill warns and a future nbformat fails without one); a cell
    inserted by a script carries none unless the script gives it one."""
    ids = [cell.get("id") for cell in _cells(path)]
    assert None not in ids, f"{path.name}: cells {[i for i, x in enumerate(ids) if x is None]} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicated cell ids"


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


# -- what a web reader sees: labels that match the records, links that resolve, outputs that are there ----------
NO_OUTPUTS = "committed without outputs"
#: Markdown links and images, and HTML href/src attributes.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:href|src)=[\"']([^\"']+)[\"']")


def _has_outputs(nb) -> bool:
    return any(cell.get("outputs") for cell in nb["cells"] if cell["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_says_whether_it_has_outputs_in_its_first_cell(path):
    nb = json.loads(path.read_text())
    first = _source(nb["cells"][0])
    if _has_outputs(nb):
        assert NO_OUTPUTS not in first, f"{path.name} has outputs but its first cell says it has none"
        return
    assert NO_OUTPUTS in first and "make reproduce" in first, \
        f"{path.name} is committed without outputs: its first cell must say so and how to run it (`make reproduce`)"


RESULTS_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem[:2] >= "03"]


@pytest.mark.parametrize("path", RESULTS_NOTEBOOKS, ids=lambda p: p.stem)
def test_every_results_notebook_says_what_the_series_is_before_any_number(path):
    first = _source(json.loads(path.read_text())["cells"][0])
    assert "synthetic stand-in" in first and "not a reproduction of the paper's numbers" in first, \
        f"{path.name}: the first cell says plainly that the quick series runs on synthetic stand-ins"


def _links(text: str) -> list[str]:
    return [a or b for a, b in LINK.findall(text)]


def _local_target(link: str, base: Path):
    """The file a relative link points at, or None for a web address, an anchor or a mail link."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I) or link.startswith("#"):
        return None
    return (base / link.split("#", 1)[0].split("?", 1)[0]).resolve()


def _ignored(target: Path) -> bool:
    result = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(target)],
                            capture_output=True)
    if result.returncode not in (0, 1):
        pytest.skip(f"git check-ignore failed: {result.stderr.decode(errors='replace')[:200]}")
    return result.returncode == 0


def _pages():
    """(page, base folder, markdown text) of every committed notebook (markdown cells and markdown outputs),
    results/README.md and the README."""
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        texts = [_source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                texts += ["".join(data.get(kind, "")) for kind in ("text/markdown", "text/html")]
        yield path.name, path.parent, "\n".join(texts)
    for page in (ROOT / "results" / "README.md", ROOT / "README.md"):
        if page.exists():
            yield str(page.relative_to(ROOT)), page.parent, page.read_text()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_link_to_a_file_git_ignores():
    """A link on a committed page must resolve on the web: never to a git-ignored file (executed notebooks,
    checkpoints, build/), and never to a file that is not there."""
    problems = []
    for page, base, text in _pages():
        for link in _links(text):
            target = _local_target(link, base)
            if target is None:
                continue
            if not target.exists():
                problems.append(f"{page}: {link} does not exist")
            elif _ignored(target):
                problems.append(f"{page}: {link} is git-ignored")
    assert not problems, "\n".join(problems)


def test_the_link_check_sees_ignored_files(tmp_path):
    assert _links("see [x](../results/notebooks/03.ipynb), ![f](figures/a.png) and <a href='b.md'>b</a>") == \
        ["../results/notebooks/03.ipynb", "figures/a.png", "b.md"]
    assert _local_target("https://example.org/x", ROOT) is None and _local_target("#top", ROOT) is None
    if shutil.which("git") and (ROOT / ".git").exists():
        assert _ignored(ROOT / "results" / "notebooks" / "03_cub_comparison.ipynb")
        assert _ignored(ROOT / "build" / "anything.md")
        assert not _ignored(ROOT / "results" / "README.md")


def test_results_readme_has_no_dirty_provenance():
    page = ROOT / "results" / "README.md"
    if page.exists():
        assert "-dirty" not in page.read_text(), "results/README.md stamps a commit of a dirty tree"


# -- backbone labels: this run's, from its records -----------------------------------------------------------------
BACKBONE_COLUMN = "backbone (this run)"


def _markdown_tables(text: str) -> list[list[dict]]:
    """The GitHub-flavoured markdown tables of ``text``, each a list of rows ``{header: cell}``."""
    found, lines = [], text.splitlines()
    k = 0
    while k + 1 < len(lines):
        if lines[k].startswith("|") and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[k + 1]):
            header = [c.strip() for c in lines[k].strip().strip("|").split("|")]
            rows, k = [], k + 2
            while k < len(lines) and lines[k].startswith("|"):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[k].strip().strip("|"))]
                rows.append(dict(zip(header, cells)))
                k += 1
            found.append(rows)
        else:
            k += 1
    return found


def _mislabelled(rows: list[dict]) -> list[str]:
    """Rows of a displayed table whose records are one backbone while another backbone's name appears in a cell
    that is not the paper's (``paper backbone``)."""
    from kesl_utils.names import BACKBONES

    displays = [spec.display for spec in BACKBONES.values()]
    problems = []
    for row in rows:
        ours = row.get(BACKBONE_COLUMN, "")
        if not ours:
            continue
        for column, cell in row.items():
            if column in ("paper backbone", BACKBONE_COLUMN):
                continue
            for other in displays:
                if other != ours and other not in ours and re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", cell):
                    problems.append(f"{column}={cell!r} in a row whose records are {ours}")
    return problems


def test_the_label_check_catches_a_resnet50_label_over_resnet18_records():
    table = ("| method | paper backbone | paper | backbone (this run) | this run |\n|---|---|---|---|---|\n"
             "| Baseline | ResNet-50 | 85.8 | ResNet-18 | 41.0 |\n"
             "| Ours (ResNet-50) | ResNet-50 | 87.1 | ResNet-18 | 42 |\n")
    rows = _markdown_tables(table)[0]
    assert [r["backbone (this run)"] for r in rows] == ["ResNet-18", "ResNet-18"]
    assert _mislabelled(rows[:1]) == [] and len(_mislabelled(rows)) == 1


def _table_of(nb) -> str | None:
    for cell in nb["cells"]:
        match = re.search(r'^TABLE = "(\w+)"', _source(cell), re.M)
        if match:
            return match.group(1)
    return None


def backbone_label_problems(nb, name_of_page: str, committed_records=None, profile: str = "quick") -> list[str]:
    """What is wrong with the backbone labels of a notebook's stored markdown tables (empty: nothing).

    A table of this run's numbers (a ``this run`` column) must carry this run's backbone column; no cell of ours
    names another backbone than the row's records; and in a paper-table notebook, the column equals the backbones
    of ``committed_records`` that fill each row (the ``profile`` run that produced the outputs)."""
    problems, shown = [], []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            for rows in _markdown_tables("".join(output.get("data", {}).get("text/markdown", ""))):
                if rows and "this run" in rows[0]:
                    if BACKBONE_COLUMN not in rows[0]:
                        problems.append(f"{name_of_page}: a stored table of this run's numbers without the "
                                        f"{BACKBONE_COLUMN!r} column: {list(rows[0])}")
                    else:
                        shown.append(rows)
                elif rows and BACKBONE_COLUMN in rows[0]:
                    shown.append(rows)
    for rows in shown:
        problems += [f"{name_of_page}: {problem}" for problem in _mislabelled(rows)]
    name = _table_of(nb)
    if shown and name is not None and committed_records is not None:
        from kesl_utils import tables

        expected = list(tables.build_table(name, committed_records, profile=profile)["this_run_backbone"])
        main = [rows for rows in shown if len(rows) == len(expected) and "this run" in rows[0]]
        labelled = [r[BACKBONE_COLUMN] for r in main[0]] if main else None
        if labelled != expected:
            problems.append(f"{name_of_page}: the stored table labels backbones {labelled}, the records {expected}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_tables_label_this_runs_backbone_from_its_records(path):
    """Every stored markdown table of this run's numbers names this run's backbone, read from the committed
    records, and no cell of ours names another (no "ResNet-50" over ResNet-18 records)."""
    nb = json.loads(path.read_text())
    from kesl_utils import paths, records

    committed = records.load_records(paths.default_results_dir("quick")) if _has_outputs(nb) else None
    assert not backbone_label_problems(nb, path.name, committed), \
        "\n".join(backbone_label_problems(nb, path.name, committed))


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_label_check_fails_the_outputs_of_the_retired_protocol():
    """Notebook 03 as committed before this check (f80e2f1): Table 1 labelled its ResNet-18 runs "ResNet-50"."""
    shown = subprocess.run(["git", "-C", str(ROOT), "show", "f80e2f1:notebooks/03_cub_comparison.ipynb"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip("the old commit is not in this clone's history")
    problems = backbone_label_problems(json.loads(shown.stdout), "03 (f80e2f1)")
    assert problems and "without the 'backbone (this run)' column" in problems[0]


@pytest.mark.parametrize("name", ["cub_comparison", "general_recognition", "label_smoothing",
                                  "hyperparameter_ablation", "backbone_ablation"])
def test_a_smoke_tables_page_labels_this_runs_backbone_from_its_records(name, tmp_path):
    """The page a smoke run writes (tables.report, from records of the smoke configs): this run's backbone column is
    the records' own, and no ResNet-50 (or other) label stands over ResNet-18 records, in the tables or the title."""
    from kesl_utils import ncm, tables
    from kesl_utils.names import BACKBONES
    from kesl_utils.records import RunRecord
    from kesl_utils.table_specs import table_spec

    configs = table_spec(name).configs("smoke")
    metrics = dict.fromkeys(("top5", "mistake_severity", "hdist@1", "hdist@5", "ece"), 1.0)
    runs = [RunRecord(run_id=c.run_id, config=c.to_dict(), metrics={**metrics, "top1": 40.0 + k})
            for k, c in enumerate(configs)]
    for config in configs:  # the stored references, as run_all leaves them
        target = ncm.record_path(config, tmp_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"data": ncm.data_fields(config), "top1": 10.0}))
    report = tables.report(name, runs, profile="smoke", results_dir=tmp_path)
    page = report.files["md"].read_text()
    main = _markdown_tables(page)[0]
    by_id = {r.run_id: BACKBONES[r.config["backbone"]].display for r in runs}
    for row, (_, built) in zip(main, report.table.iterrows()):
        held = {by_id[run_id] for run_id in built["run_ids"].split()}
        assert row[BACKBONE_COLUMN] == ", ".join(sorted(held)) if held else row[BACKBONE_COLUMN] == ""
    assert not _mislabelled(main)
    title = page.splitlines()[0]
    backbones = sorted({by_id[r.run_id] for r in runs})
    assert title.endswith("this run: " + ", ".join(dict.fromkeys(by_id[c.run_id] for c in configs)))
    for other in (spec.display for spec in BACKBONES.values() if spec.display not in backbones):
        assert other not in title or f"(paper: {other})" in title, title


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parses_every_line_of_the_parameters_cell(path):
    """A parameters line papermill cannot parse prints "Unable to parse line …" in `make reproduce`'s
    terminal (not the series' own output) and its parameter is not documented: every assignment must parse."""
    from papermill.translators import PythonTranslator

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = _source(cell)
    assigned = [line.split("=")[0].strip() for line in source.splitlines() if re.match(r"^\w+\s*=", line)]
    assert [p.name for p in PythonTranslator.inspect({"source": source})] == assigned
