"""How the encoder's tokens are pooled, probed on the validation reserve without a full evaluate.

    GALSPEC_DATA_DIR=var .venv/bin/python bench/pooling_probe.py --out var/bench/pooling_probe.json

The pooling rows of ``evaluate``'s variants table (``experiments.variants.pooling_variants``) for the
checkpoint in service and its knowledge bases in service (bpt5, liner, lens, outlier): each pooling's
five-class macro-F1 and LINER F1, and each search's F1 and recall, on the validation reserve. The test
reserve is never read. About a minute on the demo's data once its spectra are embedded. A probe for
choosing the representation, not a figure to quote as a result.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for each 95%% interval")
    args = parser.parse_args()

    from bench.common import checkpoint_in_service, report

    run = checkpoint_in_service()
    from experiments.data import EvaluationConfig, data_load
    from experiments.variants import pooling_variants
    from kb.selectors import knowledge_base_in_service, search_task_get

    kbs = {
        name: knowledge_base_in_service(task=search_task_get(name=name))
        for name in ("bpt5", "liner", "lens", "outlier")
    }
    stale = [name for name, kb in kbs.items() if kb.training_run_id != run.pk]
    if stale:
        sys.exit(
            f"the knowledge bases of {', '.join(stale)} were built with another checkpoint: rebuild them (build_kb)"
        )
    config = replace(EvaluationConfig(), n_resamples=args.bootstrap)
    rows = pooling_variants(data_load(run), kbs, run, config)
    report({"training_run": run.pk, "entries": {name: kb.size for name, kb in kbs.items()}, "variants": rows}, args.out)


if __name__ == "__main__":
    main()
