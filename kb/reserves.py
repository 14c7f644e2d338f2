"""The reserves: which spectra are held out for testing, kept for choices, or free to train on.

Fixed by a hash of each spectrum's specobjid, so a spectrum's reserve never changes, whatever else does.
Pure Python; never imports Django.
"""

from __future__ import annotations

import hashlib

TEST_FRACTION = 0.2  # share of spectra reserved for testing, by a hash of the specobjid (never changes)
VALIDATION_FRACTION = 0.1  # share reserved for every choice (checkpoint, pooling, K, ...), disjoint from it
TRAIN, VALIDATION, TEST = "train", "validation", "test"
RESERVES = (TRAIN, VALIDATION, TEST)


def reserve(specobjid: str | int) -> str:
    """Which reserve a spectrum belongs to, fixed by a hash of its id: TEST, VALIDATION or TRAIN.

    TEST (a fixed TEST_FRACTION) is read only by ``evaluate``'s final figures; VALIDATION (the next
    VALIDATION_FRACTION) is where every choice is made: pre-training's checkpoint, the experiments'
    settings, the trust signals' calibration. Neither ever enters a knowledge base nor trains the
    encoder; TRAIN is everything else.
    """
    digest = hashlib.sha256(f"galspec-test:{int(specobjid)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return TEST if u < TEST_FRACTION else VALIDATION if u < TEST_FRACTION + VALIDATION_FRACTION else TRAIN


def held_out(specobjid: str | int) -> bool:
    """Whether a spectrum is reserved for testing (``reserve`` is TEST): never in a knowledge base nor in
    pre-training, whatever else changes."""
    return reserve(specobjid) == TEST
