"""Reading SDSS spectra: spec-lite and full spec FITS files (DR8-DR17 layout), with astropy.

A file has HDU 1 ``COADD`` (one row per pixel: flux, loglam, ivar, and_mask, ...), HDU 2 ``SPECOBJ``
(one row: PLATE, MJD, FIBERID, SPECOBJID, Z, CLASS, ...) and HDU 3 ``SPZLINE`` (one row per fitted
emission line). Units are converted here, at the edge, and nowhere else:

- ``wave_obs``: 10**loglam, Angstrom, vacuum, observed frame.
- ``flux``: 1e-17 erg s^-1 cm^-2 Angstrom^-1 (SDSS's unit); ``ivar`` in the inverse square of it.
- ``valid``: True where the pixel was really measured: ivar > 0, finite flux, and no bit of
  ``BAD_AND_MASK`` set in and_mask (the pixel was bad in every exposure). Invalid pixels stay invalid
  all the way to the model (see kb/preprocess.py).

Everything that can go wrong with a file raises ``SpectrumFileError`` naming the file and the reason.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

# SDSS spectroscopic pixel mask bits (SPPIXMASK) that make an and_mask pixel unusable (set in every
# exposure). SDSS's advice (DR10 "bitmask_sppixmask"): the pipeline already sets ivar to 0 where a pixel is
# very bad, and BRIGHTSKY is the most useful bit beyond that. Bits 0-15 are fiber bits, set on every pixel
# of a camera half; of them only those saying the trace, flat or wavelength solution failed (or no fiber
# was plugged) make the flux wrong. Left out on purpose: MANYBADCOLUMNS (4; idlspec2d sets it when many
# rows have a bad CCD column near the trace, on half a spectrum at once, while the ivar already carries
# the real uncertainty), MANYREJECTED (5), LARGESHIFT (6), BADSKYFIBER (7), the deprecated WHOPPER and
# SMEAR bits (8-12), and the pixel bits describing the CCD or a correction (16 NEARBADPIXEL, 17 LOWFLAT,
# 19 PARTIALREJECT, 20 SCATTEREDLIGHT, 21 CROSSTALK, 26 BADFLUXFACTOR, 28 REDMONSTER). specutils, bossdata
# and spender mask every set bit, which would drop half such a spectrum for no documented reason.
SPPIXMASK_BAD_BITS = {
    "NOPLUG": 0,
    "BADTRACE": 1,
    "BADFLAT": 2,
    "BADARC": 3,
    "FULLREJECT": 18,  # these four come with ivar 0 already
    "NOSKY": 22,
    "NODATA": 24,
    "COMBINEREJ": 25,
    "BRIGHTSKY": 23,
    "BADSKYCHI": 27,  # sky-subtraction residuals; SDSS's redshift code masks it (skymask.pro)
}
BAD_AND_MASK = sum(1 << bit for bit in SPPIXMASK_BAD_BITS.values())

FITS_BLOCK = 2880  # bytes: every FITS file is a whole number of these blocks
# The most bytes a spectrum file may hold once decompressed: a spec-lite file is ~0.2-0.5 MB and a full spec
# file, with every exposure, a few MB. Anything larger is refused before it is held in memory whole.
MAX_FITS_BYTES = 64 * 2**20
FITS_MAGIC = b"SIMPLE  ="
COMPRESSED = {b"\x1f\x8b": ("gzip", lambda raw: gzip.GzipFile(fileobj=raw)), b"BZh": ("bzip2", bz2.BZ2File)}
OTHER_ARCHIVES = {b"PK\x03\x04": "zip", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstandard"}
COADD_COLUMNS = ("flux", "loglam", "ivar", "and_mask")
SPECOBJ_COLUMNS = ("PLATE", "MJD", "FIBERID", "SPECOBJID", "Z")
MOCK_KEYWORD = "GALMOCK"  # True in the primary header of a spectrum GalSpec's mock survey generated
MOCK_COMMENT = "GalSpec mock survey"


class SpectrumFileError(ValueError):
    """A spectrum file that cannot be read; the message names the file and says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


