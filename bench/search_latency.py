"""Search latency, throughput and memory against knowledge-base size, exact, approximate and compressed.

    .venv/bin/python bench/search_latency.py --out var/bench/search_latency.json
    .venv/bin/python bench/search_latency.py --sizes 1000000 --kinds compressed
    .venv/bin/python bench/search_latency.py --sizes 100000 1000000 3000000 --kinds flat compressed
    .venv/bin/python bench/search_latency.py --sizes 1000000 3000000 --kinds flat compressed --vectors mock

For each size and index kind: build time; recall@3 against the exact index on the same queries (an
approximate index first widens its search to recall 0.99, as ``build_kb`` does); the index written as
``build_kb`` writes it and loaded back as the site loads it, then the latency of one query, p50 and p99
over ``--queries`` queries, through our path (``inference.index.search``: the tie-breaking by id, then
``Retriever.vote_neighbours``: the labels and the weighted vote) and through the index's own
``search`` alone (raw faiss; for compressed, faiss plus the re-ranking); batched throughput (all queries in
one call, queries/s); and the index's size in memory, ``index_bytes`` (what ``load`` reads into memory:
the faiss file, and a compressed index's ids), beside ``disk_bytes`` (a compressed index's float vectors,
memory-mapped for re-ranking: read from the page cache or the disk, never all held by the process).
``peak_rss_bytes`` is the process's peak so far, the pool of vectors included.

Vectors, ``--vectors``:

- ``synthetic`` (default): a mixture of 1,000 Gaussian clusters in 448 dimensions (the small preset's
  embedding width: 7 x 64), so that neighbours are meaningful and an approximate index's recall is not
  trivially high. Queries are drawn from the same clusters.
- ``mock``: the real embeddings of a mock survey (``--mock-size`` spectra, generated, ingested and embedded
  by the shipped checkpoint in a throw-away site), topped up to the size asked for: each new vector lies
  at a random point between a mock embedding and one of its 10 nearest mock neighbours, plus noise of
  a fifth of that distance, so the additions follow the embeddings' own shape and local density. The
  queries are mock embeddings left out of the pool.

Neither is an SDSS embedding, and queries are in no knowledge base. Times are wall-clock, faiss's OpenMP
threads as configured (printed). Prints JSON; ``--out`` also writes it.
"""

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402
from inference import index as vector_index  # noqa: E402
from inference.retriever import PAPER_POLICY, Retriever  # noqa: E402

WIDTH, CLUSTERS, LABELS = 448, 1000, ("star-forming", "composite", "seyfert", "liner", "normal")


def clustered(rng: np.random.Generator, rows: int, centres: np.ndarray) -> np.ndarray:
    """(rows, D) float32 around randomly chosen centres, filled in chunks."""
    out = np.empty((rows, centres.shape[1]), dtype=np.float32)
    for start in range(0, rows, 65_536):
        block = out[start : start + 65_536]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= 0.35
        block += centres[rng.integers(len(centres), size=len(block))]
    return out


