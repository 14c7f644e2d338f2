"""Search tasks, the labels they give spectra, the held-out test reservation, and KB composition.

A search task is a knowledge-base configuration, not a model (paper section 4.2): which catalog labels
its entries carry, which of them are targets, and in what proportion. Retasking is building another
knowledge base over the same embeddings.

Labellings (what a spectrum's catalog labels make of it, for one task):
- ``bpt5``: the five-class BPT label where MPA-JHU galSpecExtra and Portsmouth emissionLinesPort agree
  (``kb.bpt.bpt_consensus``); ``bpt3`` the paper's three classes from it.
- ``lens``: 'lens' for an eBOSS strong-lens candidate (Talbot et al. 2021); 'other' for a spectrum with a
  consistent BPT label and no lens label.
- ``outlier``: 'outlier' for a Baron & Poznanski (2017) outlier (its kind kept as provenance); 'other'
  as for lenses.
A spectrum the labelling says nothing of (no consistent label) is not eligible for that task.

Pure Python; never imports Django.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from kb.bpt import FIVE_CLASSES, THREE_CLASSES, bpt_consensus, bpt_three_class

TEST_FRACTION = 0.2  # share of spectra reserved for testing, by a hash of the specobjid (never changes)
VALIDATION_FRACTION = 0.1  # share reserved for every choice (checkpoint, pooling, K, ...), disjoint from it
TRAIN, VALIDATION, TEST = "train", "validation", "test"
RESERVES = (TRAIN, VALIDATION, TEST)
BPT_CATALOGS = ("galspecextra", "emissionlinesport")
OTHER = "other"
VOTERS = 3  # entries, and targets, a knowledge base needs at least for the default K = 3 vote
CATALOG = "catalog"  # the labelling of a task made from an astronomer's own catalog (kb.models.TaskExample)


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    title: str
    labelling: str  # bpt5 | bpt3 | lens | outlier
    target_labels: tuple[str, ...]  # labels that count as found; empty for a classification task
    description: str


TASKS = {
    t.name: t
    for t in (
        TaskDefinition(
            "bpt3",
            "BPT classification, three classes",
            "bpt3",
            (),
            "Star-forming / AGN (Seyfert, LINER and composite) / normal, from the BPT class both "
            "emission-line catalogs agree on (paper section 4.1, Table 2).",
        ),
        TaskDefinition(
            "bpt5",
            "BPT classification, five classes",
            "bpt5",
            (),
            "Star-forming / composite / Seyfert / LINER / normal, where both emission-line catalogs agree.",
        ),
        TaskDefinition(
            "liner",
            "LINER search",
            "bpt5",
            ("liner",),
            "Finds LINERs: a five-class BPT knowledge base whose vote is a LINER (paper Table 4).",
        ),
        TaskDefinition(
            "lens",
            "Strong-lens search",
            "lens",
            ("lens",),
            "Finds eBOSS strong gravitational lens candidates (Talbot et al. 2021) among galaxies "
            "with consistent BPT labels (paper Table 4, Figure 4).",
        ),
        TaskDefinition(
            "outlier",
            "Outlier search",
            "outlier",
            ("outlier",),
            "Finds the kinds of outlier Baron & Poznanski (2017) catalogued among galaxies with "
            "consistent BPT labels (paper Table 4, appendix B.1).",
        ),
    )
}
LABELLINGS = ("bpt5", "bpt3", "lens", "outlier")


def labelling_labels(labelling: str) -> tuple[str, ...]:
    """Every label ``labelling`` can give: what a curator may choose from."""
    return {"bpt5": FIVE_CLASSES, "bpt3": THREE_CLASSES, "lens": ("lens", OTHER), "outlier": ("outlier", OTHER)}[
        labelling
    ]


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


@dataclass(frozen=True)
class Labelled:
    """What one labelling makes of one spectrum: its label and where the label came from."""

    label: str
    catalogs: tuple[str, ...]  # the catalogs the label came from
    details: dict = field(default_factory=dict)  # e.g. the outlier kind


def label_spectrum(labelling: str, catalog_labels: dict[str, tuple[str, str]]) -> Labelled | None:
    """The label ``labelling`` gives a spectrum with ``catalog_labels`` {catalog: (value, label)}, or None.

    A value neither BPT catalog publishes is treated as no label (the consensus raises on it).
    """
    if labelling not in LABELLINGS:
        raise ValueError(f"unknown labelling {labelling!r}; choose one of {', '.join(LABELLINGS)}")
    values = {catalog: value for catalog, (value, _) in catalog_labels.items()}
    try:
        bpt = bpt_consensus(values.get("galspecextra"), values.get("emissionlinesport"))
    except ValueError:
        bpt = None
    if labelling == "lens" and "talbot2021" in catalog_labels:
        value, _ = catalog_labels["talbot2021"]
        return Labelled("lens", ("talbot2021",), {"grading": value})
    if labelling == "outlier" and "baron2017" in catalog_labels:
        _, kind = catalog_labels["baron2017"]
        return Labelled("outlier", ("baron2017",), {"kind": kind})
    if bpt is None:
        return None
    if labelling == "bpt5":
        return Labelled(bpt, BPT_CATALOGS)
    if labelling == "bpt3":
        return Labelled(bpt_three_class(bpt), BPT_CATALOGS, {"bpt5": bpt})
    return Labelled(OTHER, BPT_CATALOGS, {"bpt5": bpt})


def compose(
    candidates: dict[int, str], *, targets: tuple[str, ...], size: int | None, target_fraction: float | None, seed: int
) -> list[int]:
    """Choose the keys of a knowledge base from ``candidates`` {key: label}: deterministic for a seed.

    With no ``target_fraction`` the entries are a uniform sample (the labels in their natural
    proportions); with one, ``round(size * target_fraction)`` of them carry a target label. ``size``
    None takes as many as the proportion allows. Raises ValueError, with the counts available, when
    the candidates cannot make such a knowledge base.
    """
    rng = np.random.default_rng(seed)
    keys = sorted(candidates)
    if size is not None and size < 1:
        raise ValueError("a knowledge base needs at least one entry (--size)")
    if target_fraction is None:
        size = len(keys) if size is None else size
        if size > len(keys):
            raise ValueError(f"asked for {size} entries but only {len(keys)} labelled spectra are eligible")
        return sorted(rng.choice(keys, size, replace=False).tolist()) if keys else []
    if not targets:
        raise ValueError("this task has no target label: a target fraction applies to search tasks only")
    if not 0 < target_fraction < 1:
        raise ValueError(f"the target fraction must be between 0 and 1 (exclusive), got {target_fraction}")
    hits = [key for key in keys if candidates[key] in targets]
    rest = [key for key in keys if candidates[key] not in targets]
    if size is None:
        size = int(min(len(hits) / target_fraction, len(rest) / (1 - target_fraction)))
    n_hits = round(size * target_fraction)
    if n_hits > len(hits) or size - n_hits > len(rest) or size < 1:
        raise ValueError(
            f"{size} entries with a target fraction of {target_fraction} need {n_hits} targets and "
            f"{size - n_hits} others; {len(hits)} targets and {len(rest)} others are eligible"
        )
    chosen = rng.choice(hits, n_hits, replace=False).tolist() + rng.choice(rest, size - n_hits, replace=False).tolist()
    return sorted(chosen)
