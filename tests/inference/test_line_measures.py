import numpy as np
import pytest

from inference.line_measures import BUMPS, FEATURES, LINES, STELLAR, WAVE, line_features, measure_lines
from inference.representation import ENCODER_LINES, represent
from inference.representation import LINES as LINE_REPRESENTATION
from kb.line_indices import index_ew

Z = 0.1
LINER = {"H-alpha": 20.0, "[N II] 6583": 30.0, "H-beta": 6.0, "[O III] 5007": 9.0, "[S II] 6716": 8.0}
STAR_FORMING = {"H-alpha": 60.0, "[N II] 6583": 15.0, "H-beta": 20.0, "[O III] 5007": 10.0, "[S II] 6716": 8.0}


def _spectrum(
    lines: dict[str, float],
    *,
    z: float = Z,
    noise: float = 0.03,
    seed: int = 0,
    sigma_kms=100.0,
    stars_kms=None,
    bump: float = 0.0,
):
    """(L,) a tilted continuum near 1 with Gaussian ``lines`` ({name: flux, normalised flux x Angstrom}); with
    ``stars_kms``, STELLAR's absorption lines (3 Angstrom each) that broad; with ``bump``, a Wolf-Rayet blue
    bump of that flux."""
    flux = 1.2 - WAVE / 20000.0
    for name, total in lines.items():
        flux = flux + _gaussians(LINES[name], total, z, np.hypot(sigma_kms, 70.0))
    for rest in STELLAR.values() if stars_kms else ():
        flux = flux - _gaussians(rest, 3.0, z, np.hypot(stars_kms, 70.0))
    if bump:
        flux = flux + _gaussians(BUMPS["Wolf-Rayet blue bump"], bump, z, np.hypot(800.0, 70.0))
    return flux + np.random.default_rng(seed).normal(0, noise, len(WAVE))


