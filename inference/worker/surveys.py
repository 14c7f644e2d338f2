"""The worker side of survey searches: claim one, embed what is missing, search in parts, collect the candidates.

A worker that dies leaves its search 'running' with a heartbeat that stops. The next worker to start
sends it again (``inference.tasks``); whoever claims it (``inference.worker.lease``) carries it
on from its last written part. After ``MAX_ATTEMPTS`` the search fails instead of looping.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter

from django.db import transaction

from inference.models import SurveyCandidate, SurveySearch
from inference.selectors.background import survey_rows
from inference.services.bulk import bulk_search
from inference.services.embeddings import embedding_update
from inference.worker.lease import Lease
from kb.selectors import spectrum_ids_by_specobjid, task_labelled

CHUNK = 10_000  # spectra per CSV part
BATCH = 5_000  # candidates written per INSERT
MAX_ATTEMPTS = 5  # workers that may die on one search before it is failed


class SurveySearchStopped(Exception):
    """Raised inside a running search that is no longer this worker's: cancelled, or taken up by another."""


def survey_search_claim(*, survey: SurveySearch) -> Lease | None:
    """Take the search up (``Lease.claim``); a search whose workers died ``MAX_ATTEMPTS`` times is failed instead."""
    lease = Lease.claim(SurveySearch, survey.pk)
    if lease is not None and lease.attempt > MAX_ATTEMPTS:
        lease.finish(
            SurveySearch.Status.FAILED,
            stage="failed",
            error=f"its worker died {MAX_ATTEMPTS} times (out of memory?): see the workers' logs",
        )
        shutil.rmtree(survey.folder, ignore_errors=True)
        return None
    return lease


def _progress(lease: Lease, stage: str):
    def report(done: int, total: int) -> None:
        if not lease.write(stage=stage, step=done):
            raise SurveySearchStopped()

    return report


def survey_search_run(*, survey: SurveySearch) -> SurveySearch:
    """Do the search, or carry it on from its last written part; a no-op once it has finished or while
    another worker is alive on it."""
    lease = survey_search_claim(survey=survey)
    if lease is not None:
        try:
            with lease.heartbeat():  # beats on while the candidates are collected
                _survey_search_carry_on(survey, lease)
        except SurveySearchStopped:
            if SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.CANCELLED).exists():
                shutil.rmtree(survey.folder, ignore_errors=True)
        except Exception as error:
            if lease.finish(SurveySearch.Status.FAILED, error=repr(error), stage="failed"):
                shutil.rmtree(survey.folder, ignore_errors=True)  # asked again, it starts afresh in a new folder
            raise
    survey.refresh_from_db()
    return survey


def _survey_search_carry_on(survey: SurveySearch, lease: Lease) -> None:
    kb = survey.knowledge_base
    embedding_update(training_run=kb.training_run, on_progress=_progress(lease, "embedding the survey"))
    bulk_search(
        task=survey.task,
        out=survey.folder,
        chunk=CHUNK,
        k=survey.k,
        knowledge_base=kb,
        labels=survey.labels,
        on_progress=_progress(lease, "searching"),
    )
    _progress(lease, "collecting the candidates")(survey.total, survey.total)
    _candidates_record(survey, lease)


@transaction.atomic
def _candidates_record(survey: SurveySearch, lease: Lease) -> None:
    """The candidates and the label counts from the finished parts, replacing any from an earlier
    attempt; all or nothing (SurveySearchStopped, rolling back, if the search is no longer this attempt's).

    On SQLite this one transaction holds the database's write lock while it runs (a second or so for
    every 100,000 spectra); PostgreSQL lets everything else go on.
    """
    survey.candidates.all().delete()
    counts, batch = Counter(), []
    wanted = set(survey.labels)
    for row in survey_rows(survey=survey):
        counts[row["label"]] += 1
        if row["label"] in wanted:
            batch.append(row)
        if len(batch) == BATCH:
            _candidates_create(survey, batch)
            batch = []
    _candidates_create(survey, batch)
    if not lease.finish(
        SurveySearch.Status.DONE,
        stage="done",
        label_counts=dict(counts.most_common()),
        found=sum(counts[label] for label in wanted),
    ):
        raise SurveySearchStopped()


def _candidates_create(survey: SurveySearch, rows: list[dict]) -> None:
    pk_of = spectrum_ids_by_specobjid([row["specobjid"] for row in rows])
    catalogued = task_labelled(task=survey.task, spectra=list(pk_of.values()))
    candidates = []
    for row in rows:
        # nearest first; a KB of fewer than K entries leaves inf distances with no neighbour, at the end
        distances = [d for d in map(float, row["distances"].split()) if math.isfinite(d)]
        if not distances:
            raise ValueError(f"{row['specobjid']} was voted {row['label']} with no neighbour at a finite distance")
        pk = pk_of[row["specobjid"]]
        candidates.append(
            SurveyCandidate(
                survey=survey,
                spectrum_id=pk,
                label=row["label"],
                share=float(row["share"]),
                distance=distances[0],
                neighbours=row["neighbours"].split()[: len(distances)],
                distances=distances,
                in_distribution={"True": True, "False": False}.get(row.get("in_distribution") or ""),
                known=pk in catalogued and catalogued[pk].label == row["label"],
            )
        )
    SurveyCandidate.objects.bulk_create(candidates)