@dataclass(frozen=True)
class EmissionLine:
    """One SPZLINE row. Flux in 1e-17 erg s^-1 cm^-2; equivalent width in Angstrom; sigma in km/s."""

    name: str
    wave_rest: float  # Angstrom, vacuum
    flux: float
    flux_err: float  # <= 0 where the fit failed or the line was not measured
    ew: float
    sigma: float

    @property
    def snr(self) -> float:
        return self.flux / self.flux_err if self.flux_err > 0 else 0.0


@dataclass(frozen=True)
class SdssSpectrum:
    """One SDSS spectrum as read from its file. Arrays all have shape (L,), L the native pixel count."""

    path: str
    specobjid: int  # Python int: SDSS ids exceed int64 for plates >= 8192
    plate: int
    mjd: int
    fiberid: int
    ra: float  # degrees, J2000 (PLUG_RA)
    dec: float  # degrees, J2000 (PLUG_DEC)
    z: float
    z_err: float
    zwarning: int
    sdss_class: str  # GALAXY, QSO, STAR
    subclass: str
    sn_median: float  # median S/N per pixel over the whole spectrum
    vdisp: float  # km/s
    run2d: str
    wave_obs: np.ndarray  # (L,) Angstrom, vacuum, observed
    flux: np.ndarray  # (L,) 1e-17 erg s^-1 cm^-2 Angstrom^-1
    ivar: np.ndarray  # (L,) (1e-17 erg s^-1 cm^-2 Angstrom^-1)^-2
    and_mask: np.ndarray  # (L,) int32 SPPIXMASK bits
    valid: np.ndarray  # (L,) bool
    lines: dict[str, EmissionLine]
    mock: bool = False  # generated by GalSpec's mock survey (MOCK_KEYWORD in its primary header), not observed

    @property
    def plate_mjd_fiber(self) -> str:
        return f"{self.plate:04d}-{self.mjd:05d}-{self.fiberid:04d}"


def lines_as_dict(lines: dict[str, EmissionLine]) -> dict[str, dict]:
    """Line fits as JSON-ready dicts by LINENAME, with None for any value that is not finite."""

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        name: {
            "wave_rest": line.wave_rest,
            "flux": finite(line.flux),
            "flux_err": finite(line.flux_err),
            "ew": finite(line.ew),
            "sigma": finite(line.sigma),
        }
        for name, line in lines.items()
    }


def read_spectrum(path: str | Path, *, max_bytes: int = MAX_FITS_BYTES) -> SdssSpectrum:
    """Read an SDSS spec-lite or spec file, plain or compressed with gzip or bzip2 (known by its bytes, never its
    name); raise SpectrumFileError for anything unusable, including a file over ``max_bytes`` decompressed."""
    path = Path(path)
    try:
        data = fits_bytes(path, max_bytes=max_bytes)
        # disable_image_compression: a tile-compressed image (ZIMAGE) stays the small table it is on disk, never
        # inflated; _declared_within then refuses it, since no spectrum file holds one
        opened = fits.open(io.BytesIO(data), memmap=False, disable_image_compression=True)
        with warnings.catch_warnings(record=True) as caught, opened as hdus:
            warnings.simplefilter("always", AstropyUserWarning)
            _declared_within(path, hdus, len(data))
            hdus.readall()
            truncated = [w for w in caught if "truncated" in str(w.message)]
            if truncated:
                raise SpectrumFileError(path, f"truncated ({len(data)} bytes): {truncated[0].message}")
            coadd = _table(path, hdus, "COADD")
            specobj = _table(path, hdus, "SPECOBJ")
            lines = _emission_lines(path, hdus)
            return dataclasses.replace(_spectrum(path, coadd, specobj, lines), mock=_generated(hdus[0].header))
    except SpectrumFileError:
        raise
    except FileNotFoundError:
        raise SpectrumFileError(path, "file not found") from None
    except OSError as error:  # astropy raises OSError for non-FITS files and truncated data
        raise SpectrumFileError(path, f"not a readable FITS file ({error})") from None
    except (
        TypeError,
        ValueError,
        IndexError,
        KeyError,
        AttributeError,
        ArithmeticError,
        struct.error,
        EOFError,
        AssertionError,  # astropy validates column keywords with assert
        fits.VerifyError,
    ) as error:  # what astropy raises on corrupt headers and tables (found by fuzzing)
        raise SpectrumFileError(path, f"malformed FITS content ({type(error).__name__}: {error})") from None


