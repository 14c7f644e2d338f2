"""The physics of the mock survey: stellar continua, dust, absorption and emission lines, BPT ratios.

Wavelengths in Angstrom (vacuum); flux densities in 1e-17 erg s^-1 cm^-2 Angstrom^-1; line fluxes in
1e-17 erg s^-1 cm^-2; velocities in km/s. Everything is evaluated on the observed log-lambda pixels of
an SDSS legacy spectrum (``LOGLAM``), so nothing needs resampling.

Emission-line ratios are calibrated on the 4,000 SDSS galaxies of the astroML line-strength sample
(../shared/data/sdss-line-strengths, read once when this module was written; the file is not needed at
run time): the means and covariances in RATIO_MEAN and RATIO_COV below. Star-forming galaxies lie below
the Kauffmann et al. (2003) line, composites between it and Kewley et al. (2001), Seyferts and LINERs
above it on either side of Schawinski et al. (2007)'s division.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb.bpt import bpt_region

C_KMS = 299_792.458
LOGLAM = np.round(np.arange(3.5800, 3.9640 + 5e-5, 1e-4), 4)  # SDSS legacy pixels: 3802-9204 Angstrom
WAVE = 10.0**LOGLAM  # (3841,) Angstrom, observed, vacuum
INSTRUMENT_SIGMA_KMS = 70.0  # SDSS resolution R ~ 1800-2200

# Emission lines: name (as in SDSS SPZLINE), rest wavelength (Angstrom, vacuum).
LINE_WAVES = {
    "[O_II] 3725": 3727.09,
    "[O_II] 3727": 3729.88,
    "[Ne_III] 3868": 3869.86,
    "H_delta": 4102.89,
    "H_gamma": 4341.68,
    "He_II 4685": 4686.99,
    "H_beta": 4862.68,
    "[O_III] 4959": 4960.29,
    "[O_III] 5007": 5008.24,
    "[O_I] 6300": 6302.05,
    "[O_I] 6363": 6365.54,
    "[N_II] 6548": 6549.86,
    "H_alpha": 6564.61,
    "[N_II] 6583": 6585.27,
    "[S_II] 6716": 6718.29,
    "[S_II] 6730": 6732.68,
}
# Stellar absorption features: rest wavelength (Angstrom), depth for an old population, intrinsic width.
ABSORPTION_OLD = [
    (3934.78, 0.55, 6.0),
    (3969.59, 0.45, 6.0),
    (4102.89, 0.10, 4.0),
    (4305.0, 0.18, 8.0),
    (4341.68, 0.10, 4.0),
    (4383.5, 0.12, 4.0),
    (4862.68, 0.08, 4.0),
    (5176.7, 0.20, 7.0),
    (5270.0, 0.10, 4.0),
    (5335.0, 0.08, 4.0),
    (5895.6, 0.15, 4.0),
    (6564.61, 0.06, 4.0),
    (8544.4, 0.10, 4.0),
    (8664.5, 0.10, 4.0),
]
BALMER = [3798.98, 3836.47, 3890.15, 3971.20, 4102.89, 4341.68, 4862.68, 6564.61]
SKY_LINES = [
    5578.9,
    5891.6,
    5897.6,
    6302.0,
    6365.5,
    6865.0,
    7246.0,
    7316.3,
    7341.0,
    7751.0,
    7794.1,
    7821.5,
    7914.8,
    7993.3,
    8344.6,
    8399.2,
    8430.2,
    8465.4,
    8493.4,
    8791.2,
    8827.1,
    8885.9,
    8919.6,
    8958.1,
    9001.5,
    9038.1,
]


def gaussian(wave: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """Unit-area Gaussian profile (Angstrom^-1) evaluated at ``wave``."""
    return np.exp(-0.5 * ((wave - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def planck_shape(wave_rest: np.ndarray, temperature: float) -> np.ndarray:
    """A blackbody's shape in f_lambda, normalised to 1 at 5575 Angstrom (rest)."""

    def b(w):
        x = 1.4388e8 / (w * temperature)  # h c / (lambda k T), lambda in Angstrom
        return w**-5 / np.expm1(x)

    return b(wave_rest) / b(5575.0)


def calzetti(wave_rest: np.ndarray, ebv: float) -> np.ndarray:
    """Transmission exp(-tau) for Calzetti et al. (2000) attenuation with R_V = 4.05."""
    x = 1e4 / wave_rest  # inverse micron
    blue = 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 4.05
    red = 2.659 * (-1.857 + 1.040 * x) + 4.05
    k = np.where(wave_rest < 6300, blue, red)
    return 10 ** (-0.4 * ebv * np.clip(k, 0, None))


