"""factory_boy factories for rows tests need without ingesting files."""

import factory

from kb.models import Spectrum


class SpectrumFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Spectrum

    specobjid = factory.Sequence(lambda n: str(299489677444933632 + n))
    plate = 266
    mjd = 51630
    fiberid = factory.Sequence(lambda n: n + 1)
    ra = 180.0
    dec = 0.0
    z = 0.1
    norm = 10.0
    valid_fraction = 1.0
    store_row = factory.Sequence(lambda n: n)
    source_file = "spec.fits"
    source_sha256 = "0" * 64
