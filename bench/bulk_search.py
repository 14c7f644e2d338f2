"""Bulk search throughput: spectra/s of a whole-survey bulk search, embedding stage and search stage apart.

    .venv/bin/python bench/bulk_search.py --size 3000 --out var/bench/bulk_search.json

Runs in a throw-away data folder and SQLite database (or DATABASE_URL, which then should name a database
of its own): generates a mock survey of ``--size`` spectra, ingests it, pre-trains the small preset for a
few steps (throughput does not depend on what the model has learned) and builds the task's knowledge base.
Then it times the two stages of ``inference.services.bulk.bulk_search``:

- embedding: every spectrum embedded under a checkpoint that has embedded none yet (``embedding_update``
  after the checkpoint's embeddings are emptied), as a bulk search against a fresh checkpoint starts;
- search: ``bulk_search`` with everything embedded (batched index search, vote, CSV parts).

Both stages are measured in the same run, so their ratio is not skewed by a machine busier at one time
than another. Set-up (survey, ingest, pre-training, knowledge base) is timed too but is not the figure.
The data folder is deleted at the end. Prints JSON; ``--out`` also writes it.
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

QUICK = dict(max_steps=3, eval_every=3, batch_size=8, warmup_steps=1)  # as tests/conftest.py: any weights will do


def _timed(work, name: str, function, *args, **kwargs):
    """``function(*args, **kwargs)``, its seconds added to ``work`` under ``name``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    work[name] = time.perf_counter() - start
    return result


def _site(work: Path, args: argparse.Namespace, setup: dict):
    """A mock survey ingested, a checkpoint pre-trained a few steps and the task's knowledge base built
    (which embeds every spectrum on the way); each step's seconds go into ``setup``."""
    from inference.services.knowledge_bases import knowledge_base_build
    from kb.mock import generate_survey
    from kb.models import SearchTask
    from kb.services.ingest import ingest_folder
    from training.services import training_run_create, training_run_execute

    cores = os.cpu_count() or 1
    _timed(setup, "mock_survey_s", generate_survey, out=work / "survey", size=args.size, seed=args.seed, workers=cores)
    _timed(setup, "ingest_s", ingest_folder, folder=work / "survey", workers=cores)
    run = _timed(setup, "pretrain_s", training_run_execute, run=training_run_create(preset="small", **QUICK))
    task = SearchTask.objects.get(name=args.task)
    return run, task, _timed(setup, "knowledge_base_s", knowledge_base_build, task=task)


def main() -> None:  # run as a script: worker processes are spawned and re-import it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3000, help="spectra in the mock survey")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--task", default="lens")
    parser.add_argument("--chunk", type=int, default=10_000, help="spectra per CSV part (bulk_search's chunk)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = throwaway_site()
    import torch
    from django.conf import settings
    from django.db import connection

    from inference.models import EmbeddingSet
    from inference.services.bulk import bulk_search
    from inference.services.embeddings import embedding_update
    from training.checkpoint import resolve_device

    setup, stages = {}, {}
    run, task, kb = _site(work, args, setup)
    EmbeddingSet.objects.filter(training_run=run).update(rows=0)  # as a checkpoint that has embedded nothing
    embedded = _timed(stages, "embed", embedding_update, training_run=run).rows
    manifest = _timed(stages, "search", bulk_search, task=task, out=work / "bulk", chunk=args.chunk, knowledge_base=kb)
    embed_s, search_s, spectra = stages["embed"], stages["search"], manifest["spectra"]
    result = {
        "benchmark": "bulk_search",
        "spectra": spectra,
        "task": args.task,
        "knowledge_base_size": kb.size,
        "chunk": args.chunk,
        "parts": manifest["parts"],
        "preset": run.preset,
        "embed_seconds": round(embed_s, 2),
        "embed_spectra_per_s": round(embedded / embed_s, 1),
        "search_seconds": round(search_s, 2),
        "search_spectra_per_s": round(spectra / search_s, 1),
        "both_stages_spectra_per_s": round(spectra / (embed_s + search_s), 1),
        "embed_share_of_time": round(embed_s / (embed_s + search_s), 3),
        "setup_seconds": {name: round(seconds, 1) for name, seconds in setup.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "database": connection.vendor,
        "device": str(resolve_device(settings.GALSPEC_DEVICE)),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    shutil.rmtree(work)
    report(result, args.out)


if __name__ == "__main__":
    main()
