"""The robustness table: the same searches with the test spectra perturbed as real data differs from any
mock (``experiments.perturb``), each perturbed set embedded by the checkpoint evaluated and voted in the
same knowledge bases, whose entries stay as they are. ``results["robustness"]`` and report.md's table."""

from __future__ import annotations

import numpy as np

from experiments.data import Data, EvaluationConfig
from experiments.perturb import PERTURBATIONS, perturbed
from experiments.searches import SEARCH_TASKS, mixed_test_set
from inference import metrics
from inference.embed import embed
from inference.retriever import VotePolicy
from inference.services.search import load_retriever
from kb.bpt import FIVE_CLASSES
from kb.models import KnowledgeBase
from kb.reserves import TEST
from kb.selectors import spectrum_store, task_labels
from training.checkpoint import load_checkpoint

UNCHANGED = "unchanged"


def robustness(data: Data, kbs: dict[str, KnowledgeBase], run, config: EvaluationConfig, log) -> dict:
    """{perturbation: {"classification_5class": macro-F1, "<task>_f1": F1 per search}} on the mixed test
    set, "unchanged" first (the test spectra as they are, embedded the same way)."""
    ids = mixed_test_set()
    rows = data.rows(ids)
    flux, valid, z = np.asarray(data.flux[rows]), np.asarray(data.valid[rows]), data.redshifts(ids)
    ivar = np.asarray(spectrum_store().read_ivar()[rows])
    model = load_checkpoint(run.checkpoint_path, device="cpu")
    out = {}
    for name in (UNCHANGED, *PERTURBATIONS):
        log(f"  {name}")
        changed = (flux, valid) if name == UNCHANGED else perturbed(name, flux, valid, ivar, z, config.seed)
        out[name] = _scores(data, kbs, ids, embed(model, *changed, z), changed, config)
    return out


def _scores(data: Data, kbs: dict, ids: list[int], embedded: np.ndarray, changed, config: EvaluationConfig) -> dict:
    """The scores of spectra ``ids`` whose (flux, valid) are ``changed`` and their embeddings ``embedded``."""
    flux, valid = changed

    def vote(kb: KnowledgeBase, rows: list[int]) -> list[str]:  # as served: its representation, policy and metric
        policy = VotePolicy.from_dict(kb.policy)
        queries = data.represented(policy, embedded[rows], flux[rows], valid[rows], [ids[row] for row in rows])
        return [v.label for v in load_retriever(kb).votes(queries)]

    five = task_labels(labelling="bpt5", reserve=TEST)
    labelled = [row for row, i in enumerate(ids) if i in five]
    scores = {
        "classification_5class": metrics.classification_scores(
            [five[ids[row]].label for row in labelled], vote(kbs["bpt5"], labelled), FIVE_CLASSES
        )["macro_f1"]
    }
    for name in SEARCH_TASKS:
        task = kbs[name].task
        labels = task_labels(labelling=task.labelling, reserve=TEST)
        truth = np.array([i in labels and labels[i].label in task.target_labels for i in ids])
        predicted = np.array([label in task.target_labels for label in vote(kbs[name], list(range(len(ids))))])
        scores[f"{name}_f1"] = metrics.binary_scores(truth, predicted)["f1"]
    return scores
