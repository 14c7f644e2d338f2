"""Finding an ingested spectrum by identifier or position."""

import pytest

from kb.selectors import spectrum_lookup, spectrum_near
from tests.factories import SpectrumFactory

pytestmark = pytest.mark.django_db

ARCSEC = 1 / 3600


def test_the_nearest_spectrum_within_the_radius():
    near = SpectrumFactory(ra=150.0 + 2 * ARCSEC, dec=2.0)
    SpectrumFactory(ra=150.0 + 2.5 * ARCSEC, dec=2.0)
    SpectrumFactory(ra=150.0, dec=2.0 + 10 * ARCSEC)
    assert spectrum_near(ra=150.0, dec=2.0, radius_arcsec=3) == near
    with pytest.raises(ValueError, match="no ingested spectrum within 1 arcsec of RA 150.000000, Dec 2.000000"):
        spectrum_near(ra=150.0, dec=2.0, radius_arcsec=1)


def test_positions_across_ra_zero_and_near_the_pole():
    wrapped = SpectrumFactory(ra=359.9999, dec=-1.0)
    assert spectrum_near(ra=0.0002, dec=-1.0, radius_arcsec=2) == wrapped  # 1.08 arcsec apart, through RA 0
    polar = SpectrumFactory(ra=10.0, dec=89.9999)
    assert spectrum_near(ra=190.0, dec=89.9999, radius_arcsec=1) == polar  # 0.72 arcsec apart, across the pole


def test_lookup_takes_one_way_of_naming_a_spectrum():
    spectrum = SpectrumFactory()
    assert spectrum_lookup(identifier=spectrum.specobjid) == spectrum
    assert spectrum_lookup(identifier=spectrum.plate_mjd_fiber) == spectrum
    assert spectrum_lookup(ra=spectrum.ra, dec=spectrum.dec) == spectrum
    with pytest.raises(ValueError, match="not both"):
        spectrum_lookup(identifier=spectrum.specobjid, ra=1.0, dec=1.0)
    with pytest.raises(ValueError, match="RA must be in"):
        spectrum_lookup(ra=-5.0, dec=0.0)
