"""How the encoder's tokens are pooled, probed on the validation reserve: the five-class K-vote of each.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/pooling_probe.py --out var/bench/pooling_probe.json

With the checkpoint in service, the final tokens of every labelled spectrum of the training and validation
reserves are pooled three ways: today's embedding (the mean token of each of ``pool_segments`` stretches
of the grid), the mean token of the observed patches whose centres fall in each rest-frame window of a
diagnostic line (LINE_WINDOWS, moved to the spectrum's z), and both concatenated; each raw and
standardised by the training entries' mean and spread. The K-vote (K=3, exp) of the training entries
labels the validation spectra; prints macro-F1 and LINER F1 as JSON. The test reserve is never read.
A probe for choosing the representation (issue 13, item 5), not a figure to quote as a result.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LINE_WINDOWS = {  # rest frame, vacuum Angstrom
    "[O II] 3727": (3715, 3740),
    "H-beta": (4851, 4871),
    "[O III] 4959, 5007": (4950, 5017),
    "[O I] 6300, 6363": (6290, 6375),
    "H-alpha + [N II]": (6540, 6595),
    "[S II] 6716, 6731": (6710, 6740),
}
MARGIN = 8.0  # Angstrom, observed, either side of a window


def line_pooled(tokens, observed, z, centre_wave) -> np.ndarray:
    """(N, P, D) tokens -> (N, W * D): the mean observed token of each line window at each spectrum's z."""
    N, P, D = tokens.shape
    out = np.zeros((N, len(LINE_WINDOWS), D), dtype=np.float32)
    for n in range(N):
        for w, (lo, hi) in enumerate(LINE_WINDOWS.values()):
            inside = (centre_wave >= lo * (1 + z[n]) - MARGIN) & (centre_wave <= hi * (1 + z[n]) + MARGIN)
            chosen = inside & observed[n]
            if chosen.any():
                out[n, w] = tokens[n, chosen].mean(0)
    return out.reshape(N, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from bench.common import report
    from inference import metrics
    from inference.retrieval import knn_vote
    from kb.bpt import FIVE_CLASSES
    from kb.models import Spectrum
    from kb.preprocess import wave_grid
    from kb.search_tasks import TRAIN, VALIDATION
    from kb.selectors import spectrum_store, task_labels
    from training.checkpoint import load_checkpoint
    from training.selectors import training_run_in_service

    run = training_run_in_service()
    model = load_checkpoint(run.checkpoint_path, device="cpu").eval()
    config = model.config
    flux, valid = spectrum_store().read()
    spectra = {s.pk: s for s in Spectrum.objects.all()}
    train, val = (task_labels(labelling="bpt5", reserve=reserve) for reserve in (TRAIN, VALIDATION))
    ids = sorted(train) + sorted(val)
    rows = np.array([spectra[i].store_row for i in ids])
    z = np.array([spectra[i].z for i in ids])
    centres = np.arange(config.n_patches) * config.stride + config.patch_size / 2  # each patch's centre pixel
    centre_wave = np.interp(centres, np.arange(config.n_pixels), wave_grid())
    pooled = {"segments": [], "lines": []}
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = slice(start, start + 64)
            f = torch.from_numpy(np.asarray(flux[rows[chunk]], dtype=np.float32))
            v = torch.from_numpy(np.asarray(valid[rows[chunk]], dtype=bool))
            tokens, observed = model.forward_tokens(f, v)
            pooled["segments"].append(model.forward_features(f, v).numpy())
            pooled["lines"].append(line_pooled(tokens.numpy(), observed.numpy(), z[chunk], centre_wave))
    variants = {name: np.concatenate(parts) for name, parts in pooled.items()}
    variants["segments + lines"] = np.concatenate([variants["segments"], variants["lines"]], 1)
    n_train = len(train)
    labels = [train[i].label for i in sorted(train)]
    truth = [val[i].label for i in sorted(val)]
    results = {}
    for name, vectors in variants.items():
        for standardised in (False, True):
            entries, queries = vectors[:n_train], vectors[n_train:]
            if standardised:
                mean, spread = entries.mean(0), entries.std(0) + 1e-6
                entries, queries = (entries - mean) / spread, (queries - mean) / spread
            predicted = [v.label for v in knn_vote(entries, labels, queries, k=3)]
            scores = metrics.classification_report(truth, predicted, list(FIVE_CLASSES), n_resamples=200, seed=0)
            results[f"{name}{', standardised' if standardised else ''}"] = {
                "width": int(vectors.shape[1]),
                "macro_f1": scores["macro_f1"],
                "macro_f1_ci": scores.get("macro_f1_ci"),
                "liner_f1": scores["per_class"]["liner"]["f1"],
            }
    report(
        {"training_run": run.pk, "entries": n_train, "validation_spectra": len(truth), "variants": results}, args.out
    )


if __name__ == "__main__":
    main()
