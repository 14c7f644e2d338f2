from dataclasses import replace

import numpy as np
import pytest
import torch

from kb.preprocess import wave_grid
from training.model import (
    LINE_MARGIN,
    LINE_WINDOWS_REST,
    EncoderConfig,
    GalSpecEncoder,
    MaskedSpectrumModel,
    fill_gaps,
    interpolation_baseline,
    pad,
    patchify,
    span_mask,
    unpatchify,
)

TINY = EncoderConfig(n_pixels=200, d_model=16, n_layers=1, n_heads=2)


def spectra(n=4, length=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    flux = 1 + 0.1 * torch.randn(n, length, generator=generator)
    return flux, torch.ones(n, length, dtype=torch.bool)


def test_paper_patching_pads_two_invalid_pixels_for_736_patches():
    paper = EncoderConfig()
    assert (paper.stride, paper.n_patches, paper.padded_pixels) == (5, 736, 3690)
    flux, valid = pad(torch.ones(1, 3688), torch.ones(1, 3688, dtype=torch.bool), paper)
    assert flux.shape == (1, 3690) and not valid[0, -2:].any() and valid[0, :-2].all()


def test_patchify_then_unpatchify_returns_the_input():
    x = torch.randn(3, TINY.padded_pixels)
    patches = patchify(x, TINY)
    assert patches.shape == (3, TINY.n_patches, 15)
    assert torch.equal(patches[:, 1, :10], patches[:, 0, 5:])  # neighbours overlap by 10 pixels
    torch.testing.assert_close(unpatchify(patches, TINY), x)


def test_mask_ratio_holds_and_spans_are_contiguous():
    hidden = span_mask((8, 3688), mask_ratio=0.25, span=20, generator=torch.Generator().manual_seed(1))
    ratio = hidden.float().mean(dim=1)
    assert torch.all((ratio - 0.25).abs() < 0.01)
    starts = (hidden[:, 1:] & ~hidden[:, :-1]).sum(dim=1)  # hidden stretches per spectrum
    assert torch.all(starts <= 0.25 * 3688 / 20 + 1)
    again = span_mask((8, 3688), mask_ratio=0.25, span=20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(hidden, again)


def test_hidden_pixels_never_reach_the_model():
    torch.manual_seed(0)
    model = MaskedSpectrumModel(TINY).eval()
    flux, valid = spectra()
    hidden = span_mask(flux.shape, mask_ratio=0.25, span=10, generator=torch.Generator().manual_seed(2))
    changed = flux.clone()
    changed[hidden] = 1e3  # anything at all under the mask
    _, prediction = model.forward_loss(flux, valid, hidden)
    _, prediction_changed = model.forward_loss(changed, valid, hidden)
    torch.testing.assert_close(prediction, prediction_changed)
    # but the visible pixels do matter
    visible_changed = flux.clone()
    visible_changed[~hidden] += 1.0
    _, prediction_visible = model.forward_loss(visible_changed, valid, hidden)
    assert not torch.allclose(prediction, prediction_visible)


def test_loss_counts_only_hidden_valid_pixels():
    torch.manual_seed(0)
    model = MaskedSpectrumModel(TINY).eval()
    flux, valid = spectra()
    hidden = torch.zeros_like(valid)
    hidden[:, 50:80] = True
    valid[:, 60:70] = False  # a gap inside the hidden span: never scored
    loss, prediction = model.forward_loss(flux, valid, hidden)
    scored = hidden & valid
    torch.testing.assert_close(loss, ((prediction - flux) ** 2)[scored].mean())
    ivar = torch.rand(flux.shape)
    weighted, _ = model.forward_loss(flux, valid, hidden, ivar)  # each spectrum's chi-squared per hidden pixel
    chi2 = [((prediction[i] - flux[i]) ** 2 * ivar[i])[scored[i]].mean() for i in range(len(flux))]
    torch.testing.assert_close(weighted, torch.stack(chi2).mean())


def test_embedding_ignores_patches_outside_the_observed_range():
    torch.manual_seed(0)
    encoder = GalSpecEncoder(TINY).eval()
    flux, valid = spectra(n=1)
    tokens, observed = encoder.forward_tokens(flux, valid)
    assert tokens.shape == (1, TINY.n_patches, 16) and observed.all()
    valid[:, 150:] = False
    _, observed = encoder.forward_tokens(flux, valid)
    assert not observed[0, -5:].any() and observed[0, :25].all()


def test_wrong_input_length_is_a_readable_error():
    encoder = GalSpecEncoder(TINY)
    with pytest.raises(ValueError, match=r"Input length \(3700\) doesn't match model \(200\)"):
        encoder.forward_features(torch.ones(1, 3700), torch.ones(1, 3700, dtype=torch.bool))


def test_gaps_are_filled_like_numpy_interp():
    rng = np.random.default_rng(0)
    flux = rng.normal(size=(3, 60)).astype(np.float32)
    visible = rng.random((3, 60)) > 0.4
    visible[1, :10] = False  # a gap at the blue end: the nearest visible pixel carries over
    filled = fill_gaps(torch.from_numpy(flux), torch.from_numpy(visible)).numpy()
    x = np.arange(60)
    for i in range(3):
        np.testing.assert_allclose(filled[i], np.interp(x, x[visible[i]], flux[i][visible[i]]), rtol=1e-5, atol=1e-6)
    assert np.all(fill_gaps(torch.ones(1, 5), torch.zeros(1, 5, dtype=torch.bool)).numpy() == 0)


def test_an_untrained_model_reconstructs_exactly_the_interpolation():
    model = MaskedSpectrumModel(TINY).eval()
    flux, valid = spectra()
    hidden = span_mask(flux.shape, mask_ratio=0.25, span=10, generator=torch.Generator().manual_seed(3))
    _, prediction = model.forward_loss(flux, valid, hidden)
    expected = interpolation_baseline(flux.numpy(), valid.numpy(), hidden.numpy())
    np.testing.assert_allclose(prediction.detach().numpy(), expected, atol=1e-6)


def test_interpolation_baseline_is_exact_on_straight_lines():
    x = np.arange(100, dtype=np.float32)
    flux = np.stack([2 + 0.01 * x, 5 - 0.03 * x])
    valid = np.ones_like(flux, dtype=bool)
    hidden = np.zeros_like(valid)
    hidden[:, 30:60] = True
    valid[0, 10:20] = False
    guess = interpolation_baseline(flux, valid, hidden)
    np.testing.assert_allclose(guess[hidden], flux[hidden], rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda_matches_fp32():
    torch.manual_seed(0)
    encoder = GalSpecEncoder(EncoderConfig()).cuda().eval()
    flux, valid = torch.ones(3, 3688, device="cuda"), torch.ones(3, 3688, dtype=torch.bool, device="cuda")
    valid[1, :1000] = False  # partly observed
    valid[2] = False  # not at all: every pooling gives zeros
    z = torch.tensor([0.05, 0.3, 0.1], device="cuda")
    with torch.no_grad():
        full = encoder.forward_features(flux, valid, z)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = encoder.forward_features(flux, valid, z).float()
    assert torch.isfinite(half).all() and torch.all(half[2] == 0)
    assert torch.nn.functional.cosine_similarity(full[:2], half[:2]).min() > 0.99


def test_the_embedding_is_the_mean_token_of_each_stretch_of_the_grid():
    config = EncoderConfig(
        n_pixels=200, d_model=16, n_layers=1, n_heads=2, pool_segments=4, pool_lines=False, pool_peaks=False
    )
    encoder = GalSpecEncoder(config).eval()
    flux, valid = spectra(2)
    valid[1, :60] = False  # the first stretch of the second spectrum is never observed
    with torch.no_grad():
        embedding = encoder.forward_features(flux, valid)
        tokens, observed = encoder.forward_tokens(flux, valid)
    assert embedding.shape == (2, config.embedding_width) == (2, 64)
    P = config.n_patches
    for g in range(4):
        stretch = torch.arange(P) * 4 // P == g  # four contiguous stretches of (nearly) equal length
        kept = observed[0, stretch]
        np.testing.assert_allclose(embedding[0, g * 16 : (g + 1) * 16], tokens[0, stretch][kept].mean(0), atol=1e-5)
    assert not observed[1, torch.arange(P) * 4 // P == 0].any() and torch.all(embedding[1, :16] == 0)


def test_the_line_windows_are_the_mean_token_around_each_line_at_the_spectrum_redshift():
    """The W line-window parts follow the G segment parts; each is the mean observed token of the patches
    whose centres lie in the window moved to z (within LINE_MARGIN), zeros where none is observed."""
    config = EncoderConfig(d_model=8, n_layers=1, n_heads=2, pool_segments=2, pool_peaks=False)  # the paper's grid
    encoder = GalSpecEncoder(config).eval()
    flux, valid = spectra(3, length=config.n_pixels)
    valid[2, 2500:] = False  # the red end of the third spectrum is unobserved: its [S II] window is empty
    z = torch.tensor([0.0, 0.1, 0.1])
    with torch.no_grad():
        embedding = encoder.forward_features(flux, valid, z)
        tokens, observed = encoder.forward_tokens(flux, valid)
    W, D = len(LINE_WINDOWS_REST), 8
    assert embedding.shape == (3, config.embedding_width) == (3, (2 + W) * D)
    centres = torch.from_numpy(wave_grid()[np.arange(config.n_patches) * 5 + 7])  # each patch's middle pixel
    for n in range(3):
        for w, (lo, hi) in enumerate(LINE_WINDOWS_REST.values()):
            inside = (centres >= lo * (1 + z[n]) - LINE_MARGIN) & (centres <= hi * (1 + z[n]) + LINE_MARGIN)
            part = embedding[n, (2 + w) * D : (3 + w) * D]
            if (inside & observed[n]).any():
                np.testing.assert_allclose(part, tokens[n, inside & observed[n]].mean(0), atol=1e-5)
            else:
                assert torch.all(part == 0)
    oii = slice(2 * D, 3 * D)  # [O II] 3727 is blue of the grid at z = 0 and on it at z = 0.1
    assert torch.all(embedding[0, oii] == 0) and torch.any(embedding[1, oii] != 0)
    sii = slice((2 + W - 1) * D, (2 + W) * D)
    assert torch.any(embedding[1, sii] != 0) and torch.all(embedding[2, sii] == 0)


def test_peaks_are_each_channel_maximum_over_the_observed_tokens():
    """With ``pool_peaks`` the embedding ends with each channel's largest value over the observed patches,
    wherever along the grid it lies; zeros for a spectrum with none observed."""
    torch.manual_seed(0)
    config = EncoderConfig(
        n_pixels=200, d_model=16, n_layers=1, n_heads=2, pool_segments=2, pool_lines=False, pool_peaks=False
    )
    peaked = GalSpecEncoder(replace(config, pool_peaks=True)).eval()
    flux, valid = spectra(3)
    valid[1, :120] = False
    valid[2] = False
    with torch.no_grad():
        embedding = peaked.forward_features(flux, valid)
        tokens, observed = peaked.forward_tokens(flux, valid)
    assert embedding.shape == (3, peaked.config.embedding_width) == (3, 3 * 16)
    for n in range(2):
        np.testing.assert_allclose(embedding[n, 32:], tokens[n, observed[n]].max(0).values, atol=1e-6)
    assert observed[1, :10].logical_not().all() and torch.all(embedding[2] == 0)
    assert not torch.equal(tokens[1].max(0).values, embedding[1, 32:])  # unobserved patches never count
    alone = GalSpecEncoder(replace(config, pool_segments=0, pool_peaks=True)).eval()  # no mean at all
    alone.load_state_dict(peaked.state_dict())
    with torch.no_grad():
        assert torch.equal(alone.forward_features(flux, valid), embedding[:, 32:])
    plain = GalSpecEncoder(config).eval()
    plain.load_state_dict(peaked.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.forward_features(flux, valid), embedding[:, :32])  # the means are unchanged


def test_line_windows_need_the_redshift_and_an_embedding_needs_a_pooling():
    encoder = GalSpecEncoder(TINY)
    with pytest.raises(ValueError, match="needs each spectrum's redshift"):
        encoder.forward_features(*spectra(1))
    with pytest.raises(ValueError, match="pool_segments > 0, pool_lines or pool_peaks"):
        EncoderConfig(pool_segments=0, pool_lines=False, pool_peaks=False)
