"""Do the trust signals earn their place? On the test reserve: how many answers are flagged as not in
distribution, and how often flagged and unflagged answers are right.

Each answer is judged as the site judges it (``inference.trust.assess`` with the knowledge base's own
calibration, made on the validation reserve). A five-class answer is a claim about every spectrum and is
right when its vote is the catalog's label, so its "precision" is the share of answers right (accuracy);
a search answer is a claim only when it votes a target, and its precision is the share of those that are
targets. For a search every count is over the answers voting a target, and ``flagged_share_all`` gives
the share flagged among all its answers and ``flagged_share_targets`` among its true targets (rare kinds are
unusual by nature: a signal that flags most of them would hide what the search is for). If the signals
work, flagged answers are right less often.
"""

from __future__ import annotations

import numpy as np

from experiments.data import Data, EvaluationConfig
from experiments.searches import SEARCH_TASKS, mixed_test_set
from inference.services.search import load_retriever
from inference.trust import assess
from kb.models import KnowledgeBase
from kb.reserves import TEST
from kb.selectors import task_labels


def trust_figures(data: Data, kbs: dict[str, KnowledgeBase], config: EvaluationConfig) -> dict:
    """The five-class answers' figures at the top level, each search's under ``by_search``."""
    kb = kbs["bpt5"]
    truth_of = task_labels(labelling="bpt5", reserve=TEST)
    ids = sorted(truth_of)
    votes, flagged = _answers(data, kb, ids, config)
    right = np.array([v.label == truth_of[i].label for i, v in zip(ids, votes)])
    figures = {
        "answers": "five-class BPT votes on the test reserve; precision: the share matching the catalog (accuracy)"
    }
    figures.update(_split(flagged, right))
    mixed = mixed_test_set()
    figures["by_search"] = {}
    for name in SEARCH_TASKS:
        kb = kbs[name]
        labels = task_labels(labelling=kb.task.labelling, reserve=TEST)
        votes, flagged = _answers(data, kb, mixed, config)
        voted = np.array([v.label in kb.task.target_labels for v in votes])
        target = np.array([i in labels and labels[i].label in kb.task.target_labels for i in mixed])
        figures["by_search"][name] = {
            **_split(flagged[voted], target[voted]),
            "flagged_share_all": float(flagged.mean()) if len(flagged) else None,
            "flagged_share_targets": float(flagged[target].mean()) if target.any() else None,
        }
    return figures


def _answers(data: Data, kb: KnowledgeBase, ids: list[int], config: EvaluationConfig) -> tuple[list, np.ndarray]:
    """The K-votes for ``ids`` and whether each answer is flagged (in_distribution False)."""
    retriever = load_retriever(kb)
    found = retriever.neighbours(data.served(kb, ids))
    votes = retriever.vote_neighbours(found)
    flagged = np.array(
        [
            assess(
                kb.calibration,
                valid_fraction=data.spectra[i].valid_fraction,
                z=data.spectra[i].z,
                nearest_distance=float(found.distances[j, 0]) if found.ids[j, 0] >= 0 else None,
                reconstruction_chi2=float(data.reconstruction[data.spectra[i].store_row]),
            ).in_distribution
            is False
            for j, i in enumerate(ids)
        ],
        dtype=bool,
    )
    return votes, flagged


def _split(flagged: np.ndarray, right: np.ndarray) -> dict:
    def precision(chosen: np.ndarray) -> float | None:
        return float(right[chosen].mean()) if chosen.any() else None

    return {
        "n": int(len(flagged)),
        "n_flagged": int(flagged.sum()),
        "flagged_share": float(flagged.mean()) if len(flagged) else None,
        "precision_flagged": precision(flagged),
        "precision_unflagged": precision(~flagged),
    }
