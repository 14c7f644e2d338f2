"""Downloading spec-lite files from the SDSS Science Archive Server (DR16 layout).

A spectrum ``PLATE-MJD-FIBER`` lives at
``{base}/sdss/spectro/redux/{run2d}/spectra/lite/{plate:04d}/spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits``
for the SDSS legacy reductions (run2d 26, 103, 104) and at
``{base}/eboss/spectro/redux/v5_13_0/spectra/lite/...`` for BOSS and eBOSS. The run2d of a spectrum is
not in its identifier, so the candidate locations are tried in turn (legacy first below plate 3510).

Downloads are resumable (``*.part`` files continued with HTTP Range requests), retried with exponential
backoff on connection errors, time-outs and 5xx answers, checked to be FITS files with a COADD HDU, and
renamed into place atomically: a file at its final name is always complete.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from kb.spectra import SpectrumFileError, read_spectrum

DR16 = "https://data.sdss.org/sas/dr16"
LEGACY_RUN2D = ("26", "103", "104")
EBOSS_RUN2D = "v5_13_0"
LAST_LEGACY_PLATE = 3509
IDENTIFIER = re.compile(r"^\s*(\d{3,5})\s*[-,\s]\s*(\d{5})\s*[-,\s]\s*(\d{1,4})\s*$")


class NotInArchive(Exception):
    """Every candidate location answered 404."""


@dataclass
class FetchSummary:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already complete on disk
    failed: dict[str, str] = field(default_factory=dict)  # identifier -> reason


def parse_identifier(text: str) -> tuple[int, int, int]:
    """'266-51630-168', '0266-51630-0168' or '266,51630,168' -> (plate, mjd, fiber)."""
    match = IDENTIFIER.match(text)
    if not match:
        raise ValueError(f"{text.strip()!r} is not PLATE-MJD-FIBER (e.g. 0266-51630-0168)")
    return tuple(int(g) for g in match.groups())


def read_list(path: str | Path) -> list[tuple[int, int, int]]:
    """Identifiers from a file: one PLATE-MJD-FIBER per line, or a CSV with plate, mjd, fiberid columns."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines and lines[0].replace(" ", "").lower().startswith("plate,mjd,fiber"):
        lines = lines[1:]
    return [parse_identifier(",".join(line.split(",")[:3])) for line in lines]


def file_name(plate: int, mjd: int, fiber: int) -> str:
    return f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def candidate_urls(base: str, plate: int, mjd: int, fiber: int) -> list[str]:
    name = file_name(plate, mjd, fiber)
    legacy = [f"{base}/sdss/spectro/redux/{run2d}/spectra/lite/{plate:04d}/{name}" for run2d in LEGACY_RUN2D]
    eboss = [f"{base}/eboss/spectro/redux/{EBOSS_RUN2D}/spectra/lite/{plate:04d}/{name}"]
    return legacy + eboss if plate <= LAST_LEGACY_PLATE else eboss + legacy


class Archive:
    """A client of one archive root; remembers which candidate layout answered last."""

    def __init__(self, base_url: str = DR16, *, retries: int = 4, timeout: float = 60.0, backoff: float = 1.0):
        self.base = base_url.rstrip("/")
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "GalSpec fetch_sdss"

    def fetch(self, plate: int, mjd: int, fiber: int, out: Path) -> Path:
        """Download one spectrum into out/PLATE/; returns its path. Raises NotInArchive or OSError."""
        target = Path(out) / f"{plate:04d}" / file_name(plate, mjd, fiber)
        target.parent.mkdir(parents=True, exist_ok=True)
        for url in candidate_urls(self.base, plate, mjd, fiber):
            if self._download(url, target):
                return target
        raise NotInArchive(f"{file_name(plate, mjd, fiber)} is not in the archive at {self.base}")

    def _download(self, url: str, target: Path) -> bool:
        """True once ``target`` is complete; False if the server has no such file (404)."""
        part = target.with_name(target.name + ".part")
        for attempt in range(self.retries + 1):
            try:
                done = part.stat().st_size if part.exists() else 0
                headers = {"Range": f"bytes={done}-"} if done else {}
                with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                    if response.status_code == 404:
                        return False
                    if response.status_code == 416:  # the part file is already whole
                        response.close()
                    elif response.status_code >= 500:
                        raise requests.HTTPError(f"{response.status_code} from {url}")
                    else:
                        response.raise_for_status()
                        resumed = response.status_code == 206
                        with open(part, "ab" if resumed else "wb") as handle:
                            for chunk in response.iter_content(1 << 16):
                                handle.write(chunk)
                        expected = response.headers.get("Content-Length")
                        if expected is not None and part.stat().st_size < (done if resumed else 0) + int(expected):
                            raise requests.ConnectionError(f"connection closed early while reading {url}")
                self._check(part, url)
                os.replace(part, target)
                return True
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as error:
                if isinstance(error, requests.HTTPError) and error.response is not None and error.response.status_code < 500:
                    raise OSError(f"{url}: {error}") from None
                if attempt == self.retries:
                    raise OSError(f"{url}: gave up after {self.retries + 1} attempts ({error})") from None
                time.sleep(self.backoff * 2**attempt)
        return False

    @staticmethod
    def _check(part: Path, url: str) -> None:
        try:
            read_spectrum(part)
        except SpectrumFileError as error:
            part.unlink(missing_ok=True)
            raise OSError(f"{url} did not send a usable spectrum: {error.reason}") from None


def fetch_spectra(
    identifiers: Iterable[tuple[int, int, int]],
    out: str | Path,
    archive: Archive,
    on_progress: Callable[[int, int], None] | None = None,
) -> FetchSummary:
    """Download every identifier not already complete under ``out``; failures are reported, not fatal."""
    identifiers = list(identifiers)
    summary = FetchSummary()
    for done, (plate, mjd, fiber) in enumerate(identifiers, 1):
        name = file_name(plate, mjd, fiber)
        target = Path(out) / f"{plate:04d}" / name
        if target.exists():
            try:
                read_spectrum(target)
                summary.skipped.append(name)
                continue
            except SpectrumFileError:
                target.unlink()
        try:
            archive.fetch(plate, mjd, fiber, Path(out))
            summary.downloaded.append(name)
        except (NotInArchive, OSError) as error:
            summary.failed[name] = str(error)
        if on_progress:
            on_progress(done, len(identifiers))
    return summary