def stellar_continuum(
    wave_rest: np.ndarray,
    *,
    young: float,
    vdisp: float,
    rng: np.random.Generator,
    balmer_boost: float = 1.0,
    na_d_boost: float = 1.0,
) -> np.ndarray:
    """Continuum shape (dimensionless, ~1 at 5575 Angstrom rest) of old + ``young`` fraction populations.

    Old: a 4500 K-like spectrum with a strong 4000 Angstrom break and metal lines; young: a
    10,000 K-like spectrum, a weak break and deep Balmer absorption (A stars). ``vdisp`` (km/s)
    broadens the absorption lines.
    """
    old = planck_shape(wave_rest, rng.normal(4600, 200))
    old *= 1 - 0.45 / (1 + np.exp((wave_rest - 4000) / 15))  # the 4000 Angstrom break: Dn4000 ~ 1.8
    hot = planck_shape(wave_rest, rng.normal(10500, 800))
    hot *= 1 - 0.12 / (1 + np.exp((wave_rest - 3700) / 20))
    broad = np.hypot(vdisp, INSTRUMENT_SIGMA_KMS) / C_KMS
    metal = np.zeros_like(wave_rest)
    for centre, depth, width in ABSORPTION_OLD:
        sigma = np.hypot(width, centre * broad)
        boost = na_d_boost if abs(centre - 5895.6) < 1 else 1.0
        metal += depth * boost * width * np.sqrt(2 * np.pi) * gaussian(wave_rest, centre, sigma)
    balmer = np.zeros_like(wave_rest)
    for centre in BALMER:
        sigma = np.hypot(12.0, centre * broad)
        balmer += 0.45 * balmer_boost * 12.0 * np.sqrt(2 * np.pi) * gaussian(wave_rest, centre, sigma)
    old_spec = old * np.clip(1 - metal, 0.05, None)
    young_spec = hot * np.clip(1 - balmer - 0.3 * metal, 0.05, None)
    return (1 - young) * old_spec + young * young_spec


# ---- stellar continua from version 3 on ----------------------------------------------------------------

# Absorption features of an old population: rest wavelength (Angstrom, vacuum) and equivalent width
# (Angstrom), roughly as in SDSS's passive galaxies (Ca II K and H, the G band, H-delta to H-alpha, Fe 4383,
# Mg b, Fe 5270/5335, Na D, the Ca triplet). Each line's own width is INTRINSIC_KMS, well below any galaxy's
# velocity dispersion, so that the dispersion sets how broad the lines look, as in a galaxy.
ABSORPTION = [
    (3934.78, 8.0),
    (3969.59, 6.0),
    (4102.89, 0.9),
    (4305.0, 3.5),
    (4341.68, 0.9),
    (4383.5, 1.2),
    (4862.68, 0.8),
    (5176.7, 3.5),
    (5270.0, 1.3),
    (5335.0, 1.0),
    (5895.6, 1.6),
    (6564.61, 0.7),
    (8544.4, 1.2),
    (8664.5, 1.1),
]
INTRINSIC_KMS = 60.0
# A stars' Balmer lines, broad by their own physics (pressure broadening): rest wavelength and EW
# (Angstrom) for a population of A and B stars alone, weaker towards H-alpha as in A-star spectra; one
# Gaussian sigma (Angstrom) for all.
BALMER_YOUNG = {
    3798.98: 6.0,
    3836.47: 7.0,
    3890.15: 8.0,
    3971.20: 9.0,
    4102.89: 10.0,
    4341.68: 9.0,
    4862.68: 8.0,
    6564.61: 4.0,
}
BALMER_YOUNG_SIGMA = 10.0
NA_D = 5895.6


@dataclass(frozen=True)
class Stars:
    """The stellar light of a galaxy: an old population mixed with a young one (A and B stars)."""

    t_old: float  # K: the old population's colour temperature
    t_young: float  # K
    young: float  # the young population's share of the light at 5575 Angstrom (rest)
    balmer: float = 1.0  # the young population's Balmer absorption, over BALMER_YOUNG (post-starbursts: > 1)
    na_d: float = 1.0  # Na D absorption over an old population's (interstellar Na D in outflows: > 1)


