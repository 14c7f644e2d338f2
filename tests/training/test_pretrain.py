import json
import pickle

import numpy as np
import pytest
import torch

from inference.embed import embed
from training.checkpoint import load_checkpoint, read_info, save_checkpoint
from training.model import EncoderConfig, MaskedSpectrumModel
from training.pretrain import SELECTED_BY, PretrainConfig, _errors, figures, learning_rate, pretrain, split

TINY = EncoderConfig(n_pixels=200, d_model=16, n_layers=1, n_heads=2)


def toy_survey(n=48, seed=0):
    """Continua with a break and an emission line at a random place: learnable structure plus noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(200)
    flux = 1 + 0.3 * (x[None] > rng.integers(40, 160, (n, 1))) + 0.02 * rng.normal(size=(n, 200))
    centre = rng.integers(30, 170, (n, 1))
    flux += 2.0 * np.exp(-0.5 * ((x[None] - centre) / 2.0) ** 2)
    valid = np.ones((n, 200), bool)
    valid[:, :5] = False
    ivar = np.where(valid, 1 / 0.02**2, 0.0)
    return flux.astype(np.float32), valid, ivar.astype(np.float32)


def config(**overrides):
    base = dict(lr=3e-3, warmup_steps=5, max_steps=30, batch_size=8, eval_every=10, mask_span=10, seed=1)
    return PretrainConfig(**{**base, **overrides})


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    c = PretrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.0)
    assert learning_rate(0, c) == pytest.approx(0.1) and learning_rate(9, c) == pytest.approx(1.0)
    assert learning_rate(60, c) == pytest.approx(0.5) and learning_rate(110, c) == pytest.approx(0.0)


def test_split_is_seeded_and_disjoint():
    train, val = split(100, PretrainConfig(seed=3, val_fraction=0.2))
    again, _ = split(100, PretrainConfig(seed=3, val_fraction=0.2))
    assert len(val) == 20 and not set(train) & set(val) and np.array_equal(train, again)


def test_training_lowers_the_loss_and_writes_metrics(tmp_path):
    flux, valid, ivar = toy_survey()
    metrics = pretrain(flux, valid, ivar, model_config=TINY, config=config(), out_dir=tmp_path, resume=False)
    history = metrics["history"]
    assert history[-1]["val_masked_mse"] < history[0]["val_masked_mse"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written[SELECTED_BY] == metrics[SELECTED_BY] == min(h[SELECTED_BY] for h in history)
    assert written["val_masked_chi2"] > 0 and written["val_interp_chi2"] > 0 and written["loss"] == "chi2"
    assert written["val_interp_mse"] > 0 and written["steps"] == 30
    assert 0 < written["val_median_spectrum_noise_mse"] < written["val_median_spectrum_interp_mse"]
    info = read_info(tmp_path / "best")
    assert info["model"]["d_model"] == 16 and info["training"]["lr"] == 3e-3


def test_the_noise_floor_is_what_a_prediction_of_the_noiseless_flux_scores():
    rng = np.random.default_rng(0)
    sigma = np.array([[0.01], [0.02], [0.05], [0.1], [0.2]])
    truth = np.ones((5, 4000)) + np.sin(np.arange(4000) / 50)
    noisy = torch.tensor(truth + sigma * rng.normal(size=truth.shape), dtype=torch.float32)
    valid = torch.tensor(rng.random(truth.shape) > 0.1)
    ivar = torch.where(valid, torch.tensor(1 / sigma**2, dtype=torch.float32), 0.0)
    hidden = torch.tensor(rng.random(truth.shape) < 0.25)
    perfect = _errors(torch.tensor(truth, dtype=torch.float32), noisy, valid, ivar, hidden).numpy()
    found = figures(perfect, perfect)
    assert found["val_median_spectrum_noise_mse"] == pytest.approx(0.05**2, rel=1e-4)  # the middle spectrum's
    assert found["val_median_spectrum_masked_mse"] == pytest.approx(0.05**2, rel=0.1)
    assert found["val_masked_chi2"] == pytest.approx(1.0, rel=0.05)


def test_validation_rows_given_are_the_ones_validated_on_and_may_not_overlap_the_training_rows(tmp_path):
    flux, valid, ivar = toy_survey()
    rows, val_rows = np.arange(0, 40), np.arange(40, 48)
    metrics = pretrain(
        flux,
        valid,
        ivar,
        model_config=TINY,
        config=config(max_steps=10),
        out_dir=tmp_path,
        rows=rows,
        val_rows=val_rows,
    )
    assert metrics["n_train"] == 40 and metrics["n_val"] == 8
    with pytest.raises(ValueError, match="overlap"):
        pretrain(
            flux, valid, ivar, model_config=TINY, config=config(), out_dir=tmp_path / "x", rows=rows, val_rows=[39, 40]
        )


def test_a_run_from_before_chi_squared_is_not_resumed_on_another_loss(tmp_path):
    flux, valid, ivar = toy_survey()
    pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=10), out_dir=tmp_path)
    path = tmp_path / "last" / "training_state.pt"
    saved = torch.load(path, weights_only=False)
    del saved["state"]["best"]  # what a run of the MSE era left
    torch.save(saved, path)
    with pytest.raises(ValueError, match="cannot be resumed; start a new run"):
        pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=20), out_dir=tmp_path)


class Interrupted(Exception):
    pass


def test_resuming_gives_the_same_model_as_an_uninterrupted_run(tmp_path):
    flux, valid, ivar = toy_survey()
    pretrain(flux, valid, ivar, model_config=TINY, config=config(), out_dir=tmp_path / "straight")

    def stop_at_20(step, max_steps, report):
        if step == 20:
            raise Interrupted  # a worker killed right after the step-20 checkpoint

    with pytest.raises(Interrupted):
        pretrain(
            flux, valid, ivar, model_config=TINY, config=config(), out_dir=tmp_path / "resumed", on_progress=stop_at_20
        )
    assert json.loads((tmp_path / "resumed" / "last" / "config.json").read_text())["metrics"]["step"] == 20
    metrics = pretrain(flux, valid, ivar, model_config=TINY, config=config(), out_dir=tmp_path / "resumed")
    assert metrics["steps"] == 30
    straight = load_checkpoint(tmp_path / "straight" / "last").state_dict()
    resumed = load_checkpoint(tmp_path / "resumed" / "last").state_dict()
    for name in straight:
        torch.testing.assert_close(straight[name], resumed[name], rtol=0, atol=1e-6)


def test_a_checkpoint_reloads_to_identical_embeddings(tmp_path):
    flux, valid, ivar = toy_survey()
    pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=10), out_dir=tmp_path)
    z = np.linspace(0.0, 0.5, len(flux))
    first = embed(load_checkpoint(tmp_path / "best"), flux, valid, z)
    second = embed(load_checkpoint(tmp_path / "best"), flux, valid, z)
    assert first.shape == (48, TINY.embedding_width) and np.array_equal(first, second)


def test_embedding_does_not_depend_on_the_batch_size(tmp_path):
    flux, valid, ivar = toy_survey()
    pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=10), out_dir=tmp_path)
    model = load_checkpoint(tmp_path / "best")
    z = np.linspace(0.0, 0.5, len(flux))
    np.testing.assert_allclose(
        embed(model, flux, valid, z, batch_size=5), embed(model, flux, valid, z, batch_size=48), atol=1e-5
    )


def test_a_folder_without_weights_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a GalSpec checkpoint"):
        load_checkpoint(tmp_path)


def test_a_training_run_serves_the_checkpoint_pretraining_keeps_as_best(tmp_path):
    from training.models import TrainingRun
    from training.pretrain import BEST

    assert TrainingRun(checkpoint_dir=str(tmp_path)).checkpoint_path == tmp_path / BEST


def test_a_checkpoint_from_before_line_windows_embeds_as_its_knowledge_bases_were_built(tmp_path):
    """Its config.json has no ``pool_lines``: it keeps the segment-only embedding of its width."""
    old = {
        key: value
        for key, value in TINY.to_dict().items()
        if key not in ("pool_lines", "pool_peaks", "wave_min", "wave_max")
    }
    old["pool_segments"] = 8  # every checkpoint before had it
    save_checkpoint(tmp_path, MaskedSpectrumModel(TINY), {"model": old, "metrics": {}})
    encoder = load_checkpoint(tmp_path)
    assert not encoder.config.pool_lines and encoder.config.embedding_width == 8 * TINY.d_model
    flux, valid, _ = toy_survey(n=2)
    assert embed(encoder, flux, valid, [0.1, 0.2]).shape == (2, 8 * 16)


def test_a_checkpoint_from_before_peaks_embeds_as_its_knowledge_bases_were_built(tmp_path):
    """Its config.json has ``pool_lines`` but no ``pool_peaks``: the line windows alone, as it was saved."""
    old = {key: value for key, value in TINY.to_dict().items() if key != "pool_peaks"}
    save_checkpoint(tmp_path, MaskedSpectrumModel(TINY), {"model": old, "metrics": {}})
    encoder = load_checkpoint(tmp_path)
    assert encoder.config.pool_lines and not encoder.config.pool_peaks
    assert encoder.config.embedding_width == 6 * TINY.d_model
    flux, valid, _ = toy_survey(n=2)
    assert embed(encoder, flux, valid, [0.1, 0.2]).shape == (2, 6 * 16)


class _Payload:
    """What a hostile training_state.pt would carry: unpickling it runs code (here, touching a file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_training_state_that_would_run_code_is_refused_unrun(tmp_path):
    """training_state.pt may sit on storage every node shares: it is read with weights_only, never unpickled."""
    flux, valid, ivar = toy_survey()
    pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=10), out_dir=tmp_path)
    path = tmp_path / "last" / "training_state.pt"
    saved = torch.load(path, weights_only=True)
    marker = tmp_path / "ran"
    torch.save({**saved, "state": {**saved["state"], "payload": _Payload(marker)}}, path)
    with pytest.raises(pickle.UnpicklingError):
        pretrain(flux, valid, ivar, model_config=TINY, config=config(max_steps=20), out_dir=tmp_path)
    assert not marker.exists()
