"""BPT classes: from a spectrum's own emission-line fluxes (demarcation lines), and from the classes the
emission-line catalogs publish (the label both agree on).

Ratios are log10 of flux ratios: n2 = [N II] 6583 / H-alpha, o3 = [O III] 5007 / H-beta,
s2 = ([S II] 6716 + 6730) / H-alpha, o1 = [O I] 6300 / H-alpha. Lines:
- Kauffmann et al. (2003): the upper edge of pure star formation in the [N II] diagram.
- Kewley et al. (2001): the maximum starburst line, in the [N II], [S II] and [O I] diagrams.
- Kewley et al. (2006): the Seyfert/LINER lines in the [S II] and [O I] diagrams.
- Schawinski et al. (2007): the Seyfert/LINER line in the [N II] diagram.
Line names are SDSS SPZLINE's LINENAME. Pure Python; never imports Django.
"""

from __future__ import annotations

import math

import numpy as np

LINES = {
    "h_beta": "H_beta",
    "o3": "[O_III] 5007",
    "o1": "[O_I] 6300",
    "h_alpha": "H_alpha",
    "n2": "[N_II] 6583",
    "s2a": "[S_II] 6716",
    "s2b": "[S_II] 6730",
}
CLASSIFYING = ("h_beta", "o3", "h_alpha", "n2")  # S/N >= min_snr in all four to classify
# MPA-JHU BPTCLASS -> label. 1 star-forming, 2 low-S/N star-forming, 3 composite, 4 AGN, 5 low-S/N
# LINER, -1 unclassifiable (no or weak emission lines: "normal" here).
BPTCLASS = {-1: "normal", 1: "star-forming", 2: "star-forming", 3: "composite", 4: "agn", 5: "liner"}
# Portsmouth BPT strings, normalised by port_bpt_key (case, spaces, hyphens, underscores) -> label.
PORT_BPT = {
    "star forming": "star-forming",
    "starforming": "star-forming",
    "composite": "composite",
    "seyfert": "seyfert",
    "liner": "liner",
    "blank": "normal",
}
FIVE_CLASSES = ("star-forming", "composite", "seyfert", "liner", "normal")
THREE_CLASSES = ("star-forming", "agn", "normal")


def kauffmann03(n2):
    return 0.61 / (np.asarray(n2) - 0.05) + 1.3


def kewley01(n2):
    return 0.61 / (np.asarray(n2) - 0.47) + 1.19


def kewley01_s2(s2):
    return 0.72 / (np.asarray(s2) - 0.32) + 1.30


def kewley01_o1(o1):
    return 0.73 / (np.asarray(o1) + 0.59) + 1.33


def kewley06_s2(s2):
    """Kewley et al. (2006) Seyfert/LINER line in the [S II] diagram."""
    return 1.89 * np.asarray(s2) + 0.76


def kewley06_o1(o1):
    return 1.18 * np.asarray(o1) + 1.30


def schawinski07(n2):
    """Schawinski et al. (2007) Seyfert/LINER line in the [N II] diagram."""
    return 1.05 * np.asarray(n2) + 0.45


def bpt_region(n2: float, o3: float) -> str:
    """star-forming / composite / agn from log [N II]/Ha and log [O III]/Hb."""
    if n2 < 0.05 and o3 < kauffmann03(n2):
        return "star-forming"
    if n2 < 0.47 and o3 < kewley01(n2):
        return "composite"
    return "agn"


def bpt_ratios(lines: dict[str, dict]) -> dict[str, float]:
    """The log ratios n2, o3, s2, o1 that the lines' fluxes allow (positive fluxes only).

    ``lines`` maps SPZLINE names to {'flux': ..., 'flux_err': ...} in 1e-17 erg s^-1 cm^-2.
    """
    flux = {key: (lines.get(name) or {}).get("flux") for key, name in LINES.items()}

    def ratio(top: float | None, bottom: float | None) -> float | None:
        if top is None or bottom is None or not (top > 0 and bottom > 0):
            return None
        return math.log10(top / bottom)

    s2 = flux["s2a"] + flux["s2b"] if flux["s2a"] is not None and flux["s2b"] is not None else None
    ratios = {
        "n2": ratio(flux["n2"], flux["h_alpha"]),
        "o3": ratio(flux["o3"], flux["h_beta"]),
        "s2": ratio(s2, flux["h_alpha"]),
        "o1": ratio(flux["o1"], flux["h_alpha"]),
    }
    return {key: value for key, value in ratios.items() if value is not None}


RATIO_LINES = {  # each ratio's lines, the denominator last
    "n2": ("n2", "h_alpha"),
    "o3": ("o3", "h_beta"),
    "s2": ("s2a", "s2b", "h_alpha"),
    "o1": ("o1", "h_alpha"),
}


