"""Reads of the work done in the background: batch search jobs, survey searches and the admins' operations."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from astropy.table import Table
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from inference.background_lines import BackgroundRule
from inference.models import Operation, SearchJob, SurveyCandidate, SurveySearch
from inference.retriever import VotePolicy
from inference.selectors.embeddings import embeddings_in_service
from inference.tables import SURVEY_COLUMNS, candidates_table, results_table, spreadsheet_safe
from kb.labellings import CATALOG
from kb.models import KnowledgeBase, SearchTask, Spectrum, TaskExample
from kb.selectors import search_tasks_visible
from training.pretrain import PRESET_DEFAULTS, PretrainConfig
from training.selectors import training_run_in_service


def stale_before() -> datetime:
    """A running operation or survey search whose heartbeat is older than this has lost its worker."""
    return timezone.now() - timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S)


def search_job_rows(*, job: SearchJob) -> list[dict]:
    """The job's answers in input order, as ``inference.tables.results_table`` takes them."""
    return [
        {
            "position": r.position,
            "query": r.query,
            "specobjid": r.spectrum.specobjid if r.spectrum else None,
            "plate_mjd_fiber": r.spectrum.plate_mjd_fiber if r.spectrum else None,
            "ra": r.spectrum.ra if r.spectrum else None,
            "dec": r.spectrum.dec if r.spectrum else None,
            "z": r.spectrum.z if r.spectrum else None,
            "mock": r.spectrum.mock if r.spectrum else None,
            "label": r.label or None,
            "share": r.share,
            "is_target": r.is_target,
            "neighbours": r.neighbours,
            "trust": r.trust,
            "background": r.background,
            "weirdness": r.weirdness,
            "error": r.error or None,
        }
        for r in job.results.select_related("spectrum")
    ]


def search_job_table(*, job: SearchJob) -> Table:
    """The job's answers as an astropy table (inference.tables.results_table), in input order."""
    kb = job.knowledge_base
    meta = {
        "task": job.task.name,
        "kb_version": kb.version,
        "knowledge_base": kb.pk,
        "checkpoint": kb.training_run.checkpoint_name,
        "k": job.k,
        "policy": VotePolicy.from_dict(kb.policy).asked(k=job.k).describe(),  # as the page and the API word it
        "job": str(job.public_id),
        "date": f"{job.finished_at or job.created_at:%Y-%m-%dT%H:%M:%SZ}",
    }
    return results_table(search_job_rows(job=job), k=job.k, meta=meta)


def search_job_list(*, owner) -> QuerySet[SearchJob]:
    return SearchJob.objects.filter(owner=owner).select_related("task", "knowledge_base")


def search_job_get(*, public_id, owner) -> SearchJob:
    """One of ``owner``'s jobs; SearchJob.DoesNotExist otherwise, whoever else's it is (a job's inputs and
    answers are its owner's alone: no role, nor Django's is_staff, reads another's)."""
    jobs = SearchJob.objects.select_related("task", "knowledge_base__training_run", "owner")
    return jobs.get(public_id=public_id, owner=owner)


def search_jobs_left() -> list[int]:
    """Batch jobs left running (their worker may have died), or queued for longer than the stale limit (their
    message may be lost): what a worker that starts sends again."""
    left = Q(status=SearchJob.Status.RUNNING) | Q(status=SearchJob.Status.QUEUED, created_at__lt=stale_before())
    return list(SearchJob.objects.filter(left).values_list("pk", flat=True))


def survey_search_list(*, user=None) -> QuerySet[SurveySearch]:
    """Survey searches of the tasks ``user`` may see (``search_tasks_visible``)."""
    return SurveySearch.objects.filter(task__in=search_tasks_visible(user=user)).select_related(
        "task", "knowledge_base", "requested_by"
    )


def survey_searches_left() -> list[int]:
    """Searches left running (their worker may have died), or queued for longer than the stale limit
    (their message may be lost): what a worker that starts sends again."""
    left = Q(status=SurveySearch.Status.RUNNING) | Q(status=SurveySearch.Status.QUEUED, created_at__lt=stale_before())
    return list(SurveySearch.objects.filter(left).values_list("pk", flat=True))


