"""fetch_sdss against a real local HTTP server laid out like the SDSS Science Archive Server."""
import http.server
import io
import threading
from functools import partial

import pytest
from django.core.management import CommandError, call_command

from kb.sdss_archive import Archive, fetch_spectra, parse_identifier, read_list


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files with Range support; can fail the first requests or send HTML instead of FITS."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if server.failures > 0:
            server.failures -= 1
            self.send_error(503, "busy")
            return
        if server.html:
            body = b"<html>maintenance</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def archive_server(tmp_path, real_spectra):
    root = tmp_path / "sas"
    for path in real_spectra:
        plate = path.name.split("-")[1]
        folder = root / "dr16" / "sdss" / "spectro" / "redux" / "26" / "spectra" / "lite" / plate
        folder.mkdir(parents=True, exist_ok=True)
        (folder / path.name).symlink_to(path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    server.requests, server.failures, server.html = [], 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/dr16"
    yield server
    server.shutdown()


def test_identifiers_and_list_files(tmp_path):
    assert parse_identifier("266-51630-168") == parse_identifier("0266-51630-0168") == (266, 51630, 168)
    with pytest.raises(ValueError, match="not PLATE-MJD-FIBER"):
        parse_identifier("spec-0266")
    listing = tmp_path / "ids.csv"
    listing.write_text("plate,mjd,fiberid\n266,51630,168\n# a comment\n\n267,51608,413\n")
    assert read_list(listing) == [(266, 51630, 168), (267, 51608, 413)]


def test_download_by_identifier_gives_the_archive_bytes(archive_server, tmp_path, real_spectra):
    summary = fetch_spectra([(266, 51630, 168)], tmp_path / "out", Archive(archive_server.base_url))
    assert summary.downloaded == ["spec-0266-51630-0168.fits"]
    got = tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits"
    assert got.read_bytes() == real_spectra[0].read_bytes()


def test_command_with_a_list_then_again_skips_everything(archive_server, tmp_path, real_spectra):
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join(p.name[5:-5] for p in real_spectra))
    out = io.StringIO()
    call_command("fetch_sdss", list=str(listing), out=str(tmp_path / "out"), base_url=archive_server.base_url, stdout=out, verbosity=0)
    assert "10 downloaded, 0 already here, 0 failed" in out.getvalue()
    archive_server.requests.clear()
    call_command("fetch_sdss", list=str(listing), out=str(tmp_path / "out"), base_url=archive_server.base_url, stdout=out, verbosity=0)
    assert "0 downloaded, 10 already here" in out.getvalue() and archive_server.requests == []


def test_a_partial_download_is_continued_with_a_range_request(archive_server, tmp_path, real_spectra):
    data = real_spectra[0].read_bytes()
    part = tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100_000])
    fetch_spectra([(266, 51630, 168)], tmp_path / "out", Archive(archive_server.base_url))
    assert archive_server.requests[-1][1] == "bytes=100000-"
    assert (tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits").read_bytes() == data
    assert not part.exists()


def test_server_errors_are_retried(archive_server, tmp_path):
    archive_server.failures = 2
    summary = fetch_spectra([(266, 51630, 215)], tmp_path, Archive(archive_server.base_url, backoff=0.01))
    assert summary.downloaded == ["spec-0266-51630-0215.fits"] and len(archive_server.requests) == 3


def test_a_missing_spectrum_is_reported_and_the_others_fetched(archive_server, tmp_path):
    summary = fetch_spectra([(266, 51630, 999), (268, 51633, 74)], tmp_path, Archive(archive_server.base_url))
    assert "not in the archive" in summary.failed["spec-0266-51630-0999.fits"]
    assert summary.downloaded == ["spec-0268-51633-0074.fits"]
    with pytest.raises(CommandError, match="1 spectra could not be fetched"):
        call_command("fetch_sdss", "266-51630-999", out=str(tmp_path), base_url=archive_server.base_url, verbosity=0, stdout=io.StringIO())


def test_html_instead_of_fits_is_an_error_and_leaves_no_file(archive_server, tmp_path):
    archive_server.html = True
    summary = fetch_spectra([(266, 51630, 168)], tmp_path / "out", Archive(archive_server.base_url))
    assert "did not send a usable spectrum" in summary.failed["spec-0266-51630-0168.fits"]
    assert not any((tmp_path / "out").rglob("spec-*"))
