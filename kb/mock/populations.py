"""Mock galaxies, version 3: who they are, the spectrum SDSS records, and what each catalog measures of it.

Populations follow SDSS's main galaxy sample roughly (star-forming 34%, passive or weak-line "normal" 37%,
composite 10%, LINER 10%, Seyfert 4%, post-starburst (E+A) 1.5%), and two rare groups, 2.5% each by
default: strong lenses, with ``massive_per_lens`` passive galaxies drawn exactly like their hosts, and
outliers of ten kinds after Baron & Poznanski (2017), each as the literature cited beside its recipe
describes it, on a host of its own.

Catalogs measure the spectrum's pixels (``kb.mock.measure``) and select by their published rules
(``kb.mock.rules``): the BPT classes of MPA-JHU and Portsmouth, the E+A list of Goto (2007), and the lens
list, which holds a lens only when its background lines pass a BOSS-style detection rule; a lens below
it stays in the survey, unlabelled, as undetected lenses do. See docs/mock_survey.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kb.line_indices import INDEX_WINDOWS, index_ew
from kb.mock import measure, physics, rules
from kb.mock.physics import C_KMS, WAVE, Stars, noise, observe
from kb.mock.v2 import HALPHA_EW, YOUNG_FRACTION, draw_redshift  # unchanged since v2
from kb.preprocess import PAPER

POPULATIONS = {
    "star-forming": 0.34,
    "normal": 0.37,
    "composite": 0.10,
    "liner": 0.10,
    "seyfert": 0.04,
    "post-starburst": 0.015,
}
HOSTS = ("lens", "massive")  # drawn alike: the lens hosts and the passive galaxies matched to them
MASSIVE_PER_LENS = 3  # by default
HOST_Z = (0.1, 0.7)  # BOSS/eBOSS redshifts of lens candidates' foreground galaxies
HOST_VDISP = (200.0, 320.0)  # km/s
SOURCE_SNR = (
    1.5,
    30.0,
)  # S/N of the background galaxy's strongest line on the grid, log-uniform; many are undetectable
VDISP = {
    "star-forming": (60, 120),
    "composite": (100, 180),
    "seyfert": (110, 230),
    "liner": (140, 260),
    "normal": (140, 290),
    "post-starburst": (90, 200),
}
TRUTH_EXTRA = (  # mock_truth.csv columns beyond survey.TRUTH
    ("vdisp_true", ".1f"),
    ("source_snr", ".2f"),
    ("lens_detection_snr", ".2f"),
    ("lens_catalogued", "d"),
    ("hdelta_ew", ".2f"),
    ("eplusa_catalogued", "d"),
)


@dataclass
class MockGalaxy:
    """Truth for one mock galaxy; ``lines`` are true fluxes (1e-17 erg s^-1 cm^-2) at redshift z."""

    population: str  # star-forming, composite, seyfert, liner, normal, post-starburst, lens, outlier
    kind: str  # the outlier kind, 'lens', 'massive', or the population again
    z: float
    vdisp: float  # km/s
    ebv: float  # stellar E(B-V), magnitudes; the gas sees twice as much
    stars: Stars
    amplitude: float  # continuum flux density at 5575 Angstrom rest, 1e-17 erg s^-1 cm^-2 Angstrom^-1
    snr: float  # target median S/N per pixel
    sigma_gas: float = 80.0  # emission-line velocity dispersion, km/s
    ratios: dict[str, float] = field(default_factory=dict)  # log10 n2, o3, s2, o1 (physics.draw_ratios)
    lines: dict[str, float] = field(default_factory=dict)
    line_offsets_kms: tuple[float, ...] = (0.0,)  # two for double-peaked lines
    broad_lines: dict[str, float] = field(default_factory=dict)  # a broad-line region's lines, same units
    broad_sigma: float = 0.0  # km/s
    power_law: float = 0.0  # an AGN continuum's flux density at 5575 Angstrom rest, over ``amplitude``
    bumps: dict[float, float] = field(default_factory=dict)  # Wolf-Rayet bumps: rest centre -> flux
    star_light: float = 0.0  # a superposed M star's flux density, over ``amplitude``
    z_source: float | None = None  # lenses: redshift of the background emission-line galaxy
    source_lines: dict[str, float] = field(default_factory=dict)  # relative strengths ([O III] 5007 = 1)
    source_snr: float = 0.0  # the S/N its strongest line on the model's grid is given when rendered
    sigma_source: float = 60.0  # km/s

    @property
    def young(self) -> float:
        return self.stars.young


def draw_population(
    rng: np.random.Generator, lens_fraction: float, outlier_fraction: float, massive_per_lens: float = MASSIVE_PER_LENS
) -> tuple[str, str]:
    u = rng.random()
    if u < lens_fraction:
        return "lens", "lens"
    if u < lens_fraction + outlier_fraction:
        kinds = list(OUTLIERS)
        return "outlier", kinds[rng.integers(len(kinds))]
    if u < lens_fraction * (1 + massive_per_lens) + outlier_fraction:
        return "normal", "massive"
    names = list(POPULATIONS)
    shares = np.array(list(POPULATIONS.values()))
    population = names[rng.choice(len(names), p=shares / shares.sum())]
    return population, population


def draw_galaxy(
    rng: np.random.Generator,
    *,
    lens_fraction: float,
    outlier_fraction: float,
    massive_per_lens: float = MASSIVE_PER_LENS,
) -> MockGalaxy:
    population, kind = draw_population(rng, lens_fraction, outlier_fraction, massive_per_lens)
    if population == "outlier":
        return OUTLIERS[kind](rng)
    if kind in HOSTS:
        return _host(rng, population, kind)
    return _ordinary(rng, population)


# ---- the ordinary populations -------------------------------------------------------------------------


def _stars(rng: np.random.Generator, young: float, *, t_young: tuple = (10500, 800), **kwargs) -> Stars:
    """Old stars (~4,600 K) and young ones (B and A stars, ~10,500 K; A stars alone ~9,000 K)."""
    return Stars(t_old=float(rng.normal(4600, 200)), t_young=float(rng.normal(*t_young)), young=young, **kwargs)


def _main_sample(
    rng: np.random.Generator, population: str, kind: str, *, vdisp: tuple, young: tuple, ebv: tuple, **stars
) -> MockGalaxy:
    """A main-sample galaxy: SDSS's redshifts, brightness and S/N, and no emission lines yet."""
    z = draw_redshift(rng)
    return MockGalaxy(
        population=population,
        kind=kind,
        z=z,
        vdisp=float(rng.uniform(*vdisp)),
        ebv=float(rng.uniform(*ebv)),
        stars=_stars(rng, float(rng.uniform(*young)), **stars),
        amplitude=float(np.clip(14.0 * (0.09 / z) ** 0.7 * rng.lognormal(0, 0.35), 2.0, 300.0)),
        snr=float(np.clip(rng.lognormal(np.log(14.0), 0.4), 3.0, 60.0)),
        sigma_gas=float(rng.uniform(50, 110)),
    )


