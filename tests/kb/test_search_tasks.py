from collections import Counter

import pytest

from kb.composition import compose
from kb.labellings import LABELLINGS, OTHER, TASKS, label_spectrum
from kb.reserves import TEST, TEST_FRACTION, TRAIN, VALIDATION, VALIDATION_FRACTION, held_out, reserve

MPA, PORT = "galspecextra", "emissionlinesport"


def test_the_test_reserve_is_a_fixed_fifth_chosen_by_specobjid():
    ids = range(10**17, 10**17 + 20000)
    share = sum(held_out(i) for i in ids) / 20000
    assert share == pytest.approx(TEST_FRACTION, abs=0.01)
    assert [held_out(i) for i in ids[:50]] == [held_out(str(i)) for i in ids[:50]]  # same for text ids


def test_the_validation_reserve_is_a_fixed_tenth_disjoint_from_the_test_reserve():
    ids = range(10**17, 10**17 + 20000)
    reserves = Counter(reserve(i) for i in ids)
    assert reserves[VALIDATION] / 20000 == pytest.approx(VALIDATION_FRACTION, abs=0.01)
    assert reserves[TEST] / 20000 == pytest.approx(TEST_FRACTION, abs=0.01)
    assert reserves[TRAIN] + reserves[VALIDATION] + reserves[TEST] == 20000
    assert all(held_out(i) == (reserve(i) == TEST) for i in ids)  # the test reserve did not move


def test_bpt_labels_need_both_catalogs_to_agree():
    assert label_spectrum("bpt5", {MPA: ("5", "liner"), PORT: ("LINER", "liner")}).label == "liner"
    assert label_spectrum("bpt5", {MPA: ("1", "star-forming"), PORT: ("LINER", "liner")}) is None
    assert label_spectrum("bpt5", {MPA: ("1", "star-forming")}) is None
    three = label_spectrum("bpt3", {MPA: ("4", "agn"), PORT: ("Seyfert", "seyfert")})
    assert three.label == "agn" and three.details == {"bpt5": "seyfert"} and three.catalogs == (MPA, PORT)


def test_search_labellings_mark_targets_with_their_catalog_and_others_by_bpt():
    lens = label_spectrum("lens", {"talbot2021": ("probable", "lens")})
    assert (lens.label, lens.catalogs, lens.details) == ("lens", ("talbot2021",), {"grading": "probable"})
    outlier = label_spectrum("outlier", {"baron2017": ("E+A", "post-starburst"), MPA: ("-1", "normal")})
    assert outlier.label == "outlier" and outlier.details == {"kind": "post-starburst"}
    other = label_spectrum("lens", {MPA: ("-1", "normal"), PORT: ("BLANK", "normal")})
    assert other.label == OTHER and other.details == {"bpt5": "normal"}
    assert label_spectrum("lens", {"baron2017": ("E+A", "post-starburst")}) is None  # no consistent BPT label
    assert label_spectrum("bpt5", {MPA: ("9", "?"), PORT: ("LINER", "liner")}) is None  # unknown value: no label


def test_every_shipped_task_has_a_known_labelling():
    assert set(TASKS) == {"bpt3", "bpt5", "liner", "lens", "outlier", "eplusa"}
    assert all(task.labelling in LABELLINGS for task in TASKS.values())
    with pytest.raises(ValueError, match="unknown labelling"):
        label_spectrum("colour", {})


CANDIDATES = {i: ("lens" if i % 10 == 0 else "other") for i in range(1000)}  # 100 lenses, 900 others


def test_a_target_fraction_sets_the_share_of_targets():
    chosen = compose(CANDIDATES, targets=("lens",), size=200, target_fraction=0.25, seed=1)
    assert len(chosen) == len(set(chosen)) == 200
    assert Counter(CANDIDATES[i] for i in chosen) == {"lens": 50, "other": 150}


def test_composition_is_deterministic_for_a_seed_and_changes_with_it():
    a = compose(CANDIDATES, targets=("lens",), size=100, target_fraction=None, seed=3)
    assert a == compose(CANDIDATES, targets=("lens",), size=100, target_fraction=None, seed=3)
    assert a != compose(CANDIDATES, targets=("lens",), size=100, target_fraction=None, seed=4)


def test_without_a_size_the_largest_knowledge_base_the_proportion_allows():
    chosen = compose(CANDIDATES, targets=("lens",), size=None, target_fraction=0.5, seed=0)
    assert Counter(CANDIDATES[i] for i in chosen) == {"lens": 100, "other": 100}
    assert len(compose(CANDIDATES, targets=(), size=None, target_fraction=None, seed=0)) == 1000


def test_impossible_compositions_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="need 150 targets and 150 others; 100 targets and 900 others"):
        compose(CANDIDATES, targets=("lens",), size=300, target_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="only 1000 labelled spectra are eligible"):
        compose(CANDIDATES, targets=(), size=5000, target_fraction=None, seed=0)
    with pytest.raises(ValueError, match="search tasks only"):
        compose(CANDIDATES, targets=(), size=10, target_fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        compose(CANDIDATES, targets=("lens",), size=10, target_fraction=1.0, seed=0)
