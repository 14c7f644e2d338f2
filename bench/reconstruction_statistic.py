"""Which statistic of the reconstruction probe separates spectra from spectra whose pixels do not hang together.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/reconstruction_statistic.py --out var/bench/reconstruction.json

With the checkpoint in service, the masked model reconstructs ``inference.embed.probe_hidden``'s pixels of
validation-reserve spectra, and of the same spectra with their valid pixels (flux and ivar together)
shuffled. For the mean and the median chi-squared of the probed pixels it prints the validation spectra's
median and 99th percentile and the share of shuffled copies above that percentile (the share the trust
signal, at MAX_PERCENTILE, would flag). The test reserve is never read.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=600, help="validation spectra (the first, in store order)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from bench.common import checkpoint_in_service, report

    run = checkpoint_in_service()
    from inference.embed import probe_pixel_chi2
    from inference.trust import MAX_PERCENTILE
    from kb.reserves import VALIDATION
    from kb.selectors import spectrum_reserve_rows, spectrum_store
    from training.checkpoint import load_masked_model

    model = load_masked_model(run.checkpoint_path, device="cpu")
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    rows = spectrum_reserve_rows(VALIDATION)[: args.spectra]
    rng = np.random.default_rng(args.seed)

    def chi2(f: np.ndarray, v: np.ndarray, w: np.ndarray) -> torch.Tensor:
        return probe_pixel_chi2(model, torch.from_numpy(f), torch.from_numpy(v), torch.from_numpy(w))

    kept, shuffled = [], []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        f, v, w = (np.array(a[chunk], dtype=d) for a, d in ((flux, np.float32), (valid, bool), (ivar, np.float32)))
        kept.append(chi2(f, v, w))
        for i in range(len(chunk)):
            observed = np.flatnonzero(v[i])
            order = observed[rng.permutation(len(observed))]
            f[i, observed], w[i, observed] = f[i, order], w[i, order]
        shuffled.append(chi2(f, v, w))
    kept, shuffled = torch.cat(kept), torch.cat(shuffled)
    statistics = {"mean": lambda c: c.nanmean(1), "median": lambda c: c.nanmedian(1).values}
    results = {}
    for name, statistic in statistics.items():
        real, scrambled = statistic(kept).numpy(), statistic(shuffled).numpy()
        edge = np.nanpercentile(real, MAX_PERCENTILE)
        results[name] = {
            "validation_median": round(float(np.nanmedian(real)), 3),
            "validation_p99": round(float(edge), 3),
            "shuffled_median": round(float(np.nanmedian(scrambled)), 3),
            "shuffled_flagged": round(float(np.mean(scrambled > edge)), 3),
        }
    report({"training_run": run.pk, "spectra": len(rows), "statistics": results}, args.out)


if __name__ == "__main__":
    main()
