"""The one retrieval path: a knowledge base's index, labels, metric and vote policy, answering neighbours and votes.

Every answer GalSpec gives (the search page and API, the command line, batch jobs, survey searches, the
scores a knowledge base is built with, and ``evaluate``) comes from a ``Retriever``, so that an answer and
the precision quoted beside it are the same computation. In scikit-learn's manner: ``Retriever.fit`` on
labelled vectors, or ``Retriever.load`` a saved one; then ``neighbours`` and ``votes``.

A ``VotePolicy`` is frozen and stored with each knowledge-base version: how many neighbours vote (K), how
their L2 distances become weights (``inference.vote``) and at what temperature, and which learned metric
(``inference.metric``) maps embeddings before the index and the query. ``policy_choose`` picks them on the
validation reserve: the weighting and temperature that make the vote's shares best calibrated (lowest
Brier score) for each metric and K, then the metric and K of best F1 (macro-F1 for a classification). Pure numpy/faiss;
never imports Django.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from inference import index as vector_index
from inference.index import IndexSpec, Neighbours
from inference.metric import IDENTITY, METRICS, LinearMetric, metric_fit
from inference.representation import BOTH, ENCODER, ENCODER_LINES, LINES, REPRESENTATIONS, RESTFRAME, WINDOW
from inference.vote import WEIGHT_FUNCTIONS, Vote, vote
from kb.store import folder_write

NO_ID = -2  # a query's own id where it is not in the index (ids are database keys; -1 is a missing neighbour)
WEIGHTINGS = tuple(sorted(WEIGHT_FUNCTIONS))
MAX_K = 15  # the most neighbours a person may ask to vote (pages, API, jobs, survey searches)
CHOICE_KS = (1, 3, 5, 7, 11, 15)  # the K the validation reserve chooses among
CHOICE_WEIGHTINGS = ("exp", "linear")  # the paper's exp(-d), and softmax(-d / T), which holds at any scale of d
TEMPERATURE_STEPS = (0.25, 0.5, 1.0, 2.0, 4.0)  # multiples of the typical spread of neighbours' scores
POLICY_FILE, METRIC_FILE, LABELS_FILE = "retriever.json", "metric.npz", "labels.npz"
WEIRD_K = 5  # weirdness: the distance to the 5th nearest ordinary entry, steadier than the nearest's
WEIRD_REACH = 8  # ... found among the 8 x 5 nearest entries (targets are a few percent of a knowledge base)


@dataclass(frozen=True)
class VotePolicy:
    """How a knowledge base votes: ``k`` neighbours, weights ``weighting`` of their distances divided by
    ``temperature`` and softmax-normalised (``inference.vote``), in the space of the learned ``metric``."""

    k: int = 3
    weighting: str = "exp"
    temperature: float = 1.0
    metric: str = "identity"
    representation: str = ENCODER  # what the vectors are (``inference.representation``)
    window_scale: float = 1.0  # in a pair (encoder+window, encoder+lines): the part's weight beside the embedding

    def __post_init__(self):
        if not 1 <= self.k <= MAX_K:
            raise ValueError(f"k must be 1 to {MAX_K} (the neighbours that vote), got {self.k}")
        if self.weighting not in WEIGHT_FUNCTIONS:
            raise ValueError(f"unknown weight function {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if not self.temperature > 0:
            raise ValueError(f"the temperature must be positive, got {self.temperature}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"unknown representation {self.representation!r}; choose one of {', '.join(REPRESENTATIONS)}"
            )

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> VotePolicy:
        """A stored policy; a version built before policies were stored voted as the paper does (the defaults)."""
        return cls(**{key: value for key, value in (data or {}).items() if key in cls.__dataclass_fields__})

    def asked(self, *, k: int | None = None, weighting: str | None = None) -> VotePolicy:
        """The policy a person asks for: this one, with their ``k`` and ``weighting`` where given. The
        temperature was chosen for this weighting; another weighting votes at temperature 1, as the paper does."""
        policy = replace(self, k=self.k if k is None else k)
        if weighting is not None and weighting != self.weighting:
            policy = replace(policy, weighting=weighting, temperature=1.0)
        return policy

    def describe(self) -> str:
        space = {
            ENCODER: "the embedding",
            WINDOW: "the line windows' flux",
            BOTH: "the embedding and windows' flux",
            RESTFRAME: "the rest-frame spectrum over its continuum",
            LINES: "the emission lines' ratios and S/N measured from the pixels",
            ENCODER_LINES: "the embedding and the measured lines",
        }
        metric = "L2" if self.metric == "identity" else f"L2 after the learned {self.metric} map"
        return (
            f"K = {self.k}, {self.weighting} weights at temperature {self.temperature:.3g}, "
            f"{metric} in {space[self.representation]}"
        )


PAPER_POLICY = VotePolicy()  # K = 3, exp(-d), softmax at temperature 1, plain L2 (paper section 2.2.3)


class Retriever:
    """A knowledge base ready to answer: ``index`` over entries mapped by ``metric``, each entry's label
    (``labels``: database key -> label), and the ``policy`` it votes by."""

    def __init__(self, index, labels: Mapping[int, str], policy: VotePolicy = PAPER_POLICY, metric=IDENTITY):
        if policy.metric != metric.name:
            raise ValueError(f"the policy's metric is {policy.metric} but the retriever's is {metric.name}")
        self.index, self.labels, self.policy, self.metric = index, labels, policy, metric

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        ids: np.ndarray,
        labels: list[str],
        *,
        policy: VotePolicy = PAPER_POLICY,
        metric: LinearMetric = IDENTITY,
        spec: IndexSpec = IndexSpec(),
    ) -> Retriever:
        """Index ``vectors`` (n, D) of entries keyed ``ids`` (n,) and labelled ``labels`` (n,)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(vectors) == len(ids) == len(labels):
            raise ValueError(f"{len(vectors)} vectors, {len(ids)} ids and {len(labels)} labels: one each")
        index = vector_index.build(metric.transform(vectors), ids, spec)
        return cls(index, dict(zip(ids.tolist(), labels)), policy, metric)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def neighbours(self, queries: np.ndarray, k: int | None = None, *, own_ids=None) -> Neighbours:
        """The ``k`` (default: the policy's) nearest entries of each query (n, D embeddings), nearest first,
        L2 in the metric's space. ``own_ids`` (n,) are the queries' own keys in the index (``NO_ID`` where a
        query is not in it): a query is never its own neighbour."""
        k = self.policy.k if k is None else k
        mapped = self.metric.transform(np.atleast_2d(queries))
        if own_ids is None:
            return vector_index.search(self.index, mapped, k)
        own_ids = np.asarray(own_ids, dtype=np.int64)
        found = vector_index.search(self.index, mapped, k + 1)
        keep = found.ids != own_ids[:, None]
        keep[keep.sum(axis=1) > k, k] = False  # not found: drop the farthest instead
        n = len(own_ids)
        return Neighbours(ids=found.ids[keep].reshape(n, k), distances=found.distances[keep].reshape(n, k))

    def votes(self, queries: np.ndarray, *, own_ids=None, policy: VotePolicy | None = None) -> list[Vote]:
        """One vote per query (n, D) under ``policy`` (default: the retriever's own)."""
        policy = policy or self.policy
        return self.vote_neighbours(self.neighbours(queries, policy.k, own_ids=own_ids), policy)

    def vote_neighbours(self, neighbours: Neighbours, policy: VotePolicy | None = None) -> list[Vote]:
        """The votes of neighbours already found (at least the policy's K of them, nearest first)."""
        policy = policy or self.policy
        if policy.metric != self.metric.name:
            raise ValueError(f"a {policy.metric} policy cannot vote on neighbours found under {self.metric.name}")
        ids, distances = neighbours.ids[:, : policy.k], neighbours.distances[:, : policy.k]
        unknown = {i for i in ids[ids >= 0].tolist() if i not in self.labels}
        if unknown:
            raise ValueError(f"the index holds ids with no label: {sorted(unknown)[:5]}; rebuild the index")
        return [
            vote([self.labels.get(int(i), "") for i in row_ids], row_distances, policy.weighting, policy.temperature)
            for row_ids, row_distances in zip(ids, distances)
        ]

    def weirdness(self, queries: np.ndarray, ordinary: frozenset[str], k: int = WEIRD_K, *, own_ids=None) -> np.ndarray:
        """(n,) how unlike the ordinary each query (n, D) is: the L2 distance, in the metric's space, to its
        ``k``-th nearest entry labelled one of ``ordinary`` (after Baron & Poznanski 2017, who ranked SDSS
        galaxies by their distance to the rest); inf where fewer than ``k`` ordinary entries are near enough to
        be found among the WEIRD_REACH x k nearest. A query is never its own neighbour (``own_ids``)."""
        found = self.neighbours(queries, min(WEIRD_REACH * k, self.size), own_ids=own_ids)
        is_ordinary = np.vectorize(lambda i: self.labels.get(int(i)) in ordinary, otypes=[bool])(found.ids)
        is_ordinary &= found.ids >= 0
        rank = np.cumsum(is_ordinary, axis=1)  # (n, reach): ordinary entries up to each neighbour
        hit = is_ordinary & (rank == k)
        return np.where(hit.any(axis=1), np.where(hit, found.distances, 0.0).sum(axis=1), np.inf)

    def save(self, folder: str | Path, sidecar: dict, extra: Mapping[str, np.ndarray] | None = None) -> None:
        """Write the index, the policy, the metric and the labels into ``folder``, with ``extra`` arrays by file
        name (``NAME.npy``), atomically: a reader finds the old folder or the whole new one
        (``kb.store.folder_write``)."""
        ids = np.fromiter(self.labels.keys(), dtype=np.int64, count=len(self.labels))
        names, codes = np.unique(np.array(list(self.labels.values()), dtype=str), return_inverse=True)

        def write(tmp: Path) -> None:
            vector_index.write(self.index, tmp, {**sidecar, "policy": self.policy.as_dict()})
            (tmp / POLICY_FILE).write_text(json.dumps(self.policy.as_dict(), indent=2))
            self.metric.save(tmp / METRIC_FILE)
            np.savez(tmp / LABELS_FILE, ids=ids, codes=codes.astype(np.int32), names=names)
            for name, array in (extra or {}).items():
                np.save(tmp / name, array)

        folder_write(folder, write)

    @classmethod
    def load(cls, folder: str | Path, labels: Mapping[int, str] | None = None) -> tuple[Retriever, dict]:
        """(retriever, sidecar) from a folder ``save`` wrote. A folder written before retrievers were saved
        holds only the index: it votes by the paper's policy, with ``labels`` given by the caller."""
        folder = Path(folder)
        index, sidecar = vector_index.load(folder)
        if (folder / POLICY_FILE).exists():
            policy = VotePolicy.from_dict(json.loads((folder / POLICY_FILE).read_text()))
            with np.load(folder / LABELS_FILE) as saved:
                names = saved["names"].tolist()
                labels = dict(zip(saved["ids"].tolist(), (names[c] for c in saved["codes"].tolist())))
            return cls(index, labels, policy, LinearMetric.load(folder / METRIC_FILE, policy.metric)), sidecar
        if labels is None:
            raise ValueError(f"{folder} holds an index without its labels: give them")
        return cls(index, labels, PAPER_POLICY), sidecar