def _ordinary(rng: np.random.Generator, population: str) -> MockGalaxy:
    if population == "post-starburst":  # E+A (Dressler & Gunn 1983; Goto 2007): A stars, no star formation
        galaxy = _main_sample(
            rng,
            population,
            population,
            vdisp=VDISP[population],
            young=(0.35, 0.7),
            ebv=(0.0, 0.15),
            t_young=(9000, 500),
            balmer=1.3,
        )
        _emission(galaxy, rng, "liner", 0.3, 0.3)
        return galaxy
    young = YOUNG_FRACTION[population]
    ebv = (0.05, 0.35) if population == "star-forming" else (0.0, 0.12)
    galaxy = _main_sample(rng, population, population, vdisp=VDISP[population], young=young, ebv=ebv)
    if population in HALPHA_EW:
        _emission(galaxy, rng, population, *HALPHA_EW[population])
    else:  # passive, or emission too weak for any catalog to classify
        _emission(galaxy, rng, "liner", 0.3, 0.3)
    return galaxy


def _emission(galaxy: MockGalaxy, rng: np.random.Generator, kind: str, median_ew: float, scatter_dex: float) -> None:
    """Lines of BPT class ``kind`` with a log-normal H-alpha equivalent width (Angstrom, rest)."""
    galaxy.ratios = physics.draw_ratios(kind, rng)
    _lines_from_ew(galaxy, rng, median_ew, scatter_dex)


