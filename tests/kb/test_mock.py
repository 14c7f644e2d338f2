import csv

import numpy as np
import pytest
from astropy.io import fits
from scipy.stats import ks_2samp

from kb.bpt import bpt_region
from kb.identifiers import specobjid_decode, specobjid_encode
from kb.mock import generate_survey
from kb.mock.physics import LINE_WAVES
from kb.mock.populations import OUTLIER_KINDS, draw_galaxy
from kb.mock.survey import galaxy_again, render_again
from kb.spectra import read_spectrum


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("mock")
    summary = generate_survey(out=out, size=120, seed=3, lens_fraction=0.1, outlier_fraction=0.15, massive_per_lens=1)
    truth = {int(r["specobjid"]): r for r in csv.DictReader(open(out / "mock_truth.csv"))}
    return out, summary, truth


def test_files_have_the_layout_of_real_sdss_files(survey, real_spectra):
    out, _, _ = survey
    mock_path = next((out / "spectra").rglob("spec-*.fits"))
    with fits.open(real_spectra[0]) as real, fits.open(mock_path) as mock:
        assert [h.name for h in mock] == [h.name for h in real]
        assert mock["COADD"].columns.names == real["COADD"].columns.names
        assert mock["COADD"].columns.formats == real["COADD"].columns.formats
        assert list(mock["SPZLINE"].data["LINENAME"]) == list(real["SPZLINE"].data["LINENAME"])
        assert set(mock["SPECOBJ"].columns.names) <= set(real["SPECOBJ"].columns.names)


def test_specobjids_encode_plate_mjd_fiber_and_match_file_names(survey):
    out, _, _ = survey
    for path in list((out / "spectra").rglob("spec-*.fits"))[:20]:
        spectrum = read_spectrum(path)
        assert specobjid_decode(spectrum.specobjid)[:3] == (spectrum.plate, spectrum.mjd, spectrum.fiberid)
        assert path.name == f"spec-{spectrum.plate_mjd_fiber}.fits"


def test_same_seed_same_bytes_other_seed_other_spectra(tmp_path):
    a, b, c = (generate_survey(out=tmp_path / n, size=4, seed=s) for n, s in (("a", 5), ("b", 5), ("c", 6)))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.fits"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    first = lambda n: read_spectrum(next((tmp_path / n / "spectra").rglob("*.fits"))).flux  # noqa: E731
    assert not np.array_equal(first("a"), first("c"))


