"""Retrieval time against knowledge-base size: the paper's Figure C1 (appendix C), for every index kind.

The paper times exact search on knowledge bases of 1,000 to 500,000 entries and fits a straight line
(y = 0.0058 x + 0.0490, units not stated). Here the same is measured for the exact index and for the
approximate ones, each with its recall@k against the exact index on the same queries, because an
approximate index is only used with its measured recall (house style, "Vector index").

Vectors. Real embeddings rarely number 500,000, so the knowledge base of size s is the first s rows of
a pool: the real vectors (n, D) in the order given, then, if they are fewer than the largest size,
synthetic vectors drawn independently per dimension from a Gaussian with the real vectors' mean and
standard deviation. Each row says how much of its knowledge base is synthetic (``synthetic_fraction``).
Synthetic vectors have the real ones' scale but none of their cluster structure, so the recall of an
approximate index over a mostly synthetic knowledge base says little about real embeddings; the timing
of exact search does not depend on the data at all. The ``n_queries`` queries are drawn from the same
Gaussian, so none of them is in any knowledge base.

Times are wall-clock seconds from ``time.perf_counter`` with faiss's OpenMP threads as configured
(``threads`` in each row): ``build_s`` once, ``batch_ms_per_query`` the best of ``repeats`` batched
searches of all queries divided by their number, ``single_query_ms_p50`` the median over the queries of
one-query searches (the latency one user sees). Both go through ``inference.index.search``, the path
the application uses. Pure numpy/faiss; never imports Django.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import faiss
import numpy as np

from inference.index import IndexSpec, Neighbours, build, recall_at_k, search

PAPER_SIZES = (1_000, 10_000, 100_000, 500_000)
CHUNK_ROWS = 65_536  # synthetic vectors are drawn this many rows at a time, in float32


def _gaussian(
    rng: np.random.Generator, rows: int, mean: np.ndarray, std: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """(rows, D) float32 drawn per dimension from N(mean, std), filled chunk by chunk without float64 copies."""
    out = np.empty((rows, len(mean)), dtype=np.float32) if out is None else out
    for start in range(0, rows, CHUNK_ROWS):
        block = out[start : start + CHUNK_ROWS]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= std
        block += mean
    return out


def _pool(vectors: np.ndarray, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """(rows, D) float32: the real vectors first, then Gaussian ones; also how many are real, mean and std (D,)."""
    real = min(len(vectors), rows)
    mean = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = vectors.std(axis=0, dtype=np.float64).astype(np.float32)
    pool = np.empty((rows, vectors.shape[1]), dtype=np.float32)
    pool[:real] = vectors[:real]
    _gaussian(rng, rows - real, mean, std, out=pool[real:])
    return pool, real, mean, std


def retrieval_time_curve(
    vectors: np.ndarray,
    *,
    sizes: Sequence[int] = PAPER_SIZES,
    kinds: Sequence[str] = ("flat", "hnsw", "ivf"),
    k: int = 3,
    n_queries: int = 200,
    seed: int = 0,
    repeats: int = 3,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> list[dict]:
    """Build and search each index kind over knowledge bases of each size; one row per (size, kind).

    vectors (n, D) float32 are real embeddings (see the module docstring for the synthetic top-up).
    Rows: ``{"size", "kind", "build_s", "batch_ms_per_query", "single_query_ms_p50", "recall_at_k",
    "synthetic_fraction", "threads"}``, times in seconds (build) and milliseconds (search); recall@k is
    against exact search over the same knowledge base (so 1.0 for flat). ``on_progress(done, total,
    description)`` is called before each build and once at the end, ``total`` being sizes x kinds.
    Memory: the pool holds max(sizes) x D float32 (500,000 x 768 is 1.5 GB) and one index at a time a
    copy of it; indexes are freed as soon as they are measured.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(
            f"need real vectors (n, D) with n >= 2 to estimate their distribution, got shape {vectors.shape}"
        )
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be positive, got {sizes}")
    specs = [IndexSpec(kind=kind) for kind in kinds]  # unknown kinds fail here, before any work
    if n_queries < 1 or repeats < 1 or k < 1:
        raise ValueError("k, n_queries and repeats must each be at least 1")
    rng = np.random.default_rng(seed)
    pool, real, mean, std = _pool(vectors, sizes[-1], rng)
    queries = _gaussian(rng, n_queries, mean, std)
    threads = int(faiss.omp_get_max_threads())
    total, rows = len(sizes) * len(specs), []
    for size in sizes:
        kb, ids = pool[:size], np.arange(size, dtype=np.int64)  # a view: no copy
        measured = []  # (timings, neighbours) per kind
        for spec in specs:
            if on_progress:
                on_progress(len(rows) + len(measured), total, f"{spec.kind} index over {size:,} vectors")
            measured.append(_measure(kb, ids, spec, queries, k, repeats))
        exact = next((found for timings, found in measured if timings["kind"] == "flat"), None)
        if exact is None:  # the reference, not timed
            exact = search(build(kb, ids), queries, k)
        for timings, found in measured:
            rows.append(
                {
                    "size": size,
                    **timings,
                    "recall_at_k": float(recall_at_k(exact, found)),
                    "synthetic_fraction": (size - min(real, size)) / size,
                    "threads": threads,
                }
            )
    if on_progress:
        on_progress(total, total, "done")
    return rows


