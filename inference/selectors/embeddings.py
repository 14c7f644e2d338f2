"""Reads of the embeddings, and the pipeline at a glance."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
from django.conf import settings

from inference import continuum, line_measures, night_sky
from inference.continuum import EigenContinuum, fit_eigen_continuum
from inference.models import EmbeddingSet
from inference.representation import needs_embedding, needs_flux, needs_ivar, represent
from inference.retriever import VotePolicy
from kb import bpt, line_indices, preprocess
from kb.models import Spectrum
from kb.selectors import bpt_labels, label_counts, last_ingest, spectrum_redshifts, spectrum_store
from kb.store import RowStore
from training.models import TrainingRun
from training.selectors import training_run_in_service, training_run_list


def embedding_store(embedding_set: EmbeddingSet) -> RowStore:
    """The array store of an embedding set: row i is the embedding of the spectrum with ``store_row`` i."""
    return RowStore(embedding_set.path, "vectors", width=embedding_set.width, dtype="float32")


def reconstruction_store(embedding_set: EmbeddingSet) -> RowStore:
    """Row i: how well the checkpoint's masked model reconstructs the spectrum with ``store_row`` i
    (``inference.embed.reconstruction_chi2``), computed with its embedding."""
    return RowStore(embedding_set.path, "reconstruction", width=1, dtype="float32")


def embedding_vectors(*, training_run: TrainingRun, store_rows) -> np.ndarray:
    """(n, width) float32 embeddings under ``training_run`` of the spectra at ``store_rows`` (n,), which
    must already be embedded (``inference.services.embeddings.embedding_update``)."""
    embedding_set, store_rows = _embedded(training_run, store_rows)
    return np.array(embedding_store(embedding_set).read()[store_rows], dtype=np.float32)


def representation_vectors(*, training_run: TrainingRun, policy: VotePolicy, store_rows) -> np.ndarray:
    """(n, D) float32 vectors of the spectra at ``store_rows`` (n,) in the representation a knowledge base
    votes in (``policy.representation``, ``inference.representation``): their embeddings under
    ``training_run``, what their flux shows at their redshifts (with its inverse variance, for the lines), or
    both."""
    store_rows = np.asarray(store_rows, dtype=np.int64)
    name = policy.representation
    embedding = embedding_vectors(training_run=training_run, store_rows=store_rows) if needs_embedding(name) else None
    lines = line_vectors(store_rows=store_rows) if needs_ivar(name) else None  # as kept: no pixels needed
    flux = valid = z = None
    if needs_flux(name) and lines is None:
        flux_all, valid_all = spectrum_store().read()
        flux, valid = np.asarray(flux_all[store_rows]), np.asarray(valid_all[store_rows])
        z = _redshifts(store_rows)
    return represent(name, embedding, flux, valid, z, window_scale=policy.window_scale, lines=lines)


def line_vectors(*, store_rows) -> np.ndarray:
    """(n, len(line_measures.FEATURES)) float32: the lines of the spectra at ``store_rows`` (n,) measured from
    their pixels (``inference.line_measures.line_features``), as kept beside the spectrum store.

    Measuring takes milliseconds a spectrum and every knowledge-base build, calibration and evaluation reads
    the lines of the whole survey, so each row's measurement is kept (``line_store``) with a checksum of the
    pixels and redshift it was measured on, and measured again only where that no longer matches (a row
    rewritten, the store rebuilt). The store's name carries a digest of the measuring code, so that changing
    it measures every row afresh. A memo of a pure function: any process may fill it, and two filling the
    same rows write the same values."""
    store_rows = np.asarray(store_rows, dtype=np.int64)
    out = np.zeros((len(store_rows), len(line_measures.FEATURES)), dtype=np.float32)
    if not len(store_rows):
        return out
    spectra = spectrum_store()
    (flux_all, valid_all), ivar_all = spectra.read(), spectra.read_ivar()
    z = _redshifts(store_rows)
    checksums = np.array(
        [_checksum(flux_all[r], valid_all[r], ivar_all[r], z[i]) for i, r in enumerate(store_rows)], dtype=np.float64
    )
    kept, eigen = line_store(), line_continuum()
    known = kept.read()
    inside = store_rows < len(known)
    fresh = np.zeros(len(store_rows), dtype=bool)
    fresh[inside] = known[store_rows[inside], 0] == checksums[inside]
    out[fresh] = known[store_rows[fresh], 1:]
    todo = np.flatnonzero(~fresh)
    for start in range(0, len(todo), LINE_CHUNK):
        part = todo[start : start + LINE_CHUNK]
        rows = store_rows[part]
        out[part] = line_measures.line_features(flux_all[rows], valid_all[rows], z[part], ivar_all[rows], eigen)
        _line_keep(kept, rows, np.hstack([checksums[part, None], out[part]]))
    return out


LINE_CHUNK = 2000  # rows measured, then kept, at a time


def line_store() -> RowStore:
    """Where ``line_vectors`` keeps each store row's lines: (checksum, *features) float64 rows, named by a
    digest of the measuring code and of the eigen-continuum it measures under (``line_continuum``)."""
    eigen = line_continuum()
    name = f"features-{_code_digest()}-{eigen.digest if eigen else 'median'}"
    return RowStore(settings.DATA_DIR / "lines", name, width=len(line_measures.FEATURES) + 1, dtype="float64")


def line_continuum() -> EigenContinuum | None:
    """The eigen-continuum every line measurement of this data folder is made under (``inference.continuum``):
    fitted once, from the first CONTINUUM_CANDIDATES spectra of the training reserve by store row (never a
    validation or test spectrum) whose own lines, measured over a running median, all have S/N under
    QUIET_SNR, and kept beside the lines (a new measuring code fits it again). None where fewer than
    ``continuum.MIN_SPECTRA`` are quiet: the lines are then measured over the running median alone."""
    path = settings.DATA_DIR / "lines" / f"continuum-{_code_digest()}.npz"
    if not path.exists():
        _continuum_fit(path)
    stamp = path.stat().st_mtime_ns
    if _CONTINUUM.get(path, (None,))[0] != stamp:
        with np.load(path) as kept:
            _CONTINUUM[path] = (stamp, EigenContinuum(kept["basis"]) if kept["basis"].size else None)
    return _CONTINUUM[path][1]


CONTINUUM_CANDIDATES = 4000
QUIET_SNR = 2.0  # every one of QUIET_LINES under this S/N: a spectrum the eigen-continuum is learnt from
QUIET_LINES = ("[O II] 3727", "H-beta", "[O III] 5007", "H-alpha", "[N II] 6583")
_CONTINUUM: dict[Path, tuple[int, EigenContinuum | None]] = {}  # path: (its mtime, what it holds), per process


def _continuum_fit(path: Path) -> None:
    """Fit ``line_continuum``'s eigen-spectra and write them to ``path`` (an empty basis: too few quiet
    spectra), whole or not at all."""
    (flux, valid), ivar = spectrum_store().read(), spectrum_store().read_ivar()
    rows, z = _quiet_training_spectra(flux, valid, ivar)
    try:
        basis = fit_eigen_continuum(line_measures.WAVE, flux[rows], valid[rows] & (ivar[rows] > 0), z).basis
    except ValueError:
        basis = np.empty((0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npz")
    np.savez(partial, basis=basis, store_rows=rows)
    os.replace(partial, path)


def _quiet_training_spectra(flux, valid, ivar) -> tuple[np.ndarray, np.ndarray]:
    """(store rows, redshifts) of the training reserve's first CONTINUUM_CANDIDATES spectra whose QUIET_LINES,
    measured over a running median from the store's ``flux``, ``valid`` and ``ivar``, are all under
    QUIET_SNR."""
    candidates = Spectrum.objects.filter(held_out=False, validation=False).order_by("store_row")
    candidates = list(candidates.values_list("store_row", "z")[:CONTINUUM_CANDIDATES])
    where = [line_measures.POSITION[name] for name in QUIET_LINES]
    quiet = []
    for row, z in candidates:
        if line_measures.measure_lines(flux[row], valid[row], z, ivar[row]).snr[where].max() < QUIET_SNR:
            quiet.append((row, z))
    rows, z = (np.array(column) for column in zip(*quiet)) if quiet else (np.empty(0, int), np.empty(0))
    return rows.astype(np.int64), z.astype(np.float64)


def _code_digest() -> str:
    """A digest of the measuring code: ``inference.line_measures``, ``inference.continuum``,
    ``inference.night_sky``, and the grid, BPT demarcations and windows it reads (``kb.preprocess``,
    ``kb.bpt``, ``kb.line_indices``)."""
    modules = (line_measures, continuum, night_sky, preprocess, bpt, line_indices)
    return hashlib.blake2b(b"".join(Path(m.__file__).read_bytes() for m in modules), digest_size=6).hexdigest()


def _line_keep(kept: RowStore, rows: np.ndarray, values: np.ndarray) -> None:
    """Write ``values`` at store ``rows``, growing the store first (zeros, which no checksum matches) where
    they lie past its end."""
    if rows.max() >= kept.rows:
        kept.write_rows(kept.rows, np.zeros((int(rows.max()) + 1 - kept.rows, kept.width)))
    view = np.memmap(kept.data_path, dtype=kept.dtype, mode="r+", shape=(kept.rows, kept.width))
    view[rows] = values
    view.flush()


def _checksum(flux, valid, ivar, z) -> float:
    """A row's pixels and redshift, digested to a number a float64 holds exactly (never 0)."""
    digest = hashlib.blake2b(digest_size=6)
    for part in (flux, valid, ivar, np.float64(z)):
        digest.update(np.ascontiguousarray(part).tobytes())
    return float(int.from_bytes(digest.digest(), "little") | 1)


