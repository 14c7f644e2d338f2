"""`manage.py evaluate`: every experiment of the paper on the held-out test spectra.

The knowledge bases evaluated are the ones in service (built with the checkpoint in service; one is
built where a task has none), so what is measured is what answers users. Every method of Table 2 is
trained on exactly the spectra of the knowledge base and tested on the same held-out spectra, which
no knowledge base and no pre-training ever sees (``kb.reserves.held_out``). Sweeps compose their
knowledge bases with the same ``kb.composition.compose`` as ``build_kb``, in memory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from django.conf import settings

from experiments import baselines, restframe, timing
from experiments.data import Data, EvaluationConfig, config_policy, data_load, kb_entries
from experiments.figure_files import image_server, write_figures
from experiments.report import write_report
from experiments.robustness import robustness
from experiments.searches import SEARCH_TASKS, search_experiments
from experiments.seeds import headline, spread
from experiments.trust_check import trust_figures
from experiments.variants import encoder_pooled, pooled_embeddings, variants
from inference import metrics
from inference.retriever import Retriever, knn_vote, policy_choose
from inference.services.knowledge_bases import knowledge_base_build, knowledge_base_classes
from inference.services.search import load_retriever, search
from kb.bpt import FIVE_CLASSES, THREE_CLASSES, bpt_class_from_lines, bpt_consensus, bpt_three_class
from kb.labellings import LABELLINGS
from kb.mock import rules
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.reserves import TEST, VALIDATION
from kb.selectors import task_labels
from kb.spectra import read_spectrum
from training.checkpoint import load_checkpoint
from training.selectors import training_run_in_service
from training.services import training_run_create, training_run_execute


def evaluate(
    *,
    out: str | Path,
    config: EvaluationConfig = EvaluationConfig(),
    seeds: int = 1,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Run every experiment with the checkpoint in service, write ``out``/results.json, report.md and the
    figures; return the results.

    With ``seeds`` > 1, pre-training and knowledge-base sampling are repeated with the seeds after
    ``config.seed`` (new training runs and knowledge-base versions, none put into service), every experiment
    but the timing runs again on each, and ``results["over_seeds"]`` gives each headline figure's mean and
    spread over all of them (``experiments.seeds``); ``results["seeds"]`` is how many seeds that is."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    results, data = _experiments(run, config, log)
    log("Figure C1: retrieval time against knowledge-base size")
    results["retrieval_time"] = _retrieval_time(data, config)
    results["seeds"] = seeds
    if seeds > 1:
        results["over_seeds"] = _repeats(run, results, config, seeds, log)
    log("figures and report")
    with image_server():
        results["figures"] = write_figures(results, data, out)
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    write_report(results, out / "report.md")
    return results


def _experiments(run, config: EvaluationConfig, log) -> tuple[dict, Data]:
    """Every experiment but the timing, with ``run``'s checkpoint and knowledge bases built with it."""
    log(f"embedding what is not embedded yet under training run {run.pk}")
    data = data_load(run)
    kbs = {name: _knowledge_base(name, run, config, log) for name in ("bpt3", "bpt5", *SEARCH_TASKS)}
    results: dict = {"dataset": _dataset(data, kbs, run, config)}
    log("the label ceiling: the catalogs' own rules on each test spectrum's SPZLINE lines")
    results["label_ceiling"] = _label_ceiling(data, config)
    for name, key in (("bpt3", "classification_3class"), ("bpt5", "classification_5class")):
        log(f"Table 2: {name} classification, every method")
        results[key], results["dataset"]["splits"][key] = _classification(data, kbs[name], run, config, log)
    found, results["dataset"]["splits"]["search"] = search_experiments(data, kbs, config, log)
    results.update(found)
    log("variants of the pooling and the vote, on the validation reserve")
    results["variants"] = variants(data, kbs, run, results["weight_functions"], config)
    log("robustness: the test spectra perturbed as real data differs from the mock")
    results["robustness"] = robustness(data, kbs, run, config, log)
    log("trust: answers flagged as not in distribution, and how often they are right")
    results["trust"] = trust_figures(data, kbs, config)
    log("the real SDSS spectra")
    results["real_spectra"] = _real_spectra(kbs, config)
    return results, data


