import json
import subprocess
import sys

import numpy as np
import pytest

from experiments.timing import fit_line, fit_lines, retrieval_time_curve
from tests.conftest import REPO

ROW_KEYS = {
    "size",
    "kind",
    "build_s",
    "batch_ms_per_query",
    "single_query_ms_p50",
    "recall_at_k",
    "synthetic_fraction",
    "threads",
}


def real_like(n: int = 500, width: int = 16, seed: int = 0) -> np.ndarray:
    """Clustered vectors standing in for embeddings: 5 centres, unit scatter, shifted away from zero."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(5, width)) + 10.0
    return (centres[rng.integers(0, 5, n)] + rng.normal(size=(n, width))).astype(np.float32)


@pytest.fixture(scope="module")
def curve():
    calls = []
    rows = retrieval_time_curve(
        real_like(), sizes=(200, 1000), n_queries=20, repeats=2, on_progress=lambda *args: calls.append(args)
    )
    return rows, calls


def test_timing_module_imports_without_django():
    code = "import sys, experiments.timing; assert 'django' not in sys.modules, 'django was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_one_row_per_size_and_kind_with_positive_times(curve):
    rows, _ = curve
    assert [(row["size"], row["kind"]) for row in rows] == [
        (s, k) for s in (200, 1000) for k in ("flat", "hnsw", "ivf")
    ]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["build_s"] > 0 and row["batch_ms_per_query"] > 0 and row["single_query_ms_p50"] > 0
        assert row["threads"] >= 1
    assert json.loads(json.dumps(rows)) == rows


def test_exact_search_has_recall_one_and_approximate_at_most_one(curve):
    rows, _ = curve
    for row in rows:
        if row["kind"] == "flat":
            assert row["recall_at_k"] == 1.0
        else:
            assert 0.0 < row["recall_at_k"] <= 1.0


def test_synthetic_fraction_is_the_share_beyond_the_real_vectors(curve):
    rows, _ = curve
    fractions = {row["size"]: row["synthetic_fraction"] for row in rows}
    assert fractions == {200: 0.0, 1000: 0.5}  # 500 real vectors


def test_progress_is_reported_before_each_build_and_at_the_end(curve):
    _, calls = curve
    assert [done for done, _, _ in calls] == list(range(7)) and all(total == 6 for _, total, _ in calls)
    assert calls[1][2] == "hnsw index over 200 vectors" and calls[-1][2] == "done"


def test_synthetic_vectors_follow_the_real_distribution(monkeypatch):
    import experiments.timing as timing

    seen = {}
    real_build = timing.build

    def spy(vectors, ids, spec=None):
        spec = spec or timing.IndexSpec()
        seen[len(vectors)] = np.array(vectors)
        return real_build(vectors, ids, spec)

    monkeypatch.setattr(timing, "build", spy)
    real = real_like(n=300)
    timing.retrieval_time_curve(real, sizes=(3000,), kinds=("flat",), n_queries=5, repeats=1)
    kb = seen[3000]
    assert kb.dtype == np.float32
    np.testing.assert_array_equal(kb[:300], real)  # the real vectors first, as given
    synthetic = kb[300:]
    np.testing.assert_allclose(synthetic.mean(axis=0), real.mean(axis=0), atol=0.35)
    np.testing.assert_allclose(synthetic.std(axis=0), real.std(axis=0), rtol=0.1)


def test_without_flat_recall_is_still_against_exact_search():
    rows = retrieval_time_curve(real_like(), sizes=(500,), kinds=("ivf",), n_queries=10, repeats=1)
    assert [row["kind"] for row in rows] == ["ivf"] and 0.0 < rows[0]["recall_at_k"] <= 1.0


def test_unknown_kinds_fail_before_any_work():
    with pytest.raises(ValueError, match="unknown index kind"):
        retrieval_time_curve(real_like(), sizes=(100,), kinds=("flat", "annoy"))


def test_fit_line_recovers_a_known_line():
    sizes = np.array([1_000, 10_000, 100_000, 500_000])
    fit = fit_line(sizes, 0.0058 * sizes + 0.049)  # the paper's Figure C1 regression
    assert fit["slope_ms_per_vector"] == pytest.approx(0.0058)
    assert fit["intercept_ms"] == pytest.approx(0.049, abs=1e-6)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["loglog_slope"] == pytest.approx(1.0, abs=0.02)  # linear growth: slope 1 in log-log


def test_fit_line_log_log_slope_of_a_power_law_and_a_poor_fit():
    sizes = np.array([1e3, 1e4, 1e5, 1e6])
    fit = fit_line(sizes, 2.0 * np.sqrt(sizes))
    assert fit["loglog_slope"] == pytest.approx(0.5)
    assert fit["r2"] < 1.0
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_line([10, 10], [1.0, 2.0])


def test_fit_lines_fits_each_kind(curve):
    rows, _ = curve
    fits = fit_lines(rows)
    assert list(fits) == ["flat", "hnsw", "ivf"]
    flat = [row for row in rows if row["kind"] == "flat"]
    assert fits["flat"]["slope_ms_per_vector"] == pytest.approx(
        (flat[1]["batch_ms_per_query"] - flat[0]["batch_ms_per_query"]) / 800
    )  # two points: the line through them