def knn_vote(
    vectors: np.ndarray,
    labels: list[str],
    queries: np.ndarray,
    *,
    policy: VotePolicy = PAPER_POLICY,
    metric: LinearMetric = IDENTITY,
    spec: IndexSpec = IndexSpec(),
) -> list[Vote]:
    """Index ``vectors`` (n, D) labelled ``labels`` (n,), then vote for each of ``queries`` (m, D)."""
    policy = replace(policy, k=min(policy.k, len(vectors)))
    retriever = Retriever.fit(vectors, np.arange(len(vectors)), labels, policy=policy, metric=metric, spec=spec)
    return retriever.votes(queries)


def cross_validated_votes(
    vectors: np.ndarray,
    labels: list[str],
    *,
    policy: VotePolicy = PAPER_POLICY,
    folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
    classes: list[str] | None = None,
) -> list[Vote]:
    """Each of ``vectors`` (n, D) voted by the others: they are split into ``folds`` seeded folds, and each
    fold's entries are voted by a knowledge base of the other folds. How well a knowledge base of known
    examples finds them again, where no catalogued test set exists. ``groups`` (n,) keeps the entries of
    one group (repeat observations of one galaxy) in one fold, so that none is voted by its own twin. The
    policy's learned metric is fitted afresh on each fold's knowledge base, from ``classes`` (n,) (default
    ``labels``), so no entry is voted in a space fitted on its own label."""
    n = len(vectors)
    classes = labels if classes is None else classes
    names, group_of = np.unique(np.arange(n) if groups is None else np.asarray(groups), return_inverse=True)
    if len(names) < 2 or folds < 2:
        raise ValueError(f"cross-validation needs at least 2 groups of entries and 2 folds, got {len(names)}, {folds}")
    fold_of_group = np.empty(len(names), dtype=np.int64)
    fold_of_group[np.random.default_rng(seed).permutation(len(names))] = np.arange(len(names)) % min(folds, len(names))
    fold_of = fold_of_group[group_of.reshape(-1)]
    votes: list[Vote | None] = [None] * n
    for fold in np.unique(fold_of):
        held, rest = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        metric = metric_fit(policy.metric, vectors[rest], [classes[i] for i in rest], seed=seed)
        found = knn_vote(vectors[rest], [labels[i] for i in rest], vectors[held], policy=policy, metric=metric)
        for i, held_vote in zip(held, found):
            votes[i] = held_vote
    return votes


