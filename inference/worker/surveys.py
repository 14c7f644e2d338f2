"""The worker side of survey searches: claim one, embed what is missing, search in parts, collect the candidates.

The worker that claims a search (``inference.services.leases``) plans its parts (``SurveyPart``: a
``GALSPEC_SURVEY_CHUNK`` of spectra each, in store-row order) and sends helpers to the other embedding
workers (``fan_out``: a Celery group); then it, and every helper, takes pending parts one at a time and
writes each as ``part-NNNNN.csv``. A part whose worker went silent for ``GALSPEC_OPERATION_STALE_S`` is
taken again, so a killed helper loses nothing; a part searched twice is written twice alike. When no part
is left the claiming worker collects the candidates, its progress the spectra of the parts done.

A claiming worker that dies leaves its search 'running' with a heartbeat that stops. The next worker to
start sends it again (``inference.tasks``); whoever claims it carries it on from the parts done. After
``MAX_ATTEMPTS`` the search fails instead of looping.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from inference.models import SurveyCandidate, SurveyPart, SurveySearch
from inference.selectors.background import survey_rows
from inference.services.bulk import (
    PartSearcher,
    bulk_search_manifest,
    part_bounds,
    part_path,
    part_search,
    part_searcher,
)
from inference.services.embeddings import embedding_update
from inference.services.leases import Lease, failure_sentence, part_claim, part_held
from kb.selectors import spectrum_ids_by_specobjid, task_labelled

BATCH = 5_000  # candidates written per INSERT
POLL_S = 1.0  # how often a worker waiting for others' parts looks again
MAX_ATTEMPTS = 5  # workers that may die on one search before it is failed
logger = logging.getLogger(__name__)


class SurveySearchStopped(Exception):
    """Raised inside a running search that is no longer this worker's: cancelled, or taken up by another."""


def survey_search_claim(*, survey: SurveySearch) -> Lease | None:
    """Take the search up (``Lease.claim``); a search whose workers died ``MAX_ATTEMPTS`` times is failed instead."""
    lease = Lease.claim(SurveySearch, survey.pk)
    if lease is not None and lease.given_up(max_attempts=MAX_ATTEMPTS, advice="see the workers' logs"):
        shutil.rmtree(survey.folder, ignore_errors=True)
        return None
    return lease


def _progress(lease: Lease, stage: str):
    def report(done: int, total: int) -> None:
        if not lease.write(stage=stage, step=done):
            raise SurveySearchStopped()

    return report


def survey_search_run(
    *,
    survey: SurveySearch,
    fan_out: Callable[[int], None] | None = None,
    embedding_fan_out: Callable[[int], None] | None = None,
) -> SurveySearch:
    """Do the search, or carry it on from the parts done; a no-op once it has finished or while another
    worker is alive on it. ``fan_out(n)`` sends n helpers (``survey_parts_help``) to other workers, and
    ``embedding_fan_out`` shares the embedding of what is missing alike (``embedding_update``)."""
    lease = survey_search_claim(survey=survey)
    if lease is not None:
        try:
            with lease.heartbeat():  # beats on while parts are searched and the candidates collected
                _survey_search_carry_on(survey, lease, fan_out, embedding_fan_out)
        except SurveySearchStopped:
            if SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.CANCELLED).exists():
                shutil.rmtree(survey.folder, ignore_errors=True)
        except Exception as error:
            logger.exception("%s failed", survey)
            if lease.finish(SurveySearch.Status.FAILED, error=failure_sentence(error), stage="failed"):
                shutil.rmtree(survey.folder, ignore_errors=True)  # asked again, it starts afresh in a new folder
            raise
    survey.refresh_from_db()
    return survey


