"""A whole mock survey: galaxies drawn, observed, measured, classified and written to disk.

Each galaxy has its own random stream (spawned from the survey seed), so the survey is identical
whatever the number of worker processes, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from kb.identifiers import specobjid_decode, specobjid_encode
from kb.mock import populations, v2
from kb.mock.populations import MASSIVE_PER_LENS
from kb.mock.writer import write_catalogs, write_spectrum

MOCK_VERSION = 3  # the default; docs/mock_survey.md says what each version changed
SETTINGS = "mock_survey.json"  # beside the spectra: what the survey was generated with
FIBERS_PER_PLATE = 600
FIRST_PLATE = 300


def plate_layout(index: int, seed: int) -> dict:
    """Plate, MJD, fibre and sky position of the index-th spectrum (plates 300+, 3-degree fields)."""
    plate = FIRST_PLATE + index // FIBERS_PER_PLATE
    fiber = 1 + index % FIBERS_PER_PLATE
    rng = np.random.default_rng([seed, plate])  # the plate's centre and date, shared by its fibres
    mjd = int(51600 + rng.integers(0, 3000))
    ra0, dec0 = rng.uniform(120, 250), rng.uniform(-3, 60)
    fibre_rng = np.random.default_rng([seed, plate, fiber])
    radius, angle = 1.49 * np.sqrt(fibre_rng.random()), fibre_rng.uniform(0, 2 * np.pi)
    dec = dec0 + radius * np.sin(angle)
    ra = (ra0 + radius * np.cos(angle) / np.cos(np.radians(dec))) % 360
    return {
        "PLATE": plate,
        "MJD": mjd,
        "FIBERID": fiber,
        "PLUG_RA": float(ra),
        "PLUG_DEC": float(dec),
        "SPECOBJID": specobjid_encode(plate, mjd, fiber),
    }


VERSIONS = {2: v2, 3: populations}  # what each version draws and records; v2 is frozen


def make_one(task: tuple, *, background: bool = True) -> dict:
    """Draw, observe, measure and write one galaxy; returns its catalog row. ``background=False`` renders
    a lens without its background galaxy's lines (``populations.render``)."""
    index, seed, seed_seq, spectra_dir, version, *fractions = task
    galaxy, rng = _draw(seed_seq, version, fractions)
    observed, lines, catalog = VERSIONS[version].record(galaxy, rng, background=background)
    row = plate_layout(index, seed)
    row.update(catalog)
    row.update(
        population=galaxy.population,
        kind=galaxy.kind,
        z_source=galaxy.z_source,
        n2=galaxy.ratios.get("n2"),
        o3=galaxy.ratios.get("o3"),
        snr=galaxy.snr,
    )
    name = f"spec-{row['PLATE']:04d}-{row['MJD']:05d}-{row['FIBERID']:04d}.fits"
    write_spectrum(spectra_dir / f"{row['PLATE']:04d}" / name, row=row, observed=observed, lines=lines)
    return row


