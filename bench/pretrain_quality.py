"""Pre-training quality against the noise floor: how much of linear interpolation's error the model removes.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/pretrain_quality.py var/checkpoints/run-1/best

Takes the validation split and fixed masks that `pretrain` used (same seed and settings as the run's
checkpoint), reads each validation spectrum's ivar from its file to get the noise floor (the MSE a
perfect model would still have on noisy pixels), and prints JSON: aggregate and per-spectrum errors of
noise, interpolation and model on the hidden valid pixels.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")


def _noise_floor(val_idx: np.ndarray, hidden, valid) -> np.ndarray:
    """(n, 2): what a perfect model would still score on each validation spectrum's hidden valid pixels
    (the variance from its file's ivar, in normalised units), and how many pixels were scored."""
    from kb.models import Spectrum
    from kb.preprocess import wave_grid
    from kb.spectra import read_spectrum

    records = {s.store_row: s for s in Spectrum.objects.filter(store_row__in=[int(i) for i in val_idx])}
    noise = []
    for i, row in enumerate(val_idx):
        record = records[int(row)]
        spectrum = read_spectrum(record.source_file)
        variance = np.where(spectrum.ivar > 0, 1 / np.maximum(spectrum.ivar, 1e-30), 0.0)
        on_grid = np.interp(wave_grid(), spectrum.wave_obs, variance) / record.norm**2  # normalised units
        scored = hidden[i].numpy() & valid[row]
        noise.append((on_grid[scored].sum(), scored.sum()))
    return np.array(noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()

    import django

    django.setup()
    from kb.selectors import spectrum_store
    from training.checkpoint import load_masked_model, read_info
    from training.model import span_mask
    from training.pretrain import PretrainConfig, interpolation_errors, mse, split, validation_errors

    config = PretrainConfig(**read_info(args.checkpoint)["training"])
    flux, valid = spectrum_store().read()
    _, val_idx = split(len(flux), config)
    hidden = span_mask(
        (len(val_idx), flux.shape[1]),
        mask_ratio=config.mask_ratio,
        span=config.mask_span,
        generator=torch.Generator().manual_seed(config.seed + 1),
    )
    noise = _noise_floor(val_idx, hidden, valid)
    interp = interpolation_errors(flux, valid, val_idx, hidden)
    model = validation_errors(
        load_masked_model(args.checkpoint, "cpu"), flux, valid, val_idx, hidden, torch.device("cpu")
    )

    def per_spectrum(errors):
        return errors[:, 0] / np.maximum(errors[:, 1], 1)

    pn, pi, pm = per_spectrum(noise), per_spectrum(interp), per_spectrum(model)
    print(
        json.dumps(
            {
                "validation_spectra": len(val_idx),
                "aggregate_mse": {"noise_floor": mse(noise), "interpolation": mse(interp), "model": mse(model)},
                "median_spectrum_mse": {
                    "noise_floor": float(np.median(pn)),
                    "interpolation": float(np.median(pi)),
                    "model": float(np.median(pm)),
                },
                "median_excess_over_noise": {
                    "interpolation": float(np.median(pi - pn)),
                    "model": float(np.median(pm - pn)),
                },
                "fraction_of_spectra_model_beats_interpolation": float((pm < pi).mean()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