def fits_bytes(path: Path, *, max_bytes: int = MAX_FITS_BYTES) -> bytes:
    """A FITS file's bytes, decompressed where its first bytes say gzip or bzip2, at most ``max_bytes`` of them:
    a plain file is measured before it is read, and a decompression bomb is stopped once ``max_bytes + 1``
    bytes have come out, never inflated whole. The bytes must start as FITS does and fill whole 2880-byte
    blocks; anything else raises SpectrumFileError."""
    with open(path, "rb") as handle:
        start = handle.read(8)
        archive = next((name for magic, name in OTHER_ARCHIVES.items() if start.startswith(magic)), None)
        if archive:
            raise SpectrumFileError(path, f"compressed as {archive}: send the FITS file itself, or gzip or bzip2 it")
        kind = next(((name, opener) for magic, (name, opener) in COMPRESSED.items() if start.startswith(magic)), None)
        handle.seek(0)
        if kind is None:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read() if size <= max_bytes else b""
        else:
            try:
                with kind[1](handle) as inflated:  # reads in bounded chunks, never the whole stream at once
                    data = inflated.read(max_bytes + 1)
            except (OSError, EOFError, ValueError) as error:
                raise SpectrumFileError(path, f"a broken {kind[0]} stream ({error})") from None
            size = len(data)
    if size > max_bytes:
        how = f"decompresses ({kind[0]}) to" if kind else "is"
        raise SpectrumFileError(
            path, f"{how} more than {max_bytes // 2**20} MB; an SDSS spectrum file is at most a few MB"
        )
    if not data.startswith(FITS_MAGIC):
        inside = f" inside its {kind[0]} stream" if kind else ""
        raise SpectrumFileError(path, f"not a FITS file (it starts with {data[:16]!r}{inside}, not 'SIMPLE  =')")
    if len(data) % FITS_BLOCK:
        raise SpectrumFileError(
            path, f"truncated: {len(data)} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks"
        )
    return data


def _declared_within(path: Path, hdus: fits.HDUList, size: int) -> None:
    """SpectrumFileError if a header declares more data than the file holds, or a tile-compressed image (which
    astropy would inflate): checked from the headers alone, before any data is read, so a header claiming
    gigabytes over a few kilobytes costs nothing."""
    for number in range(len(hdus)):  # loads each header, not its data
        if hdus[number].header.get("ZIMAGE"):
            raise SpectrumFileError(path, f"HDU {number} is a tile-compressed image; an SDSS spectrum file holds none")
        info = hdus.fileinfo(number)
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise SpectrumFileError(
                path, f"truncated: HDU {number} declares data up to byte {end:,}, but the file has {size:,} bytes"
            )


def _generated(header: fits.Header) -> bool:
    """Whether a file is GalSpec's mock survey: its keyword, or (files written before it) its comment."""
    return bool(header.get(MOCK_KEYWORD)) or any(MOCK_COMMENT in str(line) for line in header.get("COMMENT", []))


def _table(path: Path, hdus: fits.HDUList, name: str):
    if name not in hdus:
        raise SpectrumFileError(path, f"no HDU '{name}'")
    data = hdus[name].data
    if data is None or len(data) == 0:
        raise SpectrumFileError(path, f"HDU '{name}' is empty")
    return data


