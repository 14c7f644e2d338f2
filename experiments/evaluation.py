"""`manage.py evaluate`: every experiment of the paper on the held-out test spectra.

The knowledge bases evaluated are the ones in service (built with the checkpoint in service; one is
built where a task has none), so what is measured is what answers users. Every method of Table 2 is
trained on exactly the spectra of the knowledge base and tested on the same held-out spectra, which
no knowledge base and no pre-training ever sees (``kb.knowledge.held_out``). Sweeps compose their
knowledge bases with the same ``kb.knowledge.compose`` as ``build_kb``, in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from scipy.spatial.distance import pdist

from experiments import baselines, figures, timing
from experiments.report import PAPER_SEARCH, write_report
from inference import index as vector_index
from inference import metrics
from inference.retrieval import knn_vote, vote_all
from inference.selectors import embedding_store
from inference.services.embeddings import embedding_update
from inference.services.knowledge_bases import knowledge_base_build
from inference.services.search import load_index, search
from inference.vote import WEIGHT_FUNCTIONS
from kb.bpt import FIVE_CLASSES, THREE_CLASSES, bpt_class_from_lines, bpt_ratios, bpt_three_class
from kb.knowledge import compose
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.plots import DIAGNOSTIC_LINES, bpt_diagram
from kb.preprocess import wave_grid
from kb.selectors import spectrum_store, task_labels
from kb.spectra import read_spectrum
from training.selectors import training_run_in_service

SEARCH_TASKS = ("liner", "lens", "outlier")


@dataclass(frozen=True)
class EvaluationConfig:
    k: int = 3
    weight_function: str = "exp"
    seed: int = 0
    n_resamples: int = 1000  # bootstrap resamples for every 95% interval
    max_k: int = 15  # the K sweep runs 1..max_k
    proportions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # lens share of the KB (Figure 4)
    retrieval_sizes: tuple[int, ...] = timing.PAPER_SIZES
    approximate_max_size: int = 100_000  # HNSW/IVF builds past this take minutes on two cores
    cnn_epochs: int = 15
    finetune_epochs: int = 1
    distance_sample: int = 2000  # KB entries whose pairwise distances Table A1 describes


@dataclass
class _Data:
    """The arrays every experiment draws on; rows of ``flux``/``valid``/``vectors`` are store rows."""

    flux: np.ndarray  # (n, L) normalised flux
    valid: np.ndarray  # (n, L) bool
    vectors: np.ndarray  # (n, D) embeddings under the checkpoint in service
    spectra: dict[int, Spectrum]  # spectrum id -> row (store_row, z, lines, ...)

    def rows(self, ids) -> np.ndarray:
        return np.array([self.spectra[i].store_row for i in ids], dtype=np.int64)


def evaluate(
    *, out: str | Path, config: EvaluationConfig = EvaluationConfig(), log: Callable[[str], None] = lambda message: None
) -> dict:
    """Run every experiment, write ``out``/results.json, report.md and the figures; return the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    log("embedding what is not embedded yet")
    embedding_set = embedding_update(training_run=run)
    flux, valid = spectrum_store().read()
    data = _Data(
        flux=flux,
        valid=valid,
        vectors=embedding_store(embedding_set).read()[: embedding_set.rows],
        spectra={s.pk: s for s in Spectrum.objects.all()},
    )
    kbs = {}
    for name in ("bpt3", "bpt5", *SEARCH_TASKS):
        kbs[name] = _knowledge_base(name, run, config, log)
    results: dict = {"dataset": _dataset(data, kbs, run, config)}
    for name, key in (("bpt3", "classification_3class"), ("bpt5", "classification_5class")):
        log(f"Table 2: {name} classification, six methods")
        results[key], results["dataset"]["splits"][key] = _classification(data, kbs[name], run, config, log)
    log("Tables 3-4: LINER, lens and outlier searches on one mixed test set")
    mixed = _mixed_test_set()
    searches = {name: _Search.of(data, kbs[name], mixed, config.max_k) for name in SEARCH_TASKS}
    results["search"] = {name: searches[name].report(config) for name in SEARCH_TASKS}
    results["dataset"]["splits"]["search"] = {
        "test": len(mixed),
        **{f"{name}_targets": int(searches[name].truth.sum()) for name in SEARCH_TASKS},
    }
    results["outlier_recall_by_kind"] = _recall_by_kind(searches["outlier"], mixed, config)
    log(f"Figure 5: K from 1 to {config.max_k}")
    results["topk_sweep"] = [
        {"task": name, "k": k, **searches[name].report(config, k=k)}
        for name in SEARCH_TASKS
        for k in range(1, config.max_k + 1)
    ]
    log("Figure 4: share of lenses in the knowledge base")
    results["proportion_sweep"] = _proportion_sweep(data, searches["lens"].truth, mixed, config)
    log("Table A1: distances and weight functions")
    results["weight_functions"] = _weight_functions(data, searches, config)
    log("Figure C1: retrieval time against knowledge-base size")
    results["retrieval_time"] = _retrieval_time(data, config)
    log("Appendix B.2: a LINER case study")
    results["case_study"] = _case_study(data, searches["liner"], mixed, config)
    log("the real SDSS spectra")
    results["real_spectra"] = _real_spectra(kbs, config)
    log("figures and report")
    with figures.image_server():
        results["figures"] = _figures(results, data, out)
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    write_report(results, out / "report.md")
    return results