def _measure(
    kb: np.ndarray, ids: np.ndarray, spec: IndexSpec, queries: np.ndarray, k: int, repeats: int
) -> tuple[dict, Neighbours]:
    """Build one index and time its searches; returns the row's timings and the batched search's result."""
    start = time.perf_counter()
    index = build(kb, ids, spec)
    build_s = time.perf_counter() - start
    batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = search(index, queries, k)
        batch.append(time.perf_counter() - start)
    single = []
    for query in queries:
        start = time.perf_counter()
        search(index, query[None], k)
        single.append(time.perf_counter() - start)
    del index
    return {
        "kind": spec.kind,
        "build_s": build_s,
        "batch_ms_per_query": 1000.0 * min(batch) / len(queries),
        "single_query_ms_p50": 1000.0 * float(np.median(single)),
    }, found


def fit_line(sizes: Sequence[float], times: Sequence[float]) -> dict:
    """Least-squares line times (ms) = slope * size + intercept, and the slope of log10(time) against
    log10(size) (1 for linear growth, below 1 for sub-linear like HNSW's), with the line's R^2.

    sizes (m,) vectors and times (m,) milliseconds, at least two distinct sizes. Returns
    ``{"slope_ms_per_vector", "intercept_ms", "loglog_slope", "r2"}``; the log-log slope uses only
    positive times.
    """
    x, y = np.asarray(sizes, dtype=np.float64), np.asarray(times, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need sizes (m,) and times (m,), got {x.shape} and {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError("fitting a line needs at least two distinct sizes")
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    spread = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)
    positive = (x > 0) & (y > 0)
    loglog = (
        float(np.polyfit(np.log10(x[positive]), np.log10(y[positive]), 1)[0])
        if len(np.unique(x[positive])) >= 2
        else 0.0
    )
    return {
        "slope_ms_per_vector": float(slope),
        "intercept_ms": float(intercept),
        "loglog_slope": loglog,
        "r2": float(r2),
    }


def fit_lines(rows: Sequence[dict], *, time_key: str = "batch_ms_per_query") -> dict[str, dict]:
    """``fit_line`` for each index kind in rows from ``retrieval_time_curve``: {kind: fit}."""
    fits = {}
    for kind in dict.fromkeys(row["kind"] for row in rows):
        mine = [row for row in rows if row["kind"] == kind]
        fits[kind] = fit_line([row["size"] for row in mine], [row[time_key] for row in mine])
    return fits
