"""An upload over the size limit is refused from its Content-Length, before any of its body is read."""

import http.client
import io
import json
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest
from astropy.io import fits
from django.test import Client
from django.test.client import encode_multipart

from galspec_site.middleware import UPLOAD_OVERHEAD_BYTES, max_request_bytes
from tests.conftest import api_client

BOUNDARY = "galspec-upload-limit-test"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
GIGABYTE = 2**30


def _tiny_upload() -> bytes:
    upload = io.BytesIO(b"SIMPLE  =                    T")
    upload.name = "huge.fits"
    return encode_multipart(BOUNDARY, {"task": "lens", "file": upload})


@pytest.fixture(autouse=True)
def default_limit(settings):
    """The shipped limit, whatever this machine's .env says."""
    settings.GALSPEC_MAX_UPLOAD_BYTES = 20 * 2**20


@pytest.fixture
def upload_temp_dir(settings, tmp_path):
    """Where Django spools an upload over FILE_UPLOAD_MAX_MEMORY_SIZE, for this test alone."""
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "django-uploads")
    (tmp_path / "django-uploads").mkdir()
    return tmp_path / "django-uploads"


def test_an_api_upload_announcing_a_gigabyte_gets_413_in_the_error_format_unread(upload_temp_dir):
    response = api_client().post(
        "/api/v1/search/", _tiny_upload(), content_type=MULTIPART, CONTENT_LENGTH=str(GIGABYTE)
    )
    assert response.status_code == 413, response.content
    assert response.json() == {
        "error": {
            "status": 413,
            "code": "request_too_large",
            "message": "This request is 1,024.0 MB, over the limit of 21.0 MB (one spectrum file of at most 20.0 MB "
            "and the rest of the form); none of it was read. Send a smaller file, or split a batch's files "
            "over several jobs.",
        }
    }
    assert not response.wsgi_request.environ["wsgi.input"].read_started  # not one byte of the body was read
    assert not any(upload_temp_dir.iterdir())


def test_a_page_post_announcing_a_gigabyte_gets_a_plain_413_unread(upload_temp_dir):
    response = Client().post("/", _tiny_upload(), content_type=MULTIPART, CONTENT_LENGTH=str(GIGABYTE))
    assert response.status_code == 413
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert "over the limit of 21.0 MB" in text and "Send a smaller file" in text
    assert not response.wsgi_request.environ["wsgi.input"].read_started
    assert not any(upload_temp_dir.iterdir())


def _exchange(live_server, request: bytes) -> http.client.HTTPResponse:
    """Send ``request`` on a raw socket, keep the socket open (so the server cannot see the end of a body
    it might be waiting for) and read the answer. The timeout only stops a server that waits from
    hanging the suite; an answer at all proves it did not wait for the body."""
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.body = response.read()
    return response


@pytest.mark.parametrize(
    "path, content_type", [("/api/v1/search/", "application/json"), ("/", "text/plain; charset=utf-8")]
)
def test_a_live_server_answers_413_without_waiting_for_the_body(live_server, path, content_type):
    # A well-formed CSRF cookie, as a browser has: without one, CSRF checking refuses a page POST unread.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {MULTIPART}\r\n"
        f"Cookie: csrftoken={'a' * 32}\r\nContent-Length: {GIGABYTE}\r\n\r\n"
    ).encode()
    response = _exchange(live_server, head + _tiny_upload())  # a gigabyte announced, 250 bytes sent
    assert response.status == 413, response.body
    assert response.getheader("Content-Type") == content_type
    assert b"over the limit of 21.0 MB" in response.body
    if content_type == "application/json":
        assert json.loads(response.body)["error"]["code"] == "request_too_large"


def test_a_chunked_body_is_refused_with_411_and_a_reason(live_server):
    body = _tiny_upload()
    head = (
        f"POST /api/v1/search/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: {MULTIPART}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    response = _exchange(live_server, head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    assert response.status == 411, response.body
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(response.body)["error"]
    assert error["status"] == 411 and error["code"] == "length_required" and "Content-Length" in error["message"]


def _padded_spectrum(path, size: int) -> bytes:
    """A real spec-lite file with a zero image HDU appended, ``size`` bytes or up to one FITS block
    (2880 bytes) under."""
    with fits.open(path) as hdus:
        hdus = fits.HDUList([hdu.copy() for hdu in hdus])
    original = io.BytesIO()
    hdus.writeto(original)
    blocks = size // 2880 - len(original.getvalue()) // 2880 - 1  # one block for the new HDU's header
    hdus.append(fits.ImageHDU(np.zeros(blocks * 2880, dtype=np.uint8), name="PADDING"))
    out = io.BytesIO()
    hdus.writeto(out)
    data = out.getvalue()
    assert size - 2880 < len(data) <= size
    return data


@pytest.mark.django_db
def test_a_file_just_under_the_limit_searches_and_one_byte_more_of_form_is_refused(
    searchable, real_spectra, data_dir, upload_temp_dir, settings
):
    assert max_request_bytes() == settings.GALSPEC_MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES == 21 * 2**20
    spectrum = io.BytesIO(_padded_spectrum(real_spectra[0], settings.GALSPEC_MAX_UPLOAD_BYTES))
    spectrum.name = real_spectra[0].name

    def body(padding: int) -> bytes:
        spectrum.seek(0)
        return encode_multipart(BOUNDARY, {"task": "bpt3", "notes": "x" * padding, "file": spectrum})

    padding = max_request_bytes() - len(body(0))  # the form filled to exactly the largest request accepted
    assert padding > 0
    at_limit = api_client().post("/api/v1/search/", body(padding), content_type=MULTIPART)
    assert at_limit.status_code == 200, at_limit.content
    answer = at_limit.json()
    assert answer["query"] == real_spectra[0].name and len(answer["neighbours"]) == 3
    assert all(np.isfinite(n["distance"]) for n in answer["neighbours"])

    over = api_client().post("/api/v1/search/", body(padding + 1), content_type=MULTIPART)
    assert over.status_code == 413 and over.json()["error"]["code"] == "request_too_large"
    assert not over.wsgi_request.environ["wsgi.input"].read_started
    assert not any(upload_temp_dir.iterdir()) and not any((data_dir / "uploads").iterdir())
