"""Reads of the embeddings, and the pipeline at a glance."""

from __future__ import annotations

from collections import Counter

import numpy as np

from inference.models import EmbeddingSet
from inference.representation import needs_embedding, needs_flux, needs_ivar, represent
from inference.retriever import VotePolicy
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
    flux = valid = z = ivar = None
    if needs_flux(name):
        store = spectrum_store()
        flux_all, valid_all = store.read()
        flux, valid = np.asarray(flux_all[store_rows]), np.asarray(valid_all[store_rows])
        ivar = np.asarray(store.read_ivar()[store_rows]) if needs_ivar(name) else None
        first = int(store_rows.min()) if len(store_rows) else 0
        z = spectrum_redshifts(first, int(store_rows.max()) + 1 if len(store_rows) else 0)[store_rows - first]
    return represent(name, embedding, flux, valid, z, ivar, window_scale=policy.window_scale)


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
