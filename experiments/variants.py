"""The variants tried for the representation and the vote (issue 13, item 5), each scored on the
validation reserve, never on the test reserve; ``results["variants"]`` and report.md's table.

- Pooling: the checkpoint's final tokens pooled as means over segments of the grid or over rest-frame
  line windows, with or without each channel's peak over all tokens (``GalSpecEncoder.pool``). Each
  variant's K-vote over the entries of the knowledge bases evaluated labels the validation spectra:
  five-class macro-F1 and LINER F1, and each search's F1 on the validation spectra any search labels.
  ``kept`` marks the pooling of the checkpoint evaluated.
- Vote temperature: Table A1's fit (``searches.fitted_temperature``), the validation F1 at the fitted
  temperature against the paper's 1. Not kept: the site votes at 1 until a validation reserve large
  enough to choose on says otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import torch

from experiments.data import Data, EvaluationConfig, config_policy, kb_entries
from experiments.searches import SEARCH_TASKS, mixed_test_set
from inference import metrics
from inference.retriever import knn_vote
from kb.bpt import FIVE_CLASSES
from kb.models import KnowledgeBase
from kb.reserves import VALIDATION
from kb.selectors import task_labels
from training.checkpoint import load_checkpoint
from training.model import LINE_WINDOWS_REST, GalSpecEncoder

BATCH = 64


def variants(
    data: Data, kbs: dict[str, KnowledgeBase], run, weight_functions: dict, config: EvaluationConfig
) -> list[dict]:
    """One row per variant: ``variant``, ``kind``, ``width`` (pooling only), ``validation`` {figure: value},
    ``kept``."""
    rows = pooling_variants(data, kbs, run, config)
    for name, fit in weight_functions.get("fitted_temperature", {}).items():
        rows.append(
            {
                "variant": f"vote temperature {fit['temperature']:g} ({name} search)",
                "kind": "temperature",
                "validation": {
                    f"{name}_f1": fit["validation_f1"],
                    f"{name}_f1_at_temperature_1": fit["validation_f1_at_1"],
                },
                "kept": False,
            }
        )
    return rows


def pooling_variants(data: Data, kbs: dict[str, KnowledgeBase], run, config: EvaluationConfig) -> list[dict]:
    model = load_checkpoint(run.checkpoint_path, device="cpu")
    segments = model.config.pool_segments or 8  # the segment embedding's G until line windows replaced it
    windows = len(LINE_WINDOWS_REST)
    poolings = {  # name: (G, line windows, peaks)
        f"pooling: {segments} segments": (segments, False, False),
        f"pooling: {windows} line windows": (0, True, False),
        f"pooling: {segments} segments + {windows} line windows": (segments, True, False),
        f"pooling: {windows} line windows + peaks": (0, True, True),
        f"pooling: {segments} segments + peaks": (segments, False, True),
    }
    poolings = {
        name: {"pool_segments": g, "pool_lines": lines, "pool_peaks": peaks}
        for name, (g, lines, peaks) in poolings.items()
    }
    queries = mixed_test_set(VALIDATION)
    entries = {name: kb_entries(kbs[name]) for name in ("bpt5", *SEARCH_TASKS)}
    ids = sorted(set(queries).union(*({i for i, _ in pairs} for pairs in entries.values())))
    encoders = {name: encoder_pooled(model, change) for name, change in poolings.items()}
    pooled = pooled_embeddings(model, encoders, data, ids)
    position = {i: n for n, i in enumerate(ids)}
    rows = []
    for name, vectors in pooled.items():
        vote = partial(_vote, vectors, position, entries, config)
        rows.append(
            {
                "variant": name,
                "kind": "pooling",
                "width": int(vectors.shape[1]),
                "validation": _scores(vote, kbs, queries, config),
                "kept": all(getattr(model.config, key) == value for key, value in poolings[name].items()),
            }
        )
    return rows


def _vote(vectors: np.ndarray, position: dict, entries: dict, config, kb_name: str, query_ids: list[int]) -> list[str]:
    """The K-vote of the ``kb_name`` knowledge base's entries for ``query_ids``, both embedded in ``vectors``
    (the row of spectrum i at ``position[i]``)."""
    pairs = entries[kb_name]
    found = knn_vote(
        vectors[[position[i] for i, _ in pairs]],
        [label for _, label in pairs],
        vectors[[position[i] for i in query_ids]],
        policy=config_policy(config),
    )
    return [v.label for v in found]


def _scores(vote, kbs: dict[str, KnowledgeBase], queries: list[int], config: EvaluationConfig) -> dict:
    truth_of = task_labels(labelling="bpt5", reserve=VALIDATION)
    labelled = sorted(truth_of)
    truth = [truth_of[i].label for i in labelled]
    table = metrics.classification_report(
        truth, vote("bpt5", labelled), list(FIVE_CLASSES), n_resamples=config.n_resamples, seed=config.seed
    )
    scores = {
        "bpt5_macro_f1": table["macro_f1"],
        "bpt5_macro_f1_ci": table["macro_f1_ci"],
        "liner_f1": table["per_class"]["liner"]["f1"],
        "bpt5_validation_spectra": len(truth),
    }
    for name in SEARCH_TASKS:
        task = kbs[name].task
        labels = task_labels(labelling=task.labelling, reserve=VALIDATION)
        truth = np.array([i in labels and labels[i].label in task.target_labels for i in queries])
        predicted = np.array([label in task.target_labels for label in vote(name, queries)])
        report = metrics.search_report(truth, predicted, n_resamples=config.n_resamples, seed=config.seed)
        scores[f"{name}_f1"], scores[f"{name}_f1_ci"] = report["f1"], report["f1_ci"]
        scores[f"{name}_recall"] = report["recall"]
        scores[f"{name}_validation_targets"] = int(truth.sum())
    return scores


def encoder_pooled(model: GalSpecEncoder, change: dict) -> GalSpecEncoder:
    """The checkpoint's encoder with another pooling (the weights are the same; pooling has none)."""
    encoder = GalSpecEncoder(replace(model.config, **change))
    encoder.load_state_dict(model.state_dict())
    return encoder.eval()


@torch.no_grad()
def pooled_embeddings(model: GalSpecEncoder, encoders: dict[str, GalSpecEncoder], data: Data, ids: list[int]) -> dict:
    """Each encoder's embedding (len(ids), E) of the spectra ``ids``, from one pass of ``model``'s tokens."""
    rows, z = data.rows(ids), data.redshifts(ids)
    parts = {name: [] for name in encoders}
    model.eval()
    for start in range(0, len(ids), BATCH):
        chunk = slice(start, start + BATCH)
        flux = torch.from_numpy(np.asarray(data.flux[rows[chunk]], dtype=np.float32))
        valid = torch.from_numpy(np.asarray(data.valid[rows[chunk]], dtype=bool))
        tokens, observed = model.forward_tokens(flux, valid)
        for name, encoder in encoders.items():
            parts[name].append(encoder.pool(tokens, observed, torch.from_numpy(z[chunk])).numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
