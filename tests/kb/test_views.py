import json
import re
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from kb.models import Spectrum
from kb.services.ingest import ingest_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(data_dir, tmp_path, real_spectra):
    folder = tmp_path / "sdss"
    folder.mkdir()
    for path in real_spectra[:3]:
        (folder / path.name).symlink_to(path)
    ingest_folder(folder=folder)
    return Spectrum.objects.order_by("plate", "mjd", "fiberid")


def test_spectra_page_lists_the_ingested_spectra(client, ingested):
    page = client.get("/spectra/").content.decode()
    for spectrum in ingested:
        assert spectrum.plate_mjd_fiber in page and f"/spectra/{spectrum.pk}/" in page


def test_spectrum_page_plots_the_stored_flux_with_gaps_for_invalid_pixels(client, ingested):
    spectrum = ingested.first()
    response = client.get(f"/spectra/{spectrum.pk}/")
    page = response.content.decode()
    assert response.status_code == 200 and spectrum.specobjid in page
    assert "vendor/plotly/plotly-basic.min.js" in page  # served from our own static files, no CDN
    data = json.loads(
        re.search(r'<script id="spectrum-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    (plotted,) = data["spectra"]
    assert len(data["wave"]) == len(plotted["flux"]) == 3688 and plotted["z"] == spectrum.z
    gaps = sum(value is None for value in plotted["flux"])
    assert gaps == round((1 - spectrum.valid_fraction) * 3688)
    assert data["lines"]["H-alpha"] == pytest.approx(6564.61)  # rest frame: the page shifts by z


def test_an_unknown_spectrum_is_a_404(client, ingested):
    assert client.get("/spectra/999999/").status_code == 404


def test_the_plotly_bundle_served_is_the_version_the_plotly_package_pins():
    from django.contrib.staticfiles import finders
    from plotly.offline import get_plotlyjs_version

    bundle = Path(finders.find("vendor/plotly/plotly-basic.min.js"))
    assert f"(basic - minified) v{get_plotlyjs_version()}" in bundle.read_text()[:200]  # update both together
    assert "cdn.plot.ly" not in bundle.read_text() and "cloud.plotly.com" not in bundle.read_text()  # PATCHED.md


def test_a_real_spectrum_links_out_to_sdss_and_downloads_as_csv_and_fits(client, ingested):
    spectrum = ingested.first()
    page = client.get(f"/spectra/{spectrum.pk}/").content.decode()
    assert f"skyserver.sdss.org/dr16/en/tools/explore/summary.aspx?sid={spectrum.specobjid}" in page
    sas = f"/spectro/redux/{spectrum.run2d}/spectra/lite/{spectrum.plate:04d}/spec-{spectrum.plate_mjd_fiber}.fits"
    assert sas in page and "observed (an SDSS spectrum file)" in page
    assert f"/api/v1/spectra/{spectrum.pk}/flux/" in page

    table = Table.read(client.get(f"/spectra/{spectrum.pk}/spectrum.csv").content.decode(), format="ascii.ecsv")
    assert table.colnames == ["wave_obs", "flux", "ivar", "valid"] and len(table) == 3688
    assert table["wave_obs"].unit == u.AA and table.meta["specobjid"] == spectrum.specobjid
    assert not table.meta["mock"] and table["wave_obs"][0] == pytest.approx(3850, abs=0.01)
    flux = client.get(f"/api/v1/spectra/{spectrum.pk}/flux/").json()["flux"]
    valid = np.asarray(table["valid"])
    assert valid.sum() == sum(f is not None for f in flux)
    assert np.asarray(table["flux"])[valid] == pytest.approx([f for f in flux if f is not None], rel=1e-5)
    fits_file = client.get(f"/spectra/{spectrum.pk}/spectrum.fits")
    assert b"".join(fits_file.streaming_content) == Path(spectrum.source_file).read_bytes()


def test_a_mock_spectrum_links_nowhere_at_sdss(client, searchable):
    spectrum = searchable["lens"].entries.first().spectrum
    page = client.get(f"/spectra/{spectrum.pk}/").content.decode()
    assert spectrum.mock and "skyserver" not in page and "data.sdss.org" not in page
    assert f"/spectra/{spectrum.pk}/spectrum.csv" in page


def test_the_spectra_page_and_api_filter_by_identifier_redshift_and_position(client, ingested):
    first, second, third = ingested

    def listed(**params):
        page = client.get("/spectra/", params)
        return {s.pk for s in page.context["spectra"]} if page.status_code == 200 else page.status_code

    assert listed() == {first.pk, second.pk, third.pk}
    assert listed(identifier=first.plate_mjd_fiber) == {first.pk} == listed(identifier=first.specobjid)
    low = min(ingested, key=lambda s: s.z)
    assert listed(z_max=low.z + 1e-6) == {s.pk for s in ingested if s.z <= low.z + 1e-6}
    assert listed(ra=second.ra + 1 / 3600, dec=second.dec, radius_arcsec=2) == {second.pk}  # 1" off
    assert listed(ra=second.ra + 5 / 3600, dec=second.dec, radius_arcsec=2) == set()
    api = client.get("/api/v1/spectra/", {"ra": second.ra, "dec": second.dec, "radius_arcsec": 2}).json()
    assert [s["id"] for s in api["results"]] == [second.pk]
    assert listed(identifier="1-2-²") == set()  # not a PLATE-MJD-FIBER, nor anyone's specobjid: nothing
    refused = client.get("/spectra/", {"dec": 95, "ra": 10})
    assert "Ensure this value is less than or equal to 90" in refused.content.decode()
