"""Search tables: the list of queries a person uploads, a batch job's answers as CSV or VOTable, and the
columns of a survey search's CSV parts.

Plain Python over astropy tables (no Django). A query list is CSV with a header naming its columns:
``specobjid``, ``plate_mjd_fiber`` (or ``plate``, ``mjd``, ``fiberid``), ``identifier``, or ``ra`` and
``dec`` in degrees; a file with no recognised header is read as one identifier per line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np
from astropy.io.votable import from_table
from astropy.io.votable.tree import Param
from astropy.table import MaskedColumn, Table

IDENTIFIER_COLUMNS = ("identifier", "specobjid", "plate_mjd_fiber", "objid")
# one row per spectrum of a survey search: its vote, and its neighbours' specobjids and L2 distances, nearest first
# and how far to trust the vote (inference.trust)
SURVEY_COLUMNS = [
    "specobjid",
    "plate_mjd_fiber",
    "ra",  # degrees, J2000
    "dec",
    "z",
    "label",
    "share",
    "is_target",
    "neighbours",
    "distances",
    "valid_fraction",
    "z_in_range",
    "distance_percentile",
    "reconstruction_percentile",
    "in_distribution",
    "background_z",  # lens tasks: the background-line scan's z_source, its combined S/N, whether it passes the rule
    "background_snr",
    "background_detected",
    "weirdness",  # outlier tasks: L2 to the k-th nearest ordinary entry, and whether it passes the rule
    "weirdness_flagged",
    "mock",  # True for a spectrum of GalSpec's mock survey: its ids name no SDSS object
]


def read_queries(text: str) -> list[dict]:
    """Queries ``{"identifier": str}`` or ``{"ra": float, "dec": float}`` in file order; ValueError naming
    the line at fault. Blank lines and lines starting with '#' are skipped."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError("the list is empty: give one identifier per line, or a CSV with a specobjid or ra,dec header")
    rows = list(csv.reader(lines))
    header = [name.strip().lower() for name in rows[0]]
    if "ra" in header and "dec" in header:
        ra, dec = header.index("ra"), header.index("dec")
        queries = []
        for number, row in enumerate(rows[1:], start=2):
            try:
                queries.append({"ra": float(row[ra]), "dec": float(row[dec])})
            except (IndexError, ValueError):
                raise ValueError(
                    f"line {number}: expected numbers in the ra and dec columns, got {','.join(row)!r}"
                ) from None
        return queries
    if {"plate", "mjd", "fiberid"} <= set(header):
        columns = [header.index(name) for name in ("plate", "mjd", "fiberid")]
        try:
            return [{"identifier": "-".join(row[i].strip() for i in columns)} for row in rows[1:]]
        except IndexError:
            raise ValueError("every line needs plate, mjd and fiberid values") from None
    named = [name for name in IDENTIFIER_COLUMNS if name in header]
    if named:
        column = header.index(named[0])
        body = rows[1:]
    else:  # no header: the first column of every line
        column, body = 0, rows
    queries = []
    for number, row in enumerate(body, start=len(rows) - len(body) + 1):
        value = row[column].strip() if column < len(row) else ""
        if not value:
            raise ValueError(f"line {number}: no identifier")
        queries.append({"identifier": value})
    return queries


def _column(
    name: str, values: Sequence, dtype, description: str = "", unit: str | None = None, ucd: str | None = None
) -> MaskedColumn:
    """A column with its unit and its IVOA UCD (what TOPCAT and other VO tools read a column as)."""
    mask = [value is None for value in values]
    fill = {"U": "", "f": np.nan, "b": False, "i": -1}[np.dtype(dtype).kind]
    data = np.array([fill if value is None else value for value in values], dtype=dtype)
    return MaskedColumn(
        data, name=name, mask=mask, description=description, unit=unit, meta={"ucd": ucd} if ucd else {}
    )


