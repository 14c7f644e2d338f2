"""Evaluation metrics with percentile-bootstrap 95% intervals (paper section 4.1, Table 2 and Table 4).

Classification is scored one class against the rest, as the paper does: for each label, TP are rows
whose truth and prediction are both that label, FP rows predicted as it but labelled otherwise, FN rows
labelled as it but predicted otherwise. Precision = TP / (TP + FP), recall = TP / (TP + FN),
F1 = 2 TP / (2 TP + FP + FN); macro-F1 is the unweighted mean of the per-class F1 over the labels asked
for. Accuracy is the share of rows whose prediction equals the truth.

Undefined ratios are 0.0, never NaN and never a warning: a class that is never predicted has
precision 0.0; a class that never occurs has recall 0.0; F1 is 0.0 when TP + FP + FN = 0 (this is
scikit-learn's ``zero_division=0``, and the tests check that the numbers agree with it). So a rare
class that drops out of a bootstrap resample counts with F1 0.0 there, which pulls the lower end of
macro-F1's interval down: honest about a class with too few examples to say much.

Intervals are percentile bootstraps over rows: every resample draws n row indices with replacement,
the same indices for every array, and the statistic is computed on all resamples at once (confusion
counts by ``np.bincount``, not one scikit-learn call per resample). A seed gives the same interval.
Pure numpy/scipy; never imports Django. Everything returned is plain Python (JSON-serialisable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

MAX_RESAMPLED_ELEMENTS = 4_000_000  # resamples are drawn in chunks of at most this many indices (32 MB)


# --- confusion counts, shared by the point estimates and the bootstrap ---------------------------------


def _encode(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes for truth (n,) and predicted (n,): 0..len(labels)-1 for ``labels`` in their order,
    further codes for any other value (they count for accuracy, but are no class of their own)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if len(labels) == 0 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct and not empty, got {list(labels)}")
    vocabulary = {label: code for code, label in enumerate(labels)}
    for value in [*truth, *predicted]:
        vocabulary.setdefault(value, len(vocabulary))

    def codes(values: Sequence[str]) -> np.ndarray:
        return np.fromiter((vocabulary[v] for v in values), dtype=np.int64, count=len(values))

    return codes(truth), codes(predicted), len(vocabulary)


def _confusion(truth: np.ndarray, predicted: np.ndarray, size: int) -> np.ndarray:
    """Codes (B, n) -> confusion counts (B, size, size): [b, t, p] rows of resample b with truth t, prediction p."""
    batch = truth.shape[0]
    flat = (np.arange(batch)[:, None] * size + truth) * size + predicted  # (B, n)
    return np.bincount(flat.ravel(), minlength=batch * size * size).reshape(batch, size, size)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0 (an undefined metric), without warnings."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(
        numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape), where=denominator > 0
    )


def _class_scores(confusion: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Confusion (B, V, V) -> accuracy (B,), and per class (B, n_labels): precision, recall, f1, support."""
    diagonal = np.diagonal(confusion, axis1=1, axis2=2)  # (B, V)
    tp = diagonal[:, :n_labels]
    predicted = confusion.sum(axis=1)[:, :n_labels]  # TP + FP
    actual = confusion.sum(axis=2)[:, :n_labels]  # TP + FN, the support
    return {
        "accuracy": _ratio(diagonal.sum(axis=1), confusion.sum(axis=(1, 2))),
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, actual),
        "f1": _ratio(2 * tp, predicted + actual),
        "support": actual,
    }


