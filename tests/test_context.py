"""The run context: built at the entry points from their arguments and the environment (one function),
its folders read without creating anything, made and proven writable in one call; and the library
below the entry points neither writes nor (but for torchrun's and WordNet's own variables) reads
the environment."""
import ast
import os
from pathlib import Path

import pytest

from kesl_utils import context, paths
from kesl_utils.context import RunContext, from_environment

LIBRARY = paths.PROJECT_ROOT / "kesl_utils"


def test_for_profile_uses_the_profiles_folder_and_creates_nothing(tmp_path):
    quick = RunContext.for_profile("quick")
    assert quick.results_dir == paths.PROJECT_ROOT / "results" and quick.profile == "quick"
    assert RunContext.for_profile("smoke").results_dir == paths.PROJECT_ROOT / "build" / "results-smoke"
    assert RunContext.for_profile("paper").results_dir == paths.PROJECT_ROOT / "results-paper"
    assert quick.data_root == paths.PROJECT_ROOT / "data" / "raw" and quick.device is None
    assert (quick.executor, quick.progress, quick.verbose, quick.progress_log) == ("serial", True, False, None)
    ctx = RunContext.for_profile("smoke", results_dir=tmp_path / "r", data_root="data/elsewhere")
    assert ctx.data_root == paths.PROJECT_ROOT / "data" / "elsewhere"  # relative: from the repository
    folders = [ctx.runs_dir, ctx.checkpoints_dir, ctx.artifacts_dir, ctx.figures_dir, ctx.tables_dir,
               ctx.references_dir]
    assert [f.name for f in folders] == list(paths.RESULT_FOLDERS)
    assert all(f.parent == tmp_path / "r" for f in folders) and not (tmp_path / "r").exists()
    assert ctx.prepare() is ctx and all(f.is_dir() for f in folders)


def test_prepare_fails_at_once_naming_a_folder_that_is_a_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "tables").write_text("a file")
    with pytest.raises(PermissionError, match=r"tables exists and is not a folder"):
        RunContext(results_dir=tmp_path / "r").prepare()


def test_prepare_names_the_results_folder_itself_when_it_is_a_file(tmp_path):
    (tmp_path / "r").write_text("a file")
    with pytest.raises(PermissionError, match=rf"cannot write in {tmp_path / 'r'} \(NotADirectoryError: "
                                              rf"{tmp_path / 'r'} exists and is not a folder\)"):
        RunContext(results_dir=tmp_path / "r").prepare()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_prepare_fails_at_once_naming_a_read_only_folder(tmp_path):
    (tmp_path / "r" / "figures").mkdir(parents=True)
    (tmp_path / "r" / "figures").chmod(0o500)
    with pytest.raises(PermissionError, match=r"cannot write in .*figures"):
        RunContext(results_dir=tmp_path / "r").prepare()


def test_fields_are_checked():
    with pytest.raises(ValueError, match="executor='dask'"):
        RunContext.for_profile("smoke", executor="dask")
    with pytest.raises(ValueError, match="progress must be True or False"):
        RunContext.for_profile("smoke", progress="no")
    with pytest.raises(ValueError, match="profile='huge'"):
        RunContext.for_profile("huge")


def test_a_notebook_lets_the_environment_override_its_parameters(tmp_path):
    env = {"KESL_PROFILE": "smoke", "KESL_PROGRESS": "0", "KESL_EXECUTOR": "ray",
           "KESL_RESULTS_DIR": str(tmp_path / "r"), "KESL_PROGRESS_LOG": str(tmp_path / "log.jsonl"),
           "RAY_ADDRESS": "ray://head:10001"}
    ctx = from_environment("quick", data_root="data/raw", device="cpu", executor="serial", progress=True, environ=env)
    assert (ctx.profile, ctx.executor, ctx.progress, ctx.interactive, ctx.device) == ("smoke", "ray", False, False, "cpu")
    assert ctx.results_dir == tmp_path / "r" and ctx.progress_log == tmp_path / "log.jsonl"
    assert ctx.ray_address == "ray://head:10001"
    plain = from_environment("quick", environ={})
    assert (plain.profile, plain.results_dir, plain.executor, plain.progress, plain.interactive, plain.progress_log) \
        == ("quick", paths.PROJECT_ROOT / "results", "serial", True, True, None)
    assert from_environment(environ={}).profile == "quick"