def _redshifts(store_rows: np.ndarray) -> np.ndarray:
    first = int(store_rows.min()) if len(store_rows) else 0
    return spectrum_redshifts(first, int(store_rows.max()) + 1 if len(store_rows) else 0)[store_rows - first]


def embedding_reconstruction(*, training_run: TrainingRun, store_rows) -> np.ndarray:
    """(n,) float32 reconstruction chi-squared (``inference.embed.reconstruction_chi2``) under ``training_run``
    of the spectra at ``store_rows`` (n,), which must already be embedded; NaN (unknown) for a row of a set
    embedded before reconstructions were kept, until ``embedding_update`` measures it."""
    embedding_set, store_rows = _embedded(training_run, store_rows)
    kept = reconstruction_store(embedding_set).read()[:, 0]
    out = np.full(len(store_rows), np.nan, dtype=np.float32)
    measured = store_rows < len(kept)
    out[measured] = kept[store_rows[measured]]
    return out


def _embedded(training_run: TrainingRun, store_rows) -> tuple[EmbeddingSet, np.ndarray]:
    embedding_set = EmbeddingSet.objects.get(training_run=training_run)
    store_rows = np.asarray(store_rows, dtype=np.int64)
    if len(store_rows) and store_rows.max() >= embedding_set.rows:
        raise ValueError(f"spectra beyond row {embedding_set.rows} are not embedded yet: run `manage.py embed`")
    return embedding_set, store_rows


def embeddings_in_service() -> tuple[EmbeddingSet | None, np.ndarray]:
    """The embedding set of the checkpoint in service and its (rows, D) memory-mapped vectors."""
    run = training_run_in_service()
    embedding_set = EmbeddingSet.objects.filter(training_run=run).first() if run else None
    if embedding_set is None:
        return None, np.empty((0, 0), dtype=np.float32)
    return embedding_set, embedding_store(embedding_set).read()[: embedding_set.rows]


def pipeline_summary() -> dict:
    """The pipeline at a glance: spectra and labels, the last ingest, the training runs, the embeddings in service."""
    embedding_set, _ = embeddings_in_service()
    return {
        "n_spectra": Spectrum.objects.count(),
        "labels": label_counts(),
        "bpt_consensus": Counter(bpt_labels().values()).most_common(),
        "runs": training_run_list(),
        "embedding_set": embedding_set,
        "ingest": last_ingest(),
    }
