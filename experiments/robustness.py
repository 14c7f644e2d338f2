"""The robustness table: the same searches with the test spectra perturbed as real data differs from any
mock (``experiments.perturb``), each perturbed set embedded by the checkpoint evaluated and voted in the
same knowledge bases, whose entries stay as they are. ``results["robustness"]`` and report.md's table."""

from __future__ import annotations

import numpy as np

from experiments.data import Data, EvaluationConfig
from experiments.perturb import PERTURBATIONS, WAVE, perturbed
from experiments.searches import SEARCH_TASKS, mixed_test_set, served_answer, served_rules
from inference import metrics
from inference.background_lines import BackgroundRule, background_scan
from inference.embed import embed
from inference.retriever import VotePolicy
from inference.services.search import load_retriever
from kb.bpt import FIVE_CLASSES
from kb.models import KnowledgeBase
from kb.reserves import TEST
from kb.selectors import task_labels
from training.checkpoint import load_checkpoint

UNCHANGED = "unchanged"


def robustness(data: Data, kbs: dict[str, KnowledgeBase], run, config: EvaluationConfig, log) -> dict:
    """{perturbation: {"classification_5class": macro-F1, "<task>_f1": F1 per search, as served (the vote
    joined to its rule: background lines, weirdness), "<task>_vote_f1": the vote's alone}} on the mixed test
    set, "unchanged" first (the test spectra as they are, embedded the same way)."""
    ids = mixed_test_set()
    rows = data.rows(ids)
    flux, valid, z = np.asarray(data.flux[rows]), np.asarray(data.valid[rows]), data.redshifts(ids)
    ivar = np.asarray(data.ivar[rows])
    model = load_checkpoint(run.checkpoint_path, device="cpu")
    out = {}
    for name in (UNCHANGED, *PERTURBATIONS):
        log(f"  {name}")
        changed = (flux, valid, ivar) if name == UNCHANGED else perturbed(name, flux, valid, ivar, z, config.seed)
        out[name] = _scores(data, kbs, ids, embed(model, *changed[:2], z), changed, z)
    return out


def _scores(data: Data, kbs: dict, ids: list[int], embedded: np.ndarray, changed, z: np.ndarray) -> dict:
    """The scores of spectra ``ids`` whose (flux, valid, ivar) are ``changed``, their embeddings ``embedded``
    and redshifts ``z``."""
    flux, valid, ivar = changed
    everyone = list(range(len(ids)))

    def queries(kb: KnowledgeBase, rows: list[int]) -> np.ndarray:  # as served: its representation
        policy = VotePolicy.from_dict(kb.policy)
        return data.represented(policy, embedded[rows], flux[rows], valid[rows], ivar[rows], [ids[row] for row in rows])

    five = task_labels(labelling="bpt5", reserve=TEST)
    labelled = [row for row, i in enumerate(ids) if i in five]
    voted_five = [v.label for v in load_retriever(kbs["bpt5"]).votes(queries(kbs["bpt5"], labelled))]
    scores = {
        "classification_5class": metrics.classification_scores(
            [five[ids[row]].label for row in labelled], voted_five, FIVE_CLASSES
        )["macro_f1"]
    }
    scans = None
    for name in SEARCH_TASKS:
        kb = kbs[name]
        task = kb.task
        labels = task_labels(labelling=task.labelling, reserve=TEST)
        truth = np.array([i in labels and labels[i].label in task.target_labels for i in ids])
        vectors = queries(kb, everyone)
        voted = np.array([v.label in task.target_labels for v in load_retriever(kb).votes(vectors)])
        if BackgroundRule.from_dict(kb.background_rule).threshold is not None and scans is None:
            scans = [background_scan(WAVE, flux[row], ivar[row], float(z[row])) for row in everyone]
        answered = served_answer(kb, voted, served_rules(data, kb, ids, vectors, scans))
        scores[f"{name}_f1"] = metrics.binary_scores(truth, answered)["f1"]
        scores[f"{name}_vote_f1"] = metrics.binary_scores(truth, voted)["f1"]
    return scores
