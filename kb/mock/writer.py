"""Writing the mock survey in SDSS's own formats: spec-lite FITS files and the published catalogs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from astropy.io import fits

from kb.mock.physics import LOGLAM, WAVE
from kb.spectra import MOCK_KEYWORD

# The 29 emission lines of SDSS's SPZLINE HDU: LINENAME and LINEWAVE (Angstrom, vacuum), as in DR8+.
SPZLINE_LINES = [
    ("Ly_alpha", 1215.67),
    ("N_V 1240", 1240.81),
    ("C_IV 1549", 1549.48),
    ("He_II 1640", 1640.42),
    ("C_III] 1908", 1908.734),
    ("Mg_II 2799", 2800.31518),
    ("[O_II] 3725", 3727.09173),
    ("[O_II] 3727", 3729.87545),
    ("[Ne_III] 3868", 3869.85680),
    ("H_epsilon", 3890.15108),
    ("[Ne_III] 3970", 3971.12319),
    ("H_delta", 4102.89163),
    ("H_gamma", 4341.68431),
    ("[O_III] 4363", 4364.43530),
    ("He_II 4685", 4686.99144),
    ("H_beta", 4862.68299),
    ("[O_III] 4959", 4960.29490),
    ("[O_III] 5007", 5008.23964),
    ("He_II 5411", 5413.02442),
    ("[O_I] 5577", 5578.88770),
    ("[O_I] 6300", 6302.04638),
    ("[S_III] 6312", 6313.80553),
    ("[O_I] 6363", 6365.53542),
    ("[N_II] 6548", 6549.85893),
    ("H_alpha", 6564.61389),
    ("[N_II] 6583", 6585.26845),
    ("[S_II] 6716", 6718.29421),
    ("[S_II] 6730", 6732.67808),
    ("[Ar_III] 7135", 7137.75710),
]
LENSCAT_REF = "Talbot et al. (2020) - arXiv:2007.09006"


def write_spectrum(
    path: Path, *, row: dict, observed: dict[str, np.ndarray], lines: dict[str, tuple[float, float, float]]
) -> None:
    """One spec-lite file: PRIMARY, COADD, SPECOBJ, SPZLINE, laid out as SDSS DR8-DR17 writes them. ``lines``
    holds every SPZLINE line's (flux, error, sigma km/s), error -1 where it was not fitted."""
    hdus = [_primary(row), _coadd(observed), _specobj(row), _spzline(row, observed, lines)]
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)


def _primary(row: dict) -> fits.PrimaryHDU:
    primary = fits.PrimaryHDU()
    for key in ("PLATEID", "MJD", "FIBERID"):
        primary.header[key] = row[{"PLATEID": "PLATE"}.get(key, key)]
    primary.header["RA"], primary.header["DEC"] = row["PLUG_RA"], row["PLUG_DEC"]
    primary.header["RUN2D"] = "26"
    primary.header[MOCK_KEYWORD] = (True, "GalSpec mock: generated, not observed")
    primary.header["COMMENT"] = "GalSpec mock survey: generated, not observed"
    return primary


def _coadd(observed: dict[str, np.ndarray]) -> fits.BinTableHDU:
    """The spectrum: flux and ivar (1e-17 erg s^-1 cm^-2 Angstrom^-1 and its inverse square) on log10 wavelength."""
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("flux", "E", array=observed["flux"]),
            fits.Column("loglam", "E", array=LOGLAM.astype(np.float32)),
            fits.Column("ivar", "E", array=observed["ivar"]),
            fits.Column("and_mask", "J", array=observed["and_mask"]),
            fits.Column("or_mask", "J", array=observed["and_mask"]),
            fits.Column("wdisp", "E", array=np.full(len(LOGLAM), 1.1, np.float32)),
            fits.Column("sky", "E", array=observed["sky"]),
            fits.Column("model", "E", array=observed["model"]),
        ],
        name="COADD",
    )


