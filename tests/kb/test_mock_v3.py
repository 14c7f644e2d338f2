"""Mock version 3: catalogs measure the pixels, list what they could find, and v2 still regenerates."""

import csv
import hashlib
import json

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import call_command
from sklearn.metrics import f1_score

from kb.bpt import bpt_consensus
from kb.line_indices import INDEX_WINDOWS, index_ew
from kb.mock import generate_survey, measure, physics, populations, rules
from kb.mock.survey import render_again
from kb.spectra import read_spectrum


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("mock3")
    summary = generate_survey(
        out=out, size=360, seed=21, lens_fraction=0.12, outlier_fraction=0.08, massive_per_lens=1, workers=2
    )
    truth = {int(r["specobjid"]): r for r in csv.DictReader(open(out / "mock_truth.csv"))}
    spectra = {s.specobjid: s for s in map(read_spectrum, sorted((out / "spectra").rglob("spec-*.fits")))}
    return out, summary, truth, spectra


def _path(out, row):
    return next(
        (out / "spectra").rglob(f"spec-{int(row['plate']):04d}-{int(row['mjd']):05d}-{int(row['fiberid']):04d}.fits")
    )


def test_version_2_regenerates_byte_for_byte(tmp_path):
    """The fingerprint of a v2 survey written before v3 existed (commit 2dc4b21)."""
    generate_survey(
        out=tmp_path, size=40, seed=7, version=2, lens_fraction=0.2, outlier_fraction=0.3, massive_per_lens=1
    )
    digest = hashlib.sha256()
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        digest.update(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ./{path.relative_to(tmp_path)}\n".encode())
    assert digest.hexdigest() == "9e8b1d2327bb3a463dd05bb647a697d93cf543801190044327e48b31ce6b0652"


def test_an_unknown_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mock version 9 does not exist"):
        generate_survey(out=tmp_path, size=2, version=9)


def test_catalogs_measure_the_same_pixels_and_still_part_on_weak_lines(survey):
    """The catalogs' own rules on each spectrum's SPZLINE lines reproduce their consensus label mostly (the
    label ceiling), not always: they fit the same pixels with different continua and thresholds."""
    _, _, truth, spectra = survey
    labels, own = [], []
    for specobjid, row in truth.items():
        label = bpt_consensus(int(row["BPTCLASS"]), row["PORT_BPT"])
        if label is None:
            continue
        lines = {name: (line.flux, line.flux_err) for name, line in spectra[specobjid].lines.items()}
        labels.append(label)
        own.append(bpt_consensus(rules.galspec_bptclass(lines), rules.port_bpt(lines)) or "none")
    ceiling = f1_score(labels, own, labels=sorted(set(labels)), average="macro")
    assert 0.85 < ceiling < 1.0
    disagree = sum(
        bpt_consensus(int(r["BPTCLASS"]), "BLANK") is None and bpt_consensus(int(r["BPTCLASS"]), r["PORT_BPT"]) is None
        for r in truth.values()
    )
    assert 0 < disagree < len(truth) / 2


def test_the_lens_catalog_lists_only_lenses_whose_background_lines_pass_its_rule(survey, tmp_path):
    out, summary, truth, _ = survey
    lenses = [r for r in truth.values() if r["population"] == "lens"]
    listed = list(csv.DictReader(open(out / "catalogs" / "lenscat-catalog.csv")))
    assert 0 < summary["lenses_catalogued"] == len(listed) < len(lenses)  # some are too faint to be found
    for row in lenses:
        foreground = render_again(out, int(row["specobjid"]), tmp_path / row["specobjid"], background=False)
        with fits.open(_path(out, row)) as lensed, fits.open(foreground) as plain:
            data, host = lensed["COADD"].data, plain["COADD"].data["model"].astype(float)
            snr = measure.background_line_snr(
                data["flux"].astype(float), data["ivar"].astype(float), host, float(row["z_source"])
            )
        assert rules.lens_detected(snr) == (row["lens_catalogued"] == "1"), row["specobjid"]
    catalogued = [float(r["lens_detection_snr"]) for r in lenses if r["lens_catalogued"] == "1"]
    assert min(catalogued) >= rules.LENS_COMBINED_SNR


def test_velocity_dispersion_is_measured_from_broadened_lines(survey):
    _, _, truth, _ = survey
    rows = [r for r in truth.values() if float(r["snr"]) > 8]
    measured, true = (np.array([float(r[k]) for r in rows]) for k in ("vdisp", "vdisp_true"))
    assert not np.allclose(measured, true)  # measured, not copied
    assert np.median(np.abs(measured - true)) < 25
    broad = [r for r in truth.values() if r["kind"] == "high velocity dispersion"]
    assert broad and all(float(r["vdisp"]) > 300 for r in broad if float(r["snr"]) > 5)


def test_host_signal_to_noise_falls_with_redshift_as_in_boss(survey):
    _, _, truth, _ = survey
    hosts = [r for r in truth.values() if r["kind"] in ("lens", "massive")]
    near = np.median([float(r["snr"]) for r in hosts if float(r["z"]) < 0.25])
    far = np.median([float(r["snr"]) for r in hosts if float(r["z"]) > 0.5])
    assert far < 6 < 10 < near


def test_the_eplusa_catalog_holds_what_gotos_criteria_select_from_the_pixels():
    rng = np.random.default_rng(4)
    drawn = {"post-starburst": [], "star-forming": []}
    while min(map(len, drawn.values())) < 10:
        galaxy = populations.draw_galaxy(rng, lens_fraction=0.0, outlier_fraction=0.0)
        if galaxy.population in drawn and len(drawn[galaxy.population]) < 10:
            drawn[galaxy.population].append((galaxy, populations.record(galaxy, rng)))
    for recorded in drawn.values():
        for galaxy, (observed, _, catalog) in recorded:
            flux, ivar = observed["flux"].astype(float), observed["ivar"].astype(float)
            ew = {index: index_ew(physics.WAVE, flux, ivar, galaxy.z, index) for index in INDEX_WINDOWS}
            assert catalog["hdelta_ew"] == pytest.approx(ew["H_delta"])
            assert catalog["eplusa_catalogued"] == rules.goto_eplusa(
                hdelta_ew=ew["H_delta"], halpha_ew=ew["H_alpha"], oii_ew=ew["[O_II] 3727"], snr=catalog["SN_MEDIAN_ALL"]
            )
    assert sum(c["eplusa_catalogued"] for _, (_, _, c) in drawn["post-starburst"]) >= 5
    assert not any(c["eplusa_catalogued"] for _, (_, _, c) in drawn["star-forming"])


def test_the_eplusa_catalog_file_has_gotos_columns(survey):
    out, summary, _, _ = survey
    with open(out / "catalogs" / "goto2007_eplusa.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["plate", "mjd", "fiberid", "ra", "dec", "z", "ew_hdelta", "ew_halpha", "ew_oii"]
    assert len(rows) - 1 == summary["eplusa_catalogued"]


def test_the_command_writes_the_version_asked_for(tmp_path):
    call_command("mock_survey", out=str(tmp_path / "old"), size=2, seed=1, mock_version=2, workers=1, verbosity=0)
    call_command("mock_survey", out=str(tmp_path / "new"), size=2, seed=1, workers=1, verbosity=0)
    versions = [json.loads((tmp_path / name / "mock_survey.json").read_text())["version"] for name in ("old", "new")]
    assert versions == [2, 3]
    assert not (tmp_path / "old" / "catalogs" / "goto2007_eplusa.csv").exists()
