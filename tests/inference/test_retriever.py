"""The one retrieval path: a vote policy stored with its index, a learned metric chosen on validation, and
no answer path that builds a vote of its own."""

import ast
from dataclasses import replace

import numpy as np
import pytest

from inference.metric import metric_fit
from inference.retriever import PAPER_POLICY, Retriever, VotePolicy, cross_validated_votes, policy_choose
from tests.conftest import REPO


def hidden_classes(n, seed, width=32):
    """Vectors whose class lies along one direction of little variance beside a few loud ones (continuum
    and noise): plain L2 mostly sees the loud ones."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    vectors = rng.normal(size=(n, width)) * np.r_[np.full(4, 6.0), np.full(width - 4, 0.3)]
    vectors[:, -1] += 0.9 * classes
    return vectors.astype(np.float32), [f"c{c}" for c in classes]


def test_a_saved_retriever_loads_with_its_policy_metric_and_labels_and_votes_the_same(tmp_path):
    vectors, labels = hidden_classes(300, seed=0)
    metric = metric_fit("lda", vectors, labels)
    policy = VotePolicy(k=5, weighting="linear", temperature=0.5, metric="lda")
    retriever = Retriever.fit(vectors, np.arange(1000, 1300), labels, policy=policy, metric=metric)
    retriever.save(tmp_path / "v1", {"knowledge_base": 7})
    loaded, sidecar = Retriever.load(tmp_path / "v1")
    queries, _ = hidden_classes(20, seed=1)
    assert loaded.policy == policy and sidecar["policy"] == policy.as_dict() and sidecar["knowledge_base"] == 7
    assert loaded.labels == retriever.labels
    for a, b in zip(loaded.votes(queries), retriever.votes(queries)):
        assert a.label == b.label and np.allclose(a.weights, b.weights)
    assert np.allclose(loaded.neighbours(queries).distances, retriever.neighbours(queries).distances, atol=1e-5)


def test_an_index_saved_before_policies_votes_as_the_paper_does(tmp_path):
    from inference.index import build, save

    vectors, labels = hidden_classes(50, seed=0)
    save(build(vectors, np.arange(50)), tmp_path / "old", {"knowledge_base": 1})
    with pytest.raises(ValueError, match="without its labels"):
        Retriever.load(tmp_path / "old")
    loaded, _ = Retriever.load(tmp_path / "old", dict(enumerate(labels)))
    assert loaded.policy == PAPER_POLICY == VotePolicy.from_dict({})


def test_the_learned_metric_finds_neighbours_of_the_same_kind_where_plain_l2_does_not():
    vectors, labels = hidden_classes(1500, seed=0)
    queries, truth = hidden_classes(400, seed=1)
    accuracy = {}
    for name in ("identity", "whiten", "lda"):
        metric = metric_fit(name, vectors, labels)
        retriever = Retriever.fit(vectors, np.arange(1500), labels, policy=VotePolicy(k=1, metric=name), metric=metric)
        accuracy[name] = np.mean([v.label == t for v, t in zip(retriever.votes(queries), truth)])
    assert accuracy["identity"] < 0.55  # three classes: little better than chance
    assert accuracy["lda"] > 0.8 and accuracy["whiten"] > accuracy["identity"] + 0.15


def test_the_policy_is_chosen_on_validation_and_its_weights_differ_where_distances_do():
    vectors, labels = hidden_classes(1000, seed=0)
    queries, truth = hidden_classes(300, seed=2)
    choice = policy_choose(vectors, np.arange(1000), labels, labels, queries, truth, metrics=("identity", "lda"))
    assert choice.policy.metric == "lda" and choice.metric.name == "lda"
    identity = max(c["f1"] for c in choice.candidates if c["metric"] == "identity")
    assert choice.score > identity + 0.2
    assert {c["metric"] for c in choice.candidates} == {"identity", "lda"}
    retriever = Retriever.fit(vectors, np.arange(1000), labels, policy=choice.policy, metric=choice.metric)
    if choice.policy.k > 1:
        ratio = [v.weights.max() / v.weights.min() for v in retriever.votes(queries)]
        assert np.median(ratio) > 1.2  # at the paper's exp(-d), temperature 1: 0.335 / 0.332


def test_a_search_task_is_chosen_for_its_targets():
    vectors, labels = hidden_classes(1000, seed=0)
    queries, names = hidden_classes(300, seed=3)
    choice = policy_choose(
        vectors, np.arange(1000), labels, labels, queries, [n == "c2" for n in names], targets=("c2",)
    )
    assert 0 < choice.score <= 1 and all("brier" in c for c in choice.candidates)


def test_asking_another_k_or_weighting_keeps_the_metric_and_resets_a_temperature_chosen_for_another_weighting():
    policy = VotePolicy(k=5, weighting="exp", temperature=0.01, metric="lda")
    assert policy.asked() == policy
    assert policy.asked(k=7) == replace(policy, k=7)
    assert policy.asked(weighting="inverse") == VotePolicy(k=5, weighting="inverse", temperature=1.0, metric="lda")
    with pytest.raises(ValueError, match="k must be 1 to 15"):
        policy.asked(k=16)
    with pytest.raises(ValueError, match="unknown metric"):
        VotePolicy(metric="cosine")


def test_cross_validation_fits_the_metric_on_each_fold_never_on_the_entries_it_votes(monkeypatch):
    import inference.retriever as retriever_module

    vectors, labels = hidden_classes(120, seed=0)
    fitted_on = []
    real_fit = retriever_module.metric_fit

    def spy(name, fit_vectors, classes, **kwargs):
        fitted_on.append(len(fit_vectors))
        return real_fit(name, fit_vectors, classes, **kwargs)

    monkeypatch.setattr(retriever_module, "metric_fit", spy)
    votes = cross_validated_votes(vectors, labels, policy=VotePolicy(k=3, metric="lda"), folds=4)
    assert len(votes) == 120 and fitted_on == [90, 90, 90, 90]


def test_no_answer_path_builds_a_vote_of_its_own():
    """Only the retriever imports the vote: pages, API, jobs, surveys, knowledge-base scoring and evaluate
    all vote through it, so an answer and the figures quoted beside it are one computation."""
    importers = []
    for package in ("galspec_site", "kb", "training", "inference", "experiments", "bench"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])]
                )
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "inference.vote" in names:
                    importers.append(str(path.relative_to(REPO)))
    assert importers == ["inference/retriever.py"]
