"""Pre-training over two gloo processes (torchrun), as a worker configured for several processes runs it."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from kb.store import SpectrumStore
from tests.training.test_pretrain import TINY, config, toy_survey
from training.distributed import launch, torchrun, write_spec
from training.pretrain import pretrain

ROWS, VAL_ROWS = np.arange(0, 56), np.arange(56, 64)


@pytest.fixture
def store(tmp_path):
    flux, valid, ivar = toy_survey(64)
    store = SpectrumStore(tmp_path / "spectra", n_pixels=200)
    store.append(flux, valid, ivar)
    return store


def run_kwargs(store, out_dir, **overrides):
    return dict(
        store=store.folder,
        rows=ROWS,
        val_rows=VAL_ROWS,
        model_config=TINY,
        config=config(max_steps=40, batch_size=8, **overrides),
        out_dir=out_dir,
    )


def test_two_processes_learn_as_one_does(store, tmp_path):
    flux, valid = store.read()
    single = pretrain(
        flux,
        valid,
        store.read_ivar(),
        model_config=TINY,
        config=config(max_steps=40, batch_size=8),
        out_dir=tmp_path / "one",
        rows=ROWS,
        val_rows=VAL_ROWS,
    )
    steps = []
    double = launch(
        processes=2, on_progress=lambda step, total, report: steps.append(step), **run_kwargs(store, tmp_path / "two")
    )
    assert steps == list(range(1, 41))  # rank 0's progress, every step
    assert (
        double["steps"] == 40
        and double["processes"] == 2
        and (tmp_path / "two" / "best" / "model.safetensors").exists()
    )
    one = [h["val_masked_chi2"] for h in single["history"]]
    two = [h["val_masked_chi2"] for h in double["history"]]
    assert one[-1] < one[0] and two[-1] < two[0]  # both learn
    # different spectra in each batch (each rank draws its own), so not equal: within 15% at every check
    assert np.allclose(two, one, rtol=0.15), (one, two)


def test_a_killed_distributed_run_resumes_where_it_stopped(store, tmp_path):
    kwargs = run_kwargs(store, tmp_path / "run", eval_every=5)
    child = subprocess.Popen(torchrun(2, write_spec(**kwargs)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "run" / "last" / "config.json"
    deadline = time.monotonic() + 120
    while not (last.exists() and json.loads(last.read_text())["metrics"]["step"] >= 10):
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)  # the launcher alone, as when a worker is killed: its ranks die with it
    child.wait()
    ranks = ["pgrep", "-f", f"training.distributed {tmp_path}"]
    while subprocess.run(ranks, capture_output=True).returncode == 0:  # a rank of this run still alive
        assert time.monotonic() < deadline, "the ranks outlived their launcher"
        time.sleep(0.05)
    stopped = json.loads(last.read_text())["metrics"]["step"]
    assert 10 <= stopped < 40
    saved = torch.load(tmp_path / "run" / "last" / "training_state.pt", weights_only=False)["generators"]
    assert len(saved) == 2 and not torch.equal(saved[0], saved[1])  # each rank's own random stream, kept
    resumed = []
    metrics = launch(processes=2, on_progress=lambda step, total, report: resumed.append(step), **kwargs)
    assert resumed[0] == stopped + 1 and resumed[-1] == 40 and metrics["steps"] == 40
    assert [h["step"] for h in metrics["history"]] == list(range(5, 45, 5))  # nothing lost, nothing twice


def test_a_batch_that_does_not_split_over_the_processes_is_refused_with_a_reason(store, tmp_path):
    with pytest.raises(ValueError, match="a batch of 7 does not split over 2 processes"):
        launch(processes=2, **{**run_kwargs(store, tmp_path / "odd"), "config": config(batch_size=7)})
    assert not (tmp_path / "odd").exists()  # nothing started, nothing written
