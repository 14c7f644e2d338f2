"""Plots the site and the experiments share: BPT diagrams with their demarcation lines, the emission
lines marked on spectra, and a task's knowledge-base versions side by side.

Every builder takes plain dicts, lists and arrays (or objects read by attribute) and returns a
``plotly.graph_objects.Figure``. Pure plotly/numpy; never imports Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kb.bpt import kauffmann03, kewley01, kewley01_o1, kewley01_s2, kewley06_o1, kewley06_s2, schawinski07

# Okabe & Ito (2008): colours told apart with every common colour-vision deficiency. The query is black and
# neighbour i takes NEIGHBOUR_COLOURS[(i - 1) % 7], in the neighbour table, the spectra and the BPT diagrams.
QUERY_COLOUR = "#000000"
NEIGHBOUR_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
PALETTE = (QUERY_COLOUR, *NEIGHBOUR_COLOURS)
BPT_MIN_SNR = 3.0  # a point whose ratio rests on a weaker line is drawn hollow
# Where each BPT diagram names its regions: (x, y) in its own log ratios
BPT_REGIONS = {
    "n2": {"SF": (-1.2, -0.6), "Comp": (-0.15, -0.9), "Seyfert": (-0.4, 1.2), "LINER": (0.55, -0.2)},
    "s2": {"SF": (-0.8, -0.6), "Seyfert": (-0.6, 1.2), "LINER": (0.5, -0.2)},
    "o1": {"SF": (-1.7, -0.6), "Seyfert": (-1.4, 1.2), "LINER": (-0.05, -0.2)},
}


def spectrum_colour(number: int) -> str:
    """The colour of the query (0) or of neighbour ``number`` (1, 2, ...), the same on every plot and table."""
    return QUERY_COLOUR if number == 0 else NEIGHBOUR_COLOURS[(number - 1) % len(NEIGHBOUR_COLOURS)]


# Lines marked on plots: rest-frame vacuum wavelength, Angstrom (SDSS SPZLINE LINEWAVE where it has them)
EMISSION_LINES = {
    "[O II] 3727": 3728.48,
    "H-delta": 4102.89,
    "H-gamma": 4341.68,
    "H-beta": 4862.68,
    "[O III] 4959": 4960.30,
    "[O III] 5007": 5008.24,
    "Mg b": 5175.0,
    "Na D": 5894.0,
    "[O I] 6300": 6302.05,
    "[N II] 6548": 6549.86,
    "H-alpha": 6564.61,
    "[N II] 6583": 6585.27,
    "[S II] 6716": 6718.29,
    "[S II] 6731": 6732.68,
    "Ca II K": 3934.78,
    "Ca II H": 3969.59,
    "G band": 4305.0,
}
# The lines of the BPT diagrams, as marked on a case study's spectra
DIAGNOSTIC_LINES = {
    name: EMISSION_LINES[name]
    for name in (
        "H-beta",
        "[O III] 4959",
        "[O III] 5007",
        "[O I] 6300",
        "[N II] 6548",
        "H-alpha",
        "[N II] 6583",
        "[S II] 6716",
        "[S II] 6731",
    )
}


def error_bars(values: Sequence[float | None], intervals: Sequence[Sequence[float] | None]) -> dict | None:
    """Plotly's asymmetric error bars from [lo, hi] intervals around values (none where a value or its
    interval is missing); None when no value has an interval."""
    if all(interval is None for interval in intervals):
        return None
    plus, minus = [], []
    for value, interval in zip(values, intervals):
        lo, hi = interval if interval is not None and value is not None else (value, value)
        plus.append(hi - value if value is not None else None)
        minus.append(value - lo if value is not None else None)
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


# BPT demarcations in the [N II] diagram, x = log10([N II]6583/H-alpha), y = log10([O III]5007/H-beta).
KAUFFMANN_2003 = "Kauffmann et al. (2003)"  # y = 0.61 / (x - 0.05) + 1.30, x < 0.05: star-forming below
KEWLEY_2001 = "Kewley et al. (2001)"  # y = 0.61 / (x - 0.47) + 1.19, x < 0.47: maximum starburst
SCHAWINSKI_2007 = "Schawinski et al. (2007) Seyfert/LINER"  # y = 1.05 x + 0.45, above the Kewley curve
KEWLEY_2006 = "Kewley et al. (2006) Seyfert/LINER"  # [S II]: y = 1.89 x + 0.76; [O I]: y = 1.18 x + 1.30
PAPER_B1 = "Tang et al. (2025) Eq. B1"  # y = 1.18 x + 0.77, as printed in the paper's appendix B.2


def bpt_diagram(points: Sequence[dict], title: str, *, show_paper_b1: bool = False) -> go.Figure:
    """The [N II] BPT diagram: log10([N II]6583/H-alpha) against log10([O III]5007/H-beta).

    points are ``{"x", "y", "name", "label"}``, one trace per label; points without finite x and y are
    left out. Curves: Kauffmann et al. 2003 (MNRAS 346, 1055; star-forming below), Kewley et al. 2001
    (ApJ 556, 121; maximum starburst) and the Seyfert/LINER line of Schawinski et al. 2007 (MNRAS 382,
    1415; y = 1.05 x + 0.45 above the Kewley curve), the one derived for this diagram: Kewley et al.
    2006's Seyfert/LINER lines belong to the [S II] and [O I] diagrams. The paper's Eq. B1,
    y = 1.18 x + 0.77, attributed to such a source, matches none of them (its slope is Kewley 2006's [O I]
    line's); ``show_paper_b1`` draws it too, dotted, for comparison with appendix B.2.
    """
    figure = go.Figure()

    def finite(value) -> bool:
        return value is not None and bool(np.isfinite(value))

    shown = [p for p in points if finite(p.get("x")) and finite(p.get("y"))]
    for i, label in enumerate(dict.fromkeys(p["label"] for p in shown)):
        mine = [p for p in shown if p["label"] == label]
        figure.add_trace(
            go.Scatter(
                x=[p["x"] for p in mine],
                y=[p["y"] for p in mine],
                mode="markers",
                name=label,
                text=[p["name"] for p in mine],
                marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
                hovertemplate="%{text}<br>x=%{x:.3f}, y=%{y:.3f}<extra>" + label + "</extra>",
            )
        )
    x = np.linspace(-2.0, 0.0, 200)
    figure.add_trace(
        go.Scatter(x=x, y=kauffmann03(x), mode="lines", name=KAUFFMANN_2003, line={"color": "black", "dash": "dash"})
    )
    x = np.linspace(-2.0, 0.4, 240)
    figure.add_trace(go.Scatter(x=x, y=kewley01(x), mode="lines", name=KEWLEY_2001, line={"color": "black"}))
    # where 1.05 x + 0.45 meets the Kewley curve: 1.05 x^2 - 1.2335 x - 0.2622 = 0
    start = (1.2335 - np.sqrt(1.2335**2 + 4 * 1.05 * 0.2622)) / (2 * 1.05)  # about -0.184
    x = np.linspace(start, 0.8, 50)
    figure.add_trace(go.Scatter(x=x, y=schawinski07(x), mode="lines", name=SCHAWINSKI_2007, line={"color": "grey"}))
    if show_paper_b1:
        x = np.linspace(-0.6, 0.8, 50)
        figure.add_trace(
            go.Scatter(x=x, y=1.18 * x + 0.77, mode="lines", name=PAPER_B1, line={"color": "grey", "dash": "dot"})
        )
    figure.update_layout(
        title=title,
        xaxis={"title": "log₁₀([N II] 6583 / Hα)", "range": [-2.0, 1.0]},
        yaxis={"title": "log₁₀([O III] 5007 / Hβ)", "range": [-1.5, 1.5]},
    )
    return figure


def _meets(f, g, lo: float, hi: float) -> float:
    """Where curve f meets curve g on [lo, hi] (one crossing; found on a fine grid)."""
    x = np.linspace(lo, hi, 20001)
    gap = f(x) - g(x)
    return float(x[np.argmax(np.sign(gap) != np.sign(gap[0]))])


# The three diagrams: ratio on x, its axis title, and the curves as (name, function, x from, x to, style).
BPT_PANELS = {
    "n2": (
        "log₁₀([N II] 6583 / Hα)",
        [
            (KAUFFMANN_2003, kauffmann03, -2.0, 0.0, {"color": "black", "dash": "dash"}),
            (KEWLEY_2001, kewley01, -2.0, 0.4, {"color": "black"}),
        ],
    ),
    "s2": (
        "log₁₀([S II] 6716+6731 / Hα)",
        [
            (KEWLEY_2001, kewley01_s2, -1.2, 0.25, {"color": "black"}),
            (KEWLEY_2006, kewley06_s2, _meets(kewley06_s2, kewley01_s2, -1.0, 0.3), 0.6, {"color": "grey"}),
        ],
    ),
    "o1": (
        "log₁₀([O I] 6300 / Hα)",
        [
            (KEWLEY_2001, kewley01_o1, -2.2, -0.7, {"color": "black"}),
            (KEWLEY_2006, kewley06_o1, _meets(kewley06_o1, kewley01_o1, -2.0, -0.7), 0.2, {"color": "grey"}),
        ],
    ),
}


def bpt_panels(points: Sequence[dict], title: str = "") -> go.Figure:
    """The [N II], [S II] and [O I] BPT diagrams side by side, each with its Kauffmann 2003, Kewley 2001
    and Kewley 2006 lines and its regions named, and the points placed where their ratios exist.

    points are ``{"name", "label", "query": bool, "number"}`` plus any of the log ratios ``n2``, ``s2``,
    ``o1`` and ``o3`` (``kb.bpt.bpt_ratios``), and optionally ``errors`` {ratio: dex} and ``weak`` (ratios
    resting on a line below BPT_MIN_SNR, ``kb.bpt.bpt_ratio_errors``). The query is a black star, neighbour
    i a dot of ``spectrum_colour(i)`` marked with its number; a weak ratio's point is hollow.
    """
    figure = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04)
    in_legend = set()  # each curve and each spectrum once in the legend
    for col, (ratio, (x_title, curves)) in enumerate(BPT_PANELS.items(), start=1):
        for name, curve, lo, hi, style in curves:
            x = np.linspace(lo, hi, 200)
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=curve(x),
                    mode="lines",
                    name=name,
                    line=style,
                    legendgroup=name,
                    showlegend=name not in in_legend,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            in_legend.add(name)
        for region, (x, y) in BPT_REGIONS[ratio].items():
            figure.add_annotation(x=x, y=y, text=region, showarrow=False, font={"color": "#555"}, row=1, col=col)
        for index, p in enumerate(points):
            if p.get(ratio) is None or p.get("o3") is None:
                continue
            figure.add_trace(_bpt_point(p, ratio, p.get("number", index), p["name"] not in in_legend), row=1, col=col)
            in_legend.add(p["name"])
        figure.update_xaxes(title_text=x_title, row=1, col=col)
    figure.update_yaxes(title_text="log₁₀([O III] 5007 / Hβ)", range=[-1.5, 1.5], row=1, col=1)
    figure.update_xaxes(range=[-2.0, 1.0], row=1, col=1)
    figure.update_xaxes(range=[-1.2, 0.8], row=1, col=2)
    figure.update_xaxes(range=[-2.2, 0.2], row=1, col=3)
    figure.update_layout(title=title, legend={"orientation": "h", "y": -0.25}, margin={"t": 40 if title else 20})
    return figure


def _bpt_point(p: dict, ratio: str, number: int, in_legend: bool) -> go.Scatter:
    colour = spectrum_colour(number)
    errors, weak = p.get("errors", {}), p.get("weak", ())
    hollow = ratio in weak or "o3" in weak
    return go.Scatter(
        x=[p[ratio]],
        y=[p["o3"]],
        mode="markers" if p.get("query") else "markers+text",
        text=[str(number)],
        textposition="top right",
        textfont={"color": colour},
        name=p["name"],
        legendgroup=p["name"],
        showlegend=in_legend,
        error_x={"array": [errors[ratio]], "color": colour, "thickness": 1} if ratio in errors else None,
        error_y={"array": [errors["o3"]], "color": colour, "thickness": 1} if "o3" in errors else None,
        marker={
            "size": 15 if p.get("query") else 10,
            "symbol": ("star" if p.get("query") else "circle") + ("-open" if hollow else ""),
            "color": colour,
            "line": {"width": 1.5 if hollow else 1, "color": colour if hollow else "white"},
        },
        hovertemplate=f"{p['name']} ({p.get('label', '')}){' · a line below S/N 3' if hollow else ''}"
        "<br>x=%{x:.3f}, y=%{y:.3f}<extra></extra>",
    )


def version_figures(versions: Sequence, scores: Sequence[str]) -> dict:
    """Plotly figures (as JSON) of knowledge-base versions' composition and their ``scores`` (names in
    each version's ``evaluation``) on the test reserve; versions are read by attribute (``version``,
    ``composition``, ``evaluation``)."""
    if not versions:
        return {}
    versions = sorted(versions, key=lambda kb: kb.version)
    names = [f"v{kb.version}" for kb in versions]
    composition = go.Figure(
        [
            go.Bar(name=label, x=names, y=[kb.composition.get(label, 0) for kb in versions])
            for label in sorted({label for kb in versions for label in kb.composition})
        ]
    )
    composition.update_layout(barmode="stack", title="Entries per label", yaxis_title="entries", margin={"t": 40})
    scored = go.Figure()
    for metric in scores:
        values = [kb.evaluation.get(metric) for kb in versions]
        intervals = [kb.evaluation.get(f"{metric}_ci") for kb in versions]
        scored.add_trace(
            go.Bar(name=metric.replace("_", "-"), x=names, y=values, error_y=error_bars(values, intervals))
        )
    scored.update_layout(
        barmode="group",
        yaxis={"range": [0, 1], "title": "on the test reserve (95% interval)"},
        title="Scores of each version's vote, under its own policy",
        margin={"t": 40},
    )
    return {"composition": composition.to_plotly_json(), "scores": scored.to_plotly_json()}


def share_figure(rows: Sequence[dict], in_service_share: float | None = None) -> dict:
    """Plotly figure (as JSON) of a search task's precision, recall and F1 on the validation reserve
    against the share of targets in its knowledge base (``rows`` as ``ShareSweep.rows``), with the share
    of the version in service marked."""
    rows = sorted(rows, key=lambda row: row["share"])
    shares = [row["share"] for row in rows]
    figure = go.Figure()
    for metric in ("precision", "recall", "f1"):
        values = [row[metric] for row in rows]
        figure.add_trace(
            go.Scatter(
                x=shares,
                y=values,
                name=metric.replace("f1", "F1"),
                mode="lines+markers",
                error_y=error_bars(values, [row.get(f"{metric}_ci") for row in rows]),
                customdata=[[row["size"], row["targets"]] for row in rows],
                hovertemplate=f"{metric} %{{y:.3f}} at share %{{x:.3f}}"
                "<br>%{customdata[0]} entries, %{customdata[1]} targets<extra></extra>",
            )
        )
    if in_service_share is not None:
        figure.add_vline(x=in_service_share, line_dash="dot", annotation_text="in service")
    figure.update_layout(
        title="Precision and recall against the share of targets",
        xaxis={"title": "share of targets in the knowledge base", "type": "log"},
        yaxis={"range": [0, 1.05], "title": "on the validation reserve (95% interval)"},
        margin={"t": 40},
    )
    return figure.to_plotly_json()
