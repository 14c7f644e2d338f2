"""Catalog readers against small files written in each published format, and the real lenscat file."""

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from kb.catalogs import (
    CatalogError,
    find_catalogs,
    lenscat_path,
    read_emissionlinesport,
    read_galspecextra,
    read_lenses,
    read_outliers,
)
from kb.identifiers import specobjid_decode, specobjid_encode
from tests.conftest import REPO

SPEC_266_168 = 299535582055393280  # plate 266, MJD 51630, fiber 168, run2d 26


def assert_refused(path, text: str, reader, message: str) -> None:
    """A catalog file holding ``text`` is refused by ``reader`` with an error matching ``message``."""
    path.write_text(text)
    with pytest.raises(CatalogError, match=message):
        reader(path)


def _write_mpa(folder, ids, classes):
    """galSpecInfo-dr8.fits and galSpecExtra-dr8.fits as published: ids as 19-character strings."""
    n = len(ids)
    fits.BinTableHDU.from_columns(
        [
            fits.Column("SPECOBJID", "19A", array=[f"{i:>19d}" for i in ids]),
            fits.Column("PLATEID", "J", array=[specobjid_decode(i)[0] for i in ids]),
            fits.Column("MJD", "J", array=[specobjid_decode(i)[1] for i in ids]),
            fits.Column("FIBERID", "J", array=[specobjid_decode(i)[2] for i in ids]),
            fits.Column("RA", "E", array=np.linspace(10, 20, n)),
            fits.Column("DEC", "E", array=np.linspace(-1, 1, n)),
            fits.Column("Z", "E", array=np.full(n, 0.1)),
        ]
    ).writeto(folder / "galSpecInfo-dr8.fits")
    fits.BinTableHDU.from_columns(
        [fits.Column("BPTCLASS", "I", array=classes), fits.Column("LGM_TOT_P50", "E", array=np.full(n, 10.5))]
    ).writeto(folder / "galSpecExtra-dr8.fits")


def test_galspecextra_dr8_pair_is_read_row_aligned(tmp_path):
    ids = [SPEC_266_168, specobjid_encode(266, 51630, 215), specobjid_encode(267, 51608, 413)]
    _write_mpa(tmp_path, ids, [1, 4, -1])
    rows = read_galspecextra(tmp_path / "galSpecExtra-dr8.fits")
    assert [(r.specobjid, r.value, r.label) for r in rows] == [
        (ids[0], "1", "star-forming"),
        (ids[1], "4", "agn"),
        (ids[2], "-1", "normal"),
    ]
    assert rows[0].plate_mjd_fiber == (266, 51630, 168) and rows[2].plate_mjd_fiber == (267, 51608, 413)
    assert rows[2].ra == pytest.approx(20) and rows[2].dec == pytest.approx(1)


def test_galspecextra_cas_exports_as_csv_and_fits(tmp_path):
    csv_path = tmp_path / "galSpecExtra_cas.csv"
    csv_path.write_text(f"#Table1\nspecObjID,bptclass\n{SPEC_266_168},5\n\n{specobjid_encode(266, 51630, 215)},2\n")
    assert [(r.specobjid, r.label) for r in read_galspecextra(csv_path)] == [
        (SPEC_266_168, "liner"),
        (specobjid_encode(266, 51630, 215), "star-forming"),
    ]
    big = specobjid_encode(9000, 57000, 12)
    fits_path = tmp_path / "galSpecExtra_cas.fits"  # specObjID in a signed 64-bit column, as CAS writes it
    fits.BinTableHDU.from_columns(
        [
            fits.Column("specObjID", "K", array=np.array([SPEC_266_168, big - 2**64], dtype=np.int64)),
            fits.Column("bptclass", "I", array=[3, 4]),
        ]
    ).writeto(fits_path)
    assert [(r.specobjid, r.label) for r in read_galspecextra(fits_path)] == [(SPEC_266_168, "composite"), (big, "agn")]


