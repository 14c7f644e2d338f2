"""SDSS specobjids: the bit layout, both ways."""

import pytest

from kb.identifiers import specobjid_decode, specobjid_encode

SPEC_266_168 = 299535582055393280  # plate 266, MJD 51630, fiber 168, run2d 26


def test_specobjid_bit_layout_round_trips():
    assert specobjid_encode(266, 51630, 168) == SPEC_266_168
    assert specobjid_decode(SPEC_266_168) == (266, 51630, 168, 26)
    assert specobjid_decode(specobjid_encode(2000, 53000, 640, run2d="104")) == (2000, 53000, 640, 104)
    big = specobjid_encode(11000, 58000, 999, run2d="v5_13_0")  # eBOSS plates exceed a signed 64-bit integer
    assert big > 2**63 and specobjid_decode(big) == (11000, 58000, 999, 1300)
    assert specobjid_decode(big - 2**64) == specobjid_decode(big)  # as a signed int64 column holds it
    with pytest.raises(ValueError, match="fiber = 5000"):
        specobjid_encode(266, 51630, 5000)
