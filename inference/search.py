"""Answering a search: a query spectrum, a task's knowledge base in service, the vote and its evidence.

A query is an ingested spectrum (its stored embedding is used when there is one) or a spectrum file
read and preprocessed as at ingest. The answer names everything needed to explain it later: each
neighbour with its label, distance, weight and the catalogs the label came from, the knowledge-base
version and the checkpoint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings

from inference import index as vector_index
from inference.embed import embed
from inference.models import EmbeddingSet
from inference.services import embedding_vectors
from inference.vote import vote
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.preprocess import prepare_file
from kb.selectors import knowledge_base_entries, knowledge_base_in_service, search_task_get, spectrum_store
from training.checkpoint import load_checkpoint


@dataclass(frozen=True)
class Neighbour:
    spectrum_id: int
    specobjid: str
    plate_mjd_fiber: str
    z: float
    label: str
    distance: float  # L2 between embeddings
    weight: float  # softmax-normalised share of the vote
    catalogs: list[str]  # where the label came from
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    task: str
    label: str
    share: float  # the winning label's share of the weight
    shares: dict[str, float]
    is_target: bool | None  # None for a classification task
    neighbours: list[Neighbour]
    knowledge_base: int
    kb_version: int
    checkpoint: str
    training_run: int
    k: int
    weight_function: str
    query: str  # what was searched: 'specobjid ...' or a file name

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=4)
def _encoder(folder: str, device: str):
    return load_checkpoint(folder, device=device)


@lru_cache(maxsize=16)
def _index(folder: str, stamp: float):
    """A loaded index; ``stamp`` (the sidecar's mtime) makes a rebuilt folder load afresh."""
    return vector_index.load(folder)


def load_index(knowledge_base: KnowledgeBase):
    folder = Path(knowledge_base.index_path)
    if not (folder / "index.json").exists():
        raise ValueError(f"{knowledge_base}: its index is missing at {folder}; rebuild it with build_kb")
    index, sidecar = _index(str(folder), (folder / "index.json").stat().st_mtime)
    if sidecar.get("knowledge_base") != knowledge_base.pk:
        raise ValueError(f"{folder} holds knowledge base {sidecar.get('knowledge_base')}, not {knowledge_base.pk}")
    return index


def query_vector(*, knowledge_base: KnowledgeBase, spectrum: Spectrum | None = None, flux=None, valid=None) -> np.ndarray:
    """(D,) embedding of the query under the knowledge base's checkpoint."""
    run = knowledge_base.training_run
    if spectrum is not None:
        embedded = EmbeddingSet.objects.filter(training_run=run, rows__gt=spectrum.store_row).exists()
        if embedded:
            return embedding_vectors(training_run=run, store_rows=[spectrum.store_row])[0]
        flux_all, valid_all = spectrum_store().read()
        flux, valid = flux_all[spectrum.store_row], valid_all[spectrum.store_row]
    model = _encoder(str(Path(run.checkpoint_dir) / "best"), settings.GALSPEC_DEVICE)
    return embed(model, np.asarray(flux)[None], np.asarray(valid)[None])[0]


def search(
    *,
    task: SearchTask | str,
    spectrum: Spectrum | None = None,
    path: str | Path | None = None,
    k: int = 3,
    weight_function: str = "exp",
    knowledge_base: KnowledgeBase | None = None,
) -> Answer:
    """The vote of the ``k`` nearest entries of the task's knowledge base (default: the one in service)
    for an ingested ``spectrum`` or a spectrum file at ``path``.

    A spectrum that is itself in the knowledge base is not counted among its own neighbours.
    """
    if (spectrum is None) == (path is None):
        raise ValueError("search one spectrum: give either an ingested spectrum or a file")
    if k < 1:
        raise ValueError(f"k must be at least 1 (the neighbours that vote), got {k}")
    task = search_task_get(name=task) if isinstance(task, str) else task
    kb = knowledge_base or knowledge_base_in_service(task=task)
    if kb.status != KnowledgeBase.Status.READY:
        raise ValueError(f"{kb} is not ready to search")
    if path is not None:
        prepared = prepare_file(Path(path))
        if prepared.error:
            raise ValueError(f"{Path(path).name}: {prepared.error}")
        query = Path(path).name
        vector = query_vector(knowledge_base=kb, flux=prepared.grid.flux, valid=prepared.grid.valid)
        exclude = None
    else:
        query = f"specobjid {spectrum.specobjid}"
        vector = query_vector(knowledge_base=kb, spectrum=spectrum)
        exclude = spectrum.pk
    found = vector_index.search(load_index(kb), vector[None], k + 1)
    keep = [j for j, i in enumerate(found.ids[0]) if i != exclude][:k]
    ids, distances = found.ids[0][keep], found.distances[0][keep]
    present = [int(i) for i in ids if i >= 0]
    entries = {e.spectrum_id: e for e in knowledge_base_entries(knowledge_base=kb).filter(spectrum_id__in=present)}
    result = vote([entries[i].label if i in entries else "" for i in ids.tolist()], distances, weight_function)
    neighbours = [
        Neighbour(
            spectrum_id=i, specobjid=entries[i].spectrum.specobjid, plate_mjd_fiber=entries[i].spectrum.plate_mjd_fiber,
            z=entries[i].spectrum.z, label=entries[i].label, distance=float(d), weight=float(w),
            catalogs=list(entries[i].catalogs), details=dict(entries[i].details),
        )
        for i, d, w in zip(present, distances[: len(present)], result.weights)
    ]
    targets = tuple(task.target_labels)
    return Answer(
        task=task.name, label=result.label, share=result.share, shares=result.shares,
        is_target=(result.label in targets) if targets else None, neighbours=neighbours,
        knowledge_base=kb.pk, kb_version=kb.version, checkpoint=str(Path(kb.training_run.checkpoint_dir) / "best"),
        training_run=kb.training_run_id, k=k, weight_function=weight_function, query=query,
    )
