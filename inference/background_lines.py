"""Emission lines of a second galaxy behind the target: a scan of the spectrum's residual over redshift.

A strong gravitational lens shows, in its fibre, the emission lines of the galaxy it lenses at a higher
redshift than its own. The scan follows BELLS (Bolton et al. 2006; Brownstein et al. 2012) and eBOSS's
search (Talbot et al. 2021): the continuum is taken away by a running median over CONTINUUM_PIXELS pixels;
the target's own emission lines are masked (HOST_MASK_KMS either side), and so are the bright night-sky
lines (``inference.night_sky``), whose subtraction residuals would pass for a source's; and a Gaussian
matched filter for each of SOURCE_LINES (the [O II] and [O III] doublets at their fixed ratios, H-beta,
H-alpha) is slid together over source redshifts from the target's + MIN_SEPARATION to where [O II] leaves
the grid. At each redshift each line gets the S/N of its best-fit amplitude; the lines' positive S/N are
added in quadrature, and the redshift where that sum peaks is the candidate ``z_source``. ``detected``
applies the surveys' rule at a threshold; ``BackgroundRule`` holds what a knowledge-base version chose on
validation: the threshold, which hosts it looks behind and how the lines join the vote. About 16 ms a
spectrum on one core.

Flux is the normalised flux on the model's grid (``kb.preprocess.wave_grid``: vacuum Angstrom, observed
frame), ``ivar`` its inverse variance, ``z`` the target's redshift. Pure numpy/scipy; never imports Django.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import median_filter

from inference.night_sky import sky_pixels
from kb.bpt import bpt_class_from_lines

C_KMS = 299_792.458
CONTINUUM_PIXELS = 31  # running median: wide beside a line (~2 pixels sigma), narrow beside the continuum's bends
LINE_SIGMA_KMS = 100.0  # the filter's width: a source's ~60 km/s beside SDSS's ~70 km/s resolution
HOST_MASK_KMS = 600.0  # either side of the target's own lines, where its residuals would pass for a source
MIN_SEPARATION = 0.05  # a source this far behind the target at least (below, its lines overlap the host's)
Z_STEP = 2e-4  # in ln(1 + z): 60 km/s, 0.6 of a filter width
LINE_SNR = 3.0  # a line counted as seen, in the detection rule
THRESHOLDS = tuple(np.arange(6.0, 14.5, 0.5).tolist())  # combined S/N the validation reserve chooses among
EITHER, LINES = "either", "lines"  # how the rule joins the vote: a target where either says so, or where the lines do
COMBINES = (EITHER, LINES)
ANY, QUIET = "any", "quiet"  # which hosts the rule scans: every galaxy, or those with no emission lines of their own
HOSTS = (ANY, QUIET)

SOURCE_LINES: dict[str, tuple[tuple[float, float], ...]] = {  # name: ((vacuum rest Angstrom, share), ...)
    "[O II] 3727": ((3727.09, 0.45), (3729.88, 0.55)),
    "H-beta": ((4862.68, 1.0),),
    "[O III] 5007": ((4960.30, 0.25), (5008.24, 0.75)),
    "H-alpha": ((6564.61, 1.0),),
}
HOST_LINES = (  # vacuum rest Angstrom: the target's own lines, masked: the optical lines SDSS's pipeline fits (spZline)
    3727.09, 3729.88, 3869.86, 3890.15, 3971.12, 4102.89, 4341.68, 4364.44, 4686.99, 4862.68, 4960.29, 5008.24,
    5413.02, 5578.89, 6302.05, 6313.81, 6365.54, 6549.86, 6564.61, 6585.27, 6718.29, 6732.68, 7137.76,
)  # fmt: skip


@dataclass(frozen=True)
class Background:
    """The scan's best candidate: ``z_source``, its combined S/N ``snr`` and each line's S/N there (lines off
    the spectrum or masked are left out). ``z_source`` None where no redshift behind the target can be
    scanned."""

    z_source: float | None
    snr: float
    lines: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def residual(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(residual, weight), each (L,): the flux less its running-median continuum, and the inverse variance
    the scan weighs it by (0 where unobserved or on one of the target's own lines)."""
    wave, flux = np.asarray(wave, dtype=np.float64), np.asarray(flux, dtype=np.float64)
    weight = np.where(np.isfinite(ivar) & (np.asarray(ivar) > 0), ivar, 0.0).astype(np.float64)
    observed = weight > 0
    filled = np.where(observed, flux, np.median(flux[observed])) if observed.any() else flux  # gaps: no dips
    for rest in HOST_LINES:
        centre = rest * (1 + z)
        weight[np.abs(wave - centre) < centre * HOST_MASK_KMS / C_KMS] = 0.0
    weight[sky_pixels(wave)] = 0.0
    return flux - median_filter(filled, CONTINUUM_PIXELS, mode="nearest"), weight