def _knowledge_base(name: str, run, config: EvaluationConfig, log) -> KnowledgeBase:
    """The task's knowledge base in service if it holds embeddings of ``run``; else a new version, built
    for the evaluation and left out of service (evaluating never changes what answers users)."""
    task = SearchTask.objects.get(name=name)
    kb = KnowledgeBase.objects.filter(task=task, in_service=True, training_run=run).first()
    if kb is None:
        log(f"building a {name} knowledge base (none in service for this checkpoint)")
        kb = knowledge_base_build(task=task, seed=config.seed, training_run=run, promote=False)
    return kb


def _dataset(data: _Data, kbs: dict, run, config: EvaluationConfig) -> dict:
    held_out = sum(s.held_out for s in data.spectra.values())
    return {
        "spectra": len(data.spectra),
        "held_out": held_out,
        "checkpoint": str(run.checkpoint_path),
        "training_run": run.pk,
        "preset": run.preset,
        "pretraining_steps": run.step,
        "n_pretraining": run.n_spectra,
        "embedding_width": int(data.vectors.shape[1]),
        "knowledge_bases": {
            name: {
                "id": kb.pk,
                "version": kb.version,
                "size": kb.size,
                "composition": kb.composition,
                "seed": kb.seed,
                "target_fraction": kb.target_fraction,
                "index": kb.index_kind,
            }
            for name, kb in kbs.items()
        },
        "config": asdict(config),
        "splits": {},
        "real_sdss_spectra_in_kbs": Spectrum.objects.filter(
            kb_entries__knowledge_base__in=kbs.values(), source_file__startswith=str(settings.SHARED_DATA_DIR)
        ).count(),
    }


def _entries(kb: KnowledgeBase) -> list[tuple[int, str]]:
    return list(kb.entries.order_by("spectrum_id").values_list("spectrum_id", "label"))


def _neighbours(data: _Data, kb: KnowledgeBase, ids: list[int], k: int) -> vector_index.Neighbours:
    return vector_index.search(load_index(kb), data.vectors[data.rows(ids)], k)


# --- Table 2 ------------------------------------------------------------------------------------------


