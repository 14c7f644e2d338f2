"""The eigen-continuum: learnt from quiet spectra, it puts the stars' absorption back under the emission
lines, where a running median leaves H-beta short."""

import numpy as np
import pytest

from inference.continuum import MIN_SPECTRA, fit_eigen_continuum
from inference.line_measures import LINES, POSITION, WAVE, measure_lines

C_KMS = 299_792.458
METALS = {3934.78: 8.0, 3969.59: 6.0, 4305.0: 3.5, 5176.7: 3.5, 5895.6: 2.0}  # rest Angstrom: EW, old stars
BALMER = (4102.89, 4341.68, 4862.68, 6564.61)


def _stars(z: float, old: float, young: float) -> np.ndarray:
    """(L,) two populations: a red one with metal lines and weak Balmer lines at 150 km/s, a blue one with
    A stars' deep, broad Balmer lines (EW 6 Angstrom, sigma 12 Angstrom)."""
    rest = WAVE / (1 + z)
    red, blue = (rest / 5500.0) ** 1.0, (rest / 5500.0) ** -1.5
    for centre, ew, sigma, into in (
        *((c, ew, c * 150.0 / C_KMS, "red") for c, ew in METALS.items()),
        *((c, 1.0, c * 150.0 / C_KMS, "red") for c in BALMER),
        *((c, 6.0, 12.0, "blue") for c in BALMER),
    ):
        shape = ew * np.exp(-0.5 * ((rest - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
        red, blue = (red * (1 - shape), blue) if into == "red" else (red, blue * (1 - shape))
    return old * red + young * blue


def _lines(z: float, fluxes: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(WAVE))
    for name, total in fluxes.items():
        centre = LINES[name][0] * (1 + z)
        sigma = centre * np.hypot(150.0, 70.0) / C_KMS
        out += total * np.exp(-0.5 * ((WAVE - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return out


def _quiet(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    z = rng.uniform(0.02, 0.2, n)
    mix = rng.uniform(0.0, 1.0, n)
    flux = np.stack([_stars(zi, 1 - m, m) for zi, m in zip(z, mix)]) + rng.normal(0, 0.01, (n, len(WAVE)))
    return flux, z


def test_h_beta_over_the_stars_absorption_is_measured_whole_under_the_eigen_continuum():
    rng = np.random.default_rng(0)
    flux, z = _quiet(80, rng)
    eigen = fit_eigen_continuum(WAVE, flux, np.ones_like(flux, bool), z)
    emission = {"H-beta": 3.0, "H-alpha": 9.0, "[O III] 5007": 3.0, "[N II] 6583": 3.0}
    galaxy = _stars(0.1, 0.4, 0.6) + _lines(0.1, emission) + rng.normal(0, 0.01, len(WAVE))
    valid, ivar = np.ones(len(WAVE), bool), np.full(len(WAVE), 1e4)

    plain = measure_lines(galaxy, valid, 0.1, ivar).fluxes[POSITION["H-beta"]]
    learnt = measure_lines(galaxy, valid, 0.1, ivar, eigen).fluxes[POSITION["H-beta"]]

    assert learnt == pytest.approx(3.0, rel=0.05)
    assert plain < 0.9 * 3.0  # the running median takes the absorption for missing emission
    assert eigen.digest == fit_eigen_continuum(WAVE, flux, np.ones_like(flux, bool), z).digest  # deterministic


def test_too_few_quiet_spectra_are_refused():
    flux, z = _quiet(MIN_SPECTRA - 1, np.random.default_rng(1))
    with pytest.raises(ValueError, match=f"at least {MIN_SPECTRA}"):
        fit_eigen_continuum(WAVE, flux, np.ones_like(flux, bool), z)
