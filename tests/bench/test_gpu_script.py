"""bench/gpu.py is run whenever a GPU machine is lent; its smoke mode checks on the CPU that it runs through."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_script_runs_through_on_the_cpu_and_writes_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, "bench/gpu.py", "--device", "cpu", "--smoke", "--preset", "small", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["smoke"] and result["peaks_tflops"] is None
    for precision in ("fp32", "bf16"):
        assert result["embedding"][precision]["spectra_per_s"] > 0
    for kept in (result["embedding"]["bf16_against_fp32"], result["shipped_small_bf16_against_fp32"]):
        assert kept["spectra"] == result["spectra"] > 40 and 0 <= kept["top3_sets_kept"] <= 1
    pretraining = result["pretraining"]
    assert pretraining["batch_32"]["batch"] == 32 and pretraining["largest_batch"]["batch"] == 64
    assert pretraining["batch_32"]["step_s"] > 0
