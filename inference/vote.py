"""The weighted vote of a query's nearest neighbours (paper section 2.2.3 and appendix A.2).

Each neighbour's L2 distance x becomes a score by one of four functions, exp(-x) (the paper's choice),
1/(x + 1e-5), 1/(x^2 + 1e-5) or -x; the scores, divided by a temperature (1 by default, as in the paper;
below 1 the nearest neighbour weighs more), are softmax-normalised into weights summing to one, and
each label's share is the sum of its neighbours' weights. The label with the largest share wins; a tie in
share goes to the label of the nearest neighbour among the tied ones, so the answer is deterministic.
Missing neighbours (id -1, when the knowledge base holds fewer than K) take no part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPSILON = 1e-5
WEIGHT_FUNCTIONS = {
    "exp": lambda x: np.exp(-x),
    "inverse": lambda x: 1.0 / (x + EPSILON),
    "inverse_square": lambda x: 1.0 / (x**2 + EPSILON),
    "linear": lambda x: -x,
}


@dataclass(frozen=True)
class Vote:
    label: str
    share: float  # the winning label's share of the weight, 0-1
    shares: dict[str, float]  # every label's share
    weights: np.ndarray  # (k,) each present neighbour's weight, nearest first


def weights(distances: np.ndarray, function: str = "exp", temperature: float = 1.0) -> np.ndarray:
    """(k,) L2 distances of present neighbours -> (k,) softmax-normalised weights."""
    if function not in WEIGHT_FUNCTIONS:
        raise ValueError(f"unknown weight function {function!r}; choose one of {', '.join(WEIGHT_FUNCTIONS)}")
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    scores = WEIGHT_FUNCTIONS[function](np.asarray(distances, dtype=np.float64)) / temperature
    scores = scores - scores.max()  # softmax, stable
    exp = np.exp(scores)
    return exp / exp.sum()


def vote(labels: list[str], distances: np.ndarray, function: str = "exp", temperature: float = 1.0) -> Vote:
    """Vote among neighbours ordered nearest first: labels (k,) and distances (k,) (inf for missing)."""
    distances = np.asarray(distances, dtype=np.float64)
    present = np.isfinite(distances)
    if not present.any():
        raise ValueError("no neighbour to vote: the knowledge base is empty")
    labels = [label for label, p in zip(labels, present) if p]
    w = weights(distances[present], function, temperature)
    shares: dict[str, float] = {}
    for label, weight in zip(labels, w):
        shares[label] = shares.get(label, 0.0) + float(weight)
    best = max(shares.values())
    tied = {label for label, share in shares.items() if np.isclose(share, best, rtol=0, atol=1e-12)}
    winner = next(label for label in labels if label in tied)  # nearest first
    return Vote(label=winner, share=shares[winner], shares=shares, weights=w)