def stellar_spectrum(wave_rest: np.ndarray, stars: Stars, vdisp: float) -> np.ndarray:
    """The stars' light (dimensionless, ~1 at 5575 Angstrom rest) at rest wavelengths ``wave_rest``, its
    absorption lines broadened by ``vdisp`` (km/s) and the instrument. Pure: the same arguments give the
    same spectrum, so a catalog's template fit can evaluate it at other dispersions."""
    broad = np.hypot(np.hypot(vdisp, INTRINSIC_KMS), INSTRUMENT_SIGMA_KMS) / C_KMS
    old = planck_shape(wave_rest, stars.t_old)
    old *= 1 - 0.45 / (1 + np.exp((wave_rest - 4000) / 15))  # the 4000 Angstrom break: Dn4000 ~ 1.8
    hot = planck_shape(wave_rest, stars.t_young)
    hot *= 1 - 0.12 / (1 + np.exp((wave_rest - 3700) / 20))
    metal = np.zeros_like(wave_rest)
    for centre, ew in ABSORPTION:
        metal += ew * (stars.na_d if centre == NA_D else 1.0) * gaussian(wave_rest, centre, centre * broad)
    balmer = np.zeros_like(wave_rest)
    for centre, ew in BALMER_YOUNG.items():
        balmer += ew * stars.balmer * gaussian(wave_rest, centre, np.hypot(BALMER_YOUNG_SIGMA, centre * broad))
    old_spec = old * np.clip(1 - metal, 0.05, None)
    young_spec = hot * np.clip(1 - balmer - 0.3 * metal, 0.05, None)
    return (1 - stars.young) * old_spec + stars.young * young_spec


# ---- emission-line ratios by BPT class -------------------------------------------------------------

# Robust (3-sigma clipped) mean and covariance of (log [N II]/Ha, log [O III]/Hb, log [S II]/Ha,
# log [O I]/Ha) per class, from the galaxies of the line-strength sample with S/N >= 3 in the four BPT
# lines (658 star-forming, 383 composite, 163 Seyfert). The sample holds only 3 LINERs with such S/N, so
# the LINER mean follows Kewley et al. (2006)'s LINER branch, with the Seyfert covariance.
RATIO_MEAN = {
    "star-forming": (-0.547, 0.023, -0.463, -1.414),
    "composite": (-0.342, 0.062, -0.464, -1.417),
    "seyfert": (-0.124, 0.804, -0.334, -1.117),
    "liner": (0.05, 0.15, -0.10, -0.75),
}
_SEYFERT_COV = (
    (0.024, 0.028, 0.014, 0.019),
    (0.028, 0.116, 0.034, 0.064),
    (0.014, 0.034, 0.030, 0.043),
    (0.019, 0.064, 0.043, 0.099),
)
RATIO_COV = {
    "star-forming": (
        (0.021, -0.037, -0.005, -0.015),
        (-0.037, 0.082, 0.014, 0.035),
        (-0.005, 0.014, 0.009, 0.013),
        (-0.015, 0.035, 0.013, 0.052),
    ),
    "composite": (
        (0.007, -0.006, -0.002, -0.003),
        (-0.006, 0.035, 0.007, 0.013),
        (-0.002, 0.007, 0.009, 0.011),
        (-0.003, 0.013, 0.011, 0.072),
    ),
    "seyfert": _SEYFERT_COV,
    "liner": _SEYFERT_COV,
}


