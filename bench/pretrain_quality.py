"""Pre-training quality against interpolation and the noise floor, on the validation reserve.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/pretrain_quality.py var/checkpoints/run-1/best

Takes the validation spectra and fixed masks that `pretrain` chose its checkpoint on (the validation
reserve, sampled and masked with the run's own seed and settings) and prints JSON: the model's and linear
interpolation's errors on the hidden valid pixels, pooled and for the median spectrum. Chi-squared per
pixel is weighted by each pixel's inverse variance, so 1.0 is the noise floor: what a perfect model
would still score on noisy pixels.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()

    import django

    django.setup()
    from kb.reserves import VALIDATION
    from kb.selectors import spectrum_reserve_rows, spectrum_store
    from training.checkpoint import load_masked_model, read_info
    from training.model import span_mask
    from training.pretrain import PretrainConfig, figures, interpolation_errors, validation_errors, validation_sample

    info = read_info(args.checkpoint)
    config = PretrainConfig(**info["training"])
    store = spectrum_store()
    arrays = (*store.read(), store.read_ivar())
    val_idx = validation_sample(spectrum_reserve_rows(VALIDATION), config)
    hidden = span_mask(
        (len(val_idx), arrays[0].shape[1]),
        mask_ratio=config.mask_ratio,
        span=config.mask_span,
        generator=torch.Generator().manual_seed(config.seed + 1),
    )
    model = load_masked_model(args.checkpoint, "cpu")
    found = figures(
        validation_errors(model, arrays, val_idx, hidden, torch.device("cpu")),
        interpolation_errors(arrays, val_idx, hidden),
    )
    print(
        json.dumps(
            {"checkpoint_step": info.get("metrics", {}).get("step"), "validation_spectra": len(val_idx), **found},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
