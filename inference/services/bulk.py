"""Searching a whole survey: every ingested spectrum against a task's knowledge base, in chunks.

Every spectrum is embedded first if it is not yet. Then each chunk of ``chunk`` spectra (in store-row
order, read from the database one chunk at a time) is searched in one batched index search, voted on,
and written as ``part-NNNNN.csv`` (atomically: a temporary file renamed into place). A run that stops,
for any reason, carries on from the first chunk with no file, so a survey of millions is searched once
however often it is interrupted. ``manifest.json`` names the task, the knowledge-base version and
checkpoint, and a run against another version refuses the folder. A survey search fanned out over
several workers (``inference.worker.surveys``) searches the same parts, each with ``part_search``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.background_lines import BackgroundRule
from inference.retriever import Retriever, VotePolicy
from inference.selectors.embeddings import embedding_reconstruction, representation_vectors
from inference.selectors.lines import background_lines_get, spectrum_quiet_hosts
from inference.services.embeddings import embedding_update
from inference.services.search import load_retriever
from inference.tables import SURVEY_COLUMNS
from inference.trust import assess
from kb.labellings import LABELLINGS
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.selectors import knowledge_base_in_service

FIELDS = ("pk", "store_row", "specobjid", "plate", "mjd", "fiberid", "ra", "dec", "z", "valid_fraction", "mock")


def bulk_search(
    *,
    task: SearchTask,
    out: str | Path,
    chunk: int = 10_000,
    k: int | None = None,
    knowledge_base: KnowledgeBase | None = None,
    labels: list[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Search every ingested spectrum, by the version's vote policy with ``k`` neighbours where given; returns the
    manifest. A spectrum in the knowledge base is not its own neighbour. ``is_target`` says whether the vote went to
    one of ``labels`` (default: the task's targets; empty for a classification task). ValueError if ``out`` holds a
    run against another knowledge base."""
    kb = knowledge_base or knowledge_base_in_service(task=task)
    wanted = sorted(task.target_labels if labels is None else labels)
    k = VotePolicy.from_dict(kb.policy).k if k is None else k
    manifest = bulk_search_manifest(knowledge_base=kb, out=out, chunk=chunk, k=k, labels=wanted)
    embedding_update(training_run=kb.training_run)
    searcher = part_searcher(knowledge_base=kb, labels=wanted, k=k)
    parts = part_bounds(chunk=chunk)
    total, done = sum(spectra for _, _, spectra in parts), 0
    for number, (first, last, spectra) in enumerate(parts, start=1):
        part_search(searcher, out=out, number=number, first_row=first, last_row=last)
        done += spectra
        if on_progress:
            on_progress(done, total)
    manifest["spectra"], manifest["parts"] = total, len(parts)
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def bulk_search_manifest(
    *, knowledge_base: KnowledgeBase, out: str | Path, chunk: int, k: int, labels: list[str]
) -> dict:
    """Start a folder for a bulk search of ``knowledge_base`` (manifest.json), or check it holds one;
    returns the manifest. ValueError if the folder holds a search of another knowledge base or settings."""
    kb = knowledge_base
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "task": kb.task.name,
        "knowledge_base": kb.pk,
        "kb_version": kb.version,
        "training_run": kb.training_run_id,
        "k": k,
        "chunk": chunk,
        "labels": sorted(labels),
        "columns": SURVEY_COLUMNS,  # parts written by another version of GalSpec are not mixed in
    }
    _manifest_write_or_check(out, manifest)
    return manifest


def part_bounds(*, chunk: int) -> list[tuple[int, int, int]]:
    """Every ingested spectrum in parts of ``chunk``, in store-row order: (first store row, last store row,
    spectra) for each part."""
    store_rows = np.fromiter(
        Spectrum.objects.order_by("store_row").values_list("store_row", flat=True).iterator(), dtype=np.int64
    )  # 8 bytes a spectrum; the rows themselves are read a part at a time
    return [
        (
            int(store_rows[start]),
            int(store_rows[min(start + chunk, len(store_rows)) - 1]),
            len(store_rows[start : start + chunk]),
        )
        for start in range(0, len(store_rows), chunk)
    ]


@dataclass(frozen=True)
class PartSearcher:
    """What searching any part of one bulk search needs, loaded once per worker: the knowledge base, its
    retriever, the policy it votes by (its own, with the search's K), its entries' specobjids, and the
    labels of interest."""

    knowledge_base: KnowledgeBase
    retriever: Retriever
    policy: VotePolicy
    specobjid_of: dict
    targets: frozenset


def part_searcher(*, knowledge_base: KnowledgeBase, labels: list[str], k: int) -> PartSearcher:
    specobjid_of = dict(knowledge_base.entries.values_list("spectrum_id", "spectrum__specobjid").iterator())
    retriever = load_retriever(knowledge_base)
    return PartSearcher(knowledge_base, retriever, retriever.policy.asked(k=k), specobjid_of, frozenset(labels))


def part_path(out: str | Path, number: int) -> Path:
    return Path(out) / f"part-{number:05d}.csv"


def part_search(searcher: PartSearcher, *, out: str | Path, number: int, first_row: int, last_row: int) -> Path:
    """Search the spectra of store rows ``first_row``..``last_row`` into ``out/part-NNNNN.csv``, unless that
    part is written already (whoever wrote it searched the same spectra the same way)."""
    part = part_path(out, number)
    if not part.exists():
        rows = list(
            Spectrum.objects.filter(store_row__gte=first_row, store_row__lte=last_row)
            .order_by("store_row")
            .values_list(*FIELDS)
        )
        _search_chunk(rows, part, searcher)
    return part


