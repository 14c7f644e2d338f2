"""Catalog positions matched to spectra on the sky."""

import numpy as np
import pytest

from kb.sky import match_by_position


def test_position_matching_takes_the_nearest_spectrum_within_the_radius():
    spec_ra, spec_dec = np.array([10.0, 10.0008, np.nan, 200.0, 0.0001]), np.array([0.0, 0.0, 0.0, -5.0, 0.0])
    index = match_by_position(
        [10.0005, 200.01, 50.0, 359.9999, np.nan], [0.0, -5.0, 1.0, 0.0, 0.0], spec_ra, spec_dec, radius_arcsec=2.0
    )
    # 1.8" and 1.08" from the first two: the nearer wins; 36" from the fourth; nowhere near; across RA 0
    # to the fifth (an index into the spectra given, the unplaced third counted); NaN matches nothing
    assert index.tolist() == [1, -1, -1, 4, -1] and index.dtype == np.int64
    assert match_by_position([10.0005], [0.0], spec_ra, spec_dec, radius_arcsec=1.0).tolist() == [-1]
    assert match_by_position([], [], spec_ra, spec_dec).tolist() == []
    with pytest.raises(ValueError, match="RA and Dec differ in shape"):
        match_by_position([1.0, 2.0], [1.0], spec_ra, spec_dec)