def _specobj(row: dict) -> fits.BinTableHDU:
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("PLATE", "J", array=[row["PLATE"]]),
            fits.Column("MJD", "J", array=[row["MJD"]]),
            fits.Column("FIBERID", "J", array=[row["FIBERID"]]),
            fits.Column("SPECOBJID", "22A", array=[f"{row['SPECOBJID']:>22d}"]),
            fits.Column("RUN2D", "3A", array=["26"]),
            fits.Column("PLUG_RA", "D", array=[row["PLUG_RA"]]),
            fits.Column("PLUG_DEC", "D", array=[row["PLUG_DEC"]]),
            fits.Column("CLASS", "6A", array=["GALAXY"]),
            fits.Column("SUBCLASS", "21A", array=[row["SUBCLASS"]]),
            fits.Column("Z", "E", array=[row["Z"]]),
            fits.Column("Z_ERR", "E", array=[row["Z_ERR"]]),
            fits.Column("ZWARNING", "J", array=[0]),
            fits.Column("VDISP", "E", array=[row["VDISP"]]),
            fits.Column("VDISP_ERR", "E", array=[row["VDISP_ERR"]]),
            fits.Column("SN_MEDIAN_ALL", "E", array=[row["SN_MEDIAN_ALL"]]),
        ],
        name="SPECOBJ",
    )