def mock_embeddings(size: int, seed: int) -> np.ndarray:
    """(size, D) float32: the embeddings, under the shipped checkpoint, of a mock survey of ``size`` spectra
    generated and ingested in a throw-away site (deleted after)."""
    import shutil

    from bench.common import throwaway_site

    work = throwaway_site()
    try:
        from inference.selectors.embeddings import embeddings_in_service
        from inference.services.embeddings import embedding_update
        from kb.mock import generate_survey
        from kb.services.ingest import ingest_folder
        from training.checkpoint import SHIPPED
        from training.services import training_run_import

        generate_survey(out=work / "survey", size=size, seed=seed)
        ingest_folder(folder=work / "survey")
        training_run_import(source=SHIPPED)
        embedding_update()
        return np.array(embeddings_in_service()[1], dtype=np.float32)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def topped_up(rng: np.random.Generator, seeds: np.ndarray, rows: int, neighbours: int = 10) -> np.ndarray:
    """(rows, D) float32: ``seeds`` first, then points between a seed and one of its ``neighbours`` nearest
    seeds, at a uniform fraction of the way, plus Gaussian noise of a fifth of that distance."""
    index = faiss.IndexFlatL2(seeds.shape[1])
    index.add(seeds)
    near = index.search(seeds, neighbours + 1)[1][:, 1:]  # the first is the seed itself
    out = np.empty((rows, seeds.shape[1]), dtype=np.float32)
    out[: len(seeds)] = seeds[:rows]
    for start in range(len(seeds), rows, 65_536):
        block = out[start : start + 65_536]
        a = rng.integers(len(seeds), size=len(block))
        b = near[a, rng.integers(neighbours, size=len(block))]
        step = seeds[b] - seeds[a]
        spread = np.linalg.norm(step, axis=1, keepdims=True) / 5 / np.sqrt(seeds.shape[1])
        block[:] = seeds[a] + rng.random((len(block), 1), dtype=np.float32) * step
        block += rng.standard_normal(block.shape, dtype=np.float32) * spread
    return out


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def measure(vectors: np.ndarray, queries: np.ndarray, kind: str, exact_found, labels: dict) -> dict:
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    start = time.perf_counter()
    spec = vector_index.IndexSpec(kind=kind)
    index = vector_index.build(vectors, ids, spec)
    build_s = time.perf_counter() - start
    recall = 1.0
    if kind != "flat":
        spec, recall = vector_index.tune(index, spec, queries, exact_found, target=0.99)
    with tempfile.TemporaryDirectory(prefix="galspec-index-") as folder:
        vector_index.save(index, folder, {"kind": kind})
        del index
        files = {path.name: path.stat().st_size for path in Path(folder).iterdir()}
        index = vector_index.load(folder)[0]
        retriever = Retriever(index, labels, PAPER_POLICY)
        ours, raw = [], []
        for query in queries:
            q = query[None]
            t0 = time.perf_counter()
            index.search(q, 3)
            t1 = time.perf_counter()
            retriever.vote_neighbours(vector_index.search(index, q, 3))
            t2 = time.perf_counter()
            raw.append(t1 - t0)
            ours.append(t2 - t1)
        t0 = time.perf_counter()
        vector_index.search(index, queries, 3)
        batch_s = time.perf_counter() - t0
        del index
    ours_p, raw_p = percentiles(ours), percentiles(raw)
    return {
        "kind": kind,
        "size": len(vectors),
        "build_s": round(build_s, 2),
        "recall_at_3": round(recall, 4),
        "params": vector_index.spec_dict(spec),
        "ours": ours_p,
        "raw_faiss": raw_p,
        "overhead_p50_ms": round(ours_p["p50_ms"] - raw_p["p50_ms"], 4),
        "batch_queries_per_s": round(len(queries) / batch_s, 1),
        "index_bytes": files["index.faiss"] + files.get("ids.npy", 0),
        "disk_bytes": files.get("vectors.npy", 0),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf", "compressed"])
    parser.add_argument(
        "--hnsw-max", type=int, default=1_000_000, help="largest size to build HNSW for (3 min at 1M on 2 cores)"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vectors", choices=("synthetic", "mock"), default="synthetic")
    parser.add_argument("--mock-size", type=int, default=10_000, help="spectra of the mock survey (--vectors mock)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.vectors == "mock":
        embedded = rng.permutation(mock_embeddings(args.mock_size, args.seed))
        queries, pool = embedded[: args.queries], topped_up(rng, embedded[args.queries :], max(args.sizes))
        source = f"{len(embedded) - args.queries} mock embeddings (shipped checkpoint), topped up"
    else:
        centres = rng.standard_normal((CLUSTERS, WIDTH), dtype=np.float32)
        pool, queries = clustered(rng, max(args.sizes), centres), clustered(rng, args.queries, centres)
        source = f"synthetic: {CLUSTERS} Gaussian clusters in {WIDTH} dimensions"
    width = pool.shape[1]
    labels_all = rng.choice(len(LABELS), size=len(pool))
    rows = []
    for size in sorted(args.sizes):
        vectors = pool[:size]
        labels = {i + 1: LABELS[labels_all[i]] for i in range(size)}
        exact_index = vector_index.build(vectors, np.arange(1, size + 1, dtype=np.int64))
        exact_found = vector_index.search(exact_index, queries, 3)
        del exact_index
        for kind in args.kinds:
            if kind == "hnsw" and size > args.hnsw_max:
                continue
            row = measure(vectors, queries, kind, exact_found, labels)
            row["flat_bytes"] = size * (width * 4 + 8)  # an exact index's floats and ids, for the ratio
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "faiss": faiss.__version__,
        },
        "vectors": f"{source}, {width} floats: not SDSS embeddings",
        "queries": args.queries,
        "rows": rows,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