def _manifest_write_or_check(out: Path, manifest: dict) -> None:
    """Write ``manifest.json`` into a new folder, or check that the folder holds a run of the same search."""
    existing = out / "manifest.json"
    if not existing.exists():
        existing.write_text(json.dumps(manifest, indent=2))
        return
    previous = json.loads(existing.read_text())
    if {key: previous.get(key) for key in manifest} != manifest:
        raise ValueError(
            f"{out} holds a bulk search of {previous.get('task')} KB v{previous.get('kb_version')} "
            f"(chunk {previous.get('chunk')}, k {previous.get('k')}): use another folder"
        )


def _search_chunk(rows: list[tuple], part: Path, searcher: PartSearcher) -> None:
    kb, specobjid_of, targets = searcher.knowledge_base, searcher.specobjid_of, searcher.targets
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    store_rows = [row[1] for row in rows]
    vectors = representation_vectors(training_run=kb.training_run, policy=searcher.policy, store_rows=store_rows)
    reconstruction = embedding_reconstruction(training_run=kb.training_run, store_rows=store_rows)
    neighbours = searcher.retriever.neighbours(vectors, searcher.policy.k, own_ids=ids)
    votes = searcher.retriever.vote_neighbours(neighbours, searcher.policy)
    backgrounds, rule = _backgrounds(kb, rows), BackgroundRule.from_dict(kb.background_rule)
    weird = _weirdness(searcher, vectors, ids)
    descriptor, name = tempfile.mkstemp(dir=part.parent, prefix=part.stem + ".", suffix=".tmp")
    tmp = Path(name)  # a name of its own: two workers on one part, on any hosts, never share a file
    with os.fdopen(descriptor, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SURVEY_COLUMNS)
        for (
            _,
            _,
            specobjid,
            plate,
            mjd,
            fiber,
            ra,
            dec,
            z,
            valid_fraction,
            mock,
        ), vote, nids, dists, chi2, b, w in zip(
            rows, votes, neighbours.ids, neighbours.distances, reconstruction, backgrounds, weird
        ):
            found_ids = " ".join(specobjid_of[n] for n in nids.tolist() if n >= 0)
            nearest = float(dists[0]) if nids[0] >= 0 else None
            trust = assess(
                kb.calibration, valid_fraction=valid_fraction, z=z, nearest_distance=nearest, reconstruction_chi2=chi2
            )
            writer.writerow(
                [
                    specobjid,
                    f"{plate:04d}-{mjd:05d}-{fiber:04d}",
                    _csv_float(ra, 7),
                    _csv_float(dec, 7),
                    f"{z:.6f}",
                    vote.label,
                    f"{vote.share:.4f}",
                    (rule.target(vote.label in targets, b["detected"]) or w["flagged"]) if targets else "",
                    found_ids,
                    " ".join(f"{d:.5f}" for d in dists.tolist()),
                    f"{valid_fraction:.4f}",
                    _csv_bool(trust.z_in_range),
                    _csv_float(trust.distance_percentile),
                    _csv_float(trust.reconstruction_percentile),
                    _csv_bool(trust.in_distribution),
                    _csv_float(b["z_source"], 5),
                    _csv_float(b["snr"], 2) if b["z_source"] is not None else "",
                    _csv_bool(b["detected"] if b["z_source"] is not None else None),
                    _csv_float(w["score"], 5),
                    _csv_bool(w["flagged"] if w["score"] is not None else None),
                    mock,
                ]
            )
    tmp.replace(part)


def _backgrounds(kb: KnowledgeBase, rows: list[tuple]) -> list[dict]:
    """Each spectrum's background-line scan where the task's targets show one (lenses), and whether it passes
    the version's rule (``BackgroundRule``); no scan (z_source None, not detected) for any other task."""
    labelling = LABELLINGS.get(kb.task.labelling)
    if labelling is None or not labelling.background_lines:
        return [{"z_source": None, "snr": None, "detected": False}] * len(rows)
    rule = BackgroundRule.from_dict(kb.background_rule)
    spectra = [Spectrum(pk=row[0], store_row=row[1], z=row[8]) for row in rows]
    quiet = spectrum_quiet_hosts(ids=[row[0] for row in rows])
    return [
        {**found.as_dict(), "detected": rule.finds(found, quiet[row[0]])}
        for found, row in zip(background_lines_get(spectra=spectra), rows)
    ]


def _weirdness(searcher: PartSearcher, vectors: np.ndarray, ids: np.ndarray) -> list[dict]:
    """Each spectrum's weirdness where the task's targets are the unusual (outliers), and whether it passes
    the version's rule; none (score None, not flagged) for any other task."""
    kb = searcher.knowledge_base
    labelling = LABELLINGS.get(kb.task.labelling)
    rule = kb.weirdness_rule or {}
    if labelling is None or not labelling.weirdness or not rule.get("ordinary"):
        return [{"score": None, "flagged": False}] * len(ids)
    scores = searcher.retriever.weirdness(vectors, frozenset(rule["ordinary"]), rule["k"], own_ids=ids)
    threshold = rule.get("threshold")
    return [
        {"score": float(s) if np.isfinite(s) else None, "flagged": threshold is not None and s >= threshold}
        for s in scores
    ]


def _csv_bool(value: bool | None) -> str:
    return "" if value is None else str(value)


def _csv_float(value: float | None, decimals: int = 1) -> str:
    return "" if value is None else f"{value:.{decimals}f}"
