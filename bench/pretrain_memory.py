"""Peak memory of pre-training against the size of the spectrum store: the store stays on disk.

    .venv/bin/python bench/pretrain_memory.py --sizes 3000 300000 --out var/bench/pretrain_memory.json

For each size, a synthetic store of that many spectra (the grid's 3,688 pixels: flux, valid and ivar, 9
bytes a pixel; 10 GB at 300,000) is written to a temporary folder in blocks, then a fresh process
pre-trains the ``small`` preset on it for ``--steps`` steps (batch 32, validation on 256 spectra), reading
it memory-mapped as ``manage.py pretrain`` does; its peak RSS is reported beside the store's size, and at
the end its private memory (``RssAnon``) apart from the store's pages mapped into it (``RssFile``, with
the libraries'): those are the page cache's, shared and reclaimable, and a kernel that caches files in
large folios maps up to 2 MB around each row a batch reads, so they grow with the rows touched. The
spectra are random continua with a line, not SDSS spectra: memory does not depend on what they show.
With ``--processes 2`` the same runs over two gloo processes (``training.distributed``), and the peak is
each rank's.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402
from kb.preprocess import PAPER  # noqa: E402
from kb.store import SpectrumStore  # noqa: E402

BLOCK = 2_000  # spectra written at a time


def write_store(folder: Path, size: int, seed: int = 0) -> SpectrumStore:
    store = SpectrumStore(folder, n_pixels=PAPER.n_pixels)
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, PAPER.n_pixels, dtype=np.float32)
    for start in range(0, size, BLOCK):
        n = min(BLOCK, size - start)
        flux = 1 + 0.3 * x[None] * rng.uniform(-1, 1, (n, 1)).astype(np.float32)
        flux += rng.normal(0, 0.05, (n, PAPER.n_pixels)).astype(np.float32)
        valid = np.ones((n, PAPER.n_pixels), dtype=bool)
        store.append(flux, valid, np.full_like(flux, 400.0))
    return store


CHILD = """
import json, resource, sys, numpy as np
from kb.preprocess import PAPER
from kb.store import SpectrumStore
from training.distributed import launch
from training.model import PRESETS
from training.pretrain import PRESET_DEFAULTS, PretrainConfig, pretrain
folder, steps, out, processes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
store = SpectrumStore(folder, n_pixels=PAPER.n_pixels)
rows = np.arange(store.rows)
config = PretrainConfig(**{**PRESET_DEFAULTS["small"], "max_steps": steps, "eval_every": steps, "warmup_steps": 1})
split = dict(rows=rows[:-256], val_rows=rows[-256:], model_config=PRESETS["small"], config=config, out_dir=out)
if processes == 1:
    flux, valid = store.read()
    pretrain(flux, valid, store.read_ivar(), **split)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    kib = lambda key: int(status[key].split()[0]) * 1024
    print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "rss_anon_bytes": kib("RssAnon"), "rss_file_bytes": kib("RssFile")}))
else:  # the largest peak of one rank (or of torchrun), in a process that launched nothing before
    launch(processes=processes, store=folder, **split)
    print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def measure(size: int, steps: int, processes: int, scratch: Path) -> dict:
    folder = scratch / f"store-{size}"
    start = time.perf_counter()
    write_store(folder, size)
    store_bytes = sum(path.stat().st_size for path in folder.glob("*.bin"))
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    command = [sys.executable, "-c", CHILD, str(folder), str(steps), str(scratch / f"run-{size}"), str(processes)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return {
        "spectra": size,
        "store_bytes": store_bytes,
        "write_s": round(write_s, 1),
        "steps": steps,
        "processes": processes,
        "train_s": round(time.perf_counter() - start, 1),
        **json.loads(result.stdout.strip().splitlines()[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3_000, 300_000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--scratch", type=Path, help="folder for the stores (default: a temporary one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="galspec-store-", dir=args.scratch) as scratch:
        for size in args.sizes:
            rows.append(measure(size, args.steps, args.processes, Path(scratch)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report({"benchmark": "pretrain_memory", "data": "synthetic spectra, not SDSS", "rows": rows}, args.out)


if __name__ == "__main__":
    main()