def _lines_from_ew(galaxy: MockGalaxy, rng: np.random.Generator, median_ew: float, scatter_dex: float) -> None:
    ew = median_ew * 10 ** rng.normal(0, scatter_dex)
    wave = np.array([6564.61])
    level = (
        physics.planck_shape(wave, 5500.0)
        * physics.calzetti(wave, galaxy.ebv)
        / physics.calzetti(np.array([5575.0]), galaxy.ebv)
    )
    halpha = ew * galaxy.amplitude * float(level[0])  # rest EW x rest-frame continuum
    decrement = 2.86 * 10 ** (0.4 * 1.27 * 2.0 * galaxy.ebv)  # gas sees about twice the stellar reddening
    galaxy.lines = physics.line_fluxes(galaxy.ratios, halpha, balmer_decrement=decrement)


def _host_snr(rng: np.random.Generator, z: float) -> float:
    """Median S/N per pixel of a BOSS-like massive galaxy at redshift z: about 16 at z = 0.2, 4 at 0.5 and
    2.4 at 0.7 (a constant luminosity fading as the distance grows), with 0.3 dex of scatter."""
    return float(np.clip(4.0 * (0.5 / z) ** 1.5 * rng.lognormal(0, 0.3 * np.log(10)), 1.5, 40.0))


def _host(rng: np.random.Generator, population: str, kind: str) -> MockGalaxy:
    """A lens host, or a massive passive galaxy drawn exactly as one (kind 'massive')."""
    z = float(rng.uniform(*HOST_Z))
    galaxy = MockGalaxy(
        population=population,
        kind=kind,
        z=z,
        vdisp=float(rng.uniform(*HOST_VDISP)),
        ebv=float(rng.uniform(0.0, 0.12)),
        stars=_stars(rng, float(rng.uniform(*YOUNG_FRACTION["normal"]))),
        amplitude=float(np.clip(14.0 * (0.09 / z) ** 0.7 * rng.lognormal(0, 0.35), 2.0, 300.0)),
        snr=_host_snr(rng, z),
        sigma_gas=float(rng.uniform(50, 110)),
    )
    _emission(galaxy, rng, "liner", 0.3, 0.3)
    if kind == "lens":
        galaxy.z_source = float(rng.uniform(z + 0.1, z + 0.6))
        o2 = float(rng.uniform(0.8, 2.5))  # [O II] 3727 doublet / [O III] 5007, star-forming sources
        hbeta = float(1 / rng.uniform(1.5, 4.0))
        halpha = hbeta * float(rng.uniform(2.86, 4.5))  # Case B and some dust
        galaxy.source_lines = {
            "[O_II] 3725": 0.45 * o2,
            "[O_II] 3727": 0.55 * o2,
            "H_beta": hbeta,
            "[O_III] 4959": 1 / 2.98,  # the atomic ratio
            "[O_III] 5007": 1.0,
            "H_alpha": halpha,
            "[N_II] 6583": halpha * 10 ** float(rng.uniform(-1.0, -0.4)),
        }
        galaxy.source_snr = float(np.exp(rng.uniform(*np.log(SOURCE_SNR))))
        galaxy.sigma_source = float(rng.uniform(40, 90))
    return galaxy


# ---- outliers: each kind as the literature describes it, on its own host ---------------------------------


def _star_forming_host(rng: np.random.Generator, kind: str, *, young=(0.3, 0.6), ebv=(0.05, 0.3), **stars):
    return _main_sample(rng, "outlier", kind, vdisp=VDISP["star-forming"], young=young, ebv=ebv, **stars)


def _seyfert_host(rng: np.random.Generator, kind: str) -> MockGalaxy:
    return _main_sample(rng, "outlier", kind, vdisp=VDISP["seyfert"], young=(0.05, 0.25), ebv=(0.0, 0.15))


def _passive_host(rng: np.random.Generator, kind: str, *, vdisp=VDISP["normal"]) -> MockGalaxy:
    galaxy = _main_sample(rng, "outlier", kind, vdisp=vdisp, young=(0.0, 0.05), ebv=(0.0, 0.1))
    _emission(galaxy, rng, "liner", 0.3, 0.3)
    return galaxy


def extreme_na_d(rng: np.random.Generator) -> MockGalaxy:
    """Interstellar Na D from neutral outflows of dusty star-forming galaxies: Na D several times an old
    population's (Rupke, Veilleux & Sanders 2005; Chen et al. 2010)."""
    galaxy = _star_forming_host(rng, "extreme Na D", ebv=(0.2, 0.45), na_d=float(rng.uniform(3.0, 5.0)))
    _emission(galaxy, rng, "star-forming", 15.0, 0.2)
    return galaxy


