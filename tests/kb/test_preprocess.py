import astropy.units as u
import numpy as np
import pytest
from specutils import Spectrum
from specutils.manipulation import LinearInterpolatedResampler

from kb.preprocess import PAPER, PreprocessError, normalisation, preprocess, resample, resample_ivar, wave_grid
from kb.spectra import read_spectrum


def test_the_grid_is_the_papers():
    grid = wave_grid()
    assert grid.shape == (3688,)
    assert grid[0] == 3850.0 and grid[-1] == 9000.0
    assert np.allclose(np.diff(grid), (9000 - 3850) / 3687)


def test_resampling_agrees_with_specutils_linear_interpolation(real_spectra):
    spectrum = read_spectrum(real_spectra[0])
    flux, valid = resample(spectrum.wave_obs, spectrum.flux, spectrum.valid)
    reference = LinearInterpolatedResampler(extrapolation_treatment="nan_fill")(
        Spectrum(flux=spectrum.flux * u.Unit("1e-17 erg / (s cm2 Angstrom)"), spectral_axis=spectrum.wave_obs * u.AA),
        wave_grid() * u.AA,
    )
    expected = reference.flux.value
    assert valid.sum() > 3500
    np.testing.assert_allclose(flux[valid], expected[valid], rtol=1e-4, atol=1e-3)


def test_a_grid_pixel_next_to_an_invalid_native_pixel_is_invalid():
    wave = np.linspace(3800, 9200, 5000)
    flux = np.ones_like(wave, dtype=np.float32)
    valid = np.ones_like(wave, dtype=bool)
    valid[2000] = False
    grid_flux, grid_valid = resample(wave, flux, valid)
    grid = wave_grid()
    near = np.abs(grid - wave[2000]) < (wave[1] - wave[0])
    assert near.any() and not grid_valid[near].any()
    assert np.all(grid_flux[~grid_valid] == 0)
    assert grid_valid.sum() == len(grid) - near.sum()


def test_pixels_outside_the_observed_range_are_invalid():
    wave = np.linspace(4500, 8000, 3000)
    flux = np.full(wave.shape, 2.0, dtype=np.float32)
    grid_flux, grid_valid = resample(wave, flux, np.ones(wave.shape, bool))
    grid = wave_grid()
    assert not grid_valid[(grid < 4500) | (grid > 8000)].any()
    assert grid_valid[(grid >= 4500) & (grid <= 8000)].all()
    assert np.allclose(grid_flux[grid_valid], 2.0)


def test_the_inverse_variance_follows_the_interpolation_weights():
    wave = np.linspace(3800, 9200, 2000)  # native pixels 2.7 Angstrom apart: grid points fall between them
    ivar = np.full(wave.shape, 4.0)  # sigma 0.5
    valid = np.ones(wave.shape, bool)
    grid_ivar = resample_ivar(wave, ivar, valid)
    t = (wave_grid() - wave[0]) / (wave[1] - wave[0]) % 1
    expected = 1 / (0.25 * ((1 - t) ** 2 + t**2))
    np.testing.assert_allclose(grid_ivar, expected, rtol=1e-4)  # 4 on a native pixel, 8 half-way
    rng = np.random.default_rng(0)  # and it is the variance interpolated noise really has
    draws = np.array([resample(wave, rng.normal(0, 0.5, wave.shape), valid)[0] for _ in range(400)])
    assert np.median(draws.var(axis=0) * grid_ivar) == pytest.approx(1.0, abs=0.05)


def test_the_stored_inverse_variance_is_in_normalised_units(real_spectra):
    spectrum = read_spectrum(real_spectra[0])
    result = preprocess(spectrum.wave_obs, spectrum.flux, spectrum.ivar, spectrum.valid, spectrum.z)
    raw = resample_ivar(spectrum.wave_obs, spectrum.ivar, spectrum.valid)
    np.testing.assert_allclose(result.ivar[result.valid], raw[result.valid] * result.norm**2, rtol=1e-5)
    assert np.all(result.ivar[~result.valid] == 0) and np.all(result.ivar[result.valid] > 0)
    snr = np.median(result.flux[result.valid] * np.sqrt(result.ivar[result.valid]))
    assert 2 < snr < 100  # per grid pixel, as SDSS galaxies are


def test_normalised_flux_has_median_one_in_the_rest_frame_window(real_spectra):
    for path in real_spectra:
        spectrum = read_spectrum(path)
        result = preprocess(spectrum.wave_obs, spectrum.flux, spectrum.ivar, spectrum.valid, spectrum.z)
        lo, hi = 5300 * (1 + spectrum.z), 5850 * (1 + spectrum.z)
        window = result.valid & (wave_grid() >= lo) & (wave_grid() <= hi)
        assert np.median(result.flux[window]) == pytest.approx(1.0, abs=1e-5)
        assert result.norm > 0 and result.flux.dtype == np.float32


def test_normalisation_window_moves_with_redshift():
    grid = wave_grid()
    flux = np.where(grid < 6500, 1.0, 3.0).astype(np.float32)  # a step at 6500 Angstrom observed
    valid = np.ones_like(grid, dtype=bool)
    assert normalisation(flux, valid, 0.0) == 1.0  # window 5300-5850 observed
    assert normalisation(flux, valid, 0.2) == 3.0  # window 6360-7020 observed, mostly red of the step


def test_above_z_069_the_blue_fallback_window_normalises():
    grid = wave_grid()
    flux = np.where(grid < 8500, 2.0, 5.0).astype(np.float32)
    valid = np.ones_like(grid, dtype=bool)
    assert normalisation(flux, valid, 0.65) == 5.0  # window 8745-9652: 183 pixels on the grid, enough
    assert normalisation(flux, valid, 0.75) == 2.0  # window 9275-: none; fallback 8050-8400 observed
    assert normalisation(flux, valid, 0.72) == 2.0  # 5300 x 1.72 = 9116: off the grid


def test_a_spectrum_without_flux_in_the_window_cannot_be_normalised():
    grid = wave_grid()
    valid = (grid < 4500) | (grid > 6000)  # neither window
    with pytest.raises(PreprocessError, match="0 in rest-frame 5300-5850 .* and 0 in rest-frame 4600-4800"):
        normalisation(np.ones_like(grid), valid, 0.0)
    with pytest.raises(PreprocessError, match="not positive"):
        normalisation(-np.ones_like(grid), np.ones_like(grid, dtype=bool), 0.0)


def test_config_round_trips_through_a_dict():
    assert type(PAPER).from_dict(PAPER.to_dict()) == PAPER