def _classification(data: _Data, kb: KnowledgeBase, run, config: EvaluationConfig, log) -> tuple[dict, dict]:
    """Each method's classification report, and the split's sizes."""
    labels = list(FIVE_CLASSES if kb.task.labelling == "bpt5" else THREE_CLASSES)
    train = _entries(kb)
    test = sorted(task_labels(labelling=kb.task.labelling, held_out=True).items())
    train_ids, train_labels = [i for i, _ in train], [label for _, label in train]
    test_ids, truth = [i for i, _ in test], [item.label for _, item in test]
    tr, te = data.rows(train_ids), data.rows(test_ids)
    train_flux, test_flux = np.asarray(data.flux[tr]), np.asarray(data.flux[te])
    train_valid, test_valid = np.asarray(data.valid[tr]), np.asarray(data.valid[te])
    found = _neighbours(data, kb, test_ids, config.k)
    label_of = dict(train)
    methods = {
        "encoder_kb": lambda: [v.label for v in vote_all(found, label_of, weight_function=config.weight_function)],
        "pca_knn": lambda: baselines.pca_knn(
            train_flux, train_labels, test_flux, k=config.k, seed=config.seed, weight_function=config.weight_function
        ),
        "flux_knn": lambda: baselines.flux_knn(
            train_flux, train_labels, test_flux, k=config.k, weight_function=config.weight_function
        ),
        "random_forest": lambda: baselines.random_forest(train_flux, train_labels, test_flux, seed=config.seed),
        "cnn": lambda: baselines.cnn(
            train_flux, train_valid, train_labels, test_flux, test_valid, seed=config.seed, epochs=config.cnn_epochs
        ),
        "encoder_finetuned": lambda: baselines.encoder_finetuned(
            run.checkpoint_path,
            train_flux,
            train_valid,
            train_labels,
            test_flux,
            test_valid,
            seed=config.seed,
            epochs=config.finetune_epochs,
        ),
    }
    results, predictions = {}, {}
    for name, predict in methods.items():
        log(f"  {name}")
        predictions[name] = predict()
        results[name] = metrics.classification_report(
            truth, predictions[name], labels, n_resamples=config.n_resamples, seed=config.seed
        )
    results["encoder_kb"]["versus"] = {  # paired: macro-F1 of encoder_kb minus each other method's
        name: metrics.macro_f1_difference(
            truth, predictions["encoder_kb"], predicted, labels, n_resamples=config.n_resamples, seed=config.seed
        )
        for name, predicted in predictions.items()
        if name != "encoder_kb"
    }
    return results, {"train": len(train_ids), "test": len(test_ids)}


# --- Tables 3-4, Figures 4-5 --------------------------------------------------------------------------


def _mixed_test_set() -> list[int]:
    """Held-out spectra that any search labelling labels: BPT classes, lenses and outliers together."""
    ids = set()
    for labelling in ("bpt5", "lens", "outlier"):
        ids |= set(task_labels(labelling=labelling, held_out=True))
    return sorted(ids)


@dataclass(frozen=True)
class _Search:
    """One search task on the mixed test set: its KB's labels, the truth, and max_k neighbours per query."""

    kb: KnowledgeBase
    label_of: dict[int, str]
    truth: np.ndarray  # (n,) bool: the test spectrum carries a target label
    found: vector_index.Neighbours

    @classmethod
    def of(cls, data: _Data, kb: KnowledgeBase, ids: list[int], max_k: int) -> _Search:
        labels = task_labels(labelling=kb.task.labelling, held_out=True)
        truth = np.array([i in labels and labels[i].label in kb.task.target_labels for i in ids])
        return cls(kb, dict(_entries(kb)), truth, _neighbours(data, kb, ids, max_k))

    def votes(self, k: int, weight_function: str):
        return vote_all(self.found, self.label_of, k=k, weight_function=weight_function)

    def report(self, config: EvaluationConfig, *, k: int | None = None, weight_function: str | None = None) -> dict:
        votes = self.votes(k or config.k, weight_function or config.weight_function)
        predicted = np.array([v.label in self.kb.task.target_labels for v in votes])
        return metrics.search_report(self.truth, predicted, n_resamples=config.n_resamples, seed=config.seed)


def _recall_by_kind(outliers: _Search, ids: list[int], config: EvaluationConfig) -> dict:
    votes = outliers.votes(config.k, config.weight_function)
    labels = task_labels(labelling="outlier", held_out=True)
    by_kind: dict[str, list[bool]] = {}
    for i, v in zip(ids, votes):
        if i in labels and labels[i].label == "outlier":
            by_kind.setdefault(labels[i].details["kind"], []).append(v.label == "outlier")
    return {
        kind: {"recall": float(np.mean(hits)), "found": int(sum(hits)), "n": len(hits)}
        for kind, hits in sorted(by_kind.items())
    }


