"""Writing the evaluation's figures: ``name.html`` next to one shared ``plotly.min.js`` (plotly's
``include_plotlyjs="directory"``), so a report folder opens offline, and a PNG where static export works
(it needs kaleido and a Chrome); where it does not, the HTML still stands and the reason is returned.
Pure plotly/numpy; never imports Django.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from experiments import figures
from experiments.report import PAPER_SEARCH
from kb.plots import DIAGNOSTIC_LINES, bpt_diagram
from kb.preprocess import wave_grid


@functools.cache
def png_browser() -> str | None:
    """The Chrome or chromium kaleido would render PNGs with, or None (then only HTML is written:
    kaleido without a browser fails, and its background server then hangs)."""
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:  # no kaleido
        return None
    return Chromium.find_browser(skip_local=False)


@contextmanager
def image_server() -> Iterator[None]:
    """One headless browser for a run of PNG exports, which would otherwise start one each (5 s against
    0.3 s here); without kaleido or a browser, nothing, and ``write_figure`` reports why per figure."""
    if png_browser() is None:
        yield
        return
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def write_figure(figure: go.Figure, folder: str | Path, name: str) -> dict:
    """Write ``folder/name.html`` (plotly.js from a ``plotly.min.js`` written once into the folder: no
    CDN, opens offline) and, where static export works, ``folder/name.png``.

    Returns ``{"html": "name.html", "png": "name.png" or None, "png_error": None or the reason}``, paths
    relative to ``folder``. PNG export needs kaleido and a Chrome; any failure of it is reported, not
    raised, because the HTML is the report and the PNG a convenience.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"figure name {name!r} must be a plain file name (letters, digits, '.', '_', '-')")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figure.write_html(folder / f"{name}.html", include_plotlyjs="directory", full_html=True)
    png = folder / f"{name}.png"
    if png_browser() is None:
        return {
            "html": f"{name}.html",
            "png": None,
            "png_error": "no Chrome or chromium for kaleido (Debian: apt-get install chromium)",
        }
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            figure.write_image(png, width=1100, height=650)
    except Exception as error:  # noqa: BLE001 - see the docstring: every export failure is reported alike
        png.unlink(missing_ok=True)
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        return {"html": f"{name}.html", "png": None, "png_error": f"{type(error).__name__}: {reason}".rstrip(": ")}
    return {"html": f"{name}.html", "png": png.name, "png_error": None}


def write_figures(results: dict, data, out: Path) -> dict:
    """Every figure of the report from the results of ``manage.py evaluate``, written into ``out``
    (``write_figure``); ``data`` holds the spectra the case study draws (``experiments.data.Data``)."""
    made = {}
    for key, title in (
        ("classification_3class", "Three-class BPT classification"),
        ("classification_5class", "Five-class BPT classification"),
    ):
        methods = results[key]
        made[f"{key}"] = write_figure(figures.classification_bars(methods, title), out, key)
        made[f"{key}_per_class"] = write_figure(
            figures.per_class_f1(methods, title + ": F1 per class"), out, f"{key}_per_class"
        )
    searches = {name: results["search"][name] for name in PAPER_SEARCH}  # the paper's three, not the lens split
    made["search"] = write_figure(figures.search_bars(searches, PAPER_SEARCH), out, "search")
    made["proportion_sweep"] = write_figure(
        figures.sweep_lines(
            results["proportion_sweep"],
            "target_fraction",
            "Lens search against the share of lenses in the KB",
            "share of lenses in the knowledge base",
        ),
        out,
        "proportion_sweep",
    )
    made["topk_sweep"] = write_figure(
        figures.sweep_lines(results["topk_sweep"], "k", "Search against K, the neighbours that vote", "K"),
        out,
        "topk_sweep",
    )
    weights = results["weight_functions"]
    made["distances"] = write_figure(
        figures.histograms(
            {"pairwise L2 distance in the LINER KB": np.array(weights.pop("_histograms")["distances"])},
            "Pairwise distances between knowledge-base embeddings",
            "L2 distance",
        ),
        out,
        "distances",
    )
    retrieval = results["retrieval_time"]
    made["retrieval_time"] = write_figure(
        figures.retrieval_time(retrieval["rows"], retrieval["fits"]), out, "retrieval_time"
    )
    if results["case_study"]:
        made.update(_case_study_figures(results["case_study"], data, out))
    return made


def _case_study_figures(case: dict, data, out: Path) -> dict:
    """The LINER case study: its spectrum above its neighbours', and their BPT positions (Figure B1)."""
    made = {}
    spectra = {s.specobjid: s for s in data.spectra.values()}
    query = spectra[case["query"]["specobjid"]]
    wave = wave_grid()
    neighbours = [
        {
            **n,
            "flux": data.flux[spectra[n["specobjid"]].store_row],
            "valid": data.valid[spectra[n["specobjid"]].store_row],
        }
        for n in case["neighbours"]
    ]
    made["case_study"] = write_figure(
        figures.case_study(
            wave,
            data.flux[query.store_row],
            neighbours,
            DIAGNOSTIC_LINES,
            f"LINER {query.plate_mjd_fiber} and its {len(neighbours)} nearest knowledge-base spectra",
            query_z=query.z,
            query_valid=data.valid[query.store_row],
        ),
        out,
        "case_study",
    )
    made["case_study_bpt"] = write_figure(
        bpt_diagram([case["query"], *case["neighbours"]], "BPT positions of the case study"), out, "case_study_bpt"
    )
    return made