def background_scan(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float) -> Background:
    """The background-line candidate of one spectrum: ``wave``, ``flux``, ``ivar`` (L,) as above."""
    wave = np.asarray(wave, dtype=np.float64)
    residual_flux, weight = residual(wave, flux, ivar, z)
    z_grid = _source_redshifts(wave, z)
    if not len(z_grid):
        return Background(None, 0.0)
    snr = np.stack([_line_snr(wave, residual_flux, weight, parts, z_grid) for parts in SOURCE_LINES.values()])
    combined = np.sqrt(np.nansum(np.clip(snr, 0, None) ** 2, axis=0))  # (Z,); snr is (lines, Z)
    best = int(np.argmax(combined))
    lines = {name: round(float(s), 2) for name, s in zip(SOURCE_LINES, snr[:, best]) if np.isfinite(s)}
    return Background(round(float(z_grid[best]), 5), round(float(combined[best]), 2), lines)


def detected(background: Background, threshold: float) -> bool:
    """Whether a candidate passes the rule at ``threshold``: combined S/N at least ``threshold``, from two
    lines at S/N >= LINE_SNR or from [O II] alone at ``threshold`` (the rule of BOSS's and eBOSS's lens
    searches, whose threshold a knowledge base chooses on its validation reserve)."""
    lines = background.lines
    two = sum(snr >= LINE_SNR for snr in lines.values()) >= 2
    return background.snr >= threshold and (two or lines.get("[O II] 3727", 0.0) >= threshold)


def rule_target(voted, found, combine: str = EITHER):
    """Whether a spectrum is a target, from whether its vote is (``voted``) and whether its background lines
    pass the rule (``found``), bools or (n,) bool arrays: either, or (``LINES``) the lines alone, the vote
    then only the evidence beside them."""
    if combine not in COMBINES:
        raise ValueError(f"unknown way to join the vote and the lines {combine!r}; choose one of {', '.join(COMBINES)}")
    return found if combine == LINES else voted | found


def quiet_host(lines: dict | None) -> bool:
    """Whether a galaxy shows no emission lines of its own to speak of: its own line measurements (SPZLINE)
    place it nowhere on the BPT diagram (``kb.bpt.bpt_class_from_lines``: one of H-beta, [O III], H-alpha and
    [N II] under S/N 3). Lens searches scan such galaxies (SLACS and BELLS chose early-type, absorption-line
    hosts), whose own lines leave nothing for a background galaxy's to be mistaken for. A spectrum with no
    line measurements counts as quiet: nothing says otherwise."""
    return bpt_class_from_lines(lines or {}) == "normal"


