"""Labellings and the shipped search tasks.

A search task is a knowledge-base configuration, not a model (paper section 4.2): which labels its
entries carry, which of them are targets, and in what proportion. Its labelling says what the catalog
labels of one spectrum make of it. Each labelling is one ``Labelling`` in LABELLINGS, which everything
else reads: the catalogs it draws on (keys of ``kb.catalogs.CATALOG_SOURCES``), every label it can give,
how one spectrum is labelled, and the label the spectrum's own SPZLINE lines give, where there is one,
shown beside the catalogs' as a check. Adding a search task from a published catalog is a reader in
``kb.catalogs``, a labelling and a task here; nothing else changes, and no migration (shipped tasks are
synced after every ``migrate``).

Labellings:
- ``bpt5``: the five-class BPT label where MPA-JHU galSpecExtra and Portsmouth emissionLinesPort agree
  (``kb.bpt.bpt_consensus``); ``bpt3`` the paper's three classes from it.
- ``lens``: 'lens' for an eBOSS strong-lens candidate (Talbot et al. 2021); 'other' for a spectrum with a
  consistent BPT label and no lens label.
- ``outlier``: 'outlier' for a Baron & Poznanski (2017) outlier (its kind kept as provenance); 'other'
  as for lenses.
- ``eplusa``: 'e+a' for a Goto (2007) E+A galaxy; 'other' as for lenses.
A spectrum the labelling says nothing of (no consistent label) is not eligible for that task.

Pure Python; never imports Django.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kb.bpt import FIVE_CLASSES, THREE_CLASSES, bpt_class_from_lines, bpt_consensus, bpt_three_class

OTHER = "other"
CATALOG = "catalog"  # the labelling of a task made from an astronomer's own catalog (kb.models.TaskExample)
BPT_CATALOGS = ("galspecextra", "emissionlinesport")

CatalogLabels = dict[str, tuple[str, str]]  # {catalog key: (the catalog's value, its normalised label)}


@dataclass(frozen=True)
class Labelled:
    """What one labelling makes of one spectrum: its label and where the label came from."""

    label: str
    catalogs: tuple[str, ...]  # the catalogs the label came from
    details: dict = field(default_factory=dict)  # e.g. the outlier kind


@dataclass(frozen=True)
class Labelling:
    """One source of labels: what a spectrum's catalog labels make of it."""

    name: str
    catalogs: tuple[str, ...]  # the catalogs it reads (kb.catalogs.CATALOG_SOURCES keys)
    labels: tuple[str, ...]  # every label it can give: what a curator chooses from
    label: Callable[[CatalogLabels], Labelled | None]  # one spectrum's label, or None: not eligible
    own_lines: Callable[[dict], str] | None = None  # the label its own SPZLINE lines give ({name: {flux, ...}})
    background_lines: bool = False  # its targets show a second galaxy's lines (lenses): answers scan for them
    weirdness: bool = False  # its targets are the unusual (outliers): answers say how far from ordinary entries


def _bpt(catalog_labels: CatalogLabels) -> str | None:
    """The five-class label both BPT catalogs agree on; a value neither publishes counts as none."""
    values = {catalog: value for catalog, (value, _) in catalog_labels.items()}
    try:
        return bpt_consensus(values.get("galspecextra"), values.get("emissionlinesport"))
    except ValueError:
        return None


def _bpt5(catalog_labels: CatalogLabels) -> Labelled | None:
    bpt = _bpt(catalog_labels)
    return None if bpt is None else Labelled(bpt, BPT_CATALOGS)


def _bpt3(catalog_labels: CatalogLabels) -> Labelled | None:
    bpt = _bpt(catalog_labels)
    return None if bpt is None else Labelled(bpt_three_class(bpt), BPT_CATALOGS, {"bpt5": bpt})


def rare_among_galaxies(
    target: str, catalog: str, details: Callable[[str, str], dict]
) -> Callable[[CatalogLabels], Labelled | None]:
    """A labelling for a rare kind one catalog lists: ``target`` for a spectrum in ``catalog`` (with
    ``details(value, label)`` as provenance), OTHER for one with a consistent BPT label and not in it."""

    def label(catalog_labels: CatalogLabels) -> Labelled | None:
        if catalog in catalog_labels:
            return Labelled(target, (catalog,), details(*catalog_labels[catalog]))
        bpt = _bpt(catalog_labels)
        return None if bpt is None else Labelled(OTHER, BPT_CATALOGS, {"bpt5": bpt})

    return label


LABELLINGS: dict[str, Labelling] = {
    labelling.name: labelling
    for labelling in (
        Labelling("bpt5", BPT_CATALOGS, FIVE_CLASSES, _bpt5, bpt_class_from_lines),
        Labelling(
            "bpt3", BPT_CATALOGS, THREE_CLASSES, _bpt3, lambda lines: bpt_three_class(bpt_class_from_lines(lines))
        ),
        Labelling(
            "lens",
            ("talbot2021", *BPT_CATALOGS),
            ("lens", OTHER),
            rare_among_galaxies("lens", "talbot2021", lambda value, label: {"grading": value}),
            background_lines=True,
        ),
        Labelling(
            "outlier",
            ("baron2017", *BPT_CATALOGS),
            ("outlier", OTHER),
            rare_among_galaxies("outlier", "baron2017", lambda value, label: {"kind": label}),
            weirdness=True,
        ),
        Labelling(
            "eplusa",
            ("goto2007", *BPT_CATALOGS),
            ("e+a", OTHER),
            rare_among_galaxies("e+a", "goto2007", lambda value, label: {"hdelta_ew": value}),
        ),
    )
}


def labelling_get(name: str) -> Labelling:
    try:
        return LABELLINGS[name]
    except KeyError:
        raise ValueError(f"unknown labelling {name!r}; choose one of {', '.join(LABELLINGS)}") from None


def labelling_labels(labelling: str) -> tuple[str, ...]:
    """Every label ``labelling`` can give: what a curator may choose from."""
    return labelling_get(labelling).labels


def label_spectrum(labelling: str, catalog_labels: CatalogLabels) -> Labelled | None:
    """The label ``labelling`` gives a spectrum with ``catalog_labels`` {catalog: (value, label)}, or None."""
    return labelling_get(labelling).label(catalog_labels)


def own_lines_label(labelling: str, lines: dict) -> str | None:
    """The label a spectrum's own SPZLINE ``lines`` give under ``labelling``, or None where it has no such
    check (lenses, outliers, E+A galaxies and catalog tasks are not told by the BPT lines)."""
    found = LABELLINGS.get(labelling)
    return found.own_lines(lines) if found is not None and found.own_lines is not None else None


# --- the shipped tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    title: str
    labelling: str  # a LABELLINGS key
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
        TaskDefinition(
            "eplusa",
            "E+A (post-starburst) search",
            "eplusa",
            ("e+a",),
            "Finds E+A galaxies, whose star formation stopped within the last billion years: strong Balmer "
            "absorption of A stars and no emission (Goto 2007's catalog, H-delta EW > 5 Angstrom), among "
            "galaxies with consistent BPT labels.",
        ),
    )
}
