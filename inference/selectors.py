"""Reads for inference: embeddings, search jobs, survey searches, a search's evidence as the result page
shows it, an operation's candidates beside the versions in service, and whether the files agree with
the database (``store_check``). Reads only: nothing here writes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.table import Table
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from inference import index as vector_index
from inference.answers import Answer, Query
from inference.models import EmbeddingSet, Operation, SearchJob, SurveyCandidate, SurveySearch
from inference.tables import SURVEY_COLUMNS, results_table
from kb.bpt import bpt_ratios
from kb.models import KBEntry, KnowledgeBase, Spectrum
from kb.plots import EMISSION_LINES, bpt_panels
from kb.preprocess import PAPER, wave_grid
from kb.selectors import bpt_labels, label_counts, last_ingest, spectrum_store
from kb.store import RowStore
from training.models import TrainingRun
from training.selectors import training_run_in_service, training_run_list


def stale_before() -> datetime:
    """A running operation or survey search whose heartbeat is older than this has lost its worker."""
    return timezone.now() - timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S)


# --- embeddings -----------------------------------------------------------------------------------------


def embedding_store(embedding_set: EmbeddingSet) -> RowStore:
    """The array store of an embedding set: row i is the embedding of the spectrum with ``store_row`` i."""
    return RowStore(embedding_set.path, "vectors", width=embedding_set.width, dtype="float32")


def embedding_vectors(*, training_run: TrainingRun, store_rows) -> np.ndarray:
    """(n, width) float32 embeddings under ``training_run`` of the spectra at ``store_rows`` (n,), which
    must already be embedded (``inference.services.embeddings.embedding_update``)."""
    embedding_set = EmbeddingSet.objects.get(training_run=training_run)
    store_rows = np.asarray(store_rows, dtype=np.int64)
    if len(store_rows) and store_rows.max() >= embedding_set.rows:
        raise ValueError(f"spectra beyond row {embedding_set.rows} are not embedded yet: run `manage.py embed`")
    return np.array(embedding_store(embedding_set).read()[store_rows], dtype=np.float32)


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


def search_job_rows(*, job: SearchJob) -> list[dict]:
    """The job's answers in input order, as ``inference.tables.results_table`` takes them."""
    return [
        {
            "position": r.position,
            "query": r.query,
            "specobjid": r.spectrum.specobjid if r.spectrum else None,
            "plate_mjd_fiber": r.spectrum.plate_mjd_fiber if r.spectrum else None,
            "label": r.label or None,
            "share": r.share,
            "is_target": r.is_target,
            "neighbours": r.neighbours,
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
        "checkpoint": str(kb.training_run.checkpoint_path),
        "k": job.k,
        "job": str(job.public_id),
    }
    return results_table(search_job_rows(job=job), k=job.k, meta=meta)


def search_job_list(*, owner) -> QuerySet[SearchJob]:
    return SearchJob.objects.filter(owner=owner).select_related("task", "knowledge_base")


def search_job_get(*, public_id, owner) -> SearchJob:
    """One of ``owner``'s jobs (a staff member may see any); SearchJob.DoesNotExist otherwise."""
    jobs = SearchJob.objects.select_related("task", "knowledge_base__training_run", "owner")
    return jobs.get(public_id=public_id, **({} if owner.is_staff else {"owner": owner}))


def survey_search_list() -> QuerySet[SurveySearch]:
    return SurveySearch.objects.select_related("task", "knowledge_base", "requested_by")


def survey_searches_left() -> list[int]:
    """Searches left running (their worker may have died), or queued for longer than the stale limit
    (their message may be lost): what a worker that starts sends again."""
    left = Q(status=SurveySearch.Status.RUNNING) | Q(status=SurveySearch.Status.QUEUED, created_at__lt=stale_before())
    return list(SurveySearch.objects.filter(left).values_list("pk", flat=True))


def survey_candidates(*, survey: SurveySearch, label: str = "") -> QuerySet[SurveyCandidate]:
    """The search's candidates, the surest first (highest share of the vote, then nearest)."""
    candidates = survey.candidates.select_related("spectrum")
    return candidates.filter(label=label) if label else candidates


def survey_rows(*, survey: SurveySearch) -> Iterator[dict]:
    """Every spectrum's row from the search's CSV parts, in survey order (``inference.tables.SURVEY_COLUMNS``)."""
    for part in sorted(Path(survey.folder).glob("part-*.csv")):
        with open(part, newline="") as handle:
            yield from csv.DictReader(handle)


def survey_csv(*, survey: SurveySearch, candidates_only: bool = False) -> Iterator[str]:
    """The search as CSV text, a few lines at a time: every spectrum's row, or only the candidates'."""
    kb = survey.knowledge_base
    yield (
        f"# GalSpec survey search {survey.pk}: task {survey.task.name}, KB v{kb.version} (id {kb.pk}), "
        f"checkpoint run {kb.training_run_id}, K={survey.k}, labels of interest: {' '.join(survey.labels)}\n"
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SURVEY_COLUMNS)
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


# --- a search's evidence ---------------------------------------------------------------------------------


def spectrum_query(spectrum: Spectrum) -> Query:
    """An ingested spectrum as a query the result page draws: its stored flux and its own lines."""
    flux, valid = spectrum_store().read()
    return Query(
        name=f"spec-{spectrum.plate_mjd_fiber}",
        z=spectrum.z,
        flux=np.array(flux[spectrum.store_row]),
        valid=np.array(valid[spectrum.store_row]),
        lines=spectrum.lines,
        spectrum=spectrum,
    )


def _with_gaps(flux, valid) -> list:
    return [round(float(x), 4) if ok else None for x, ok in zip(flux, valid)]


def evidence_get(*, answer: Answer, query: Query, api_url: str) -> dict:
    """What the result page shows: the vote, the neighbours, their spectra overlaid, their BPT positions,
    and a snippet that repeats the search through the API at ``api_url``."""
    flux, valid = spectrum_store().read()
    neighbours = {s.pk: s for s in Spectrum.objects.filter(pk__in=[n.spectrum_id for n in answer.neighbours])}
    spectra = [{"name": f"query: {query.name}", "z": query.z, "flux": _with_gaps(query.flux, query.valid)}]
    points = [{"name": "query", "label": answer.label, "query": True, **bpt_ratios(query.lines)}]
    for i, n in enumerate(answer.neighbours, start=1):
        spectrum = neighbours[n.spectrum_id]
        spectra.append(
            {
                "name": f"#{i} {n.label} (d={n.distance:.3f}, w={n.weight:.2f})",
                "z": spectrum.z,
                "flux": _with_gaps(flux[spectrum.store_row], valid[spectrum.store_row]),
            }
        )
        points.append({"name": f"#{i} {n.specobjid}", "label": n.label, **bpt_ratios(spectrum.lines)})
    plot = {
        "wave": np.round(wave_grid(PAPER), 2).tolist(),
        "lines": EMISSION_LINES,
        "spectra": spectra,
        "frame": "rest",
        "title": f"{query.name} and its {len(answer.neighbours)} nearest neighbours",
    }
    placed = [p for p in points if "o3" in p and any(ratio in p for ratio in ("n2", "s2", "o1"))]
    return {
        "answer": answer,
        "query": query,
        "plot": plot,
        "snippet": _api_snippet(answer, query, api_url),
        "share_percent": 100 * answer.share,
        "bpt": bpt_panels(points).to_plotly_json() if placed else None,
        "unplaced": [p["name"] for p in points if p not in placed],
        "shares": [(label, 100 * share) for label, share in sorted(answer.shares.items(), key=lambda item: -item[1])],
    }


def _api_snippet(answer: Answer, query: Query, api_url: str) -> str:
    """Python that repeats the search through the API."""
    if query.spectrum is None:
        call = f'files={{"file": open("{query.name}", "rb")}}, data={{"task": "{answer.task}", "k": {answer.k}}}'
    else:
        call = f'data={{"task": "{answer.task}", "identifier": "{query.spectrum.specobjid}", "k": {answer.k}}}'
    return (
        "import requests\n\n"
        f'answer = requests.post(\n    "{api_url}",\n    {call},\n'
        '    headers={"Authorization": "Token YOUR-TOKEN"},  # optional: a token raises the rate limit\n'
        ").json()\n"
        'print(answer["label"], answer["share"], answer["kb_version"], answer["checkpoint"])\n'
        'for n in answer["neighbours"]:\n'
        '    print(n["specobjid"], n["label"], n["distance"], n["weight"])\n'
    )


# --- operations -----------------------------------------------------------------------------------------


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


# --- do the files agree with the database? -------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    level: str  # "error": something a search or a build would trip on; "warning": left over, harmless
    what: str
    fix: str = ""


def store_check() -> list[Finding]:
    """Every disagreement between the database and the files; an empty list when they agree."""
    return [*_spectra(), *_embeddings(), *_checkpoints(), *_knowledge_bases(), *_index_folders()]


def _spectra() -> list[Finding]:
    rows = spectrum_store().rows
    used = np.fromiter(Spectrum.objects.values_list("store_row", flat=True), dtype=np.int64)
    findings = []
    beyond = used[used >= rows]
    if len(beyond):
        findings.append(
            Finding(
                "error",
                f"{len(beyond)} spectra point past the end of the array store ({rows} rows), e.g. row {int(beyond[0])}",
                "re-ingest their files",
            )
        )
    orphans = rows - len(np.unique(used[used < rows]))
    if orphans:
        findings.append(
            Finding(
                "warning",
                f"{orphans} rows of the array store belong to no spectrum (an interrupted ingest)",
                "harmless; ingest reuses nothing, so they only take space",
            )
        )
    return findings


def _embeddings() -> list[Finding]:
    findings = []
    spectra = Spectrum.objects.count()
    for embedding_set in EmbeddingSet.objects.select_related("training_run"):
        if not Path(embedding_set.path).exists():
            findings.append(
                Finding(
                    "error",
                    f"{embedding_set}: its folder {embedding_set.path} is missing",
                    f"run `manage.py embed` for training run {embedding_set.training_run_id}",
                )
            )
            continue
        stored = embedding_store(embedding_set).rows
        if stored < embedding_set.rows:
            findings.append(
                Finding(
                    "error",
                    f"{embedding_set}: the database says {embedding_set.rows} rows are "
                    f"embedded but the file holds {stored}",
                    "run `manage.py embed` again",
                )
            )
        if embedding_set.rows < spectra:
            findings.append(
                Finding(
                    "warning",
                    f"{embedding_set}: {spectra - embedding_set.rows} spectra are not embedded yet",
                    "run `manage.py embed`",
                )
            )
    return findings


def _checkpoints() -> list[Finding]:
    findings = []
    needed = TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED)
    for run in needed:
        if not (run.checkpoint_path).exists():
            used = run.in_service or KnowledgeBase.objects.filter(training_run=run, status="ready").exists()
            findings.append(
                Finding(
                    "error" if used else "warning",
                    f"{run}: checkpoint {run.checkpoint_dir}/best is missing",
                    "restore it from backup, or pre-train again",
                )
            )
    return findings


