import json
import re

import pytest

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
    assert "vendor/plotly/plotly.min.js" in page  # served from our own static files, no CDN
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
