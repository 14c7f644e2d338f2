"""Does the database agree with what is on disk? The array store of spectra, the embeddings, the checkpoints
and the indexes, read against their rows. Reads only; ``manage.py check_store`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from inference import index as vector_index
from inference.models import EmbeddingSet, Operation
from inference.selectors.embeddings import embedding_store
from kb.models import KBEntry, KnowledgeBase, Spectrum
from kb.selectors import spectrum_store
from training.models import TrainingRun


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
        if not run.checkpoint_path.exists():
            used = run.in_service or KnowledgeBase.objects.filter(training_run=run, status="ready").exists()
            findings.append(
                Finding(
                    "error" if used else "warning",
                    f"{run}: checkpoint {run.checkpoint_path} is missing",
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
        try:
            index, sidecar = vector_index.load(folder)
        except (OSError, ValueError, RuntimeError) as error:  # a compressed index's vectors.npy or ids.npy gone
            findings.append(
                Finding(
                    "error",
                    f"{kb}: its index at {folder} cannot be read ({error})",
                    f"build a new version: `manage.py build_kb --task {kb.task.name}`",
                )
            )
            continue
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
