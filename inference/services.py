"""Writes for inference: embedding the ingested spectra with the checkpoint in service."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from inference.embed import embed
from inference.models import EmbeddingSet
from kb.services import spectrum_store
from kb.store import RowStore
from training.checkpoint import load_checkpoint
from training.models import TrainingRun
from training.selectors import training_run_in_service

CHUNK = 1024  # spectra embedded and committed at a time: the unit of resumption


def embedding_store(embedding_set: EmbeddingSet) -> RowStore:
    return RowStore(embedding_set.path, "vectors", width=embedding_set.width, dtype="float32")


def embedding_update(
    *,
    training_run: TrainingRun | None = None,
    batch_size: int = 64,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EmbeddingSet:
    """Embed every ingested spectrum not yet embedded under ``training_run`` (default: the one in service).

    Work is committed chunk by chunk, so an interrupted run resumes where it stopped.
    """
    run = training_run or training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValueError(f"{run} has not succeeded; its checkpoint cannot embed")
    model = load_checkpoint(Path(run.checkpoint_dir) / "best", device=device or settings.GALSPEC_DEVICE)
    embedding_set, _ = EmbeddingSet.objects.get_or_create(
        training_run=run,
        defaults={"width": model.config.d_model, "path": str(settings.DATA_DIR / "embeddings" / f"run-{run.pk}")},
    )
    vectors = embedding_store(embedding_set)
    vectors.truncate(embedding_set.rows)
    flux, valid = spectrum_store().read()
    total = len(flux)
    if on_progress:
        on_progress(embedding_set.rows, total)
    for start in range(embedding_set.rows, total, CHUNK):
        stop = min(start + CHUNK, total)
        block = embed(model, flux[start:stop], valid[start:stop], batch_size=batch_size)
        vectors.write_rows(start, block)
        embedding_set.rows = stop
        embedding_set.save(update_fields=["rows", "updated_at"])
        if on_progress:
            on_progress(stop, total)
    return embedding_set