def _column(path: Path, table, hdu: str, name: str) -> np.ndarray:
    names = {n.lower(): n for n in table.columns.names}
    if name.lower() not in names:
        raise SpectrumFileError(path, f"HDU '{hdu}' has no column '{name}'")
    return np.asarray(table[names[name.lower()]])


def _spectrum(path: Path, coadd, specobj, lines: dict[str, EmissionLine]) -> SdssSpectrum:
    flux, loglam, ivar, and_mask = (_column(path, coadd, "COADD", c) for c in COADD_COLUMNS)
    wave_obs = (10.0 ** loglam.astype(np.float64)).astype(np.float32)
    flux = flux.astype(np.float32)
    ivar = ivar.astype(np.float32)
    and_mask = and_mask.astype(np.int64).astype(np.int32)
    if not np.all(np.diff(wave_obs) > 0):
        raise SpectrumFileError(path, "COADD loglam is not strictly increasing")
    valid = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar) & ((and_mask & BAD_AND_MASK) == 0)
    if not valid.any():
        raise SpectrumFileError(path, "no valid pixel (every ivar is 0 or every pixel is masked)")
    flux = np.where(valid, flux, 0.0).astype(np.float32)

    row = {name: _column(path, specobj, "SPECOBJ", name)[0] for name in SPECOBJ_COLUMNS}
    optional = {n.upper(): specobj[n][0] for n in specobj.columns.names}
    try:
        specobjid = int(str(row["SPECOBJID"]).strip())
    except ValueError:
        raise SpectrumFileError(path, f"SPECOBJ SPECOBJID {row['SPECOBJID']!r} is not an integer") from None
    z = float(row["Z"])
    if not math.isfinite(z) or z < -0.01:
        raise SpectrumFileError(path, f"SPECOBJ Z = {z} is not a usable redshift")
    return SdssSpectrum(
        path=str(path),
        specobjid=specobjid,
        plate=int(row["PLATE"]),
        mjd=int(row["MJD"]),
        fiberid=int(row["FIBERID"]),
        ra=float(optional.get("PLUG_RA", math.nan)),
        dec=float(optional.get("PLUG_DEC", math.nan)),
        z=z,
        z_err=float(optional.get("Z_ERR", math.nan)),
        zwarning=int(optional.get("ZWARNING", 0)),
        sdss_class=str(optional.get("CLASS", "")).strip(),
        subclass=str(optional.get("SUBCLASS", "")).strip(),
        sn_median=float(optional.get("SN_MEDIAN_ALL", math.nan)),
        vdisp=float(optional.get("VDISP", math.nan)),
        run2d=str(optional.get("RUN2D", "")).strip(),
        wave_obs=wave_obs,
        flux=flux,
        ivar=np.where(valid, ivar, 0.0).astype(np.float32),
        and_mask=and_mask,
        valid=valid,
        lines=lines,
    )


def _emission_lines(path: Path, hdus: fits.HDUList) -> dict[str, EmissionLine]:
    """SPZLINE rows keyed by LINENAME (e.g. 'H_alpha', '[N_II] 6583'). Every spec and spec-lite file of DR8 on
    has the HDU: a file without it was cut short at an HDU boundary, which the FITS blocks cannot show."""
    if "SPZLINE" not in hdus:
        raise SpectrumFileError(path, "no HDU 'SPZLINE' (the emission-line fits): the file may have been cut short")
    table = _table(path, hdus, "SPZLINE")
    lines = {}
    for row in table:
        line = EmissionLine(
            name=str(row["LINENAME"]).strip(),
            wave_rest=float(row["LINEWAVE"]),
            flux=float(row["LINEAREA"]),
            flux_err=float(row["LINEAREA_ERR"]),
            ew=float(row["LINEEW"]) if "LINEEW" in table.columns.names else math.nan,
            sigma=float(row["LINESIGMA"]) if "LINESIGMA" in table.columns.names else math.nan,
        )
        lines[line.name] = line
    return lines
