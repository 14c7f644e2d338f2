"""Reading the catalogs the paper labels its knowledge base with, in their published formats.

- MPA-JHU DR8 (Brinchmann et al. 2004): ``galSpecInfo-dr8.fits`` (SPECOBJID, PLATEID, MJD, FIBERID, ...)
  and the row-aligned ``galSpecExtra-dr8.fits`` (BPTCLASS), or a CAS export with specObjID, bptclass.
- Portsmouth DR12 (Thomas et al. 2013): ``portsmouth_emlinekin_full-DR12.fits`` (SPECOBJID, BPT), or a
  CAS ``emissionLinesPort`` export with specObjID, bpt.
- eBOSS strong-lens candidates (Talbot et al. 2021) in the ``lenscat`` CSV format (name, RA [deg],
  DEC [deg], zlens, type, grading, ref); matched to spectra by sky position.
- Baron & Poznanski (2017) outliers: CSV with ``class`` and ``specobjid`` or ``plate, mjd, fiberid``.

Each reader returns a list of ``CatalogRow``; problems raise ``CatalogError`` naming the file.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from astropy.io import fits

BPTCLASS = {-1: "normal", 1: "star-forming", 2: "star-forming", 3: "composite", 4: "agn", 5: "liner"}
PORT_BPT = {"star forming": "star-forming", "starforming": "star-forming", "composite": "composite",
            "seyfert": "seyfert", "liner": "liner", "blank": "normal"}
FIVE_CLASSES = ("star-forming", "composite", "seyfert", "liner", "normal")
TALBOT_REF = "arXiv:2007.09006"


class CatalogError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{Path(path).name}: {reason}")


@dataclass(frozen=True)
class CatalogRow:
    """One catalog row: who it is about (specobjid, plate-mjd-fiber or position) and what it says."""

    value: str  # the catalog's own value, as published
    label: str  # normalised: a five-class BPT label, 'agn', 'lens' or the outlier class
    specobjid: int | None = None
    plate_mjd_fiber: tuple[int, int, int] | None = None
    ra: float | None = None  # degrees
    dec: float | None = None
    details: dict = field(default_factory=dict)


def specobjid_encode(plate: int, mjd: int, fiber: int, run2d: int = 26) -> int:
    return (plate << 50) | (fiber << 38) | ((mjd - 50000) << 24) | (run2d << 10)


def specobjid_decode(specobjid: int) -> tuple[int, int, int, int]:
    """(plate, mjd, fiber, run2d) from SDSS's bit layout."""
    return specobjid >> 50, ((specobjid >> 24) & 0x3FFF) + 50000, (specobjid >> 38) & 0xFFF, (specobjid >> 10) & 0x3FFF


def bpt_consensus(galspec_bptclass: int | None, port_bpt: str | None) -> str | None:
    """The five-class BPT label both emission-line catalogs agree on, or None (the paper's rule).

    galSpecExtra's class 4 ("AGN", LINERs with good S/N included) agrees with Portsmouth's Seyfert or
    LINER and takes Portsmouth's finer label; every other class must match exactly.
    """
    if galspec_bptclass is None or port_bpt is None:
        return None
    mpa = BPTCLASS.get(int(galspec_bptclass))
    port = PORT_BPT.get(_norm(port_bpt))
    if mpa is None or port is None:
        return None
    if mpa == "agn":
        return port if port in ("seyfert", "liner") else None
    return mpa if mpa == port else None


def bpt_three_class(label: str) -> str:
    """The paper's three classes: star-forming, agn (composite, Seyfert, LINER) or normal."""
    return label if label in ("star-forming", "normal") else "agn"


def _norm(text) -> str:
    return " ".join(str(text).strip().lower().replace("-", " ").replace("_", " ").split())


def _columns(path: Path, data) -> dict[str, str]:
    names = data.columns.names if hasattr(data, "columns") else list(data[0].keys()) if data else []
    return {n.lower(): n for n in names}


def _need(path: Path, columns: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if n.lower() not in columns]
    if missing:
        raise CatalogError(path, f"no column {', '.join(repr(m) for m in missing)}")
    return [columns[n.lower()] for n in names]


def _table(path: Path):
    """A FITS binary table (HDU 1) or a CSV file as (column lookup, rows as dict or FITS records)."""
    try:
        if path.suffix.lower() in (".fits", ".fit", ".gz"):
            with fits.open(path, memmap=False) as hdus:
                data = hdus[1].data
                return _columns(path, data), data
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
        return _columns(path, rows), rows
    except (OSError, IndexError, csv.Error, UnicodeDecodeError) as error:
        raise CatalogError(path, f"cannot read ({error})") from None


def _id(path: Path, value) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise CatalogError(path, f"specobjid {value!r} is not an integer") from None


def read_galspecextra(path: str | Path, info_path: str | Path | None = None) -> list[CatalogRow]:
    """BPTCLASS per spectrum: a CAS export (specObjID, bptclass), or the DR8 FITS with galSpecInfo."""
    path = Path(path)
    columns, data = _table(path)
    if "specobjid" in columns:
        ids = [_id(path, v) for v in (data[columns["specobjid"]] if hasattr(data, "columns") else [r[columns["specobjid"]] for r in data])]
    else:
        info = Path(info_path) if info_path else path.with_name("galSpecInfo-dr8.fits")
        if not info.exists():
            raise CatalogError(path, f"has no SPECOBJID column and {info.name} (row-aligned) is not beside it")
        info_columns, info_data = _table(info)
        (sid,) = _need(info, info_columns, "SPECOBJID")
        ids = [_id(info, v) for v in info_data[sid]]
        if len(ids) != len(data):
            raise CatalogError(path, f"{len(data)} rows but {info.name} has {len(ids)}; they must be row-aligned")
    (bpt,) = _need(path, columns, "BPTCLASS")
    values = data[bpt] if hasattr(data, "columns") else [r[bpt] for r in data]
    rows = []
    for specobjid, value in zip(ids, values):
        value = int(value)
        if value not in BPTCLASS:
            raise CatalogError(path, f"BPTCLASS {value} is not one of {sorted(BPTCLASS)}")
        rows.append(CatalogRow(value=str(value), label=BPTCLASS[value], specobjid=specobjid))
    return rows