def _knowledge_bases() -> list[Finding]:
    findings = []
    for kb in KnowledgeBase.objects.select_related("task").filter(status=KnowledgeBase.Status.READY):
        folder = Path(kb.index_path)
        if not (folder / "index.json").exists() or not (folder / "index.faiss").exists():
            findings.append(
                Finding(
                    "error",
                    f"{kb}: its index is missing at {folder}",
                    f"build a new version: `manage.py build_kb --task {kb.task.name}`",
                )
            )
            continue
        index, sidecar = vector_index.load(folder)
        if sidecar.get("knowledge_base") != kb.pk:
            findings.append(
                Finding(
                    "error",
                    f"{kb}: {folder} holds knowledge base {sidecar.get('knowledge_base')}",
                    "build a new version",
                )
            )
            continue
        ids = set(vector_index.index_ids(index).tolist())
        entries = set(KBEntry.objects.filter(knowledge_base=kb).values_list("spectrum_id", flat=True))
        if ids != entries:
            findings.append(
                Finding(
                    "error",
                    f"{kb}: its index holds {len(ids)} ids and the database {len(entries)} "
                    f"entries; {len(ids ^ entries)} differ",
                    "build a new version",
                )
            )
    for kb in KnowledgeBase.objects.filter(in_service=True).exclude(status=KnowledgeBase.Status.READY):
        findings.append(Finding("error", f"{kb} is in service but {kb.status}", "promote a ready version"))
    stale = timezone.now() - timedelta(hours=1)
    building = KnowledgeBase.objects.filter(status=KnowledgeBase.Status.BUILDING, created_at__lt=stale)
    if building.exists() and not Operation.objects.filter(status=Operation.Status.RUNNING).exists():
        findings.append(
            Finding(
                "warning",
                f"{building.count()} knowledge bases have been 'building' for over an hour "
                "with no operation running (a build whose worker stopped)",
                "harmless: never in service; build a new version",
            )
        )
    return findings


def _index_folders() -> list[Finding]:
    root = settings.DATA_DIR / "indexes"
    if not root.exists():
        return []
    known = {
        str(Path(path).resolve())
        for path in KnowledgeBase.objects.exclude(index_path="").values_list("index_path", flat=True)
    }
    findings = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        if folder.name.endswith((".tmp", ".old")):
            findings.append(
                Finding(
                    "warning",
                    f"{folder}: left by an index write that stopped midway; never read",
                    "harmless; an operation that takes the build up again clears it, else delete it",
                )
            )
        elif str(folder.resolve()) not in known:
            findings.append(
                Finding("warning", f"{folder}: an index no knowledge base names", "delete it to free space")
            )
    return findings