def _binary_counts(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Booleans (..., n) -> TP, FP, FN (...,)."""
    return (truth & predicted).sum(axis=-1), (~truth & predicted).sum(axis=-1), (truth & ~predicted).sum(axis=-1)


def _as_bool(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans (or 0/1), got values such as {array[:3].tolist()}")
    return array.astype(bool)


# --- point estimates -----------------------------------------------------------------------------------


def classification_scores(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and one-vs-rest precision/recall/F1/support per label.

    truth (n,) and predicted (n,) are label strings; ``labels`` names the classes to score, in the order
    wanted. Returns ``{"accuracy", "macro_f1", "per_class": {label: {"precision", "recall", "f1",
    "support"}}, "n"}``. A class never predicted has precision 0.0 (see the module docstring).
    """
    truth_codes, predicted_codes, size = _encode(truth, predicted, labels)
    scores = _class_scores(_confusion(truth_codes[None], predicted_codes[None], size), len(labels))  # (1, ...)
    per_class = {
        label: {
            "precision": float(scores["precision"][0, i]),
            "recall": float(scores["recall"][0, i]),
            "f1": float(scores["f1"][0, i]),
            "support": int(scores["support"][0, i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(scores["accuracy"][0]),
        "macro_f1": float(scores["f1"][0].mean()),
        "per_class": per_class,
        "n": int(len(truth_codes)),
    }


def binary_scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Precision, recall and F1 of a search: truth (n,) bool is the target, predicted (n,) bool is found.

    Returns ``{"precision", "recall", "f1", "support", "n"}``; support is the number of true targets.
    """
    truth, predicted = _as_bool(truth, "truth"), _as_bool(predicted, "predicted")
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true flags but {len(predicted)} predictions")
    tp, fp, fn = _binary_counts(truth, predicted)
    return {
        "precision": float(_ratio(tp, tp + fp)),
        "recall": float(_ratio(tp, tp + fn)),
        "f1": float(_ratio(2 * tp, 2 * tp + fp + fn)),
        "support": int(truth.sum()),
        "n": int(len(truth)),
    }


# --- the bootstrap -------------------------------------------------------------------------------------


def _resampled_statistics(
    statistic: Callable, arrays: Sequence[np.ndarray], n_resamples: int, seed: int, vectorized: bool
) -> np.ndarray:
    """The statistic on ``n_resamples`` row resamples: (n_resamples,) or (n_resamples, m) float64."""
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must have the same number of rows, got {[len(a) for a in arrays]}")
    if n == 0:
        raise ValueError("cannot bootstrap zero rows")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_RESAMPLED_ELEMENTS // n)
    results = []
    for start in range(0, n_resamples, chunk):
        rows = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))  # (b, n) row indices
        if vectorized:
            results.append(np.asarray(statistic(*(a[rows] for a in arrays)), dtype=np.float64))
        else:
            results.append(np.array([statistic(*(a[r] for a in arrays)) for r in rows], dtype=np.float64))
    return np.concatenate(results, axis=0)


def _interval(values: np.ndarray, level: float) -> np.ndarray:
    """Percentile interval of resampled statistics (B,) or (B, m) -> (2,) or (2, m)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    tail = 50.0 * (1.0 - level)
    return np.percentile(values, [tail, 100.0 - tail], axis=0)


def bootstrap(
    statistic: Callable, *arrays, n_resamples: int = 1000, seed: int = 0, level: float = 0.95, vectorized: bool = True
) -> tuple[float, float]:
    """Percentile-bootstrap interval (lo, hi) of a scalar statistic of some paired arrays.

    Each resample draws n row indices with replacement and takes those rows of every array (n, ...).
    With ``vectorized`` (the default) the statistic receives a batch of resamples, arrays (b, n, ...),
    and returns (b,) values, e.g. ``lambda t, p: (t == p).mean(axis=-1)``; otherwise it is called once
    per resample with arrays (n, ...) and returns a float. The same seed gives the same interval.
    """
    values = _resampled_statistics(statistic, arrays, n_resamples, seed, vectorized)
    if values.ndim != 1:
        raise ValueError(f"the statistic must give one value per resample, got shape {values.shape[1:]} each")
    lo, hi = _interval(values, level)
    return float(lo), float(hi)


def _pair(interval: np.ndarray) -> list[float]:
    return [float(interval[0]), float(interval[1])]


def classification_report(
    truth: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """``classification_scores`` with bootstrap intervals: ``accuracy_ci`` and ``macro_f1_ci`` at the top
    level, ``f1_ci`` in every ``per_class`` entry (each ``[lo, hi]``), all from the same resamples;
    ``bootstrap`` records how (resamples, seed, level)."""
    report = classification_scores(truth, predicted, labels)
    truth_codes, predicted_codes, size = _encode(truth, predicted, labels)

    def statistic(t: np.ndarray, p: np.ndarray) -> np.ndarray:  # (b, n) codes -> (b, 2 + labels)
        scores = _class_scores(_confusion(t, p, size), len(labels))
        return np.column_stack([scores["accuracy"], scores["f1"].mean(axis=1), scores["f1"]])

    intervals = _interval(
        _resampled_statistics(statistic, [truth_codes, predicted_codes], n_resamples, seed, True), level
    )
    report["accuracy_ci"], report["macro_f1_ci"] = _pair(intervals[:, 0]), _pair(intervals[:, 1])
    for i, label in enumerate(labels):
        report["per_class"][label]["f1_ci"] = _pair(intervals[:, 2 + i])
    report["bootstrap"] = {"n_resamples": int(n_resamples), "seed": int(seed), "level": float(level)}
    return report


def macro_f1_difference(
    truth: Sequence[str],
    predicted_a: Sequence[str],
    predicted_b: Sequence[str],
    labels: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Macro-F1 of predictions a minus that of b on the same spectra, with a paired bootstrap interval
    (both scored on each resample's rows): ``{"difference", "difference_ci", "a_better_share"}``, the
    last the share of resamples where a scores higher. Intervals of each method alone overlap far more
    readily than the interval of their difference, which is the one that says whether a beats b."""
    truth_codes, a_codes, size = _encode(truth, predicted_a, labels)
    _, b_codes, size_b = _encode(truth, predicted_b, labels)
    size = max(size, size_b)

    def macro(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return _class_scores(_confusion(t, p, size), len(labels))["f1"].mean(axis=1)

    def statistic(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return macro(t, a) - macro(t, b)

    point = float(statistic(truth_codes[None], a_codes[None], b_codes[None])[0])
    values = _resampled_statistics(statistic, [truth_codes, a_codes, b_codes], n_resamples, seed, True)
    return {
        "difference": point,
        "difference_ci": _pair(_interval(values, level)),
        "a_better_share": float((values > 0).mean()),
    }


def search_report(
    truth: np.ndarray, predicted: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """``binary_scores`` with bootstrap intervals ``precision_ci``, ``recall_ci`` and ``f1_ci`` ([lo, hi])."""
    report = binary_scores(truth, predicted)
    truth, predicted = _as_bool(truth, "truth"), _as_bool(predicted, "predicted")

    def statistic(t: np.ndarray, p: np.ndarray) -> np.ndarray:  # (b, n) bool -> (b, 3)
        tp, fp, fn = _binary_counts(t, p)
        return np.column_stack([_ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)])

    intervals = _interval(_resampled_statistics(statistic, [truth, predicted], n_resamples, seed, True), level)
    for i, name in enumerate(("precision", "recall", "f1")):
        report[f"{name}_ci"] = _pair(intervals[:, i])
    report["bootstrap"] = {"n_resamples": int(n_resamples), "seed": int(seed), "level": float(level)}
    return report


def precision_at_base_rate(
    truth: np.ndarray, predicted: np.ndarray, base_rate: float, *, n_resamples: int = 1000, seed: int = 0
) -> dict:
    """The precision a search would have where targets are ``base_rate`` of the spectra searched, not the
    test set's share: P = r TPR / (r TPR + (1 - r) FPR), with the recall (TPR) measured on the test set's
    targets and the false-positive rate (FPR) on its others. A percentile-bootstrap 95% interval over the
    test set's rows. {"precision", "precision_ci", "base_rate", "test_base_rate"}; precision None where
    the test set has no target or no other, or nothing is predicted."""
    truth, predicted = _as_bool(truth, "truth"), _as_bool(predicted, "predicted")
    if not 0 < base_rate < 1:
        raise ValueError(f"a base rate is a share between 0 and 1, got {base_rate}")

    def statistic(t: np.ndarray, p: np.ndarray) -> np.ndarray:  # (b, n) bool -> (b,)
        tpr = _ratio((t & p).sum(-1), t.sum(-1))
        fpr = _ratio((~t & p).sum(-1), (~t).sum(-1))
        return _ratio(base_rate * tpr, base_rate * tpr + (1 - base_rate) * fpr)

    value = statistic(truth[None], predicted[None])[0]
    out = {"base_rate": float(base_rate), "test_base_rate": float(truth.mean()) if len(truth) else None}
    if not truth.any() or truth.all() or not predicted.any():
        return {**out, "precision": None, "precision_ci": None}
    resampled = _resampled_statistics(statistic, [truth, predicted], n_resamples, seed, True)
    return {**out, "precision": float(value), "precision_ci": _pair(_interval(resampled, 0.95))}


def proportion_interval(successes: int, n: int, level: float = 0.95) -> list[float] | None:
    """Wilson's score interval [lo, hi] for a share of ``successes`` in ``n`` (None for n = 0): sound for the
    handful of spectra a rare kind has, where a bootstrap of 3 gives [0, 1] or nothing."""
    if n == 0:
        return None
    z = float(stats.norm.ppf(0.5 + level / 2))
    share = successes / n
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


# --- distributions (appendix A.2, Table A1) ------------------------------------------------------------


def distribution_stats(values) -> dict:
    """Mean, median, standard deviation (ddof=1), skewness and kurtosis of the finite values given.

    Skewness and kurtosis are scipy's moment estimators (g1 and g2, ``bias=True``). ``kurtosis`` is
    Fisher's excess kurtosis (a normal distribution gives 0); ``kurtosis_pearson`` = excess + 3 (a normal
    gives 3). The paper mixes the two: its distance kurtosis of -0.40 "flatter than a normal
    distribution" reads as excess, while its weight kurtosis of 3.43 "approaching the ideal kurtosis of
    3 for a normal distribution" reads as Pearson. Compare with the paper accordingly.
    Non-finite values (the inf of a missing neighbour) are dropped; ``n`` counts the values used.
    Statistics undefined for so few or such constant values are 0.0 (``kurtosis_pearson`` then 3.0).
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    n = len(array)
    if n == 0:
        return {
            "mean": 0.0,
            "median": 0.0,
            "std": 0.0,
            "skewness": 0.0,
            "kurtosis": 0.0,
            "kurtosis_pearson": 3.0,
            "n": 0,
        }
    spread = float(np.std(array, ddof=1)) if n > 1 else 0.0
    constant = np.ptp(array) <= 1e-12 * max(1.0, float(np.abs(array).max()))
    with np.errstate(all="ignore"):
        skewness = 0.0 if constant else float(stats.skew(array))
        excess = 0.0 if constant else float(stats.kurtosis(array, fisher=True))
    skewness, excess = (x if np.isfinite(x) else 0.0 for x in (skewness, excess))
    return {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "std": spread,
        "skewness": skewness,
        "kurtosis": excess,
        "kurtosis_pearson": excess + 3.0,
        "n": int(n),
    }