def test_parallel_generation_gives_the_same_survey(tmp_path):
    generate_survey(out=tmp_path / "one", size=6, seed=9, workers=1)
    generate_survey(out=tmp_path / "two", size=6, seed=9, workers=2)
    for path in (tmp_path / "one").rglob("*.fits"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


def test_measured_line_ratios_put_galaxies_in_their_bpt_class(survey):
    out, _, truth = survey
    hits, total = 0, 0
    for path in (out / "spectra").rglob("spec-*.fits"):
        spectrum = read_spectrum(path)
        population = truth[spectrum.specobjid]["population"]
        lines = spectrum.lines
        names = ("H_alpha", "H_beta", "[O_III] 5007", "[N_II] 6583")
        if population not in ("star-forming", "composite") or min(lines[n].snr for n in names) < 8:
            continue
        n2 = np.log10(lines["[N_II] 6583"].flux / lines["H_alpha"].flux)
        o3 = np.log10(lines["[O_III] 5007"].flux / lines["H_beta"].flux)
        hits += bpt_region(n2, o3) == population
        total += 1
    assert total >= 20 and hits / total > 0.8


def _file(out, row):
    name = f"spec-{int(row['plate']):04d}-{int(row['mjd']):05d}-{int(row['fiberid']):04d}.fits"
    return next((out / "spectra").rglob(name))


def test_lenses_show_background_lines_at_the_source_redshift(survey, tmp_path):
    out, _, truth = survey
    lenses = [r for r in truth.values() if r["population"] == "lens"]
    assert lenses
    for row in lenses:
        plain = render_again(out, int(row["specobjid"]), tmp_path / row["specobjid"], background=False)
        with fits.open(_file(out, row)) as lensed, fits.open(plain) as without:
            wave = 10 ** lensed["COADD"].data["loglam"]
            lines = lensed["COADD"].data["model"] - without["COADD"].data["model"]  # the background galaxy alone
        names = galaxy_again(out, int(row["specobjid"])).source_lines
        source = np.array([LINE_WAVES[n] for n in names]) * (1 + float(row["z_source"]))
        assert lines.max() > 0 and np.min(np.abs(source - wave[np.argmax(lines)])) < 3
        assert float(row["z_source"]) > float(row["z"])


def test_the_truth_drawn_again_is_the_galaxy_written(survey):
    """``galaxy_again`` gives what mock_truth.csv says and what it leaves out: a lens's background-line S/N."""
    out, _, truth = survey
    lenses = [row for row in truth.values() if row["population"] == "lens"]
    assert lenses
    for row in [*list(truth.values())[:20], *lenses]:
        galaxy = galaxy_again(out, int(row["specobjid"]))
        assert (galaxy.kind, round(galaxy.z, 5), round(galaxy.vdisp, 1)) == (
            row["kind"],
            float(row["z"]),
            float(row["vdisp_true"]),
        )
        if row["population"] == "lens":  # the same stream drew the background galaxy
            assert round(galaxy.z_source, 5) == float(row["z_source"])
            assert round(galaxy.source_snr, 2) == float(row["source_snr"])
    with pytest.raises(ValueError, match="not a spectrum of the mock survey"):
        galaxy_again(out, specobjid_encode(9999, 55555, 1))


def test_lens_hosts_and_the_massive_galaxies_matched_to_them_share_their_distributions(tmp_path):
    generate_survey(out=tmp_path, size=400, seed=6, lens_fraction=0.1, outlier_fraction=0.0)
    truth = list(csv.DictReader(open(tmp_path / "mock_truth.csv")))
    hosts = {kind: [r for r in truth if r["kind"] == kind] for kind in ("lens", "massive")}
    assert len(hosts["massive"]) > 2 * len(hosts["lens"]) > 40  # three per lens by default
    for name in ("z", "vdisp", "snr"):
        lens, massive = (np.array([float(r[name]) for r in hosts[kind]]) for kind in ("lens", "massive"))
        assert ks_2samp(lens, massive).pvalue > 0.01, name
    assert max(float(r["z"]) for r in hosts["lens"]) > 0.55  # BOSS redshifts, beyond the main sample's


def test_lens_hosts_have_the_weak_lines_of_the_massive_galaxies_matched_to_them():
    rng = np.random.default_rng(2)
    drawn = [draw_galaxy(rng, lens_fraction=0.2, outlier_fraction=0.0) for _ in range(2000)]
    ew = {kind: [g.lines["H_alpha"] / g.amplitude for g in drawn if g.kind == kind] for kind in ("lens", "massive")}
    assert min(map(len, ew.values())) > 300  # every host and every matched galaxy has them
    assert ks_2samp(ew["lens"], ew["massive"]).pvalue > 0.01


def test_a_lens_rendered_again_without_its_background_differs_only_there(survey, tmp_path):
    out, _, truth = survey
    lenses = [r for r in truth.values() if r["population"] == "lens"]
    same = render_again(out, int(lenses[0]["specobjid"]), tmp_path / "same")
    assert same.read_bytes() == _file(out, lenses[0]).read_bytes()
    for row in lenses:
        delensed = render_again(out, int(row["specobjid"]), tmp_path / row["specobjid"], background=False)
        with fits.open(_file(out, row)) as lensed, fits.open(delensed) as plain:
            wave = 10 ** lensed["COADD"].data["loglam"]
            differs = {n: lensed["COADD"].data[n] != plain["COADD"].data[n] for n in ("model", "flux", "ivar")}
        names = galaxy_again(out, int(row["specobjid"])).source_lines
        source = [LINE_WAVES[n] * (1 + float(row["z_source"])) for n in names]
        near = np.min(np.abs(wave[:, None] - np.array(source)[None]), axis=1) < 30
        assert differs["model"].any()  # the lines are gone, and nothing else changed, noise included
        assert not any(d[~near].any() for d in differs.values()), row["specobjid"]
    with pytest.raises(ValueError, match="not a spectrum of the mock survey"):
        render_again(out, specobjid_encode(9999, 55555, 1), tmp_path / "x")


def test_outliers_come_in_at_least_ten_kinds(tmp_path):
    summary = generate_survey(out=tmp_path, size=80, seed=1, lens_fraction=0.0, outlier_fraction=1.0)
    assert len(summary["outlier_kinds"]) >= 10 and set(summary["outlier_kinds"]) <= set(OUTLIER_KINDS)


def test_noise_matches_the_inverse_variance(survey):
    out, _, _ = survey
    chi = []
    for path in list((out / "spectra").rglob("spec-*.fits"))[:30]:
        with fits.open(path) as hdus:
            data = hdus["COADD"].data
            good = (data["ivar"] > 0) & (data["sky"] < 6)  # away from bright sky lines
            chi.append((data["flux"] - data["model"])[good] * np.sqrt(data["ivar"][good]))
    chi = np.concatenate(chi)
    assert np.std(chi) == pytest.approx(1.0, abs=0.05) and abs(np.mean(chi)) < 0.05


def test_catalogs_cover_every_spectrum_and_the_rare_ones(survey):
    out, summary, truth = survey
    with fits.open(out / "catalogs" / "galSpecInfo-dr8.fits") as info:
        assert {int(s) for s in info[1].data["SPECOBJID"]} == set(truth)
    lens_rows = list(csv.DictReader(open(out / "catalogs" / "lenscat-catalog.csv")))
    assert len(lens_rows) == summary["lenses_catalogued"] == sum(r["lens_catalogued"] == "1" for r in truth.values())
    assert all("arXiv:2007.09006" in r["ref"] for r in lens_rows)
    outliers = list(csv.DictReader(open(out / "catalogs" / "baron_poznanski_2017.csv")))
    assert {int(r["specobjid"]) for r in outliers} == {k for k, r in truth.items() if r["population"] == "outlier"}
    # the two emission-line catalogs agree mostly, not always
    agree = sum(
        1
        for r in truth.values()
        if (r["BPTCLASS"], r["PORT_BPT"])
        in {
            ("1", "Star Forming"),
            ("2", "Star Forming"),
            ("3", "Composite"),
            ("4", "Seyfert"),
            ("4", "LINER"),
            ("5", "LINER"),
            ("-1", "BLANK"),
        }
    )
    assert 0.5 < agree / len(truth) < 0.99
