import numpy as np
import pytest

from inference.index import IndexSpec, Reranked, build, index_ids, kind_for, load, recall_at_k, save, search, tune
from inference.retriever import Retriever, VotePolicy, cross_validated_votes
from inference.vote import vote, weights


def vectors(n=500, width=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)


def test_a_self_search_finds_itself_by_database_key():
    data = vectors()
    ids = np.arange(1000, 1500, dtype=np.int64)  # database keys, not positions
    found = search(build(data, ids), data[[3, 77]], k=3)
    assert list(found.ids[:, 0]) == [1003, 1077]
    assert np.allclose(found.distances[:, 0], 0, atol=1e-3)
    assert np.all(np.diff(found.distances, axis=1) >= 0)


def test_distances_are_euclidean_not_squared():
    index = build(np.array([[0, 0], [3, 4]], np.float32), np.array([1, 2]))
    assert search(index, np.zeros((1, 2)), k=2).distances[0, 1] == pytest.approx(5.0)


def test_fewer_vectors_than_k_are_padded_with_missing_neighbours():
    index = build(vectors(2), np.array([5, 6]))
    found = search(index, vectors(1, seed=1), k=3)
    assert found.ids[0, 2] == -1 and np.isinf(found.distances[0, 2])


def test_ties_in_distance_are_broken_by_id():
    same = np.ones((3, 4), np.float32)
    found = search(build(same, np.array([30, 10, 20])), np.ones((1, 4)), k=3)
    assert list(found.ids[0]) == [10, 20, 30]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_report_their_recall_against_exact(kind):
    data, queries = vectors(2000), vectors(50, seed=2)
    ids = np.arange(2000)
    exact = search(build(data, ids), queries, k=3)
    approximate = search(build(data, ids, IndexSpec(kind=kind)), queries, k=3)
    assert 0.5 < recall_at_k(exact, approximate) <= 1.0
    assert recall_at_k(exact, exact) == 1.0


def test_saved_index_answers_the_same_and_keeps_its_sidecar(tmp_path):
    data = vectors()
    index = build(data, np.arange(500))
    save(index, tmp_path / "kb-1", {"checkpoint": "run-1", "kb_version": 1})
    loaded, sidecar = load(tmp_path / "kb-1")
    assert sidecar["metric"] == "L2" and sidecar["kb_version"] == 1 and sidecar["count"] == 500
    np.testing.assert_array_equal(search(loaded, data[:5], 3).ids, search(index, data[:5], 3).ids)
    save(build(data[:10], np.arange(10)), tmp_path / "kb-1", {"kb_version": 2})  # replaced whole
    assert load(tmp_path / "kb-1")[1]["count"] == 10 and not (tmp_path / "kb-1.tmp").exists()


def test_ids_must_be_unique_and_widths_must_match():
    with pytest.raises(ValueError, match="unique"):
        build(vectors(2), np.array([1, 1]))
    with pytest.raises(ValueError, match=r"query width \(3\) doesn't match the index \(16\)"):
        search(build(vectors(2), np.array([1, 2])), np.zeros((1, 3)), k=1)


def test_exp_weights_are_the_softmax_of_minus_distance():
    d = np.array([0.5, 1.0, 2.0])
    expected = np.exp(np.exp(-d)) / np.exp(np.exp(-d)).sum()
    np.testing.assert_allclose(weights(d, "exp"), expected)
    for function in ("exp", "inverse", "inverse_square", "linear"):
        w = weights(d, function)
        assert w.sum() == pytest.approx(1.0) and np.all(np.diff(w) <= 0)  # nearer weighs more


def test_the_vote_sums_weights_per_label():
    result = vote(["liner", "seyfert", "liner"], np.array([1.0, 1.1, 1.2]))
    assert result.label == "liner" and result.share == pytest.approx(result.weights[0] + result.weights[2])
    assert sum(result.shares.values()) == pytest.approx(1.0)


def test_a_tie_goes_to_the_nearest_neighbours_label_whatever_the_order_of_labels():
    assert vote(["b", "a"], np.array([1.0, 1.0])).label == "b"
    assert vote(["a", "b"], np.array([1.0, 1.0])).label == "a"


def test_missing_neighbours_take_no_part_and_an_empty_kb_is_an_error():
    result = vote(["lens", "?"], np.array([0.3, np.inf]))
    assert result.label == "lens" and result.share == 1.0
    with pytest.raises(ValueError, match="knowledge base is empty"):
        vote(["?"], np.array([np.inf]))
    with pytest.raises(ValueError, match="unknown weight function"):
        weights(np.array([1.0]), "cubic")