def _repeats(run, first: dict, config: EvaluationConfig, seeds: int, log) -> dict:
    """The experiments again with pre-training and knowledge bases of each further seed; the spread."""
    runs, figures = [run.pk], [headline(first)]
    for seed in range(config.seed + 1, config.seed + seeds):
        log(f"seed {seed}: pre-training another encoder (kept out of service), then its knowledge bases")
        again = training_run_create(preset=run.preset, **{**run.train_config, "seed": seed})
        training_run_execute(run=again, promote=False)
        results, _ = _experiments(again, replace(config, seed=seed), log)
        runs.append(again.pk)
        figures.append(headline(results))
    return {"seeds": list(range(config.seed, config.seed + seeds)), "training_runs": runs, "figures": spread(figures)}


def _knowledge_base(name: str, run, config: EvaluationConfig, log) -> KnowledgeBase:
    """The task's knowledge base in service if it holds embeddings of ``run``; else a new version, built
    for the evaluation and left out of service (evaluating never changes what answers users)."""
    task = SearchTask.objects.get(name=name)
    kb = KnowledgeBase.objects.filter(task=task, in_service=True, training_run=run).first()
    if kb is None:
        log(f"building a {name} knowledge base (none in service for this checkpoint)")
        kb = knowledge_base_build(task=task, seed=config.seed, training_run=run, promote=False)
    return kb


def _dataset(data: Data, kbs: dict, run, config: EvaluationConfig) -> dict:
    held_out = sum(s.held_out for s in data.spectra.values())
    return {
        "spectra": len(data.spectra),
        "held_out": held_out,
        "validation": sum(s.validation for s in data.spectra.values()),
        "checkpoint": str(run.checkpoint_path),
        "training_run": run.pk,
        "preset": run.preset,
        "pretraining_steps": run.step,
        "n_pretraining": run.n_spectra,
        "pretraining": {key: value for key, value in run.metrics.items() if not isinstance(value, (list, dict))},
        "embedding_width": int(data.vectors.shape[1]),
        "knowledge_bases": {
            name: {
                "id": kb.pk,
                "version": kb.version,
                "size": kb.size,
                "composition": kb.composition,
                "seed": kb.seed,
                "target_fraction": kb.target_fraction,
                "policy": kb.policy,
                "index": kb.index_kind,
            }
            for name, kb in kbs.items()
        },
        "config": asdict(config),
        "splits": {"validation": sum(s.validation for s in data.spectra.values())},
        "real_sdss_spectra_in_kbs": Spectrum.objects.filter(
            kb_entries__knowledge_base__in=kbs.values(), source_file__startswith=str(settings.SHARED_DATA_DIR)
        ).count(),
    }


# --- Table 2 ------------------------------------------------------------------------------------------


