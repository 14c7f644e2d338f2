"""Reads for embeddings, search jobs and survey searches."""
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from astropy.table import Table
from django.db.models import QuerySet

from inference.bulk import COLUMNS
from inference.models import EmbeddingSet, SearchJob, SurveyCandidate, SurveySearch
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


def survey_search_list() -> QuerySet[SurveySearch]:
    return SurveySearch.objects.select_related("task", "knowledge_base", "requested_by")


def survey_candidates(*, survey: SurveySearch, label: str = "") -> QuerySet[SurveyCandidate]:
    """The search's candidates, the surest first (highest share of the vote, then nearest)."""
    candidates = survey.candidates.select_related("spectrum")
    return candidates.filter(label=label) if label else candidates


def survey_rows(*, survey: SurveySearch) -> Iterator[dict]:
    """Every spectrum's row from the search's CSV parts, in survey order (``inference.bulk.COLUMNS``)."""
    for part in sorted(Path(survey.folder).glob("part-*.csv")):
        with open(part, newline="") as handle:
            yield from csv.DictReader(handle)


def survey_csv(*, survey: SurveySearch, candidates_only: bool = False) -> Iterator[str]:
    """The search as CSV text, a few lines at a time: every spectrum's row, or only the candidates'."""
    kb = survey.knowledge_base
    yield (f"# GalSpec survey search {survey.pk}: task {survey.task.name}, KB v{kb.version} (id {kb.pk}), "
           f"checkpoint run {kb.training_run_id}, K={survey.k}, labels of interest: {' '.join(survey.labels)}\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    wanted = set(survey.labels)
    for number, row in enumerate(survey_rows(survey=survey), start=1):
        if not candidates_only or row["label"] in wanted:
            writer.writerow(row)
        if number % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
