"""Ingesting a folder of SDSS-format spectrum files and the catalogs that label them."""

from __future__ import annotations

import fcntl
import math
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from kb import catalogs
from kb.models import CatalogLabel, IngestRun, Spectrum
from kb.preprocess import PAPER, prepare_file
from kb.reserves import TEST, VALIDATION, reserve
from kb.selectors import spectrum_store
from kb.sky import match_by_position
from kb.spectra import SdssSpectrum, lines_as_dict
from kb.store import RowStore, SpectrumStore

SPECTRUM_FILE = re.compile(r"^spec-(\d{4,5})-(\d{5})-(\d{4})\.fits(\.gz)?$")
BATCH = 128


@dataclass
class IngestSummary:
    found: int = 0
    added: int = 0
    already: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # file name -> reason
    labels_added: Counter = field(default_factory=Counter)  # catalog -> new labels
    labels_unmatched: Counter = field(default_factory=Counter)  # catalog -> rows with no ingested spectrum
    catalog_errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "found": self.found,
            "added": self.added,
            "already_ingested": self.already,
            "rejected": self.rejected,
            "labels_added": dict(self.labels_added),
            "labels_unmatched": dict(self.labels_unmatched),
            "catalog_errors": self.catalog_errors,
        }


def spectrum_files(folder: Path) -> list[Path]:
    """Every spec-*.fits(.gz) file under ``folder``, in a stable order."""
    return sorted(p for p in folder.rglob("spec-*.fits*") if p.is_file() and ".part" not in p.suffixes)


@contextmanager
def _ingest_lock():
    """One ingest at a time per deployment: they append to the same array store."""
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.DATA_DIR / "ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError("another ingest is running on this deployment; try again when it ends") from None
        yield