def heavily_reddened(rng: np.random.Generator) -> MockGalaxy:
    """A dusty star-forming galaxy at the top of SDSS's Balmer decrements: H-alpha/H-beta 8-15 (Groves,
    Brinchmann & Walcher 2012), stellar E(B-V) 0.45-0.72."""
    galaxy = _star_forming_host(rng, "heavily reddened", ebv=(0.45, 0.72))
    _emission(galaxy, rng, "star-forming", 25.0, 0.2)
    return galaxy


def double_peaked(rng: np.random.Generator) -> MockGalaxy:
    """Double-peaked narrow lines of a Seyfert, the peaks 300-600 km/s apart (Wang et al. 2009; Liu et al.
    2010)."""
    galaxy = _seyfert_host(rng, "double-peaked lines")
    _emission(galaxy, rng, "seyfert", 20.0, 0.2)
    split = float(rng.uniform(300, 600))
    galaxy.line_offsets_kms = (-split / 2, split / 2)
    galaxy.sigma_gas = float(rng.uniform(60, 120))
    return galaxy


def broad_line_agn(rng: np.random.Generator) -> MockGalaxy:
    """A type 1 AGN among galaxies: broad H-alpha and H-beta (sigma 1,000-2,500 km/s, 3-8 times the narrow
    H-alpha) and a blue power law (Hao et al. 2005; Stern & Laor 2012)."""
    galaxy = _seyfert_host(rng, "broad-line AGN")
    _emission(galaxy, rng, "seyfert", 20.0, 0.2)
    broad = galaxy.lines["H_alpha"] * float(rng.uniform(3, 8))
    galaxy.broad_lines = {"H_alpha": broad, "H_beta": broad / 3.1}
    galaxy.broad_sigma = float(rng.uniform(1000, 2500))
    galaxy.power_law = float(rng.uniform(0.2, 0.6))
    return galaxy


def extreme_oiii(rng: np.random.Generator) -> MockGalaxy:
    """A 'green pea': a compact, low-mass, low-metallicity starburst with [O III] 5007 EW of hundreds to
    a thousand Angstrom (Cardamone et al. 2009), faint and of low dispersion."""
    galaxy = _main_sample(rng, "outlier", "extreme [O III] emitter", vdisp=(40, 80), young=(0.7, 0.9), ebv=(0.0, 0.1))
    galaxy.amplitude *= 0.4
    galaxy.ratios = {"n2": rng.normal(-1.4, 0.1), "o3": rng.normal(0.75, 0.08), "s2": -1.0, "o1": -2.0}
    _lines_from_ew(galaxy, rng, 350.0, 0.15)
    return galaxy


def wolf_rayet(rng: np.random.Generator) -> MockGalaxy:
    """A young starburst with Wolf-Rayet stars: the broad blue bump (N III 4640 + He II 4686) and the red
    bump (C IV 5808), FWHM ~ 1,500-2,000 km/s (Brinchmann, Kunth & Durret 2008)."""
    galaxy = _star_forming_host(rng, "Wolf-Rayet features", young=(0.6, 0.9), ebv=(0.05, 0.25))
    _emission(galaxy, rng, "star-forming", 60.0, 0.15)
    hbeta = galaxy.lines["H_beta"]
    galaxy.bumps = {
        4650.0: hbeta * float(rng.uniform(0.1, 0.3)),
        4686.0: hbeta * float(rng.uniform(0.1, 0.3)),
        5808.0: hbeta * float(rng.uniform(0.05, 0.15)),
    }
    return galaxy


def superposed_star(rng: np.random.Generator) -> MockGalaxy:
    """A foreground M dwarf in the fibre of a passive galaxy (Baron & Poznanski 2017's galaxy-star blends):
    TiO bands and Na D at z = 0."""
    galaxy = _passive_host(rng, "superposed star")
    galaxy.star_light = float(rng.uniform(0.5, 1.5))
    return galaxy


def high_dispersion(rng: np.random.Generator) -> MockGalaxy:
    """One of the most massive galaxies: stellar velocity dispersion 380-480 km/s (Bernardi et al. 2008),
    old and passive."""
    return _passive_host(rng, "high velocity dispersion", vdisp=(380, 480))


