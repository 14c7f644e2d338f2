"""Embedding spectra with a GalSpecEncoder: batched, no gradients, bf16 autocast on CUDA."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from training.model import GalSpecEncoder


@torch.no_grad()
def embed(
    model: GalSpecEncoder, flux, valid, *, batch_size: int = 64, on_progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """flux (N, L) float32 and valid (N, L) bool, any array-like (np.memmap is read batch by batch)
    -> embeddings (N, G * D) float32 (``config.embedding_width``), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out = np.empty((len(flux), model.config.embedding_width), dtype=np.float32)
    for start in range(0, len(flux), batch_size):
        stop = min(start + batch_size, len(flux))
        f = torch.from_numpy(np.array(flux[start:stop], dtype=np.float32)).to(device)  # a copy: memmaps are read-only
        v = torch.from_numpy(np.array(valid[start:stop], dtype=bool)).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out[start:stop] = model.forward_features(f, v).float().cpu().numpy()
        if on_progress:
            on_progress(stop, len(flux))
    return out
