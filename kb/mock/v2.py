"""Mock survey version 2, frozen: it regenerates v2 surveys byte for byte (`mock_survey --mock-version 2`).

Do not change it: a fix belongs in the current version (``kb.mock.populations``). What v2 got wrong is in
docs/mock_survey.md (Versions): catalogs measured the true line fluxes with noise of their own rather than
the spectrum's pixels, the lens catalog listed every lens, and some outlier kinds were not physical.

Populations and their shares follow SDSS's main galaxy sample roughly: star-forming 34%, passive or
weak-line ("normal") 37%, composite 10%, LINER 10%, Seyfert 4%, and two rare groups, strong lenses and
outliers of eleven kinds after Baron & Poznanski (2017), 2.5% each by default. Lens hosts are massive
passive galaxies at BOSS/eBOSS redshifts, with ``massive_per_lens`` passive galaxies drawn like them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kb.mock import physics
from kb.mock.physics import C_KMS, WAVE, noise, observe
from kb.mock.rules import galspec_bptclass, port_bpt
from kb.mock.writer import SPZLINE_LINES

POPULATIONS = {"star-forming": 0.34, "normal": 0.37, "composite": 0.10, "liner": 0.10, "seyfert": 0.04}
OUTLIER_KINDS = [
    "post-starburst",
    "extreme Na D",
    "heavily reddened",
    "double-peaked lines",
    "broad-line AGN",
    "extreme [O III] emitter",
    "Wolf-Rayet features",
    "superposed star",
    "high velocity dispersion",
    "BPT outlier",
    "weak H-alpha, strong [N II]",
]
# Rest-frame H-alpha equivalent width (Angstrom): log-normal median and scatter (dex) per class.
HALPHA_EW = {"star-forming": (25.0, 0.3), "composite": (9.0, 0.25), "seyfert": (14.0, 0.3), "liner": (2.2, 0.2)}
YOUNG_FRACTION = {
    "star-forming": (0.3, 0.7),
    "composite": (0.12, 0.35),
    "seyfert": (0.08, 0.3),
    "liner": (0.0, 0.1),
    "normal": (0.0, 0.06),
}
HOSTS = ("lens", "massive")  # drawn alike: the lens hosts and the passive galaxies matched to them
MASSIVE_PER_LENS = 3  # by default
HOST_Z = (0.1, 0.7)  # BOSS/eBOSS redshifts of lens candidates' foreground galaxies
HOST_VDISP = (200.0, 320.0)  # km/s
SOURCE_SNR = (3.0, 30.0)  # S/N of the background galaxy's strongest line on the grid, log-uniform
VDISP = {
    "star-forming": (60, 120),
    "composite": (100, 180),
    "seyfert": (110, 230),
    "liner": (140, 260),
    "normal": (140, 290),
}


@dataclass
class MockGalaxy:
    """Truth for one mock galaxy; ``lines`` are true fluxes (1e-17 erg s^-1 cm^-2) at redshift z."""

    population: str  # star-forming, composite, seyfert, liner, normal, lens, outlier
    kind: str  # the outlier kind, 'lens', or the population again
    z: float
    vdisp: float  # km/s
    ebv: float  # stellar E(B-V), magnitudes
    young: float
    amplitude: float  # continuum flux density at 5575 Angstrom rest, 1e-17 erg s^-1 cm^-2 Angstrom^-1
    snr: float  # target median S/N per pixel
    sigma_gas: float = 80.0  # emission-line velocity dispersion, km/s
    lines: dict[str, float] = field(default_factory=dict)
    z_source: float | None = None  # lenses: redshift of the background emission-line galaxy
    source_lines: dict[str, float] = field(default_factory=dict)  # relative strengths ([O III] 5007 = 1)
    source_snr: float = 0.0  # the S/N its strongest line on the grid is given when rendered
    sigma_source: float = 60.0  # km/s
    ratios: dict[str, float] = field(default_factory=dict)


TRUTH_EXTRA: tuple[tuple[str, str], ...] = ()  # mock_truth.csv columns beyond survey.TRUTH


def draw_redshift(rng: np.random.Generator) -> float:
    """SDSS main-sample-like: p(z) ~ z^2 exp(-(z/0.055)^1.5), peaking near 0.085, tail to ~0.3."""
    while True:
        z = rng.gamma(3.0, 0.028)
        if 0.01 <= z <= 0.33:
            return float(z)


def draw_population(
    rng: np.random.Generator, lens_fraction: float, outlier_fraction: float, massive_per_lens: float = MASSIVE_PER_LENS
) -> tuple[str, str]:
    u = rng.random()
    if u < lens_fraction:
        return "lens", "lens"
    if u < lens_fraction + outlier_fraction:
        return "outlier", OUTLIER_KINDS[rng.integers(len(OUTLIER_KINDS))]
    if u < lens_fraction * (1 + massive_per_lens) + outlier_fraction:
        return "normal", "massive"
    names = list(POPULATIONS)
    population = names[rng.choice(len(names), p=np.array(list(POPULATIONS.values())) / sum(POPULATIONS.values()))]
    return population, population


def draw_galaxy(
    rng: np.random.Generator,
    *,
    lens_fraction: float,
    outlier_fraction: float,
    massive_per_lens: float = MASSIVE_PER_LENS,
) -> MockGalaxy:
    population, kind = draw_population(rng, lens_fraction, outlier_fraction, massive_per_lens)
    base = {"lens": "normal", "outlier": "normal"}.get(population, population)
    host = kind in HOSTS
    z = float(rng.uniform(*HOST_Z)) if host else draw_redshift(rng)
    galaxy = MockGalaxy(
        population=population,
        kind=kind,
        z=z,
        vdisp=float(rng.uniform(*(HOST_VDISP if host else VDISP[base]))),
        ebv=float(rng.uniform(0.05, 0.35) if base == "star-forming" else rng.uniform(0.0, 0.12)),
        young=float(rng.uniform(*YOUNG_FRACTION[base])),
        amplitude=float(np.clip(14.0 * (0.09 / z) ** 0.7 * rng.lognormal(0, 0.35), 2.0, 300.0)),
        snr=float(np.clip(rng.lognormal(np.log(14.0), 0.4), 3.0, 60.0)),
        sigma_gas=float(rng.uniform(50, 110)),
    )
    if base in HALPHA_EW:
        galaxy.ratios = physics.draw_ratios(base, rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, *HALPHA_EW[base])
    elif population in ("normal", "lens"):  # passive, or emission too weak for any catalog to classify
        galaxy.ratios = physics.draw_ratios("liner", rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, 0.3, 0.3)
    if population == "lens":
        galaxy.z_source = float(rng.uniform(z + 0.1, z + 0.6))
        o2 = float(rng.uniform(0.8, 2.5))  # [O II] 3727 doublet / [O III] 5007, star-forming sources
        galaxy.source_lines = {
            "[O_II] 3725": 0.45 * o2,
            "[O_II] 3727": 0.55 * o2,
            "H_beta": 1 / rng.uniform(1.5, 4.0),
            "[O_III] 5007": 1.0,
            "[O_III] 4959": 1 / 2.98,  # the atomic ratio
        }
        galaxy.source_snr = float(np.exp(rng.uniform(*np.log(SOURCE_SNR))))
        galaxy.sigma_source = float(rng.uniform(40, 90))
    if population == "outlier":
        _make_outlier(galaxy, rng)
    return galaxy


def _lines_from_ew(
    galaxy: MockGalaxy, rng: np.random.Generator, median_ew: float, scatter_dex: float
) -> dict[str, float]:
    ew = median_ew * 10 ** rng.normal(0, scatter_dex)
    halpha = ew * galaxy.amplitude * _continuum_at(galaxy, 6564.61)  # rest EW x rest-frame continuum
    decrement = 2.86 * 10 ** (0.4 * 1.27 * 2.0 * galaxy.ebv)  # gas sees about twice the stellar reddening
    return physics.line_fluxes(galaxy.ratios, halpha, balmer_decrement=decrement)


def _continuum_at(galaxy: MockGalaxy, wave_rest: float) -> float:
    """Relative continuum level near ``wave_rest`` (the shape is ~1 at 5575 Angstrom)."""
    return float(
        physics.planck_shape(np.array([wave_rest]), 5500.0)[0]
        * physics.calzetti(np.array([wave_rest]), galaxy.ebv)[0]
        / physics.calzetti(np.array([5575.0]), galaxy.ebv)[0]
    )


def _make_outlier(galaxy: MockGalaxy, rng: np.random.Generator) -> None:
    kind = galaxy.kind
    if kind in (
        "heavily reddened",
        "double-peaked lines",
        "Wolf-Rayet features",
        "BPT outlier",
        "extreme [O III] emitter",
        "broad-line AGN",
        "weak H-alpha, strong [N II]",
    ):
        galaxy.young = float(rng.uniform(0.3, 0.7))
        galaxy.vdisp = float(rng.uniform(60, 150))
    if kind == "post-starburst":
        galaxy.young = float(rng.uniform(0.55, 0.8))
    elif kind == "high velocity dispersion":
        galaxy.vdisp = float(rng.uniform(420, 560))
    elif kind == "heavily reddened":
        galaxy.ebv = float(rng.uniform(0.9, 1.4))
        galaxy.ratios = physics.draw_ratios("star-forming", rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, 25.0, 0.2)
    elif kind == "double-peaked lines":
        galaxy.ratios = physics.draw_ratios(str(rng.choice(["star-forming", "seyfert"])), rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, 30.0, 0.2)
    elif kind == "broad-line AGN":
        galaxy.ratios = physics.draw_ratios("seyfert", rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, 20.0, 0.2)
    elif kind == "extreme [O III] emitter":
        galaxy.ratios = {"n2": rng.normal(-1.4, 0.1), "o3": rng.normal(0.85, 0.08), "s2": -1.0, "o1": -2.0}
        galaxy.lines = _lines_from_ew(galaxy, rng, 350.0, 0.15)
    elif kind == "Wolf-Rayet features":
        galaxy.young = 0.85
        galaxy.ratios = physics.draw_ratios("star-forming", rng)
        galaxy.lines = _lines_from_ew(galaxy, rng, 60.0, 0.15)
    elif kind == "BPT outlier":
        galaxy.ratios = {"n2": rng.normal(-1.25, 0.1), "o3": rng.normal(-0.95, 0.1), "s2": -0.6, "o1": -1.5}
        galaxy.lines = _lines_from_ew(galaxy, rng, 25.0, 0.2)
    elif kind == "weak H-alpha, strong [N II]":
        galaxy.ratios = {"n2": rng.uniform(0.6, 0.9), "o3": rng.normal(-0.1, 0.15), "s2": 0.1, "o1": -0.5}
        galaxy.lines = _lines_from_ew(galaxy, rng, 3.0, 0.1)


def render(galaxy: MockGalaxy, rng: np.random.Generator, *, background: bool = True) -> dict[str, np.ndarray]:
    """The noiseless model and what SDSS records: flux, ivar, and_mask, sky (all (3841,), SDSS units).

    ``background=False`` leaves a lens's background lines out and changes nothing else, noise included:
    the same galaxy as it would look if it were not a lens."""
    wave_rest = WAVE / (1 + galaxy.z)
    kind = galaxy.kind
    continuum = physics.stellar_continuum(
        wave_rest,
        young=galaxy.young,
        vdisp=galaxy.vdisp,
        rng=rng,
        balmer_boost=1.8 if kind == "post-starburst" else 1.0,
        na_d_boost=5.0 if kind == "extreme Na D" else 1.0,
    )
    continuum *= physics.calzetti(wave_rest, galaxy.ebv) / physics.calzetti(np.array([5575.0]), galaxy.ebv)
    model = galaxy.amplitude * continuum
    offsets = (0.0,)
    sigma_gas = galaxy.sigma_gas
    if kind == "double-peaked lines":
        split = rng.uniform(250, 450)
        offsets = (-split / 2, split / 2)
    model += physics.emission_spectrum(WAVE, galaxy.lines, galaxy.z, sigma_gas, offsets)
    if kind == "broad-line AGN":
        width = rng.uniform(1800, 3500)
        broad = {"H_alpha": galaxy.lines["H_alpha"] * rng.uniform(3, 8)}
        broad["H_beta"] = broad["H_alpha"] / 3.1
        model += physics.emission_spectrum(WAVE, broad, galaxy.z, width)
        model += 0.4 * galaxy.amplitude * (wave_rest / 5575.0) ** -1.5  # the AGN's blue power law
    if kind == "Wolf-Rayet features":
        hb = galaxy.lines["H_beta"]
        for centre, strength in ((4686.0, 0.4), (4650.0, 0.3), (5808.0, 0.25)):
            width = centre * 1500 / C_KMS
            model += strength * hb * physics.gaussian(WAVE, centre * (1 + galaxy.z), width)
    if kind == "superposed star":
        star = physics.planck_shape(WAVE, 3600.0)
        for lo, hi, depth in ((6150, 6300, 0.3), (7050, 7250, 0.45), (8430, 8900, 0.2)):
            star *= 1 - depth / (1 + np.exp(-(WAVE - lo) / 8)) / (1 + np.exp((WAVE - hi) / 30))
        star *= 1 - 0.5 * physics.gaussian(WAVE, 5895.6, 2.5) * 2.5 * np.sqrt(2 * np.pi)
        model += rng.uniform(0.5, 1.5) * galaxy.amplitude * star
    host = model.copy()  # everything but a lens's background galaxy, which sets the noise level
    if galaxy.source_lines and background:
        model += physics.emission_spectrum(WAVE, source_lines(galaxy, host), galaxy.z_source, galaxy.sigma_source)
    return observe(model, galaxy.snr, rng, reference=host)


def source_lines(galaxy: MockGalaxy, host: np.ndarray) -> dict[str, float]:
    """A lens's background lines in 1e-17 erg s^-1 cm^-2, scaled so that the strongest one on the grid has
    S/N ``source_snr`` over the noise ``observe`` gives the host's light ``host`` there."""
    _, sigma = noise(host, galaxy.snr)
    best, error = 0.0, 0.0
    for name, strength in galaxy.source_lines.items():
        centre = physics.LINE_WAVES[name] * (1 + galaxy.z_source)
        if not WAVE[0] + 10 < centre < WAVE[-1] - 10 or strength <= best:
            continue
        pixel = int(np.searchsorted(WAVE, centre))
        width = centre * np.hypot(galaxy.sigma_source, physics.INSTRUMENT_SIGMA_KMS) / C_KMS
        best, error = strength, sigma[pixel] * np.sqrt(2 * np.sqrt(np.pi) * width * centre * np.log(10) * 1e-4)
    scale = galaxy.source_snr * error / best if best else 0.0
    return {name: strength * scale for name, strength in galaxy.source_lines.items()}