def strong_nii(rng: np.random.Generator) -> MockGalaxy:
    """A retired galaxy's weak H-alpha with extreme [N II]: log [N II]/H-alpha 0.3-0.6 at H-alpha EW 1-3
    Angstrom, gas lit by old stars and shocks in a massive passive galaxy (Cid Fernandes et al. 2011;
    Yan & Blanton 2012)."""
    galaxy = _passive_host(rng, "weak H-alpha, strong [N II]", vdisp=(180, 300))
    galaxy.ratios = {"n2": rng.uniform(0.3, 0.6), "o3": rng.normal(0.0, 0.15), "s2": 0.0, "o1": -0.5}
    _lines_from_ew(galaxy, rng, 1.8, 0.1)
    return galaxy


def dusty_starburst(rng: np.random.Generator) -> MockGalaxy:
    """An e(a) galaxy: strong Balmer absorption of A stars beside the emission lines of dust-hidden star
    formation (Poggianti & Wu 2000)."""
    galaxy = _star_forming_host(rng, "e(a) dusty starburst", young=(0.4, 0.7), ebv=(0.3, 0.5), balmer=1.4)
    _emission(galaxy, rng, "star-forming", 12.0, 0.15)
    return galaxy


OUTLIERS: dict[str, Callable[[np.random.Generator], MockGalaxy]] = {
    "extreme Na D": extreme_na_d,
    "heavily reddened": heavily_reddened,
    "double-peaked lines": double_peaked,
    "broad-line AGN": broad_line_agn,
    "extreme [O III] emitter": extreme_oiii,
    "Wolf-Rayet features": wolf_rayet,
    "superposed star": superposed_star,
    "high velocity dispersion": high_dispersion,
    "weak H-alpha, strong [N II]": strong_nii,
    "e(a) dusty starburst": dusty_starburst,
}
OUTLIER_KINDS = list(OUTLIERS)


# ---- what SDSS records ---------------------------------------------------------------------------------


def render(galaxy: MockGalaxy, rng: np.random.Generator, *, background: bool = True) -> dict[str, np.ndarray]:
    """The noiseless model and what SDSS records: flux, ivar, and_mask, sky (all (3841,), SDSS units), and
    ``host``, the model without a lens's background lines.

    ``background=False`` leaves a lens's background lines out and changes nothing else, noise included:
    the same galaxy as it would look if it were not a lens."""
    wave_rest = WAVE / (1 + galaxy.z)
    model = galaxy.amplitude * measure.stellar_template(galaxy.stars, galaxy.vdisp, galaxy.ebv, galaxy.z)
    model += physics.emission_spectrum(WAVE, galaxy.lines, galaxy.z, galaxy.sigma_gas, galaxy.line_offsets_kms)
    if galaxy.broad_lines:
        model += physics.emission_spectrum(WAVE, galaxy.broad_lines, galaxy.z, galaxy.broad_sigma)
    model += galaxy.power_law * galaxy.amplitude * (wave_rest / 5575.0) ** -1.5
    for centre, flux in galaxy.bumps.items():
        model += flux * physics.gaussian(WAVE, centre * (1 + galaxy.z), centre * 800 / C_KMS)
    if galaxy.star_light:
        model += galaxy.star_light * galaxy.amplitude * _m_star()
    host = model.copy()  # everything but a lens's background galaxy, which sets the noise level
    if galaxy.source_lines and background:
        model += physics.emission_spectrum(WAVE, source_lines(galaxy, host), galaxy.z_source, galaxy.sigma_source)
    observed = observe(model, galaxy.snr, rng, reference=host)
    observed["host"] = host
    return observed


def _m_star() -> np.ndarray:
    """An M dwarf at z = 0 (~3,600 K, TiO bands, Na D), ~1 near 5575 Angstrom: (3841,) dimensionless."""
    star = physics.planck_shape(WAVE, 3600.0)
    for lo, hi, depth in ((6150, 6300, 0.3), (7050, 7250, 0.45), (8430, 8900, 0.2)):
        star *= 1 - depth / (1 + np.exp(-(WAVE - lo) / 8)) / (1 + np.exp((WAVE - hi) / 30))
    return star * (1 - 0.5 * physics.gaussian(WAVE, 5895.6, 2.5) * 2.5 * np.sqrt(2 * np.pi))