def _gaussians(rest: tuple[float, ...], total: float, z: float, sigma_kms: float) -> np.ndarray:
    """(L,) Gaussians at the ``rest`` wavelengths sharing flux ``total``."""
    flux = np.zeros(len(WAVE))
    for centre in np.array(rest) * (1 + z):
        sigma = centre * sigma_kms / 299_792.458
        flux += total / len(rest) * np.exp(-0.5 * ((WAVE - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return flux


def _ivar(n: int = 1, noise: float = 0.03) -> np.ndarray:
    return np.full((n, len(WAVE)), 1 / noise**2)


def _feature(row: np.ndarray, name: str) -> float:
    return float(row[FEATURES.index(name)])


def test_the_lines_fluxes_and_errors_are_measured_from_the_pixels():
    fluxes, errors, width, *_ = measure_lines(_spectrum(LINER), np.ones(len(WAVE), bool), Z, _ivar()[0])
    measured = dict(zip(LINES, zip(fluxes, errors)))
    for name, total in LINER.items():
        flux, error = measured[name]
        assert flux == pytest.approx(total, rel=0.1), name
        assert 0 < error < 0.05 * total, name
    absent = measured["He II 4686"]
    assert abs(absent[0]) < 4 * absent[1]  # a line not there is measured at its noise
    assert width == pytest.approx(100.0, rel=0.4)


def test_the_bpt_ratios_separate_a_liner_from_a_star_forming_galaxy():
    valid = np.ones((2, len(WAVE)), bool)
    liner, star_forming = line_features(
        np.stack([_spectrum(LINER), _spectrum(STAR_FORMING)]), valid, np.full(2, Z), _ivar(2)
    )
    n2 = "log [N II] 6583 / H-alpha"
    assert _feature(liner, n2) == pytest.approx(np.log10(30 / 20), abs=0.05)
    assert _feature(star_forming, n2) == pytest.approx(np.log10(15 / 60), abs=0.05)
    o3 = "log [O III] 5007 / H-beta"
    assert _feature(liner, o3) == pytest.approx(np.log10(9 / 6), abs=0.05)


def test_a_line_not_seen_counts_its_error_so_a_quiet_galaxy_has_no_wild_ratios():
    flux, valid = _spectrum({}, noise=0.05)[None], np.ones((1, len(WAVE)), bool)
    quiet = line_features(flux, valid, np.array([Z]), _ivar(1, 0.05))[0]
    assert all(abs(_feature(quiet, name)) < 1.0 for name in FEATURES if name.startswith("log ["))
    assert all(abs(_feature(quiet, name)) < 2.5 for name in FEATURES if name.startswith("asinh"))


def test_the_absorption_lines_width_follows_the_stars_dispersion():
    valid, ivar = np.ones(len(WAVE), bool), _ivar()[0]
    widths = [measure_lines(_spectrum({}, stars_kms=kms), valid, Z, ivar).stellar_width for kms in (100, 200, 400)]
    assert widths == pytest.approx([100, 200, 400], rel=0.15)
    assert measure_lines(_spectrum({}, stars_kms=200), valid, Z, ivar).stellar_snr > 20
    assert measure_lines(_spectrum({}), valid, Z, ivar).stellar_snr < 5  # no stars' lines: nothing seen
    quiet, massive = line_features(
        np.stack([_spectrum({}), _spectrum({}, stars_kms=400)]), np.ones((2, len(WAVE)), bool), np.full(2, Z), _ivar(2)
    )
    name = "log absorption-line width / 200 km/s"
    assert abs(_feature(quiet, name)) < 0.15 < _feature(massive, name)  # faded to 0 where no line is seen


def test_a_post_starbursts_deep_balmer_absorption_is_measured_as_the_e_plus_a_catalogs_do():
    young = _spectrum({"H-beta": 2.0}, seed=1)
    for name in ("H-delta", "H-gamma", "H-beta"):  # 6 Angstrom rest EW troughs, A stars' breadth
        level = 1.2 - LINES[name][0] * (1 + Z) / 20000.0  # the continuum there
        young -= _gaussians(LINES[name], 6.0 * (1 + Z) * level, Z, 900.0)
    flux, valid = np.stack([young, _spectrum({"H-beta": 2.0}, seed=1)]), np.ones((2, len(WAVE)), bool)
    rows = line_features(flux, valid, np.full(2, Z), _ivar(2))
    deep, plain = rows[:, FEATURES.index("H_delta index EW / 5 Angstrom")]
    assert deep == pytest.approx(index_ew(WAVE, young, _ivar()[0], Z, "H_delta") / 5, rel=1e-5)  # Goto's windows
    assert deep > 0.8 > 0.1 > abs(plain)  # most of the 6 Angstrom falls in the 40 Angstrom band
    assert _feature(rows[0], "asinh(S/N H-beta / 2)") > 2.0  # the emission on top of the trough is measured too


def test_a_wolf_rayet_bump_is_seen_where_it_is_and_only_there():
    name = "asinh(S/N Wolf-Rayet blue bump / 2)"
    flux = np.stack([_spectrum(STAR_FORMING, bump=10.0, seed=s) for s in range(3)])
    plain = np.stack([_spectrum(STAR_FORMING, seed=s) for s in range(3)])
    valid = np.ones((6, len(WAVE)), bool)
    rows = line_features(np.vstack([flux, plain]), valid, np.full(6, Z), _ivar(6))
    assert all(_feature(row, name) > 2.0 for row in rows[:3])  # S/N over 7
    assert all(abs(_feature(row, name)) < 1.5 for row in rows[3:])  # S/N within 4 of nothing
    measured = measure_lines(flux[0], valid[0], Z, _ivar()[0])
    assert measured.fluxes[len(LINES)] == pytest.approx(10.0, rel=0.25)


def test_a_line_off_the_grid_or_unobserved_has_no_snr_and_no_ratio():
    z = 0.45  # H-alpha and [N II] at 9500 Angstrom: past the grid's 9000
    flux = _spectrum({"H-beta": 10.0, "[O III] 5007": 20.0}, z=z)[None]
    valid = np.ones_like(flux, bool)
    row = line_features(flux, valid, np.array([z]), _ivar())[0]
    assert _feature(row, "asinh(S/N H-alpha / 2)") == 0.0
    assert _feature(row, "log [N II] 6583 / H-alpha") == 0.0
    assert _feature(row, "asinh(S/N [O III] 5007 / 2)") > 3.0
    hidden = valid.copy()
    centre = LINES["[O III] 5007"][0] * (1 + z)
    hidden[0, np.abs(WAVE - centre) < 30] = False
    assert line_features(flux, hidden, np.array([z]), _ivar())[0, FEATURES.index("asinh(S/N [O III] 5007 / 2)")] == 0.0
    unweighed = _ivar()
    unweighed[0, np.abs(WAVE - centre) < 30] = 0.0  # no inverse variance: as good as unobserved
    assert line_features(flux, valid, np.array([z]), unweighed)[0, FEATURES.index("asinh(S/N [O III] 5007 / 2)")] == 0.0


def test_more_dust_leaves_the_ratios_of_near_lines_as_they_were():
    flux = _spectrum(LINER)
    dimmed = flux * (WAVE / 6000.0) ** -1.5  # a smooth tilt: more dust, or another flux calibration
    valid = np.ones((2, len(WAVE)), bool)
    ivar = np.stack([_ivar()[0], _ivar()[0] / ((WAVE / 6000.0) ** -1.5) ** 2])
    plain, tilted = line_features(np.stack([flux, dimmed]), valid, np.full(2, Z), ivar)
    for name in ("log [N II] 6583 / H-alpha", "log [O III] 5007 / H-beta"):
        assert _feature(tilted, name) == pytest.approx(_feature(plain, name), abs=0.03)


def test_the_representation_named_lines_is_the_line_features():
    flux, valid, z, ivar = _spectrum(LINER)[None], np.ones((1, len(WAVE)), bool), np.array([Z]), _ivar()
    lines = line_features(flux, valid, z, ivar)
    np.testing.assert_array_equal(represent(LINE_REPRESENTATION, None, flux, valid, z, ivar), lines)
    beside = represent(ENCODER_LINES, np.ones((1, 4)), flux, valid, z, ivar, window_scale=2.0)
    np.testing.assert_allclose(beside, np.hstack([np.ones((1, 4)), 2.0 * lines]), rtol=1e-6)
    with pytest.raises(ValueError, match="needs the flux"):
        represent(LINE_REPRESENTATION, embedding=np.zeros((1, 4)))
    with pytest.raises(ValueError, match="inverse variance"):
        represent(LINE_REPRESENTATION, None, flux, valid, z)


def test_wrong_shapes_are_refused_with_what_was_given():
    with pytest.raises(ValueError, match="3688"):
        line_features(np.ones((1, 100)), np.ones((1, 100), bool), np.array([0.1]), np.ones((1, 100)))
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        line_features(np.ones(len(WAVE)), np.ones(len(WAVE), bool), np.array([0.1]), np.ones(len(WAVE)))
    with pytest.raises(ValueError, match="ivar"):
        line_features(np.ones((1, len(WAVE))), np.ones((1, len(WAVE)), bool), np.array([0.1]), np.ones((1, 5)))