KNOWN, NEW = "known", "new"


def survey_candidates(*, survey: SurveySearch, label: str = "", known: str = "") -> QuerySet[SurveyCandidate]:
    """The search's candidates, the surest first (highest share of the vote, then nearest), each with
    ``in_catalog``: whether the catalog its task was made from names it (False for a shipped task). ``label``
    keeps one label; ``known`` KNOWN keeps those already catalogued with it, NEW the new finds."""
    examples = TaskExample.objects.filter(task=survey.task_id, spectrum=OuterRef("spectrum"))
    candidates = survey.candidates.select_related("spectrum").annotate(in_catalog=Exists(examples))
    if known not in ("", KNOWN, NEW):
        raise ValueError(f"known must be {KNOWN!r} or {NEW!r}, got {known!r}")
    if known:
        candidates = candidates.filter(known=known == KNOWN)
    return candidates.filter(label=label) if label else candidates


def survey_candidates_table(*, survey: SurveySearch) -> Table:
    """The candidates, surest first, as ``inference.tables.candidates_table`` (for a VOTable download)."""
    rows = [
        {
            "specobjid": c.spectrum.specobjid,
            "plate_mjd_fiber": c.spectrum.plate_mjd_fiber,
            "ra": c.spectrum.ra,
            "dec": c.spectrum.dec,
            "z": c.spectrum.z,
            "label": c.label,
            "share": c.share,
            "distance": c.distance,
            "known": c.known,
            "in_distribution": c.in_distribution,
            "neighbours": c.neighbours,
            "mock": c.spectrum.mock,
        }
        for c in survey_candidates(survey=survey)
    ]
    return candidates_table(rows, meta=_survey_meta(survey))


def _survey_meta(survey: SurveySearch) -> dict:
    kb = survey.knowledge_base
    return {
        "survey": survey.pk,
        "task": survey.task.name,
        "kb_version": kb.version,
        "knowledge_base": kb.pk,
        "checkpoint": kb.training_run.checkpoint_name,
        "k": survey.k,
        "policy": VotePolicy.from_dict(kb.policy).asked(k=survey.k).describe(),
        "labels": " ".join(survey.labels),
        "date": f"{survey.finished_at or survey.created_at:%Y-%m-%dT%H:%M:%SZ}",
        **({"background_rule": BackgroundRule.from_dict(kb.background_rule).describe()} if kb.background_rule else {}),
    }


def survey_rows(*, survey: SurveySearch) -> Iterator[dict]:
    """Every spectrum's row from the search's CSV parts, in survey order (``inference.tables.SURVEY_COLUMNS``)."""
    for part in sorted(Path(survey.folder).glob("part-*.csv")):
        with open(part, newline="") as handle:
            yield from csv.DictReader(handle)


def survey_csv(*, survey: SurveySearch, candidates_only: bool = False) -> Iterator[str]:
    """The search as CSV text, a few lines at a time: every spectrum's row, or only the candidates'; for a task
    made from a catalog, ``in_catalog`` says whether the catalog names the spectrum."""
    meta = _survey_meta(survey)
    yield (
        f"# GalSpec survey search {survey.pk}: task {meta['task']}, KB v{meta['kb_version']} (id "
        f"{meta['knowledge_base']}), checkpoint {meta['checkpoint']}, K={survey.k}, labels of interest: "
        f"{meta['labels']}, finished {meta['date']}. ra and dec in degrees (J2000); known: already catalogued "
        "with the label voted" + (f"; lenses: {meta['background_rule']}" if "background_rule" in meta else "") + "\n"
    )
    known = dict(survey.candidates.values_list("spectrum__specobjid", "known"))  # None: not recorded then
    named = None
    if survey.task.labelling == CATALOG:
        named = set(TaskExample.objects.filter(task=survey.task_id).values_list("spectrum__specobjid", flat=True))
    buffer = io.StringIO()
    fieldnames = [*SURVEY_COLUMNS, "known", *(["in_catalog"] if named is not None else [])]
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    wanted = set(survey.labels)
    for number, row in enumerate(survey_rows(survey=survey), start=1):
        if not candidates_only or row["label"] in wanted:
            recorded = known.get(row["specobjid"]) if row["label"] in wanted else None
            extra = {"known": "" if recorded is None else recorded}
            if named is not None:
                extra["in_catalog"] = row["specobjid"] in named
            writer.writerow({key: spreadsheet_safe(value) for key, value in {**row, **extra}.items()})
        if number % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


