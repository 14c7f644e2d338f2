"""How every cost grows with the survey: measured at a few sizes, fitted, projected to SDSS DR16 and beyond.

    .venv/bin/python bench/cost_growth.py --out var/bench/cost_growth.json        # about 20 minutes

Runs the other benchmarks, each in its own process, at growing sizes:
- ingest (``bench/ingest_throughput.py``: mock spectra read, preprocessed, stored; 2 reading processes);
- embedding, small and paper presets on the CPU (``bench/embed_throughput.py``);
- index build, one query and batched queries, flat and compressed (``bench/search_latency.py``).
For each stage it fits time = a x n^b (b, the log-log slope: 1 is linear): over every size measured for
ingest and embedding, over the two largest for the indexes (at small sizes an index's fixed costs, such as
training its cells on 65,536 vectors, hide how it grows), and
projects the time for SDSS DR16's 2.9 million galaxy spectra and for a 40-million-spectrum survey, on 1, 8
and 64 workers (stages that split by spectrum divide by the workers; an index is built by one). A survey
search is taken against a knowledge base as large as the survey, its upper bound. Storage is
counted from the formats: the store keeps 3,688 pixels of flux, valid and ivar (9 bytes a pixel), an
embedding set 4 bytes a float, a compressed index its codes and ids in memory (measured bytes a vector).

Projections far beyond the sizes measured assume the fitted growth holds; they are estimates, on mock
spectra and synthetic vectors, not SDSS figures.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402

BENCH = Path(__file__).resolve().parent
SURVEYS = {"SDSS DR16 galaxies": 2_900_000, "a 40-million-spectrum survey": 40_000_000}
WORKERS = (1, 8, 64)
STORE_BYTES = 3688 * 9  # flux float32, valid bool, ivar float32 a pixel
WIDTHS = {"small": 7 * 64, "paper": 7 * 768}  # embedding floats: six line windows and the peaks, D each


def run(script: str, *args: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, str(BENCH / script), *args, "--out", out.name]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(Path(out.name).read_text())


def fit(sizes: list[float], seconds: list[float]) -> dict:
    """time = a * n^b, least squares in log-log; ``project(n)`` is its value at n."""
    b, log_a = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return {"exponent": round(float(b), 3), "a": float(np.exp(log_a))}


def project(model: dict, n: float) -> float:
    return model["a"] * n ** model["exponent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--embed-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--paper-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--index-sizes", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    stages, measured = {}, {}
    ingest = [run("ingest_throughput.py", "--size", str(n), "--workers", "2") for n in args.ingest_sizes]
    measured["ingest"] = [{"spectra": r["spectra"], "seconds": r["ingest_seconds"]} for r in ingest]
    stages["ingest"] = fit([r["spectra"] for r in ingest], [r["ingest_seconds"] for r in ingest])
    for preset, sizes in (("small", args.embed_sizes), ("paper", args.paper_sizes)):
        rows = [run("embed_throughput.py", "--presets", preset, "--spectra", str(n))["results"][0] for n in sizes]
        measured[f"embed_{preset}"] = [{"spectra": r["spectra"], "spectra_per_s": r["spectra_per_s"]} for r in rows]
        stages[f"embed_{preset}"] = fit([r["spectra"] for r in rows], [r["spectra"] / r["spectra_per_s"] for r in rows])
    sizes = [str(n) for n in args.index_sizes]
    index = run("search_latency.py", "--sizes", *sizes, "--kinds", "flat", "compressed", "--queries", "200")["rows"]
    measured["index"] = index
    for kind in ("flat", "compressed"):
        rows = sorted((r for r in index if r["kind"] == kind), key=lambda r: r["size"])[-2:]
        n = [r["size"] for r in rows]
        stages[f"{kind}_build"] = fit(n, [max(r["build_s"], 1e-3) for r in rows])
        stages[f"{kind}_query"] = fit(n, [r["ours"]["p50_ms"] / 1000 for r in rows])
        stages[f"{kind}_batched_query"] = fit(n, [1 / r["batch_queries_per_s"] for r in rows])
    largest = max((r for r in index if r["kind"] == "compressed"), key=lambda r: r["size"])
    index_bytes_per_vector = largest["index_bytes"] / largest["size"]

    projections = {}
    for survey, n in SURVEYS.items():
        per_worker = {
            "ingest_h": project(stages["ingest"], n) / 3600,
            "embed_small_cpu_h": project(stages["embed_small"], n) / 3600,
            "embed_paper_cpu_h": project(stages["embed_paper"], n) / 3600,
            "survey_search_compressed_h": n * project(stages["compressed_batched_query"], n) / 3600,
        }
        projections[survey] = {
            "spectra": n,
            "hours_on_workers": {
                str(w): {stage: round(hours / w, 2) for stage, hours in per_worker.items()} for w in WORKERS
            },
            "compressed_build_h_one_machine": round(project(stages["compressed_build"], n) / 3600, 2),
            "one_query_ms": {
                "flat": round(1000 * project(stages["flat_query"], n), 1),
                "compressed": round(1000 * project(stages["compressed_query"], n), 2),
            },
            "store_gb": round(n * STORE_BYTES / 1e9, 1),
            "embeddings_gb": {p: round(n * w * 4 / 1e9, 1) for p, w in WIDTHS.items()},
            "compressed_index_in_memory_gb_small": round(n * index_bytes_per_vector / 1e9, 2),
            "flat_index_in_memory_gb_small": round(n * (WIDTHS["small"] * 4 + 8) / 1e9, 1),
        }
    report(
        {
            "benchmark": "cost_growth",
            "data": "mock spectra and synthetic clustered vectors, not SDSS",
            "fits": stages,
            "measured": measured,
            "compressed_index_bytes_per_vector": round(index_bytes_per_vector, 1),
            "projections": projections,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
