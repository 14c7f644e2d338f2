"""The lines measured from a store's pixels are kept, read back as measured, and measured again where the
pixels they were measured on have changed."""

import numpy as np
import pytest

from inference import line_measures
from inference.selectors import embeddings
from inference.selectors.embeddings import line_store, line_vectors
from kb.models import Spectrum
from kb.selectors import spectrum_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(monkeypatch):
    """line_features, counting the spectra it measures."""
    calls = []
    real = line_measures.line_features

    def counting(flux, valid, z, ivar):
        calls.append(len(flux))
        return real(flux, valid, z, ivar)

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
    direct = line_measures.line_features(flux[rows[:5]], valid[rows[:5]], z, ivar[rows[:5]])
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
