import math

import pytest

from kb.bpt import bpt_class_from_lines, bpt_ratios, kauffmann03, kewley01


def lines(n2, o3, snr=20.0, ha=100.0, hb=30.0):
    """SPZLINE-like fluxes with log [N II]/Ha = n2 and log [O III]/Hb = o3."""
    flux = {"H_alpha": ha, "H_beta": hb, "[N_II] 6583": ha * 10**n2, "[O_III] 5007": hb * 10**o3,
            "[S_II] 6716": 20.0, "[S_II] 6730": 15.0, "[O_I] 6300": 5.0}
    return {name: {"flux": f, "flux_err": f / snr} for name, f in flux.items()}


def test_ratios_are_logs_of_the_line_fluxes():
    ratios = bpt_ratios(lines(-0.5, 0.2))
    assert ratios["n2"] == pytest.approx(-0.5) and ratios["o3"] == pytest.approx(0.2)
    assert ratios["s2"] == pytest.approx(math.log10(35 / 100)) and ratios["o1"] == pytest.approx(math.log10(0.05))


@pytest.mark.parametrize("n2, o3, expected", [
    (-0.6, -0.2, "star-forming"),  # below Kauffmann et al. (2003)
    (-0.1, 0.0, "composite"),  # between the two lines
    (0.0, 0.9, "seyfert"),  # above Kewley et al. (2001) and Schawinski et al. (2007)
    (0.2, 0.1, "liner"),  # above Kewley 2001, below Schawinski 2007
])
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