def results_table(rows: Sequence[dict], *, k: int, meta: dict) -> Table:
    """One row per query: what was searched, the vote, and each of the ``k`` neighbours.

    ``rows`` are dicts with position, query, specobjid, plate_mjd_fiber, ra, dec, z, mock, label, share, is_target,
    neighbours (a list of dicts with specobjid, label, distance, weight), trust (``inference.trust.Trust``
    as a dict), background (a lens task's background-line scan, or None) and error; missing values are
    masked (empty in CSV, null in VOTable). ``meta`` (task, KB version, checkpoint, date) goes in the header.
    """
    columns = [
        _column("position", [r["position"] for r in rows], np.int64, "index of the query in the list"),
        _column("query", [r["query"] for r in rows], str, "what was searched"),
        _column(
            "specobjid",
            [r.get("specobjid") or None for r in rows],
            str,
            "the spectrum searched",
            ucd="meta.id;meta.main",
        ),
        _column("plate_mjd_fiber", [r.get("plate_mjd_fiber") or None for r in rows], str, ucd="meta.id"),
        _column("ra", [r.get("ra") for r in rows], np.float64, "right ascension, J2000", "deg", "pos.eq.ra;meta.main"),
        _column("dec", [r.get("dec") for r in rows], np.float64, "declination, J2000", "deg", "pos.eq.dec;meta.main"),
        _column("z", [r.get("z") for r in rows], np.float64, "spectroscopic redshift", ucd="src.redshift"),
        _column("mock", [r.get("mock") for r in rows], bool, "from GalSpec's mock survey: names no SDSS object"),
        _column(
            "label", [r.get("label") or None for r in rows], str, "the label the neighbours voted for", ucd="src.class"
        ),
        _column(
            "share",
            [r.get("share") for r in rows],
            np.float64,
            "the label's share of the vote weight",
            ucd="stat.weight",
        ),
        _column("is_target", [r.get("is_target") for r in rows], bool, "the label is one the task searches for"),
    ]
    for i in range(k):
        picked = [r["neighbours"][i] if i < len(r.get("neighbours") or []) else {} for r in rows]
        n = i + 1
        columns += [
            _column(f"neighbour{n}_specobjid", [p.get("specobjid") for p in picked], str),
            _column(f"neighbour{n}_label", [p.get("label") for p in picked], str),
            _column(f"neighbour{n}_distance", [p.get("distance") for p in picked], np.float64, "L2 between embeddings"),
            _column(f"neighbour{n}_weight", [p.get("weight") for p in picked], np.float64, "share of the vote"),
        ]
    trust = [r.get("trust") or {} for r in rows]
    columns += [
        _column(
            "in_distribution",
            [t.get("in_distribution") for t in trust],
            bool,
            "the query is like the spectra the knowledge base was checked on (false: do not act on the vote unseen)",
        ),
        _column("valid_fraction", [t.get("valid_fraction") for t in trust], np.float64, "share of pixels valid"),
        _column("z_in_range", [t.get("z_in_range") for t in trust], bool, "z within the knowledge base's range"),
        _column(
            "distance_percentile",
            [t.get("distance_percentile") for t in trust],
            np.float64,
            "the nearest distance's percentile among validation spectra's",
        ),
        _column(
            "reconstruction_percentile",
            [t.get("reconstruction_percentile") for t in trust],
            np.float64,
            "the encoder's reconstruction chi-squared's percentile among validation spectra's",
        ),
        _column("trust_reasons", ["; ".join(t.get("reasons") or []) or None for t in trust], str, "why not"),
    ]
    if any(r.get("background") for r in rows):  # a lens task: the scan for a second galaxy's lines
        background = [r.get("background") or {} for r in rows]
        columns += [
            _column(
                "background_z",
                [b.get("z_source") for b in background],
                np.float64,
                "redshift of the best background emission-line candidate",
                ucd="src.redshift",
            ),
            _column(
                "background_snr",
                [b.get("snr") for b in background],
                np.float64,
                "its lines' matched-filter S/N in quadrature",
                ucd="stat.snr",
            ),
            _column(
                "background_detected",
                [b.get("detected") if b else None for b in background],
                bool,
                "it passes the knowledge base's rule",
            ),
            _column(
                "background_quiet_host",
                [b.get("quiet_host") if b else None for b in background],
                bool,
                "the galaxy shows no emission lines of its own (its SPZLINE lines place it nowhere on the BPT diagram)",
            ),
            _column(
                "background_threshold",
                [b.get("threshold") for b in background],
                np.float64,
                "the rule's combined S/N, chosen on validation (empty: the vote alone)",
                ucd="stat.snr",
            ),
            _column(
                "background_hosts",
                [b.get("hosts") for b in background],
                str,
                "which galaxies the rule looks behind: any, or quiet ones only",
            ),
            _column(
                "background_combine",
                [b.get("combine") for b in background],
                str,
                "how the lines join the vote: either (a target where the vote or the lines say so) or lines alone",
            ),
        ]
    if any(r.get("weirdness") for r in rows):  # an outlier task: how far from every ordinary galaxy
        weirdness = [r.get("weirdness") or {} for r in rows]
        columns += [
            _column(
                "weirdness",
                [w.get("score") for w in weirdness],
                np.float64,
                "L2 to the k-th nearest ordinary entry of the knowledge base (its metric)",
            ),
            _column(
                "weirdness_flagged",
                [w.get("flagged") if w else None for w in weirdness],
                bool,
                "past the threshold chosen on validation: a target whatever the vote",
            ),
        ]
    columns.append(_column("error", [r.get("error") or None for r in rows], str, "why the query has no answer"))
    return Table(columns, meta=dict(meta))