def read_emissionlinesport(path: str | Path) -> list[CatalogRow]:
    """Portsmouth BPT per spectrum: the DR12 FITS (SPECOBJID, BPT) or a CAS export (specObjID, bpt)."""
    path = Path(path)
    columns, data = _table(path)
    sid, bpt = _need(path, columns, "SPECOBJID", "BPT")
    get = (lambda c: data[c]) if hasattr(data, "columns") else (lambda c: [r[c] for r in data])
    rows = []
    for specobjid, value in zip(get(sid), get(bpt)):
        text = str(value).strip()
        if _norm(text) not in PORT_BPT:
            raise CatalogError(path, f"BPT value {text!r} is not one of Star Forming, Composite, Seyfert, LINER, BLANK")
        rows.append(CatalogRow(value=text, label=PORT_BPT[_norm(text)], specobjid=_id(path, specobjid)))
    return rows


def lenscat_path() -> Path:
    """The catalog.csv shipped by the lenscat package (found without importing its heavy modules)."""
    spec = find_spec("lenscat")
    if spec is None or spec.origin is None:
        raise CatalogError("lenscat", "the lenscat package is not installed (pip install lenscat)")
    return Path(spec.origin).parent / "data" / "catalog.csv"


def read_lenses(path: str | Path, reference: str = TALBOT_REF) -> list[CatalogRow]:
    """Lens candidates in the lenscat format, keeping rows that cite ``reference`` (Talbot et al. 2021)."""
    path = Path(path)
    columns, data = _table(path)
    name, ra, dec, zlens, grading, ref = _need(path, columns, "name", "RA [deg]", "DEC [deg]", "zlens", "grading", "ref")
    rows = []
    for row in data:
        if reference not in row[ref]:
            continue
        try:
            position = float(row[ra].split("|")[0]), float(row[dec].split("|")[0])
        except ValueError:
            raise CatalogError(path, f"row {row[name]!r}: RA/Dec {row[ra]!r}, {row[dec]!r} are not numbers") from None
        rows.append(CatalogRow(value=row[grading].strip(), label="lens", ra=position[0], dec=position[1],
                               details={"name": row[name].strip(), "zlens": row[zlens].strip(),
                                        "grading": row[grading].strip()}))
    return rows


def read_outliers(path: str | Path) -> list[CatalogRow]:
    """Baron & Poznanski (2017) outliers: class with specobjid or plate, mjd, fiberid."""
    path = Path(path)
    columns, data = _table(path)
    (kind,) = _need(path, columns, "class")
    rows = []
    for row in data:
        specobjid = row.get(columns.get("specobjid", ""), "").strip() if "specobjid" in columns else ""
        if specobjid:
            ident = {"specobjid": _id(path, specobjid)}
        elif all(c in columns for c in ("plate", "mjd", "fiberid")):
            ident = {"plate_mjd_fiber": tuple(int(row[columns[c]]) for c in ("plate", "mjd", "fiberid"))}
        else:
            raise CatalogError(path, "a row has neither specobjid nor plate, mjd, fiberid")
        rows.append(CatalogRow(value=row[columns["class"]].strip(), label=row[columns["class"]].strip(), **ident))
    return rows


def match_by_position(cat_ra, cat_dec, spec_ra, spec_dec, radius_arcsec: float = 2.0) -> np.ndarray:
    """For each catalog position, the index of the nearest spectrum within the radius, else -1."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if len(cat_ra) == 0 or len(spec_ra) == 0:
        return np.full(len(cat_ra), -1)
    catalog = SkyCoord(np.asarray(cat_ra) * u.deg, np.asarray(cat_dec) * u.deg)
    spectra = SkyCoord(np.asarray(spec_ra) * u.deg, np.asarray(spec_dec) * u.deg)
    index, separation, _ = catalog.match_to_catalog_sky(spectra)
    return np.where(separation.arcsec <= radius_arcsec, index, -1)


READERS = {
    "galspecextra": ("galSpecExtra*", read_galspecextra),
    "emissionlinesport": ("*emissionLinesPort*", read_emissionlinesport),
    "talbot2021": ("lenscat*.csv", read_lenses),
    "baron2017": ("baron_poznanski*.csv", read_outliers),
}
EXTRA_PATTERNS = {"emissionlinesport": ["portsmouth_emlinekin*"]}


def find_catalogs(folder: str | Path) -> dict[str, list[Path]]:
    """Catalog files under ``folder`` by their published names, per catalog key of READERS."""
    folder = Path(folder)
    found = {}
    for key, (pattern, _) in READERS.items():
        paths = set(folder.rglob(pattern))
        for extra in EXTRA_PATTERNS.get(key, []):
            paths |= set(folder.rglob(extra))
        paths = sorted(p for p in paths if p.is_file() and p.suffix.lower() in (".fits", ".csv", ".gz"))
        if paths:
            found[key] = paths
    return found
