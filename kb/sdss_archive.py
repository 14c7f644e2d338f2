"""Downloading spec-lite files from the SDSS Science Archive Server (DR16 layout).

A spectrum ``PLATE-MJD-FIBER`` lives at
``{base}/sdss/spectro/redux/{run2d}/spectra/lite/{plate:04d}/spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits``
for the SDSS legacy reductions (run2d 26, 103, 104) and at
``{base}/eboss/spectro/redux/v5_13_0/spectra/lite/...`` for BOSS and eBOSS. The run2d of a spectrum is
not in its identifier, so the candidate locations are tried in turn: legacy first below plate 3510,
BOSS/eBOSS first from 3510 on, and before either the location that last answered for the same plate
(or, for a plate not seen yet, for the same survey).

Files are written to ``OUT/{plate:04d}/spec-....fits``, the layout of the archive's ``lite`` folder.
Downloads are resumable (``*.part`` files continued with HTTP Range requests where the server honours
them, restarted where it does not), retried with exponential backoff on connection errors, dropped
connections, time-outs and 5xx answers, checked to be FITS files with a COADD HDU, and renamed into
place atomically: a file at its final name is always complete. Several threads may download at once
(``fetch_spectra(workers=...)``), and each file's SHA-256 is recorded in ``OUT/SHA256SUMS``: a later run
fetches again any file that no longer matches it.

The catalogs ingest reads (``CATALOGS``: MPA-JHU DR8 galSpecInfo and galSpecExtra, Portsmouth DR12
emission lines) are fetched the same way (``fetch_catalogs``), checked against their FITS checksums where
they carry them, and ``paper_sample`` lists the spectra of galSpecInfo that the paper's sample keeps:
galaxies with a reliable, unwarned redshift. ``estimate_bytes`` asks the server for sizes first.

Pure Python (requests, astropy); never imports Django.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from astropy.io import fits

SAS = "https://data.sdss.org/sas"
DR16 = f"{SAS}/dr16"
# Catalog file -> its path under the SAS root, as the SDSS data access pages give them (the DR8 MPA-JHU
# files are served from every later release's SPECTRO_REDUX). Not checked from this offline machine.
CATALOGS = {
    "galSpecInfo-dr8.fits": "dr17/sdss/spectro/redux/galSpecInfo-dr8.fits",
    "galSpecExtra-dr8.fits": "dr17/sdss/spectro/redux/galSpecExtra-dr8.fits",
    "portsmouth_emlinekin_full-DR12.fits": "dr12/boss/spectro/redux/galaxy/v1_1/portsmouth_emlinekin_full-DR12.fits",
}
CHECKSUMS = "SHA256SUMS"  # in a download folder: "sha256  relative/path" per file, as sha256sum writes them
LEGACY_RUN2D = ("26", "103", "104")
EBOSS_RUN2D = "v5_13_0"
FIRST_BOSS_PLATE = 3510  # plates below are SDSS-I/II (legacy reductions); from here on BOSS and eBOSS
FITS_BLOCK = 2880  # bytes: every FITS file is a whole number of these blocks
CHUNK = 1 << 16  # bytes read from the socket at a time
MAX_BACKOFF = 60.0  # seconds: the longest wait between two attempts
IDENTIFIER = re.compile(r"^\s*(?:spec-)?(\d{1,5})\s*[-,\s]\s*(\d{5})\s*[-,\s]\s*(\d{1,4})(?:\.fits)?\s*$")


class NotInArchive(Exception):
    """Every candidate location answered 404."""


class FetchError(Exception):
    """A spectrum could not be fetched; the message says from where and why."""


class _Transient(Exception):
    """One attempt failed in a way that another attempt may not (5xx, a body cut short)."""


# Failures worth another attempt: the network, the server's mood, a body cut short.
TRANSIENT = (_Transient, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass
class FetchSummary:
    downloaded: list[str] = field(default_factory=list)  # file names
    skipped: list[str] = field(default_factory=list)  # already complete on disk
    failed: dict[str, str] = field(default_factory=dict)  # file name -> reason


def parse_identifier(text: str) -> tuple[int, int, int]:
    """'266-51630-168', '0266-51630-0168', '266,51630,168' or 'spec-0266-51630-0168.fits' -> (plate, mjd, fiber)."""
    match = IDENTIFIER.match(text)
    if not match:
        raise ValueError(f"{text.strip()!r} is not PLATE-MJD-FIBER (e.g. 0266-51630-0168)")
    return tuple(int(g) for g in match.groups())


def read_list(path: str | Path) -> list[tuple[int, int, int]]:
    """(plate, mjd, fiber) from a file: one PLATE-MJD-FIBER per line, or a CSV whose header names plate,
    mjd and fiberid (or fiber) columns, in any order and among others. Blank lines and '#' comments
    are ignored. Raises ValueError naming the file and line of anything else."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the list {path}: {error}") from None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return []
    header = [name.strip().lower() for name in next(csv.reader([lines[0]]))]
    fiber = "fiberid" if "fiberid" in header else "fiber"
    if {"plate", "mjd", fiber} <= set(header):
        columns = [header.index(name) for name in ("plate", "mjd", fiber)]
        identifiers = []
        for number, row in enumerate(csv.reader(lines[1:]), 2):
            try:
                identifiers.append(tuple(int(row[c]) for c in columns))
            except (IndexError, ValueError):
                raise ValueError(
                    f"{path.name}, row {number}: {','.join(row)!r} has no integer plate, mjd, {fiber}"
                ) from None
        return identifiers
    identifiers = []
    for number, line in enumerate(lines, 1):
        try:
            identifiers.append(parse_identifier(line))
        except ValueError as error:
            raise ValueError(f"{path.name}, line {number}: {error}") from None
    return identifiers


