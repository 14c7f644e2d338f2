"""Retrieval-augmented classification in bulk: build an index over labelled vectors, vote for each query.

The same path serves the knowledge base (encoder embeddings) and the baselines that vote on other
vectors (PCA components, raw normalised flux), so that every K-vote in an experiment is the same code.
Pure numpy/faiss; never imports Django.
"""

from __future__ import annotations

import numpy as np

from inference.index import IndexSpec, Neighbours, build, search
from inference.vote import Vote, vote

NO_ID = -2  # a query's own id where it is not in the index (ids are database keys; -1 is a missing neighbour)


def vote_all(
    neighbours: Neighbours,
    label_of: dict[int, str],
    *,
    k: int | None = None,
    weight_function: str = "exp",
    temperature: float = 1.0,
) -> list[Vote]:
    """One vote per query from its neighbours (ids are keys of ``label_of``; -1 is a missing neighbour);
    the first ``k`` if given. An id with no label means the index and the labels disagree: an error."""
    ids, distances = neighbours.ids, neighbours.distances
    if k is not None:
        ids, distances = ids[:, :k], distances[:, :k]
    unknown = {i for i in ids[ids >= 0].tolist() if i not in label_of}  # per id: label_of may hold millions
    if unknown:
        raise ValueError(f"the index holds ids with no label: {sorted(unknown)[:5]}; rebuild the index")
    return [
        vote([label_of.get(int(i), "") for i in row_ids], row_distances, weight_function, temperature)
        for row_ids, row_distances in zip(ids, distances)
    ]


def neighbours_excluding(index, queries: np.ndarray, k: int, *, own_ids) -> Neighbours:
    """The ``k`` nearest neighbours of each query (n, D) other than the query itself: ``own_ids`` (n,)
    are the queries' own ids in the index, ``NO_ID`` where a query is not in it. Searches k + 1 and
    drops the query's own id, or the farthest where the query was not found."""
    own_ids = np.asarray(own_ids, dtype=np.int64)
    found = search(index, queries, k + 1)
    keep = found.ids != own_ids[:, None]
    keep[keep.sum(axis=1) > k, k] = False
    return Neighbours(
        ids=found.ids[keep].reshape(len(own_ids), k), distances=found.distances[keep].reshape(len(own_ids), k)
    )


def knn_vote(
    vectors: np.ndarray,
    labels: list[str],
    queries: np.ndarray,
    *,
    k: int = 3,
    weight_function: str = "exp",
    spec: IndexSpec = IndexSpec(),
) -> list[Vote]:
    """Index ``vectors`` (n, D) labelled ``labels`` (n,), then vote for each of ``queries`` (m, D)."""
    if len(vectors) != len(labels):
        raise ValueError(f"{len(vectors)} vectors but {len(labels)} labels")
    ids = np.arange(len(vectors), dtype=np.int64)
    found = search(build(vectors, ids, spec), queries, k)
    return vote_all(found, dict(zip(ids.tolist(), labels)), weight_function=weight_function)


def cross_validated_votes(
    vectors: np.ndarray,
    labels: list[str],
    *,
    k: int = 3,
    folds: int = 5,
    seed: int = 0,
    weight_function: str = "exp",
    groups: np.ndarray | None = None,
) -> list[Vote]:
    """Each of ``vectors`` (n, D) voted by the others: they are split into ``folds`` seeded folds, and each
    fold's entries are voted by a knowledge base of the other folds. How well a knowledge base of known
    examples finds them again, where no catalogued test set exists. ``groups`` (n,) keeps the entries of
    one group (repeat observations of one galaxy) in one fold, so that none is voted by its own twin."""
    n = len(vectors)
    names, group_of = np.unique(np.arange(n) if groups is None else np.asarray(groups), return_inverse=True)
    if len(names) < 2 or folds < 2:
        raise ValueError(f"cross-validation needs at least 2 groups of entries and 2 folds, got {len(names)}, {folds}")
    fold_of_group = np.empty(len(names), dtype=np.int64)
    fold_of_group[np.random.default_rng(seed).permutation(len(names))] = np.arange(len(names)) % min(folds, len(names))
    fold_of = fold_of_group[group_of.reshape(-1)]
    votes: list[Vote | None] = [None] * n
    for fold in np.unique(fold_of):
        held, rest = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        found = knn_vote(
            vectors[rest],
            [labels[i] for i in rest],
            vectors[held],
            k=min(k, len(rest)),
            weight_function=weight_function,
        )
        for i, held_vote in zip(held, found):
            votes[i] = held_vote
    return votes
