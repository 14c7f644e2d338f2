"""Everything worth knowing about a GPU, in one run of under ten minutes, written to one JSON file.

    .venv/bin/python bench/gpu.py --out var/bench/gpu.json                 # on a CUDA machine
    .venv/bin/python bench/gpu.py --device cpu --smoke --preset small     # the smoke test CI runs

For the preset (``paper`` by default: D = 768, 6 layers, 6 heads):
- **embedding**: spectra/s in float32 (as ``inference.embed`` embeds) and under bf16 autocast, each with
  its model FLOP utilisation (MFU) against the card's dense peak for that precision;
- **pre-training**: the time of one optimizer step (bf16 autocast, as ``training.pretrain`` trains on a
  GPU) and its MFU at batch 32, the paper's, and at the largest batch that fits (doubling until CUDA runs
  out of memory);
- **bf16 against float32**: the share of spectra whose top-3 neighbours (L2, the spectrum itself left
  out) are the same set when both the spectra are embedded in bf16 as in float32, and the share whose
  nearest neighbour is the same; for the preset with random weights and for the shipped trained ``small``
  checkpoint. This decides whether knowledge bases may be embedded in bf16 (issue 13: only if it keeps
  at least 99% of top-3 sets).

Spectra are a mock survey generated here (``kb.mock``) and preprocessed as ``ingest`` does: mock spectra,
not SDSS. FLOPs count matrix multiplies only (``bench.embed_throughput.forward_flops``); a training step
is taken as three forward passes. Peaks come from ``PEAKS`` by the card's name, or ``--peak-tflops-fp32``
and ``--peak-tflops-bf16``; on the CPU, MFU is left out.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402
from bench.embed_throughput import forward_flops  # noqa: E402
from inference import index as vector_index  # noqa: E402
from inference.embed import embed  # noqa: E402
from kb.mock.survey import generate_survey  # noqa: E402
from kb.preprocess import prepare_file  # noqa: E402
from training.checkpoint import load_masked_model  # noqa: E402
from training.model import PRESETS, GalSpecEncoder, MaskedSpectrumModel, span_mask  # noqa: E402

SHIPPED = Path(__file__).resolve().parent.parent / "training" / "shipped" / "small" / "best"
PEAKS = {  # dense TFLOP/s by a substring of the card's name: (float32 without TF32, bf16 tensor cores)
    "H200": (67.0, 989.0),
    "H100": (67.0, 989.0),
    "A100": (19.5, 312.0),
    "L40S": (91.6, 362.0),
    "A10": (31.2, 125.0),
}


def spectra(n: int, folder: Path) -> dict[str, np.ndarray]:
    """n mock spectra on the model's grid: flux (n, L) float32, valid (n, L) bool, z (n,)."""
    generate_survey(out=folder, size=n, seed=1, workers=os.cpu_count() or 1)
    files = sorted((folder / "spectra").rglob("spec-*.fits"))
    with ProcessPoolExecutor() as pool:
        prepared = [p for p in pool.map(prepare_file, files, chunksize=16) if p.grid is not None]
    return {
        "flux": np.stack([p.grid.flux for p in prepared]),
        "valid": np.stack([p.grid.valid for p in prepared]),
        "z": np.array([p.spectrum.z for p in prepared]),
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _precision(device: str, bf16: bool):
    return torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else nullcontext()


def embed_timed(
    model: GalSpecEncoder, data: dict, device: str, bf16: bool, batch_size: int
) -> tuple[np.ndarray, float]:
    """(embeddings (n, E) float32, seconds), after one warm-up batch."""
    with _precision(device, bf16):
        embed(
            model, data["flux"][:batch_size], data["valid"][:batch_size], data["z"][:batch_size], batch_size=batch_size
        )
        _sync(device)
        start = time.perf_counter()
        vectors = embed(model, data["flux"], data["valid"], data["z"], batch_size=batch_size)
        _sync(device)
    return vectors, time.perf_counter() - start


def neighbours_kept(fp32: np.ndarray, bf16: np.ndarray) -> dict:
    """Share of spectra whose top-3 set and whose nearest neighbour (itself left out) bf16 keeps."""
    ids = np.arange(len(fp32), dtype=np.int64)

    def top3(vectors: np.ndarray) -> np.ndarray:
        return vector_index.search(vector_index.build(vectors, ids), vectors, 4).ids[:, 1:]  # (n, 3): self first

    a, b = top3(fp32), top3(bf16)
    same_sets = np.mean([set(x) == set(y) for x, y in zip(a.tolist(), b.tolist())])
    return {
        "spectra": len(ids),
        "top3_sets_kept": round(float(same_sets), 4),
        "nearest_kept": round(float(np.mean(a[:, 0] == b[:, 0])), 4),
    }


def embedding(config, data: dict, device: str, batch_size: int, peaks) -> dict:
    torch.manual_seed(0)
    model = GalSpecEncoder(config).to(device).eval()
    flops = forward_flops(config)
    out = {}
    vectors = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        vectors[name], seconds = embed_timed(model, data, device, bf16, batch_size)
        rate = len(data["z"]) / seconds
        out[name] = {"spectra_per_s": round(rate, 1), "achieved_tflops": round(flops * rate / 1e12, 3)}
        if peaks:
            out[name]["mfu"] = round(flops * rate / 1e12 / peaks[name], 4)
    out["bf16_against_fp32"] = neighbours_kept(vectors["fp32"], vectors["bf16"])
    return out


def shipped_kept(data: dict, device: str, batch_size: int) -> dict:
    """bf16 against float32 for the trained checkpoint the demo serves."""
    encoder = load_masked_model(SHIPPED, device=device).encoder.eval()
    fp32, _ = embed_timed(encoder, data, device, False, batch_size)
    bf16, _ = embed_timed(encoder, data, device, True, batch_size)
    return neighbours_kept(fp32, bf16)


def step_time(config, data: dict, device: str, batch: int, steps: int) -> float:
    """Seconds per pre-training step (forward, backward, AdamW) at ``batch``, after one warm-up step."""
    torch.manual_seed(0)
    model = MaskedSpectrumModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows = np.arange(batch) % len(data["z"])
    flux = torch.from_numpy(data["flux"][rows]).to(device)
    valid = torch.from_numpy(data["valid"][rows]).to(device)
    generator = torch.Generator().manual_seed(0)
    hidden = span_mask(tuple(flux.shape), mask_ratio=0.25, span=20, generator=generator).to(device)
    times = []
    for _ in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        with _precision(device, device == "cuda"):
            loss = model(flux, valid, hidden)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def pretraining(config, data: dict, device: str, steps: int, max_batch: int, peak) -> dict:
    def row(batch: int) -> dict:
        """One batch size's step time, and on CUDA the memory its steps took at their peak."""
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()  # a batch that did not fit counts for nothing
        seconds = step_time(config, data, device, batch, steps)
        tflops = 3 * forward_flops(config) * batch / seconds / 1e12
        out = {"batch": batch, "step_s": round(seconds, 4), "spectra_per_s": round(batch / seconds, 1)}
        out["achieved_tflops"] = round(tflops, 3)
        if peak:
            out["mfu"] = round(tflops / peak, 4)
        if device == "cuda":
            out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out

    out = {"batch_32": row(32)}
    largest, batch = None, 64
    while batch <= max_batch:
        try:
            largest = row(batch)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
        batch *= 2
    out["largest_batch"] = largest
    return out


def card_peaks(device: str, fp32: float | None, bf16: float | None) -> tuple[str, dict | None]:
    if device != "cuda":
        return platform.processor() or platform.machine(), None
    name = torch.cuda.get_device_name()
    known = next((peaks for key, peaks in PEAKS.items() if key in name), (None, None))
    fp32, bf16 = fp32 or known[0], bf16 or known[1]
    return name, ({"fp32": fp32, "bf16": bf16} if fp32 and bf16 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument(
        "--smoke", action="store_true", help="a few spectra and steps: checks the script, measures nothing"
    )
    parser.add_argument("--spectra", type=int, help="mock spectra to embed (default 4096; 48 with --smoke)")
    parser.add_argument("--batch-size", type=int, default=256, help="embedding batch (default 256)")
    parser.add_argument(
        "--max-batch", type=int, help="largest pre-training batch tried (default 4096; 64 with --smoke)"
    )
    parser.add_argument("--peak-tflops-fp32", type=float)
    parser.add_argument("--peak-tflops-bf16", type=float)
    parser.add_argument("--out", type=Path, default=Path("var/bench/gpu.json"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device: run with --device cpu --smoke to check the script")
    started = time.perf_counter()
    config = PRESETS[args.preset]
    card, peaks = card_peaks(args.device, args.peak_tflops_fp32, args.peak_tflops_bf16)
    with tempfile.TemporaryDirectory(prefix="galspec-gpu-") as folder:
        data = spectra(args.spectra or (48 if args.smoke else 4096), Path(folder))
    steps = 2 if args.smoke else 10
    result = {
        "benchmark": "gpu",
        "device": args.device,
        "card": card,
        "peaks_tflops": peaks,
        "preset": args.preset,
        "smoke": args.smoke,
        "torch": torch.__version__,
        "spectra": len(data["z"]),
        "data": "mock survey (kb.mock), not SDSS",
        "embedding": embedding(config, data, args.device, args.batch_size, peaks),
        "shipped_small_bf16_against_fp32": shipped_kept(data, args.device, args.batch_size),
        "pretraining": pretraining(
            config, data, args.device, steps, args.max_batch or (64 if args.smoke else 4096), peaks and peaks["bf16"]
        ),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    report(result, args.out)


if __name__ == "__main__":
    main()
