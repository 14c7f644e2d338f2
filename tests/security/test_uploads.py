"""Hostile uploads: a catalog that points at server files or URLs, spectrum files that inflate to gigabytes or
claim to, and a file cut where FITS cannot tell. Each is refused with a sentence, reads nothing it names, and
stays within a counted memory cap."""

import bz2
import gzip
import http.server
import io
import threading
import tracemalloc

import pytest
from astropy.io import fits
from astropy.table import Table

from kb.examples import read_examples
from kb.models import AuditEvent, SearchTask
from kb.spectra import SpectrumFileError, read_spectrum
from tests.conftest import api_client, person

SECRET = "GALSPEC_SECRET_KEY=leaked-if-you-can-read-this"  # noqa: S105  a canary, never a key
MB = 2**20


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "server.env"
    path.write_text(f"{SECRET}\n")
    return path


@pytest.fixture
def recording_server():
    """A local HTTP server that counts the requests it gets and answers each with a row of 'data'."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(SECRET.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def _votable(data_element: str) -> bytes:
    """A one-column VOTable (a char specobjid) whose DATA is ``data_element``."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
 <RESOURCE><TABLE>
  <FIELD name="specobjid" datatype="char" arraysize="*"/>
  <DATA>{data_element}</DATA>
 </TABLE></RESOURCE>
</VOTABLE>""".encode()


def _pointing_votables(secret_file, url) -> dict[str, bytes]:
    return {
        "binary stream to a file": _votable(f'<BINARY><STREAM href="file://{secret_file}"/></BINARY>'),
        "binary2 stream to a URL": _votable(f'<BINARY2><STREAM href="{url}/rows"/></BINARY2>'),
        "FITS stream to a URL": _votable(f'<FITS extnum="1"><STREAM href="{url}/table.fits"/></FITS>'),
        "external entity": f"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY secret SYSTEM "file://{secret_file}">]>
<VOTABLE version="1.4"><RESOURCE><TABLE><FIELD name="specobjid" datatype="char" arraysize="*"/>
<DATA><TABLEDATA><TR><TD>&secret;</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>""".encode(),
        "entity expansion": b"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<VOTABLE version="1.4"><RESOURCE><TABLE><FIELD name="specobjid" datatype="char" arraysize="*"/>
<DATA><TABLEDATA><TR><TD>&b;</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>""",
    }


def test_a_votable_pointing_at_a_file_or_url_is_refused_unread(secret_file, recording_server):
    url, hits = recording_server
    for kind, data in _pointing_votables(secret_file, url).items():
        with pytest.raises(ValueError) as refused:
            read_examples(data, "mine.vot")
        assert SECRET not in str(refused.value) and "leaked" not in str(refused.value), kind
        assert "inline" in str(refused.value) or "DTD" in str(refused.value), (kind, str(refused.value))
    assert hits == []


def test_an_inline_votable_still_reads_as_text_and_base64_binary():
    rows = Table({"specobjid": ["299489677444933632", "299489952322840576"]})
    out = io.BytesIO()
    rows.write(out, format="votable", tabledata_format="binary")
    assert b'<STREAM encoding="base64">' in out.getvalue()
    assert [e.value for e in read_examples(out.getvalue(), "mine.vot")] == list(rows["specobjid"])
    inline = _votable("<TABLEDATA><TR><TD>299489677444933632</TD></TR></TABLEDATA>")
    assert [e.value for e in read_examples(inline, "mine.vot")] == ["299489677444933632"]


@pytest.mark.django_db
def test_a_catalog_upload_pointing_at_server_files_answers_400_with_no_file_text(
    searchable, secret_file, recording_server
):
    url, hits = recording_server
    client = api_client(person("vera"))
    tasks, events = SearchTask.objects.count(), AuditEvent.objects.count()
    for kind, data in _pointing_votables(secret_file, url).items():
        upload = io.BytesIO(data)
        upload.name = "mine.vot"
        response = client.post(
            "/api/v1/tasks/", {"catalog": upload, "name": "odd", "target_label": "odd"}, format="multipart"
        )
        assert response.status_code == 400, (kind, response.content[:300])
        assert b"leaked" not in response.content, kind
    assert hits == []
    assert SearchTask.objects.count() == tasks and AuditEvent.objects.count() == events


def _refused_peak(path, *, match: str, **options) -> int:
    """The most bytes Python held while ``read_spectrum`` refused ``path`` (counted by tracemalloc, not timed)."""
    tracemalloc.start()
    try:
        with pytest.raises(SpectrumFileError, match=match):
            read_spectrum(path, **options)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb(compress, size: int, head: bytes) -> bytes:
    """A real FITS header followed by ``size`` zero bytes, compressed: kilobytes that inflate to ``size``."""
    compressor = compress()
    parts = [compressor.compress(head)]
    zeros = bytes(MB)
    for _ in range(size // MB):
        parts.append(compressor.compress(zeros))
    return b"".join([*parts, compressor.flush()])


BOMBS = {
    "gzip": lambda: __import__("zlib").compressobj(9, wbits=31),  # the gzip container
    "bzip2": lambda: bz2.BZ2Compressor(9),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_a_decompression_bomb_is_stopped_at_the_cap(tmp_path, real_spectra, kind):
    """64 MB of zeros behind a real header inflate no further than the cap (4 MB here): the memory the read
    takes is counted, and stays within a few times the cap whatever the bomb's size."""
    bomb = tmp_path / "innocent.fits"  # the name says nothing: the bytes do
    bomb.write_bytes(_bomb(BOMBS[kind], 64 * MB, real_spectra[0].read_bytes()[:2880]))
    assert bomb.stat().st_size < MB
    peak = _refused_peak(bomb, max_bytes=4 * MB, match=f"decompresses \\({kind}\\) to more than 4 MB")
    assert peak < 4 * 4 * MB, f"{peak / MB:.0f} MB held for a 4 MB cap"  # chunks and their join: 3x