@dataclass(frozen=True)
class Choice:
    """What ``policy_choose`` chose, and the validation scores of every candidate it weighed."""

    policy: VotePolicy
    metric: LinearMetric
    score: float | None  # validation F1 (macro-F1 for a classification) of the chosen policy; None if unchosen
    candidates: list[dict]  # one per metric and K: its best temperature, F1 and Brier score


def policy_choose(
    vectors: np.ndarray,
    ids: np.ndarray,
    labels: list[str],
    classes: list[str],
    queries: np.ndarray,
    truth: list,
    *,
    targets: tuple[str, ...] = (),
    metrics: tuple[str, ...] = METRICS,
    ks: tuple[int, ...] = CHOICE_KS,
    weightings: tuple[str, ...] = CHOICE_WEIGHTINGS,
    base: VotePolicy = PAPER_POLICY,
    seed: int = 0,
) -> Choice:
    """The vote policy and metric for entries ``vectors`` (n, D) keyed ``ids``, labelled ``labels`` (the
    task's labels, which vote) and ``classes`` (finer ones, which a metric learns from: outlier kinds, the
    BPT class of "other"), chosen on validation ``queries`` (m, D) whose ``truth`` (m,) is a label, or for a
    search task (``targets`` given) whether it is a target; the rest of each policy (its representation) is
    ``base``'s. A metric the entries cannot support is skipped.
    Candidates are weighed in order (identity first, fewer neighbours first), and a later one must score
    higher to win, so the simplest of equals is kept."""
    if not len(queries):
        raise ValueError("no validation spectra to choose a vote policy on")
    truth = np.asarray(truth)
    candidates, best = [], None
    for name in metrics:
        try:
            metric = metric_fit(name, vectors, classes, seed=seed)
        except ValueError:
            continue
        retriever = Retriever.fit(vectors, ids, labels, policy=replace(base, metric=name), metric=metric)
        found = retriever.neighbours(queries, min(max(ks), retriever.size))
        for k in (k for k in ks if k <= retriever.size):
            scored = []
            for weighting in weightings:
                for temperature in _temperatures(found, k, weighting):
                    policy = replace(base, k=k, weighting=weighting, temperature=temperature, metric=name)
                    votes = retriever.vote_neighbours(found, policy)
                    scored.append((_brier(votes, truth, targets), _f1(votes, truth, targets), policy))
            brier, f1, policy = min(scored, key=lambda s: s[0])
            candidates.append({**policy.as_dict(), "f1": f1, "brier": brier})
            if best is None or f1 > best.score:
                best = Choice(policy=policy, metric=metric, score=f1, candidates=candidates)
    if best is None:
        raise ValueError("no metric could be fitted on these entries")
    return replace(best, candidates=candidates)


