"""Searches per second and latency over HTTP, under 1, 8 and 32 concurrent clients on loopback.

    .venv/bin/python bench/http_search.py --data-dir var --out var/bench/http_search.json

Serves the deployment in ``--data-dir`` (a data folder with a checkpoint and knowledge bases in service,
as ``make demo`` leaves in ``var``; its SQLite database unless DATABASE_URL is set) with gunicorn
(``--workers`` processes, each with ``--threads`` threads), then each client thread sends
``POST /api/v1/search/`` by specobjid of a random ingested spectrum, one request after another, for
``--seconds`` at each concurrency. The rate limits are lifted for the run (GALSPEC_THROTTLE_*): this
measures the server, not the throttle. Client and server share this machine's cores, so the figures
are a floor for a server on its own machine. Prints JSON; ``--out`` also writes it.
"""

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, gunicorn, report  # noqa: E402


def load(url: str, task: str, ids: list[str], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng, session, mine, failed = random.Random(seed), requests.Session(), [], 0  # noqa: S311  load, not secrets
        while time.monotonic() < stop:
            start = time.perf_counter()
            query = {"task": task, "identifier": rng.choice(ids)}
            response = session.post(f"{url}/api/v1/search/", data=query, timeout=60)
            if response.status_code == 200:
                mine.append(time.perf_counter() - start)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors[0],
        "searches_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO / "var")
    parser.add_argument("--task", default="lens")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    lifted = {"GALSPEC_THROTTLE_ANON": "1000000/minute", "GALSPEC_THROTTLE_USER": "1000000/minute"}
    server = gunicorn(args.data_dir, args.port, args.workers, args.threads, **lifted)
    url = f"http://127.0.0.1:{args.port}"
    try:
        spectra = requests.get(f"{url}/api/v1/spectra/?page_size=1000", timeout=60).json()["results"]
        ids = [s["specobjid"] for s in spectra]
        kbs = requests.get(f"{url}/api/v1/knowledge-bases/?task={args.task}&in_service=true", timeout=60).json()
        kb = kbs["results"][0]
        load(url, args.task, ids, 2, 3)  # warm-up: indexes and encoders loaded in every worker
        rows = [load(url, args.task, ids, clients, args.seconds) for clients in args.clients]
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "server": f"gunicorn, {args.workers} workers x {args.threads} threads, loopback, client on the same machine",
        "cpus": os.cpu_count(),
        "task": args.task,
        "knowledge_base": {"version": kb["version"], "size": kb["size"]},
        "seconds_per_level": args.seconds,
        "rows": rows,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
