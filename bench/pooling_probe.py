"""How the encoder's tokens are pooled, probed on the validation reserve: each pooling's K-vote, task by task.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/pooling_probe.py --out var/bench/pooling_probe.json

With the checkpoint in service, the final tokens of every spectrum of the training and validation reserves
are pooled three ways (``GalSpecEncoder.pool``): the mean token of each of ``pool_segments`` stretches of
the grid, the mean token of each rest-frame line window (LINE_WINDOWS_REST at the spectrum's z), and both
concatenated. For each labelling (bpt5, lens, outlier), every labelled training spectrum is an entry and
the K-vote (K=3, exp) labels the validation spectra; prints the five-class macro-F1 and LINER F1, and the
lens and outlier F1 and recall, as JSON. The test reserve is never read. A probe for choosing the
representation (issue 13, item 5), not a figure to quote as a result.
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {"segments": {"pool_lines": False}, "lines": {"pool_segments": 0}, "segments + lines": {}}
SEARCHES = {"lens": "lens", "outlier": "outlier"}  # labelling -> target label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from bench.common import report
    from inference import metrics
    from inference.retrieval import knn_vote
    from kb.bpt import FIVE_CLASSES
    from kb.models import Spectrum
    from kb.search_tasks import TRAIN, VALIDATION
    from kb.selectors import spectrum_store, task_labels
    from training.checkpoint import load_checkpoint
    from training.model import GalSpecEncoder
    from training.selectors import training_run_in_service

    run = training_run_in_service()
    model = load_checkpoint(run.checkpoint_path, device="cpu").eval()
    encoders = {}
    for name, change in VARIANTS.items():
        encoders[name] = GalSpecEncoder(dataclasses.replace(model.config, pool_segments=8, pool_lines=True, **change))
        encoders[name].load_state_dict(model.state_dict())
    flux, valid = spectrum_store().read()
    spectra = {s.pk: s for s in Spectrum.objects.all()}
    labelled = {
        labelling: [task_labels(labelling=labelling, reserve=reserve) for reserve in (TRAIN, VALIDATION)]
        for labelling in ("bpt5", *SEARCHES)
    }
    ids = sorted({i for split in labelled.values() for reserve in split for i in reserve})
    rows = np.array([spectra[i].store_row for i in ids])
    z = np.array([spectra[i].z for i in ids], dtype=np.float32)
    pooled = {name: [] for name in VARIANTS}
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = slice(start, start + 64)
            f = torch.from_numpy(np.asarray(flux[rows[chunk]], dtype=np.float32))
            v = torch.from_numpy(np.asarray(valid[rows[chunk]], dtype=bool))
            tokens, observed = model.forward_tokens(f, v)
            for name, encoder in encoders.items():
                pooled[name].append(encoder.pool(tokens, observed, torch.from_numpy(z[chunk])).numpy())
    position = {i: n for n, i in enumerate(ids)}
    results = {}
    for name, parts in pooled.items():
        vectors = np.concatenate(parts)
        scores = {"width": int(vectors.shape[1])}
        for labelling, (train, val) in labelled.items():
            entries, queries = sorted(train), sorted(val)
            found = knn_vote(
                vectors[[position[i] for i in entries]],
                [train[i].label for i in entries],
                vectors[[position[i] for i in queries]],
                k=3,
            )
            truth, predicted = [val[i].label for i in queries], [v.label for v in found]
            if labelling == "bpt5":
                table = metrics.classification_report(truth, predicted, list(FIVE_CLASSES), n_resamples=200, seed=0)
                scores["bpt5_macro_f1"] = table["macro_f1"]
                scores["bpt5_macro_f1_ci"] = table.get("macro_f1_ci")
                scores["liner_f1"] = table["per_class"]["liner"]["f1"]
            else:
                target = SEARCHES[labelling]
                classes = sorted({*truth, *predicted, target})
                table = metrics.classification_report(truth, predicted, classes, n_resamples=200, seed=0)
                scores[f"{labelling}_f1"] = table["per_class"][target]["f1"]
                scores[f"{labelling}_recall"] = table["per_class"][target]["recall"]
                scores[f"{labelling}_validation_targets"] = truth.count(target)
        results[name] = scores
    entries = {labelling: len(train) for labelling, (train, _) in labelled.items()}
    report({"training_run": run.pk, "entries": entries, "variants": results}, args.out)


if __name__ == "__main__":
    main()
