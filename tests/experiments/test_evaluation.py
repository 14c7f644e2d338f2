"""`manage.py evaluate` end to end on a tiny survey: every experiment runs and reports what it measured."""

import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from experiments.perturb import PERTURBATIONS
from experiments.report import PAPER_SEARCH
from experiments.searches import SEARCH_TASKS
from kb.models import KnowledgeBase, Spectrum
from training.models import TrainingRun

pytestmark = pytest.mark.django_db
METHODS = {
    "encoder_kb",
    "encoder_chosen",
    "encoder_generic_pool",
    "shortcut_knn",
    "raw_window_knn",
    "raw_window_chosen",
    "restframe_flux_knn",
    "restframe_pca_knn",
    "random_forest",
    "cnn",
    "encoder_finetuned",
}


def test_evaluate_writes_every_experiment(trained, tmp_path, shared_data, settings):
    settings.SHARED_DATA_DIR = shared_data
    out = tmp_path / "evaluation"
    call_command(
        "evaluate",
        "--out",
        str(out),
        "--bootstrap",
        "50",
        "--retrieval-sizes",
        "200,1000",
        "--cnn-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--seeds",
        "2",
        verbosity=0,
    )
    results = json.loads((out / "results.json").read_text())
    for key in ("classification_3class", "classification_5class"):
        assert set(results[key]) == METHODS
        for method in METHODS:
            scores = results[key][method]
            assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["macro_f1"] <= 1 and scores["per_class"]
            assert scores["macro_f1_ci"][0] <= scores["macro_f1"] <= scores["macro_f1_ci"][1]
    assert set(results["classification_3class"]["encoder_kb"]["per_class"]) == {"star-forming", "agn", "normal"}
    versus = results["classification_5class"]["encoder_kb"]["versus"]
    assert set(versus) == METHODS - {"encoder_kb"}
    five = results["classification_5class"]
    assert versus["raw_window_knn"]["difference"] == pytest.approx(
        five["encoder_kb"]["macro_f1"] - five["raw_window_knn"]["macro_f1"]
    )
    ceiling = results["label_ceiling"]  # the catalogs' rules on the test spectra's own SPZLINE lines
    assert 0.5 < ceiling["classification_5class"]["macro_f1"] <= 1 and 0 <= ceiling["liner"]["f1"] <= 1
    assert "The label ceiling" in (out / "report.md").read_text()
    for task in SEARCH_TASKS:
        assert {"precision", "recall", "f1"} <= set(results["search"][task])
        at_rate = results["search_base_rates"][task]
        assert not at_rate["test_base_rate"] or at_rate["base_rate"] < at_rate["test_base_rate"]  # the mock has more
        if at_rate["precision"] is not None:  # fewer targets among as many false positives: lower precision
            assert at_rate["precision"] == results["search"][task]["precision_at_base_rate"]
            assert at_rate["precision"] <= results["search"][task]["precision"]
        assert {"precision", "recall", "f1"} <= set(results["search_baselines"]["shortcut_knn"][task])
    assert {"precision", "recall", "f1"} <= set(results["search"]["lens_detectable"])
    hidden = results["search"]["lens_undetectable"]  # lenses in the survey that the catalog cannot list
    assert hidden["found"] <= hidden["n"] and (hidden["recall"] is None) == (hidden["n"] == 0)
    for kind in results["outlier_recall_by_kind"].values():
        assert kind["recall_ci"][0] <= kind["recall"] <= kind["recall_ci"][1]
    robust = results["robustness"]
    assert set(robust) == {"unchanged", *PERTURBATIONS}
    assert all(0 <= row["classification_5class"] <= 1 and "lens_vote_f1" in row for row in robust.values())
    for task in SEARCH_TASKS:  # the table scores the answers as served: the vote joined to its rule
        assert robust["unchanged"][f"{task}_f1"] == pytest.approx(results["search"][task]["f1"], abs=1e-6)
        vote_only = results["search_vote_only"][task]["f1"]
        assert robust["unchanged"][f"{task}_vote_f1"] == pytest.approx(vote_only, abs=1e-6)
    assert "## Robustness" in (out / "report.md").read_text()
    assert results["dataset"]["splits"]["validation"] == results["dataset"]["validation"] > 0
    removed = results["lens_lines_removed"]
    assert removed["n"] == Spectrum.objects.filter(catalog_labels__catalog="talbot2021").count() > 0
    assert 0 <= removed["voted_lens"] <= 1
    by_snr = results["lens_recall_by_source_snr"]  # every test-reserve lens in one bin of its background S/N
    assert sum(r["n"] for r in by_snr) == results["dataset"]["splits"]["search"]["lens_targets"] > 0
    assert all(r["found"] <= r["n"] for r in by_snr) and "background-line S/N" in (out / "report.md").read_text()
    trust = results["trust"]
    assert trust["n"] > 0 and 0 <= trust["flagged_share"] <= 1 and trust["n_flagged"] <= trust["n"]
    assert trust["precision_unflagged"] is None or 0 <= trust["precision_unflagged"] <= 1
    assert set(trust["by_search"]) == set(SEARCH_TASKS) >= {"liner", "lens", "outlier", "eplusa"}
    for search in trust["by_search"].values():  # how many true targets a flag would hide
        assert search["flagged_share_targets"] is None or 0 <= search["flagged_share_targets"] <= 1
    assert "targets flagged" in (out / "report.md").read_text()
    assert {r["k"] for r in results["topk_sweep"]} == set(range(1, 16))
    assert results["proportion_sweep"] and all(0 < r["target_fraction"] < 1 for r in results["proportion_sweep"])
    assert set(results["weight_functions"]["functions"]) == {"exp", "inverse", "inverse_square", "linear"}
    fitted = results["weight_functions"]["fitted_temperature"]
    assert set(fitted) == set(SEARCH_TASKS)
    assert all(r["validation_f1"] >= r["validation_f1_at_1"] and r["temperature"] > 0 for r in fitted.values())
    # every pooling scored on the validation reserve; the one kept is the embedding the site serves
    pooling = [row for row in results["variants"] if row["kind"] == "pooling"]
    assert [row["width"] for row in pooling] == [8 * 64, 6 * 64, 14 * 64, 7 * 64, 9 * 64]
    assert [row["variant"] for row in pooling if row["kept"]] == ["pooling: 6 line windows + peaks"]
    assert results["dataset"]["embedding_width"] == 7 * 64
    for row in pooling:
        assert {"bpt5_macro_f1", "liner_f1", "lens_f1", "outlier_f1"} <= set(row["validation"])
        assert row["validation"]["bpt5_validation_spectra"] > 0
    assert {row["kind"] for row in results["variants"]} == {"pooling", "temperature"}
    assert {(r["size"], r["kind"]) for r in results["retrieval_time"]["rows"]} >= {(1000, "flat"), (1000, "hnsw")}
    assert len(results["real_spectra"]) == 10
    assert all(
        r["own_bpt5"] in ("star-forming", "composite", "seyfert", "liner", "normal") for r in results["real_spectra"]
    )
    # the three real spectra the data README calls star-forming are classified so from their own lines
    own = {r["file"]: r["own_bpt3"] for r in results["real_spectra"]}
    assert [f for f, c in own.items() if c == "star-forming"] == [
        "spec-0266-51630-0168.fits",
        "spec-0266-51630-0215.fits",
        "spec-0268-51633-0251.fits",
    ]
    # the evaluated KBs are recorded versions with the checkpoint in service; built for it, none serves
    for kb in results["dataset"]["knowledge_bases"].values():
        assert KnowledgeBase.objects.get(pk=kb["id"]).training_run == trained
    # a second seed: another encoder and its own knowledge bases, none in service, and the spread of both
    assert results["seeds"] == 2
    repeated = results["over_seeds"]
    assert repeated["seeds"] == [0, 1] and repeated["training_runs"][0] == trained.pk
    again = TrainingRun.objects.get(pk=repeated["training_runs"][1])
    assert again.train_config["seed"] == 1 and TrainingRun.objects.get(in_service=True) == trained
    assert KnowledgeBase.objects.filter(training_run=again).count() == 2 + len(SEARCH_TASKS)
    assert (
        KnowledgeBase.objects.count() == 2 * (2 + len(SEARCH_TASKS))
        and not KnowledgeBase.objects.filter(in_service=True).exists()
    )
    five = repeated["figures"]["classification_5class.encoder_kb.macro_f1"]
    assert len(five["values"]) == 2 and five["values"][0] == results["classification_5class"]["encoder_kb"]["macro_f1"]
    assert five["min"] <= five["mean"] <= five["max"] and "## Over seeds" in (out / "report.md").read_text()
    assert any(key.startswith("lens_recall_by_source_snr.") for key in repeated["figures"])
    report = (out / "report.md").read_text()
    assert "not on SDSS" in report and f"{PAPER_SEARCH['liner']['precision']:.4f}" in report
    assert "The shortcut check" in report and "## How far to trust an answer" in report
    assert "## Variants tried, scored on the validation reserve" in report
    for figure in ("classification_3class", "search", "proportion_sweep", "topk_sweep", "retrieval_time"):
        assert (out / f"{figure}.html").exists() and f"({figure}.html)" in report
    assert "cdn.plot.ly" not in (out / "search.html").read_text() and (out / "plotly.min.js").exists()
    if shutil.which("chromium"):  # PNG where a browser can render them (CI installs Debian's chromium)
        assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(search.png)" in report


