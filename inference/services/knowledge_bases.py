"""Building a knowledge-base version: its entries embedded, its index written, its scores on the test reserve."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from django.conf import settings

from inference import index as vector_index
from inference import metrics
from inference.background_lines import COMBINES, HOSTS, THRESHOLDS, BackgroundRule
from inference.metric import IDENTITY, LinearMetric
from inference.models import ShareSweep
from inference.representation import BESIDE_ENCODER, REPRESENTATIONS, window_scale_fit
from inference.retriever import (
    NO_ID,
    PAPER_POLICY,
    WEIRD_K,
    Choice,
    Retriever,
    VotePolicy,
    cross_validated_votes,
    knn_vote,
    policy_choose,
)
from inference.selectors.embeddings import embedding_reconstruction, embedding_vectors, representation_vectors
from inference.selectors.lines import background_lines_get, spectrum_quiet_hosts
from inference.services.embeddings import embedding_update
from inference.services.leases import failure_sentence
from inference.trust import calibrate
from kb.composition import compose
from kb.labellings import CATALOG, LABELLINGS
from kb.models import KnowledgeBase, SearchTask, Spectrum
from kb.reserves import TEST, VALIDATION
from kb.selectors import spectrum_reserve_rows, spectrum_store_rows, task_labelled, task_labels, task_labels_corrected
from kb.services.knowledge_bases import knowledge_base_create, knowledge_base_fail, knowledge_base_finish
from kb.sky import position_groups
from kb.store import folder_leftovers_clear
from training.models import TrainingRun
from training.selectors import training_run_in_service

REPEAT_ARCSEC = 2.0  # spectra this close are taken for repeat observations of one galaxy
RECALL_QUERIES = 1000  # held-out spectra used to measure an approximate index's recall
RECALL_TARGET = 0.99  # an approximate index searches wider until its recall@3 against exact reaches this


def knowledge_base_build(
    *,
    task: SearchTask,
    size: int | None = None,
    target_fraction: float | None = None,
    seed: int = 0,
    index_kind: str = "auto",
    training_run: TrainingRun | None = None,
    promote: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> KnowledgeBase:
    """Build a new version of ``task``'s knowledge base and (with ``promote``) put it into service.

    Samples its entries, embeds whatever spectra are not embedded yet, builds the index (ids are
    spectrum keys), measures an approximate index's recall@3 against the exact one on held-out
    embeddings, and writes it beside its sidecar under a new folder. The version in service keeps
    answering until this one is ready.
    """
    run = training_run or training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: pre-train the encoder first (manage.py pretrain)")
    if index_kind not in vector_index.CHOICES:
        raise ValueError(f"unknown index {index_kind!r}; choose one of {', '.join(vector_index.CHOICES)}")
    kb = knowledge_base_create(
        task=task,
        training_run=run,
        size=size,
        target_fraction=target_fraction,
        seed=seed,
        index_kind=index_kind,
        index_params=vector_index.spec_params(index_kind),
    )
    return knowledge_base_index(knowledge_base=kb, promote=promote, on_progress=on_progress)


def knowledge_base_folder(knowledge_base: KnowledgeBase) -> Path:
    """Where a version's index is written, once: ``GALSPEC_DATA_DIR/indexes/TASK/vN``."""
    return settings.DATA_DIR / "indexes" / knowledge_base.task.name / f"v{knowledge_base.version}"


def knowledge_base_abandon(*, knowledge_base: KnowledgeBase, error: str) -> None:
    """Mark a build failed and delete the index it left half-written: no build of that version comes again."""
    knowledge_base_fail(knowledge_base=knowledge_base, error=error, action="knowledge_base_abandoned")
    folder_leftovers_clear(knowledge_base_folder(knowledge_base))


