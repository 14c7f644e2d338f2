"""Embedding the ingested spectra under a checkpoint, with how well its masked model reconstructs each:
batched, resumable, one embedder at a time."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from inference.embed import embed, reconstruction_chi2
from inference.models import EmbeddingSet
from inference.selectors.embeddings import embedding_store, reconstruction_store
from kb.selectors import spectrum_redshifts, spectrum_store
from training.checkpoint import load_masked_model
from training.models import TrainingRun
from training.selectors import training_run_in_service

CHUNK = 1024  # spectra embedded and committed at a time: the unit of resumption


def embedding_update(
    *,
    training_run: TrainingRun | None = None,
    batch_size: int = 64,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EmbeddingSet:
    """Embed every ingested spectrum not yet embedded under ``training_run`` (default: the one in service),
    and measure how well its masked model reconstructs each (``inference.embed.reconstruction_chi2``).

    Work is committed chunk by chunk, so an interrupted run resumes where it stopped. One process embeds
    for a checkpoint at a time (a survey search and an operation may both ask); the other waits for it.
    """
    run = training_run or training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValueError(f"{run} has not succeeded; its checkpoint cannot embed")
    model = load_masked_model(run.checkpoint_path, device=device or settings.GALSPEC_DEVICE)
    lock = settings.DATA_DIR / "embeddings" / f"run-{run.pk}.lock"
    with _exclusive(lock):  # another embedder waits, then finds it done
        return _embedding_carry_on(run, model, batch_size, on_progress)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (a POSIX record lock: across processes and, over NFS,
    across machines) until the block ends; released by the system if the process dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _embedding_carry_on(run: TrainingRun, model, batch_size: int, on_progress) -> EmbeddingSet:
    width = model.config.embedding_width
    embedding_set, _ = EmbeddingSet.objects.get_or_create(
        training_run=run, defaults={"width": width, "path": str(settings.DATA_DIR / "embeddings" / f"run-{run.pk}")}
    )
    if embedding_set.width != width:  # the embedding changed since: start over
        embedding_set.width, embedding_set.rows = width, 0
        embedding_set.save(update_fields=["width", "rows", "updated_at"])
        shutil.rmtree(embedding_set.path, ignore_errors=True)
    vectors, reconstruction = embedding_store(embedding_set), reconstruction_store(embedding_set)
    vectors.truncate(embedding_set.rows)
    reconstruction.truncate(embedding_set.rows)
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    total = len(flux)
    if on_progress:
        on_progress(reconstruction.rows, total)
    for start in range(reconstruction.rows, embedding_set.rows, CHUNK):  # a set from before they were kept
        stop = min(start + CHUNK, embedding_set.rows)
        rows = slice(start, stop)
        reconstruction.write_rows(start, reconstruction_chi2(model, flux[rows], valid[rows], ivar[rows])[:, None])
        if on_progress:
            on_progress(stop, total)
    for start in range(embedding_set.rows, total, CHUNK):
        stop = min(start + CHUNK, total)
        rows, z = slice(start, stop), spectrum_redshifts(start, stop)
        block = embed(model.encoder, flux[rows], valid[rows], z, batch_size=batch_size)
        chi2 = reconstruction_chi2(model, flux[rows], valid[rows], ivar[rows], batch_size=batch_size)
        vectors.write_rows(start, block)
        reconstruction.write_rows(start, chi2[:, None])
        embedding_set.rows = stop
        embedding_set.save(update_fields=["rows", "updated_at"])
        if on_progress:
            on_progress(stop, total)
    return embedding_set
