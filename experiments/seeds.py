"""The headline figures of one evaluation, and their spread over evaluations repeated with other seeds.

Pure Python over the results dicts of ``experiments.evaluation``; never imports Django.
"""

from __future__ import annotations

import numpy as np

CLASSIFICATIONS = ("classification_3class", "classification_5class")


def headline(results: dict) -> dict[str, float]:
    """The figures a reader compares across seeds, flat: 'classification_5class.encoder_kb.macro_f1', ..."""
    figures = {}
    for key in CLASSIFICATIONS:
        for method, report in results[key].items():
            figures[f"{key}.{method}.macro_f1"] = report["macro_f1"]
        for other in ("encoder_chosen", "raw_window_knn", "raw_window_chosen", "restframe_pca_knn"):
            if other in results[key]["encoder_kb"]["versus"]:
                figures[f"{key}.encoder_kb.versus_{other}"] = results[key]["encoder_kb"]["versus"][other]["difference"]
        if {"encoder_chosen", "raw_window_chosen"} <= set(results[key]):  # the representation alone, same machinery
            figures[f"{key}.encoder_chosen.minus_raw_window_chosen"] = (
                results[key]["encoder_chosen"]["macro_f1"] - results[key]["raw_window_chosen"]["macro_f1"]
            )
    for key, report in results.get("label_ceiling", {}).items():
        figures[f"label_ceiling.{key}.{'f1' if key == 'liner' else 'macro_f1'}"] = report.get(
            "macro_f1", report.get("f1")
        )
    figures["classification_5class.encoder_kb.liner_f1"] = results["classification_5class"]["encoder_kb"]["per_class"][
        "liner"
    ]["f1"]
    for task, report in results["search"].items():
        for measure in ("precision", "recall", "f1", "precision_at_base_rate"):
            if report.get(measure) is not None:
                figures[f"search.{task}.{measure}"] = report[measure]
    for baseline, reports in results.get("search_baselines", {}).items():
        for task, report in reports.items():
            figures[f"search_baselines.{baseline}.{task}.f1"] = report["f1"]
    for task, report in results.get("search_vote_only", {}).items():
        figures[f"search_vote_only.{task}.f1"] = report["f1"]
    removed = results.get("lens_lines_removed") or {}
    if removed.get("voted_lens") is not None:
        figures["lens_lines_removed.voted_lens"] = removed["voted_lens"]
    for row in results.get("lens_recall_by_source_snr", []):
        if row["recall"] is not None:
            low, high = row["source_snr"]
            figures[f"lens_recall_by_source_snr.{low:g}-{high:g}"] = row["recall"]
    for perturbation, report in results.get("robustness", {}).items():
        for measure, value in report.items():
            figures[f"robustness.{perturbation}.{measure}"] = value
    for key in ("flagged_share", "precision_flagged", "precision_unflagged"):
        if results.get("trust", {}).get(key) is not None:
            figures[f"trust.{key}"] = results["trust"][key]
    pretraining = results["dataset"].get("pretraining", {})
    for model, interp in (
        ("val_median_spectrum_masked_mse", "val_median_spectrum_interp_mse"),
        ("val_masked_chi2", "val_interp_chi2"),
    ):
        if pretraining.get(model) is not None and pretraining.get(interp):
            figures[f"pretraining.{model}_over_interp"] = pretraining[model] / pretraining[interp]
    return figures


def spread(rows: list[dict[str, float]]) -> dict[str, dict]:
    """Each figure's mean, standard deviation (n - 1), range and values over ``rows``, one per seed; a
    figure missing from a seed's row is left out of that seed."""
    out = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows if row.get(key) is not None], dtype=np.float64)
        out[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "values": values.tolist(),
        }
    return out
