import numpy as np
import pytest

from experiments import restframe
from kb.preprocess import PAPER, wave_grid

WAVE = wave_grid(PAPER)


def _line(z, rest=5008.24):
    flux = 1 + 5 * np.exp(-0.5 * ((WAVE - rest * (1 + z)) / 2.0) ** 2)
    return flux.astype(np.float32)


def test_a_line_lands_on_the_same_rest_pixel_at_any_redshift():
    z = np.array([0.05, 0.3])
    flux = np.stack([_line(0.05), _line(0.3)])
    rest, valid = restframe.rest_frame(flux, np.ones_like(flux, bool), z)
    peaks = restframe.REST[np.argmax(rest, axis=1)]
    assert peaks == pytest.approx([5008.24, 5008.24], abs=restframe.STEP)
    assert valid.any(axis=1).all()


def test_rest_pixels_outside_the_observed_range_or_masked_are_zero_and_invalid():
    flux = np.stack([_line(0.1)])
    valid = np.ones_like(flux, bool)
    valid[0, 1000:1010] = False
    rest, seen = restframe.rest_frame(flux, valid, np.array([0.1]))
    observed = restframe.REST * 1.1
    assert not seen[0, (observed < PAPER.wave_min - 1) | (observed > PAPER.wave_max + 1)].any()
    masked = (observed > WAVE[1000]) & (observed < WAVE[1009])
    assert not seen[0, masked].any() and (rest[0, ~seen[0]] == 0).all()


def test_window_flux_samples_the_encoders_line_windows():
    flux = np.stack([_line(0.05), _line(0.2)])
    windows = restframe.window_flux(flux, np.ones_like(flux, bool), np.array([0.05, 0.2]))
    assert windows.shape == (2, len(restframe.WINDOWS))
    o3 = np.argmin(np.abs(restframe.WINDOWS - 5008.0))
    assert np.argmax(windows[0]) == np.argmax(windows[1]) == pytest.approx(o3, abs=1)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="pixels; the model's grid has 3688"):
        restframe.rest_frame(np.ones((1, 10), np.float32), np.ones((1, 10), bool), np.array([0.1]))
