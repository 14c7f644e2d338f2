"""Embeddings are computed in full precision on every device: a knowledge base built on a GPU and a query
embedded on a CPU meet in the same space."""

import numpy as np
import pytest
import torch

from inference import index as vector_index
from inference.embed import embed, probe_hidden, reconstruction_chi2
from training.model import EncoderConfig, GalSpecEncoder, MaskedSpectrumModel

TINY = EncoderConfig(n_pixels=400, d_model=32, n_layers=2, n_heads=2, pool_segments=4)


def spectra(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, TINY.n_pixels)
    flux = 1 + rng.normal(0, 0.3, (n, 1)) * x + rng.normal(0, 0.05, (n, TINY.n_pixels))
    return flux.astype(np.float32), rng.random((n, TINY.n_pixels)) > 0.05, rng.uniform(0.02, 0.3, n)


def test_embeddings_are_float32_batch_by_batch_as_one_batch():
    torch.manual_seed(0)
    model = GalSpecEncoder(TINY)
    flux, valid, z = spectra(10)
    vectors = embed(model, flux, valid, z, batch_size=3)
    assert vectors.dtype == np.float32 and vectors.shape == (10, TINY.embedding_width)
    np.testing.assert_allclose(vectors, embed(model, flux, valid, z, batch_size=10), rtol=1e-5, atol=1e-6)


def test_embedding_never_runs_under_autocast(monkeypatch):
    """No reduced precision on any device: not even a disabled autocast is entered."""
    entered = []

    class Recorded(torch.autocast):
        def __enter__(self):
            entered.append(self.fast_dtype)
            return super().__enter__()

    monkeypatch.setattr(torch, "autocast", Recorded)
    embed(GalSpecEncoder(TINY), *spectra(4))
    assert entered == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_embeds_as_the_cpu_does():
    """The same neighbours whichever device embedded the knowledge base and the queries."""
    torch.manual_seed(0)
    model = GalSpecEncoder(EncoderConfig())  # the paper's grid of 3688 pixels
    rng = np.random.default_rng(1)
    flux = (1 + rng.normal(0, 0.3, (300, 1)) * np.linspace(0, 1, 3688) + rng.normal(0, 0.05, (300, 3688))).astype(
        np.float32
    )
    valid = rng.random((300, 3688)) > 0.05
    z = rng.uniform(0.02, 0.7, 300)
    on_cpu = embed(model, flux, valid, z)
    on_gpu = embed(model.cuda(), flux, valid, z)
    cosine = (on_cpu * on_gpu).sum(1) / np.linalg.norm(on_cpu, axis=1) / np.linalg.norm(on_gpu, axis=1)
    assert cosine.min() > 0.9999
    ids = np.arange(200, dtype=np.int64)
    cpu_kb, gpu_kb = vector_index.build(on_cpu[:200], ids), vector_index.build(on_gpu[:200], ids)
    cpu_top3 = vector_index.search(cpu_kb, on_cpu[200:], 3).ids
    mixed_top3 = vector_index.search(gpu_kb, on_cpu[200:], 3).ids  # a GPU-built KB queried from a CPU
    same = np.mean([set(a) == set(b) for a, b in zip(cpu_top3, mixed_top3)])
    assert same >= 0.99


def test_reconstruction_chi2_is_near_the_noise_for_a_smooth_spectrum_and_far_above_it_shuffled():
    """An untrained masked model reconstructs by interpolation alone: on a smooth continuum with Gaussian
    noise and its true ivar that scores a median chi-squared below 1; the same pixels shuffled, far more."""
    torch.manual_seed(0)
    model = MaskedSpectrumModel(TINY)
    rng = np.random.default_rng(2)
    x = np.linspace(0, 1, TINY.n_pixels)
    flux = (1 + 0.8 * x + rng.normal(0, 0.05, (3, TINY.n_pixels))).astype(np.float32)
    valid = np.ones_like(flux, dtype=bool)
    ivar = np.full_like(flux, 1 / 0.05**2)
    flux[1] = rng.permutation(flux[1])
    valid[2, probe_hidden(TINY.n_pixels)] = False  # none of the probed pixels observed: nothing to score
    chi2 = reconstruction_chi2(model, flux, valid, ivar, batch_size=2)
    assert chi2.shape == (3,) and chi2.dtype == np.float32
    assert 0.2 < chi2[0] < 1.5 and chi2[1] > 10 and np.isnan(chi2[2])
    assert probe_hidden(TINY.n_pixels).mean() == pytest.approx(0.25, abs=0.01)
