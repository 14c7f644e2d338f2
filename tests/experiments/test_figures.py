import re
import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest

from experiments import figure_files, figures
from inference.metrics import classification_report, search_report
from tests.conftest import REPO

LABELS = ["star-forming", "agn", "normal"]


def report(accuracy: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth = rng.choice(LABELS, size=300).tolist()
    predicted = [t if rng.random() < accuracy else str(rng.choice(LABELS)) for t in truth]
    return classification_report(truth, predicted, LABELS, n_resamples=200)


def search(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth = rng.random(300) < 0.3
    return search_report(truth, truth ^ (rng.random(300) < 0.1), n_resamples=200)


def names(figure: go.Figure) -> list[str]:
    return [trace.name for trace in figure.data]


def assert_error_bars_match(trace, intervals):
    """The trace's error bars reach exactly from each interval's lower to its upper end."""
    assert trace.error_y.symmetric is False
    for y, plus, minus, (lo, hi) in zip(trace.y, trace.error_y.array, trace.error_y.arrayminus, intervals):
        assert y - minus == pytest.approx(lo) and y + plus == pytest.approx(hi)


def test_figures_module_imports_without_django():
    code = "import sys, experiments.figures; assert 'django' not in sys.modules, 'django was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_classification_bars_show_each_method_with_intervals():
    results = {"GalSpecEncoder-KB": report(0.9, 0), "random forest": report(0.7, 1)}
    figure = figures.classification_bars(results, "Three-class classification")
    assert names(figure) == ["Macro-F1", "Accuracy"]
    macro, accuracy = figure.data
    assert list(macro.x) == ["GalSpecEncoder-KB", "random forest"]
    assert list(macro.y) == [results[m]["macro_f1"] for m in macro.x]
    assert_error_bars_match(macro, [results[m]["macro_f1_ci"] for m in macro.x])
    assert_error_bars_match(accuracy, [results[m]["accuracy_ci"] for m in accuracy.x])


def test_classification_bars_without_intervals_have_no_error_bars():
    plain = {"a": {"macro_f1": 0.5, "accuracy": 0.6}}
    figure = figures.classification_bars(plain, "t")
    assert figure.data[0].error_y.array is None


def test_per_class_f1_groups_bars_by_class():
    results = {"KB": report(0.9, 0), "RF": report(0.7, 1)}
    figure = figures.per_class_f1(results, "Per-class F1")
    assert names(figure) == ["KB", "RF"] and figure.layout.barmode == "group"
    for trace in figure.data:
        assert list(trace.x) == LABELS
        assert list(trace.y) == [results[trace.name]["per_class"][label]["f1"] for label in LABELS]
        assert_error_bars_match(trace, [results[trace.name]["per_class"][label]["f1_ci"] for label in LABELS])


def test_search_bars_with_the_papers_reference_values():
    tasks = {"liner": search(0), "lens": search(1), "outlier": search(2)}
    reference = {  # Table 4; no outlier entry, to check that a missing reference is left out
        "liner": {"precision": 0.8727, "recall": 0.9460, "f1": 0.9079},
        "lens": {"precision": 0.9937, "recall": 0.9476, "f1": 0.9701},
    }
    figure = figures.search_bars(tasks, reference)
    assert names(figure) == ["Precision", "Recall", "F1", "Precision, paper", "Recall, paper", "F1, paper"]
    precision = figure.data[0]
    assert list(precision.x) == ["liner", "lens", "outlier"]
    assert_error_bars_match(precision, [tasks[t]["precision_ci"] for t in precision.x])
    paper_recall = figure.data[4]
    assert list(paper_recall.x) == ["liner", "lens"] and list(paper_recall.y) == [0.9460, 0.9476]
    assert paper_recall.offsetgroup == figure.data[1].offsetgroup  # drawn on the recall bars
    assert names(figures.search_bars(tasks)) == ["Precision", "Recall", "F1"]


def test_sweep_lines_one_group_per_task_sorted_by_x():
    rows = [
        {"k": k, "task": task, "precision": p, "precision_ci": [p - 0.05, p + 0.02], "recall": p, "f1": p}
        for task in ("liner", "lens")
        for k, p in ((9, 0.7), (3, 0.9), (5, 0.8))
    ]
    figure = figures.sweep_lines(rows, "k", "Top K", "K")
    assert names(figure) == ["liner precision", "liner recall", "liner f1", "lens precision", "lens recall", "lens f1"]
    precision = figure.data[0]
    assert list(precision.x) == [3, 5, 9] and list(precision.y) == [0.9, 0.8, 0.7]
    assert_error_bars_match(precision, [[0.85, 0.92], [0.75, 0.82], [0.65, 0.72]])
    assert figure.data[1].error_y.array is None  # recall carried no interval


def test_sweep_lines_without_tasks():
    rows = [{"proportion": x, "precision": 0.9 - x, "recall": 0.5 + x, "f1": 0.7} for x in (0.1, 0.3)]
    assert names(figures.sweep_lines(rows, "proportion", "Lens proportion", "share of lenses")) == [
        "Precision",
        "Recall",
        "F1",
    ]


def test_histograms_overlay_each_set_without_missing_values():
    values = {"exp": np.array([0.1, 0.2, np.inf, 0.3]), "linear": np.linspace(0, 1, 50)}
    figure = figures.histograms(values, "Weights", "weight")
    assert names(figure) == ["exp (n=3)", "linear (n=50)"] and figure.layout.barmode == "overlay"
    assert list(figure.data[0].x) == [0.1, 0.2, 0.3]


def test_retrieval_time_draws_measured_and_fitted_lines_on_log_axes():
    rows = [
        {
            "size": s,
            "kind": kind,
            "build_s": 0.1,
            "batch_ms_per_query": t,
            "single_query_ms_p50": t,
            "recall_at_k": r,
            "synthetic_fraction": 0.5,
            "threads": 2,
        }
        for kind, scale, r in (("flat", 1e-4, 1.0), ("hnsw", 1e-6, 0.93))
        for s, t in ((1_000, scale * 1_000 + 0.01), (10_000, scale * 10_000 + 0.01))
    ]
    fits = {"flat": {"slope_ms_per_vector": 1e-4, "intercept_ms": 0.01, "loglog_slope": 0.9, "r2": 1.0}}
    figure = figures.retrieval_time(rows, fits)
    assert names(figure)[0] == "flat" and names(figure)[1].startswith("flat fit") and names(figure)[2] == "hnsw"
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    fitted = figure.data[1]
    assert fitted.line.dash == "dash"
    np.testing.assert_allclose(fitted.y, 1e-4 * np.asarray(fitted.x) + 0.01)
    assert "recall@k 0.930" in figure.data[2].text[0]


def test_case_study_offsets_spectra_and_marks_lines_in_the_rest_frame():
    wave = np.linspace(3850.0, 9000.0, 500)  # observed
    flux = np.ones(500)
    valid = np.ones(500, bool)
    valid[:10] = False
    neighbours = [
        {
            "flux": flux * 2,
            "label": "LINER",
            "distance": 0.41,
            "weight": 0.68,
            "specobjid": 111,
            "z": 0.1,
            "valid": valid,
        },
        {"flux": flux, "label": "Seyfert", "distance": 0.52, "weight": 0.32, "specobjid": 222},
    ]
    lines = {"Hα": 6564.6, "[O III]": 5008.2, "Lyα": 1215.7}
    figure = figures.case_study(wave, flux, neighbours, lines, "spec-0881-52368-0036", query_z=0.0668)
    assert names(figure)[0] == "query" and names(figure)[1].startswith("#1 LINER") and "111" in names(figure)[1]
    query, first, second = figure.data
    assert query.x[0] == pytest.approx(3850.0 / 1.0668) and first.x[0] == pytest.approx(3850.0 / 1.1)
    assert np.nanmin(query.y) > np.nanmax(first.y) - 2 and np.nanmean(first.y) > np.nanmean(second.y)  # stacked
    assert np.isnan(first.y[:10]).all()  # invalid pixels are gaps
    marked = sorted(shape.x0 for shape in figure.layout.shapes)
    assert marked == [5008.2, 6564.6]  # Lyα lies outside every spectrum
    assert {a.text for a in figure.layout.annotations} == {"Hα", "[O III]"}


def test_case_study_rejects_a_flux_on_another_grid():
    with pytest.raises(ValueError, match="#1"):
        short = {"flux": np.ones(9), "label": "x", "distance": 0, "weight": 1, "specobjid": 1}
        figures.case_study(np.arange(10.0), np.ones(10), [short], {}, "t")


def test_write_figure_writes_offline_html_and_survives_a_failed_png(tmp_path, monkeypatch):
    def no_chrome(self, *args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.\nmore detail")

    monkeypatch.setattr(figure_files, "png_browser", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(go.Figure, "write_image", no_chrome)
    figure = figures.histograms({"d": np.arange(10.0)}, "Distances", "L2 distance")
    result = figure_files.write_figure(figure, tmp_path / "report", "distances")
    assert result == {
        "html": "distances.html",
        "png": None,
        "png_error": "RuntimeError: Kaleido requires Google Chrome to be installed.",
    }
    html = (tmp_path / "report" / "distances.html").read_text()
    sources = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert sources == ["plotly.min.js"]  # relative, no CDN
    assert not re.search(r"https?://[^\"' ]*plotly[^\"' ]*\.js", html)
    assert (tmp_path / "report" / "plotly.min.js").stat().st_size > 1_000_000
    assert not (tmp_path / "report" / "distances.png").exists()
    figure_files.write_figure(figure, tmp_path / "report", "again")  # the bundle is shared, written once
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["again.html", "distances.html", "plotly.min.js"]


def test_write_figure_reports_a_png_when_export_works(tmp_path, monkeypatch):
    monkeypatch.setattr(figure_files, "png_browser", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(go.Figure, "write_image", lambda self, path, *a, **k: path.write_bytes(b"\x89PNG"))
    result = figure_files.write_figure(go.Figure(), tmp_path, "empty")
    assert result == {"html": "empty.html", "png": "empty.png", "png_error": None}


def test_without_a_browser_only_html_is_written_and_no_png_server_starts(tmp_path, monkeypatch):
    import kaleido

    def must_not_start(*args, **kwargs):
        raise AssertionError("kaleido's server started with no browser: it would hang")

    monkeypatch.setattr(figure_files, "png_browser", lambda: None)
    monkeypatch.setattr(kaleido, "start_sync_server", must_not_start)
    monkeypatch.setattr(go.Figure, "write_image", must_not_start)
    with figure_files.image_server():
        result = figure_files.write_figure(go.Figure(), tmp_path, "empty")
    assert result["png"] is None and "no Chrome or chromium" in result["png_error"]
    assert (tmp_path / "empty.html").exists()


def test_write_figure_refuses_a_path_as_name(tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        figure_files.write_figure(go.Figure(), tmp_path, "../outside")
