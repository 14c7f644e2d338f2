import shutil

import numpy as np
import pytest
from astropy.io import fits

from kb.spectra import BAD_AND_MASK, SpectrumFileError, read_spectrum

# SDSS's own values for the ten real files (SkyServer SpecObj): specobjid and redshift.
EXPECTED = {
    "0266-51630-0168": (299535582055393280, 0.06741),
    "0266-51630-0215": (299548501317019648, 0.02168),
    "0266-51630-0367": (299590282758875136, 0.06180),
    "0266-51630-0481": (299621618840266752, 0.12077),
    "0266-51630-0486": (299622993229801472, 0.14130),
    "0266-51630-0598": (299653779555379200, 0.08019),
    "0267-51608-0413": (300728826680338432, 0.09401),
    "0268-51633-0074": (301761543396157440, 0.09186),
    "0268-51633-0223": (301802500204292096, 0.08718),
    "0268-51633-0251": (301810196785686528, 0.03181),
}


def test_real_files_give_their_identifiers_and_redshifts(real_spectra):
    for path in real_spectra:
        spectrum = read_spectrum(path)
        specobjid, z = EXPECTED[spectrum.plate_mjd_fiber]
        assert path.name == f"spec-{spectrum.plate_mjd_fiber}.fits"
        assert spectrum.specobjid == specobjid
        # The SDSS bit layout of specobjid encodes plate, fiber and MJD.
        assert specobjid >> 50 == spectrum.plate
        assert (specobjid >> 38) & 0xFFF == spectrum.fiberid
        assert ((specobjid >> 24) & 0x3FFF) + 50000 == spectrum.mjd
        assert spectrum.z == pytest.approx(z, abs=1e-4)
        assert spectrum.sdss_class == "GALAXY"


def test_wavelengths_are_angstrom_and_units_are_sdss(real_spectra):
    spectrum = read_spectrum(real_spectra[0])
    assert 3790 < spectrum.wave_obs[0] < 3830 and 9150 < spectrum.wave_obs[-1] < 9250
    # log-lambda pixels of 1e-4 dex: 69 km/s each
    assert np.allclose(np.diff(np.log10(spectrum.wave_obs.astype(np.float64))), 1e-4, atol=2e-6)
    assert spectrum.flux.dtype == np.float32 and spectrum.flux.shape == spectrum.ivar.shape
    halpha = spectrum.lines["H_alpha"]
    assert halpha.wave_rest == pytest.approx(6564.61, abs=0.01) and halpha.flux > 0


def test_invalid_pixels_are_those_without_ivar_or_with_bad_mask(real_spectra):
    for path in real_spectra:
        spectrum = read_spectrum(path)
        with fits.open(path) as hdus:
            ivar = hdus["COADD"].data["ivar"]
            and_mask = hdus["COADD"].data["and_mask"]
        expected = (ivar > 0) & ((and_mask & BAD_AND_MASK) == 0)
        assert np.array_equal(spectrum.valid, expected)
        assert np.all(spectrum.flux[~spectrum.valid] == 0)


def with_bits(path, out, bits: int, pixels: slice):
    """A copy of a real file with ``bits`` set in and_mask over ``pixels``, as SDSS sets a fiber bit."""
    with fits.open(path) as hdus:
        hdus["COADD"].data["and_mask"][pixels] |= bits
        hdus.writeto(out)
    return out


def test_a_fiber_flagged_many_bad_columns_on_half_its_pixels_keeps_its_flux(real_spectra, tmp_path):
    # MANYBADCOLUMNS (bit 4) marks a camera half, not bad pixels: the ivar carries the uncertainty
    original = read_spectrum(real_spectra[0])
    half = slice(0, len(original.flux) // 2)
    flagged = read_spectrum(with_bits(real_spectra[0], tmp_path / real_spectra[0].name, 1 << 4, half))
    assert flagged.valid.mean() == original.valid.mean() > 0.9
    assert np.array_equal(flagged.flux, original.flux)


def test_a_failed_wavelength_solution_or_bright_sky_invalidates_the_pixels(real_spectra, tmp_path):
    original = read_spectrum(real_spectra[0])
    half = slice(0, len(original.flux) // 2)
    for bit in (3, 23):  # BADARC, BRIGHTSKY
        flagged = read_spectrum(with_bits(real_spectra[0], tmp_path / f"{bit}-{real_spectra[0].name}", 1 << bit, half))
        assert not flagged.valid[half].any() and np.array_equal(flagged.valid[half.stop :], original.valid[half.stop :])


def test_a_truncated_file_is_an_error_naming_it(real_spectra, tmp_path):
    truncated = tmp_path / "spec-0266-51630-0168.fits"
    truncated.write_bytes(real_spectra[0].read_bytes()[:40000])
    with pytest.raises(SpectrumFileError) as error:
        read_spectrum(truncated)
    assert str(error.value).startswith("spec-0266-51630-0168.fits: ")


def test_a_file_that_is_not_fits_is_an_error(tmp_path):
    path = tmp_path / "spec-0001-50000-0001.fits"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(SpectrumFileError, match="not a FITS file"):
        read_spectrum(path)


def test_a_missing_column_is_named(real_spectra, tmp_path):
    path = tmp_path / real_spectra[0].name
    shutil.copy(real_spectra[0], path)
    with fits.open(path) as hdus:
        coadd = hdus["COADD"]
        columns = fits.ColDefs([c for c in coadd.columns if c.name != "loglam"])
        hdus["COADD"] = fits.BinTableHDU.from_columns(columns, header=coadd.header, name="COADD")
        hdus.writeto(path, overwrite=True)
    with pytest.raises(SpectrumFileError, match="HDU 'COADD' has no column 'loglam'"):
        read_spectrum(path)


def test_a_missing_hdu_is_named(real_spectra, tmp_path):
    path = tmp_path / real_spectra[0].name
    with fits.open(real_spectra[0]) as hdus:
        fits.HDUList([hdus[0], hdus["COADD"]]).writeto(path)
    with pytest.raises(SpectrumFileError, match="no HDU 'SPECOBJ'"):
        read_spectrum(path)


def test_a_mock_spectrum_says_it_was_generated_and_a_real_one_does_not(real_spectra, tmp_path):
    from kb.mock import generate_survey

    generate_survey(out=tmp_path / "survey", size=3, seed=4)
    mock = read_spectrum(next((tmp_path / "survey").rglob("spec-*.fits")))
    assert mock.mock and not any(read_spectrum(path).mock for path in real_spectra)
    older = tmp_path / "older.fits"  # a mock file written before the keyword: its comment still says so
    with fits.open(mock.path) as hdus:
        del hdus[0].header["GALMOCK"]
        hdus.writeto(older)
    assert read_spectrum(older).mock
