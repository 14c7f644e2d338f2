"""A search's evidence as the result page shows it: the query and its neighbours' spectra, their BPT positions."""

from __future__ import annotations

import numpy as np

from inference.answers import Answer, Query
from inference.background_lines import SOURCE_LINES, residual
from inference.retriever import VotePolicy
from kb.bpt import bpt_ratio_errors, bpt_ratios
from kb.models import Spectrum
from kb.plots import BPT_MIN_SNR, EMISSION_LINES, bpt_panels, spectrum_colour
from kb.preprocess import PAPER, wave_grid
from kb.selectors import spectrum_store


def spectrum_query(spectrum: Spectrum) -> Query:
    """An ingested spectrum as a query the result page draws: its stored flux and its own lines."""
    flux, valid = spectrum_store().read()
    return Query(
        name=f"spec-{spectrum.plate_mjd_fiber}",
        z=spectrum.z,
        flux=np.array(flux[spectrum.store_row]),
        valid=np.array(valid[spectrum.store_row]),
        lines=spectrum.lines,
        spectrum=spectrum,
    )


def _with_gaps(flux, valid) -> list:
    return [round(float(x), 4) if ok else None for x, ok in zip(flux, valid)]


def evidence_get(*, answer: Answer, query: Query, api_url: str) -> dict:
    """What the result page shows: the vote, the neighbours, their spectra overlaid, their BPT positions,
    and a snippet that repeats the search through the API at ``api_url``."""
    flux, valid = spectrum_store().read()
    neighbours = {s.pk: s for s in Spectrum.objects.filter(pk__in=[n.spectrum_id for n in answer.neighbours])}
    spectra = [
        {
            "name": f"query: {query.name}",
            "z": query.z,
            "flux": _with_gaps(query.flux, query.valid),
            "colour": spectrum_colour(0),
        }
    ]
    points = [{"name": "query", "label": answer.label, "query": True, "number": 0, **_bpt(query.lines)}]
    for i, n in enumerate(answer.neighbours, start=1):
        spectrum = neighbours[n.spectrum_id]
        spectra.append(
            {
                "name": f"#{i} {n.label} (d={n.distance:.3f}, w={n.weight:.2f})",
                "z": spectrum.z,
                "flux": _with_gaps(flux[spectrum.store_row], valid[spectrum.store_row]),
                "colour": spectrum_colour(i),
            }
        )
        points.append({"name": f"#{i} {n.specobjid}", "label": n.label, "number": i, **_bpt(spectrum.lines)})
    plot = {
        "wave": np.round(wave_grid(PAPER), 2).tolist(),
        "lines": EMISSION_LINES,
        "spectra": spectra,
        "frame": "rest",
        "title": f"{query.name} and its {len(answer.neighbours)} nearest neighbours",
    }
    if answer.background and answer.background["z_source"] is not None:
        plot["background"] = _background_plot(answer.background, query)
    placed = [p for p in points if "o3" in p and any(ratio in p for ratio in ("n2", "s2", "o1"))]
    return {
        "answer": answer,
        "query": query,
        "neighbours": [(n, spectrum_colour(i)) for i, n in enumerate(answer.neighbours, start=1)],
        "min_snr": BPT_MIN_SNR,
        "plot": plot,
        "snippet": _api_snippet(answer, query, api_url),
        "share_percent": 100 * answer.share,
        "policy": VotePolicy.from_dict(answer.policy).describe(),  # the one wording of a policy, as the API's
        "bpt": bpt_panels(points).to_plotly_json() if placed else None,
        "unplaced": [p["name"] for p in points if p not in placed],
        "shares": [(label, 100 * share) for label, share in sorted(answer.shares.items(), key=lambda item: -item[1])],
    }


def _background_plot(background: dict, query: Query) -> dict:
    """The background lines at z_source (observed Angstrom) and the query's residual the scan searched."""
    z_source = background["z_source"]
    wave = wave_grid(PAPER)
    lines = {
        f"{name} (z = {z_source:.4f})": rest * (1 + z_source)
        for name, parts in SOURCE_LINES.items()
        for rest, share in parts
        if share == max(s for _, s in parts)
    }
    flux, _ = residual(wave, query.flux, query.valid.astype(np.float64), query.z)
    return {"z_source": z_source, "lines": lines, "residual": _with_gaps(flux, query.valid)}


def _bpt(lines: dict) -> dict:
    """A spectrum's BPT ratios, their errors, and which rest on a weak line, as ``bpt_panels`` takes them."""
    errors, weak = bpt_ratio_errors(lines, min_snr=BPT_MIN_SNR)
    return {**bpt_ratios(lines), "errors": errors, "weak": sorted(weak)}


def _api_snippet(answer: Answer, query: Query, api_url: str) -> str:
    """Python that repeats the search through the API."""
    if query.spectrum is None:
        call = f'files={{"file": open("{query.name}", "rb")}}, data={{"task": "{answer.task}", "k": {answer.k}}}'
    else:
        call = f'data={{"task": "{answer.task}", "identifier": "{query.spectrum.specobjid}", "k": {answer.k}}}'
    return (
        "import requests\n\n"
        f'answer = requests.post(\n    "{api_url}",\n    {call},\n'
        '    headers={"Authorization": "Token YOUR-TOKEN"},  # optional: a token raises the rate limit\n'
        ").json()\n"
        'print(answer["label"], answer["share"], answer["kb_version"], answer["checkpoint"])\n'
        'for n in answer["neighbours"]:\n'
        '    print(n["specobjid"], n["label"], n["distance"], n["weight"])\n'
    )
