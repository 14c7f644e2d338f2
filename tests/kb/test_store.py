import numpy as np
import pytest

from kb.store import RowStore, SpectrumStore


def test_rows_append_and_read_back_memory_mapped(tmp_path):
    store = RowStore(tmp_path, "x", width=4)
    assert store.read().shape == (0, 4)
    assert store.append(np.arange(8, dtype=np.float32).reshape(2, 4)) == 0
    assert store.append(np.ones((3, 4))) == 2
    rows = RowStore(tmp_path, "x", width=4).read()  # a second process opening the same store
    assert isinstance(rows, np.memmap) and rows.shape == (5, 4)
    assert np.array_equal(rows[1], [4, 5, 6, 7]) and np.all(rows[2:] == 1)


def test_uncommitted_bytes_are_never_read_and_get_overwritten(tmp_path):
    store = RowStore(tmp_path, "x", width=2)
    store.append(np.zeros((2, 2)))
    with open(store.data_path, "ab") as handle:  # a crash after writing data, before the commit
        handle.write(np.full((1, 2), 7, dtype=np.float32).tobytes())
    assert store.read().shape == (2, 2)
    store.append(np.full((1, 2), 3))
    assert np.array_equal(store.read()[2], [3, 3])


def test_truncate_forgets_rows(tmp_path):
    store = RowStore(tmp_path, "x", width=2)
    store.append(np.zeros((4, 2)))
    store.truncate(1)
    assert store.rows == 1 and store.data_path.stat().st_size == 8


def test_rows_placed_side_by_side_are_read_only_once_committed(tmp_path):
    """Writers on several workers fill disjoint ranges in any order; one commits what runs unbroken."""
    store = RowStore(tmp_path, "x", width=2)
    store.append(np.zeros((2, 2)))
    RowStore(tmp_path, "x", width=2).place(4, np.full((2, 2), 4))  # another process, past a gap
    assert store.read().shape == (2, 2)
    store.place(2, np.full((2, 2), 2))
    store.commit(6)
    assert np.array_equal(store.read()[:, 0], [0, 0, 2, 2, 4, 4])
    with pytest.raises(ValueError, match="cannot commit 7 rows, only 6 are written"):
        store.commit(7)
    assert store.rows == 6


def test_a_store_refuses_rows_of_another_width(tmp_path):
    RowStore(tmp_path, "x", width=3)
    with pytest.raises(ValueError, match="holds rows of 3 float32"):
        RowStore(tmp_path, "x", width=4)
    with pytest.raises(ValueError, match="expected rows of width 3"):
        RowStore(tmp_path, "x", width=3).append(np.zeros((1, 5)))


def test_spectrum_store_keeps_flux_valid_and_ivar_aligned_after_a_crash(tmp_path):
    store = SpectrumStore(tmp_path, n_pixels=5)
    store.append(np.ones((2, 5)), np.ones((2, 5), bool), np.full((2, 5), 4.0))
    store.flux_rows.append(np.ones((1, 5)))  # crash between the appends
    store.valid_rows.append(np.ones((1, 5), bool))
    reopened = SpectrumStore(tmp_path, n_pixels=5)
    assert store.flux_rows.rows == 3  # a reader cuts nothing: the rows may be an ingest's, being appended
    flux, valid = reopened.read()
    assert flux.shape == valid.shape == reopened.read_ivar().shape == (2, 5) and valid.dtype == bool
    assert np.all(reopened.read_ivar() == 4.0)
    assert reopened.append(np.zeros((1, 5)), np.zeros((1, 5), bool), np.zeros((1, 5))) == 2  # the writer repairs
    flux, valid = reopened.read()
    assert flux.shape == (3, 5) and not flux[2].any() and not valid[2].any() and reopened.read_ivar()[2, 0] == 0


def test_a_store_from_before_inverse_variances_is_refused_and_left_whole(tmp_path):
    RowStore(tmp_path, "flux", width=5).append(np.ones((3, 5)))
    RowStore(tmp_path, "valid", width=5, dtype="bool").append(np.ones((3, 5), bool))
    with pytest.raises(ValueError, match="manage.py upgrade_store"):
        SpectrumStore(tmp_path, n_pixels=5)
    assert RowStore(tmp_path, "flux", width=5).rows == 3 and not (tmp_path / "ivar.json").exists()