def test_galspecextra_problems_name_the_file_and_the_row(tmp_path):
    _write_mpa(tmp_path, [1, 2], [1, 1])
    fits.BinTableHDU.from_columns([fits.Column("BPTCLASS", "I", array=[1, 1, 3])]).writeto(
        tmp_path / "galSpecExtra-dr8.fits", overwrite=True
    )
    with pytest.raises(CatalogError, match="galSpecExtra-dr8.fits: 3 rows but galSpecInfo-dr8.fits has 2"):
        read_galspecextra(tmp_path / "galSpecExtra-dr8.fits")
    (tmp_path / "galSpecInfo-dr8.fits").unlink()
    with pytest.raises(CatalogError, match="galSpecInfo-dr8.fits, whose rows it follows, is not beside it"):
        read_galspecextra(tmp_path / "galSpecExtra-dr8.fits")
    bad = tmp_path / "galSpecExtra.csv"
    assert_refused(
        bad, "specObjID,bptclass\n1,1\n2,0\n", read_galspecextra, "galSpecExtra.csv: row 2: BPTCLASS 0 is not one of"
    )
    no_class = tmp_path / "galSpecExtra2.csv"
    assert_refused(
        no_class,
        "specObjID,bpt\n1,1\n",
        read_galspecextra,
        "galSpecExtra2.csv: no column 'BPTCLASS' \\(it has specObjID, bpt\\)",
    )


def test_portsmouth_bpt_strings_are_normalised_and_checked(tmp_path):
    path = tmp_path / "portsmouth_emlinekin_full-DR12.fits"
    values = ["Star Forming", "Star-Forming", "Composite", "Seyfert", "LINER", "BLANK"]
    fits.BinTableHDU.from_columns(
        [
            fits.Column("SPECOBJID", "20A", array=[str(specobjid_encode(4000, 55400, f)) for f in range(1, 7)]),
            fits.Column("PLATE", "J", array=[4000] * 6),
            fits.Column("MJD", "J", array=[55400] * 6),
            fits.Column("FIBERID", "J", array=list(range(1, 7))),
            fits.Column("RA", "D", array=np.arange(6.0)),
            fits.Column("DEC", "D", array=np.zeros(6)),
            fits.Column("Z", "E", array=np.full(6, 0.3)),
            fits.Column("BPT", "12A", array=values),
        ]
    ).writeto(path)
    rows = read_emissionlinesport(path)
    assert [r.label for r in rows] == ["star-forming", "star-forming", "composite", "seyfert", "liner", "normal"]
    assert [r.value for r in rows] == values
    assert rows[3].plate_mjd_fiber == (4000, 55400, 4) and specobjid_decode(rows[3].specobjid)[:3] == (4000, 55400, 4)
    cas = tmp_path / "emissionLinesPort.csv"
    cas.write_text(f"specObjID,bpt\n{SPEC_266_168},star forming\n{SPEC_266_168 + 1},Liner\n")
    assert [r.label for r in read_emissionlinesport(cas)] == ["star-forming", "liner"]
    assert_refused(
        cas,
        "specObjID,bpt\n5,LINER\n6,Quasar\n",
        read_emissionlinesport,
        "emissionLinesPort.csv: row 2: BPT value 'Quasar'",
    )
    assert_refused(cas, "specObjID,class\n5,LINER\n", read_emissionlinesport, "no column 'BPT'")


LENSCAT_SAMPLE = """\
name,RA [deg],DEC [deg],zlens,type,grading,ref
J0011-0845,2.83435,-8.7643,-,galaxy,confident,https://research.ast.cam.ac.uk/lensedquasars/index.html
J0002+2531 | 1211,0.51579,25.52364,0.5091 | 0.509117,galaxy,probable,Moustakas et al. (2012) - adsabs:X | Talbot et al. (2020) - arXiv:2007.09006
1270 | J0002+3124,0.53579,31.4033,0.494977 | 0.495,galaxy,confident,Talbot et al. (2020) - arXiv:2007.09006 | Moustakas et al. (2012) - adsabs:X
77,359.9999,-0.5,measured,galaxy,probable,Talbot et al. (2020) - arXiv:2007.09006
"""


