"""How far to trust an answer: is the query like the spectra the knowledge base was checked on?

A vote is only as good as its neighbours are near. When a knowledge base is built, the spectra of the
validation reserve (which it never holds) are searched in it, and the distances to their nearest entries
are kept as quantiles, beside the redshift range of its entries and the validation spectra's
reconstruction chi-squared (``calibrate``). An answer is then judged (``assess``) by four signals:

- ``valid_fraction``: the share of the query's 3688 grid pixels that were observed and not masked;
- ``z_in_range``: whether the query's redshift lies within the entries' range;
- ``distance_percentile``: where the query's nearest distance falls among the validation spectra's
  (100 = farther than every one of them);
- ``reconstruction_percentile``: where the median chi-squared of the masked model's reconstruction of
  a fixed quarter of the query's pixels (``inference.embed.reconstruction_chi2``) falls among the
  validation spectra's. Its nearest neighbours can look ordinary for a spectrum whose pixels do not hang
  together (shuffled, badly calibrated); its reconstruction cannot.

``in_distribution`` is True when all four are within bounds (MIN_VALID_FRACTION, the z range,
MAX_PERCENTILE for both percentiles), and ``reasons`` says in words which are not. Without a calibration
(a knowledge base built before it, or with no validation spectrum to search) only the valid fraction can
be judged: False when it is too low, else None (unknown); a calibration from before reconstructions were
kept judges the other three. Pure numpy; never imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_VALID_FRACTION = 0.8  # a query with fewer observed pixels lacks much of what its neighbours are matched on
MAX_PERCENTILE = 99.0  # nearest farther than 99% of validation spectra's: unlike what the KB was checked on
QUANTILES = np.linspace(0, 100, 1001)  # the calibration keeps the nearest distances at these percentiles


def calibrate(nearest: np.ndarray, entry_z: np.ndarray, reconstruction: np.ndarray) -> dict:
    """What ``assess`` compares answers with: ``nearest`` (n,) L2 distances of validation spectra to their
    nearest entry, ``entry_z`` (m,) the entries' redshifts and ``reconstruction`` (n,) the validation
    spectra's reconstruction chi-squared (``inference.embed.reconstruction_chi2``; NaN ones are left out).
    JSON-ready."""
    nearest = np.asarray(nearest, dtype=np.float64)
    entry_z = np.asarray(entry_z, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    reconstruction = reconstruction[np.isfinite(reconstruction)]
    if len(nearest) == 0 or len(entry_z) == 0:
        return {}
    return {
        "n_validation": len(nearest),
        "nearest_quantiles": _quantiles(nearest),
        "z_min": float(entry_z.min()),
        "z_max": float(entry_z.max()),
        **({"reconstruction_quantiles": _quantiles(reconstruction)} if len(reconstruction) else {}),
    }


def _quantiles(values: np.ndarray) -> list[float]:
    return np.percentile(values, QUANTILES).round(6).tolist()


@dataclass(frozen=True)
class Trust:
    valid_fraction: float  # of the query's grid pixels
    z: float
    z_in_range: bool | None
    nearest_distance: float | None  # L2 to the nearest entry, None if the KB returned none
    distance_percentile: float | None  # among validation spectra's nearest distances, 0-100
    in_distribution: bool | None
    reasons: list[str] = field(default_factory=list)  # why not in distribution, in words
    reconstruction_chi2: float | None = None  # the median over the probe's hidden pixels (inference.embed)
    reconstruction_percentile: float | None = None  # among validation spectra's, 0-100


def percentile(calibration: dict, value: float, key: str = "nearest_quantiles") -> float:
    """Where ``value`` falls among the calibration's ``key`` quantiles (nearest distances by default), 0-100."""
    quantiles = np.asarray(calibration[key])
    if value > quantiles[-1]:
        return 100.0
    return float(np.interp(value, quantiles, QUANTILES, left=0.0))


def assess(
    calibration: dict,
    *,
    valid_fraction: float,
    z: float,
    nearest_distance: float | None,
    reconstruction_chi2: float | None = None,
) -> Trust:
    """The trust signals of one answer (see the module's docstring)."""
    reasons = []
    if valid_fraction < MIN_VALID_FRACTION:
        reasons.append(
            f"only {valid_fraction:.0%} of its pixels are valid (at least {MIN_VALID_FRACTION:.0%} expected)"
        )
    chi2 = None if reconstruction_chi2 is None or not np.isfinite(reconstruction_chi2) else float(reconstruction_chi2)
    if not calibration:
        return Trust(valid_fraction, z, None, nearest_distance, None, False if reasons else None, reasons, chi2)
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
    unlike = None
    if chi2 is not None and "reconstruction_quantiles" in calibration:
        unlike = percentile(calibration, chi2, "reconstruction_quantiles")
        if unlike > MAX_PERCENTILE:
            typical = np.interp(MAX_PERCENTILE, QUANTILES, calibration["reconstruction_quantiles"])
            reasons.append(
                f"the encoder reconstructs its hidden pixels worse than {unlike:.1f}% of validation spectra "
                f"(median chi-squared {chi2:.3g}; their 99th percentile: {typical:.3g})"
            )
    return Trust(valid_fraction, z, z_in_range, nearest_distance, where, not reasons, reasons, chi2, unlike)
