"""Vector indexes over embeddings, with database keys as ids (faiss).

``IndexFlatL2`` (exact) is the default and the reference; HNSW and IVF are approximate options, to be
used only with their recall against the exact index measured on our own embeddings. Ids are int64
database keys (``IndexIDMap``), never positions in a Python list. An index is written with
``faiss.write_index`` beside a JSON sidecar (checkpoint, KB version, metric, kind), under a temporary
name and renamed into place, so a reader never opens half of one.

Distances are Euclidean (L2), not faiss's squared L2: the vote's weights are exp(-distance).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from kb.store import folder_write

KINDS = ("flat", "hnsw", "ivf")


@dataclass(frozen=True)
class IndexSpec:
    kind: str = "flat"  # flat | hnsw | ivf
    hnsw_m: int = 32  # HNSW graph degree
    hnsw_ef_search: int = 64
    ivf_lists: int = 0  # IVF cells; 0 chooses about 4 sqrt(n)
    ivf_probe: int = 8

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Neighbours:
    """Search results: ids (n, k) int64 database keys, -1 where fewer than k exist; distances (n, k) L2."""

    ids: np.ndarray
    distances: np.ndarray


def build(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec = IndexSpec()) -> faiss.Index:
    """An index over vectors (n, D) float32 with ids (n,) int64."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"need vectors (n, D) and ids (n,), got {vectors.shape} and {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique: they are database keys")
    n, width = vectors.shape
    if spec.kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(width))
    elif spec.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(width, spec.hnsw_m)
        inner.hnsw.efSearch = spec.hnsw_ef_search
        index = faiss.IndexIDMap2(inner)
    else:
        lists = spec.ivf_lists or max(1, min(n // 39, int(4 * np.sqrt(n))))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatL2(width), width, lists)
        inner.train(vectors)
        inner.nprobe = spec.ivf_probe
        index = faiss.IndexIDMap2(inner)
    index.add_with_ids(vectors, ids)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> Neighbours:
    """The k nearest neighbours of each query (n, D), nearest first; ties in distance broken by id."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.shape[1] != index.d:
        raise ValueError(f"query width ({queries.shape[1]}) doesn't match the index ({index.d})")
    if k < 1:
        raise ValueError("k must be at least 1")
    extra = min(index.ntotal, k + 8)  # a few more, so that ties at the k-th place resolve by id
    squared, ids = index.search(queries, max(extra, k))
    distances = np.sqrt(np.maximum(squared, 0.0))
    distances[ids < 0] = np.inf
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), distances), axis=1)
    ids = np.take_along_axis(ids, order, axis=1)[:, :k]
    distances = np.take_along_axis(distances, order, axis=1)[:, :k]
    if ids.shape[1] < k:  # the index holds fewer than k vectors
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
    return Neighbours(ids=ids.astype(np.int64), distances=distances.astype(np.float32))


def recall_at_k(exact: Neighbours, approximate: Neighbours) -> float:
    """Share of the exact top-k ids that the approximate search also returns."""
    hits = total = 0
    for truth, found in zip(exact.ids, approximate.ids):
        truth = set(truth[truth >= 0].tolist())
        hits += len(truth & set(found.tolist()))
        total += len(truth)
    return hits / total if total else 1.0


def tune(
    index: faiss.Index, spec: IndexSpec, queries: np.ndarray, exact: Neighbours, *, target: float = 0.95, k: int = 3
) -> tuple[IndexSpec, float]:
    """Widen an approximate index's search (HNSW efSearch, IVF nprobe; doubling) until its recall@k
    against ``exact`` (the flat index's answer for ``queries``) reaches ``target`` or can grow no more.

    Returns the spec searched with and the recall measured; the index is left set to it. A flat index
    is returned as it is, with recall 1.
    """
    if spec.kind == "flat":
        return spec, 1.0
    inner = faiss.downcast_index(index.index)
    while True:
        recall = recall_at_k(exact, search(index, queries, k))
        if spec.kind == "hnsw":
            if recall >= target or spec.hnsw_ef_search >= max(index.ntotal, k):
                return spec, recall
            spec = replace(spec, hnsw_ef_search=spec.hnsw_ef_search * 2)
            inner.hnsw.efSearch = spec.hnsw_ef_search
        else:
            if recall >= target or spec.ivf_probe >= inner.nlist:
                return spec, recall
            spec = replace(spec, ivf_probe=min(spec.ivf_probe * 2, inner.nlist))
            inner.nprobe = spec.ivf_probe


def save(index: faiss.Index, folder: str | Path, sidecar: dict) -> None:
    """Write index.faiss and index.json into ``folder`` atomically (``kb.store.folder_write``)."""

    def write(tmp: Path) -> None:
        faiss.write_index(index, str(tmp / "index.faiss"))
        meta = {**sidecar, "metric": "L2", "count": int(index.ntotal), "width": int(index.d)}
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))

    folder_write(folder, write)


def load(folder: str | Path) -> tuple[faiss.Index, dict]:
    """(index, sidecar) from a folder written by ``save``."""
    folder = Path(folder)
    sidecar = json.loads((folder / "index.json").read_text())
    return faiss.read_index(str(folder / "index.faiss")), sidecar


def spec_dict(spec: IndexSpec) -> dict:
    return asdict(spec)


def index_ids(index: faiss.Index) -> np.ndarray:
    """(ntotal,) int64: the ids an index (built by ``build``, so an IndexIDMap2) holds."""
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
