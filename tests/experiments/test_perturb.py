import numpy as np
import pytest

from experiments.perturb import PERTURBATIONS, WAVE, perturbed
from kb.preprocess import normalisation

Z = 0.1


def _spectra(n=20, seed=0):
    rng = np.random.default_rng(seed)
    flux = (1 + 0.3 * (WAVE / 6000 - 1))[None] + rng.normal(0, 0.05, (n, len(WAVE)))
    valid = np.ones_like(flux, bool)
    valid[:, :30] = False
    flux[~valid] = 0
    return flux.astype(np.float32), valid, np.full_like(flux, 400.0), np.full(n, Z)  # ivar: sigma 0.05


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_every_perturbation_changes_the_spectra_repeatably_and_keeps_them_normalised(name):
    flux, valid, ivar, z = _spectra()
    changed, seen, changed_ivar = perturbed(name, flux, valid, ivar, z, seed=3)
    assert changed.shape == flux.shape == changed_ivar.shape and not np.array_equal(changed, flux)
    assert (changed_ivar[~seen] == 0).all() and (changed_ivar[seen] > 0).all()
    assert np.array_equal(perturbed(name, flux, valid, ivar, z, seed=3)[0], changed)
    assert (changed[~seen] == 0).all() and not seen[:, :30].any()
    assert normalisation(changed[0], seen[0], Z) == pytest.approx(1.0, abs=0.02)


def test_half_the_signal_to_noise_doubles_the_scatter():
    flux, valid, ivar, z = _spectra()
    changed, _, changed_ivar = perturbed("half_snr", flux, valid, ivar, z, seed=1)
    assert np.std(np.diff(changed[:, 30:], axis=1)) == pytest.approx(2 * np.std(np.diff(flux[:, 30:], axis=1)), rel=0.1)
    assert np.median(changed_ivar[:, 30:]) == pytest.approx(400 / 4, rel=0.05)  # the error says so too


def test_bad_columns_hide_five_runs_and_nothing_else_changes():
    flux, valid, ivar, z = _spectra()
    changed, seen, _ = perturbed("bad_columns", flux, valid, ivar, z, seed=1)
    lost = valid & ~seen
    assert lost.sum(axis=1).min() >= 20 and lost.sum(axis=1).max() <= 100
    ratio = changed[0, seen[0]] / flux[0, seen[0]]  # the rest only divided by its new normalisation
    assert np.ptp(ratio) < 1e-5


def test_a_multiplied_spectrum_keeps_each_pixels_signal_to_noise():
    flux, valid, ivar, z = _spectra()
    changed, seen, changed_ivar = perturbed("extra_dust", flux, valid, ivar, z, seed=1)
    before, after = flux[seen] * np.sqrt(ivar[seen]), changed[seen] * np.sqrt(changed_ivar[seen])
    assert np.allclose(after, before, rtol=1e-4)  # dust dims the flux and its noise alike
