"""SDSS identifiers: the specobjid, which packs plate, fiber, MJD and the reduction (run2d) into one integer.

Pure Python; never imports Django.
"""

from __future__ import annotations

import re


def _run2d_number(run2d: int | str) -> int:
    """26, '26', '103' or 'v5_13_0' -> the number SDSS packs into specobjid ((N-5)*10000 + M*100 + P)."""
    if isinstance(run2d, int):
        return run2d
    match = re.fullmatch(r"v(\d+)_(\d+)_(\d+)", run2d.strip())
    if match:
        major, minor, patch = (int(g) for g in match.groups())
        return (major - 5) * 10000 + minor * 100 + patch
    return int(run2d)


def specobjid_encode(plate: int, mjd: int, fiber: int, run2d: int | str = 26) -> int:
    """SDSS specobjid: plate << 50 | fiber << 38 | (mjd - 50000) << 24 | run2d << 10.

    A Python int: from plate 8192 on it no longer fits a signed 64-bit integer.
    """
    run2d = _run2d_number(run2d)
    limits = {
        "plate": (plate, 1 << 14),
        "fiber": (fiber, 1 << 12),
        "mjd - 50000": (mjd - 50000, 1 << 14),
        "run2d": (run2d, 1 << 14),
    }
    for name, (value, limit) in limits.items():
        if not 0 <= value < limit:
            raise ValueError(f"{name} = {value} does not fit SDSS's specobjid ({name} must be in [0, {limit}))")
    return (plate << 50) | (fiber << 38) | ((mjd - 50000) << 24) | (run2d << 10)


def specobjid_decode(specobjid: int) -> tuple[int, int, int, int]:
    """(plate, mjd, fiber, run2d) from SDSS's bit layout; run2d as packed (26, 103, 1300 for v5_13_0)."""
    specobjid = int(specobjid)
    if specobjid < 0:  # stored in a signed 64-bit column, as FITS and many databases do
        specobjid += 1 << 64
    return specobjid >> 50, ((specobjid >> 24) & 0x3FFF) + 50000, (specobjid >> 38) & 0xFFF, (specobjid >> 10) & 0x3FFF
