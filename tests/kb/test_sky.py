"""Catalog positions matched to spectra on the sky."""

import numpy as np
import pytest

from kb.sky import match_by_position, position_groups, separation_arcsec


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


def test_separations_are_in_arcsec_across_ra_zero():
    assert separation_arcsec([359.9999, 10.0], [0.0, 0.0], [0.0001, 10.0], [0.0, 0.001]) == pytest.approx([0.72, 3.6])


def test_repeat_observations_of_one_galaxy_share_a_group_through_a_chain():
    # 1.5" apart, then 1.5" further (3" from the first: linked through the middle), one alone, one unplaced
    ra = np.array([10.0, 10.0 + 1.5 / 3600, 10.0 + 3 / 3600, 50.0, np.nan, 50.0])
    dec = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    group = position_groups(ra, dec, radius_arcsec=2.0)
    assert group[0] == group[1] == group[2] and group[3] == group[5]
    assert len({group[0], group[3], group[4]}) == 3
    assert len(set(position_groups(ra, dec, radius_arcsec=1.0))) == 5
