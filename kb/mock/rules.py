"""Each mock catalog's published selection rule, applied to what that catalog measured.

Lines come in as {SPZLINE name: (flux, error)}, 1e-17 erg s^-1 cm^-2; an error <= 0 means not measured.
The same rules, applied to a spectrum's own SPZLINE lines, give ``evaluate``'s label ceiling: how well a
perfect method could agree with catalogs that measure the same pixels their own way.
"""

from __future__ import annotations

import numpy as np

from kb.bpt import bpt_region

BPT_LINES = ("H_alpha", "H_beta", "[O_III] 5007", "[N_II] 6583")


def _snr(line: tuple[float, float]) -> float:
    flux, error = line
    return flux / error if error > 0 else 0.0


def ratios(lines: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """log10 [N II] 6583 / H-alpha and log10 [O III] 5007 / H-beta."""
    return (
        float(np.log10(lines["[N_II] 6583"][0] / lines["H_alpha"][0])),
        float(np.log10(lines["[O_III] 5007"][0] / lines["H_beta"][0])),
    )


def galspec_bptclass(lines: dict[str, tuple[float, float]]) -> int:
    """MPA-JHU BPTCLASS (Brinchmann et al. 2004): S/N >= 3 in the four BPT lines places a galaxy on the
    [N II] diagram (1 star-forming, 3 composite, 4 AGN); otherwise H-alpha and [N II] at S/N >= 2 give 2
    (low S/N star-forming, log [N II]/H-alpha < -0.4) or 5 (low S/N LINER); else -1 (unclassifiable)."""
    if all(_snr(lines[k]) >= 3 for k in BPT_LINES):
        return {"star-forming": 1, "composite": 3, "agn": 4}[bpt_region(*ratios(lines))]
    if _snr(lines["H_alpha"]) >= 2 and _snr(lines["[N_II] 6583"]) >= 2 and lines["[N_II] 6583"][0] > 0:
        return 2 if np.log10(lines["[N_II] 6583"][0] / lines["H_alpha"][0]) < -0.4 else 5
    return -1


def port_bpt(lines: dict[str, tuple[float, float]]) -> str:
    """Portsmouth BPT (Thomas et al. 2013): S/N >= 2 in the four lines, else BLANK; AGN split into Seyfert
    and LINER by Schawinski et al. (2007)'s line in the [N II] diagram."""
    if not all(_snr(lines[k]) >= 2 for k in BPT_LINES):
        return "BLANK"
    n2, o3 = ratios(lines)
    region = bpt_region(n2, o3)
    if region != "agn":
        return {"star-forming": "Star Forming", "composite": "Composite"}[region]
    return "Seyfert" if o3 > 1.05 * n2 + 0.45 else "LINER"


# Goto (2007, MNRAS 381, 187), an E+A catalog from SDSS DR5: H-delta absorption EW > 5.0 Angstrom, and
# neither H-alpha (EW > -3.0) nor [O II] (EW > -2.5) in emission (emission EWs negative), on spectra
# with S/N >= 10 per pixel; EWs by flux summing over Goto (2003)'s windows (``kb.line_indices.index_ew``).
EPLUSA_HDELTA_EW = 5.0  # Angstrom, absorption
EPLUSA_HALPHA_EW = -3.0  # Angstrom, emission negative
EPLUSA_OII_EW = -2.5
EPLUSA_MIN_SNR = 10.0


def goto_eplusa(*, hdelta_ew: float, halpha_ew: float, oii_ew: float, snr: float) -> bool:
    """Whether Goto (2007)'s E+A criteria select a spectrum with these rest-frame EWs (Angstrom,
    absorption positive) and median S/N per pixel. A window off the spectrum (NaN) fails the cut on
    H-delta and passes those on the emission lines, as an unmeasured line is not seen in emission."""
    return bool(
        snr >= EPLUSA_MIN_SNR
        and hdelta_ew > EPLUSA_HDELTA_EW
        and not halpha_ew <= EPLUSA_HALPHA_EW
        and not oii_ew <= EPLUSA_OII_EW
    )


# A strong-lens candidate enters the catalog when the spectrum shows background emission lines at one
# redshift behind the foreground galaxy: modelled on BOSS/eBOSS searches (Bolton et al. 2004; Brownstein
# et al. 2012, BELLS; Talbot et al. 2021), which scan the residual of the pipeline's foreground fit with
# line-shaped kernels and keep candidates whose combined detection significance passes a threshold, with
# more than one line (or the resolved [O II] doublet) so that one sky residual cannot make a candidate.
LENS_COMBINED_SNR = 6.5  # quadrature sum of the background lines' S/N
LENS_LINE_SNR = 3.0  # a line counted as detected
LENS_OII_ALONE_SNR = 6.5  # the [O II] doublet detected alone


def lens_detected(line_snr: dict[str, float]) -> bool:
    """Whether background lines of matched-filter S/N ``line_snr`` {line: S/N} pass the lens rule above.
    The [O II] doublet is one entry ('[O_II] 3727')."""
    combined = float(np.sqrt(sum(max(s, 0.0) ** 2 for s in line_snr.values())))
    detected = sum(s >= LENS_LINE_SNR for s in line_snr.values())
    return combined >= LENS_COMBINED_SNR and (detected >= 2 or line_snr.get("[O_II] 3727", 0.0) >= LENS_OII_ALONE_SNR)