def test_a_command_line_lets_its_flags_override_the_environment():
    env = {"KESL_PROFILE": "smoke", "KESL_EXECUTOR": "ray", "KESL_PROGRESS": "0"}
    ctx = from_environment("paper", executor="serial", progress=True, precedence="arguments", environ=env)
    assert (ctx.profile, ctx.executor, ctx.progress) == ("paper", "serial", True)
    assert ctx.results_dir == paths.PROJECT_ROOT / "results-paper"
    unflagged = from_environment(None, precedence="arguments", environ=env)
    assert (unflagged.profile, unflagged.executor, unflagged.progress) == ("smoke", "ray", False)


def test_bad_environment_values_are_named():
    with pytest.raises(ValueError, match=r"\$KESL_PROGRESS='maybe'"):
        from_environment("quick", environ={"KESL_PROGRESS": "maybe"})
    with pytest.raises(ValueError, match="profile 'fast' is not one of"):
        from_environment("quick", environ={"KESL_PROFILE": "fast"})


def test_one_default_device():
    import torch
    assert context.resolve_device("cpu") == torch.device("cpu")
    assert context.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_device_this_machine_lacks_is_an_error_naming_what_it_has():
    """Issue 23: `--device foo` was torch's raw error; `--device cuda` without a GPU a driver error after set-up."""
    import torch
    available = context.available_devices()
    assert available[0] == "cpu"
    with pytest.raises(ValueError, match=rf"device 'foo' is not a device name; this machine has: {available[0]}"):
        context.resolve_device("foo")
    with pytest.raises(ValueError, match=r"device 'cuda:99' is not available: "):
        context.resolve_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' is not available: .*; this machine has: cpu"):
            context.resolve_device("cuda")


# -- the library below the entry points and the environment -------------------------------------------
def _environment_uses(path: Path):
    """(line, "read" | "write") of every use of os.environ / os.getenv / os.putenv in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr in ("putenv", "unsetenv"):
                yield node.lineno, "write"
            elif node.attr == "getenv":
                yield node.lineno, "read"
            elif node.attr == "environ":
                parent = parents.get(node)
                written = (isinstance(parent, ast.Subscript) and isinstance(parent.ctx, (ast.Store, ast.Del))) or (
                    isinstance(parent, ast.Attribute) and parent.attr in ("pop", "update", "setdefault", "clear",
                                                                          "popitem"))
                yield node.lineno, "write" if written else "read"


#: Where the library may touch the environment, and why.
READERS = {
    "context.py": "from_environment, the one function that reads the entry points' variables",
    "reproduce.py": "an entry point: the kernels' environment is this process's plus the context's",
    "distributed.py": "torchrun's own protocol (RANK, WORLD_SIZE, LOCAL_RANK)",
    "wordnet.py": "nltk's own NLTK_DATA and WordNet's WNSEARCHDIR",
}
#: wordnet.py adds the repository's nltk_data folder to nltk's search path (hierarchy split, another branch).
WRITERS = {"wordnet.py"}


def test_the_library_never_writes_the_environment_and_reads_it_only_at_the_entry_points():
    for path in sorted(LIBRARY.rglob("*.py")):
        for line, use in _environment_uses(path):
            where = f"{path.relative_to(paths.PROJECT_ROOT)}:{line}"
            if use == "write":
                assert path.name in WRITERS, f"{where} writes os.environ"
            else:
                assert path.name in READERS, f"{where} reads os.environ outside the entry points"
