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
