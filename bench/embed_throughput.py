"""Embedding throughput of the encoder presets: spectra/s and peak memory, printed as JSON; and the rate
of the reconstruction chi-squared that ``embed`` measures beside every embedding (a second forward pass,
through the masked model, with a quarter of the pixels hidden).

    .venv/bin/python bench/embed_throughput.py                      # CPU: small and paper presets
    .venv/bin/python bench/embed_throughput.py --device cuda --peak-tflops 67   # H100/H200 float32 peak

Random weights and random spectra: throughput does not depend on what the model has learned. The forward
pass runs in float32, as ``inference.embed`` embeds on every device, and model FLOP utilisation (MFU) is
the forward FLOPs per second over the given float32 peak. ``--out FILE`` also writes the JSON.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402
from inference.embed import embed, reconstruction_chi2  # noqa: E402
from training.model import PRESETS, GalSpecEncoder, MaskedSpectrumModel  # noqa: E402


def forward_flops(config) -> float:
    """Matrix-multiply FLOPs of one spectrum's forward pass (2 per multiply-add)."""
    P, D, S = config.n_patches, config.d_model, config.patch_size
    per_layer = 2 * P * (3 * D * D + D * D + 2 * config.mlp_ratio * D * D) + 2 * 2 * P * P * D  # linears, QK^T and AV
    return 2 * P * 2 * S * D + config.n_layers * per_layer


def measure(preset: str, device: str, n: int, batch_size: int) -> dict:
    config = PRESETS[preset]
    model = GalSpecEncoder(config).to(device).eval()
    rng = np.random.default_rng(0)
    flux = (1 + 0.1 * rng.normal(size=(n, config.n_pixels))).astype(np.float32)
    valid = rng.random((n, config.n_pixels)) > 0.02
    z = rng.uniform(0.02, 0.3, n)
    embed(model, flux[:batch_size], valid[:batch_size], z[:batch_size], batch_size=batch_size)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    embed(model, flux, valid, z, batch_size=batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "preset": preset,
        "device": device,
        "spectra": n,
        "batch_size": batch_size,
        "spectra_per_s": round(n / seconds, 1),
        "gflop_per_spectrum": round(forward_flops(config) / 1e9, 2),
        "achieved_tflops": round(forward_flops(config) * n / seconds / 1e12, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    masked = MaskedSpectrumModel(config).to(device).eval()
    ivar = np.ones_like(flux)
    start = time.perf_counter()
    reconstruction_chi2(masked, flux, valid, ivar, batch_size=batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    result["reconstruction_spectra_per_s"] = round(n / (time.perf_counter() - start), 1)
    if device == "cuda":
        result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--spectra", type=int, help="spectra per preset (default 512 on CPU, 8192 on CUDA)")
    parser.add_argument("--batch-size", type=int, help="default 64 on CPU, 256 on CUDA")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense float32 peak (TFLOP/s), for MFU")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    results = []
    for preset in args.presets:
        n = args.spectra or (8192 if cuda else (512 if preset == "small" else 64))
        result = measure(preset, args.device, n, args.batch_size or (256 if cuda else 64))
        if args.peak_tflops:
            result["mfu"] = round(result["achieved_tflops"] / args.peak_tflops, 3)
        results.append(result)
    report(
        {
            "benchmark": "embed",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "results": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