def _proportion_sweep(data: _Data, truth: np.ndarray, ids: list[int], config: EvaluationConfig) -> list[dict]:
    """The lens share of the KB swept; each KB as large as its share allows from the same pool."""
    pool = {i: item.label for i, item in task_labels(labelling="lens", held_out=False).items()}
    queries = data.vectors[data.rows(ids)]
    rows = []
    for fraction in config.proportions:
        try:
            chosen = compose(pool, targets=("lens",), size=None, target_fraction=fraction, seed=config.seed)
        except ValueError:
            continue  # too few lenses or others for this share
        labels = [pool[i] for i in chosen]
        votes = knn_vote(
            data.vectors[data.rows(chosen)], labels, queries, k=config.k, weight_function=config.weight_function
        )
        predicted = np.array([v.label == "lens" for v in votes])
        report = metrics.search_report(truth, predicted, n_resamples=config.n_resamples, seed=config.seed)
        rows.append({"target_fraction": fraction, "size": len(chosen), "lenses": labels.count("lens"), **report})
    return rows


# --- Table A1 -----------------------------------------------------------------------------------------


def _weight_functions(data: _Data, searches: dict[str, _Search], config: EvaluationConfig) -> dict:
    """Table A1 on the LINER knowledge base: distances, the weights each function gives, and P/R/F1."""
    liner = searches["liner"]
    rng = np.random.default_rng(config.seed)
    entry_ids = sorted(liner.label_of)
    sample = sorted(rng.choice(entry_ids, min(config.distance_sample, len(entry_ids)), replace=False).tolist())
    distances = pdist(data.vectors[data.rows(sample)].astype(np.float64))
    result = {
        "pairwise_distances": metrics.distribution_stats(distances),
        "neighbour_distances": metrics.distribution_stats(liner.found.distances[:, : config.k]),
        "functions": {},
    }
    for function in WEIGHT_FUNCTIONS:
        weights = np.concatenate([v.weights for v in liner.votes(config.k, function)])
        result["functions"][function] = {
            "weights": metrics.distribution_stats(weights),
            **{name: search.report(config, weight_function=function) for name, search in searches.items()},
        }
    result["_histograms"] = {"distances": distances[:: max(1, len(distances) // 20000)].tolist()}
    return result


# --- Figure C1 ----------------------------------------------------------------------------------------


def _retrieval_time(data: _Data, config: EvaluationConfig) -> dict:
    vectors = np.ascontiguousarray(data.vectors, dtype=np.float32)
    rows = timing.retrieval_time_curve(vectors, sizes=config.retrieval_sizes, kinds=("flat",), seed=config.seed)
    small = tuple(s for s in config.retrieval_sizes if s <= config.approximate_max_size)
    rows += timing.retrieval_time_curve(vectors, sizes=small, kinds=("hnsw", "ivf"), seed=config.seed)
    return {"rows": rows, "fits": timing.fit_lines(rows), "real_vectors": len(vectors)}


# --- Appendix B.2 and the real spectra -------------------------------------------------------------------


def _points(spectrum: Spectrum, name: str, label: str) -> dict:
    ratios = bpt_ratios(spectrum.lines)
    return {
        "x": ratios.get("n2"),
        "y": ratios.get("o3"),
        "name": name,
        "label": label,  # None where a line is missing
        **{f"log_{key}": value for key, value in ratios.items()},
    }


def _case_study(data: _Data, liner: _Search, ids: list[int], config: EvaluationConfig) -> dict | None:
    """A held-out LINER that the LINER search finds: preferably one outvoting a neighbour of another class."""
    votes, found, label_of = liner.votes(config.k, config.weight_function), liner.found, liner.label_of
    hits = [(j, v) for j, v in enumerate(votes) if liner.truth[j] and v.label == "liner"]
    if not hits:
        return None
    mixed = [(j, v) for j, v in hits if len({label_of[int(i)] for i in found.ids[j, : config.k] if i >= 0}) > 1]
    j, v = max(mixed or hits, key=lambda item: item[1].share)
    query = data.spectra[ids[j]]
    neighbours = []
    for i, d, w in zip(found.ids[j, : config.k], found.distances[j, : config.k], v.weights):
        s = data.spectra[int(i)]
        neighbours.append(
            {
                "specobjid": s.specobjid,
                "plate_mjd_fiber": s.plate_mjd_fiber,
                "label": label_of[int(i)],
                "distance": float(d),
                "weight": float(w),
                "z": s.z,
                **_points(s, s.plate_mjd_fiber, label_of[int(i)]),
            }
        )
    return {
        "query": {
            "specobjid": query.specobjid,
            "plate_mjd_fiber": query.plate_mjd_fiber,
            "z": query.z,
            **_points(query, query.plate_mjd_fiber, "query (LINER)"),
        },
        "vote": v.label,
        "share": v.share,
        "neighbours": neighbours,
    }


def _real_spectra(kbs: dict[str, KnowledgeBase], config: EvaluationConfig) -> list[dict]:
    """Each real SDSS spectrum's vote (three and five classes) against the class of its own SPZLINE lines."""
    folder = Path(settings.SHARED_DATA_DIR) / "sdss-spectra"
    rows = []
    for path in sorted(folder.glob("spec-*.fits")):
        lines = {
            name: {"flux": line.flux, "flux_err": line.flux_err} for name, line in read_spectrum(path).lines.items()
        }
        own = bpt_class_from_lines(lines)
        five, three = (
            search(task=name, path=path, k=config.k, weight_function=config.weight_function, knowledge_base=kbs[name])
            for name in ("bpt5", "bpt3")
        )
        rows.append(
            {
                "file": path.name,
                "own_bpt5": own,
                "own_bpt3": bpt_three_class(own),
                "vote_bpt5": five.label,
                "share_bpt5": five.share,
                "vote_bpt3": three.label,
                "share_bpt3": three.share,
                "agrees_bpt3": three.label == bpt_three_class(own),
                "neighbours_bpt3": [n.label for n in three.neighbours],
            }
        )
    return rows


# --- figures ------------------------------------------------------------------------------------------


def _figures(results: dict, data: _Data, out: Path) -> dict:
    made = {}
    for key, title in (
        ("classification_3class", "Three-class BPT classification"),
        ("classification_5class", "Five-class BPT classification"),
    ):
        methods = results[key]
        made[f"{key}"] = figures.write_figure(figures.classification_bars(methods, title), out, key)
        made[f"{key}_per_class"] = figures.write_figure(
            figures.per_class_f1(methods, title + ": F1 per class"), out, f"{key}_per_class"
        )
    made["search"] = figures.write_figure(figures.search_bars(results["search"], PAPER_SEARCH), out, "search")
    made["proportion_sweep"] = figures.write_figure(
        figures.sweep_lines(
            results["proportion_sweep"],
            "target_fraction",
            "Lens search against the share of lenses in the KB",
            "share of lenses in the knowledge base",
        ),
        out,
        "proportion_sweep",
    )
    made["topk_sweep"] = figures.write_figure(
        figures.sweep_lines(results["topk_sweep"], "k", "Search against K, the neighbours that vote", "K"),
        out,
        "topk_sweep",
    )
    weights = results["weight_functions"]
    made["distances"] = figures.write_figure(
        figures.histograms(
            {"pairwise L2 distance in the LINER KB": np.array(weights.pop("_histograms")["distances"])},
            "Pairwise distances between knowledge-base embeddings",
            "L2 distance",
        ),
        out,
        "distances",
    )
    retrieval = results["retrieval_time"]
    made["retrieval_time"] = figures.write_figure(
        figures.retrieval_time(retrieval["rows"], retrieval["fits"]), out, "retrieval_time"
    )
    case = results["case_study"]
    if case:
        spectra = {s.specobjid: s for s in data.spectra.values()}
        query = spectra[case["query"]["specobjid"]]
        wave = wave_grid()
        neighbours = [
            {
                **n,
                "flux": data.flux[spectra[n["specobjid"]].store_row],
                "valid": data.valid[spectra[n["specobjid"]].store_row],
            }
            for n in case["neighbours"]
        ]
        made["case_study"] = figures.write_figure(
            figures.case_study(
                wave,
                data.flux[query.store_row],
                neighbours,
                DIAGNOSTIC_LINES,
                f"LINER {query.plate_mjd_fiber} and its {len(neighbours)} nearest knowledge-base spectra",
                query_z=query.z,
                query_valid=data.valid[query.store_row],
            ),
            out,
            "case_study",
        )
        made["case_study_bpt"] = figures.write_figure(
            bpt_diagram([case["query"], *case["neighbours"]], "BPT positions of the case study"), out, "case_study_bpt"
        )
    return made
