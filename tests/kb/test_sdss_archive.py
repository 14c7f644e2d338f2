"""fetch_sdss against a real local HTTP server laid out like the SDSS Science Archive Server.

The server (http.server in a thread on 127.0.0.1) serves symlinks to the ten real spec-lite files,
made in a temporary folder, and can misbehave on demand: answer 500, cut a body short, hang up without an
answer, ignore Range headers, or send an HTML page instead of the file.
"""

import http.server
import io
import re
import threading

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import CommandError, call_command

from kb.sdss_archive import CATALOGS, Archive, fetch_spectra, parse_identifier, read_list, sha256

LIST_HEADER = "plate,mjd,fiberid"


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """GET of a file under server.root, with byte ranges unless server.ranges is False."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if server.hang_ups > 0:  # close the connection without a word
            server.hang_ups -= 1
            self.close_connection = True
            return
        if server.failures > 0:
            server.failures -= 1
            self.send_error(server.failure_status)
            return
        if server.html:
            self._send(200, b"<html><body>The archive is down for maintenance</body></html>", "text/html")
            return
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range") and server.ranges:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/fits")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if server.cut_shorts > 0:  # promise the whole body, send half of it, hang up
            server.cut_shorts -= 1
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def do_HEAD(self):
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def archive_server(tmp_path_factory, real_spectra):
    """The ten real files in the DR16 SAS layout. Plates 266 and 267 sit under run2d 26, as in the real
    archive; plate 268 is put under 104 so that finding it takes the search through the candidates."""
    root = tmp_path_factory.mktemp("sas")  # apart from tmp_path, which the tests download into
    for path in real_spectra:
        plate = path.name.split("-")[1]
        run2d = "104" if plate == "0268" else "26"
        folder = root / "dr16" / "sdss" / "spectro" / "redux" / run2d / "spectra" / "lite" / plate
        folder.mkdir(parents=True, exist_ok=True)
        (folder / path.name).symlink_to(path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    server.root, server.requests = root, []
    server.failures = server.cut_shorts = server.hang_ups = 0
    server.failure_status = 500
    server.ranges, server.html = True, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.sas_url = f"http://127.0.0.1:{server.server_address[1]}"
    server.base_url = f"{server.sas_url}/dr16"
    yield server
    server.shutdown()
    server.server_close()


def archive(server, **options):
    return Archive(server.base_url, backoff=0.01, timeout=10, **options)


def identifier(path):
    return path.name.removeprefix("spec-").removesuffix(".fits")


def test_identifiers_and_list_files(tmp_path):
    assert parse_identifier("266-51630-168") == parse_identifier("0266-51630-0168") == (266, 51630, 168)
    assert parse_identifier("spec-0266-51630-0168.fits") == parse_identifier("266,51630,168") == (266, 51630, 168)
    with pytest.raises(ValueError, match="not PLATE-MJD-FIBER"):
        parse_identifier("spec-0266")
    plain = tmp_path / "ids.txt"
    plain.write_text("# from the paper's table 2\n0266-51630-0168\n\n267-51608-413\n")
    assert read_list(plain) == [(266, 51630, 168), (267, 51608, 413)]
    cas = tmp_path / "ids.csv"  # a CAS export: other columns, any order, upper-case names
    cas.write_text("specObjID,MJD,FIBERID,PLATE\n299535582055393280,51630,168,266\n# a comment\n\n1,51608,413,267\n")
    assert read_list(cas) == [(266, 51630, 168), (267, 51608, 413)]
    bad = tmp_path / "bad.txt"
    bad.write_text("266-51630-168\n266/51630/168\n")
    with pytest.raises(ValueError, match="bad.txt, line 2"):
        read_list(bad)


def test_download_by_identifier_gives_the_archive_bytes(archive_server, tmp_path, real_spectra):
    summary = fetch_spectra([(266, 51630, 168)], tmp_path / "out", archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0168.fits"] and not summary.failed
    got = tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits"
    assert got.read_bytes() == real_spectra[0].read_bytes()
    assert [path for path, _ in archive_server.requests] == [
        "/dr16/sdss/spectro/redux/26/spectra/lite/0266/spec-0266-51630-0168.fits"
    ]  # legacy plate: legacy first


def test_command_with_a_list_file_then_again_skips_everything(archive_server, tmp_path, real_spectra):
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join(identifier(p) for p in real_spectra))
    out, first = tmp_path / "out", io.StringIO()
    call_command(
        "fetch_sdss", list=str(listing), out=str(out), base_url=archive_server.base_url, stdout=first, verbosity=0
    )
    assert "10 downloaded, 0 already here, 0 failed" in first.getvalue()
    for path in real_spectra:
        assert (out / path.name.split("-")[1] / path.name).read_bytes() == path.read_bytes()
    assert not list(out.rglob("*.part"))
    archive_server.requests.clear()
    again = io.StringIO()
    call_command(
        "fetch_sdss", list=str(listing), out=str(out), base_url=archive_server.base_url, stdout=again, verbosity=0
    )
    assert "0 downloaded, 10 already here, 0 failed" in again.getvalue()
    assert archive_server.requests == []


def test_identifiers_on_the_command_line(archive_server, tmp_path):
    out = io.StringIO()
    call_command(
        "fetch_sdss",
        "0266-51630-0215",
        "267-51608-413",
        out=str(tmp_path),
        base_url=archive_server.base_url,
        stdout=out,
        verbosity=0,
    )
    assert "2 downloaded" in out.getvalue()
    assert sorted(p.name for p in tmp_path.rglob("*.fits")) == [
        "spec-0266-51630-0215.fits",
        "spec-0267-51608-0413.fits",
    ]


def test_the_location_that_answered_is_tried_first_for_the_same_plate(archive_server, tmp_path):
    client = archive(archive_server)
    fetch_spectra([(268, 51633, 74)], tmp_path, client)
    assert [path.split("/")[5] for path, _ in archive_server.requests] == ["26", "103", "104"]
    archive_server.requests.clear()
    summary = fetch_spectra([(268, 51633, 223)], tmp_path, client)
    assert summary.downloaded == ["spec-0268-51633-0223.fits"]
    assert [path.split("/")[5] for path, _ in archive_server.requests] == ["104"]


def test_a_partial_download_is_continued_with_a_range_request(archive_server, tmp_path, real_spectra):
    data = real_spectra[0].read_bytes()
    part = tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100_000])
    summary = fetch_spectra([(266, 51630, 168)], tmp_path / "out", archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0168.fits"]
    assert archive_server.requests == [(archive_server.requests[0][0], "bytes=100000-")]
    assert (tmp_path / "out" / "0266" / "spec-0266-51630-0168.fits").read_bytes() == data
    assert not part.exists()


def test_a_server_without_range_support_restarts_the_download(archive_server, tmp_path, real_spectra):
    archive_server.ranges = False
    data = real_spectra[0].read_bytes()
    part = tmp_path / "0266" / "spec-0266-51630-0168.fits.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100_000])
    fetch_spectra([(266, 51630, 168)], tmp_path, archive(archive_server))
    assert archive_server.requests[0][1] == "bytes=100000-"  # asked, answered with the whole file
    assert (tmp_path / "0266" / "spec-0266-51630-0168.fits").read_bytes() == data


def test_server_errors_are_retried(archive_server, tmp_path, real_spectra):
    archive_server.failures = 2
    summary = fetch_spectra([(266, 51630, 215)], tmp_path, archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0215.fits"] and len(archive_server.requests) == 3
    assert (tmp_path / "0266" / "spec-0266-51630-0215.fits").read_bytes() == real_spectra[1].read_bytes()


def test_a_dropped_connection_is_retried_from_where_it_stopped(archive_server, tmp_path, real_spectra):
    data = real_spectra[1].read_bytes()
    archive_server.cut_shorts = 1  # the first answer stops half-way
    summary = fetch_spectra([(266, 51630, 215)], tmp_path, archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0215.fits"]
    (_, first), (_, second) = archive_server.requests
    kept = int(second.removeprefix("bytes=").rstrip("-"))  # what reached the disk before the cut
    assert first is None and 0 < kept <= len(data) // 2
    assert (tmp_path / "0266" / "spec-0266-51630-0215.fits").read_bytes() == data


def test_a_connection_closed_without_an_answer_is_retried(archive_server, tmp_path, real_spectra):
    archive_server.hang_ups = 2
    summary = fetch_spectra([(266, 51630, 367)], tmp_path, archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0367.fits"] and len(archive_server.requests) == 3
    assert (tmp_path / "0266" / "spec-0266-51630-0367.fits").read_bytes() == real_spectra[2].read_bytes()


def test_retries_give_up_with_the_reason(archive_server, tmp_path):
    archive_server.failures = 100
    summary = fetch_spectra([(266, 51630, 367)], tmp_path, archive(archive_server, retries=2))
    assert "gave up after 3 attempts (HTTP 500" in summary.failed["spec-0266-51630-0367.fits"]
    assert len(archive_server.requests) == 3 and not list(tmp_path.rglob("spec-*.fits"))


def test_a_missing_spectrum_is_reported_and_the_others_fetched(archive_server, tmp_path):
    summary = fetch_spectra([(266, 51630, 999), (268, 51633, 74)], tmp_path, archive(archive_server))
    assert "not in the archive (404 at all 4 locations" in summary.failed["spec-0266-51630-0999.fits"]
    assert summary.downloaded == ["spec-0268-51633-0074.fits"]
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 spectra could not be fetched"):
        call_command(
            "fetch_sdss",
            "266-51630-999",
            "266-51630-481",
            out=str(tmp_path),
            base_url=archive_server.base_url,
            verbosity=0,
            stdout=out,
        )
    assert "1 downloaded, 0 already here, 1 failed" in out.getvalue()
    assert "spec-0266-51630-0999.fits: not in the archive" in out.getvalue()


def test_html_instead_of_fits_is_an_error_and_leaves_no_file(archive_server, tmp_path):
    archive_server.html = True
    summary = fetch_spectra([(266, 51630, 168)], tmp_path / "out", archive(archive_server))
    reason = summary.failed["spec-0266-51630-0168.fits"]
    assert "did not send a spectrum: not a FITS file (it starts with b'<html>" in reason
    assert not any((tmp_path / "out").rglob("spec-*"))


def test_a_damaged_file_at_the_final_name_is_fetched_again(archive_server, tmp_path, real_spectra):
    target = tmp_path / "0266" / "spec-0266-51630-0168.fits"
    target.parent.mkdir(parents=True)
    target.write_bytes(real_spectra[0].read_bytes()[: 5 * 2880])  # whole FITS blocks, data cut short
    summary = fetch_spectra([(266, 51630, 168)], tmp_path, archive(archive_server))
    assert summary.downloaded == ["spec-0266-51630-0168.fits"]
    assert target.read_bytes() == real_spectra[0].read_bytes()


def test_bad_arguments_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="give PLATE-MJD-FIBER"):
        call_command("fetch_sdss", out=str(tmp_path), verbosity=0)
    with pytest.raises(CommandError, match="not PLATE-MJD-FIBER"):
        call_command("fetch_sdss", "spec-0266", out=str(tmp_path), verbosity=0)
    with pytest.raises(CommandError, match="must be an http"):
        call_command("fetch_sdss", "266-51630-168", out=str(tmp_path), base_url="data.sdss.org", verbosity=0)


def _catalogs_on_the_server(server, real_spectra) -> dict:
    """galSpecInfo listing the ten real spectra as galaxies, plus a star and a galaxy whose redshift is
    warned (neither of which the server holds), with the other two catalogs, at their archive paths."""
    ids = [parse_identifier(path.name) for path in real_spectra] + [(266, 51630, 1), (266, 51630, 2)]
    kinds = ["GALAXY"] * len(real_spectra) + ["STAR", "GALAXY"]
    warned = [0] * len(real_spectra) + [0, 4]
    info = fits.BinTableHDU.from_columns(
        [
            fits.Column("PLATEID", "J", array=[i[0] for i in ids]),
            fits.Column("MJD", "J", array=[i[1] for i in ids]),
            fits.Column("FIBERID", "J", array=[i[2] for i in ids]),
            fits.Column("Z", "E", array=np.full(len(ids), 0.1)),
            fits.Column("SPECTROTYPE", "6A", array=kinds),
            fits.Column("Z_WARNING", "J", array=warned),
            fits.Column("RELIABLE", "J", array=[1] * len(ids)),
        ]
    )
    extra = fits.BinTableHDU.from_columns([fits.Column("BPTCLASS", "I", array=[1] * len(ids))])
    served = {}
    for name, table in zip(CATALOGS, (info, extra, extra)):
        path = server.root / CATALOGS[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, checksum=True)
        served[name] = path.read_bytes()
    return served


def test_a_survey_comes_down_catalogs_first_then_the_galaxies_they_list(archive_server, tmp_path, real_spectra):
    served = _catalogs_on_the_server(archive_server, real_spectra)
    archive_server.failures, archive_server.failure_status = 2, 503  # the archive busy, twice
    archive_server.cut_shorts = 1  # and one connection dropped in the middle of a file
    out, printed = tmp_path / "sdss", io.StringIO()
    command = ["fetch_sdss", "--survey", "--out", str(out), "--sas-url", archive_server.sas_url, "--workers", "3"]
    call_command(*command, stdout=printed)
    text = printed.getvalue()
    assert re.search(r"3 catalogs \(about 0\.0 MB\)", text)  # sizes asked for (HEAD) before any download
    assert "galSpecInfo lists 10 galaxies with reliable redshifts" in text  # the star and the warned z left out
    assert "10 spectra to fetch (about 1.7 MB)" in text and "spectra: 10 downloaded" in text
    for name, data in served.items():
        assert (out / "catalogs" / name).read_bytes() == data
    fetched = sorted((out / "spectra").rglob("spec-*.fits"))
    assert [path.name for path in fetched] == sorted(path.name for path in real_spectra)
    for path in fetched:
        assert path.read_bytes() == next(p for p in real_spectra if p.name == path.name).read_bytes()
    sums = dict(reversed(line.split("  ")) for line in (out / "spectra" / "SHA256SUMS").read_text().splitlines())
    assert sums == {f"{p.parent.name}/{p.name}": sha256(p) for p in fetched}
    assert archive_server.failures == archive_server.cut_shorts == 0  # both happened, and were got over

    damaged = fetched[0]  # a file whose bytes changed since: still a FITS file, no longer the archive's
    data = bytearray(damaged.read_bytes())
    data[-10] ^= 0xFF
    damaged.write_bytes(bytes(data))
    printed = io.StringIO()
    call_command(*command, stdout=printed)
    assert "catalogs: 0 downloaded, 3 already here" in printed.getvalue()
    assert "spectra: 1 downloaded, 9 already here, 0 failed" in printed.getvalue()
    assert sha256(damaged) == sums[f"{damaged.parent.name}/{damaged.name}"]


def test_a_dry_run_fetches_the_catalogs_and_estimates_the_spectra(archive_server, tmp_path, real_spectra):
    _catalogs_on_the_server(archive_server, real_spectra)
    printed = io.StringIO()
    call_command(
        "fetch_sdss",
        "--survey",
        "--dry-run",
        "--limit",
        "4",
        "--out",
        str(tmp_path / "sdss"),
        "--sas-url",
        archive_server.sas_url,
        stdout=printed,
    )
    assert "4 spectra to fetch (about 0.7 MB)" in printed.getvalue()
    assert not (tmp_path / "sdss" / "spectra").exists()


def test_a_catalog_whose_checksum_fails_is_refused_and_not_kept(archive_server, tmp_path, real_spectra):
    _catalogs_on_the_server(archive_server, real_spectra)
    served = archive_server.root / CATALOGS["galSpecExtra-dr8.fits"]
    data = bytearray(served.read_bytes())
    data[-100] ^= 0xFF  # one byte of the table changed on the server: its DATASUM no longer matches
    served.write_bytes(bytes(data))
    printed = io.StringIO()
    with pytest.raises(CommandError, match="1 catalogs could not be fetched"):
        call_command(
            "fetch_sdss",
            "--survey",
            "--out",
            str(tmp_path / "sdss"),
            "--sas-url",
            archive_server.sas_url,
            "--retries",
            "0",
            stdout=printed,
        )
    assert "galSpecExtra-dr8.fits" in printed.getvalue() and "checksum does not match" in printed.getvalue()
    assert not (tmp_path / "sdss" / "catalogs" / "galSpecExtra-dr8.fits").exists()
