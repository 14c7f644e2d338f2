"""How far to trust an answer: is the query like the spectra the knowledge base was checked on?

A vote is only as good as its neighbours are near. When a knowledge base is built, the spectra of the
validation reserve (which it never holds) are searched in it, and the distances to their nearest entries
are kept as quantiles, beside the redshift range of its entries (``calibrate``). An answer is then
judged (``assess``) by three signals:

- ``valid_fraction``: the share of the query's 3688 grid pixels that were observed and not masked;
- ``z_in_range``: whether the query's redshift lies within the entries' range;
- ``distance_percentile``: where the query's nearest distance falls among the validation spectra's
  (100 = farther than every one of them).

``in_distribution`` is True when all three are within bounds (MIN_VALID_FRACTION, the z range,
MAX_PERCENTILE), and ``reasons`` says in words which are not. Without a calibration (a knowledge base
built before it, or with no validation spectrum to search) only the valid fraction can be judged:
False when it is too low, else None (unknown). Pure numpy; never imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_VALID_FRACTION = 0.8  # a query with fewer observed pixels lacks much of what its neighbours are matched on
MAX_PERCENTILE = 99.0  # nearest farther than 99% of validation spectra's: unlike what the KB was checked on
QUANTILES = np.linspace(0, 100, 1001)  # the calibration keeps the nearest distances at these percentiles


def calibrate(nearest: np.ndarray, entry_z: np.ndarray) -> dict:
    """What ``assess`` compares answers with: ``nearest`` (n,) L2 distances of validation spectra to their
    nearest entry, and ``entry_z`` (m,) the entries' redshifts. JSON-ready."""
    nearest = np.asarray(nearest, dtype=np.float64)
    entry_z = np.asarray(entry_z, dtype=np.float64)
    if len(nearest) == 0 or len(entry_z) == 0:
        return {}
    return {
        "n_validation": len(nearest),
        "nearest_quantiles": np.percentile(nearest, QUANTILES).round(6).tolist(),
        "z_min": float(entry_z.min()),
        "z_max": float(entry_z.max()),
    }


@dataclass(frozen=True)
class Trust:
    valid_fraction: float  # of the query's grid pixels
    z: float
    z_in_range: bool | None
    nearest_distance: float | None  # L2 to the nearest entry, None if the KB returned none
    distance_percentile: float | None  # among validation spectra's nearest distances, 0-100
    in_distribution: bool | None
    reasons: list[str] = field(default_factory=list)  # why not in distribution, in words


def percentile(calibration: dict, distance: float) -> float:
    """Where ``distance`` falls among the calibration's nearest distances, 0-100."""
    quantiles = np.asarray(calibration["nearest_quantiles"])
    if distance > quantiles[-1]:
        return 100.0
    return float(np.interp(distance, quantiles, QUANTILES, left=0.0))


def assess(calibration: dict, *, valid_fraction: float, z: float, nearest_distance: float | None) -> Trust:
    """The trust signals of one answer (see the module's docstring)."""
    reasons = []
    if valid_fraction < MIN_VALID_FRACTION:
        reasons.append(
            f"only {valid_fraction:.0%} of its pixels are valid (at least {MIN_VALID_FRACTION:.0%} expected)"
        )
    if not calibration:
        return Trust(valid_fraction, z, None, nearest_distance, None, False if reasons else None, reasons)
    z_in_range = calibration["z_min"] <= z <= calibration["z_max"]
    if not z_in_range:
        reasons.append(
            f"its redshift {z:.3f} lies outside the knowledge base's {calibration['z_min']:.3f}-"
            f"{calibration['z_max']:.3f}"
        )
    where = None if nearest_distance is None else percentile(calibration, nearest_distance)
    if where is None:
        reasons.append("the knowledge base returned no neighbour")
    elif where > MAX_PERCENTILE:
        typical = np.interp(MAX_PERCENTILE, QUANTILES, calibration["nearest_quantiles"])
        reasons.append(
            f"its nearest neighbour (L2 {nearest_distance:.3g}) is farther than {where:.1f}% of validation "
            f"spectra's (their 99th percentile: {typical:.3g})"
        )
    return Trust(valid_fraction, z, z_in_range, nearest_distance, where, not reasons, reasons)
