"""An astronomer's own catalog of examples, read from CSV or VOTable: which spectra it names (by specobjid,
PLATE-MJD-FIBER, plate/mjd/fiberid columns, or RA/Dec) and the label it gives each.

Pure Python; never imports Django.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import defusedxml.ElementTree as safe_xml
import numpy as np
from astropy.io import ascii as astropy_ascii
from astropy.io.votable import parse_single_table
from astropy.table import Table
from defusedxml import DefusedXmlException

ID_COLUMNS = ("specobjid", "plate_mjd_fiber", "identifier")
PLATE_COLUMNS = ("plate", "mjd", "fiberid")
LABEL_COLUMNS = ("label", "class")
USABLE = "specobjid, plate_mjd_fiber (or identifier: either), plate + mjd + fiberid, or ra + dec"
MAX_BYTES = 32 * 2**20  # a catalog of examples, not a survey: 100,000 rows of CSV take a few MB
MAX_ROWS = 100_000


@dataclass(frozen=True)
class Example:
    """One row of the catalog: its number (1 for the first after the header), what names its spectrum
    (``key``: 'specobjid', 'plate_mjd_fiber' or 'position'; ``value``: the id, or (ra, dec) in degrees)
    and its label (None where the catalog gives none)."""

    row: int
    key: str
    value: str | tuple[float, float]
    label: str | None


def read_examples(data: bytes, filename: str = "") -> list[Example]:
    """The examples of a CSV or VOTable catalog; ValueError saying what is wrong with it."""
    size_check(len(data), filename)
    table = _table(data, filename)
    columns = {name.strip().lower(): name for name in table.colnames}
    label_column = next((columns[name] for name in LABEL_COLUMNS if name in columns), None)
    if "plate" in columns and "fiber" in columns and "fiberid" not in columns:
        columns["fiberid"] = columns["fiber"]
    if not table or not len(table):
        raise ValueError("the catalog has no rows")
    if len(table) > MAX_ROWS:
        raise ValueError(
            f"the catalog has {len(table):,} rows; a task is defined by at most {MAX_ROWS:,} examples: "
            "send a sample of them"
        )
    examples = []
    for number, record in enumerate(table, start=1):
        label = _text(record[label_column]) if label_column else None
        examples.append(Example(number, *_name(record, columns, number), label or None))
    return examples


def size_check(size: int, filename: str = "") -> None:
    """ValueError if a catalog of ``size`` bytes is too large to be one of examples: callers check an upload's
    size before reading it."""
    if size > MAX_BYTES:
        raise ValueError(
            f"{filename or 'the file'} is {size / 2**20:.0f} MB; a catalog of examples may be at most "
            f"{MAX_BYTES // 2**20} MB: keep only the identifier and label columns"
        )


def _table(data: bytes, filename: str) -> Table:
    if not data.strip():
        raise ValueError(f"{filename or 'the file'} is empty")
    if data.lstrip()[:5] in (b"<?xml", b"<VOTA"):
        inline_only(data, filename)
        try:
            return parse_single_table(io.BytesIO(data)).to_table()
        except Exception as error:  # astropy raises many kinds on a broken VOTable
            raise ValueError(f"{filename or 'the file'} is not a VOTable astropy can read: {error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{filename or 'the file'} is neither a UTF-8 CSV nor a VOTable") from None
    try:
        # every column as text: a specobjid past 2**63 must not become a float
        return astropy_ascii.read(text, format="csv", converters={"*": [astropy_ascii.convert_numpy(str)]})
    except Exception as error:  # astropy's CSV reader raises several kinds
        raise ValueError(f"{filename or 'the file'} is not a CSV with a header line: {error}") from None


def inline_only(data: bytes, filename: str = "") -> None:
    """ValueError unless a VOTable carries its rows inline (TABLEDATA, or BINARY/BINARY2 streams in base64).

    astropy follows a ``STREAM href`` (``file://``, ``http://``) with urlopen, and FITS and PARQUET elements
    exist only to point at files: a catalog upload must never make the server read a path or a URL. The XML
    is parsed first with defusedxml, which also refuses DTDs and entities (no external entity, no entity
    expansion), so what astropy then reads is this same tree."""
    name = filename or "the file"
    try:
        root = safe_xml.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise ValueError(f"{name}: a VOTable upload may not declare a DTD or entities; remove them") from None
    except safe_xml.ParseError as error:
        raise ValueError(f"{name} is not a VOTable astropy can read: {error}") from None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        if tag in ("FITS", "PARQUET"):
            raise ValueError(f"{name}: its table's data is a {tag} file it points to; send the rows inline (TABLEDATA)")
        if tag == "STREAM" and any(key.rsplit("}", 1)[-1] == "href" for key in element.attrib):
            raise ValueError(
                f"{name}: its table's data is a STREAM pointing elsewhere ({element.attrib.get('href', '')[:80]!r}); "
                "GalSpec reads only what is in the file: send the rows inline (TABLEDATA, or BINARY in base64)"
            )


def _name(record, columns: dict[str, str], number: int) -> tuple[str, str | tuple[float, float]]:
    """What names a row's spectrum, by the first usable column it fills."""
    for key in ID_COLUMNS:
        if key in columns and _text(record[columns[key]]):
            value = _text(record[columns[key]])
            return ("plate_mjd_fiber" if "-" in value else "specobjid"), value
    if all(name in columns for name in PLATE_COLUMNS):
        values = [_text(record[columns[name]]) for name in PLATE_COLUMNS]
        if all(values):
            return "plate_mjd_fiber", "-".join(values)
    if "ra" in columns and "dec" in columns:
        ra_text, dec_text = _text(record[columns["ra"]]), _text(record[columns["dec"]])
        if ra_text or dec_text:
            try:
                ra, dec = float(ra_text), float(dec_text)
            except ValueError:
                ra = dec = np.nan
            if not (np.isfinite(ra) and np.isfinite(dec)):
                raise ValueError(f"row {number}: RA {ra_text!r} and Dec {dec_text!r} must both be numbers, in degrees")
            if not -90 <= dec <= 90:
                raise ValueError(f"row {number}: Dec {dec:g} is not between -90 and 90 degrees")
            return "position", (ra % 360, dec)
    found = ", ".join(columns.values()) or "none"
    if not any(key in columns for key in (*ID_COLUMNS, "plate", "ra")):
        raise ValueError(f"no column names a spectrum: give {USABLE} (columns found: {found})")
    raise ValueError(f"row {number} names no spectrum: fill {USABLE}")


def _text(value) -> str:
    if value is None or np.ma.is_masked(value):
        return ""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()