def source_lines(galaxy: MockGalaxy, host: np.ndarray) -> dict[str, float]:
    """A lens's background lines in 1e-17 erg s^-1 cm^-2, scaled so that the strongest one on the model's
    grid (PAPER: 3850-9000 Angstrom) has S/N ``source_snr`` over the noise ``observe`` gives the host's
    light ``host`` there."""
    _, sigma = noise(host, galaxy.snr)
    best, error = 0.0, 0.0
    for name, strength in galaxy.source_lines.items():
        centre = physics.LINE_WAVES[name] * (1 + galaxy.z_source)
        if not PAPER.wave_min + 10 < centre < PAPER.wave_max - 10 or strength <= best:
            continue
        pixel = int(np.searchsorted(WAVE, centre))
        width = centre * np.hypot(galaxy.sigma_source, physics.INSTRUMENT_SIGMA_KMS) / C_KMS
        best, error = strength, sigma[pixel] * np.sqrt(2 * np.sqrt(np.pi) * width * centre * np.log(10) * 1e-4)
    scale = galaxy.source_snr * error / best if best else 0.0
    return {name: strength * scale for name, strength in galaxy.source_lines.items()}


def record(galaxy: MockGalaxy, rng: np.random.Generator, *, background: bool = True) -> tuple[dict, dict, dict]:
    """What SDSS and the catalogs record of ``galaxy``: the observed arrays (``render``), the SPZLINE lines
    {name: (flux, error, sigma km/s)} and the catalog fields, every one measured from the pixels."""
    observed = render(galaxy, rng, background=background)
    flux, ivar = observed["flux"].astype(np.float64), observed["ivar"].astype(np.float64)
    vdisp, vdisp_err = measure.velocity_dispersion(flux, ivar, stars=galaxy.stars, ebv=galaxy.ebv, z=galaxy.z)
    fits = {
        fit.name: measure.catalog_lines(
            flux, ivar, stars=galaxy.stars, vdisp=vdisp, ebv=galaxy.ebv, z=galaxy.z, fit=fit, rng=rng
        )
        for fit in (measure.SPZLINE, measure.MPA_JHU, measure.PORTSMOUTH)
    }
    mpa, port = ({name: line[:2] for name, line in fits[key].items()} for key in ("mpa-jhu", "portsmouth"))
    spzline = {name: line[:2] for name, line in fits["spzline"].items()}
    sn = float(np.median(observed["flux"] * np.sqrt(observed["ivar"])))
    detection = {}
    if galaxy.z_source is not None:
        detection = measure.background_line_snr(flux, ivar, observed["host"], galaxy.z_source)
    ew = {index: index_ew(WAVE, flux, ivar, galaxy.z, index) for index in INDEX_WINDOWS}
    catalog = dict(
        Z=galaxy.z,
        Z_ERR=2e-5 * (1 + galaxy.z),
        VDISP=vdisp,
        VDISP_ERR=vdisp_err,
        SN_MEDIAN_ALL=sn,
        SUBCLASS=_subclass(spzline),
        BPTCLASS=rules.galspec_bptclass(mpa),
        PORT_BPT=rules.port_bpt(port),
        LGM=float(rng.normal(10.6, 0.4)),
        lens_catalogued=bool(detection) and rules.lens_detected(detection),
        grading="confident" if rng.random() < 0.6 else "probable",
        vdisp_true=galaxy.vdisp,
        source_snr=galaxy.source_snr if galaxy.z_source is not None else None,
        lens_detection_snr=float(np.sqrt(sum(max(s, 0) ** 2 for s in detection.values()))) if detection else None,
        hdelta_ew=ew["H_delta"],
        halpha_index_ew=ew["H_alpha"],
        oii_index_ew=ew["[O_II] 3727"],
        eplusa_catalogued=rules.goto_eplusa(
            hdelta_ew=ew["H_delta"], halpha_ew=ew["H_alpha"], oii_ew=ew["[O_II] 3727"], snr=sn
        ),
    )
    return observed, fits["spzline"], catalog


def _subclass(lines: dict[str, tuple[float, float]]) -> str:
    """SDSS's galaxy SUBCLASS from its own lines (Bolton et al. 2012): STARFORMING or AGN by the [N II]
    BPT diagram where the four lines have S/N >= 3 (composites get neither), else empty."""
    if not all(error > 0 and flux / error >= 3 for flux, error in (lines[k] for k in rules.BPT_LINES)):
        return ""
    return {"star-forming": "STARFORMING", "agn": "AGN"}.get(physics.bpt_region(*rules.ratios(lines)), "")
