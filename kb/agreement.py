"""How far people agree on a spectrum's label: vote fractions, the consensus rule, and Krippendorff's alpha.

A *rating* is one person's label for one item (a spectrum in a task): the label a flag proposes, or,
for a curator, the label they decided it should have (the current one when they rejected the flags).
Plain Python and numpy; never imports Django.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import krippendorff
import numpy as np


def vote_fractions(ratings: Mapping[str, str]) -> dict[str, float]:
    """{label: share of the raters giving it}, largest first, from {rater: label}."""
    counts = Counter(ratings.values())
    total = sum(counts.values())
    return {label: n / total for label, n in counts.most_common()} if total else {}


def most_proposed(labels: Sequence[str]) -> str | None:
    """The label proposed most often, the first proposed among equals; None if none is."""
    return max(dict.fromkeys(labels), key=list(labels).count) if labels else None


def consensus(proposals: Mapping[str, str], *, needed: int) -> str | None:
    """The label that at least ``needed`` different people propose ({person: proposed label}), or None.

    ``needed`` 0 means flags never decide on their own. Two labels both reaching ``needed`` is no consensus.
    """
    if needed < 1:
        return None
    reached = [label for label, n in Counter(proposals.values()).items() if n >= needed]
    return reached[0] if len(reached) == 1 else None


def krippendorff_alpha(ratings: Mapping[object, Mapping[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) over items {item: {rater: label}}, where raters rate some items each.

    1 is perfect agreement, 0 what chance gives, below 0 systematic disagreement. None when no item has
    two ratings, or every rating is the same label (agreement is then undefined, not perfect).
    """
    rated = {item: r for item, r in ratings.items() if len(r) >= 2}
    labels = sorted({label for r in rated.values() for label in r.values()})
    if not rated or len(labels) < 2:
        return None
    raters = sorted({rater for r in rated.values() for rater in r})
    code = {label: i for i, label in enumerate(labels)}
    data = np.full((len(raters), len(rated)), np.nan)  # (raters, items), nan where a rater did not rate
    for j, item_ratings in enumerate(rated.values()):
        for rater, label in item_ratings.items():
            data[raters.index(rater), j] = code[label]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