def _spzline(
    row: dict, observed: dict[str, np.ndarray], lines: dict[str, tuple[float, float, float]]
) -> fits.BinTableHDU:
    """The line fits: area and its error (1e-17 erg s^-1 cm^-2), equivalent width on the model continuum."""
    names = [name for name, _ in SPZLINE_LINES]
    flux = np.array([lines[name][0] for name in names], np.float32)
    error = np.array([lines[name][1] for name in names], np.float32)
    sigma_kms = np.array([lines[name][2] for name in names], np.float32)
    fitted = error > 0
    continuum = np.array(
        [_continuum_level(observed["model"], w * (1 + row["Z"])) for _, w in SPZLINE_LINES], np.float32
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ew = np.where(fitted & (continuum > 0), flux / np.where(continuum > 0, continuum, 1), 0)  # observed frame

    def where_fitted(value, otherwise, dtype=np.float32):
        return np.where(fitted, value, otherwise).astype(dtype)

    return fits.BinTableHDU.from_columns(
        [
            fits.Column("PLATE", "J", array=np.full(len(names), row["PLATE"])),
            fits.Column("MJD", "J", array=np.full(len(names), row["MJD"])),
            fits.Column("FIBERID", "J", array=np.full(len(names), row["FIBERID"])),
            fits.Column("LINENAME", "13A", array=names),
            fits.Column("LINEWAVE", "D", array=[w for _, w in SPZLINE_LINES]),
            fits.Column("LINEZ", "E", array=where_fitted(row["Z"], 0)),
            fits.Column("LINEZ_ERR", "E", array=where_fitted(1e-5, -1)),
            fits.Column("LINESIGMA", "E", array=where_fitted(sigma_kms, 0)),
            fits.Column("LINESIGMA_ERR", "E", array=where_fitted(5.0, -1)),
            fits.Column("LINEAREA", "E", array=flux),
            fits.Column("LINEAREA_ERR", "E", array=error),
            fits.Column("LINEEW", "E", array=ew.astype(np.float32)),
            fits.Column(
                "LINEEW_ERR",
                "E",
                array=np.where(continuum > 0, error / np.maximum(continuum, 1e-6), -1).astype(np.float32),
            ),
            fits.Column("LINECONTLEVEL", "E", array=continuum),
            fits.Column("LINECONTLEVEL_ERR", "E", array=np.full(len(names), 0.1, np.float32)),
            fits.Column("LINENPIXLEFT", "J", array=where_fitted(10, 0, np.int32)),
            fits.Column("LINENPIXRIGHT", "J", array=where_fitted(10, 0, np.int32)),
            fits.Column("LINEDOF", "E", array=where_fitted(17.0, 0)),
            fits.Column("LINECHI2", "E", array=where_fitted(1.0, -1)),
        ],
        name="SPZLINE",
    )


def _continuum_level(model: np.ndarray, centre: float) -> float:
    """Median model flux density in side bands 30-60 Angstrom either side of a line (0 if outside)."""
    side = (np.abs(WAVE - centre) > 30) & (np.abs(WAVE - centre) < 60)
    return float(np.median(model[side])) if side.any() else 0.0


def write_catalogs(folder: Path, rows: list[dict]) -> None:
    """galSpecInfo/galSpecExtra (DR8), emissionLinesPort (DR12), lenscat-format lenses (those the lens
    catalog detects), Goto (2007) E+A galaxies (mock v3 on; EWs in Angstrom, rest, emission negative),
    Baron & Poznanski outliers."""
    folder.mkdir(parents=True, exist_ok=True)
    galaxies = [
        fits.Column("SPECTROTYPE", "6A", array=["GALAXY"] * len(rows)),
        fits.Column("Z_WARNING", "J", array=[0] * len(rows)),
        fits.Column("RELIABLE", "J", array=[1] * len(rows)),
    ]  # what fetch_sdss --survey filters on (kb.sdss_archive.paper_sample): every mock spectrum passes
    fits.BinTableHDU.from_columns([*_identity(rows, plate="PLATEID", position="E"), *galaxies]).writeto(
        folder / "galSpecInfo-dr8.fits", overwrite=True
    )
    fits.BinTableHDU.from_columns(
        [
            fits.Column("BPTCLASS", "I", array=[r["BPTCLASS"] for r in rows]),
            fits.Column("LGM_TOT_P50", "E", array=[r["LGM"] for r in rows]),
        ]
    ).writeto(folder / "galSpecExtra-dr8.fits", overwrite=True)
    fits.BinTableHDU.from_columns(
        [*_identity(rows, plate="PLATE", position="D"), fits.Column("BPT", "12A", array=[r["PORT_BPT"] for r in rows])]
    ).writeto(folder / "portsmouth_emlinekin_full-DR12.fits", overwrite=True)
    with open(folder / "lenscat-catalog.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "RA [deg]", "DEC [deg]", "zlens", "type", "grading", "ref"])
        for r in rows:
            if r["lens_catalogued"]:
                writer.writerow(
                    [
                        _jname(r["PLUG_RA"], r["PLUG_DEC"]),
                        f"{r['PLUG_RA']:.5f}",
                        f"{r['PLUG_DEC']:.5f}",
                        f"{r['Z']:.4f}",
                        "galaxy",
                        r["grading"],
                        LENSCAT_REF,
                    ]
                )
    if "eplusa_catalogued" in rows[0]:  # from mock version 3 on
        with open(folder / "goto2007_eplusa.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["plate", "mjd", "fiberid", "ra", "dec", "z", "ew_hdelta", "ew_halpha", "ew_oii"])
            for r in rows:
                if r["eplusa_catalogued"]:
                    writer.writerow(
                        [
                            r["PLATE"],
                            r["MJD"],
                            r["FIBERID"],
                            f"{r['PLUG_RA']:.5f}",
                            f"{r['PLUG_DEC']:.5f}",
                            f"{r['Z']:.4f}",
                            *(f"{r[k]:.2f}" for k in ("hdelta_ew", "halpha_index_ew", "oii_index_ew")),
                        ]
                    )
    with open(folder / "baron_poznanski_2017.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["specobjid", "plate", "mjd", "fiberid", "class"])
        for r in rows:
            if r["population"] == "outlier":
                writer.writerow([r["SPECOBJID"], r["PLATE"], r["MJD"], r["FIBERID"], r["kind"]])


def _identity(rows: list[dict], *, plate: str, position: str) -> list[fits.Column]:
    """The columns naming each spectrum in a catalog: SPECOBJID, plate (named ``plate``), MJD, FIBERID, RA and
    Dec (degrees, FITS format ``position``) and Z, as the catalog's own file spells them."""
    return [
        fits.Column("SPECOBJID", "19A", array=[f"{r['SPECOBJID']:>19d}" for r in rows]),
        fits.Column(plate, "J", array=[r["PLATE"] for r in rows]),
        fits.Column("MJD", "J", array=[r["MJD"] for r in rows]),
        fits.Column("FIBERID", "J", array=[r["FIBERID"] for r in rows]),
        fits.Column("RA", position, array=[r["PLUG_RA"] for r in rows]),
        fits.Column("DEC", position, array=[r["PLUG_DEC"] for r in rows]),
        fits.Column("Z", "E", array=[r["Z"] for r in rows]),
    ]


def _jname(ra: float, dec: float) -> str:
    ra_h = ra / 15
    sign = "+" if dec >= 0 else "-"
    return f"J{int(ra_h):02d}{int(ra_h % 1 * 60):02d}{sign}{int(abs(dec)):02d}{int(abs(dec) % 1 * 60):02d}"