def candidates_table(rows: Sequence[dict], *, meta: dict) -> Table:
    """A survey search's candidates, one row each: the spectrum (specobjid, plate_mjd_fiber, ra, dec, z, mock),
    its vote (label, share, distance to the nearest neighbour, neighbours' specobjids), whether it was
    already catalogued with that label (known) and in distribution. ``meta`` goes in the header."""
    columns = [
        _column("specobjid", [r["specobjid"] for r in rows], str, "the spectrum", ucd="meta.id;meta.main"),
        _column("plate_mjd_fiber", [r["plate_mjd_fiber"] for r in rows], str, ucd="meta.id"),
        _column("ra", [r["ra"] for r in rows], np.float64, "right ascension, J2000", "deg", "pos.eq.ra;meta.main"),
        _column("dec", [r["dec"] for r in rows], np.float64, "declination, J2000", "deg", "pos.eq.dec;meta.main"),
        _column("z", [r["z"] for r in rows], np.float64, "spectroscopic redshift", ucd="src.redshift"),
        _column("label", [r["label"] for r in rows], str, "the label its neighbours voted", ucd="src.class"),
        _column("share", [r["share"] for r in rows], np.float64, "the label's share of the vote", ucd="stat.weight"),
        _column("distance", [r["distance"] for r in rows], np.float64, "L2 distance to the nearest neighbour"),
        _column("known", [r["known"] for r in rows], bool, "already catalogued with this label"),
        _column("in_distribution", [r["in_distribution"] for r in rows], bool, "like what the KB was checked on"),
        _column("neighbours", [" ".join(r["neighbours"]) for r in rows], str, "neighbours' specobjids, nearest first"),
        _column("mock", [r["mock"] for r in rows], bool, "from GalSpec's mock survey: names no SDSS object"),
    ]
    return Table(columns, meta=dict(meta))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet runs as a formula (OWASP, CSV injection)


def spreadsheet_safe(value):
    """``value`` as a CSV cell a spreadsheet shows and never runs: text that starts as a formula would, and is
    not a number (a negative declination stays as it is), gets a leading apostrophe, as OWASP advises."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def table_csv(table: Table) -> str:
    """CSV with an ECSV header: the table's metadata (task, knowledge base, checkpoint, date), each column's
    unit and description in '#' lines that astropy and TOPCAT read, and plain CSV below them. Text cells are
    ``spreadsheet_safe``: a label a catalog's owner chose cannot run in whoever opens the file."""
    table = table.copy()
    for column in list(table.itercols()):
        if column.dtype.kind != "U":
            continue
        data = np.ma.getdata(column)
        cells = np.array([spreadsheet_safe(str(value)) for value in data], dtype=str)
        if len(cells) and (cells != data).any():
            safe = MaskedColumn(cells, name=column.name, mask=np.ma.getmaskarray(column), unit=column.unit)
            safe.description, safe.meta = column.description, dict(column.meta)
            table.replace_column(column.name, safe)
    out = io.StringIO()
    table.write(out, format="ascii.ecsv", delimiter=",")
    return out.getvalue()


def table_votable(table: Table) -> bytes:
    """A VOTable whose fields carry units and UCDs, and whose PARAMs carry the table's metadata."""
    votable = from_table(table)
    fields = votable.get_first_table()
    for name, value in table.meta.items():
        fields.params.append(Param(votable, name=name, value=str(value), datatype="char", arraysize="*"))
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()
