"""Searching a whole survey: every ingested spectrum against a task's knowledge base, in chunks.

Each chunk of ``chunk`` spectra (in store-row order) is embedded if it is not yet, searched in one
batched index search, voted on, and written as ``part-NNNNN.csv`` (atomically: a temporary file renamed
into place). A run that stops, for any reason, carries on from the first chunk with no file, so a
survey of millions is searched once however often it is interrupted. ``manifest.json`` names the task,
the knowledge-base version and checkpoint, and a run against another version refuses the folder.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inference import index as vector_index
from inference.retrieval import vote_all
from inference.search import load_index
from inference.services import embedding_update, embedding_vectors
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.selectors import knowledge_base_in_service

COLUMNS = ["specobjid", "plate_mjd_fiber", "z", "label", "share", "is_target", "neighbour_ids", "distances"]


def bulk_search(*, task: SearchTask, out: str | Path, chunk: int = 10_000, k: int = 3,
                knowledge_base: KnowledgeBase | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Search every ingested spectrum; returns the manifest. A spectrum in the knowledge base is not its
    own neighbour. ValueError if ``out`` holds a run against another knowledge base."""
    kb = knowledge_base or knowledge_base_in_service(task=task)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"task": task.name, "knowledge_base": kb.pk, "kb_version": kb.version, "training_run": kb.training_run_id,
                "k": k, "chunk": chunk}
    existing = out / "manifest.json"
    if existing.exists():
        previous = json.loads(existing.read_text())
        if {key: previous.get(key) for key in manifest} != manifest:
            raise ValueError(f"{out} holds a bulk search of {previous.get('task')} KB v{previous.get('kb_version')} "
                             f"(chunk {previous.get('chunk')}, k {previous.get('k')}): use another folder")
    else:
        existing.write_text(json.dumps(manifest, indent=2))
    embedding_update(training_run=kb.training_run)
    index = load_index(kb)
    label_of = dict(kb.entries.values_list("spectrum_id", "label"))
    targets = set(task.target_labels)
    spectra = list(Spectrum.objects.order_by("store_row").values_list("pk", "store_row", "specobjid", "plate", "mjd",
                                                                      "fiberid", "z"))
    chunks = range(0, len(spectra), chunk)
    for number, start in enumerate(chunks, start=1):
        part = out / f"part-{number:05d}.csv"
        if not part.exists():
            _search_chunk(spectra[start : start + chunk], part, kb, index, label_of, targets, k)
        if on_progress:
            on_progress(min(start + chunk, len(spectra)), len(spectra))
    manifest["spectra"], manifest["parts"] = len(spectra), len(chunks)
    existing.write_text(json.dumps(manifest, indent=2))
    return manifest


def _search_chunk(rows: list[tuple], part: Path, kb: KnowledgeBase, index, label_of: dict, targets: set, k: int) -> None:
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    vectors = embedding_vectors(training_run=kb.training_run, store_rows=[row[1] for row in rows])
    found = vector_index.search(index, vectors, k + 1)
    keep = found.ids != ids[:, None]  # not its own neighbour
    keep[keep.sum(axis=1) > k, k] = False  # the last of k + 1 where there was no self-match
    neighbours = vector_index.Neighbours(ids=found.ids[keep].reshape(len(rows), k),
                                         distances=found.distances[keep].reshape(len(rows), k))
    votes = vote_all(neighbours, label_of)
    tmp = part.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for (_, _, specobjid, plate, mjd, fiber, z), vote, nids, dists in zip(rows, votes, neighbours.ids, neighbours.distances):
            writer.writerow([specobjid, f"{plate:04d}-{mjd:05d}-{fiber:04d}", f"{z:.6f}", vote.label, f"{vote.share:.4f}",
                             vote.label in targets if targets else "", " ".join(map(str, nids.tolist())),
                             " ".join(f"{d:.5f}" for d in dists.tolist())])
    tmp.replace(part)