def test_evaluate_needs_a_checkpoint(data_dir, tmp_path):
    with pytest.raises(CommandError, match="no checkpoint is in service"):
        call_command("evaluate", "--out", str(tmp_path / "x"), verbosity=0)


def test_lens_background_snr_bins_cover_the_mock_range_in_three():
    """Each bin holds its lower edge; the last holds the mock's brightest background too."""
    from experiments.searches import SOURCE_SNR_BINS, snr_bin
    from kb.mock.populations import SOURCE_SNR

    assert (SOURCE_SNR_BINS[0], SOURCE_SNR_BINS[-1]) == SOURCE_SNR and len(SOURCE_SNR_BINS) == 4
    low, middle, high = SOURCE_SNR_BINS[:3]
    assert [snr_bin(v) for v in (low, middle - 0.01, middle, high, SOURCE_SNR[1])] == [0, 0, 1, 2, 2]


def test_evaluate_can_leave_the_fine_tuned_encoder_out(trained, tmp_path, shared_data, settings):
    """--finetune-epochs 0: the costliest method is not run, and every other one is, as the report says."""
    settings.SHARED_DATA_DIR = shared_data
    out = tmp_path / "evaluation"
    call_command(
        "evaluate",
        *("--out", str(out), "--bootstrap", "20", "--retrieval-sizes", "200,1000"),
        *("--cnn-epochs", "1", "--finetune-epochs", "0"),
        verbosity=0,
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results["classification_5class"]) == METHODS - {"encoder_finetuned"}
    assert results["seeds"] == 1 and "over_seeds" not in results
    assert "fine-tuned" not in (out / "report.md").read_text().split("## Tables 3-4")[0]