def _classification(data: Data, kb: KnowledgeBase, run, config: EvaluationConfig, log) -> tuple[dict, dict]:
    """Each method's classification report, and the split's sizes. Every baseline gets the redshift the
    encoder gets: rest-frame flux, or the flux in the encoder's own line windows (``experiments.restframe``)."""
    labels = list(LABELLINGS[kb.task.labelling].labels)
    train = kb_entries(kb)
    test = sorted(task_labels(labelling=kb.task.labelling, reserve=TEST).items())
    train_ids, train_labels = [i for i, _ in train], [label for _, label in train]
    test_ids, truth = [i for i, _ in test], [item.label for _, item in test]
    tr, te = data.rows(train_ids), data.rows(test_ids)
    train_z, test_z = data.redshifts(train_ids), data.redshifts(test_ids)
    train_flux, test_flux = np.asarray(data.flux[tr]), np.asarray(data.flux[te])
    train_valid, test_valid = np.asarray(data.valid[tr]), np.asarray(data.valid[te])
    (train_rest, train_rest_valid), (test_rest, test_rest_valid) = (
        restframe.rest_frame(train_flux, train_valid, train_z),
        restframe.rest_frame(test_flux, test_valid, test_z),
    )
    vote = {"policy": config_policy(config)}
    methods = {
        "encoder_kb": lambda: [v.label for v in load_retriever(kb).votes(data.served(kb, test_ids))],
        "encoder_chosen": lambda: _chosen_vote(
            data, kb, np.asarray(data.vectors[tr]), train_ids, train_labels, data.vectors_of, test_ids, config
        ),
        "encoder_generic_pool": lambda: _generic_pool_vote(data, run, train_ids, train_labels, test_ids, config),
        "shortcut_knn": lambda: baselines.shortcut_knn(
            data.features(train_ids), train_labels, data.features(test_ids), **vote
        ),
        "raw_window_knn": lambda: baselines.flux_knn(
            restframe.window_flux(train_flux, train_valid, train_z),
            train_labels,
            restframe.window_flux(test_flux, test_valid, test_z),
            **vote,
        ),
        "raw_window_chosen": lambda: _chosen_vote(
            data,
            kb,
            restframe.window_flux(train_flux, train_valid, train_z),
            train_ids,
            train_labels,
            lambda ids: restframe.window_flux(
                np.asarray(data.flux[data.rows(ids)]), np.asarray(data.valid[data.rows(ids)]), data.redshifts(ids)
            ),
            test_ids,
            config,
        ),
        "restframe_flux_knn": lambda: baselines.flux_knn(train_rest, train_labels, test_rest, **vote),
        "restframe_pca_knn": lambda: baselines.pca_knn(train_rest, train_labels, test_rest, seed=config.seed, **vote),
        "random_forest": lambda: baselines.random_forest(train_rest, train_labels, test_rest, seed=config.seed),
        "cnn": lambda: baselines.cnn(
            train_rest,
            train_rest_valid,
            train_labels,
            test_rest,
            test_rest_valid,
            seed=config.seed,
            epochs=config.cnn_epochs,
        ),
        "encoder_finetuned": lambda: baselines.encoder_finetuned(
            run.checkpoint_path,
            train_flux,
            train_valid,
            train_labels,
            test_flux,
            test_valid,
            train_z=train_z,
            test_z=test_z,
            seed=config.seed,
            epochs=config.finetune_epochs,
        ),
    }
    if config.finetune_epochs == 0:
        del methods["encoder_finetuned"]
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


def _chosen_vote(data: Data, kb: KnowledgeBase, train_vectors, train_ids, train_labels, vectors_of, test_ids, config):
    """The served machinery on another representation: the vote policy and learned metric chosen on the
    validation reserve (``inference.retriever.policy_choose``, as a knowledge base's build chooses them),
    over ``train_vectors`` of the entries, with ``vectors_of(ids)`` giving any spectra's vectors. A win of
    the encoder over this is the encoder's, not the metric's."""
    validation = sorted(task_labels(labelling=kb.task.labelling, reserve=VALIDATION).items())
    val_ids, val_truth = [i for i, _ in validation], [item.label for _, item in validation]
    ids = np.arange(len(train_ids))
    labels, fine = knowledge_base_classes(knowledge_base=kb)  # the classes the version's own metric learned from
    class_of = dict(zip(kb.entries.order_by("pk").values_list("spectrum_id", flat=True), fine))
    classes = [class_of[i] for i in train_ids]
    choice = policy_choose(
        train_vectors, ids, list(train_labels), classes, vectors_of(val_ids), val_truth, seed=config.seed
    )
    retriever = Retriever.fit(train_vectors, ids, list(train_labels), policy=choice.policy, metric=choice.metric)
    return [v.label for v in retriever.votes(vectors_of(test_ids))]


def _generic_pool_vote(data: Data, run, train_ids, train_labels, test_ids, config: EvaluationConfig) -> list[str]:
    """The paper's encoder as it reads most faithfully: the K-vote on the mean of all observed tokens
    (one segment, no line windows, no peaks), the same checkpoint and knowledge-base entries."""
    model = load_checkpoint(run.checkpoint_path, device="cpu")
    generic = {"generic": encoder_pooled(model, {"pool_segments": 1, "pool_lines": False, "pool_peaks": False})}
    vectors = pooled_embeddings(model, generic, data, [*train_ids, *test_ids])["generic"]
    votes = knn_vote(
        vectors[: len(train_ids)], list(train_labels), vectors[len(train_ids) :], policy=config_policy(config)
    )
    return [v.label for v in votes]


# --- the label ceiling -------------------------------------------------------------------------------


