import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from inference.metrics import (
    binary_scores,
    bootstrap,
    classification_report,
    classification_scores,
    distribution_stats,
    search_report,
)
from tests.conftest import REPO

LABELS = ["star-forming", "agn", "normal"]


def noisy_predictions(n: int, accuracy: float = 0.8, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(LABELS, size=n, p=[0.5, 0.3, 0.2]).tolist()
    predicted = [t if rng.random() < accuracy else str(rng.choice(LABELS)) for t in truth]
    return truth, predicted


def test_metrics_module_imports_without_django():
    code = "import sys, inference.metrics; assert 'django' not in sys.modules, 'django was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_hand_computed_confusion_gives_one_vs_rest_scores():
    # truth a a a b b c, predicted a a b b c c:
    # a: TP 2, FP 0, FN 1 -> P 1, R 2/3; b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2; c: TP 1, FP 1, FN 0 -> P 1/2, R 1
    truth, predicted = list("aaabbc"), list("aabbcc")
    scores = classification_scores(truth, predicted, ["a", "b", "c"])
    a, b, c = (scores["per_class"][label] for label in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(0.8)
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == (0.5, 0.5, 0.5, 2)
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.5, 1.0, pytest.approx(2 / 3), 1)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores["n"] == 6


def test_scores_agree_with_scikit_learn():
    truth, predicted = noisy_predictions(500)
    scores = classification_scores(truth, predicted, LABELS)
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=LABELS, average="macro"))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        entry = scores["per_class"][label]
        assert (entry["precision"], entry["recall"], entry["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert entry["support"] == support[i]


def test_a_class_never_predicted_has_precision_zero_without_warnings():
    truth, predicted = ["a", "b", "c", "c"], ["a", "a", "c", "c"]  # b is never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = classification_report(truth, predicted, ["a", "b", "c"], n_resamples=200)
    assert scores["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "f1_ci": [0.0, 0.0]}
    assert scores["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, labels=["a", "b", "c"], average="macro", zero_division=0)
    )
    assert "NaN" not in json.dumps(scores)


def test_values_outside_the_labels_count_for_accuracy_but_are_no_class():
    scores = classification_scores(["a", "x", "x"], ["a", "x", "a"], ["a"])
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert list(scores["per_class"]) == ["a"] and scores["per_class"]["a"]["precision"] == 0.5


def test_perfect_predictions_score_one_with_a_degenerate_interval():
    truth, _ = noisy_predictions(300)
    report = classification_report(truth, truth, LABELS)
    assert report["accuracy"] == report["macro_f1"] == 1.0
    assert report["accuracy_ci"] == [1.0, 1.0] and report["macro_f1_ci"] == [1.0, 1.0]
    assert all(entry["f1_ci"] == [1.0, 1.0] for entry in report["per_class"].values())


def test_report_intervals_contain_the_estimate_and_are_plain_json():
    truth, predicted = noisy_predictions(1000)
    report = classification_report(truth, predicted, LABELS, n_resamples=500)
    assert report["accuracy_ci"][0] < report["accuracy"] < report["accuracy_ci"][1]
    assert report["macro_f1_ci"][0] < report["macro_f1"] < report["macro_f1_ci"][1]
    for entry in report["per_class"].values():
        assert entry["f1_ci"][0] < entry["f1"] < entry["f1_ci"][1]
    assert json.loads(json.dumps(report)) == report  # plain floats, ints and lists only
    assert report["bootstrap"] == {"n_resamples": 500, "seed": 0, "level": 0.95}


def test_report_intervals_agree_with_the_generic_bootstrap():
    truth, predicted = noisy_predictions(400)
    report = classification_report(truth, predicted, LABELS, n_resamples=300, seed=7)
    accuracy = bootstrap(
        lambda t, p: (t == p).mean(axis=-1), np.array(truth), np.array(predicted), n_resamples=300, seed=7
    )
    assert report["accuracy_ci"] == pytest.approx(list(accuracy))


def test_same_seed_same_interval_and_another_seed_another():
    truth, predicted = noisy_predictions(300)
    first = classification_report(truth, predicted, LABELS, seed=1)["macro_f1_ci"]
    assert classification_report(truth, predicted, LABELS, seed=1)["macro_f1_ci"] == first
    assert classification_report(truth, predicted, LABELS, seed=2)["macro_f1_ci"] != first


def test_intervals_narrow_with_more_rows():
    def width(n):
        truth, predicted = noisy_predictions(n, seed=3)
        lo, hi = classification_report(truth, predicted, LABELS, n_resamples=400)["macro_f1_ci"]
        return hi - lo

    assert width(4000) < 0.6 * width(400)


def test_bootstrap_of_a_mean_matches_its_standard_error():
    values = np.random.default_rng(0).normal(size=2000)
    lo, hi = bootstrap(lambda v: v.mean(axis=-1), values, n_resamples=2000)
    assert lo < values.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * values.std() / np.sqrt(len(values)), rel=0.1)
    one_by_one = bootstrap(np.mean, values, n_resamples=50, vectorized=False)
    assert one_by_one == pytest.approx(bootstrap(lambda v: v.mean(axis=-1), values, n_resamples=50))


def test_bootstrap_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="same number of rows"):
        bootstrap(lambda a, b: a.mean(axis=-1), np.zeros(3), np.zeros(4))


def test_binary_scores_of_a_search():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    found = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)  # TP 3, FN 1, FP 1
    assert binary_scores(truth, found) == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4, "n": 10}
    assert binary_scores(truth, np.zeros(10, bool)) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 4,
        "n": 10,
    }