def measure_lines(
    true_lines: dict[str, float], z: float, sigma: np.ndarray, sigma_kms: float, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """What a Gaussian line fit would report for each SPZLINE line: (flux, error), 1e-17 erg s^-1 cm^-2.

    The error of an optimal Gaussian fit on pixels of noise ``sigma`` (flux density) is about
    sigma * sqrt(2 sqrt(pi) s dlambda) for a line of width s on pixels dlambda wide. Lines outside the
    observed range get (0, -1), as SDSS writes them.
    """
    out = {}
    for name, wave_rest in SPZLINE_LINES:
        centre = wave_rest * (1 + z)
        if not WAVE[0] + 10 < centre < WAVE[-1] - 10:
            out[name] = (0.0, -1.0)
            continue
        pixel = int(np.searchsorted(WAVE, centre))
        width = centre * np.hypot(sigma_kms, physics.INSTRUMENT_SIGMA_KMS) / physics.C_KMS
        dlambda = centre * np.log(10) * 1e-4
        error = float(sigma[pixel] * np.sqrt(2 * np.sqrt(np.pi) * width * dlambda))
        out[name] = (float(true_lines.get(name, 0.0) + rng.normal(0, error)), error)
    return out


def record(galaxy: MockGalaxy, rng: np.random.Generator, *, background: bool = True) -> tuple[dict, dict, dict]:
    """What SDSS and the catalogs record of ``galaxy``: the observed arrays (``render``), the SPZLINE lines
    {name: (flux, error, sigma km/s)} and the catalog fields (SPECOBJ, MPA-JHU, Portsmouth, lens grading)."""
    observed = render(galaxy, rng, background=background)
    true_lines = dict(galaxy.lines)
    spzline = measure_lines(true_lines, galaxy.z, observed["sigma"], galaxy.sigma_gas, rng)
    mpa = measure_lines(true_lines, galaxy.z, observed["sigma"], galaxy.sigma_gas, rng)  # another fit, another noise
    port = measure_lines(true_lines, galaxy.z, observed["sigma"] * 1.15, galaxy.sigma_gas, rng)
    catalog = dict(
        Z=galaxy.z,
        Z_ERR=2e-5 * (1 + galaxy.z),
        VDISP=galaxy.vdisp,
        VDISP_ERR=0.08 * galaxy.vdisp,
        SN_MEDIAN_ALL=float(np.median(observed["flux"] * np.sqrt(observed["ivar"]))),
        SUBCLASS="STARFORMING" if galaxy.population == "star-forming" else "",
        BPTCLASS=galspec_bptclass(mpa),
        PORT_BPT=port_bpt(port),
        LGM=float(rng.normal(10.6, 0.4)),
        lens_catalogued=galaxy.population == "lens",
        grading="confident" if rng.random() < 0.6 else "probable",
    )
    lines = {name: (flux, error, galaxy.sigma_gas) for name, (flux, error) in spzline.items()}
    return observed, lines, catalog