def knowledge_base_index(
    *,
    knowledge_base: KnowledgeBase,
    promote: bool = True,
    sweep: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> KnowledgeBase:
    """Embed, index and record a knowledge base whose entries are chosen (status 'building'); then, with
    ``sweep``, recompute its task's share sweep for the checkpoint (``share_sweep_update``), from the
    labels as curated now."""
    kb, run = knowledge_base, knowledge_base.training_run
    if kb.status != KnowledgeBase.Status.BUILDING:
        raise ValueError(f"{kb} is {kb.status}: a built knowledge base never changes; build a new version")
    try:
        embedding_update(training_run=run, on_progress=on_progress)
        entries = list(kb.entries.order_by("pk").values_list("spectrum_id", "spectrum__store_row"))
        if kb.index_kind == "auto":
            kb.index_kind = vector_index.kind_for(len(entries))
            kb.index_params = vector_index.spec_params(kb.index_kind)
            KnowledgeBase.objects.filter(pk=kb.pk).update(index_kind=kb.index_kind, index_params=kb.index_params)
        ids = np.array([pk for pk, _ in entries], dtype=np.int64)
        entry_rows = [row for _, row in entries]
        labels, classes = knowledge_base_classes(knowledge_base=kb)
        choice = knowledge_base_policy_choose(knowledge_base=kb, store_rows=entry_rows, labels=labels, classes=classes)
        vectors = representation_vectors(training_run=run, policy=choice.policy, store_rows=entry_rows)
        spec = vector_index.IndexSpec(**kb.index_params)
        retriever = Retriever.fit(vectors, ids, labels, policy=choice.policy, metric=choice.metric, spec=spec)
        recall = None
        if kb.index_kind != "flat":
            rows = spectrum_reserve_rows(VALIDATION)  # nprobe/efSearch is a choice: made on the validation reserve
            queries = representation_vectors(
                training_run=run, policy=choice.policy, store_rows=rows[:RECALL_QUERIES].tolist()
            )
            if len(queries):
                mapped, queries = choice.metric.transform(vectors), choice.metric.transform(queries)
                exact = vector_index.search(vector_index.build(mapped, ids), queries, 3)
                spec, recall = vector_index.tune(retriever.index, spec, queries, exact, target=RECALL_TARGET)
                KnowledgeBase.objects.filter(pk=kb.pk).update(index_params=vector_index.spec_dict(spec))
        rule = knowledge_base_background_choose(knowledge_base=kb, retriever=retriever)
        weird = knowledge_base_weirdness_choose(knowledge_base=kb, retriever=retriever)
        evaluation = knowledge_base_evaluate(
            knowledge_base=kb, retriever=retriever, background_rule=rule, weirdness_rule=weird
        )
        folder = knowledge_base_folder(kb)
        extra = {}
        if weird:
            scores = knowledge_base_weirdness_all(knowledge_base=kb, retriever=retriever, ordinary=weird["ordinary"])
            extra[WEIRDNESS_FILE] = scores
        retriever.save(
            folder,
            {
                "task": kb.task.name,
                "kb_version": kb.version,
                "knowledge_base": kb.pk,
                "kind": kb.index_kind,
                "training_run": run.pk,
                "checkpoint": str(run.checkpoint_path),
                "recall_at_3": recall,
                "params": vector_index.spec_dict(spec),
            },
            extra=extra,
        )
        if kb.task.labelling == CATALOG:
            evaluation["cross_validation"] = knowledge_base_cross_validate(
                knowledge_base=kb, vectors=vectors, policy=retriever.policy, classes=classes
            )
        calibration = knowledge_base_calibrate(knowledge_base=kb, retriever=retriever)
    except BaseException as error:
        message = failure_sentence(error) if isinstance(error, Exception) else f"stopped ({type(error).__name__})"
        knowledge_base_abandon(knowledge_base=kb, error=message)
        raise
    kb = knowledge_base_finish(
        knowledge_base=kb,
        index_path=str(folder),
        recall=recall,
        evaluation=evaluation,
        calibration=calibration,
        policy=choice.policy.as_dict(),
        policy_validation={"score": choice.score, "candidates": choice.candidates},
        background_rule=rule,
        weirdness_rule=weird,
        promote=promote,
    )
    if sweep:
        share_sweep_update(task=kb.task, training_run=run, policy=choice.policy, metric=choice.metric)
    return kb


def knowledge_base_classes(*, knowledge_base: KnowledgeBase) -> tuple[list[str], list[str]]:
    """Each entry's label (in entry order), and the finer class a learned metric learns from: the outlier
    kind of an outlier, the five-class BPT label of a BPT class or of "other" where its catalogs give one."""
    labels, classes = [], []
    for label, details in knowledge_base.entries.order_by("pk").values_list("label", "details"):
        details = details or {}
        labels.append(label)
        classes.append(f"{label}:{details.get('kind') or details.get('bpt5') or ''}")
    return labels, classes


def knowledge_base_policy_choose(
    *, knowledge_base: KnowledgeBase, store_rows: list[int], labels: list[str], classes: list[str]
) -> Choice:
    """The representation, vote policy and learned metric of a version whose entries are at ``store_rows``,
    chosen on the validation reserve: for each representation (``inference.representation``: the encoder's
    embedding, the line windows' flux, the rest-frame spectrum, the measured lines, or the embedding with a
    part beside it) the policy ``inference.retriever.policy_choose`` picks, and of those the best scoring (the
    encoder's unless another scores higher). The paper's policy where the reserve holds none of the task's
    spectra. Its candidates are every representation's."""
    kb, task, run = knowledge_base, knowledge_base.task, knowledge_base.training_run
    ids, truth = _scored(task, VALIDATION)
    if not ids or len(set(map(str, truth))) < 2:
        return Choice(policy=PAPER_POLICY, metric=IDENTITY, score=None, candidates=[])
    query_rows = [spectrum_store_rows(ids)[i] for i in ids]
    keys, best, candidates = np.arange(len(labels)), None, []
    for name in REPRESENTATIONS:
        scale = _part_scale(run, store_rows, BESIDE_ENCODER[name]) if name in BESIDE_ENCODER else 1.0
        base = VotePolicy(representation=name, window_scale=scale)
        vectors = representation_vectors(training_run=run, policy=base, store_rows=store_rows)
        queries = representation_vectors(training_run=run, policy=base, store_rows=query_rows)
        choice = policy_choose(
            vectors, keys, labels, classes, queries, truth, targets=tuple(task.target_labels), base=base, seed=kb.seed
        )
        candidates += choice.candidates
        if best is None or choice.score > best.score:
            best = choice
    return replace(best, candidates=candidates)


def _part_scale(run: TrainingRun, store_rows: list[int], part: str) -> float:
    """The weight of ``part`` beside the encoder's embedding for these entries (``window_scale_fit``)."""
    embedding = embedding_vectors(training_run=run, store_rows=store_rows)
    vectors = representation_vectors(training_run=run, policy=VotePolicy(representation=part), store_rows=store_rows)
    return window_scale_fit(embedding, vectors)


def knowledge_base_calibrate(*, knowledge_base: KnowledgeBase, retriever: Retriever) -> dict:
    """What its answers are judged against (``inference.trust.calibrate``): every spectrum of the
    validation reserve searched by ``retriever`` (distances in its metric's space), their reconstruction
    chi-squared, and the z range of the entries."""
    rows = spectrum_reserve_rows(VALIDATION)
    run = knowledge_base.training_run
    queries = representation_vectors(training_run=run, policy=retriever.policy, store_rows=rows.tolist())
    nearest = retriever.neighbours(queries, 1).distances[:, 0] if len(rows) else np.empty(0)
    entry_z = np.fromiter(knowledge_base.entries.values_list("spectrum__z", flat=True), dtype=np.float64)
    reconstruction = embedding_reconstruction(training_run=run, store_rows=rows.tolist())
    return calibrate(nearest[np.isfinite(nearest)], entry_z, reconstruction)


def knowledge_base_background_choose(*, knowledge_base: KnowledgeBase, retriever: Retriever) -> dict:
    """For a task whose targets show a second galaxy's lines (``Labelling.background_lines``): the
    ``BackgroundRule`` (threshold of combined background-line S/N, the hosts scanned, how the lines join the
    vote) that gives the best F1 on the validation reserve, candidates weighed simplest first (every host,
    either says so) and a later one winning only by scoring higher; ``threshold`` None where the vote alone
    does best, and empty for any other task. With every candidate's validation scores."""
    kb, task = knowledge_base, knowledge_base.task
    labelling = LABELLINGS.get(task.labelling)
    if labelling is None or not labelling.background_lines or not task.target_labels:
        return {}
    ids, truth = _scored(task, VALIDATION)
    if not ids or not any(truth):
        return {**asdict(BackgroundRule()), "validation": [], "validation_spectra": len(ids)}
    queries = _vectors(kb.training_run, retriever.policy, ids)
    voted = np.array([v.label in task.target_labels for v in retriever.votes(queries)])
    scans, quiet = _backgrounds(ids)
    truth = np.array(truth)
    rows, best = [], {"f1": metrics.binary_scores(truth, voted)["f1"], **asdict(BackgroundRule())}
    for hosts, combine in itertools.product(HOSTS, COMBINES):
        for threshold in THRESHOLDS:
            rule = BackgroundRule(threshold=threshold, combine=combine, hosts=hosts)
            found = np.array([rule.finds(b, q) for b, q in zip(scans, quiet)])
            f1 = metrics.binary_scores(truth, rule.target(voted, found))["f1"]
            rows.append({**asdict(rule), "f1": f1, "false_positive_rate": float(found[~truth].mean())})
            if f1 > best["f1"]:
                best = {"f1": f1, **asdict(rule)}
    return {**best, "validation": rows, "validation_spectra": len(ids)}


WEIRD_FALSE_POSITIVES = (0.005, 0.01, 0.02, 0.05)  # shares of ordinary validation spectra a threshold may flag
WEIRDNESS_FILE = "weirdness.npy"  # (store rows,) float32: every embedded spectrum's weirdness, for ranking


def knowledge_base_weirdness_choose(*, knowledge_base: KnowledgeBase, retriever: Retriever) -> dict:
    """For a task whose targets are the unusual (``Labelling.weirdness``): the weirdness threshold
    (``Retriever.weirdness``) that, beside the vote (a target where either says so), gives the best F1 on the
    validation reserve, among those flagging WEIRD_FALSE_POSITIVES of its ordinary spectra; ``threshold``
    None where the vote alone does best, and empty for any other task. A kind of outlier the knowledge base
    lacks is then still caught where it is far from every ordinary galaxy."""
    kb, task = knowledge_base, knowledge_base.task
    labelling = LABELLINGS.get(task.labelling)
    if labelling is None or not labelling.weirdness or not task.target_labels:
        return {}
    ordinary = sorted(label for label in labelling.labels if label not in task.target_labels)
    ids, truth = _scored(task, VALIDATION)
    truth = np.array(truth, dtype=bool)
    if not ids or not truth.any() or truth.all():
        return {"threshold": None, "k": WEIRD_K, "ordinary": ordinary, "validation": [], "validation_spectra": len(ids)}
    queries = _vectors(kb.training_run, retriever.policy, ids)
    voted = np.array([v.label in task.target_labels for v in retriever.votes(queries)])
    scores = retriever.weirdness(queries, frozenset(ordinary))
    finite = scores[~truth][np.isfinite(scores[~truth])]
    rows, best = [], {"f1": metrics.binary_scores(truth, voted)["f1"], "threshold": None, "false_positive_rate": None}
    for rate in WEIRD_FALSE_POSITIVES:
        threshold = float(np.quantile(finite, 1 - rate)) if len(finite) else float("inf")
        flagged = scores >= threshold
        row = {
            "threshold": threshold,
            "false_positive_rate": float(flagged[~truth].mean()),
            "f1": metrics.binary_scores(truth, voted | flagged)["f1"],
        }
        rows.append(row)
        if row["f1"] > best["f1"]:
            best = row
    return {**best, "k": WEIRD_K, "ordinary": ordinary, "validation": rows, "validation_spectra": len(ids)}


def knowledge_base_weirdness_all(
    *, knowledge_base: KnowledgeBase, retriever: Retriever, ordinary: list[str], chunk: int = 50_000
) -> np.ndarray:
    """(store rows,) float32: every embedded spectrum's weirdness against the version's ``ordinary`` entries,
    a spectrum in the knowledge base not its own neighbour; kept with the index, for ranking a survey."""
    pk_of = dict(Spectrum.objects.values_list("store_row", "pk"))
    run = knowledge_base.training_run
    rows = run.embedding_set.rows
    out = np.full(rows, np.inf, dtype=np.float32)
    for start in range(0, rows, chunk):
        span = list(range(start, min(start + chunk, rows)))
        own = [pk_of.get(row, NO_ID) for row in span]
        vectors = representation_vectors(training_run=run, policy=retriever.policy, store_rows=span)
        out[start : start + len(span)] = retriever.weirdness(vectors, frozenset(ordinary), own_ids=own)
    return out


def _backgrounds(ids: list[int]) -> tuple[list, list[bool]]:
    """Each spectrum's background-line candidate, and whether its host is quiet (``quiet_host``)."""
    spectra = {s.pk: s for s in Spectrum.objects.filter(pk__in=ids).only("pk", "store_row", "z")}
    quiet = spectrum_quiet_hosts(ids=ids)
    return background_lines_get(spectra=[spectra[i] for i in ids]), [quiet[i] for i in ids]


def knowledge_base_evaluate(
    *,
    knowledge_base: KnowledgeBase,
    retriever: Retriever,
    background_rule: dict | None = None,
    weirdness_rule: dict | None = None,
    n_resamples: int = 200,
) -> dict:
    """Scores of the knowledge base's answers, under its policy (and its ``background_rule`` or
    ``weirdness_rule``, where one has a threshold: a target where the vote or the rule says so), on the test
    reserve, which no knowledge base holds; the vote's own scores beside them as ``vote_only``.

    A search task is scored on every held-out spectrum that some labelling labels (BPT classes, lenses,
    outliers together, as in the paper's Tables 3-4): precision, recall and F1 of finding its targets.
    A classification task is scored on the held-out spectra its labelling labels: accuracy, macro-F1
    and per-class scores. Every figure has a bootstrap 95% interval. Empty when nothing is held out.
    """
    kb, task = knowledge_base, knowledge_base.task
    ids, truth = _scored(task, TEST)
    if not ids:
        return {}
    queries = _vectors(kb.training_run, retriever.policy, ids)
    votes = retriever.votes(queries)
    background, weird = (rule or {} for rule in (background_rule, weirdness_rule))
    if task.target_labels:
        predicted = np.array([v.label in task.target_labels for v in votes])
        report = metrics.search_report(np.array(truth), predicted, n_resamples=n_resamples)
        answered, rule = predicted, BackgroundRule.from_dict(background)
        if rule.threshold is not None:
            found = np.array([rule.finds(b, q) for b, q in zip(*_backgrounds(ids))])
            answered = rule.target(answered, found)
        if weird.get("threshold") is not None:
            answered = answered | (retriever.weirdness(queries, frozenset(weird["ordinary"])) >= weird["threshold"])
        if background.get("threshold") is not None or weird.get("threshold") is not None:
            vote_only = {key: report[key] for key in ("precision", "recall", "f1")}
            report = metrics.search_report(np.array(truth), answered, n_resamples=n_resamples)
            report["vote_only"] = vote_only
    else:
        labels = sorted(set(truth) | set(kb.composition))
        report = metrics.classification_report(truth, [v.label for v in votes], labels, n_resamples=n_resamples)
    policy = retriever.policy
    return {
        "policy": policy.as_dict(),
        "k": policy.k,
        "weight_function": policy.weighting,
        "test_spectra": len(ids),
        **report,
    }


def knowledge_base_cross_validate(
    *,
    knowledge_base: KnowledgeBase,
    vectors: np.ndarray,
    policy: VotePolicy = PAPER_POLICY,
    classes: list[str] | None = None,
    folds: int = 5,
    n_resamples: int = 200,
) -> dict:
    """Precision, recall and F1 of finding a task's targets among the knowledge base's own entries, each
    voted by a knowledge base of the other folds (``cross_validated_votes``): the score of a task made from
    a catalog, which has no catalogued test set. ``vectors`` are the entries' embeddings in entry order.
    Precision is at the knowledge base's own share of targets, higher than a survey search's, where
    targets are rarer; and its "others" are unlabelled galaxies, some perhaps targets nobody catalogued.
    Repeat observations of one galaxy (within REPEAT_ARCSEC) share a fold: a twin would find itself.
    A learned metric is refitted on each fold's knowledge base from ``classes`` (n,), never on the fold it votes.
    """
    kb = knowledge_base
    labels, ra, dec = zip(*kb.entries.order_by("pk").values_list("label", "spectrum__ra", "spectrum__dec"))
    groups = position_groups(np.array(ra, dtype=float), np.array(dec, dtype=float), radius_arcsec=REPEAT_ARCSEC)
    targets = tuple(kb.task.target_labels)
    votes = cross_validated_votes(
        vectors, list(labels), policy=policy, classes=classes, folds=folds, seed=kb.seed, groups=groups
    )
    truth = np.array([label in targets for label in labels])
    predicted = np.array([vote.label in targets for vote in votes])
    report = metrics.search_report(truth, predicted, n_resamples=n_resamples, seed=kb.seed)
    return {"folds": folds, "policy": policy.as_dict(), "entries": len(labels), "targets": int(truth.sum()), **report}


def _scored(task: SearchTask, reserve: str) -> tuple[list[int], list]:
    """The spectra of ``reserve`` a task is scored on, and the truth for each: for a search task every
    spectrum some labelling labels (for a task made from a catalog, every spectrum), True where it is a
    target; for a classification task the spectra its labelling labels, and their labels."""
    truth_of = task_labelled(task=task, reserve=reserve)
    if not task.target_labels:
        ids = sorted(truth_of)
        return ids, [truth_of[i].label for i in ids]
    if task.labelling == CATALOG:
        ids = sorted(truth_of)
    else:
        ids = sorted(set().union(*(task_labels(labelling=name, reserve=reserve) for name in LABELLINGS)))
    return ids, [i in truth_of and truth_of[i].label in task.target_labels for i in ids]


def _vectors(run: TrainingRun, policy: VotePolicy, ids: list[int]) -> np.ndarray:
    """(n, D) the spectra ``ids`` (n,) in the representation ``policy`` votes in."""
    rows = spectrum_store_rows(ids)
    return representation_vectors(training_run=run, policy=policy, store_rows=[rows[i] for i in ids])


SWEEP_SHARES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # target shares a task's page offers, beside the natural one
SWEEP_MAX_SIZE = 50_000  # entries of a swept knowledge base at most (a survey-sized pool is sampled)


def share_sweep_update(
    *,
    task: SearchTask,
    training_run: TrainingRun,
    policy: VotePolicy = PAPER_POLICY,
    metric: LinearMetric = IDENTITY,
    seed: int = 0,
) -> ShareSweep | None:
    """Precision, recall and F1 of a search task on the validation reserve, voting by ``policy`` in the
    space of ``metric`` (the newest version's), for knowledge bases of each
    target share (the natural share first, then SWEEP_SHARES), each as large as its share allows from the
    task's labelled spectra (corrections applied, at most SWEEP_MAX_SIZE), kept as the task's ShareSweep for
    ``training_run``. None for a classification task (no targets) or with no validation spectra."""
    ids, truth = _scored(task, VALIDATION)
    if not task.target_labels or not ids:
        return None
    labelled = task_labels_corrected(task=task)
    pool = {pk: item.label for pk, item in labelled.items()}
    targets = tuple(task.target_labels)
    queries = _vectors(training_run, policy, ids)
    keys = sorted(pool)
    if len(keys) > SWEEP_MAX_SIZE:  # no swept knowledge base is larger: sample the pool once
        keys = sorted(np.random.default_rng(seed).choice(keys, SWEEP_MAX_SIZE, replace=False).tolist())
        pool = {pk: pool[pk] for pk in keys}
    vectors = _vectors(training_run, policy, keys)
    position = {pk: i for i, pk in enumerate(keys)}
    rows = []
    for share in (None, *SWEEP_SHARES):
        try:  # as many entries as the share allows
            chosen = compose(pool, targets=targets, size=None, target_fraction=share, seed=seed)
        except ValueError:
            continue  # too few targets or others for this share
        labels = [pool[pk] for pk in chosen]
        votes = knn_vote(vectors[[position[pk] for pk in chosen]], labels, queries, policy=policy, metric=metric)
        predicted = np.array([v.label in targets for v in votes])
        report = metrics.search_report(np.array(truth), predicted, n_resamples=200, seed=seed)
        n_targets = sum(label in targets for label in labels)
        rows.append(
            {
                "target_fraction": share,
                "share": n_targets / len(chosen),
                "size": len(chosen),
                "targets": n_targets,
                "policy": policy.as_dict(),
                **{key: report[key] for key in ("precision", "recall", "f1", "precision_ci", "recall_ci", "f1_ci")},
            }
        )
    sweep, _ = ShareSweep.objects.update_or_create(
        task=task,
        training_run=training_run,
        defaults={"rows": rows, "validation_spectra": len(ids), "validation_targets": int(sum(truth))},
    )
    return sweep