def file_name(plate: int, mjd: int, fiber: int) -> str:
    return f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def target_path(out: str | Path, plate: int, mjd: int, fiber: int) -> Path:
    """Where a spectrum is written: OUT/{plate:04d}/spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits."""
    return Path(out) / f"{plate:04d}" / file_name(plate, mjd, fiber)


def layouts(plate: int) -> list[str]:
    """Redux folders (relative to the archive root) that may hold the plate, most likely first."""
    legacy = [f"sdss/spectro/redux/{run2d}" for run2d in LEGACY_RUN2D]
    eboss = [f"eboss/spectro/redux/{EBOSS_RUN2D}"]
    return legacy + eboss if plate < FIRST_BOSS_PLATE else eboss + legacy


def archive_url(plate: int, mjd: int, fiber: int, run2d: str = "", base: str = DR16) -> str:
    """The Science Archive Server's address of a spec-lite file: under its own reduction (``run2d``) where
    known, else where the plate most likely lies."""
    if run2d:
        layout = f"sdss/spectro/redux/{run2d}" if run2d in LEGACY_RUN2D else f"eboss/spectro/redux/{run2d}"
    else:
        layout = layouts(plate)[0]
    return f"{base}/{layout}/spectra/lite/{plate:04d}/{file_name(plate, mjd, fiber)}"


def skyserver_url(specobjid: int | str) -> str:
    """SkyServer's Explore page of a spectrum (DR16): the object, its images, its other spectra."""
    return f"https://skyserver.sdss.org/dr16/en/tools/explore/summary.aspx?sid={specobjid}"