EMBED_PER_SECOND = 170  # spectra a CPU worker embeds per second, small preset (bench/embed_throughput.py)
BUILD_SECONDS = 20  # a knowledge base's build and scores at demo size, embeddings in hand (seen in the tests)


def operation_plan(*, kind: str, task=None, preset: str = "small", max_steps: int | None = None) -> dict:
    """What an operation would do, in sentences, and roughly how long it would take here: what an admin
    reads before confirming it. Rough: from this installation's counts and measured rates."""
    spectra = Spectrum.objects.count()
    tasks = 1 if task is not None else SearchTask.objects.count()
    embedding_set, _ = embeddings_in_service()
    missing = spectra - (embedding_set.rows if embedding_set else 0)
    scope = f"the {task.name} task's knowledge base" if task is not None else f"all {tasks} tasks' knowledge bases"
    if kind == Operation.Kind.REBUILD:
        steps = [
            f"Builds a new version of {scope}, applying the curators' corrections, and scores each on the test reserve."
        ]
        seconds = BUILD_SECONDS * tasks
    elif kind == Operation.Kind.EMBED:
        steps = [
            f"Embeds the {max(missing, 0):,} spectra not yet embedded under the checkpoint in service.",
            f"Builds a new version of all {tasks} tasks' knowledge bases and scores each on the test reserve.",
        ]
        seconds = max(missing, 0) / EMBED_PER_SECOND + BUILD_SECONDS * tasks
    else:
        steps_to_run = max_steps or PRESET_DEFAULTS.get(preset, {}).get("max_steps") or PretrainConfig().max_steps
        run = training_run_in_service()
        per_step = run.metrics.get("seconds", 0) / run.metrics["steps"] if run and run.metrics.get("steps") else 1.5
        steps = [
            f"Pre-trains a new {preset} encoder for {steps_to_run:,} steps on the training reserve.",
            f"Embeds all {spectra:,} spectra with it, then builds every task's knowledge base and scores it.",
        ]
        seconds = steps_to_run * per_step + spectra / EMBED_PER_SECOND + BUILD_SECONDS * tasks
    steps.append("Nothing changes for searchers until you promote the candidates it leaves.")
    return {"steps": steps, "duration": _roughly(seconds)}


def _roughly(seconds: float) -> str:
    if seconds < 90:
        return "about a minute"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"


def operation_list() -> QuerySet[Operation]:
    return Operation.objects.select_related("task", "requested_by")


def operations_left() -> QuerySet[Operation]:
    """Operations left running (their worker may have died): what a worker that starts sends again."""
    return Operation.objects.filter(status=Operation.Status.RUNNING)


def operation_comparison(*, operation: Operation) -> list[dict]:
    """Each candidate beside the version in service for its task, scored on the same test reserve."""
    candidates = list(operation.candidates.select_related("task", "training_run").order_by("task__name"))
    in_service = {
        kb.task_id: kb
        for kb in KnowledgeBase.objects.filter(task__in=[c.task_id for c in candidates], in_service=True).exclude(
            pk__in=[c.pk for c in candidates]
        )
    }
    rows = []
    for candidate in candidates:
        current = in_service.get(candidate.task_id)
        scores = []
        for name in candidate.task.scores:
            before, after = (current.evaluation if current else {}).get(name), candidate.evaluation.get(name)
            change = after - before if before is not None and after is not None else None
            scores.append(
                {
                    "name": name,
                    "current": before,
                    "candidate": after,
                    "change": change,
                    "candidate_ci": candidate.evaluation.get(f"{name}_ci"),
                }
            )
        rows.append({"candidate": candidate, "current": current, "metrics": scores})
    return rows