def ingest_folder(
    *, folder: str | Path, workers: int = 1, on_progress: Callable[[int, int], None] | None = None
) -> IngestSummary:
    """Ingest every spectrum and catalog under ``folder``: idempotent and resumable.

    Spectra go in batches: the preprocessed flux is appended to the array store, then the batch's
    rows are committed to the database in one transaction. Store rows that no committed record
    points to (left by a crash) are dropped before starting. A bad file is reported by name with its
    reason and nothing of it is written; the others are ingested. Catalogs are read after the spectra
    and their rows attached to the ingested spectra they match. ``workers`` processes read and
    preprocess the files; this process alone writes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    summary = IngestSummary()
    with _ingest_lock():
        run = IngestRun.objects.create(source=str(folder.resolve()))
        store = spectrum_store()
        store.truncate(_committed_rows())
        files = spectrum_files(folder)
        summary.found = len(files)
        known = set(Spectrum.objects.values_list("plate", "mjd", "fiberid"))
        todo = []
        for path in files:
            match = SPECTRUM_FILE.match(path.name)
            ids = tuple(int(g) for g in match.groups()[:3]) if match else None
            if ids in known:
                summary.already += 1
            else:
                todo.append(path)
        done = summary.already
        if on_progress:
            on_progress(done, len(files))
        with ExitStack() as stack:
            read = map
            if workers > 1 and len(todo) > 1:
                pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("spawn")))
                read = partial(pool.map, chunksize=8)
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                _ingest_batch(batch, store, summary, read)
                done += len(batch)
                if on_progress:
                    on_progress(done, len(files))
        _ingest_catalogs(folder, summary)
    run.finished_at = timezone.now()
    run.summary = summary.as_dict()
    run.save(update_fields=["finished_at", "summary"])
    return summary


def _committed_rows() -> int:
    last = Spectrum.objects.aggregate(last=Max("store_row"))["last"]
    return 0 if last is None else last + 1


def _ingest_batch(paths: list[Path], store: SpectrumStore, summary: IngestSummary, read=map) -> None:
    """Read and preprocess ``paths`` (with ``read``, map or a process pool's map), then store them."""
    records, grids = [], []
    seen = set()  # specobjids in this batch: the same spectrum under two file names is ingested once
    for prepared in read(prepare_file, paths):
        if prepared.error:
            summary.rejected[prepared.path.name] = prepared.error
            continue
        spectrum, grid = prepared.spectrum, prepared.grid
        key = str(spectrum.specobjid)
        if key in seen:
            summary.already += 1
            continue
        seen.add(key)
        records.append(_spectrum_record(spectrum, grid.norm, grid.valid, prepared.sha256))
        grids.append(grid)
    if not records:
        return
    ids = [record.specobjid for record in records]
    existing = set(Spectrum.objects.filter(specobjid__in=ids).values_list("specobjid", flat=True))
    keep = [i for i, r in enumerate(records) if r.specobjid not in existing]
    summary.already += len(records) - len(keep)
    if not keep:
        return
    first = store.append(*(np.stack([getattr(grids[i], part) for i in keep]) for part in ("flux", "valid", "ivar")))
    for offset, i in enumerate(keep):
        records[i].store_row = first + offset
    with transaction.atomic():
        Spectrum.objects.bulk_create([records[i] for i in keep])
    summary.added += len(keep)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


COPIED = ("plate", "mjd", "fiberid", "z", "zwarning", "sdss_class", "subclass", "run2d", "mock")  # as the file has them
MEASURED = ("ra", "dec", "z_err", "sn_median", "vdisp")  # NaN in a file (not measured) becomes NULL


def _spectrum_record(spectrum: SdssSpectrum, norm: float, valid: np.ndarray, sha256: str) -> Spectrum:
    return Spectrum(
        specobjid=str(spectrum.specobjid),
        **{name: getattr(spectrum, name) for name in COPIED},
        **{name: _finite(getattr(spectrum, name)) for name in MEASURED},
        norm=norm,
        held_out=reserve(spectrum.specobjid) == TEST,
        validation=reserve(spectrum.specobjid) == VALIDATION,
        valid_fraction=float(valid.mean()),
        lines=lines_as_dict(spectrum.lines),
        source_file=spectrum.path,
        source_sha256=sha256,
    )


def _ingest_catalogs(folder: Path, summary: IngestSummary) -> None:
    """Attach the rows of every catalog found under ``folder`` to the ingested spectra they match.

    Rows are matched by specobjid, by plate-MJD-fiber, or (a catalog whose ``match`` is "position", as lens
    candidates are) by sky position within 2 arcsec. A label already stored for the same spectrum and
    catalog is updated, never duplicated.
    """
    found = catalogs.find_catalogs(folder)
    if not found:
        return
    spectra = list(Spectrum.objects.values_list("id", "specobjid", "plate", "mjd", "fiberid", "ra", "dec"))
    by_specobjid = {int(s[1]): s[0] for s in spectra}
    by_plate_mjd_fiber = {(s[2], s[3], s[4]): s[0] for s in spectra}
    positioned = [s for s in spectra if s[5] is not None and s[6] is not None]
    for key, paths in found.items():
        source = catalogs.CATALOG_SOURCES[key]
        for path in paths:
            try:
                rows = source.reader(path)
            except catalogs.CatalogError as error:
                summary.catalog_errors[path.name] = error.reason
                continue
            if source.match == "position":
                index = match_by_position(
                    [r.ra for r in rows], [r.dec for r in rows], [s[5] for s in positioned], [s[6] for s in positioned]
                )
                matched = [(r, positioned[i][0] if i >= 0 else None) for r, i in zip(rows, index)]
            else:
                matched = [
                    (
                        r,
                        by_specobjid.get(r.specobjid)
                        if r.specobjid is not None
                        else by_plate_mjd_fiber.get(r.plate_mjd_fiber),
                    )
                    for r in rows
                ]
            labels = [
                CatalogLabel(
                    spectrum_id=spectrum_id,
                    catalog=key,
                    value=row.value,
                    label=row.label,
                    details=row.details,
                    source_file=str(path),
                )
                for row, spectrum_id in matched
                if spectrum_id is not None
            ]
            summary.labels_unmatched[key] += len(rows) - len(labels)
            before = CatalogLabel.objects.filter(catalog=key).count()
            with transaction.atomic():
                CatalogLabel.objects.bulk_create(
                    labels,
                    batch_size=500,
                    update_conflicts=True,
                    unique_fields=["spectrum", "catalog"],
                    update_fields=["value", "label", "details", "source_file"],
                )
            summary.labels_added[key] += CatalogLabel.objects.filter(catalog=key).count() - before


def spectrum_store_upgrade(*, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Give a spectrum store written before inverse variances were kept its ``ivar`` rows, read again from
    each spectrum's source file (which must be where it was, unchanged: its sha256 is checked) and
    preprocessed as at ingest. A row no spectrum points to (an append never committed) gets ivar 0. Nothing
    changes unless every file can be read. Returns the rows written; 0 if the store needs no upgrade."""
    folder = settings.DATA_DIR / "spectra"
    if not SpectrumStore.lacks_ivar(folder):
        return 0
    rows = RowStore(folder, "flux", width=PAPER.n_pixels).rows
    sources = {
        row: (path, sha) for row, path, sha in Spectrum.objects.values_list("store_row", "source_file", "source_sha256")
    }

    def blocks():
        for start in range(0, rows, BATCH):
            block = np.zeros((min(BATCH, rows - start), PAPER.n_pixels), dtype=np.float32)
            for offset in range(len(block)):
                if start + offset not in sources:
                    continue
                path, sha256 = sources[start + offset]
                prepared = prepare_file(Path(path))
                if prepared.error:
                    raise ValueError(f"{path}: {prepared.error}; the store was not upgraded")
                if prepared.sha256 != sha256:
                    raise ValueError(f"{path} changed since it was ingested; the store was not upgraded")
                block[offset] = prepared.grid.ivar
            if on_progress:
                on_progress(start + len(block), rows)
            yield block

    return SpectrumStore.ivar_add(folder, PAPER.n_pixels, blocks())