def check_spec_lite(path: str | Path) -> None:
    """Raise FetchError unless ``path`` is a complete FITS file with a non-empty COADD HDU.

    Deliberately no stricter than that: whether the columns suit ingest is kb.spectra's business, and
    a whole file that ingest dislikes must not be deleted and downloaded again on every run.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        start = handle.read(30)
    if not start.startswith(b"SIMPLE  ="):
        raise FetchError(f"not a FITS file (it starts with {start[:16]!r}, not 'SIMPLE  =')")
    size = path.stat().st_size
    if size % FITS_BLOCK:
        raise FetchError(f"truncated: {size} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks")
    try:
        with warnings.catch_warnings(record=True) as caught, fits.open(path, memmap=False) as hdus:
            warnings.simplefilter("always")
            hdus.readall()
            if any("truncated" in str(w.message) for w in caught):
                raise FetchError(f"truncated ({size} bytes)")
            if "COADD" not in hdus or hdus["COADD"].data is None or len(hdus["COADD"].data) == 0:
                raise FetchError("no COADD HDU with data, so not a spec-lite file")
    except (OSError, ValueError, TypeError) as error:  # what astropy raises for a damaged file
        raise FetchError(f"not a readable FITS file ({error})") from None


def check_catalog(path: str | Path) -> None:
    """Raise FetchError unless ``path`` is a complete FITS file with a table in HDU 1 whose CHECKSUM and
    DATASUM, where it has them, match its bytes."""
    path = Path(path)
    with open(path, "rb") as handle:
        start = handle.read(30)
    if not start.startswith(b"SIMPLE  ="):
        raise FetchError(f"not a FITS file (it starts with {start[:16]!r}, not 'SIMPLE  =')")
    if path.stat().st_size % FITS_BLOCK:
        raise FetchError(f"truncated: {path.stat().st_size} bytes is not a whole number of FITS blocks")
    try:
        with warnings.catch_warnings(record=True) as caught, fits.open(path, memmap=True, checksum=True) as hdus:
            warnings.simplefilter("always")
            hdus.readall()  # every HDU, each checked against its CHECKSUM and DATASUM where it has them
            if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU | fits.TableHDU):
                raise FetchError("no table in HDU 1, so not a catalog")
            if any("checksum" in str(w.message).lower() or "datasum" in str(w.message).lower() for w in caught):
                raise FetchError("its FITS checksum does not match its bytes")
    except (OSError, ValueError, TypeError) as error:
        raise FetchError(f"not a readable FITS file ({error})") from None


def is_complete(path: str | Path, check: Callable[[Path], None] = check_spec_lite) -> bool:
    try:
        check(path)
        return True
    except (FetchError, OSError):
        return False


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class Checksums:
    """``folder/SHA256SUMS``: the SHA-256 of every file downloaded into ``folder``, by relative path, in
    ``sha256sum`` format. A line is appended as each file arrives (thread-safe); where a name appears
    twice the last line counts, and ``compact`` rewrites the file with one line a name."""

    def __init__(self, folder: str | Path):
        self.folder, self.path, self.lock = Path(folder), Path(folder) / CHECKSUMS, threading.Lock()
        self.known: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                digest, _, name = line.partition("  ")
                if digest and name:
                    self.known[name] = digest
        self.compact()

    def matches(self, path: Path) -> bool:
        """True unless the file was recorded with other bytes than it now holds."""
        name = path.relative_to(self.folder).as_posix()
        return name not in self.known or self.known[name] == sha256(path)

    def record(self, path: Path) -> None:
        name, digest = path.relative_to(self.folder).as_posix(), sha256(path)
        with self.lock:
            self.known[name] = digest
            with open(self.path, "a") as handle:
                handle.write(f"{digest}  {name}\n")

    def compact(self) -> None:
        """One line a name, sorted (atomically: a new file renamed into place)."""
        with self.lock:
            if not self.known:
                return
            tmp = self.path.with_name(CHECKSUMS + ".tmp")
            tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(self.known.items())))
            os.replace(tmp, self.path)


class Archive:
    """A client of one archive root, over one requests Session.

    ``retries``: further attempts per location after the first, waiting ``backoff * 2**attempt``
    seconds (at most MAX_BACKOFF) before each. ``timeout``: seconds, for connecting and for each read.
    """

    def __init__(self, base_url: str = DR16, *, retries: int = 4, timeout: float = 60.0, backoff: float = 1.0):
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError(f"need retries >= 0, timeout > 0, backoff >= 0 (got {retries}, {timeout}, {backoff})")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the archive root must be an http(s) URL, like {DR16} (got {base_url!r})")
        self.base = base_url.rstrip("/")
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "GalSpec fetch_sdss"
        # Byte ranges must count the file's own bytes, never those of a compressed transfer of it.
        self.session.headers["Accept-Encoding"] = "identity"
        self.answered: dict[int, str] = {}  # plate -> redux folder that held its last spectrum
        self.last_answered: dict[bool, str] = {}  # legacy plate? -> redux folder that answered last

    def clone(self) -> Archive:
        """Another client of the same root and settings, with its own connection (one per thread)."""
        return Archive(self.base, retries=self.retries, timeout=self.timeout, backoff=self.backoff)

    def fetch_url(self, url: str, target: str | Path, check: Callable[[Path], None] = check_catalog) -> Path:
        """Download any file to ``target`` (resumed, retried, checked by ``check``, renamed into place)."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self._download(url, target, check):
            raise NotInArchive(f"{url}: not in the archive (404)")
        return target

    def size_of(self, url: str) -> int | None:
        """The file's size in bytes as the server announces it (HEAD), or None if it does not say."""
        for attempt in range(self.retries + 1):
            try:
                response = self.session.head(url, timeout=self.timeout, allow_redirects=True)
                if response.status_code in (500, 502, 503, 504):
                    raise _Transient(f"HTTP {response.status_code}")
                length = response.headers.get("Content-Length")
                return int(length) if response.status_code == 200 and length else None
            except TRANSIENT:
                if attempt == self.retries:
                    return None
                time.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF))
        return None

    def candidate_urls(self, plate: int, mjd: int, fiber: int) -> list[str]:
        """The URLs to try, in order: what held this plate, what last answered for its survey, the rest."""
        order = layouts(plate)
        for known in (self.last_answered.get(plate < FIRST_BOSS_PLATE), self.answered.get(plate)):
            if known in order:
                order.remove(known)
                order.insert(0, known)
        name = file_name(plate, mjd, fiber)
        return [f"{self.base}/{layout}/spectra/lite/{plate:04d}/{name}" for layout in order]

    def fetch(self, plate: int, mjd: int, fiber: int, out: str | Path) -> Path:
        """Download one spectrum to target_path(out, ...) and return that path.

        Raises NotInArchive (404 everywhere) or FetchError (anything else, with the URL and the reason).
        """
        target = target_path(out, plate, mjd, fiber)
        target.parent.mkdir(parents=True, exist_ok=True)
        urls = self.candidate_urls(plate, mjd, fiber)
        for url in urls:
            if self._download(url, target):
                layout = url[len(self.base) + 1 :].split("/spectra/lite/")[0]
                self.answered[plate] = self.last_answered[plate < FIRST_BOSS_PLATE] = layout
                return target
        raise NotInArchive(f"not in the archive (404 at all {len(urls)} locations under {self.base})")

    def _download(self, url: str, target: Path, check: Callable[[Path], None] = check_spec_lite) -> bool:
        """True once ``target`` is complete; False if the server has no such file (404)."""
        part = target.with_name(target.name + ".part")
        for attempt in range(self.retries + 1):
            try:
                if not self._get(url, part, check):
                    return False
                break
            except TRANSIENT as error:
                if attempt == self.retries:
                    raise FetchError(f"{url}: gave up after {attempt + 1} attempts ({error})") from None
                time.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF))
        try:
            check(part)
        except FetchError as error:
            part.unlink(missing_ok=True)
            what = "a spectrum" if check is check_spec_lite else "the file"
            raise FetchError(f"{url} did not send {what}: {error}; nothing was kept") from None
        os.replace(part, target)  # atomic: the final name only ever holds a whole file
        return True

    def _get(self, url: str, part: Path, check: Callable[[Path], None] = check_spec_lite) -> bool:
        """One GET into ``part``, continuing it where it already holds bytes. False on 404.

        Raises _Transient or a requests error for what another attempt may cure, FetchError otherwise.
        """
        done = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={done}-"} if done else {}
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status == 404:
                return False
            if status >= 500:
                raise _Transient(f"HTTP {status} {response.reason}")
            if status == 416:  # nothing after byte `done`: the part is whole, or not this file at all
                if is_complete(part, check):
                    return True
                part.unlink()
                raise _Transient(f"HTTP 416 for a {done}-byte partial file that is not the archive's; starting again")
            if status not in (200, 206):
                raise FetchError(f"{url}: HTTP {status} {response.reason}")
            resumed = status == 206
            if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {done}-"):
                part.unlink()
                got = response.headers.get("Content-Range")
                raise _Transient(f"asked for bytes {done}- but got {got!r}; starting again")
            with open(part, "ab" if resumed else "wb") as handle:  # 200 to a Range request: start again
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
            expected = response.headers.get("Content-Length")
            received = part.stat().st_size - (done if resumed else 0)
            if expected is not None and received < int(expected):
                raise _Transient(f"connection closed after {received} of {expected} bytes")
        return True


