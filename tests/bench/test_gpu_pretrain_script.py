"""bench/gpu_pretrain.py is run whenever a GPU machine is lent; its smoke mode checks on the CPU that it runs
through and writes what a reader compares."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_pretraining_script_runs_through_on_the_cpu_and_names_a_winner_on_validation(tmp_path):
    command = [sys.executable, "bench/gpu_pretrain.py", "--device", "cpu", "--smoke", "--presets", "small"]
    done = subprocess.run([*command, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    small = summary["presets"]["small"]
    assert summary["smoke"] and summary["winner"] == "small" and small["steps"] >= 10
    assert set(small["tasks"]) == {"bpt5", "lens"} and small["checkpoint_mb"] < 16
    assert all(row["policy"]["k"] >= 1 for row in small["tasks"].values())
    assert (tmp_path / "checkpoint-small" / "metrics.json").exists()
