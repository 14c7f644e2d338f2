"""A hunt from your own catalog, against the shortcut that could explain it.

    .venv/bin/python bench/catalog_hunt.py --out bench-results/catalog_hunt.json

For each outlier kind of a mock survey that is mostly outliers, a catalog of some of its training-reserve
spectra makes a task as `/tasks/` does, and its knowledge base (at ``--share`` targets) votes for every
spectrum outside it and outside the catalog: once by the encoder's embeddings (the shipped checkpoint),
once by what needs no spectrum at all, the redshift, velocity dispersion and S/N (standardised, the same
3-neighbour vote). A kind the second finds as well is found by a shortcut the mock leaks, not by its
spectrum. Held-back spectra of the kind are the truth (the mock's outlier catalog). Repeated over seeds (which
examples make the catalog, which others fill the knowledge base); prints JSON with each figure's mean and
standard deviation. Mock figures, not SDSS. Runs in a throw-away site; some minutes on two cores.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, throwaway_site  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1200, help="spectra in the mock survey")
    parser.add_argument("--examples", type=int, default=30, help="spectra of the kind in the catalog")
    parser.add_argument("--share", type=float, default=0.1, help="targets' share of the knowledge base")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = throwaway_site()
    from django.contrib.auth.models import Group, User

    from inference.selectors.embeddings import embedding_vectors
    from inference.services.embeddings import embedding_update
    from inference.services.knowledge_bases import knowledge_base_build
    from kb.mock import generate_survey
    from kb.models import CatalogLabel, Spectrum
    from kb.reserves import TRAIN
    from kb.selectors import reserve_filter
    from kb.services.catalog_tasks import catalog_task_create
    from kb.services.ingest import ingest_folder
    from training.checkpoint import SHIPPED
    from training.services import training_run_import

    generate_survey(out=work / "survey", size=args.size, seed=5, outlier_fraction=0.9, lens_fraction=0.0)
    ingest_folder(folder=work / "survey")
    run = training_run_import(source=SHIPPED)
    embedding_update()
    hunter = User.objects.create_user("hunter")
    hunter.groups.add(Group.objects.get(name="astronomer"))
    hunter = User.objects.get(pk=hunter.pk)

    spectra = list(Spectrum.objects.order_by("store_row").values_list("pk", "store_row", "z", "vdisp", "sn_median"))
    ids = np.array([s[0] for s in spectra])
    row_of = {s[0]: i for i, s in enumerate(spectra)}
    encoded = embedding_vectors(training_run=run, store_rows=[s[1] for s in spectra])
    shortcut = _standardised(
        np.array([[s[2], np.log10(s[3] or 1.0), np.log10(max(s[4] or 0.1, 0.1))] for s in spectra])
    )
    kind_of = dict(CatalogLabel.objects.filter(catalog="baron2017").values_list("spectrum_id", "label"))
    in_train = set(Spectrum.objects.filter(reserve_filter(TRAIN)).values_list("pk", flat=True))
    kinds = sorted({kind for kind in kind_of.values()})

    results = {}
    for kind in kinds:
        members = np.array(sorted(pk for pk, k in kind_of.items() if k == kind))
        trainable = np.array([pk for pk in members if pk in in_train])
        if len(trainable) < args.examples or len(members) - args.examples < 10:
            continue
        runs = []
        for seed in range(args.seeds):
            chosen = np.random.default_rng(seed).choice(trainable, args.examples, replace=False)
            specobjids = Spectrum.objects.filter(pk__in=chosen.tolist()).values_list("specobjid", flat=True)
            task = catalog_task_create(
                user=hunter,
                name=f"hunt-{len(results)}-{seed}",
                target_label="target",
                data=("specobjid\n" + "\n".join(specobjids)).encode(),
            )
            kb = knowledge_base_build(task=task, target_fraction=args.share, seed=seed, promote=False)
            entries = list(kb.entries.order_by("pk").values_list("spectrum_id", "label"))
            entry_rows = [row_of[pk] for pk, _ in entries]
            labels = [label for _, label in entries]
            known = set(chosen.tolist()) | {pk for pk, _ in entries}
            held = np.array([i for i, pk in enumerate(ids) if pk not in known])
            truth = np.array([kind_of.get(ids[i]) == kind for i in held])
            cross = kb.evaluation["cross_validation"]
            runs.append(
                {
                    "encoder": _scores(encoded, entry_rows, labels, held, truth),
                    "shortcut (z, vdisp, S/N)": _scores(shortcut, entry_rows, labels, held, truth),
                    "cross_validated": {"precision": cross["precision"], "recall": cross["recall"]},
                    "held_back": int(truth.sum()),
                    "searched": len(held),
                }
            )
        results[kind] = _summary(runs)
    report(
        {
            "mock": {"size": args.size, "seed": 5, "outlier_fraction": 0.9},
            "checkpoint": "shipped (training/shipped/small)",
            "examples": args.examples,
            "share": args.share,
            "seeds": args.seeds,
            "kinds": results,
        },
        args.out,
    )


def _standardised(features: np.ndarray) -> np.ndarray:
    features = np.where(np.isnan(features), np.nanmedian(features, axis=0), features)
    return ((features - features.mean(axis=0)) / features.std(axis=0)).astype(np.float32)


def _scores(vectors, entry_rows, labels, held, truth) -> dict:
    from inference.retriever import PAPER_POLICY, knn_vote

    votes = knn_vote(vectors[entry_rows], labels, vectors[held], policy=PAPER_POLICY)  # the paper's K = 3 vote
    found = np.array([vote.label == "target" for vote in votes])
    hits = int((found & truth).sum())
    precision = hits / found.sum() if found.any() else 0.0
    recall = hits / truth.sum()
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _summary(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every figure."""

    def spread(values):
        return {"mean": round(float(np.mean(values)), 3), "std": round(float(np.std(values)), 3)}

    summary = {"held_back": runs[0]["held_back"], "searched": runs[0]["searched"]}
    for way in ("encoder", "shortcut (z, vdisp, S/N)", "cross_validated"):
        summary[way] = {name: spread([r[way][name] for r in runs]) for name in runs[0][way]}
    return summary


if __name__ == "__main__":
    main()