def _survey_search_carry_on(survey: SurveySearch, lease: Lease, fan_out, embedding_fan_out) -> None:
    kb = survey.knowledge_base
    embedding_update(
        training_run=kb.training_run, on_progress=_progress(lease, "embedding the survey"), fan_out=embedding_fan_out
    )
    survey_parts_plan(survey=survey)
    pending = survey.parts.exclude(status=SurveyPart.Status.DONE).count()
    if fan_out and pending > 1:
        fan_out(min(pending - 1, settings.GALSPEC_SURVEY_HELPERS))
    report, searcher = _progress(lease, "searching"), None
    while True:
        part = part_claim(survey.parts)
        if part is not None:
            searcher = searcher or part_searcher(knowledge_base=kb, labels=survey.labels, k=survey.k)
            _part_search(searcher, survey, part)
        elif not survey.parts.exclude(status=SurveyPart.Status.DONE).exists():
            break
        else:
            time.sleep(POLL_S)  # others' parts are running: wait, and take any whose worker goes silent
        done = survey.parts.filter(status=SurveyPart.Status.DONE).values_list("spectra", flat=True)
        report(sum(done), survey.total)
    _progress(lease, "collecting the candidates")(survey.total, survey.total)
    _candidates_record(survey, lease)


def survey_parts_plan(*, survey: SurveySearch) -> None:
    """The search's folder (manifest.json) and its parts, planned once; a part recorded done whose file is
    gone (a folder cleared by hand) is searched again."""
    chunk = settings.GALSPEC_SURVEY_CHUNK
    bulk_search_manifest(
        knowledge_base=survey.knowledge_base, out=survey.folder, chunk=chunk, k=survey.k, labels=survey.labels
    )
    with transaction.atomic():
        if not survey.parts.exists():
            SurveyPart.objects.bulk_create(
                SurveyPart(survey=survey, number=number, first_row=first, last_row=last, spectra=spectra)
                for number, (first, last, spectra) in enumerate(part_bounds(chunk=chunk), start=1)
            )
    for part in survey.parts.filter(status=SurveyPart.Status.DONE):
        if not part_path(survey.folder, part.number).exists():
            SurveyPart.objects.filter(pk=part.pk).update(status=SurveyPart.Status.PENDING)


def survey_parts_help(*, survey: SurveySearch) -> int:
    """A helper on another worker: search parts of a running search until none is left to take; returns
    how many it searched."""
    searched, searcher = 0, None
    while SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.RUNNING).exists():
        part = part_claim(survey.parts)
        if part is None:
            break
        searcher = searcher or part_searcher(knowledge_base=survey.knowledge_base, labels=survey.labels, k=survey.k)
        _part_search(searcher, survey, part)
        searched += 1
    return searched


def _part_search(searcher: PartSearcher, survey: SurveySearch, part: SurveyPart) -> None:
    with part_held(part):
        part_search(searcher, out=survey.folder, number=part.number, first_row=part.first_row, last_row=part.last_row)


@transaction.atomic
def _candidates_record(survey: SurveySearch, lease: Lease) -> None:
    """The candidates and the label counts from the finished parts, replacing any from an earlier
    attempt; all or nothing (SurveySearchStopped, rolling back, if the search is no longer this attempt's).

    On SQLite this one transaction holds the database's write lock while it runs (a second or so for
    every 100,000 spectra); PostgreSQL lets everything else go on.
    """
    survey.candidates.all().delete()
    counts, batch, found = Counter(), [], 0
    wanted, targets = set(survey.labels), set(survey.task.target_labels)
    for row in survey_rows(survey=survey):
        counts[row["label"]] += 1
        if _is_candidate(row, wanted, targets):
            batch.append(row)
            found += 1
        if len(batch) == BATCH:
            _candidates_create(survey, batch)
            batch = []
    _candidates_create(survey, batch)
    if not lease.finish(SurveySearch.Status.DONE, stage="done", label_counts=dict(counts.most_common()), found=found):
        raise SurveySearchStopped()


def _is_candidate(row: dict, wanted: set[str], targets: set[str]) -> bool:
    """Whether a survey lists a spectrum: voted one of the ``wanted`` labels (one of the task's ``targets``
    only where the answer is a target, as a version that answers lenses by their lines alone decides), or
    made a target beside a vote for another label (background lines, weirdness)."""
    answered = row["is_target"] == "True"
    if row["label"] in wanted:
        return answered or row["label"] not in targets
    return answered and row["label"] not in targets


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