def fetch_spectra(
    identifiers: Iterable[tuple[int, int, int]],
    out: str | Path,
    archive: Archive,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> FetchSummary:
    """Download every (plate, mjd, fiber) not already complete under ``out``, ``workers`` at a time.

    A failure is recorded in the summary with its reason and the others go on. A file at its final
    name that is not a complete spec-lite file (copied there by hand, say), or whose bytes differ from
    those recorded in ``out/SHA256SUMS``, is fetched again. ``on_progress(done, total)`` is called after
    each identifier, skipped ones included.
    """
    identifiers = list(dict.fromkeys(identifiers))  # each once, in the order given
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    Path(out).mkdir(parents=True, exist_ok=True)
    summary, checksums = FetchSummary(), Checksums(out)
    local = threading.local()

    def one(plate: int, mjd: int, fiber: int) -> tuple[str, str, str]:
        name = file_name(plate, mjd, fiber)
        target = target_path(out, plate, mjd, fiber)
        if target.exists() and is_complete(target) and checksums.matches(target):
            return name, "skipped", ""
        target.unlink(missing_ok=True)  # the final name holds a whole file or nothing
        try:
            if not hasattr(local, "archive"):
                local.archive = archive if workers == 1 else archive.clone()
            checksums.record(local.archive.fetch(plate, mjd, fiber, out))
            return name, "downloaded", ""
        except (NotInArchive, FetchError, OSError, requests.RequestException, ValueError) as error:
            return name, "failed", str(error)  # OSError: the local disk; the rest: an answer not understood

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(one, *identifier) for identifier in identifiers]
        for done, future in enumerate(as_completed(futures), 1):
            name, outcome, reason = future.result()
            if outcome == "failed":
                summary.failed[name] = reason
            else:
                getattr(summary, outcome).append(name)
            if on_progress:
                on_progress(done, len(identifiers))
    finally:  # on Ctrl-C, the downloads not started are dropped, not waited for
        pool.shutdown(wait=True, cancel_futures=True)
        checksums.compact()
    return summary