def bpt_ratio_errors(lines: dict[str, dict], *, min_snr: float = 3.0) -> tuple[dict[str, float], set[str]]:
    """For the ratios ``bpt_ratios`` gives: each one's 1-sigma error in dex, from its lines' flux errors
    (where all of them have one), and which ratios rest on a line below S/N ``min_snr`` (or of no error)."""
    ratios = bpt_ratios(lines)
    errors, weak = {}, set()
    for ratio in ratios:
        measured = [lines.get(LINES[key]) or {} for key in RATIO_LINES[ratio]]
        fluxes = [line.get("flux") for line in measured]
        sigmas = [line.get("flux_err") for line in measured]
        if any(s is None or not s > 0 or f / s < min_snr for f, s in zip(fluxes, sigmas)):
            weak.add(ratio)
        if all(s is not None and s > 0 for s in sigmas):
            *tops, bottom = zip(fluxes, sigmas)  # [S II] is the sum of its doublet
            top = sum(f for f, _ in tops)
            top_sigma = math.sqrt(sum(s * s for _, s in tops))
            errors[ratio] = math.hypot(top_sigma / top, bottom[1] / bottom[0]) / math.log(10)
    return errors, weak


def bpt_class_from_lines(lines: dict[str, dict], *, min_snr: float = 3.0) -> str:
    """Five-class BPT label from a spectrum's own line fluxes.

    'normal' unless H-beta, [O III] 5007, H-alpha and [N II] 6583 all have S/N >= ``min_snr``; then
    star-forming below Kauffmann et al. (2003), composite below Kewley et al. (2001), and above it
    Seyfert or LINER by Schawinski et al. (2007).
    """
    for key in CLASSIFYING:
        line = lines.get(LINES[key]) or {}
        flux, err = line.get("flux"), line.get("flux_err")
        if flux is None or err is None or not (err > 0) or flux / err < min_snr:
            return "normal"
    ratios = bpt_ratios(lines)
    region = bpt_region(ratios["n2"], ratios["o3"])
    if region != "agn":
        return region
    return "seyfert" if ratios["o3"] > schawinski07(ratios["n2"]) else "liner"


def port_bpt_key(text) -> str:
    """A Portsmouth BPT string as a key of PORT_BPT: lower case, hyphens and underscores as single spaces."""
    return " ".join(str(text).strip().lower().replace("-", " ").replace("_", " ").split())


def bpt_consensus(galspec_bptclass: int | str | None, port_bpt: str | None) -> str | None:
    """The five-class BPT label both emission-line catalogs agree on, or None (the paper's rule).

    ``galspec_bptclass`` is MPA-JHU's BPTCLASS (an int, or its text as stored: "4"); ``port_bpt`` is
    Portsmouth's BPT string ('Star Forming', 'Star-Forming', 'LINER', 'BLANK', ...). 1 and 2 agree with
    Star Forming, 3 with Composite, 5 (low-S/N LINER) with LINER and -1 (unclassifiable) with BLANK,
    all as 'normal' for the last pair. Class 4 is MPA-JHU's AGN class, which does not separate Seyferts
    from LINERs the way Portsmouth does: it agrees with either and takes Portsmouth's finer label.
    Returns None where one is missing or they disagree; raises ValueError for a value neither catalog
    publishes.
    """
    if galspec_bptclass is None or port_bpt is None:
        return None
    try:
        mpa = BPTCLASS[int(galspec_bptclass)]
    except (KeyError, ValueError):
        raise ValueError(f"BPTCLASS {galspec_bptclass!r} is not one of {sorted(BPTCLASS)}") from None
    port = PORT_BPT.get(port_bpt_key(port_bpt))
    if port is None:
        raise ValueError(f"Portsmouth BPT {port_bpt!r} is not one of Star Forming, Composite, Seyfert, LINER, BLANK")
    if mpa == "agn":
        return port if port in ("seyfert", "liner") else None
    return mpa if mpa == port else None


def bpt_three_class(label: str) -> str:
    """The paper's three classes from a five-class label: 'star-forming', 'agn' or 'normal'.

    Seyferts and LINERs are 'agn'. Composites are counted as 'agn' too: they lie above Kauffmann et
    al.'s (2003) pure star-formation line, so an active nucleus contributes to their lines, and both
    catalogs have already agreed on the label. Counting them (rather than leaving them out) keeps the
    three-class knowledge base the same set of spectra as the five-class one. Raises ValueError for a
    label not in FIVE_CLASSES.
    """
    if label not in FIVE_CLASSES:
        raise ValueError(f"{label!r} is not a five-class BPT label {FIVE_CLASSES}")
    return label if label in ("star-forming", "normal") else "agn"
