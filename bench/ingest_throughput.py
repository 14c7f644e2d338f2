"""Ingest throughput: spectra/s and peak memory of `ingest` on a folder of SDSS-format files.

    .venv/bin/python bench/ingest_throughput.py --size 2000            # a fresh mock survey
    .venv/bin/python bench/ingest_throughput.py --survey DIR           # any folder of spec-*.fits

Runs in a throw-away data folder and SQLite database (or DATABASE_URL), deleted at the end; prints one
JSON object, and ``--out FILE`` also writes it.
Reading the FITS files dominates; the figure is for one process on this machine.
"""

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, throwaway_site  # noqa: E402


def main() -> None:  # run as a script: worker processes are spawned and re-import it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", type=Path, help="folder to ingest (default: generate a mock survey)")
    parser.add_argument("--size", type=int, default=2000, help="mock survey size when --survey is not given")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1, help="processes reading files (ingest --workers)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = throwaway_site()
    from django.db import connection

    from kb.services.ingest import ingest_folder

    survey = args.survey
    generate_s = None
    if survey is None:
        from kb.mock import generate_survey

        survey = work / "survey"
        start = time.perf_counter()
        generate_survey(out=survey, size=args.size, seed=args.seed)
        generate_s = time.perf_counter() - start
    start = time.perf_counter()
    summary = ingest_folder(folder=survey, workers=args.workers)
    ingest_s = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "benchmark": "ingest",
        "spectra": summary.added,
        "rejected": len(summary.rejected),
        "ingest_seconds": round(ingest_s, 2),
        "ingest_spectra_per_s": round(summary.added / ingest_s, 1),
        "workers": args.workers,
        "mock_generation_spectra_per_s": round(args.size / generate_s, 1) if generate_s else None,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "database": connection.vendor,
        "cpu_count": os.cpu_count(),
    }
    shutil.rmtree(work)
    report(result, args.out)


if __name__ == "__main__":
    main()
