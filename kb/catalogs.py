"""Reading the catalogs the paper labels its knowledge base with, in their published formats.

- MPA-JHU DR8 (Brinchmann et al. 2004): ``galSpecInfo-dr8.fits`` (HDU 1: SPECOBJID as a string,
  PLATEID, MJD, FIBERID, RA, DEC, Z) and the row-aligned ``galSpecExtra-dr8.fits`` (HDU 1: BPTCLASS, no
  id column); or a CAS export (CSV or FITS) of galSpecExtra with specObjID and bptclass.
- Portsmouth DR12 (Thomas et al. 2013): ``portsmouth_emlinekin_full-DR12.fits`` (HDU 1: SPECOBJID,
  PLATE, MJD, FIBERID, RA, DEC, Z, BPT as a string); or a CAS export of emissionLinesPort with
  specObjID and bpt.
- eBOSS strong-lens candidates (Talbot et al. 2021, arXiv:2007.09006) in the ``lenscat`` CSV format
  (name, RA [deg], DEC [deg], zlens, type, grading, ref); matched to spectra by sky position.
- Baron & Poznanski (2017) outliers: CSV with ``class`` and ``specobjid`` or ``plate, mjd, fiberid``.
- Goto (2007) E+A galaxies: CSV or FITS with ``plate, mjd, fiberid`` (or ``specobjid``) and the EWs.

``CATALOG_SOURCES`` lists them all, each with its file names, reader and how its rows are matched.

Column names are matched without regard to case. Each reader returns a list of ``CatalogRow``;
anything wrong with a file raises ``CatalogError`` naming the file (and the row) and the problem.
RA and Dec are in degrees (ICRS/J2000) throughout. Pure Python (numpy, astropy); never imports Django.
"""

from __future__ import annotations

import csv
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from astropy.io import fits

from kb.bpt import BPTCLASS, PORT_BPT, port_bpt_key

TALBOT_REF = "arXiv:2007.09006"
LENSCAT_COLUMNS = ("name", "RA [deg]", "DEC [deg]", "zlens", "type", "grading", "ref")
MERGED = " | "  # lenscat joins the values of rows merged from several references with this


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{Path(path).name}: {reason}")


@dataclass(frozen=True)
class CatalogRow:
    """One catalog row: who it is about (specobjid, plate-mjd-fiber or position) and what it says."""

    value: str  # the catalog's own value, as published ("4", "Star Forming", "probable", "E+A")
    label: str  # normalised: a BPTCLASS label (FIVE_CLASSES or 'agn'), 'lens' or the outlier class
    specobjid: int | None = None
    plate_mjd_fiber: tuple[int, int, int] | None = None
    ra: float | None = None  # degrees
    dec: float | None = None  # degrees
    details: dict = field(default_factory=dict)  # other published fields, JSON-serialisable


# --- tables --------------------------------------------------------------------------------------------


class _Table:
    """HDU 1 of a FITS file, or a CSV file ('#' lines skipped), with columns found regardless of case.

    FITS columns are read one at a time, when asked for: the published files hold hundreds of columns
    and over a million rows, of which a reader needs a handful.
    """

    def __init__(self, path: Path):
        self.path = path
        self.is_fits = path.name.lower().endswith((".fits", ".fit", ".fits.gz", ".fit.gz"))
        self._values: dict[str, list] = {}
        try:
            if self.is_fits:
                with fits.open(path, memmap=True) as hdus:
                    if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU | fits.TableHDU):
                        raise CatalogError(path, "HDU 1 is not a table")
                    header = list(hdus[1].columns.names)
                    self.length = int(hdus[1].header["NAXIS2"])
            else:
                with open(path, newline="") as handle:
                    reader = csv.reader(line for line in handle if line.strip() and not line.startswith("#"))
                    header = [name.strip() for name in next(reader, [])]
                    rows = list(reader)
                self._values = {
                    n: [row[i].strip() if i < len(row) else "" for row in rows] for i, n in enumerate(header)
                }
                self.length = len(rows)
        except CatalogError:
            raise
        except (OSError, ValueError, KeyError, csv.Error, UnicodeDecodeError) as error:
            kind = "FITS" if self.is_fits else "CSV"
            raise CatalogError(path, f"cannot read it as a {kind} table ({error})") from None
        self.names = {n.lower(): n for n in header}

    def has(self, name: str) -> bool:
        return name.lower() in self.names

    def column(self, name: str) -> list:
        """The column's values as Python objects (str, int, float)."""
        name = self.names[name.lower()]
        if name not in self._values:  # a FITS column not read yet
            try:
                with fits.open(self.path, memmap=True) as hdus:
                    self._values[name] = hdus[1].data[name].tolist()
            except (OSError, ValueError) as error:
                raise CatalogError(self.path, f"cannot read column {name!r} ({error})") from None
        return self._values[name]

    def need(self, *names: str) -> list[list]:
        missing = [n for n in names if not self.has(n)]
        if missing:
            raise CatalogError(
                self.path,
                f"no column {', '.join(repr(m) for m in missing)} (it has {', '.join(self.names.values()) or 'none'})",
            )
        return [self.column(n) for n in names]


