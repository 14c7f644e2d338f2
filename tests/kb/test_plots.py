"""The plots the site and the experiments share: BPT diagrams, and a task's versions side by side."""

from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from kb import plots


def names(figure: go.Figure) -> list[str]:
    return [trace.name for trace in figure.data]


def test_bpt_diagram_has_points_per_label_and_the_demarcations():
    points = [
        {"x": -0.5, "y": -0.3, "name": "spec-a", "label": "star-forming"},
        {"x": 0.1, "y": 0.2, "name": "spec-b", "label": "LINER"},
        {"x": 0.2, "y": 0.1, "name": "spec-c", "label": "LINER"},
        {"x": float("nan"), "y": 0.1, "name": "spec-d", "label": "normal"},
    ]
    figure = plots.bpt_diagram(points, "BPT")
    assert names(figure) == ["star-forming", "LINER", plots.KAUFFMANN_2003, plots.KEWLEY_2001, plots.SCHAWINSKI_2007]
    assert list(figure.data[1].text) == ["spec-b", "spec-c"]
    kauffmann, kewley, seyfert = figure.data[2:]
    x = np.asarray(kauffmann.x)
    np.testing.assert_allclose(kauffmann.y, 0.61 / (x - 0.05) + 1.30)
    assert max(kauffmann.x) < 0.05 and max(kewley.x) < 0.47
    # the Seyfert/LINER line starts on the Kewley curve
    assert seyfert.y[0] == pytest.approx(0.61 / (seyfert.x[0] - 0.47) + 1.19, abs=1e-3)
    assert names(plots.bpt_diagram(points, "BPT", show_paper_b1=True))[-1] == plots.PAPER_B1


def test_the_three_bpt_panels_place_each_point_where_its_ratios_exist():
    points = [
        {"name": "query", "label": "liner", "query": True, "n2": 0.1, "o3": 0.2, "s2": -0.3},
        {"name": "#1", "label": "seyfert", "n2": -0.2, "o3": 0.8},
        {"name": "#2", "label": "normal", "n2": 0.3},
    ]  # no [O III]/H-beta: on no panel
    points[1] |= {"number": 1, "errors": {"n2": 0.05, "o3": 0.1}, "weak": ["o3"]}
    figure = plots.bpt_panels(points)
    markers = [trace for trace in figure.data if "markers" in trace.mode]
    assert [(trace.name, trace.xaxis, trace.x[0]) for trace in markers] == [
        ("query", "x", 0.1),
        ("#1", "x", -0.2),
        ("query", "x2", -0.3),
    ]
    query, first, _ = markers
    assert markers[0].marker.color == markers[2].marker.color == plots.QUERY_COLOUR  # a spectrum keeps its colour
    assert first.marker.color == plots.spectrum_colour(1) and first.text == ("1",)  # numbered as in the table
    assert first.marker.symbol == "circle-open" and query.marker.symbol == "star"  # a weak line: hollow
    assert first.error_x.array == (0.05,) and first.error_y.array == (0.1,) and query.error_x.array is None
    regions = {(a.text, a.xref) for a in figure.layout.annotations}
    assert {("SF", "x"), ("Comp", "x"), ("Seyfert", "x"), ("LINER", "x"), ("LINER", "x3")} <= regions


def test_no_neighbour_ever_takes_the_querys_colour():
    neighbours = [plots.spectrum_colour(i) for i in range(1, 21)]
    assert plots.QUERY_COLOUR not in neighbours and len(set(neighbours[:7])) == 7


def test_version_figures_stack_the_composition_and_bar_each_score_with_its_interval():
    versions = [
        SimpleNamespace(
            version=2,
            composition={"lens": 5, "other": 20},
            evaluation={"f1": 0.6, "f1_ci": [0.5, 0.7], "precision": 0.8},
        ),
        SimpleNamespace(version=1, composition={"lens": 4}, evaluation={}),
    ]
    figures = plots.version_figures(versions, ("precision", "f1"))
    composition, scores = figures["composition"]["data"], figures["scores"]["data"]
    assert [(bar["name"], list(bar["x"]), list(bar["y"])) for bar in composition] == [
        ("lens", ["v1", "v2"], [4, 5]),
        ("other", ["v1", "v2"], [0, 20]),
    ]
    f1 = next(bar for bar in scores if bar["name"] == "f1")
    assert list(f1["y"]) == [None, 0.6]
    assert list(f1["error_y"]["array"]) == [None, pytest.approx(0.1)]
    assert list(f1["error_y"]["arrayminus"]) == [None, pytest.approx(0.1)]
    precision = next(bar for bar in scores if bar["name"] == "precision")
    assert "error_y" not in precision or precision["error_y"].get("array") is None  # no interval, no bar
    assert plots.version_figures([], ("f1",)) == {}


def test_the_diagnostic_lines_are_the_emission_lines_the_bpt_diagrams_use():
    assert set(plots.DIAGNOSTIC_LINES) <= set(plots.EMISSION_LINES)
    assert {"H-beta", "[O III] 5007", "H-alpha", "[N II] 6583", "[S II] 6716", "[O I] 6300"} <= set(
        plots.DIAGNOSTIC_LINES
    )
    assert all(3500 < wave < 7000 for wave in np.array(list(plots.EMISSION_LINES.values())))