def draw_ratios(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """log10 line ratios for a galaxy of BPT class ``kind``: drawn from the class's calibrated
    distribution until they fall in its region of the [N II] diagram."""
    for _ in range(500):
        n2, o3, s2, o1 = rng.multivariate_normal(RATIO_MEAN[kind], RATIO_COV[kind])
        region = bpt_region(n2, o3)
        agn_kind = "seyfert" if o3 > 1.05 * n2 + 0.45 else "liner"  # Schawinski et al. 2007 in [N II]
        if region == kind or (region == "agn" and kind == agn_kind):
            return {"n2": float(n2), "o3": float(o3), "s2": float(s2), "o1": float(o1)}
    raise RuntimeError(f"could not draw line ratios for {kind}")


def line_fluxes(
    ratios: dict[str, float], halpha: float, *, balmer_decrement: float = 2.86, o2_over_hb: float = 0.3
) -> dict[str, float]:
    """Fluxes (1e-17 erg s^-1 cm^-2) of every line from H-alpha's flux and log10 ratios."""
    hb = halpha / balmer_decrement
    o3 = hb * 10 ** ratios["o3"]
    n2 = halpha * 10 ** ratios["n2"]
    s2 = halpha * 10 ** ratios["s2"]
    o1 = halpha * 10 ** ratios["o1"]
    o2 = hb * 10**o2_over_hb
    return {
        "H_alpha": halpha,
        "H_beta": hb,
        "H_gamma": 0.47 * hb,
        "H_delta": 0.26 * hb,
        "[O_III] 5007": o3,
        "[O_III] 4959": o3 / 2.98,
        "[N_II] 6583": n2,
        "[N_II] 6548": n2 / 2.94,
        "[S_II] 6716": 0.55 * s2,
        "[S_II] 6730": 0.45 * s2,
        "[O_I] 6300": o1,
        "[O_I] 6363": o1 / 3.0,
        "[O_II] 3725": 0.45 * o2,
        "[O_II] 3727": 0.55 * o2,
        "[Ne_III] 3868": 0.08 * o3,
    }


def emission_spectrum(
    wave_obs: np.ndarray, fluxes: dict[str, float], z: float, sigma_kms: float, offsets_kms: tuple[float, ...] = (0.0,)
) -> np.ndarray:
    """Gaussian lines (flux densities) at redshift z; several ``offsets_kms`` split each line evenly."""
    out = np.zeros_like(wave_obs)
    width = np.hypot(sigma_kms, INSTRUMENT_SIGMA_KMS) / C_KMS
    for name, flux in fluxes.items():
        for offset in offsets_kms:
            centre = LINE_WAVES[name] * (1 + z) * (1 + offset / C_KMS)
            out += flux / len(offsets_kms) * gaussian(wave_obs, centre, centre * width)
    return out


def sky_spectrum(wave_obs: np.ndarray) -> np.ndarray:
    """Night-sky flux density down one fibre: a smooth continuum plus the bright lines."""
    sky = 3.0 + 2.0 * (wave_obs / 9000.0) ** 3
    for i, line in enumerate(SKY_LINES):
        strength = 60.0 if i == 0 else (25.0 if line < 6500 else 12.0 + 3 * (i % 4))
        sky += strength * gaussian(wave_obs, line, 1.6) * 4.0
    return sky


# ---- observing: what SDSS records of a model spectrum -------------------------------------------------

SKY = sky_spectrum(WAVE)  # 1e-17 erg s^-1 cm^-2 Angstrom^-1
SKY_LINE_FLUX = SKY - sky_spectrum(np.array([5000.0]))[0]  # the lines alone
THROUGHPUT = 1 + 2.0 * np.exp(-(WAVE - 3800) / 250) + 0.6 * np.exp((WAVE - 9200) / 300)  # noise boost at the ends


def noise(model: np.ndarray, snr: float, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel photon noise of ``model`` plus sky, scaled so that ``reference`` (default: ``model``) has a
    median S/N of ``snr``, and the pipeline's sigma, which adds the sky-subtraction residual: (3841,) each."""
    shape = np.sqrt(np.clip(model, 0, None) + SKY) * THROUGHPUT
    reference = model if reference is None else reference
    reference_shape = np.sqrt(np.clip(reference, 0, None) + SKY) * THROUGHPUT
    photon = shape * np.median(np.clip(reference, 1e-3, None) / reference_shape) / snr
    return photon, np.hypot(photon, 0.015 * SKY_LINE_FLUX)


def observe(
    model: np.ndarray, snr: float, rng: np.random.Generator, reference: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """SDSS-like noise (sky + source photon noise, a blue end losing throughput), sky-line residuals,
    and a few masked bad columns; the noise level is set by ``reference`` (default: ``model``), so a
    lens's background lines add their own photon noise without changing the host's."""
    photon, sigma = noise(model, snr, reference)  # 1e-17 erg s^-1 cm^-2 Angstrom^-1
    residual = 0.015 * SKY_LINE_FLUX * rng.normal(0, 1, model.shape)  # imperfect sky subtraction
    flux = model + rng.normal(0, 1, model.shape) * photon + residual
    ivar = 1.0 / sigma**2
    sky = SKY
    and_mask = np.zeros(model.shape, dtype=np.int32)
    bright_sky = sky > 40
    and_mask[bright_sky & (rng.random(model.shape) < 0.3)] |= 1 << 23  # BRIGHTSKY
    for _ in range(rng.poisson(0.7)):  # bad CCD columns: no data
        start = int(rng.integers(0, len(model) - 12))
        stop = start + int(rng.integers(2, 12))
        and_mask[start:stop] |= 1 << 24  # NODATA
    ivar[(and_mask & (1 << 24)) != 0] = 0.0  # BRIGHTSKY pixels keep their ivar, as in SDSS files
    return {
        "flux": flux.astype(np.float32),
        "ivar": ivar.astype(np.float32),
        "and_mask": and_mask,
        "sky": sky.astype(np.float32),
        "model": model.astype(np.float32),
        "sigma": sigma,
    }