def fetch_catalogs(out: str | Path, archive: Archive, sas: str = SAS) -> FetchSummary:
    """Download ``CATALOGS`` from the SAS root ``sas`` into ``out``, each unless already complete there."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary, checksums = FetchSummary(), Checksums(out)
    for name, path in CATALOGS.items():
        target = out / name
        if target.exists() and is_complete(target, check_catalog) and checksums.matches(target):
            summary.skipped.append(name)
            continue
        target.unlink(missing_ok=True)
        try:
            checksums.record(archive.fetch_url(f"{sas.rstrip('/')}/{path}", target, check_catalog))
            summary.downloaded.append(name)
        except (NotInArchive, FetchError, OSError, requests.RequestException, ValueError) as error:
            summary.failed[name] = str(error)
    checksums.compact()
    return summary


def paper_sample(info_path: str | Path) -> list[tuple[int, int, int]]:
    """(plate, mjd, fiber) of the spectra galSpecInfo-dr8.fits lists that the paper's sample keeps:
    classified as galaxies (SPECTROTYPE), with a redshift above 0 that carries no warning (Z_WARNING) and
    is reliable (RELIABLE), each once. A column the file lacks is not filtered on."""
    with fits.open(info_path, memmap=True) as hdus:
        table = hdus[1].data
        names = {name.upper() for name in table.columns.names}
        keep = np.asarray(table["Z"], dtype=float) > 0
        if "SPECTROTYPE" in names:
            keep &= np.char.strip(np.char.upper(np.asarray(table["SPECTROTYPE"]).astype(str))) == "GALAXY"
        if "Z_WARNING" in names:
            keep &= np.asarray(table["Z_WARNING"]) == 0
        if "RELIABLE" in names:
            keep &= np.asarray(table["RELIABLE"]) == 1
        rows = zip(table["PLATEID"][keep], table["MJD"][keep], table["FIBERID"][keep])
        return list(dict.fromkeys((int(p), int(m), int(f)) for p, m, f in rows))


def estimate_bytes(urls: list[str], archive: Archive, total: int | None = None) -> int | None:
    """The bytes ``total`` files would take (default: as many as ``urls``), from the sizes the server
    announces for ``urls`` (a sample of them); None if it announces none."""
    sizes = [size for size in (archive.size_of(url) for url in urls) if size is not None]
    if not sizes:
        return None
    return round(sum(sizes) / len(sizes) * (len(urls) if total is None else total))
