import numpy as np
import pytest
from astropy.io import fits

from kb.catalogs import (
    CatalogError,
    bpt_consensus,
    bpt_three_class,
    find_catalogs,
    lenscat_path,
    match_by_position,
    read_emissionlinesport,
    read_galspecextra,
    read_lenses,
    read_outliers,
    specobjid_decode,
    specobjid_encode,
)


def test_specobjid_bit_layout_round_trips():
    assert specobjid_encode(266, 51630, 168) == 299535582055393280
    assert specobjid_decode(299535582055393280) == (266, 51630, 168, 26)
    big = specobjid_encode(11000, 58000, 999)  # eBOSS plates exceed a signed 64-bit integer
    assert big > 2**63 and specobjid_decode(big)[:3] == (11000, 58000, 999)


@pytest.mark.parametrize(
    ("mpa", "port", "label"),
    [
        (1, "Star Forming", "star-forming"),
        (2, "Star-Forming", "star-forming"),
        (3, "Composite", "composite"),
        (4, "Seyfert", "seyfert"),
        (4, "LINER", "liner"),
        (5, "LINER", "liner"),
        (-1, "BLANK", "normal"),
        (1, "Composite", None),
        (5, "Seyfert", None),
        (-1, "Star Forming", None),
        (4, "Composite", None),
        (None, "LINER", None),
    ],
)
def test_a_bpt_label_is_trusted_only_where_both_catalogs_agree(mpa, port, label):
    assert bpt_consensus(mpa, port) == label


def test_three_classes_fold_composites_and_agn_together():
    assert [bpt_three_class(c) for c in ("star-forming", "composite", "seyfert", "liner", "normal")] == [
        "star-forming", "agn", "agn", "agn", "normal"]


def _write_mpa(folder, ids, classes):
    fits.BinTableHDU.from_columns([fits.Column("SPECOBJID", "19A", array=[str(i) for i in ids])]).writeto(
        folder / "galSpecInfo-dr8.fits")
    fits.BinTableHDU.from_columns([fits.Column("BPTCLASS", "I", array=classes)]).writeto(folder / "galSpecExtra-dr8.fits")


def test_galspecextra_dr8_pair_is_read_row_aligned(tmp_path):
    _write_mpa(tmp_path, [11, 22, 33], [1, 4, -1])
    rows = read_galspecextra(tmp_path / "galSpecExtra-dr8.fits")
    assert [(r.specobjid, r.value, r.label) for r in rows] == [(11, "1", "star-forming"), (22, "4", "agn"), (33, "-1", "normal")]


def test_galspecextra_cas_export_and_misaligned_pair(tmp_path):
    csv_path = tmp_path / "galSpecExtra_cas.csv"
    csv_path.write_text("#CAS query\nspecObjID,bptclass\n299535582055393280,5\n")
    assert read_galspecextra(csv_path)[0].label == "liner"
    _write_mpa(tmp_path, [1, 2], [1, 1])
    fits.BinTableHDU.from_columns([fits.Column("BPTCLASS", "I", array=[1, 1, 3])]).writeto(
        tmp_path / "galSpecExtra-dr8.fits", overwrite=True)
    with pytest.raises(CatalogError, match="3 rows but galSpecInfo-dr8.fits has 2"):
        read_galspecextra(tmp_path / "galSpecExtra-dr8.fits")


def test_portsmouth_bpt_strings_are_normalised_and_checked(tmp_path):
    path = tmp_path / "portsmouth_emlinekin_full-DR12.fits"
    fits.BinTableHDU.from_columns([
        fits.Column("SPECOBJID", "19A", array=["5", "6", "7"]),
        fits.Column("BPT", "12A", array=["Star Forming", "LINER", "BLANK"]),
    ]).writeto(path)
    assert [r.label for r in read_emissionlinesport(path)] == ["star-forming", "liner", "normal"]
    bad = tmp_path / "emissionLinesPort.csv"
    bad.write_text("specObjID,bpt\n5,Quasar\n")
    with pytest.raises(CatalogError, match="BPT value 'Quasar'"):
        read_emissionlinesport(bad)
    missing = tmp_path / "emissionLinesPort2.csv"
    missing.write_text("specObjID,class\n5,LINER\n")
    with pytest.raises(CatalogError, match="no column 'BPT'"):
        read_emissionlinesport(missing)


def test_the_packaged_lenscat_file_holds_the_talbot_candidates():
    rows = read_lenses(lenscat_path())
    assert 1400 < len(rows) < 1700
    assert all(r.label == "lens" and -90 <= r.dec <= 90 and 0 <= r.ra < 360 for r in rows)
    assert {r.details["grading"] for r in rows} >= {"confident", "probable"}


def test_outliers_by_specobjid_or_plate_mjd_fiber(tmp_path):
    path = tmp_path / "baron_poznanski_2017.csv"
    path.write_text("specobjid,plate,mjd,fiberid,class\n123,,,,E+A\n,266,51630,168,Wolf-Rayet\n")
    rows = read_outliers(path)
    assert rows[0].specobjid == 123 and rows[0].label == "E+A"
    assert rows[1].plate_mjd_fiber == (266, 51630, 168) and rows[1].label == "Wolf-Rayet"


def test_position_matching_takes_the_nearest_spectrum_within_the_radius():
    spec_ra, spec_dec = np.array([10.0, 10.001, 200.0]), np.array([0.0, 0.0, -5.0])
    index = match_by_position([10.0002, 200.01, 50.0], [0.0, -5.0, 1.0], spec_ra, spec_dec, radius_arcsec=2.0)
    assert list(index) == [0, -1, -1]  # 0.72" from the first; 36" from the third; nowhere near


def test_catalog_files_are_found_by_their_published_names(tmp_path):
    _write_mpa(tmp_path, [1], [1])
    (tmp_path / "lenscat-catalog.csv").write_text("name\n")
    (tmp_path / "notes.csv").write_text("x\n")
    found = find_catalogs(tmp_path)
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "galspecextra": ["galSpecExtra-dr8.fits"], "talbot2021": ["lenscat-catalog.csv"]}
