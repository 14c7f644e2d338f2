"""The checkpoint shipped for the demo (training/shipped/small) loads and has learned spectra: on a mock
survey it never saw, it reconstructs hidden pixels better than interpolation."""

import json

import numpy as np
import pytest
import torch

from kb.mock import generate_survey
from kb.selectors import spectrum_store
from kb.services.ingest import ingest_folder
from training.checkpoint import SHIPPED, load_masked_model, read_info
from training.model import span_mask
from training.pretrain import PretrainConfig, figures, interpolation_errors, validation_errors
from training.services import training_run_import

pytestmark = pytest.mark.django_db


def test_the_shipped_checkpoint_beats_interpolation_on_a_mock_it_never_saw(data_dir, tmp_path):
    generate_survey(out=tmp_path / "survey", size=60, seed=31)  # the shipped one was trained on seed 2
    ingest_folder(folder=tmp_path / "survey")
    run = training_run_import(source=SHIPPED)
    assert (
        run.in_service
        and run.preset == "small"
        and run.step == json.loads((SHIPPED / "metrics.json").read_text())["steps"]
    )
    assert run.checkpoint_name == f"run {run.pk}, step {read_info(SHIPPED / 'best')['metrics']['step']}"
    store = spectrum_store()
    arrays = (*store.read(), store.read_ivar())
    rows = np.arange(len(arrays[0]))
    config = PretrainConfig(**run.train_config)
    hidden = span_mask(
        arrays[0].shape, mask_ratio=config.mask_ratio, span=config.mask_span, generator=torch.Generator().manual_seed(0)
    )
    model = load_masked_model(run.checkpoint_path, "cpu")
    found = figures(
        validation_errors(model, arrays, rows, hidden, torch.device("cpu")), interpolation_errors(arrays, rows, hidden)
    )
    assert found["val_masked_chi2"] < 0.9 * found["val_interp_chi2"]
    assert found["val_median_spectrum_masked_mse"] < found["val_median_spectrum_interp_mse"]
