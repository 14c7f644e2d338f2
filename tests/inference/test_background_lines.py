"""The scan for a second galaxy's emission lines behind a target (BELLS-style), on spectra with known lines."""

import numpy as np
import pytest

from inference.background_lines import (
    C_KMS,
    EITHER,
    LINES,
    QUIET,
    SOURCE_LINES,
    Background,
    BackgroundRule,
    background_scan,
    detected,
    quiet_host,
    rule_target,
)
from kb.preprocess import PAPER, wave_grid

WAVE = wave_grid(PAPER)  # (3688,) observed vacuum Angstrom
HOST_Z = 0.25


def gaussian(centre, sigma_kms, amplitude):
    sigma = centre * sigma_kms / C_KMS
    return amplitude * np.exp(-0.5 * ((WAVE - centre) / sigma) ** 2)


def spectrum(seed, *, z_source=None, amplitude=0.0, host_lines=3.0):
    """A bending continuum with noise of 0.05 a pixel, the host's strong lines at HOST_Z, and (with
    ``z_source``) a source's [O II], H-beta and [O III] of peak ``amplitude``."""
    rng = np.random.default_rng(seed)
    flux = 1 + 0.3 * np.sin(WAVE / 900) + rng.normal(0, 0.05, WAVE.size)
    for rest in (3728.5, 4862.68, 5008.24, 6564.61, 6585.27):
        flux += gaussian(rest * (1 + HOST_Z), 150, host_lines)
    if z_source is not None:
        for name in ("[O II] 3727", "H-beta", "[O III] 5007"):
            for rest, share in SOURCE_LINES[name]:
                flux += gaussian(rest * (1 + z_source), 60, amplitude * share)
    return flux, np.full(WAVE.size, 1 / 0.05**2)


def test_a_source_behind_the_target_is_found_at_its_redshift():
    flux, ivar = spectrum(0, z_source=0.61, amplitude=0.4)
    found = background_scan(WAVE, flux, ivar, HOST_Z)
    assert found.z_source == pytest.approx(0.61, abs=5e-4)
    assert found.snr > 10 and {"[O II] 3727", "H-beta", "[O III] 5007"} <= {n for n, s in found.lines.items() if s > 3}
    assert detected(found, 8.0)


def test_the_targets_own_lines_and_noise_alone_pass_no_rule():
    passed = [detected(background_scan(WAVE, *spectrum(seed), HOST_Z), 8.0) for seed in range(20)]
    assert sum(passed) <= 1  # strong host lines are masked, not taken for a source


def test_one_line_alone_needs_to_be_oii_to_pass():
    lone = Background(z_source=0.7, snr=9.0, lines={"H-beta": 9.0, "[O III] 5007": 0.5})
    assert not detected(lone, 8.0)
    assert detected(Background(z_source=0.7, snr=9.0, lines={"[O II] 3727": 9.0}), 8.0)
    assert detected(Background(z_source=0.7, snr=9.0, lines={"H-beta": 6.0, "[O III] 5007": 6.7}), 8.0)


def test_a_target_with_no_room_behind_it_on_the_grid_has_no_candidate():
    flux, ivar = spectrum(0)
    assert background_scan(WAVE, flux, ivar, 1.5) == Background(None, 0.0)


def test_the_rule_joins_the_vote_as_chosen_either_or_the_lines_alone():
    voted, found = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert rule_target(voted, found, EITHER).tolist() == [True, True, True, False]
    assert rule_target(voted, found, LINES).tolist() == [True, False, True, False]  # a voted lens without lines is not
    with pytest.raises(ValueError, match="either, lines"):
        rule_target(voted, found, "both")


def _line(flux, err):
    return {"flux": flux, "flux_err": err}


def test_a_host_is_quiet_where_its_own_lines_place_it_nowhere_on_the_bpt_diagram():
    strong = {name: _line(10.0, 1.0) for name in ("H_beta", "[O_III] 5007", "H_alpha", "[N_II] 6583")}
    assert not quiet_host(strong)  # all four lines seen: it has emission of its own
    assert quiet_host({**strong, "H_beta": _line(1.0, 1.0)}) and quiet_host({}) and quiet_host(None)


def test_a_rule_for_quiet_hosts_passes_no_candidate_behind_a_galaxy_with_lines_of_its_own():
    candidate = Background(z_source=0.7, snr=12.0, lines={"[O II] 3727": 12.0})
    assert BackgroundRule(threshold=9.0).finds(candidate, quiet=False)
    assert not BackgroundRule(threshold=9.0, hosts=QUIET).finds(candidate, quiet=False)
    assert BackgroundRule(threshold=9.0, hosts=QUIET).finds(candidate, quiet=True)
    assert not BackgroundRule().finds(candidate, quiet=True)  # no threshold: the vote alone
    rule = BackgroundRule.from_dict({"threshold": 9.0, "combine": LINES, "f1": 0.9, "validation": []})
    assert rule == BackgroundRule(threshold=9.0, combine=LINES) and rule.target(True, False) is False
    assert BackgroundRule().target(True, False) is True
    with pytest.raises(ValueError, match="any, quiet"):
        BackgroundRule(threshold=9.0, hosts="early")


def test_the_hosts_own_oi_6364_is_masked_not_taken_for_a_background_oii():
    flux, ivar = spectrum(0, host_lines=0.0)
    flux = flux + gaussian(6365.54 * (1 + HOST_Z), 150, 3.0)  # a strong [O I] 6364 of the host's own
    assert not detected(background_scan(WAVE, flux, ivar, HOST_Z), 8.0)


def test_residuals_of_the_sky_subtraction_at_the_bright_sky_lines_pass_for_no_source(monkeypatch):
    from inference import background_lines
    from inference.night_sky import SKY_LINES

    flux, ivar = spectrum(0, host_lines=0.0)
    rng = np.random.default_rng(1)
    for line in SKY_LINES:  # 3-10 sigma of either sign, as a sky subtraction gone wrong leaves
        flux = flux + rng.choice([-1, 1]) * rng.uniform(3, 10) * 0.05 * np.exp(-0.5 * ((WAVE - line) / 1.6) ** 2)
    flux = flux + 10 * 0.05 * np.exp(-0.5 * ((WAVE - SKY_LINES[0]) / 1.6) ** 2)  # one bright, as [O II] would be
    assert not detected(background_scan(WAVE, flux, ivar, HOST_Z), 8.0)
    monkeypatch.setattr(background_lines, "sky_pixels", lambda wave: np.zeros(len(wave), bool))
    assert background_scan(WAVE, flux, ivar, HOST_Z).snr > 8.0  # unmasked, the residuals pass for lines
