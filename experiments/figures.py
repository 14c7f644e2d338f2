"""Plotly figures for the evaluation report (paper Figures 4, 5, A1, B1, C1 and Tables 2, 4).

Every builder takes plain dicts and lists, as written by ``inference.metrics`` and ``experiments.timing``
(or read back from their JSON), and returns a ``plotly.graph_objects.Figure``. Where a point estimate
comes with an interval (a ``..._ci`` entry ``[lo, hi]``), it is drawn as an asymmetric error bar.

``experiments.figure_files`` writes them. Pure plotly/numpy; never imports Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from kb.plots import PALETTE, error_bars

LINE_MARK = {"dash": "dot", "width": 1, "color": "grey"}  # an emission line marked on a spectrum
METRICS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))


def _with_interval(entry: dict, metric: str) -> tuple[float, list[float] | None]:
    return float(entry[metric]), entry.get(f"{metric}_ci")


def classification_bars(results: dict[str, dict], title: str) -> go.Figure:
    """Macro-F1 and accuracy per method (Table 2): results {method: classification_report dict}."""
    methods = list(results)
    figure = go.Figure()
    for metric, name, colour in (("macro_f1", "Macro-F1", PALETTE[0]), ("accuracy", "Accuracy", PALETTE[1])):
        values, intervals = zip(*(_with_interval(results[m], metric) for m in methods)) if methods else ((), ())
        figure.add_trace(
            go.Bar(x=methods, y=list(values), name=name, marker_color=colour, error_y=error_bars(values, intervals))
        )
    figure.update_layout(
        title=title, barmode="group", yaxis={"title": "score", "range": [0, 1.05]}, xaxis_title="method"
    )
    return figure


def per_class_f1(results: dict[str, dict], title: str) -> go.Figure:
    """Per-class F1 per method, grouped by class: results {method: classification_report dict}."""
    labels = list(dict.fromkeys(label for report in results.values() for label in report["per_class"]))
    figure = go.Figure()
    for i, (method, report) in enumerate(results.items()):
        entries = [report["per_class"].get(label) for label in labels]
        values = [entry["f1"] if entry else None for entry in entries]
        intervals = [entry.get("f1_ci") if entry else None for entry in entries]
        figure.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=method,
                marker_color=PALETTE[i % len(PALETTE)],
                error_y=error_bars([v or 0.0 for v in values], intervals),
            )
        )
    figure.update_layout(
        title=title,
        barmode="group",
        yaxis={"title": "F1 (one class against the rest)", "range": [0, 1.05]},
        xaxis_title="class",
    )
    return figure


def search_bars(
    search: dict[str, dict], reference: dict[str, dict] | None = None, *, title: str = "Target galaxy search"
) -> go.Figure:
    """Precision, recall and F1 per search task (Table 4): search {task: search_report dict}; the paper's
    values, if given as reference {task: {"precision", "recall", "f1"}}, are diamonds on their bars."""
    tasks = list(search)
    figure = go.Figure()
    for i, (metric, name) in enumerate(METRICS):
        values, intervals = zip(*(_with_interval(search[t], metric) for t in tasks)) if tasks else ((), ())
        figure.add_trace(
            go.Bar(
                x=tasks,
                y=list(values),
                name=name,
                offsetgroup=metric,
                marker_color=PALETTE[i],
                error_y=error_bars(values, intervals),
            )
        )
    for i, (metric, name) in enumerate(METRICS):
        known = [t for t in tasks if reference and metric in reference.get(t, {})]
        if known:
            figure.add_trace(
                go.Scatter(
                    x=known,
                    y=[reference[t][metric] for t in known],
                    name=f"{name}, paper",
                    mode="markers",
                    offsetgroup=metric,
                    marker={
                        "symbol": "diamond",
                        "size": 11,
                        "color": "black",
                        "line": {"color": PALETTE[i], "width": 2},
                    },
                    legendgroup="paper",
                )
            )
    figure.update_layout(
        title=title,
        barmode="group",
        scattermode="group",
        yaxis={"title": "score", "range": [0, 1.05]},
        xaxis_title="task",
    )
    return figure


def sweep_lines(rows: Sequence[dict], x: str, title: str, x_title: str) -> go.Figure:
    """Precision, recall and F1 against ``x`` (Figure 4: lens proportion; Figure 5: K).

    rows are ``{x: value, "precision": p, "precision_ci": [lo, hi], "recall": ..., "f1": ...}``; rows
    with a ``"task"`` give one group of three lines per task (trace names "task precision").
    """
    tasks = list(dict.fromkeys(row.get("task") for row in rows))
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    figure = go.Figure()
    for j, task in enumerate(tasks):
        mine = sorted((row for row in rows if row.get("task") == task), key=lambda row: row[x])
        for i, (metric, name) in enumerate(METRICS):
            values, intervals = zip(*(_with_interval(row, metric) for row in mine))
            figure.add_trace(
                go.Scatter(
                    x=[row[x] for row in mine],
                    y=list(values),
                    mode="lines+markers",
                    name=f"{task} {name.lower()}" if task is not None else name,
                    legendgroup=str(task),
                    line={"color": PALETTE[i], "dash": dashes[j % len(dashes)]},
                    error_y=error_bars(values, intervals),
                )
            )
    figure.update_layout(title=title, xaxis_title=x_title, yaxis={"title": "score", "range": [0, 1.05]})
    return figure


def histograms(values: dict[str, np.ndarray], title: str, x_title: str, *, bins: int = 60) -> go.Figure:
    """Overlaid histograms, normalised to probability density so that sets of different sizes compare
    (Figure A1: pairwise distances; the weights under each weight function). Non-finite values dropped."""
    figure = go.Figure()
    for i, (name, array) in enumerate(values.items()):
        array = np.asarray(array, dtype=np.float64).ravel()
        array = array[np.isfinite(array)]
        figure.add_trace(
            go.Histogram(
                x=array,
                name=f"{name} (n={len(array):,})",
                nbinsx=bins,
                histnorm="probability density",
                opacity=0.6,
                marker_color=PALETTE[i % len(PALETTE)],
            )
        )
    figure.update_layout(title=title, barmode="overlay", xaxis_title=x_title, yaxis_title="probability density")
    return figure


def retrieval_time(rows: Sequence[dict], fits: dict[str, dict], *, time_key: str = "batch_ms_per_query") -> go.Figure:
    """Search time per query against knowledge-base size, log-log (Figure C1): one line per index kind
    from ``experiments.timing.retrieval_time_curve`` rows, its fitted straight line (``fit_lines``) dashed;
    recall@k, build time and the synthetic share in the hover text."""
    figure = go.Figure()
    kinds = list(dict.fromkeys(row["kind"] for row in rows))
    for i, kind in enumerate(kinds):
        mine = sorted((row for row in rows if row["kind"] == kind), key=lambda row: row["size"])
        colour = PALETTE[i % len(PALETTE)]
        figure.add_trace(
            go.Scatter(
                x=[row["size"] for row in mine],
                y=[row[time_key] for row in mine],
                mode="lines+markers",
                name=kind,
                line={"color": colour},
                legendgroup=kind,
                text=[
                    f"recall@k {row['recall_at_k']:.3f}<br>build {row['build_s']:.2f} s<br>"
                    f"single query p50 {row['single_query_ms_p50']:.3f} ms<br>"
                    f"synthetic {100 * row['synthetic_fraction']:.0f}%"
                    for row in mine
                ],
                hovertemplate="%{x:,} vectors: %{y:.4f} ms/query<br>%{text}<extra>" + kind + "</extra>",
            )
        )
        fit = fits.get(kind)
        if fit and mine:
            sizes = np.geomspace(mine[0]["size"], mine[-1]["size"], 50)
            line = fit["slope_ms_per_vector"] * sizes + fit["intercept_ms"]
            shown = line > 0  # a log axis cannot show a negative intercept's part of the line
            figure.add_trace(
                go.Scatter(
                    x=sizes[shown],
                    y=line[shown],
                    mode="lines",
                    line={"color": colour, "dash": "dash"},
                    legendgroup=kind,
                    name=f"{kind} fit: {fit['slope_ms_per_vector']:.3g} ms/vector + {fit['intercept_ms']:.3g} ms "
                    f"(R² {fit['r2']:.3f})",
                )
            )
    label = "batched search, ms per query" if time_key == "batch_ms_per_query" else time_key.replace("_", " ")
    figure.update_layout(
        title="Retrieval time against knowledge-base size",
        xaxis={"title": "knowledge-base size (vectors)", "type": "log"},
        yaxis={"title": label, "type": "log"},
    )
    return figure


def _with_gaps(flux, valid) -> np.ndarray:
    flux = np.asarray(flux, dtype=np.float64).copy()
    if valid is not None:
        flux[~np.asarray(valid, dtype=bool)] = np.nan  # a gap, not a measured zero
    return flux


def _offset_step(fluxes: list[np.ndarray]) -> float:
    """How far apart stacked spectra are drawn: a little more than a typical one's 1-99 percentile range."""
    spans = [np.nanpercentile(f, 99) - np.nanpercentile(f, 1) for f in fluxes if np.isfinite(f).any()]
    return 1.1 * float(np.median(spans)) if spans and np.median(spans) > 0 else 1.0


