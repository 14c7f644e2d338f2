"""Vector indexes over embeddings, with database keys as ids (faiss).

``IndexFlatL2`` (exact) is the default and the reference; HNSW and IVF are approximate options, to be
used only with their recall against the exact index measured on our own embeddings. ``compressed`` is
for knowledge bases the size of a survey: IVF-PQ codes in memory (a byte per 8 floats) find a shortlist,
which is put in order by exact distances to the float vectors, kept on disk and memory-mapped
(``Reranked``). ``kind_for`` chooses between flat and compressed by size. Ids are int64 database keys
(``IndexIDMap``, or ``Reranked.ids``), never positions in a Python list. An index is written with
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

KINDS = ("flat", "hnsw", "ivf", "compressed")
CHOICES = ("auto", *KINDS)  # what a person may ask for; auto is resolved by ``kind_for``
FLAT_MAX = 50_000  # vectors: above this, auto chooses compressed (one exact query: 4 ms at 50k, 10 ms at 100k)
TRAIN_MIN = 65_536  # vectors a compressed index's cells and codes are trained on, at least (all, if fewer)
RERANK_MAX = 4_096  # the longest shortlist tuning may reach: 4,096 x D floats read a query


@dataclass(frozen=True)
class IndexSpec:
    kind: str = "flat"  # flat | hnsw | ivf | compressed
    hnsw_m: int = 32  # HNSW graph degree
    hnsw_ef_search: int = 64
    ivf_lists: int = 0  # IVF cells (ivf, compressed); 0 chooses about 4 sqrt(n)
    ivf_probe: int = 8
    pq_bytes: int = 0  # compressed: bytes of each vector's code; 0 chooses one per 8 floats
    rerank: int = 128  # compressed: shortlist re-ranked by exact distance to the stored vectors

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; choose one of {', '.join(KINDS)}")


def kind_for(n: int) -> str:
    """The index ``auto`` builds over n vectors: exact up to FLAT_MAX, where one exact query still takes
    under 5 ms on two cores at width 448; compressed beyond, where an exact query's scan grows with n (10 ms
    at 100k, 49 ms at 500k) and so does its memory, 4 bytes a float (bench/search_latency.py)."""
    return "flat" if n <= FLAT_MAX else "compressed"


class Reranked:
    """A compressed index: IVF-PQ codes find each query's ``rerank`` nearest candidates, which exact L2
    against the float ``vectors`` (n, D) then puts in order. Once saved, ``vectors`` are memory-mapped
    from disk, so memory holds the codes (``pq_bytes`` a vector) and the ids, not the floats.

    It answers like a faiss index: ``search(queries (m, D), k)`` gives squared L2 (m, k) and ids (m, k),
    -1 and inf where fewer than k exist; ``ids`` (n,) int64 are the database keys of the rows."""

    READ = 16_777_216  # floats read at a time for re-ranking (64 MB): queries per chunk = READ / (shortlist x D)

    def __init__(self, coarse: faiss.Index, vectors: np.ndarray, ids: np.ndarray, rerank: int):
        self.coarse, self.vectors, self.ids, self.rerank = coarse, vectors, ids, rerank

    @property
    def d(self) -> int:
        return self.coarse.d

    @property
    def ntotal(self) -> int:
        return self.coarse.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        shortlist = min(max(k, self.rerank), self.ntotal)
        squared = np.full((len(queries), k), np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        chunk = max(1, self.READ // (shortlist * self.d))
        for start in range(0, len(queries), chunk):
            block = queries[start : start + chunk]
            _, rows = self.coarse.search(block, shortlist)  # (c, S) positions, -1 where none
            found = rows >= 0
            candidates = np.asarray(self.vectors[np.where(found, rows, 0).ravel()]).reshape(*rows.shape, -1)
            exact = ((candidates - block[:, None, :]) ** 2).sum(axis=2, dtype=np.float32)  # (c, S)
            exact[~found] = np.inf
            best = np.argsort(exact, axis=1, kind="stable")[:, :k]
            width = best.shape[1]
            squared[start : start + len(block), :width] = np.take_along_axis(exact, best, axis=1)
            picked = np.take_along_axis(rows, best, axis=1)
            ids[start : start + len(block), :width] = np.where(picked >= 0, self.ids[np.maximum(picked, 0)], -1)
        return squared, ids


def _lists(n: int, spec: IndexSpec) -> int:
    """IVF cells over n vectors: as asked, else about 4 sqrt(n), with at least 39 vectors a cell to train on."""
    return spec.ivf_lists or max(1, min(n // 39, int(4 * np.sqrt(n))))


def _compressed(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec) -> Reranked:
    n, width = vectors.shape
    code = spec.pq_bytes or max(1, width // 8)
    if width % code:
        raise ValueError(f"a code of {code} bytes doesn't divide the width {width}: choose pq_bytes dividing it")
    lists = _lists(n, spec)
    bits = min(8, max(1, int(np.log2(max(n, 2)))))  # a code book of 2^bits needs that many vectors to train
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, size=min(n, max(TRAIN_MIN, 64 * lists)), replace=False))
    coarse = faiss.IndexIVFPQ(faiss.IndexFlatL2(width), width, lists, code, bits)
    coarse.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, TRAIN_MIN):
        coarse.add(np.ascontiguousarray(vectors[start : start + TRAIN_MIN], dtype=np.float32))
    coarse.nprobe = spec.ivf_probe
    return Reranked(coarse, vectors, ids, spec.rerank)


@dataclass(frozen=True)
class Neighbours:
    """Search results: ids (n, k) int64 database keys, -1 where fewer than k exist; distances (n, k) L2."""

    ids: np.ndarray
    distances: np.ndarray


def build(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec = IndexSpec()) -> faiss.Index | Reranked:
    """An index over vectors (n, D) float32 with ids (n,) int64. A compressed index keeps ``vectors`` (a
    memory map stays one) to re-rank with; the others copy them into faiss."""
    vectors = np.asarray(vectors)
    if spec.kind != "compressed" or vectors.dtype != np.float32:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"need vectors (n, D) and ids (n,), got {vectors.shape} and {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique: they are database keys")
    n, width = vectors.shape
    if spec.kind == "compressed":
        return _compressed(vectors, ids, spec)
    if spec.kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(width))
    elif spec.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(width, spec.hnsw_m)
        inner.hnsw.efSearch = spec.hnsw_ef_search
        index = faiss.IndexIDMap2(inner)
    else:
        inner = faiss.IndexIVFFlat(faiss.IndexFlatL2(width), width, _lists(n, spec))
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
    if spec.kind == "compressed":
        return _tune_compressed(index, spec, queries, exact, target=target, k=k)
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


def _tune_compressed(
    index: Reranked, spec: IndexSpec, queries: np.ndarray, exact: Neighbours, *, target: float, k: int
) -> tuple[IndexSpec, float]:
    """Widen whichever of nprobe (cells searched) and the re-ranked shortlist (at most RERANK_MAX) gains
    more recall, doubling, until the target is reached or neither can grow; returns the recall reached."""

    def measured(candidate: IndexSpec) -> float:
        index.coarse.nprobe, index.rerank = candidate.ivf_probe, candidate.rerank
        return recall_at_k(exact, search(index, queries, k))

    recall = measured(spec)
    while recall < target:
        wider = []
        if spec.ivf_probe < index.coarse.nlist:
            wider.append(replace(spec, ivf_probe=min(2 * spec.ivf_probe, index.coarse.nlist)))
        if spec.rerank < min(index.ntotal, RERANK_MAX):
            wider.append(replace(spec, rerank=min(2 * spec.rerank, index.ntotal, RERANK_MAX)))
        if not wider:
            break
        recall, spec = max(((measured(candidate), candidate) for candidate in wider), key=lambda pair: pair[0])
    index.coarse.nprobe, index.rerank = spec.ivf_probe, spec.rerank
    return spec, recall


def save(index: faiss.Index | Reranked, folder: str | Path, sidecar: dict) -> None:
    """Write the index into ``folder`` atomically (``kb.store.folder_write``), as ``write`` does."""
    folder_write(folder, lambda tmp: write(index, tmp, sidecar))


def write(index: faiss.Index | Reranked, tmp: Path, sidecar: dict) -> None:
    """Write index.faiss and index.json into the folder ``tmp`` being written; a compressed index also its
    float vectors (vectors.npy, n x D float32) and ids (ids.npy), to be memory-mapped."""
    meta = {**sidecar, "metric": "L2", "count": int(index.ntotal), "width": int(index.d)}
    if isinstance(index, Reranked):
        faiss.write_index(index.coarse, str(tmp / "index.faiss"))
        vectors = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.float32, (index.ntotal, index.d))
        for start in range(0, index.ntotal, TRAIN_MIN):
            vectors[start : start + TRAIN_MIN] = index.vectors[start : start + TRAIN_MIN]
        vectors.flush()
        del vectors
        np.save(tmp / "ids.npy", index.ids)
        meta["rerank"] = index.rerank
    else:
        faiss.write_index(index, str(tmp / "index.faiss"))
    (tmp / "index.json").write_text(json.dumps(meta, indent=2))


def load(folder: str | Path) -> tuple[faiss.Index | Reranked, dict]:
    """(index, sidecar) from a folder written by ``save``; a compressed index's vectors stay on disk."""
    folder = Path(folder)
    sidecar = json.loads((folder / "index.json").read_text())
    index = faiss.read_index(str(folder / "index.faiss"))
    if "rerank" in sidecar:
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        index = Reranked(index, vectors, np.load(folder / "ids.npy"), sidecar["rerank"])
    return index, sidecar


def spec_dict(spec: IndexSpec) -> dict:
    return asdict(spec)


def spec_params(kind: str) -> dict:
    """A new knowledge base's ``index_params``: the defaults of ``kind``; none for auto, resolved at its build."""
    if kind == "auto":
        return {}
    return spec_dict(IndexSpec(kind=kind))


def index_ids(index: faiss.Index | Reranked) -> np.ndarray:
    """(ntotal,) int64: the ids an index built by ``build`` (an IndexIDMap2, or ``Reranked``) holds."""
    if isinstance(index, Reranked):
        return np.asarray(index.ids, dtype=np.int64)
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
