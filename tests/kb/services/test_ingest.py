import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from kb.models import IngestRun, Spectrum
from kb.preprocess import preprocess
from kb.selectors import spectrum_store
from kb.services.ingest import ingest_folder, spectrum_store_upgrade
from kb.spectra import read_spectrum
from kb.store import SpectrumStore

pytestmark = pytest.mark.django_db


@pytest.fixture
def survey(tmp_path, real_spectra):
    """A folder laid out like the archive's lite/PLATE/ folders, linking to the real files."""
    folder = tmp_path / "survey"
    for path in real_spectra:
        plate_dir = folder / path.name.split("-")[1]
        plate_dir.mkdir(parents=True, exist_ok=True)
        (plate_dir / path.name).symlink_to(path)
    return folder


def test_real_spectra_ingest_with_their_identifiers_and_flux(data_dir, survey, real_spectra):
    summary = ingest_folder(folder=survey)
    assert (summary.found, summary.added, summary.rejected) == (10, 10, {})
    flux, valid = spectrum_store().read()
    assert flux.shape == (10, 3688)
    for path in real_spectra:
        spectrum = read_spectrum(path)
        record = Spectrum.objects.get(specobjid=str(spectrum.specobjid))
        assert (record.plate, record.mjd, record.fiberid) == (spectrum.plate, spectrum.mjd, spectrum.fiberid)
        assert record.z == pytest.approx(spectrum.z)
        expected = preprocess(spectrum.wave_obs, spectrum.flux, spectrum.ivar, spectrum.valid, spectrum.z)
        assert np.array_equal(flux[record.store_row], expected.flux)
        assert np.array_equal(valid[record.store_row], expected.valid)
        assert np.array_equal(spectrum_store().read_ivar()[record.store_row], expected.ivar)
        assert record.norm == pytest.approx(expected.norm)
        assert record.lines["H_alpha"]["flux"] == pytest.approx(spectrum.lines["H_alpha"].flux)
    assert not Spectrum.objects.filter(mock=True).exists()  # real SDSS spectra


def test_ingesting_twice_adds_nothing(data_dir, survey):
    ingest_folder(folder=survey)
    again = ingest_folder(folder=survey)
    assert (again.added, again.already) == (0, 10)
    assert Spectrum.objects.count() == 10 and spectrum_store().rows == 10
    assert IngestRun.objects.count() == 2 and IngestRun.objects.first().summary["already_ingested"] == 10


def test_bad_files_are_reported_by_name_and_the_good_ones_ingested(data_dir, tmp_path, real_spectra):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in real_spectra[:2]:
        shutil.copy(path, folder)
    (folder / "spec-0999-51000-0001.fits").write_bytes(real_spectra[2].read_bytes()[:50000])
    (folder / "spec-0999-51000-0002.fits").write_text("SDSS archive: internal server error")
    summary = ingest_folder(folder=folder)
    assert summary.added == 2
    assert set(summary.rejected) == {"spec-0999-51000-0001.fits", "spec-0999-51000-0002.fits"}
    assert "truncated" in summary.rejected["spec-0999-51000-0001.fits"]
    assert "not a FITS file" in summary.rejected["spec-0999-51000-0002.fits"]
    assert Spectrum.objects.count() == 2 and spectrum_store().rows == 2
    assert not Spectrum.objects.filter(plate=999).exists()


def test_a_store_from_before_inverse_variances_is_upgraded_from_the_files_or_left_whole(data_dir, survey):
    ingest_folder(folder=survey)
    folder = data_dir / "spectra"
    ivar = np.array(spectrum_store().read_ivar())
    flux = np.array(spectrum_store().read()[0])
    for name in ("ivar.bin", "ivar.json"):  # what a store written before ivar looks like
        (folder / name).unlink()
    with pytest.raises(ValueError, match="manage.py upgrade_store"):
        spectrum_store()
    moved = Path(Spectrum.objects.order_by("store_row").last().source_file)
    moved.rename(moved.with_suffix(".away"))  # one file is missing: nothing changes
    with pytest.raises(CommandError, match="the store was not upgraded"):
        call_command("upgrade_store", verbosity=0)
    assert SpectrumStore.lacks_ivar(folder)
    moved.with_suffix(".away").rename(moved)
    call_command("upgrade_store", verbosity=0)
    store = spectrum_store()
    assert np.array_equal(store.read_ivar(), ivar) and np.array_equal(store.read()[0], flux)
    assert spectrum_store_upgrade() == 0  # nothing more to do


def test_rows_left_by_an_interrupted_ingest_are_replaced(data_dir, tmp_path, real_spectra):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    shutil.copy(real_spectra[0], first)
    shutil.copy(real_spectra[1], second)
    ingest_folder(folder=first)
    store = spectrum_store()
    store.append(np.full((3, 3688), 9.0), np.ones((3, 3688), bool), np.ones((3, 3688)))  # appended, never committed
    ingest_folder(folder=second)
    flux, _ = spectrum_store().read()
    assert flux.shape[0] == 2
    record = Spectrum.objects.get(source_file__endswith=real_spectra[1].name)
    assert record.store_row == 1 and not np.any(flux[1] == 9.0)


def test_ingest_command_prints_a_summary(data_dir, survey):
    out = io.StringIO()
    call_command("ingest", str(survey), stdout=out, verbosity=0)
    assert "10 spectrum files: 10 added, 0 already ingested, 0 rejected" in out.getvalue()


def test_parallel_ingest_stores_the_same_as_one_process(settings, tmp_path, real_spectra):
    results = {}
    for workers in (1, 2):
        settings.DATA_DIR = tmp_path / f"var-{workers}"
        settings.DATA_DIR.mkdir()
        Spectrum.objects.all().delete()
        folder = tmp_path / f"in-{workers}"
        folder.mkdir()
        for path in real_spectra:
            (folder / path.name).symlink_to(path)
        (folder / "spec-0999-51000-0003.fits").write_text("not a spectrum")
        summary = ingest_folder(folder=folder, workers=workers)
        flux, valid = spectrum_store().read()
        rows = {s.specobjid: s.store_row for s in Spectrum.objects.all()}
        results[workers] = (summary.added, sorted(summary.rejected), np.array(flux), np.array(valid), rows)
    assert results[1][0] == results[2][0] == 10 and results[1][1] == results[2][1]
    assert results[1][4] == results[2][4]
    assert np.array_equal(results[1][2], results[2][2]) and np.array_equal(results[1][3], results[2][3])
