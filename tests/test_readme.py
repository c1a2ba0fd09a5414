"""README and reality: its Python blocks run as written, and its commands name flags that exist."""
import contextlib
import io
import os
import re
import shlex

import pytest

from kesl_utils import paths
from kesl_utils.__main__ import build_parser

README = (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)


def test_the_readme_has_python_examples():
    assert PYTHON_BLOCKS, "the README shows how to use the library from Python"


@pytest.mark.parametrize("source", PYTHON_BLOCKS, ids=lambda s: s.strip().splitlines()[0][:40])
def test_python_blocks_run_as_written(source, monkeypatch, tmp_path):
    monkeypatch.setenv("KESL_RESULTS_DIR", str(tmp_path))
    monkeypatch.chdir(paths.PROJECT_ROOT)  # paths in the README are relative to the repository
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "README.md", "exec"), {"__name__": "__readme__"})


def _commands():
    for block in BASH_BLOCKS:
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if "-m kesl_utils " in line and "kesl_utils.reproduce" not in line:
                words = shlex.split(line)
                yield words[words.index("kesl_utils") + 1:]


@pytest.mark.parametrize("argv", list(_commands()), ids=lambda a: " ".join(a)[:50])
def test_command_lines_parse(argv):
    """Every `python -m kesl_utils ...` / `torchrun ... -m kesl_utils ...` line of the README parses."""
    parser = build_parser()
    args = parser.parse_args([a if a != "N" else "2" for a in argv])
    assert args.command in ("train", "table", "hierarchy")


def test_make_targets_in_the_readme_exist():
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    for target in set(re.findall(r"\bmake (\w+)", README)):
        assert re.search(rf"^{target}:", makefile, re.M), f"README mentions `make {target}`, which the Makefile lacks"


def test_make_lab_runs_as_root_and_takes_lab_args():
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    lab = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "$(ROOT_FLAG)" in lab and "$(LAB_ARGS)" in lab
    assert re.search(r"^ROOT_FLAG\s*:=.*--allow-root", makefile, re.M)


def test_make_clean_never_deletes_a_tracked_file():
    """`make clean` removes build/ and ignored or untracked results; none of its rm paths holds a tracked file."""
    import subprocess

    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    clean = re.search(r"^clean:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    removed = [w for line in clean.splitlines() if "rm -rf" in line for w in line.split("rm -rf", 1)[1].split()]
    assert removed, "make clean removes something"
    listed = subprocess.run(["git", "ls-files", "--", *removed], cwd=paths.PROJECT_ROOT, capture_output=True,
                            text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    assert listed.stdout == "", f"make clean would delete tracked files: {listed.stdout.split()[:5]}"
    assert "git clean" in clean and "results-paper" not in clean