def test_lenscat_rows_citing_talbot_take_talbots_values(tmp_path):
    path = tmp_path / "lenscat-catalog.csv"
    path.write_text(LENSCAT_SAMPLE)
    rows = read_lenses(path)
    assert [r.details["catalog_name"] for r in rows] == ["1211", "1270", "77"]
    assert [r.details["zlens"] for r in rows] == [0.509117, 0.494977, None]
    assert [r.value for r in rows] == ["probable", "confident", "probable"]
    assert rows[0].details["name"] == "J0002+2531 | 1211" and rows[0].ra == 0.51579 and rows[0].dec == 25.52364
    assert all(r.label == "lens" and "arXiv:2007.09006" in r.details["ref"] for r in rows)
    assert_refused(
        path,
        LENSCAT_SAMPLE.replace("359.9999", "400.0"),
        read_lenses,
        "row 4 \\(77\\): RA, Dec '400.0', '-0.5' are not a position",
    )
    assert_refused(path, "name,RA,DEC\nx,1,2\n", read_lenses, "no column 'RA \\[deg\\]'")


def test_the_packaged_lenscat_file_holds_the_talbot_candidates():
    path = lenscat_path()
    rows = read_lenses(path)
    citing_lines = sum("arXiv:2007.09006" in line for line in path.read_text().splitlines())
    assert len(rows) == citing_lines and 1400 < len(rows) < 1700  # 1497 in lenscat 1.1.3
    assert all(-90 <= r.dec <= 90 and 0 <= r.ra < 360 for r in rows)
    assert {r.details["grading"] for r in rows} == {"confident", "probable"}
    assert all(r.details["zlens"] is None or 0 < r.details["zlens"] < 2 for r in rows)


def test_the_lenscat_file_is_found_without_importing_lenscat():
    code = (
        "import sys; from kb.catalogs import lenscat_path; print(lenscat_path()); assert 'lenscat' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("lenscat/data/catalog.csv")


def test_outliers_by_specobjid_or_plate_mjd_fiber(tmp_path):
    path = tmp_path / "baron_poznanski_2017.csv"
    path.write_text("specobjid,plate,mjd,fiberid,class\n123,,,,E+A\n,266,51630,168,Wolf-Rayet\n")
    rows = read_outliers(path)
    assert rows[0].specobjid == 123 and rows[0].label == "E+A" and rows[0].plate_mjd_fiber is None
    assert rows[1].plate_mjd_fiber == (266, 51630, 168) and rows[1].label == "Wolf-Rayet" and rows[1].specobjid is None
    only_pmf = tmp_path / "baron_poznanski_2017_b.csv"
    only_pmf.write_text("plate,mjd,fiberid,class\n266,51630,168,broad lines\n")
    assert read_outliers(only_pmf)[0].plate_mjd_fiber == (266, 51630, 168)
    assert_refused(
        path,
        "specobjid,plate,mjd,fiberid,class\n,,,,E+A\n",
        read_outliers,
        "row 1: neither specobjid nor plate, mjd, fiberid",
    )
    assert_refused(path, "ra,dec,class\n1,2,E+A\n", read_outliers, "needs a specobjid column or plate, mjd and fiberid")


def test_catalog_files_are_found_by_their_published_names(tmp_path):
    _write_mpa(tmp_path, [1], [1])
    nested = tmp_path / "cas"
    nested.mkdir()
    (nested / "galspecextra_query.csv").write_text("specObjID,bptclass\n1,1\n")
    (nested / "emissionLinesPort-2024.csv").write_text("specObjID,bpt\n1,LINER\n")
    (tmp_path / "portsmouth_emlinekin_full-DR12.fits").write_bytes(b"")
    (tmp_path / "catalog.csv").write_text(LENSCAT_SAMPLE)
    (nested / "catalog.csv").write_text("something,else\n")  # not lenscat's header: not a lens catalog
    (tmp_path / "baron_poznanski_2017.csv").write_text("specobjid,class\n")
    (tmp_path / "notes.csv").write_text("x\n")
    (tmp_path / "galSpecExtra-dr8.fits.part").write_bytes(b"")
    found = {
        key: sorted(p.relative_to(tmp_path).as_posix() for p in paths) for key, paths in find_catalogs(tmp_path).items()
    }
    assert found == {
        "galspecextra": ["cas/galspecextra_query.csv", "galSpecExtra-dr8.fits"],
        "emissionlinesport": ["cas/emissionLinesPort-2024.csv", "portsmouth_emlinekin_full-DR12.fits"],
        "talbot2021": ["catalog.csv"],
        "baron2017": ["baron_poznanski_2017.csv"],
    }
