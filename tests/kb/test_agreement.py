"""Vote fractions, the consensus rule and Krippendorff's alpha (no database)."""

import pytest

from kb.agreement import consensus, krippendorff_alpha, vote_fractions


def test_vote_fractions():
    assert vote_fractions({"ann": "liner", "bob": "liner", "cy": "seyfert", "di": "liner"}) == {
        "liner": 0.75,
        "seyfert": 0.25,
    }
    assert vote_fractions({}) == {}


@pytest.mark.parametrize(
    "proposals, needed, expected",
    [
        ({"a": "lens", "b": "lens", "c": "lens"}, 3, "lens"),
        ({"a": "lens", "b": "lens", "c": "exclude"}, 3, None),
        ({"a": "lens", "b": "lens"}, 0, None),  # 0: flags never decide alone
        ({"a": "lens", "b": "exclude"}, 1, None),  # two labels reach it: no consensus
    ],
)
def test_consensus_needs_enough_different_people(proposals, needed, expected):
    assert consensus(proposals, needed=needed) == expected


def test_alpha_matches_the_coincidence_matrix_by_hand():
    # items (a,a), (b,b), (a,b), (b,b): o_ab + o_ba = 2, n_a = 3, n_b = 5, n = 8
    ratings = {
        1: {"r1": "a", "r2": "a"},
        2: {"r1": "b", "r2": "b"},
        3: {"r1": "a", "r2": "b"},
        4: {"r1": "b", "r2": "b"},
    }
    assert krippendorff_alpha(ratings) == pytest.approx(1 - 7 * 2 / (3 * 5 * 2))


def test_alpha_with_raters_who_rate_some_items_only():
    ratings = {1: {"ann": "liner", "bob": "liner", "cy": "liner"}, 2: {"ann": "agn", "cy": "agn"}, 3: {"bob": "liner"}}
    assert krippendorff_alpha(ratings) == pytest.approx(1.0)  # item 3 has one rating: not pairable
    assert krippendorff_alpha({1: {"ann": "liner"}}) is None
    assert krippendorff_alpha({1: {"ann": "liner", "bob": "liner"}}) is None  # one label only: undefined
