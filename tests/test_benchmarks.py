"""The benchmark scripts start: the GPU check on a machine without CUDA says so and succeeds."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run for real")
def test_gpu_check_without_cuda_exits_cleanly_with_its_message(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--json", str(tmp_path / "g.json")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gpu_check: SKIPPED, no CUDA device")


def test_bench_options_prints_its_table_exactness_and_breakdown(tmp_path):
    """The smallest run (one backbone, one round of one step, no compilation): the table's
    structure and the JSON's, not the timings."""
    import json

    out_json = tmp_path / "options.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_options.py", "--backbones", "resnet18", "--rounds", "1",
                             "--steps", "1", "--warmup", "1", "--options", "eager,channels_last", "--image-size", "16",
                             "--batch", "4", "--matmul-size", "64", "--threads", "1", "--json", str(out_json)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(k for k, line in enumerate(lines) if line.split()[:2] == ["threads", "option"])
    assert lines[header].split() == ["threads", "option", "step", "ms", "img/s", "speed-up", "range", "GFLOP/s", "of",
                                     "matmul", "first", "step", "s", "compile", "s"]
    rows = [lines[header + 1].split(), lines[header + 2].split()]
    assert [r[:2] for r in rows] == [["1", "eager"], ["1", "channels_last"]]
    for cells in rows:
        assert len(cells) == 11  # "%" follows the matmul fraction
        float(cells[2]), float(cells[3]), float(cells[6]), float(cells[7])
        assert cells[4].endswith("×") and cells[8] == "%" and cells[10] == "—"
    assert rows[0][4] == "1.000×"
    assert any(line.startswith("matmul rate (fp32 64×64") for line in lines)
    assert any(line.startswith("exactness vs eager (1 threads, 1 steps") and "channels_last:" in line for line in lines)
    assert any(line.startswith("where eager's step goes") for line in lines)
    assert any("GFLOP per training step" in line for line in lines)

    data = json.loads(out_json.read_text())
    (backbone,) = data["results"]
    assert backbone["backbone"] == "resnet18" and backbone["flops_per_step"] > 0
    assert [(r["threads"], r["option"]) for r in backbone["rows"]] == [(1, "eager"), (1, "channels_last")]
    assert backbone["rows"][1]["loss_max_abs_diff"] >= 0 and len(backbone["rows"][1]["step_s_per_round"]) == 1


def test_bench_options_counts_a_depthwise_convolutions_backward_as_its_forward():
    """torch's FLOP formula takes a grouped convolution's weight gradient for a dense one; the
    benchmark's does not: weight gradient = forward = 2 · N · H · W · C · k² (C channels, groups C)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_options", ROOT / "benchmarks" / "bench_options.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    batch = (torch.randn(2, 8, 5, 5), torch.zeros(2))
    counted = bench.count_flops(depthwise, lambda out, _: out.sum(), batch)
    forward = 2 * 2 * 5 * 5 * 8 * 1 * 9
    assert counted["forward"] == forward
    assert counted["total"] == 2 * forward  # the input needs no gradient: forward + weight gradient
    assert counted["torch_total"] == forward + 8 * forward


def test_calibrate_tutorial_trains_notebook_10s_recipe_and_logs_its_row(tmp_path):
    """The tutorial's calibration mirrors notebook 10's loop (same recipe name, optimiser and schedule) and writes one
    row per budget with the training curve, the NCM and the verdict."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("calibrate_tutorial", ROOT / "benchmarks" / "calibrate_tutorial.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    notebook = json.loads((ROOT / "notebooks" / "10_your_own_hierarchy.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    source = (ROOT / "benchmarks" / "calibrate_tutorial.py").read_text()
    assert f'"recipe": "{script.RECIPE}"' in code
    for line in ("torch.optim.SGD(model.parameters(), lr=BUDGET.lr, momentum=0.9, weight_decay=5e-4)",
                 "CosineAnnealingLR(optimiser, T_max=BUDGET.epochs * len(loader))",
                 "torchvision.models.resnet18(num_classes=n_classes)"):
        assert line in code and line.replace("BUDGET", "budget") in source
    log = tmp_path / "calibration.md"
    grid = [{"image_size": 16, "n_train_per_class": 2, "n_test_per_class": 1, "epochs": 2, "batch_size": 100}]
    assert script.main(["--grid", json.dumps(grid), "--log", str(log)]) == 0
    rows = [line for line in log.read_text().splitlines() if line.startswith("| {")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert json.loads(cells[0])["n_train_per_class"] == 2 and len(cells[1].split()) == 2
    top1, reference, margin = float(cells[3]), float(cells[4]), float(cells[5])
    assert 0 <= top1 <= 100 and 0 <= reference <= 100 and margin == pytest.approx(top1 - reference, abs=0.011)
    assert cells[6] == ("yes" if top1 > reference and float(cells[2]) < 1 else "**no**")
    assert cells[7] == str(200 * 2)
