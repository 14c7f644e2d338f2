import numpy as np
import pytest

from inference.trust import MAX_PERCENTILE, MIN_VALID_FRACTION, assess, calibrate, percentile

# nearest 0.1-1.1, z 0.02-0.31, reconstruction chi-squared 0.5-2.5 (and one NaN: no probed pixel was valid)
CALIBRATION = calibrate(
    np.linspace(0.1, 1.1, 1001), np.array([0.02, 0.05, 0.31]), np.append(np.linspace(0.5, 2.5, 1001), np.nan)
)


def test_the_calibration_keeps_the_nearest_distances_as_quantiles_and_the_z_range():
    assert CALIBRATION["n_validation"] == 1001 and (CALIBRATION["z_min"], CALIBRATION["z_max"]) == (0.02, 0.31)
    assert CALIBRATION["nearest_quantiles"][0] == 0.1 and CALIBRATION["nearest_quantiles"][-1] == 1.1
    assert percentile(CALIBRATION, 0.6) == pytest.approx(50, abs=0.1)
    assert percentile(CALIBRATION, 0.05) == 0 and percentile(CALIBRATION, 15.0) == 100
    assert CALIBRATION["reconstruction_quantiles"][0] == 0.5 and CALIBRATION["reconstruction_quantiles"][-1] == 2.5
    assert percentile(CALIBRATION, 1.5, "reconstruction_quantiles") == pytest.approx(50, abs=0.1)


def test_a_query_like_the_validation_spectra_is_in_distribution():
    trust = assess(CALIBRATION, valid_fraction=0.97, z=0.1, nearest_distance=0.3, reconstruction_chi2=1.0)
    assert trust.in_distribution is True and trust.reasons == [] and trust.z_in_range
    assert trust.distance_percentile == pytest.approx(20, abs=0.1)
    assert trust.reconstruction_chi2 == 1.0 and trust.reconstruction_percentile == pytest.approx(25, abs=0.1)


@pytest.mark.parametrize(
    "signals, reason",
    [
        (dict(valid_fraction=0.44, z=0.1, nearest_distance=0.3), "only 44% of its pixels are valid"),
        (dict(valid_fraction=0.97, z=0.55, nearest_distance=0.3), "redshift 0.550 lies outside"),
        (dict(valid_fraction=0.97, z=0.1, nearest_distance=15.0), "farther than 100.0% of validation spectra's"),
        (
            dict(valid_fraction=0.97, z=0.1, nearest_distance=0.3, reconstruction_chi2=40.0),
            "reconstructs its hidden pixels worse than 100.0% of validation spectra (median chi-squared 40",
        ),
    ],
)
def test_each_signal_alone_takes_an_answer_out_of_distribution_and_says_why(signals, reason):
    trust = assess(CALIBRATION, **signals)
    assert trust.in_distribution is False and len(trust.reasons) == 1 and reason in trust.reasons[0]


def test_the_bounds_are_the_documented_ones():
    edge = np.interp(MAX_PERCENTILE, np.linspace(0, 100, 1001), CALIBRATION["nearest_quantiles"])
    assert assess(CALIBRATION, valid_fraction=MIN_VALID_FRACTION, z=0.31, nearest_distance=edge).in_distribution
    assert not assess(CALIBRATION, valid_fraction=0.97, z=0.1, nearest_distance=edge + 0.01).in_distribution


def test_without_a_calibration_only_the_valid_fraction_can_be_judged():
    assert assess({}, valid_fraction=0.97, z=0.1, nearest_distance=0.3).in_distribution is None
    assert assess({}, valid_fraction=0.3, z=0.1, nearest_distance=0.3).in_distribution is False
    assert calibrate(np.empty(0), np.array([0.1]), np.empty(0)) == {}


def test_a_calibration_from_before_reconstructions_judges_the_other_signals():
    """Its knowledge base answers as before: the reconstruction is reported, not judged."""
    old = calibrate(np.linspace(0.1, 1.1, 1001), np.array([0.02, 0.31]), np.empty(0))
    assert "reconstruction_quantiles" not in old
    trust = assess(old, valid_fraction=0.97, z=0.1, nearest_distance=0.3, reconstruction_chi2=40.0)
    assert (
        trust.in_distribution is True and trust.reconstruction_chi2 == 40.0 and trust.reconstruction_percentile is None
    )
    unknown = assess(CALIBRATION, valid_fraction=0.97, z=0.1, nearest_distance=0.3, reconstruction_chi2=float("nan"))
    assert unknown.in_distribution is True and unknown.reconstruction_chi2 is None