def generate_survey(
    *,
    out: str | Path,
    size: int,
    seed: int = 0,
    version: int = MOCK_VERSION,
    lens_fraction: float = 0.025,
    outlier_fraction: float = 0.025,
    massive_per_lens: float = MASSIVE_PER_LENS,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``size`` spectra to out/spectra/PLATE/spec-*.fits, the catalogs to out/catalogs/, and the
    truth to out/mock_truth.csv, as mock ``version`` models them. Returns counts per population, outlier
    kind and catalog class."""
    if size < 1:
        raise ValueError("a survey needs at least one spectrum")
    if version not in VERSIONS:
        raise ValueError(f"mock version {version} does not exist; choose one of {', '.join(map(str, VERSIONS))}")
    if not 0 <= lens_fraction * (1 + massive_per_lens) + outlier_fraction <= 1:
        raise ValueError(
            f"lenses, the {massive_per_lens:g} massive galaxies matched to each and outliers would be "
            f"{lens_fraction * (1 + massive_per_lens) + outlier_fraction:.0%} of the survey: lower the fractions"
        )
    out = Path(out)
    spectra_dir = out / "spectra"
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS).write_text(
        json.dumps(
            {
                "version": version,
                "size": size,
                "seed": seed,
                "lens_fraction": lens_fraction,
                "outlier_fraction": outlier_fraction,
                "massive_per_lens": massive_per_lens,
            },
            indent=2,
        )
    )
    seeds = np.random.SeedSequence(seed).spawn(size)
    fractions = (lens_fraction, outlier_fraction, massive_per_lens)
    tasks = [(i, seed, seeds[i], spectra_dir, version, *fractions) for i in range(size)]
    rows = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(make_one, tasks, chunksize=32):
                rows.append(row)
                if on_progress:
                    on_progress(len(rows), size)
    else:
        for task in tasks:
            rows.append(make_one(task))
            if on_progress:
                on_progress(len(rows), size)
    write_catalogs(out / "catalogs", rows)
    _write_truth(out / "mock_truth.csv", rows, VERSIONS[version].TRUTH_EXTRA)
    summary = {
        "version": version,
        "spectra": len(rows),
        "populations": dict(Counter(r["population"] for r in rows)),
        "outlier_kinds": dict(Counter(r["kind"] for r in rows if r["population"] == "outlier")),
        "galspecextra_bptclass": dict(Counter(r["BPTCLASS"] for r in rows)),
        "portsmouth_bpt": dict(Counter(r["PORT_BPT"] for r in rows)),
        "lenses_catalogued": sum(r["lens_catalogued"] for r in rows),
    }
    if "eplusa_catalogued" in rows[0]:
        summary["eplusa_catalogued"] = sum(r["eplusa_catalogued"] for r in rows)
    return summary


def render_again(survey: str | Path, specobjid: int, out: str | Path, *, background: bool = True) -> Path:
    """One spectrum of the mock survey in folder ``survey`` written again into folder ``out``, exactly as
    generated (same galaxy, same noise), or with ``background=False`` without a lens's background lines.
    Returns the file's path. ValueError if the folder is not a mock survey or the spectrum is not in it."""
    index, seed, seed_seq, version, fractions = _locate(survey, specobjid)
    row = make_one((index, seed, seed_seq, Path(out), version, *fractions), background=background)
    return Path(out) / f"{row['PLATE']:04d}" / f"spec-{row['PLATE']:04d}-{row['MJD']:05d}-{row['FIBERID']:04d}.fits"


def galaxy_again(survey: str | Path, specobjid: int):
    """The truth behind one spectrum of the mock survey in folder ``survey`` (drawn again, nothing written),
    including what mock_truth.csv leaves out, such as a lens's background-line S/N: the ``MockGalaxy`` of
    the survey's version. ValueError as ``render_again``."""
    _, _, seed_seq, version, fractions = _locate(survey, specobjid)
    return _draw(seed_seq, version, fractions)[0]


def _draw(seed_seq: np.random.SeedSequence, version: int, fractions) -> tuple:
    """A spectrum's galaxy from its own random stream, and the stream, which goes on to observe it."""
    rng = np.random.default_rng(seed_seq)
    lens_fraction, outlier_fraction, massive_per_lens = fractions
    galaxy = VERSIONS[version].draw_galaxy(
        rng, lens_fraction=lens_fraction, outlier_fraction=outlier_fraction, massive_per_lens=massive_per_lens
    )
    return galaxy, rng


def _locate(survey: str | Path, specobjid: int) -> tuple[int, int, np.random.SeedSequence, int, tuple]:
    """Where ``specobjid`` sits in the mock survey in folder ``survey``: its index, the survey's seed, the
    spectrum's own random stream, the mock version and the survey's (lens, outlier, massive-per-lens)
    fractions."""
    survey = Path(survey)
    if not (survey / SETTINGS).exists():
        raise ValueError(f"{survey} is not a mock survey (no {SETTINGS}): it cannot be rendered again")
    settings = json.loads((survey / SETTINGS).read_text())
    version = settings.get("version")
    if version not in VERSIONS:
        raise ValueError(
            f"{survey} is a mock survey of version {version}; this code renders versions "
            f"{', '.join(map(str, VERSIONS))} and would not give the same spectra"
        )
    plate, mjd, fiber, _ = specobjid_decode(int(specobjid))
    index = (plate - FIRST_PLATE) * FIBERS_PER_PLATE + fiber - 1
    layout = plate_layout(index, settings["seed"]) if 0 <= index < settings["size"] else {}
    if (layout.get("PLATE"), layout.get("MJD"), layout.get("FIBERID")) != (plate, mjd, fiber):
        raise ValueError(f"specobjid {specobjid} is not a spectrum of the mock survey in {survey}")
    seed_seq = np.random.SeedSequence(settings["seed"], spawn_key=(index,))  # as generate_survey's spawn(size)[index]
    fractions = (settings["lens_fraction"], settings["outlier_fraction"], settings["massive_per_lens"])
    return index, settings["seed"], seed_seq, version, fractions


TRUTH = (
    "specobjid",
    "plate",
    "mjd",
    "fiberid",
    "population",
    "kind",
    "z",
    "z_source",
    "vdisp",
    "snr",
    "n2",
    "o3",
    "BPTCLASS",
    "PORT_BPT",
)


def _write_truth(path: Path, rows: list[dict], extra: tuple[tuple[str, str], ...]) -> None:
    """What each mock spectrum really is (population, kind, redshifts, BPT ratios, catalog classes), as CSV;
    ``extra`` (column, format) are the version's own columns, after TRUTH's."""

    def number(value, spec: str) -> str:
        return "" if value is None else format(value, spec)

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRUTH + tuple(column for column, _ in extra))
        for r in rows:
            writer.writerow(
                [
                    r["SPECOBJID"],
                    r["PLATE"],
                    r["MJD"],
                    r["FIBERID"],
                    r["population"],
                    r["kind"],
                    f"{r['Z']:.5f}",
                    number(r["z_source"], ".5f"),
                    f"{r['VDISP']:.1f}",
                    f"{r['snr']:.2f}",
                    number(r["n2"], ".3f"),
                    number(r["o3"], ".3f"),
                    r["BPTCLASS"],
                    r["PORT_BPT"],
                    *(number(r[column], spec) for column, spec in extra),
                ]
            )
