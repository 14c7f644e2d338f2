"""The lines measured from a store's pixels are kept, read back as measured, and measured again where the
pixels they were measured on have changed."""

import numpy as np
import pytest

from inference import continuum, line_measures
from inference.selectors import embeddings
from inference.selectors.embeddings import QUIET_LINES, QUIET_SNR, line_continuum, line_store, line_vectors
from kb.models import Spectrum
from kb.selectors import spectrum_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(monkeypatch):
    """line_features, counting the spectra it measures."""
    calls = []
    real = line_measures.line_features

    def counting(flux, valid, z, ivar, eigen=None):
        calls.append(len(flux))
        return real(flux, valid, z, ivar, eigen)

    monkeypatch.setattr(embeddings.line_measures, "line_features", counting)
    return calls


def test_lines_are_measured_once_and_read_back_as_measured(trained, measured):
    rows = np.sort(np.fromiter(Spectrum.objects.values_list("store_row", flat=True), dtype=np.int64))
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    z = np.array([Spectrum.objects.get(store_row=r).z for r in rows[:5]])

    first = line_vectors(store_rows=rows)
    again = line_vectors(store_rows=rows[::-1])

    assert sum(measured) == len(rows)  # the second read measured nothing
    np.testing.assert_array_equal(again, first[::-1])
    direct = line_measures.line_features(flux[rows[:5]], valid[rows[:5]], z, ivar[rows[:5]], line_continuum())
    np.testing.assert_allclose(first[:5], direct, rtol=1e-6)
    assert line_store().rows == rows.max() + 1


def test_a_row_whose_pixels_changed_is_measured_again(trained, measured):
    rows = np.fromiter(Spectrum.objects.values_list("store_row", flat=True), dtype=np.int64)[:4]
    before = line_vectors(store_rows=rows)
    store = spectrum_store()
    changed = np.array(store.read()[0][rows[1]]) * 3.0  # the same galaxy, three times as bright
    store.flux_rows.write_rows(int(rows[1]), changed[None])
    measured.clear()

    after = line_vectors(store_rows=rows)

    assert measured == [1]
    np.testing.assert_array_equal(after[[0, 2, 3]], before[[0, 2, 3]])
    assert not np.array_equal(after[1], before[1])


@pytest.fixture
def refit(settings):
    """No eigen-continuum kept yet in the data folder (another test's measurements may have fitted one)."""
    for kept in (settings.DATA_DIR / "lines").glob("continuum-*.npz"):
        kept.unlink()


def test_the_continuum_is_learnt_from_quiet_training_spectra_alone_and_kept(trained, refit, monkeypatch, settings):
    monkeypatch.setattr(continuum, "MIN_SPECTRA", 3)  # the fixture's survey is small
    eigen = line_continuum()

    assert eigen is not None and eigen.basis.shape == (1 + continuum.COMPONENTS, len(continuum.REST))
    (kept,) = (settings.DATA_DIR / "lines").glob("continuum-*.npz")
    rows = np.load(kept)["store_rows"]
    learnt = Spectrum.objects.filter(store_row__in=rows.tolist())
    assert learnt.count() == len(rows) >= 3
    assert not learnt.filter(held_out=True).exists() and not learnt.filter(validation=True).exists()
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    where = [line_measures.POSITION[name] for name in QUIET_LINES]
    for spectrum in learnt:
        measured = line_measures.measure_lines(
            flux[spectrum.store_row], valid[spectrum.store_row], spectrum.z, ivar[spectrum.store_row]
        )
        errors = measured.errors[where]
        assert (measured.fluxes[where] < QUIET_SNR * np.where(errors > 0, errors, np.inf)).all()
    assert line_continuum().digest == eigen.digest  # read back, not fitted again
    assert eigen.digest in line_store().name


def test_too_few_quiet_spectra_leave_the_running_median(trained, refit, monkeypatch):
    monkeypatch.setattr(continuum, "MIN_SPECTRA", 10**6)
    assert line_continuum() is None
    assert line_store().name.endswith("-median")