def test_search_report_intervals():
    rng = np.random.default_rng(5)
    truth = rng.random(800) < 0.2
    found = truth ^ (rng.random(800) < 0.1)
    report = search_report(truth, found)
    for metric in ("precision", "recall", "f1"):
        lo, hi = report[f"{metric}_ci"]
        assert lo < report[metric] < hi < 1.0
    assert search_report(truth, truth)["recall_ci"] == [1.0, 1.0]
    assert json.loads(json.dumps(report)) == report


def test_distribution_stats_of_a_normal_sample():
    values = np.random.default_rng(0).normal(loc=2.0, scale=0.5, size=200_000)
    result = distribution_stats(values)
    assert result["mean"] == pytest.approx(2.0, abs=0.01) and result["median"] == pytest.approx(2.0, abs=0.01)
    assert result["std"] == pytest.approx(0.5, abs=0.01)
    assert abs(result["skewness"]) < 0.02 and abs(result["kurtosis"]) < 0.05  # excess kurtosis: normal is 0
    assert result["kurtosis_pearson"] == pytest.approx(result["kurtosis"] + 3.0)
    assert result["n"] == 200_000


def test_distribution_stats_of_a_skewed_sample_drops_missing_values():
    values = np.concatenate([np.random.default_rng(1).exponential(size=100_000), [np.inf, np.nan]])
    result = distribution_stats(values)
    assert result["n"] == 100_000
    assert result["skewness"] == pytest.approx(2.0, abs=0.15) and result["kurtosis"] == pytest.approx(6.0, abs=1.0)


def test_distribution_stats_of_constant_values_is_defined():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = distribution_stats([1.5, 1.5, 1.5])
    assert result == {
        "mean": 1.5,
        "median": 1.5,
        "std": 0.0,
        "skewness": 0.0,
        "kurtosis": 0.0,
        "kurtosis_pearson": 3.0,
        "n": 3,
    }


def test_the_paired_difference_of_macro_f1_is_signed_and_sure_when_one_method_is_always_better():
    from inference.metrics import classification_scores, macro_f1_difference

    rng = np.random.default_rng(0)
    truth = rng.choice(["a", "b", "c"], 400).tolist()
    good = [t if rng.random() < 0.9 else "a" for t in truth]
    poor = [t if rng.random() < 0.5 else "a" for t in truth]
    result = macro_f1_difference(truth, good, poor, ["a", "b", "c"], n_resamples=300, seed=1)
    expected = (
        classification_scores(truth, good, ["a", "b", "c"])["macro_f1"]
        - classification_scores(truth, poor, ["a", "b", "c"])["macro_f1"]
    )
    assert result["difference"] == pytest.approx(expected) and result["difference"] > 0.2
    assert 0 < result["difference_ci"][0] <= result["difference"] <= result["difference_ci"][1]
    assert result["a_better_share"] == 1.0
    swapped = macro_f1_difference(truth, poor, good, ["a", "b", "c"], n_resamples=300, seed=1)
    assert swapped["difference"] == pytest.approx(-expected) and swapped["a_better_share"] == 0.0