def _label_ceiling(data: Data, config: EvaluationConfig) -> dict:
    """What a perfect method would score against the labels: MPA-JHU's and Portsmouth's published rules
    (``kb.mock.rules``) applied to each test spectrum's own SPZLINE lines, then the same consensus as the
    labels. The catalogs fit the same pixels their own ways and part on weak lines, so no method that reads
    the spectrum can agree with them more than this; a figure near it is at the ruler's limit."""
    out = {}
    for labelling, key, classes in (
        ("bpt5", "classification_5class", FIVE_CLASSES),
        ("bpt3", "classification_3class", THREE_CLASSES),
    ):
        test = sorted(task_labels(labelling=labelling, reserve=TEST).items())
        truth = [item.label for _, item in test]
        own = [_own_consensus(data.spectra[i].lines, labelling) for i, _ in test]
        out[key] = metrics.classification_report(
            truth, own, list(classes), n_resamples=config.n_resamples, seed=config.seed
        )
    out["liner"] = out["classification_5class"]["per_class"]["liner"]
    return out


def _own_consensus(lines: dict, labelling: str) -> str:
    """The consensus label the catalogs' rules give a spectrum's SPZLINE ``lines`` ({name: {flux, flux_err}}),
    'unclassified' where the two rules disagree."""
    measured = {name: (line.get("flux") or 0.0, line.get("flux_err") or -1.0) for name, line in (lines or {}).items()}
    measured = {name: measured.get(name, (0.0, -1.0)) for name in rules.BPT_LINES} | measured
    label = bpt_consensus(rules.galspec_bptclass(measured), rules.port_bpt(measured))
    if label is None:
        return "unclassified"
    return bpt_three_class(label) if labelling == "bpt3" else label


# --- Figure C1 ----------------------------------------------------------------------------------------


def _retrieval_time(data: Data, config: EvaluationConfig) -> dict:
    vectors = np.ascontiguousarray(data.vectors, dtype=np.float32)
    rows = timing.retrieval_time_curve(vectors, sizes=config.retrieval_sizes, kinds=("flat",), seed=config.seed)
    small = tuple(s for s in config.retrieval_sizes if s <= config.approximate_max_size)
    rows += timing.retrieval_time_curve(vectors, sizes=small, kinds=("hnsw", "ivf"), seed=config.seed)
    return {"rows": rows, "fits": timing.fit_lines(rows), "real_vectors": len(vectors)}


def _real_spectra(kbs: dict[str, KnowledgeBase], config: EvaluationConfig) -> list[dict]:
    """Each real SDSS spectrum's vote (three and five classes) against the class of its own SPZLINE lines."""
    folder = Path(settings.SHARED_DATA_DIR) / "sdss-spectra"
    rows = []
    for path in sorted(folder.glob("spec-*.fits")):
        lines = {
            name: {"flux": line.flux, "flux_err": line.flux_err} for name, line in read_spectrum(path).lines.items()
        }
        own = bpt_class_from_lines(lines)
        five, three = (search(task=name, path=path, knowledge_base=kbs[name]) for name in ("bpt5", "bpt3"))
        with tempfile.TemporaryDirectory() as folder:
            scrambled = search(
                task="bpt3", path=_shuffled(path, Path(folder) / path.name, config.seed), knowledge_base=kbs["bpt3"]
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
                "in_distribution": three.trust.in_distribution,
                "distance_percentile": three.trust.distance_percentile,
                "reconstruction_percentile": three.trust.reconstruction_percentile,
                "shuffled_in_distribution": scrambled.trust.in_distribution,
                "shuffled_distance_percentile": scrambled.trust.distance_percentile,
                "shuffled_reconstruction_percentile": scrambled.trust.reconstruction_percentile,
            }
        )
    return rows


def _shuffled(path: Path, out: Path, seed: int) -> Path:
    """A copy of a spectrum file with its observed flux values shuffled among its observed pixels: the same
    numbers and noise, no spectrum. The trust signals should flag its answer."""
    with fits.open(path) as hdus:
        coadd = hdus["COADD"].data
        observed = np.flatnonzero(coadd["ivar"] > 0)
        coadd["flux"][observed] = np.random.default_rng(seed).permutation(coadd["flux"][observed])
        hdus.writeto(out)
    return out
