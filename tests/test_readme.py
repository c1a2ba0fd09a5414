"""README and reality: its Python blocks run as written, and its commands name flags that exist."""
import contextlib
import io
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
    """`make clean` removes build/ and regenerated results; none of its rm paths holds a tracked file."""
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
    assert "git clean" not in clean and "results-paper" not in clean


def test_make_clean_keeps_untracked_records_checkpoints_weights_and_a_users_files(tmp_path):
    """Issue 23: `make clean` once ran `git clean -fdxq -- results`, deleting an untracked quick record (hours of
    CPU) and a user's notes. In a copy of the repository's Makefile, inside a git repository of its own, it now
    removes only build/ and the executed notebooks, naming each, and keeps everything else under results/."""
    import shutil
    import subprocess

    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("needs make and git")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(paths.PROJECT_ROOT / "Makefile", repo / "Makefile")
    shutil.copy(paths.PROJECT_ROOT / ".gitignore", repo / ".gitignore")
    (repo / "results" / "runs").mkdir(parents=True)
    (repo / "results" / "README.md").write_text("tracked\n")
    (repo / "results" / "runs" / "cub-resnet18-ce-0000000001.json").write_text("{}\n")  # a committed record
    git = dict(cwd=repo, capture_output=True, text=True, check=True)
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "-A"], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], **git)
    kept = ["results/runs/cub-resnet18-kesl-0000000002.json",        # untracked: an unfinished quick run's record
            "results/runs/cub-resnet18-kesl-0000000003.failed.json",
            "results/my_notes.txt",                                   # a user's file
            "results/checkpoints/cub-resnet18-kesl-0000000004/last.pt",  # an interrupted run's resume point
            "results/artifacts/small_imagenet-resnet18-ce-0000000005/weights.pt",
            "results/notebooks/my_copy.ipynb",                        # not a notebook of the series
            "results-paper/runs/cub-resnet50-kesl-0000000006.json",
            "results/README.md", "results/runs/cub-resnet18-ce-0000000001.json"]
    removed = ["results/notebooks/00_environment.ipynb", "results/notebooks/03_cub_comparison.ipynb",
               "results/notebooks/progress.jsonl", "results/notebooks/reproduce.json", "build/results-smoke/runs/x.json",
               "build/test-results/y"]
    for name in kept + removed:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(name)
    out = subprocess.run(["make", "clean"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [name for name in kept if not (repo / name).is_file()] == []
    assert [name for name in removed if (repo / name).exists()] == [] and not (repo / "build").exists()
    for name in removed[:4]:
        assert f"removing {name}" in out.stdout  # it says what it removes under results/


def test_the_first_minutes_of_the_readme():
    """Issue 23: the README opens with what its commands cost (from the run plan) and a command that finishes in
    minutes, its torchrun lines work from a fresh shell, `make lab` is explained for a machine without a screen,
    no path leaves the repository, and results-paper/ is ignored by git."""
    import subprocess

    opening = README.split("\n## ", 1)[0]
    assert "make reproduce PROFILE=smoke" in opening and "minutes" in opening
    assert "kesl_utils plan" in opening  # where the cost comes from
    torchrun = [line for block in BASH_BLOCKS for line in block.splitlines() if "torchrun" in line]
    assert torchrun and all(line.strip().startswith(".venv/bin/torchrun") for line in torchrun), torchrun
    assert (paths.PROJECT_ROOT / "Makefile").read_text().count("$(VENV)/bin/") >= 1  # the venv the Makefile makes
    lab = README.split("## JupyterLab", 1)[1].split("\n## ", 1)[0]
    assert "--no-browser" in lab and "ssh -N -L" in lab
    assert "../" not in README and "shared/tools" not in README, "a path outside the repository"
    ignored = subprocess.run(["git", "check-ignore", "-q", "results-paper/runs/x.json"], cwd=paths.PROJECT_ROOT)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, "results-paper/ is not ignored by git"
