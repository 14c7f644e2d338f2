"""Reads for embeddings and search jobs."""
from pathlib import Path

import numpy as np
from astropy.table import Table
from django.db.models import QuerySet

from inference.models import EmbeddingSet, SearchJob
from inference.services import embedding_store
from inference.tables import results_table
from training.selectors import training_run_in_service


def embeddings_in_service() -> tuple[EmbeddingSet | None, np.ndarray]:
    """The embedding set of the checkpoint in service and its (rows, D) memory-mapped vectors."""
    run = training_run_in_service()
    embedding_set = EmbeddingSet.objects.filter(training_run=run).first() if run else None
    if embedding_set is None:
        return None, np.empty((0, 0), dtype=np.float32)
    return embedding_set, embedding_store(embedding_set).read()[: embedding_set.rows]


def search_job_rows(*, job: SearchJob) -> list[dict]:
    """The job's answers in input order, as inference.tables.results_table takes them."""
    return [
        {"position": r.position, "query": r.query, "specobjid": r.spectrum.specobjid if r.spectrum else None,
         "plate_mjd_fiber": r.spectrum.plate_mjd_fiber if r.spectrum else None, "label": r.label or None,
         "share": r.share, "is_target": r.is_target, "neighbours": r.neighbours, "error": r.error or None}
        for r in job.results.select_related("spectrum")
    ]


def search_job_table(*, job: SearchJob) -> Table:
    """The job's answers as an astropy table (inference.tables.results_table), in input order."""
    kb = job.knowledge_base
    meta = {"task": job.task.name, "kb_version": kb.version, "knowledge_base": kb.pk,
            "checkpoint": str(Path(kb.training_run.checkpoint_dir) / "best"), "k": job.k, "job": str(job.public_id)}
    return results_table(search_job_rows(job=job), k=job.k, meta=meta)


def search_job_list(*, owner) -> QuerySet[SearchJob]:
    return SearchJob.objects.filter(owner=owner).select_related("task", "knowledge_base")


def search_job_get(*, public_id, owner) -> SearchJob:
    """One of ``owner``'s jobs (a staff member may see any); SearchJob.DoesNotExist otherwise."""
    jobs = SearchJob.objects.select_related("task", "knowledge_base__training_run", "owner")
    return jobs.get(public_id=public_id, **({} if owner.is_staff else {"owner": owner}))