def test_a_crashed_save_leaves_nothing_that_stops_the_next(tmp_path):
    (tmp_path / "kb-1.old").mkdir()
    (tmp_path / "kb-1.old" / "index.faiss").write_text("half")
    (tmp_path / "kb-1.tmp").mkdir()
    (tmp_path / "kb-1.tmp" / "stray").write_text("x")
    save(build(vectors(5), np.arange(5)), tmp_path / "kb-1", {"kb_version": 1})
    save(build(vectors(6), np.arange(6)), tmp_path / "kb-1", {"kb_version": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb-1"]
    assert sorted(p.name for p in (tmp_path / "kb-1").iterdir()) == ["index.faiss", "index.json"]
    assert load(tmp_path / "kb-1")[1]["count"] == 6


def test_an_index_id_without_a_label_is_an_error_not_a_vote():
    index = build(vectors(4), np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="ids with no label"):
        Retriever(index, {1: "a", 2: "b"}).votes(vectors(1, seed=3))
    assert Retriever(index, {1: "a", 2: "b", 3: "a", 4: "b"}).votes(vectors(1, seed=3))[0].label in ("a", "b")


def test_tuning_widens_an_ivf_search_until_its_recall_is_reached_and_the_setting_is_saved(tmp_path):
    data, queries = vectors(5000, 32), vectors(200, 32, seed=5)
    ids = np.arange(5000)
    exact = search(build(data, ids), queries, k=3)
    index = build(data, ids, IndexSpec(kind="ivf"))
    assert recall_at_k(exact, search(index, queries, 3)) < 0.95  # nprobe 8 of 282 lists
    spec, recall = tune(index, IndexSpec(kind="ivf"), queries, exact, target=0.95)
    assert recall >= 0.95 and spec.ivf_probe > 8
    assert recall_at_k(exact, search(index, queries, 3)) == recall
    save(index, tmp_path / "ivf", {})
    assert recall_at_k(exact, search(load(tmp_path / "ivf")[0], queries, 3)) == recall  # nprobe persists
    assert tune(build(data, ids), IndexSpec(), queries, exact) == (IndexSpec(), 1.0)


def test_a_low_temperature_lets_the_nearest_neighbour_outvote_two_farther_ones():
    labels, distances = ["liner", "normal", "normal"], np.array([0.1, 0.5, 0.6])
    assert vote(labels, distances).label == "normal"  # the paper's exp at temperature 1: close to a majority
    sharp = vote(labels, distances, temperature=0.01)
    assert sharp.label == "liner" and sharp.share > 0.99
    with pytest.raises(ValueError, match="temperature must be positive"):
        vote(labels, distances, temperature=0)


def test_cross_validation_never_lets_a_repeat_observation_vote_for_its_twin():
    # 20 galaxies observed twice (identical spectra), each its own label: only a twin can give one's label
    vectors = np.repeat(np.random.default_rng(0).normal(size=(20, 8)), 2, axis=0).astype(np.float32)
    labels = [f"galaxy {i // 2}" for i in range(40)]
    votes = cross_validated_votes(vectors, labels, policy=VotePolicy(k=1))
    found_twin = [vote.label == label for vote, label in zip(votes, labels)]
    assert sum(found_twin) > 20  # split at random, most twins sit in another fold and answer
    groups = np.arange(40) // 2
    grouped = cross_validated_votes(vectors, labels, policy=VotePolicy(k=1), groups=groups)
    assert not any(vote.label == label for vote, label in zip(grouped, labels))
    with pytest.raises(ValueError, match="at least 2 groups"):
        cross_validated_votes(vectors, labels, groups=np.zeros(40))


def clustered(n, width=64, seed=0, clusters=50):
    """Vectors around shared centres, as embeddings of kinds of galaxies are: neighbours mean something."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(clusters, width))
    return (centres[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, width))).astype(np.float32)


def test_a_compressed_index_reranks_to_the_exact_neighbours_from_vectors_kept_on_disk(tmp_path):
    data, queries = clustered(20_000), clustered(300, seed=1)
    ids = np.arange(20_000, dtype=np.int64) * 7 + 3  # database keys
    exact = search(build(data, ids), queries, k=3)
    index = build(data, ids, IndexSpec(kind="compressed"))
    assert index.coarse.code_size == 64 // 8  # a byte of code per 8 floats in memory, not 4 bytes a float
    spec, recall = tune(index, IndexSpec(kind="compressed"), queries, exact, target=0.99)
    assert recall >= 0.99
    save(index, tmp_path / "v1", {"kind": "compressed"})
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == [
        "ids.npy",
        "index.faiss",
        "index.json",
        "vectors.npy",
    ]
    loaded = load(tmp_path / "v1")[0]
    assert isinstance(loaded, Reranked) and isinstance(loaded.vectors, np.memmap)
    found = search(loaded, queries, k=3)
    assert recall_at_k(exact, found) == recall  # the widened search persists
    same = found.ids == exact.ids
    assert same.mean() >= 0.99 and np.allclose(found.distances[same], exact.distances[same], atol=1e-4)
    assert (index_ids(loaded) == ids).all()


def test_without_reranking_the_codes_alone_lose_neighbours():
    data, queries = clustered(20_000), clustered(300, seed=1)
    ids = np.arange(20_000)
    exact = search(build(data, ids), queries, k=3)
    codes_only = build(data, ids, IndexSpec(kind="compressed", rerank=3))  # the shortlist is the answer
    reranked = build(data, ids, IndexSpec(kind="compressed", rerank=128))
    assert recall_at_k(exact, search(codes_only, queries, 3)) < recall_at_k(exact, search(reranked, queries, 3))


def test_a_small_compressed_index_pads_missing_neighbours_and_auto_chooses_by_size():
    index = build(vectors(2), np.array([5, 6]), IndexSpec(kind="compressed"))
    found = search(index, vectors(1, seed=1), k=3)
    assert sorted(found.ids[0, :2]) == [5, 6] and found.ids[0, 2] == -1 and np.isinf(found.distances[0, 2])
    assert kind_for(1_000) == "flat" and kind_for(10_000_000) == "compressed"
    with pytest.raises(ValueError, match="doesn't divide the width 16"):
        build(vectors(300), np.arange(300), IndexSpec(kind="compressed", pq_bytes=3))
