"""Embedding the ingested spectra under a checkpoint, with how well its masked model reconstructs each:
in parts that every embedding worker may take, resumable.

The embedder (``embedding_update``: one per checkpoint at a time, under a file lock) plans the rows not
yet embedded as ``EmbeddingPart`` rows of ``GALSPEC_EMBEDDING_CHUNK`` spectra, may send helpers to other
embedding workers (``fan_out``: ``embedding_parts_help`` on each), and takes parts itself. Each part's
embeddings and reconstructions are written in place in the set's stores (``RowStore.place``); a part
whose worker went silent for ``GALSPEC_OPERATION_STALE_S`` is taken again, and one embedded twice is
written twice alike. Only the embedder commits: the set's ``rows``, all that readers see, grows over the
parts done from its start. An embedder that stops (killed, cancelled) leaves its parts to the next one;
helpers already sent embed on meanwhile.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db.models import Max, Sum

from inference.embed import embed, reconstruction_chi2
from inference.models import EmbeddingPart, EmbeddingSet
from inference.selectors.embeddings import embedding_store, reconstruction_store
from inference.services.leases import part_claim, part_held
from kb.selectors import spectrum_redshifts, spectrum_store, store_rows_recorded
from kb.store import RowStore
from training.checkpoint import load_masked_model
from training.models import TrainingRun
from training.selectors import training_run_in_service

logger = logging.getLogger(__name__)

CHUNK = 1024  # reconstructions measured and committed at a time, for a set from before they were kept
POLL_S = 1.0  # how often an embedder waiting for others' parts looks again
DONE = EmbeddingPart.Status.DONE


def embedding_update(
    *,
    training_run: TrainingRun | None = None,
    batch_size: int = 64,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    fan_out: Callable[[int], None] | None = None,
) -> EmbeddingSet:
    """Embed every ingested spectrum not yet embedded under ``training_run`` (default: the one in service),
    and measure how well its masked model reconstructs each (``inference.embed.reconstruction_chi2``).

    ``fan_out(n)`` sends n helpers (``embedding_parts_help``) to other workers. One process embeds for a
    checkpoint at a time (a survey search and an operation may both ask); the other waits for it, then
    finds it done.
    """
    run = training_run or training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValueError(f"{run} has not succeeded; its checkpoint cannot embed")
    model = load_masked_model(run.checkpoint_path, device=device or settings.GALSPEC_DEVICE)
    lock = settings.DATA_DIR / "embeddings" / f"run-{run.pk}.lock"
    with _exclusive(lock):  # another embedder waits, then finds it done
        return _embedding_carry_on(run, model, batch_size, on_progress, fan_out)


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


def embedding_parts_help(*, training_run: TrainingRun, batch_size: int = 64, device: str | None = None) -> int:
    """A helper on another worker: embed parts of ``training_run``'s embedding until none is left to take;
    returns how many it embedded."""
    embedding_set, model, embedded = EmbeddingSet.objects.filter(training_run=training_run).first(), None, 0
    while embedding_set is not None and (part := part_claim(embedding_set.parts)) is not None:
        embedding_set.refresh_from_db()  # started over meanwhile (another width), it is in another folder
        model = model or load_masked_model(training_run.checkpoint_path, device=device or settings.GALSPEC_DEVICE)
        _part_embed(embedding_set, model, part, batch_size)
        embedded += 1
    return embedded


def _embedding_carry_on(run: TrainingRun, model, batch_size: int, on_progress, fan_out) -> EmbeddingSet:
    embedding_set = _embedding_set(run, model.config.embedding_width)
    stores = embedding_store(embedding_set), reconstruction_store(embedding_set)
    total = min(spectrum_store().rows, store_rows_recorded())  # not the rows of an ingest under way
    _reconstructions_measure(embedding_set, model, batch_size, on_progress, total)
    _parts_plan(embedding_set, total)
    helpers = min(embedding_set.parts.exclude(status=DONE).count() - 1, settings.GALSPEC_EMBEDDING_HELPERS)
    if fan_out and helpers > 0:
        _helpers_send(fan_out, helpers)
    while True:
        finished = not embedding_set.parts.exclude(status=DONE).exists()  # before committing: none is missed
        _embedded_commit(embedding_set, stores)
        if on_progress:
            done = embedding_set.parts.filter(status=DONE).aggregate(Sum("spectra"))["spectra__sum"] or 0
            on_progress(embedding_set.rows + done, total)
        if finished:
            return embedding_set
        part = part_claim(embedding_set.parts)
        if part is not None:
            _part_embed(embedding_set, model, part, batch_size)
        else:
            time.sleep(POLL_S)  # others' parts are running: wait, and take any whose worker goes silent


def _helpers_send(fan_out: Callable[[int], None], helpers: int) -> None:
    """Send the helpers; if they cannot be sent (the broker is down), embed alone."""
    try:
        fan_out(helpers)
    except Exception:
        logger.exception("no helper could be sent: embedding alone")


def _embedding_set(run: TrainingRun, width: int) -> EmbeddingSet:
    """The run's embedding set; started over, in a folder of its own, if its embeddings are of another
    width (the pooling changed), so that a helper still writing the old ones writes nothing of the new."""
    embedding_set, _ = EmbeddingSet.objects.get_or_create(
        training_run=run, defaults={"width": width, "path": str(settings.DATA_DIR / "embeddings" / f"run-{run.pk}")}
    )
    if embedding_set.width != width:
        old = embedding_set.path
        embedding_set.parts.all().delete()
        embedding_set.width, embedding_set.rows = width, 0
        embedding_set.path = str(settings.DATA_DIR / "embeddings" / f"run-{run.pk}-width-{width}")
        embedding_set.save(update_fields=["width", "rows", "path", "updated_at"])
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(embedding_set.path, ignore_errors=True)
    return embedding_set


def _reconstructions_measure(embedding_set: EmbeddingSet, model, batch_size: int, on_progress, total: int) -> None:
    """Measure the reconstructions a set from before they were kept lacks, for the rows it has embedded."""
    reconstruction = reconstruction_store(embedding_set)
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    for start in range(reconstruction.rows, embedding_set.rows, CHUNK):
        stop = min(start + CHUNK, embedding_set.rows)
        rows = slice(start, stop)
        chi2 = reconstruction_chi2(model, flux[rows], valid[rows], ivar[rows], batch_size=batch_size)
        reconstruction.write_rows(start, chi2[:, None])
        if on_progress:
            on_progress(stop, total)


def _parts_plan(embedding_set: EmbeddingSet, total: int) -> None:
    """Parts of ``GALSPEC_EMBEDDING_CHUNK`` spectra for the store rows up to ``total`` that are neither
    embedded nor in a part yet (every row past ``rows`` at first; later, the spectra ingested since)."""
    planned = embedding_set.parts.aggregate(Max("last_row"))["last_row__max"]
    start = embedding_set.rows if planned is None else max(embedding_set.rows, planned + 1)
    chunk = settings.GALSPEC_EMBEDDING_CHUNK
    EmbeddingPart.objects.bulk_create(
        EmbeddingPart(
            embedding_set=embedding_set,
            first_row=first,
            last_row=min(first + chunk, total) - 1,
            spectra=min(first + chunk, total) - first,
        )
        for first in range(start, total, chunk)
    )


def _part_embed(embedding_set: EmbeddingSet, model, part: EmbeddingPart, batch_size: int) -> None:
    """Embed one part and measure its reconstructions, write both in place, and mark the part done."""
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    first, stop = part.first_row, part.last_row + 1
    rows = slice(first, stop)
    with part_held(part):
        block = embed(model.encoder, flux[rows], valid[rows], spectrum_redshifts(first, stop), batch_size=batch_size)
        chi2 = reconstruction_chi2(model, flux[rows], valid[rows], ivar[rows], batch_size=batch_size)
        embedding_store(embedding_set).place(first, block)
        reconstruction_store(embedding_set).place(first, chi2[:, None])


def _embedded_commit(embedding_set: EmbeddingSet, stores: tuple[RowStore, ...]) -> None:
    """Commit the parts done from the set's ``rows`` on, as far as they run unbroken, and forget them (and
    any left from an embedder that died between committing and forgetting)."""
    rows = embedding_set.rows
    done = embedding_set.parts.filter(status=DONE, first_row__gte=rows)
    for first, last in done.values_list("first_row", "last_row"):  # in row order
        if first != rows:
            break
        rows = last + 1
    if rows > embedding_set.rows:
        for store in stores:
            store.commit(rows)  # the stores first: readers slice them by the set's rows
        embedding_set.rows = rows
        embedding_set.save(update_fields=["rows", "updated_at"])
    embedding_set.parts.filter(last_row__lt=rows).delete()