def test_a_compressed_real_spectrum_still_reads(tmp_path, real_spectra):
    plain = read_spectrum(real_spectra[0])
    for name, compress in (("a.fits.gz", gzip.compress), ("b.fits", bz2.compress)):
        path = tmp_path / name
        path.write_bytes(compress(real_spectra[0].read_bytes()))
        assert read_spectrum(path).specobjid == plain.specobjid


def test_a_header_claiming_gigabytes_is_refused_before_its_data_is_read(tmp_path, real_spectra):
    data = bytearray(real_spectra[0].read_bytes())
    coadd_header = fits.open(real_spectra[0]).fileinfo(1)["hdrLoc"]
    card = data.index(b"NAXIS2  =", coadd_header)
    data[card : card + 30] = b"NAXIS2  = " + b"%20d" % 250_000_000  # 8 GB of 32-byte rows
    claim = tmp_path / "claim.fits"
    claim.write_bytes(bytes(data[: 12 * 2880]))  # 34 KB of it
    peak = _refused_peak(claim, match="declares data up to byte 8,000,0")
    assert peak < 4 * MB


def test_a_file_cut_at_an_hdu_boundary_is_refused(tmp_path, real_spectra):
    lines_start = fits.open(real_spectra[0]).fileinfo(3)["hdrLoc"]
    cut = tmp_path / "cut.fits"
    cut.write_bytes(real_spectra[0].read_bytes()[:lines_start])  # whole blocks: FITS itself cannot tell
    with pytest.raises(SpectrumFileError, match="no HDU 'SPZLINE'.*cut short"):
        read_spectrum(cut)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", BOMBS)
def test_an_anonymous_search_with_a_bomb_answers_400(searchable, real_spectra, kind):
    """Through the open API, at the shipped cap: 256 MB behind a real header, sent as a file of kilobytes."""
    upload = io.BytesIO(_bomb(BOMBS[kind], 256 * MB, real_spectra[0].read_bytes()[:2880]))
    upload.name = "spec.fits"
    response = api_client().post("/api/v1/search/", {"task": "bpt3", "file": upload}, format="multipart")
    assert response.status_code == 400
    assert "more than 64 MB" in response.json()["error"]["message"]


def test_a_tile_compressed_image_is_refused_uninflated(tmp_path, real_spectra):
    """FITS's own compression: a COADD that is a tile-compressed image of 288 MB of zeros, in a file of under
    1 MB, would be inflated by astropy on reading; it is refused from its header."""
    import numpy as np

    with fits.open(real_spectra[0]) as real:
        hdus = fits.HDUList([real[0].copy(), fits.CompImageHDU(np.zeros((6000, 6000)), name="COADD")])
        hdus.append(real["SPECOBJ"].copy())
        bomb = tmp_path / "tiled.fits"
        hdus.writeto(bomb)
    assert bomb.stat().st_size < MB
    peak = _refused_peak(bomb, match="HDU 1 is a tile-compressed image")
    assert peak < 8 * MB, f"{peak / MB:.0f} MB"
