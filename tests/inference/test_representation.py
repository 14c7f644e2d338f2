import numpy as np
import pytest

from inference.representation import (
    BOTH,
    ENCODER,
    OBSERVED,
    REST_SPAN,
    RESTFRAME,
    WINDOW,
    WINDOWS,
    represent,
    restframe_lines,
    sample_rest,
    window_flux,
    window_scale_fit,
)


def _galaxy(z: float) -> np.ndarray:
    """(L,) a blue continuum with [O II], H-beta, [O III] and H-alpha in emission and Na D in absorption at
    redshift ``z``."""
    rest = OBSERVED / (1 + z)
    flux = 1.5 - rest / 9000.0
    for line, height in ((3727.0, 2.0), (4861.0, 1.0), (5007.0, 3.0), (6563.0, 4.0), (5893.0, -0.3)):
        flux = flux + height * np.exp(-0.5 * ((rest - line) / 2.5) ** 2)
    return flux.astype(np.float32)


def test_each_window_is_its_own_continuum_so_more_dust_leaves_the_windows_as_they_are():
    z = np.array([0.05, 0.12])
    flux = np.stack([_galaxy(0.05), _galaxy(0.12)])
    valid = np.ones_like(flux, bool)
    dimmed = flux * (OBSERVED / 6000.0) ** 1.5  # a smooth tilt: more dust, or another flux calibration
    np.testing.assert_allclose(window_flux(dimmed, valid, z), window_flux(flux, valid, z), rtol=0.02, atol=0.02)
    raw, _ = sample_rest(dimmed, valid, z, WINDOWS)  # the windows read plainly do change
    assert not np.allclose(raw, sample_rest(flux, valid, z, WINDOWS)[0], rtol=0.1)
    o3 = np.argmin(np.abs(WINDOWS - 5007.0))
    assert window_flux(flux, valid, z)[0, o3] > 2.0  # the line stands over its window's continuum, at 1


def test_the_rest_frame_spectrum_over_its_continuum_sees_lines_between_the_windows_whatever_the_dust():
    z = np.array([0.05, 0.12])
    flux = np.stack([_galaxy(0.05), _galaxy(0.12)])
    valid = np.ones_like(flux, bool)
    lines = restframe_lines(flux, valid, z)
    at = {name: np.argmin(np.abs(REST_SPAN - wave)) for name, wave in (("o3", 5007.0), ("nad", 5893.0))}
    assert (lines[:, at["o3"]] > 1.0).all() and (lines[:, at["nad"]] < -0.1).all()  # Na D lies in no window
    assert np.median(np.abs(lines)) < 0.01  # the continuum itself is 0
    dimmed = flux * (OBSERVED / 6000.0) ** 1.5
    np.testing.assert_allclose(restframe_lines(dimmed, valid, z), lines, atol=0.03)
    assert represent(RESTFRAME, None, flux, valid, z).shape == (2, len(REST_SPAN))


def test_a_window_not_observed_is_zero_and_divides_nothing():
    flux = _galaxy(0.6)[None]  # [O II] at 5960 A is seen; H-alpha at 10500 A is past the grid
    windows = window_flux(flux, np.ones_like(flux, bool), np.array([0.6]))
    assert np.isfinite(windows).all()
    assert (windows[0, WINDOWS > 6500] == 0).all() and (windows[0, WINDOWS < 3750] > 0).all()


def test_the_representations_and_their_errors():
    flux = np.stack([_galaxy(0.1)] * 3)
    valid, z = np.ones_like(flux, bool), np.full(3, 0.1)
    embedding = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    assert represent(ENCODER, embedding) is not None and represent(ENCODER, embedding).shape == (3, 8)
    assert represent(WINDOW, None, flux, valid, z).shape == (3, len(WINDOWS))
    both = represent(BOTH, embedding, flux, valid, z, window_scale=0.5)
    np.testing.assert_allclose(both[:, 8:], 0.5 * window_flux(flux, valid, z))
    with pytest.raises(ValueError, match="needs the flux"):
        represent(WINDOW, embedding)
    with pytest.raises(ValueError, match="needs the embeddings"):
        represent(BOTH, None, flux, valid, z)
    with pytest.raises(ValueError, match="unknown representation 'pixels'"):
        represent("pixels", embedding)


def test_the_window_scale_gives_both_parts_one_length():
    rng = np.random.default_rng(1)
    embedding, windows = 10 * rng.normal(size=(50, 16)), rng.normal(size=(50, 40))
    scale = window_scale_fit(embedding, windows)
    assert np.median(np.linalg.norm(scale * windows, axis=1)) == pytest.approx(
        np.median(np.linalg.norm(embedding, axis=1))
    )