def _specobjid(path: Path, value, row: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise CatalogError(path, f"row {row}: specobjid {value!r} is not an integer") from None
    return number + (1 << 64) if number < 0 else number  # a signed 64-bit column past plate 8191


def _integer(path: Path, value, row: int, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise CatalogError(path, f"row {row}: {what} {value!r} is not an integer") from None


def _float(value) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def _maybe_int(*values) -> tuple[int, ...] | None:
    try:
        return tuple(int(str(v).strip()) for v in values)
    except ValueError:  # a blank cell in a CSV export
        return None


def _identity(table: _Table, plate_column: str) -> tuple[list, list]:
    """(plate, mjd, fiber) and (ra, dec) per row where the table has them, else Nones."""
    n = table.length
    if all(table.has(c) for c in (plate_column, "MJD", "FIBERID")):
        columns = [table.column(c) for c in (plate_column, "MJD", "FIBERID")]
        pmf = [_maybe_int(p, m, f) for p, m, f in zip(*columns)]
    else:
        pmf = [None] * n
    if table.has("RA") and table.has("DEC"):
        position = [(_float(r), _float(d)) for r, d in zip(table.column("RA"), table.column("DEC"))]
    else:
        position = [(None, None)] * n
    return pmf, position


# --- readers -------------------------------------------------------------------------------------------


def read_galspecextra(path: str | Path, info_path: str | Path | None = None) -> list[CatalogRow]:
    """MPA-JHU BPTCLASS per spectrum.

    ``path`` is either a CAS export (CSV or FITS) with specObjID and bptclass, or the DR8
    ``galSpecExtra-dr8.fits``, whose rows are aligned with ``galSpecInfo-dr8.fits`` (``info_path``, by
    default beside it), which supplies SPECOBJID, plate-MJD-fiber and position.
    """
    path = Path(path)
    table = _Table(path)
    (classes,) = table.need("BPTCLASS")
    if table.has("SPECOBJID"):
        ids = [_specobjid(path, v, i) for i, v in enumerate(table.column("SPECOBJID"), 1)]
        pmf, position = _identity(table, "PLATEID" if table.has("PLATEID") else "PLATE")
    else:
        info = Path(info_path) if info_path else _beside(path, "galSpecInfo-dr8.fits")
        if info is None:
            raise CatalogError(
                path,
                "has no SPECOBJID column and galSpecInfo-dr8.fits, whose rows it follows, "
                "is not beside it (pass info_path, or use a CAS export with specObjID)",
            )
        info_table = _Table(info)
        (sid,) = info_table.need("SPECOBJID")
        if info_table.length != table.length:
            raise CatalogError(
                path,
                f"{table.length} rows but {info.name} has {info_table.length}; "
                "the two files must be row-aligned (same DR8 release)",
            )
        ids = [_specobjid(info, v, i) for i, v in enumerate(sid, 1)]
        pmf, position = _identity(info_table, "PLATEID")
    rows = []
    for number, (specobjid, value, ident, (ra, dec)) in enumerate(zip(ids, classes, pmf, position), 1):
        value = _integer(path, value, number, "BPTCLASS")
        if value not in BPTCLASS:
            raise CatalogError(path, f"row {number}: BPTCLASS {value} is not one of {sorted(BPTCLASS)}")
        rows.append(
            CatalogRow(
                value=str(value), label=BPTCLASS[value], specobjid=specobjid, plate_mjd_fiber=ident, ra=ra, dec=dec
            )
        )
    return rows


def _beside(path: Path, name: str) -> Path | None:
    for candidate in (path.with_name(name), path.with_name(name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def read_emissionlinesport(path: str | Path) -> list[CatalogRow]:
    """Portsmouth BPT per spectrum: the DR12 FITS (SPECOBJID, BPT, ...) or a CAS export (specObjID, bpt).

    BPT strings are matched without regard to case, spaces, hyphens or underscores ('Star-Forming' is
    'Star Forming'); the published value is kept in ``value``.
    """
    path = Path(path)
    table = _Table(path)
    sid, bpt = table.need("SPECOBJID", "BPT")
    pmf, position = _identity(table, "PLATE")
    rows = []
    for number, (specobjid, value, ident, (ra, dec)) in enumerate(zip(sid, bpt, pmf, position), 1):
        text = str(value).strip()
        label = PORT_BPT.get(port_bpt_key(text))
        if label is None:
            raise CatalogError(
                path, f"row {number}: BPT value {text!r} is not one of Star Forming, Composite, Seyfert, LINER, BLANK"
            )
        rows.append(
            CatalogRow(
                value=text,
                label=label,
                specobjid=_specobjid(path, specobjid, number),
                plate_mjd_fiber=ident,
                ra=ra,
                dec=dec,
            )
        )
    return rows


def lenscat_path() -> Path:
    """The catalog.csv shipped by the lenscat package, found without importing lenscat (whose
    ``__init__`` loads pandas and reads the whole catalog)."""
    spec = find_spec("lenscat")
    if spec is None or spec.origin is None:
        raise CatalogError("lenscat", "the lenscat package is not installed (pip install -e '.[catalogs]')")
    path = Path(spec.origin).parent / "data" / "catalog.csv"
    if not path.is_file():
        raise CatalogError(path, f"not found in the installed lenscat package at {path.parent}")
    return path


def read_lenses(path: str | Path, reference: str = TALBOT_REF) -> list[CatalogRow]:
    """Lens candidates in the lenscat format, keeping rows whose ref cites ``reference``.

    lenscat merges candidates published more than once into one row, joining each field's values with
    ' | ' in the order of the references. Where a field has one value per reference, the value of the
    first ``reference`` entry is taken; where it has one value, that one. ``details['zlens']`` is the
    lens redshift as a float, or None where lenscat gives '-' or 'measured'.
    """
    path = Path(path)
    table = _Table(path)
    columns = dict(zip(LENSCAT_COLUMNS, table.need(*LENSCAT_COLUMNS)))
    rows = []
    for number in range(table.length):
        refs = columns["ref"][number].split(MERGED)
        citing = [i for i, ref in enumerate(refs) if reference in ref]
        if not citing:
            continue

        def pick(name: str, number=number, refs=refs, citing=citing) -> str:
            """The row's value from the reference cited (lenscat merges one row per reference)."""
            parts = [part.strip() for part in columns[name][number].split(MERGED)]
            return parts[citing[0]] if len(parts) == len(refs) else parts[0]

        ra, dec = _float(pick("RA [deg]")), _float(pick("DEC [deg]"))
        if ra is None or dec is None or not (0 <= ra < 360 and -90 <= dec <= 90):
            raise CatalogError(
                path,
                f"row {number + 1} ({columns['name'][number]}): RA, Dec "
                f"{pick('RA [deg]')!r}, {pick('DEC [deg]')!r} are not a position in degrees",
            )
        grading = pick("grading")
        rows.append(
            CatalogRow(
                value=grading,
                label="lens",
                ra=ra,
                dec=dec,
                details={
                    "name": columns["name"][number].strip(),  # every alias, as lenscat lists them
                    "catalog_name": pick("name"),  # the name in the cited catalog
                    "zlens": _float(pick("zlens")),
                    "zlens_published": pick("zlens"),
                    "type": pick("type"),
                    "grading": grading,
                    "ref": refs[citing[0]].strip(),
                },
            )
        )
    return rows


def read_outliers(path: str | Path) -> list[CatalogRow]:
    """Baron & Poznanski (2017) outliers: ``class`` with ``specobjid`` or ``plate, mjd, fiberid`` (per row,
    whichever is filled in)."""
    path = Path(path)
    table = _Table(path)
    (kinds,) = table.need("class")
    n = table.length
    specobjids = table.column("specobjid") if table.has("specobjid") else [""] * n
    by_pmf = all(table.has(c) for c in ("plate", "mjd", "fiberid"))
    if not table.has("specobjid") and not by_pmf:
        raise CatalogError(path, "needs a specobjid column or plate, mjd and fiberid columns")
    pmf = list(zip(*(table.column(c) for c in ("plate", "mjd", "fiberid")))) if by_pmf else [None] * n
    rows = []
    for number, (kind, specobjid, ident) in enumerate(zip(kinds, specobjids, pmf), 1):
        kind = str(kind).strip()
        if not kind:
            raise CatalogError(path, f"row {number}: no class")
        if str(specobjid).strip():
            rows.append(CatalogRow(value=kind, label=kind, specobjid=_specobjid(path, specobjid, number)))
        elif ident and all(str(v).strip() for v in ident):
            ident = tuple(_integer(path, v, number, c) for v, c in zip(ident, ("plate", "mjd", "fiberid")))
            rows.append(CatalogRow(value=kind, label=kind, plate_mjd_fiber=ident))
        else:
            raise CatalogError(path, f"row {number}: neither specobjid nor plate, mjd, fiberid is filled in")
    return rows


# --- finding ------------------------------------------------------------------------------


def _is_lenscat(path: Path) -> bool:
    try:
        with open(path, newline="") as handle:
            header = next(csv.reader([handle.readline()]), [])
    except (OSError, UnicodeDecodeError):
        return False
    return [n.strip().lower() for n in header] == [n.lower() for n in LENSCAT_COLUMNS]


def read_eplusa(path: str | Path) -> list[CatalogRow]:
    """Goto (2007)'s E+A galaxies: ``plate, mjd, fiberid`` (or ``specobjid``) per row, with the rest-frame
    EWs that selected them (``ew_hdelta``, ``ew_halpha``, ``ew_oii``, Angstrom, emission negative) kept as
    details where the file has them. The label is 'e+a'; the value, H-delta's EW as published."""
    path = Path(path)
    table = _Table(path)
    by_pmf = all(table.has(c) for c in ("plate", "mjd", "fiberid"))
    if not by_pmf and not table.has("specobjid"):
        raise CatalogError(path, "needs plate, mjd and fiberid columns, or a specobjid column")
    extra = [c for c in ("ra", "dec", "z", "ew_hdelta", "ew_halpha", "ew_oii") if table.has(c)]
    columns = {c: table.column(c) for c in extra}
    rows = []
    for number in range(table.length):
        details = {c: _float(columns[c][number]) for c in extra}
        value = str(columns["ew_hdelta"][number]).strip() if "ew_hdelta" in columns else ""
        if by_pmf:
            ident = tuple(_integer(path, table.column(c)[number], number + 1, c) for c in ("plate", "mjd", "fiberid"))
            rows.append(CatalogRow(value=value, label="e+a", plate_mjd_fiber=ident, details=details))
        else:
            specobjid = _specobjid(path, table.column("specobjid")[number], number + 1)
            rows.append(CatalogRow(value=value, label="e+a", specobjid=specobjid, details=details))
    return rows


@dataclass(frozen=True)
class CatalogSource:
    """One published catalog: how its files are named and read, and how its rows find their spectra."""

    key: str  # the CatalogLabel.catalog value
    title: str
    patterns: tuple[str, ...]  # its published file names, case-insensitive glob patterns
    reader: Callable[[Path], list[CatalogRow]]
    match: str  # "id": by specobjid or plate-MJD-fiber; "position": by sky position within 2 arcsec


# Every catalog GalSpec reads. galSpecInfo-dr8.fits is not listed: read_galspecextra finds it beside
# galSpecExtra-dr8.fits, whose rows it follows.
CATALOG_SOURCES: dict[str, CatalogSource] = {
    source.key: source
    for source in (
        CatalogSource(
            "galspecextra",
            "MPA-JHU galSpecExtra (DR8)",
            ("galSpecExtra*.fits", "galSpecExtra*.fits.gz", "galSpecExtra*.csv"),
            read_galspecextra,
            "id",
        ),
        CatalogSource(
            "emissionlinesport",
            "Portsmouth emissionLinesPort (DR12)",
            (
                "portsmouth_emlinekin*.fits",
                "portsmouth_emlinekin*.fits.gz",
                "emissionLinesPort*.csv",
                "emissionLinesPort*.fits",
            ),
            read_emissionlinesport,
            "id",
        ),
        CatalogSource(
            "talbot2021",
            "eBOSS strong-lens candidates (Talbot et al. 2021)",
            ("lenscat*.csv", "catalog.csv"),
            read_lenses,
            "position",
        ),
        CatalogSource(
            "baron2017", "SDSS outliers (Baron & Poznanski 2017)", ("baron_poznanski*.csv",), read_outliers, "id"
        ),
        CatalogSource("goto2007", "E+A galaxies (Goto 2007)", ("goto2007*.csv", "goto2007*.fits"), read_eplusa, "id"),
    )
}


CATALOG_CHOICES = [(source.key, source.title) for source in CATALOG_SOURCES.values()]


def catalog_choices() -> list[tuple[str, str]]:
    """(key, title) of every catalog: the choices of CatalogLabel.catalog, of filters and of forms."""
    return CATALOG_CHOICES


def find_catalogs(folder: str | Path) -> dict[str, list[Path]]:
    """Catalog files anywhere under ``folder``, by their published names, per CATALOG_SOURCES key.

    A file named just ``catalog.csv`` counts only if its header is lenscat's.
    """
    folder = Path(folder)
    found: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.name.lower()
        for key, source in CATALOG_SOURCES.items():
            if any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in source.patterns):
                if name == "catalog.csv" and not _is_lenscat(path):
                    continue
                found.setdefault(key, []).append(path)
    return found
