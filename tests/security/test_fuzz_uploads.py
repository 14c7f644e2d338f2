"""A thousand bad uploads: every one gets an answer a person can act on (4xx with a message, or a
search answer when the file is still a usable spectrum), never a 5xx, and nothing is written."""

import io
import random

import numpy as np
import pytest
from astropy.io import fits
from django.test import override_settings

from inference.models import SearchJob
from kb.models import AuditEvent, Flag, Spectrum
from tests.conftest import api_client

pytestmark = pytest.mark.django_db

HOSTILE_NAMES = [
    "../../../etc/passwd",
    "..",
    "a\\..\\..\\win.ini",
    "spec\x00.fits",
    "x" * 600 + ".fits",
    "CON",
    "<script>alert(1)</script>.fits",
    "spéc-ünïcode.fits",
    "  ",
    "/absolute/path.fits",
    "$(rm -rf ~).fits",
]


def _variant(path, kind: str, rng: random.Random) -> bytes:
    """One corrupted version of a real spec-lite file."""
    data = path.read_bytes()
    if kind in ("nan", "inf", "wrong_shape", "far_redshift", "no_coadd"):
        with fits.open(io.BytesIO(data)) as hdus:  # read into memory: changed freely, the file untouched
            coadd = hdus["COADD"].data
            if kind == "nan":
                coadd["flux"][:] = np.nan
            elif kind == "inf":
                picks = rng.sample(range(len(coadd)), k=rng.randint(1, len(coadd)))
                coadd["flux"][picks] = rng.choice([np.inf, -np.inf, np.nan])
            elif kind == "wrong_shape":
                hdus["COADD"] = fits.BinTableHDU(coadd[: rng.randint(0, 5)], name="COADD")
            elif kind == "far_redshift":
                hdus["SPECOBJ"].data["Z"][0] = rng.choice([5.0, -0.5, np.nan, 1e30])
            elif kind == "no_coadd":
                del hdus["COADD"]
            out = io.BytesIO()
            hdus.writeto(out)
            return out.getvalue()
    if kind == "random":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 5000)))
    if kind == "fits_prefix":
        return b"SIMPLE  =                    T" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6000)))
    if kind == "truncated":
        return data[: rng.randint(0, len(data) - 1)]
    if kind == "block_truncated":  # whole FITS blocks, but the data cut short
        return data[: 2880 * rng.randint(1, len(data) // 2880 - 1)]
    if kind == "flipped":  # a few bytes changed anywhere: may still be a usable spectrum
        mutable = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            mutable[rng.randrange(len(mutable))] = rng.getrandbits(8)
        return bytes(mutable)
    raise AssertionError(kind)


KINDS = [
    "random",
    "fits_prefix",
    "truncated",
    "block_truncated",
    "flipped",
    "nan",
    "inf",
    "wrong_shape",
    "far_redshift",
    "no_coadd",
]


def test_a_thousand_bad_uploads(searchable, real_spectra, data_dir):
    rng = random.Random(20261125)  # noqa: S311  seeded: the thousand uploads are the same every run
    spectra_before = Spectrum.objects.count()
    client = api_client()
    outcomes: dict[str, dict[int, int]] = {}
    for i in range(1000):
        kind = KINDS[i % len(KINDS)]
        body = _variant(real_spectra[i % len(real_spectra)], kind, rng)
        upload = io.BytesIO(body)
        upload.name = rng.choice(HOSTILE_NAMES) if i % 3 == 0 else f"upload-{i}.fits"
        limit = max(len(body) - 1, 0) if i % 50 == 49 else 20 * 1024 * 1024  # and some over the size limit
        with override_settings(GALSPEC_MAX_UPLOAD_BYTES=limit):
            response = client.post("/api/v1/search/", {"task": "bpt3", "file": upload}, format="multipart")
        outcomes.setdefault(kind, {}).setdefault(response.status_code, 0)
        outcomes[kind][response.status_code] += 1
        assert response.status_code < 500, (kind, response.content[:500])
        if response.status_code == 200:
            answer = response.json()
            assert all(np.isfinite(n["distance"]) for n in answer["neighbours"]), (kind, answer)
        else:
            assert response.status_code == 400 and response.json()["error"]["message"], (kind, response.content[:300])
    assert not any((data_dir / "uploads").iterdir())  # no upload left behind, whatever its name
    assert Spectrum.objects.count() == spectra_before
    assert (
        not SearchJob.objects.exists()
        and not Flag.objects.exists()
        and not AuditEvent.objects.exclude(action__in=["knowledge_base_promoted", "checkpoint_promoted"]).exists()
    )
    for kind in ("random", "fits_prefix", "truncated", "nan", "wrong_shape", "no_coadd"):
        assert set(outcomes[kind]) == {400}, (kind, outcomes[kind])