def case_study(
    wave: np.ndarray,
    query_flux: np.ndarray,
    neighbours: Sequence[dict],
    lines: dict[str, float],
    title: str,
    *,
    query_z: float = 0.0,
    query_valid: np.ndarray | None = None,
) -> go.Figure:
    """A query spectrum above its neighbours' spectra, offset vertically, with diagnostic lines (Figure B1).

    wave (L,) Angstrom is the grid every flux (L,) lies on (``kb.preprocess.wave_grid()``, observed
    frame). Each spectrum is drawn on its own rest frame, wave / (1 + z), with ``query_z`` and each
    neighbour's ``"z"`` (0 when absent: wave is then taken as rest frame already), so that the lines
    ``{name: rest-frame Angstrom}`` fall on every spectrum. Neighbours are dicts with ``flux``,
    ``label``, ``distance``, ``weight``, ``specobjid`` and optionally ``z`` and ``valid`` (L,) bool;
    invalid pixels are left as gaps.
    """
    wave = np.asarray(wave, dtype=np.float64)
    spectra = [("query", _with_gaps(query_flux, query_valid), query_z)]
    for i, n in enumerate(neighbours, start=1):
        name = f"#{i} {n['label']} · d={n['distance']:.3f} · w={n['weight']:.3f} · {n['specobjid']}"
        spectra.append((name, _with_gaps(n["flux"], n.get("valid")), n.get("z", 0.0)))
    for name, flux, _ in spectra:
        if flux.shape != wave.shape:
            raise ValueError(f"{name}: flux has shape {flux.shape} but wave has {wave.shape}")
    step = _offset_step([flux for _, flux, _ in spectra])
    figure = go.Figure()
    lo, hi = np.inf, -np.inf
    for i, (name, flux, z) in enumerate(spectra):
        wave_rest = wave / (1.0 + z)
        lo, hi = min(lo, wave_rest[0]), max(hi, wave_rest[-1])
        offset = (len(spectra) - 1 - i) * step  # the query on top, the nearest neighbour next
        figure.add_trace(
            go.Scatter(
                x=wave_rest,
                y=flux + offset,
                mode="lines",
                name=name,
                line={"width": 1.6 if i == 0 else 1, "color": PALETTE[i % len(PALETTE)]},
                hovertemplate="%{x:.1f} Å: %{customdata:.3f}<extra>" + name.split(" · ")[0] + "</extra>",
                customdata=flux,
            )
        )
    for name, rest in lines.items():
        if lo <= rest <= hi:
            figure.add_vline(x=rest, line=LINE_MARK, annotation_text=name, annotation_textangle=-90)
    figure.update_layout(
        title=title,
        xaxis_title="rest-frame wavelength (Å)",
        yaxis_title="normalised flux + offset",
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15},
        margin={"t": 110},
    )
    return figure
