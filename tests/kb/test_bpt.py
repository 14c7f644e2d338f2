import math

import pytest

from kb.bpt import (
    bpt_class_from_lines,
    bpt_consensus,
    bpt_ratio_errors,
    bpt_ratios,
    bpt_three_class,
    kauffmann03,
    kewley01,
)


def lines(n2, o3, snr=20.0, ha=100.0, hb=30.0):
    """SPZLINE-like fluxes with log [N II]/Ha = n2 and log [O III]/Hb = o3."""
    flux = {
        "H_alpha": ha,
        "H_beta": hb,
        "[N_II] 6583": ha * 10**n2,
        "[O_III] 5007": hb * 10**o3,
        "[S_II] 6716": 20.0,
        "[S_II] 6730": 15.0,
        "[O_I] 6300": 5.0,
    }
    return {name: {"flux": f, "flux_err": f / snr} for name, f in flux.items()}


def test_ratios_are_logs_of_the_line_fluxes():
    ratios = bpt_ratios(lines(-0.5, 0.2))
    assert ratios["n2"] == pytest.approx(-0.5) and ratios["o3"] == pytest.approx(0.2)
    assert ratios["s2"] == pytest.approx(math.log10(35 / 100)) and ratios["o1"] == pytest.approx(math.log10(0.05))


@pytest.mark.parametrize(
    "n2, o3, expected",
    [
        (-0.6, -0.2, "star-forming"),  # below Kauffmann et al. (2003)
        (-0.1, 0.0, "composite"),  # between the two lines
        (0.0, 0.9, "seyfert"),  # above Kewley et al. (2001) and Schawinski et al. (2007)
        (0.2, 0.1, "liner"),  # above Kewley 2001, below Schawinski 2007
    ],
)
def test_regions_of_the_n2_diagram(n2, o3, expected):
    assert bpt_class_from_lines(lines(n2, o3)) == expected


def test_weak_lines_are_normal():
    weak = lines(-0.6, -0.2, snr=2.0)
    assert bpt_class_from_lines(weak) == "normal"
    assert bpt_class_from_lines(weak, min_snr=1.5) == "star-forming"
    assert bpt_class_from_lines({}) == "normal"


def test_the_demarcation_lines_cross_where_published():
    assert kauffmann03(-0.5) == pytest.approx(0.61 / -0.55 + 1.3)
    assert kewley01(0.0) == pytest.approx(0.61 / -0.47 + 1.19)
    assert kewley01(-1.0) > kauffmann03(-1.0)  # the maximum starburst line lies above


@pytest.mark.parametrize(
    ("mpa", "port", "label"),
    [
        (1, "Star Forming", "star-forming"),
        (2, "Star-Forming", "star-forming"),
        ("1", "star forming", "star-forming"),  # as CatalogLabel.value stores them
        (3, "Composite", "composite"),
        (4, "Seyfert", "seyfert"),
        (4, "LINER", "liner"),
        (5, "LINER", "liner"),
        (-1, "BLANK", "normal"),
        ("-1", "Blank", "normal"),
        (1, "Composite", None),
        (5, "Seyfert", None),
        (-1, "Star Forming", None),
        (4, "Composite", None),
        (4, "BLANK", None),
        (3, "LINER", None),
        (None, "LINER", None),
        (4, None, None),
    ],
)
def test_a_bpt_label_is_trusted_only_where_both_catalogs_agree(mpa, port, label):
    assert bpt_consensus(mpa, port) == label


def test_values_neither_catalog_publishes_are_errors_not_disagreements():
    with pytest.raises(ValueError, match="BPTCLASS 0"):
        bpt_consensus(0, "LINER")
    with pytest.raises(ValueError, match="'Quasar'"):
        bpt_consensus(4, "Quasar")


def test_three_classes_count_composites_as_agn():
    assert [bpt_three_class(c) for c in ("star-forming", "composite", "seyfert", "liner", "normal")] == [
        "star-forming",
        "agn",
        "agn",
        "agn",
        "normal",
    ]
    with pytest.raises(ValueError, match="'lens' is not a five-class BPT label"):
        bpt_three_class("lens")


def test_ratio_errors_propagate_the_line_flux_errors_and_flag_weak_lines():
    lines = {
        "H_alpha": {"flux": 100.0, "flux_err": 5.0},
        "[N_II] 6583": {"flux": 50.0, "flux_err": 5.0},
        "H_beta": {"flux": 30.0, "flux_err": 3.0},
        "[O_III] 5007": {"flux": 10.0, "flux_err": 5.0},  # S/N 2
        "[S_II] 6716": {"flux": 20.0, "flux_err": 2.0},
        "[S_II] 6730": {"flux": 15.0},  # no error: no error bar, and not to be trusted
    }
    errors, weak = bpt_ratio_errors(lines)
    assert errors["n2"] == pytest.approx(math.hypot(0.1, 0.05) / math.log(10))
    assert errors["o3"] == pytest.approx(math.hypot(0.5, 0.1) / math.log(10))
    assert "s2" not in errors and weak == {"o3", "s2"}