def _temperatures(found: Neighbours, k: int, weighting: str) -> list[float]:
    """The temperatures weighed: multiples of the median spread between the nearest and the k-th neighbour's
    score, the scale on which weights follow distances. A far larger one (the paper's 1 at exp(-d) with d near
    0.3) makes every weight 1/k whatever the distances, so the weights an answer shows would mean nothing."""
    distances = found.distances[:, :k]
    scores = WEIGHT_FUNCTIONS[weighting](distances.astype(np.float64))
    present = np.isfinite(distances).all(axis=1)
    spread = float(np.median(scores[present, 0] - scores[present, -1])) if present.any() and k > 1 else 0.0
    if not spread > 0:
        return [1.0]  # one neighbour, or all at one distance: the temperature changes nothing
    return [spread * step for step in TEMPERATURE_STEPS]


def _f1(votes: list[Vote], truth: np.ndarray, targets: tuple[str, ...]) -> float:
    predicted = np.array([v.label for v in votes])
    if targets:
        return float(f1_score(truth.astype(bool), np.isin(predicted, targets), zero_division=0))
    return float(f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0))


def _brier(votes: list[Vote], truth: np.ndarray, targets: tuple[str, ...]) -> float:
    """Mean squared error of the vote's shares as probabilities: of being a target, for a search; summed
    over labels, for a classification."""
    if targets:
        p = np.array([sum(v.shares.get(t, 0.0) for t in targets) for v in votes])
        return float(np.mean((p - truth.astype(float)) ** 2))
    labels = sorted(set(truth.tolist()).union(*(v.shares for v in votes)))
    p = np.array([[v.shares.get(label, 0.0) for label in labels] for v in votes])
    onehot = (np.array(labels)[None, :] == truth[:, None]).astype(float)
    return float(np.mean(((p - onehot) ** 2).sum(axis=1)))