@dataclass(frozen=True)
class BackgroundRule:
    """How a knowledge-base version finds lenses by their background lines, chosen on its validation reserve:
    a candidate passes at combined S/N ``threshold`` (``detected``; None: the vote alone), scanned in every
    host or only in quiet ones (``hosts``, ``quiet_host``), and joins the vote as ``combine`` says
    (``rule_target``)."""

    threshold: float | None = None
    combine: str = EITHER
    hosts: str = ANY

    def __post_init__(self):
        if self.combine not in COMBINES:
            raise ValueError(f"unknown way to join the vote {self.combine!r}; choose one of {', '.join(COMBINES)}")
        if self.hosts not in HOSTS:
            raise ValueError(f"unknown hosts {self.hosts!r}; choose one of {', '.join(HOSTS)}")

    @classmethod
    def from_dict(cls, data: dict | None) -> BackgroundRule:
        """The rule a version stored (``KnowledgeBase.background_rule``, with its validation scores beside it)."""
        return cls(**{key: value for key, value in (data or {}).items() if key in cls.__dataclass_fields__})

    def describe(self) -> str:
        """The rule in words, for an export's header."""
        if self.threshold is None:
            return "the vote alone (no background-line rule)"
        behind = "quiet hosts only" if self.hosts == QUIET else "every host"
        join = "the lines alone decide, the vote beside them" if self.combine == LINES else "the vote or the lines"
        return f"background lines at combined S/N >= {self.threshold:g}, behind {behind}; a target: {join}"

    def finds(self, background: Background, quiet: bool) -> bool:
        """Whether a spectrum's candidate ``background`` passes, its host ``quiet`` or not (``quiet_host``)."""
        return self.threshold is not None and (quiet or self.hosts == ANY) and detected(background, self.threshold)

    def target(self, voted, found):
        """Whether spectra are targets, from their vote and what the rule ``found`` (bools or (n,) arrays)."""
        return voted if self.threshold is None else rule_target(voted, found, self.combine)


def _source_redshifts(wave: np.ndarray, z: float) -> np.ndarray:
    """(Z,) redshifts scanned: from z + MIN_SEPARATION until the bluest line, [O II], leaves the grid."""
    first, last = z + MIN_SEPARATION, wave[-1] / SOURCE_LINES["[O II] 3727"][-1][0] - 1
    if last <= first:
        return np.empty(0)
    return np.exp(np.arange(np.log1p(first), np.log1p(last), Z_STEP)) - 1


def _line_snr(
    wave: np.ndarray, residual: np.ndarray, weight: np.ndarray, parts: tuple, z_grid: np.ndarray
) -> np.ndarray:
    """(Z,) the matched-filter S/N of one line's best-fit amplitude at each redshift; NaN where its filter
    has no weight (off the grid, masked or unobserved)."""
    centres = np.array([rest for rest, _ in parts])[None, :] * (1 + z_grid[:, None])  # (Z, parts)
    sigma = centres[:, :1] * LINE_SIGMA_KMS / C_KMS  # (Z, 1) Angstrom
    start = np.searchsorted(wave, centres[:, 0] - 4 * sigma[:, 0]) - 1  # (Z,)
    reach = (centres[-1, -1] - centres[-1, 0] + 8 * sigma[-1, 0]) / (wave[1] - wave[0])  # a doublet's span
    pixels = np.clip(start[:, None] + np.arange(int(reach) + 3)[None, :], 0, len(wave) - 1)  # (Z, W)
    offsets = wave[pixels][:, :, None] - centres[:, None, :]  # (Z, W, parts)
    shares = np.array([share for _, share in parts])
    kernel = (shares * np.exp(-0.5 * (offsets / sigma[:, :, None]) ** 2)).sum(axis=2)  # (Z, W)
    inside = (centres[:, 0] - 4 * sigma[:, 0] > wave[0]) & (centres[:, -1] + 4 * sigma[:, 0] < wave[-1])
    kernel *= inside[:, None]
    w = weight[pixels]
    norm = (w * kernel**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = (w * kernel * residual[pixels]).sum(axis=1) / np.sqrt(norm)
    return np.where(norm > 0, snr, np.nan)
