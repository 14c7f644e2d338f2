"""Reads for spectra and catalog labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet

from kb.agreement import krippendorff_alpha, most_proposed, vote_fractions
from kb.composition import compose
from kb.examples import Example
from kb.labellings import CATALOG, OTHER, Labelled, label_spectrum, labelling_labels, own_lines_label
from kb.models import (
    EXCLUDE,
    AuditEvent,
    CatalogLabel,
    Correction,
    Flag,
    IngestRun,
    KBEntry,
    KnowledgeBase,
    SearchTask,
    Spectrum,
    TaskExample,
)
from kb.preprocess import PAPER, wave_grid
from kb.reserves import RESERVES, TEST, TRAIN, VALIDATION
from kb.roles import REVIEW
from kb.sky import match_by_position, separation_arcsec
from kb.store import SpectrumStore


def spectrum_store() -> SpectrumStore:
    """The store of preprocessed flux, shared by every process of this deployment."""
    return SpectrumStore(settings.DATA_DIR / "spectra", n_pixels=PAPER.n_pixels)


def spectrum_list(*, label: str | None = None) -> QuerySet[Spectrum]:
    spectra = Spectrum.objects.prefetch_related("catalog_labels")
    if label:
        spectra = spectra.filter(catalog_labels__label=label).distinct()
    return spectra


def spectrum_find(*, query: str) -> Spectrum:
    """An ingested spectrum by specobjid or PLATE-MJD-FIBER; ValueError saying what was looked for."""
    parts = query.strip().split("-")
    try:
        if len(parts) == 3:
            plate, mjd, fiber = (int(p) for p in parts)
            return Spectrum.objects.get(plate=plate, mjd=mjd, fiberid=fiber)
        if query.strip().isdigit():
            return Spectrum.objects.get(specobjid=query.strip())
    except (ValueError, Spectrum.DoesNotExist):
        pass
    raise ValueError(f"no ingested spectrum has the specobjid or PLATE-MJD-FIBER {query.strip()!r}")


def spectra_within(*, ra: float, dec: float, radius_arcsec: float, spectra=None) -> QuerySet[Spectrum]:
    """The spectra (of ``spectra``, default all) within ``radius_arcsec`` of (ra, dec), degrees J2000: a box
    on the indexed position, then the exact separation."""
    radius = radius_arcsec / 3600.0  # degrees
    spectra = Spectrum.objects.all() if spectra is None else spectra
    near = spectra.filter(dec__gte=dec - radius, dec__lte=dec + radius).exclude(ra=None)
    if abs(dec) + radius < 90.0:  # a box in RA, which may wrap through 0 (none if the circle holds a pole)
        ra_half_width = np.degrees(np.arcsin(min(1.0, np.sin(np.radians(radius)) / np.cos(np.radians(dec)))))
        lo, hi = (ra - ra_half_width) % 360.0, (ra + ra_half_width) % 360.0
        near = near.filter(ra__gte=lo, ra__lte=hi) if lo <= hi else near.filter(Q(ra__gte=lo) | Q(ra__lte=hi))
    boxed = list(near.values_list("pk", "ra", "dec"))
    if not boxed:
        return near.none()
    pks, ras, decs = zip(*boxed)
    inside = separation_arcsec(ra, dec, ras, decs) <= radius_arcsec
    return near.filter(pk__in=[pk for pk, keep in zip(pks, np.atleast_1d(inside)) if keep])


def spectrum_near(*, ra: float, dec: float, radius_arcsec: float = 3.0) -> Spectrum:
    """The ingested spectrum nearest to (ra, dec), degrees J2000, within ``radius_arcsec``; ValueError if none."""
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise ValueError(f"RA must be in [0, 360) and Dec in [-90, 90] degrees, got RA {ra}, Dec {dec}")
    if not 0.0 < radius_arcsec <= 3600.0:
        raise ValueError(f"the search radius must be between 0 and 3600 arcsec, got {radius_arcsec}")
    candidates = list(spectra_within(ra=ra, dec=dec, radius_arcsec=radius_arcsec))
    if candidates:
        separation = separation_arcsec(ra, dec, [c.ra for c in candidates], [c.dec for c in candidates])
        best = int(np.argmin(separation))
        if separation[best] <= radius_arcsec:
            return candidates[best]
    raise ValueError(f"no ingested spectrum within {radius_arcsec:g} arcsec of RA {ra:.6f}, Dec {dec:.6f}")


def spectrum_lookup(
    *, identifier: str = "", ra: float | None = None, dec: float | None = None, radius_arcsec: float = 3.0
) -> Spectrum:
    """An ingested spectrum by specobjid, PLATE-MJD-FIBER, or position: exactly one of the two ways."""
    by_position = ra is not None or dec is not None
    if identifier and by_position:
        raise ValueError("give either an identifier or a position (RA and Dec), not both")
    if by_position:
        if ra is None or dec is None:
            raise ValueError("a position needs both RA and Dec, in degrees")
        return spectrum_near(ra=ra, dec=dec, radius_arcsec=radius_arcsec)
    if not identifier:
        raise ValueError("give a specobjid, a PLATE-MJD-FIBER, or an RA and Dec")
    return spectrum_find(query=identifier)


def reserve_filter(reserve: str, prefix: str = "") -> Q:
    """The spectra of one reserve (kb.reserves.reserve): TRAIN, VALIDATION or TEST; ``prefix`` reaches
    them through a relation, e.g. "spectrum__"."""
    if reserve not in RESERVES:
        raise ValueError(f"unknown reserve {reserve!r}; choose one of {', '.join(RESERVES)}")
    return Q(**{f"{prefix}held_out": reserve == TEST, f"{prefix}validation": reserve == VALIDATION})


def spectrum_reserve_rows(reserve: str = TRAIN) -> np.ndarray:
    """(n,) int64 store rows of one reserve's spectra, in store order: TRAIN is what pre-training may
    learn from, VALIDATION what it is judged on."""
    rows = Spectrum.objects.filter(reserve_filter(reserve)).order_by("store_row").values_list("store_row", flat=True)
    return np.fromiter(rows, dtype=np.int64)


def spectrum_store_rows(ids) -> dict[int, int]:
    """Spectrum id -> its store row, for any number of ``ids`` (queried in chunks)."""
    rows = {}
    for chunk in _chunks(list(ids)):
        rows.update(Spectrum.objects.filter(pk__in=chunk).values_list("pk", "store_row"))
    return rows


def spectrum_ids_by_specobjid(specobjids) -> dict[str, int]:
    """specobjid -> spectrum id, for any number of ``specobjids`` (queried in chunks); unknown ones left out."""
    found = {}
    for chunk in _chunks(list(specobjids)):
        found.update(Spectrum.objects.filter(specobjid__in=chunk).values_list("specobjid", "pk"))
    return found


def spectra_of_reserve(ids, reserve: str) -> set[int]:
    """Which of any number of spectrum ``ids`` belong to ``reserve`` (queried in chunks)."""
    found = set()
    for chunk in _chunks(list(ids)):
        found.update(Spectrum.objects.filter(reserve_filter(reserve), pk__in=chunk).values_list("pk", flat=True))
    return found


def store_rows_recorded() -> int:
    """How many leading store rows the database records spectra up to: rows past them belong to an ingest
    still under way (appended, not yet recorded), or to one that died and whose rows the next reuses."""
    last = Spectrum.objects.aggregate(Max("store_row"))["store_row__max"]
    return 0 if last is None else last + 1


def spectrum_redshifts(first: int, stop: int) -> np.ndarray:
    """(stop - first,) float32: the redshift of the spectrum in each store row from ``first`` up to ``stop``,
    NaN for a row no spectrum holds."""
    z = np.full(stop - first, np.nan, dtype=np.float32)
    found = Spectrum.objects.filter(store_row__gte=first, store_row__lt=stop).values_list("store_row", "z")
    rows = np.array(found, dtype=np.float64).reshape(-1, 2)
    z[rows[:, 0].astype(np.int64) - first] = rows[:, 1]
    return z


def spectrum_get(*, pk: int) -> Spectrum:
    return Spectrum.objects.prefetch_related("catalog_labels").get(pk=pk)


def spectrum_flux(*, spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wave_grid() (3688,) Angstrom observed, normalised flux (3688,) and valid (3688,) of one spectrum."""
    flux, valid = spectrum_store().read()
    return wave_grid(PAPER), np.array(flux[spectrum.store_row]), np.array(valid[spectrum.store_row])


def label_counts() -> list[dict]:
    """[{'catalog': ..., 'label': ..., 'n': ...}] over every catalog label."""
    return list(CatalogLabel.objects.values("catalog", "label").annotate(n=Count("id")).order_by("catalog", "-n"))


def last_ingest() -> IngestRun | None:
    return IngestRun.objects.first()


def bpt_labels() -> dict[int, str]:
    """Spectrum id -> five-class BPT label, only where galSpecExtra and emissionLinesPort agree."""
    return {pk: labelled.label for pk, labelled in task_labels(labelling="bpt5").items()}


def catalog_labels_by_spectrum(
    *, reserve: str | None = None, spectra: list[int] | None = None
) -> dict[int, dict[str, tuple[str, str]]]:
    """Spectrum id -> {catalog: (value, label)}, for the spectra of one reserve (None: all), or only of
    ``spectra`` (ids, any number)."""
    rows = CatalogLabel.objects.all()
    if reserve is not None:
        rows = rows.filter(reserve_filter(reserve, "spectrum__"))
    chunks = [rows] if spectra is None else [rows.filter(spectrum_id__in=chunk) for chunk in _chunks(list(spectra))]
    by_spectrum: dict[int, dict[str, tuple[str, str]]] = {}
    for chunk in chunks:
        for spectrum_id, catalog, value, label in chunk.values_list("spectrum_id", "catalog", "value", "label"):
            by_spectrum.setdefault(spectrum_id, {})[catalog] = (value, label)
    return by_spectrum


def task_labels(*, labelling: str, reserve: str | None = None, spectra: list[int] | None = None) -> dict[int, Labelled]:
    """Spectrum id -> what ``labelling`` makes of it, for every spectrum of ``reserve`` (None: all), or of
    ``spectra``, it labels."""
    labels = {}
    for spectrum_id, catalog_labels in catalog_labels_by_spectrum(reserve=reserve, spectra=spectra).items():
        labelled = label_spectrum(labelling, catalog_labels)
        if labelled is not None:
            labels[spectrum_id] = labelled
    return labels


def search_task_get(*, name: str) -> SearchTask:
    try:
        return SearchTask.objects.get(name=name)
    except SearchTask.DoesNotExist:
        known = ", ".join(SearchTask.objects.values_list("name", flat=True)) or "none (run migrate)"
        raise ValueError(f"no search task {name!r}; the tasks are: {known}") from None


def knowledge_base_in_service(*, task: SearchTask) -> KnowledgeBase:
    kb = KnowledgeBase.objects.select_related("task", "training_run").filter(task=task, in_service=True).first()
    if kb is None:
        raise ValueError(
            f"task {task.name!r} has no knowledge base in service: build one with "
            f"`manage.py build_kb --task {task.name}`"
        )
    return kb


def knowledge_base_entries(*, knowledge_base: KnowledgeBase) -> QuerySet[KBEntry]:
    return knowledge_base.entries.select_related("spectrum")


def search_task_list(*, user=None) -> list[SearchTask]:
    """Every task ``user`` may see (``search_tasks_visible``), each with ``in_service``: its knowledge base
    in service, or None."""
    in_service = {kb.task_id: kb for kb in KnowledgeBase.objects.filter(in_service=True).select_related("training_run")}
    tasks = list(search_tasks_visible(user=user))
    for task in tasks:
        task.in_service = in_service.get(task.pk)
    return tasks


def knowledge_base_list(*, task: SearchTask) -> list[KnowledgeBase]:
    return list(KnowledgeBase.objects.filter(task=task).select_related("task", "training_run").order_by("-version"))


def kb_entry_list(*, in_service_only: bool = True, user=None) -> QuerySet[KBEntry]:
    """Entries of the knowledge bases (in service, or all) of the tasks ``user`` may see."""
    entries = KBEntry.objects.filter(knowledge_base__task__in=search_tasks_visible(user=user))
    entries = entries.select_related("spectrum", "knowledge_base__task").order_by(
        "knowledge_base__task__name", "label", "spectrum__plate", "spectrum__mjd", "spectrum__fiberid"
    )
    return entries.filter(knowledge_base__in_service=True) if in_service_only else entries


def spectrum_task_label(*, task: SearchTask, spectrum: Spectrum) -> str | None:
    """The spectrum's label in the task now: its active correction's, else its entry's in the newest
    version holding it; None if no version of the task's knowledge base holds it."""
    correction = Correction.objects.filter(task=task, spectrum=spectrum, active=True).first()
    if correction is not None:
        return correction.corrected_label
    entry = (
        KBEntry.objects.filter(knowledge_base__task=task, spectrum=spectrum)
        .order_by("-knowledge_base__version")
        .first()
    )
    return entry.label if entry else None


def task_labelled(
    *, task: SearchTask, reserve: str | None = None, spectra: list[int] | None = None
) -> dict[int, Labelled]:
    """Spectrum id -> the label the task gives it, for every spectrum of ``reserve`` (None: all), or of
    ``spectra``, it labels: by its labelling for a shipped task; for a task made from a catalog, the
    catalog's examples with their labels and every other spectrum as OTHER (an unlabelled galaxy)."""
    if task.labelling != CATALOG:
        return task_labels(labelling=task.labelling, reserve=reserve, spectra=spectra)
    chosen = Spectrum.objects.all() if reserve is None else Spectrum.objects.filter(reserve_filter(reserve))
    chunks = [chosen] if spectra is None else [chosen.filter(pk__in=chunk) for chunk in _chunks(list(spectra))]
    ids = {pk for chunk in chunks for pk in chunk.values_list("pk", flat=True)}
    labelled = {pk: Labelled(OTHER, ("survey",)) for pk in ids}
    examples = TaskExample.objects.filter(task=task).values_list("spectrum_id", "label", "row")
    for spectrum_id, label, row in examples.iterator():
        if spectrum_id in labelled:
            labelled[spectrum_id] = Labelled(label, (f"catalog of {task.name}",), {"row": row})
    return labelled


def task_label_choices(*, task: SearchTask) -> tuple[str, ...]:
    """Every label the task may give an entry: what a curator chooses from."""
    if task.labelling != CATALOG:
        return labelling_labels(task.labelling)
    given = TaskExample.objects.filter(task=task).values_list("label", flat=True).distinct()
    return tuple(dict.fromkeys([*task.target_labels, *sorted(given), OTHER]))


def search_tasks_visible(*, user) -> QuerySet[SearchTask]:
    """The tasks ``user`` may search with and see: the published ones, their own, and every one for a
    curator (who decides what is published)."""
    if user is not None and user.is_authenticated and user.has_perm(REVIEW):
        return SearchTask.objects.all()
    if user is not None and user.is_authenticated:
        return SearchTask.objects.filter(Q(published=True) | Q(owner=user))
    return SearchTask.objects.filter(published=True)


CHUNK = 500  # values per IN (...) clause: under every database's limit on query parameters


def examples_match(
    examples: list[Example], *, radius_arcsec: float = 2.0
) -> tuple[list[tuple[Example, int, float | None]], list[tuple[Example, str]]]:
    """The ingested spectrum each example names: (matched [(example, spectrum id, separation in arcsec or
    None)], unmatched [(example, why)]); by specobjid, PLATE-MJD-FIBER, or the nearest within
    ``radius_arcsec`` of its position."""
    ids = sorted({e.value for e in examples if e.key == "specobjid"})
    by_id = {}
    for chunk in _chunks(ids):
        by_id.update(Spectrum.objects.filter(specobjid__in=chunk).values_list("specobjid", "pk"))
    plate_keys = {e.value: _plate_key(e.value) for e in examples if e.key == "plate_mjd_fiber"}
    by_plate = {}
    for chunk in _chunks(sorted({key[0] for key in plate_keys.values() if key})):
        rows = Spectrum.objects.filter(plate__in=chunk).values_list("plate", "mjd", "fiberid", "pk")
        by_plate.update({(plate, mjd, fiber): pk for plate, mjd, fiber, pk in rows})
    placed = [e for e in examples if e.key == "position"]
    near = {}
    positioned = (
        list(Spectrum.objects.exclude(ra=None).exclude(dec=None).values_list("pk", "ra", "dec")) if placed else []
    )
    if positioned:
        pk, ra, dec = (np.array(column) for column in zip(*positioned))
        cat_ra, cat_dec = (np.array([e.value[i] for e in placed], dtype=float) for i in (0, 1))
        found = match_by_position(cat_ra, cat_dec, ra, dec, radius_arcsec=radius_arcsec)
        hit = found >= 0
        separation = separation_arcsec(cat_ra[hit], cat_dec[hit], ra[found[hit]], dec[found[hit]])
        for i, arcsec in zip(np.flatnonzero(hit), separation):
            near[placed[i].row] = (int(pk[found[i]]), float(arcsec))
    matched, unmatched = [], []
    for e in examples:
        if e.key == "specobjid":
            hit = (by_id[e.value], None) if e.value in by_id else None
        elif e.key == "plate_mjd_fiber":
            key = plate_keys[e.value]
            hit = (by_plate[key], None) if key in by_plate else None
        else:
            hit = near.get(e.row)
        if hit is not None:
            matched.append((e, *hit))
        elif e.key == "position":
            unmatched.append((e, f"no ingested spectrum within {radius_arcsec:g} arcsec"))
        elif e.key == "plate_mjd_fiber" and plate_keys[e.value] is None:
            unmatched.append((e, f"{e.value!r} is not PLATE-MJD-FIBER: three whole numbers joined by '-'"))
        else:
            unmatched.append((e, f"no ingested spectrum has the {e.key} {e.value}"))
    return matched, unmatched


def _plate_key(value: str) -> tuple[int, int, int] | None:
    parts = value.split("-")
    whole = len(parts) == 3 and all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts)  # fits the columns
    return tuple(int(part) for part in parts) if whole else None


def _chunks(values: list) -> list[list]:
    return [values[start : start + CHUNK] for start in range(0, len(values), CHUNK)]


def flags_proposed(*, task: SearchTask, spectrum: Spectrum) -> str | None:
    """The label most of an entry's open flags propose (the first proposed among equals): what a curator
    accepting them corrects it to unless they choose otherwise. None if no flag is open."""
    open_flags = Flag.objects.filter(task=task, spectrum=spectrum, status=Flag.Status.OPEN).order_by("created_at")
    return most_proposed(list(open_flags.values_list("proposed_label", flat=True)))


def task_corrections(*, task: SearchTask) -> dict[int, Correction]:
    """Spectrum id -> the active correction, for every corrected entry of the task."""
    return {c.spectrum_id: c for c in Correction.objects.filter(task=task, active=True)}


def task_labels_corrected(*, task: SearchTask) -> dict[int, Labelled]:
    """The task's labelled spectra of the training reserve (neither test nor validation), with the curators'
    and consensus corrections applied: relabelled, or left out. What its knowledge bases are drawn from."""
    labelled = task_labelled(task=task, reserve=TRAIN)
    for spectrum_id, correction in task_corrections(task=task).items():
        if correction.corrected_label == EXCLUDE:
            labelled.pop(spectrum_id, None)
        elif spectrum_id in labelled:
            labelled[spectrum_id] = Labelled(
                correction.corrected_label,
                ("curation",),
                {"corrected_from": correction.label, "correction": correction.pk, "rule": correction.rule},
            )
    return labelled


def knowledge_base_entries_choose(
    *, task: SearchTask, size: int | None, target_fraction: float | None, seed: int
) -> tuple[dict[int, Labelled], list[int]]:
    """The entries a new version of ``task``'s knowledge base would have: (``task_labels_corrected``, the
    chosen spectrum ids), sampled by ``kb.composition.compose``. ValueError, with the counts available,
    when the labelled spectra cannot make that composition."""
    labelled = task_labels_corrected(task=task)
    chosen = compose(
        {pk: item.label for pk, item in labelled.items()},
        targets=tuple(task.target_labels),
        size=size,
        target_fraction=target_fraction,
        seed=seed,
    )
    return labelled, chosen


@dataclass
class CurationItem:
    """One flagged entry waiting for a curator: its open flags and what they propose."""

    task: SearchTask
    spectrum: Spectrum
    label: str  # its label now
    flags: list[Flag]
    fractions: dict[str, float]  # proposed label -> share of the open flags
    own_lines: str | None  # the BPT class its own line fluxes give (BPT tasks), for comparison

    @property
    def flaggers(self) -> int:
        return len({flag.raised_by_id for flag in self.flags})

    @property
    def evidence(self) -> float:
        """Weight of evidence that the label is wrong, before the neighbours are asked: the people
        flagging times how far they agree, plus one if the spectrum's own lines disagree with its label."""
        agreement = max(self.fractions.values(), default=0.0)
        return self.flaggers * agreement + (1.0 if self.own_lines not in (None, self.label) else 0.0)


def curation_items(*, task: SearchTask | None = None) -> list[CurationItem]:
    """Every entry with open flags (of one task, or all), most evidence first."""
    flags = (
        Flag.objects.filter(status=Flag.Status.OPEN)
        .select_related("task", "spectrum", "raised_by")
        .order_by("created_at")
    )
    if task is not None:
        flags = flags.filter(task=task)
    grouped: dict[tuple[int, int], list[Flag]] = {}
    for flag in flags:
        grouped.setdefault((flag.task_id, flag.spectrum_id), []).append(flag)
    items = []
    for group in grouped.values():
        first = group[0]
        label = spectrum_task_label(task=first.task, spectrum=first.spectrum) or first.label
        own = own_lines_label(first.task.labelling, first.spectrum.lines)
        items.append(
            CurationItem(
                task=first.task,
                spectrum=first.spectrum,
                label=label,
                flags=group,
                fractions=vote_fractions({f.raised_by_id: f.proposed_label for f in group}),
                own_lines=own,
            )
        )
    return sorted(items, key=lambda item: (-item.evidence, item.flags[0].created_at))


def agreement_report(*, task: SearchTask | None = None, user=None) -> dict:
    """How far people agree on flagged entries: per entry, each label's share of the ratings (each
    flagger's latest proposal, and each curator's decision: the accepted label, or the label kept when
    they rejected), and Krippendorff's alpha over entries rated by two or more people."""
    flags = Flag.objects.exclude(status=Flag.Status.WITHDRAWN).filter(task__in=search_tasks_visible(user=user))
    flags = flags.select_related("task", "spectrum", "raised_by", "closed_by")
    if task is not None:
        flags = flags.filter(task=task)
    ratings: dict[tuple[int, int], dict[str, str]] = {}
    decisions: dict[tuple[int, int], dict[str, str]] = {}
    names: dict[tuple[int, int], tuple[str, str]] = {}
    for flag in flags.order_by("created_at"):
        key = (flag.task_id, flag.spectrum_id)
        names[key] = (flag.task.name, flag.spectrum.plate_mjd_fiber)
        ratings.setdefault(key, {})[flag.raised_by.username] = flag.proposed_label
        if flag.closed_by is not None and flag.closed_by_id != flag.raised_by_id:  # a curator's decision
            decided = decisions.setdefault(key, {})
            if flag.status == Flag.Status.ACCEPTED:
                decided[flag.closed_by.username] = flag.proposed_label
            else:
                decided.setdefault(flag.closed_by.username, flag.label)  # rejected: the label kept
    for key, decided in decisions.items():
        ratings[key].update(decided)
    entries = [
        {
            "task": names[key][0],
            "spectrum_id": key[1],
            "plate_mjd_fiber": names[key][1],
            "raters": len(r),
            "fractions": vote_fractions(r),
        }
        for key, r in ratings.items()
    ]
    return {
        "entries": entries,
        "krippendorff_alpha": krippendorff_alpha(ratings),
        "entries_rated_twice": sum(len(r) >= 2 for r in ratings.values()),
    }


def audit_list(
    *, task: SearchTask | None = None, spectrum: Spectrum | None = None, action: str = "", user=None
) -> QuerySet[AuditEvent]:
    """Audit events, newest first; with ``user``, only those of no task or of a task they may see."""
    events = AuditEvent.objects.select_related("actor", "task", "spectrum")
    if user is not None:
        events = events.filter(Q(task__isnull=True) | Q(task__in=search_tasks_visible(user=user)))
    if task is not None:
        events = events.filter(task=task)
    if spectrum is not None:
        events = events.filter(spectrum=spectrum)
    return events.filter(action=action) if action else events


def flag_list(*, user, task: str = "", status: str = "") -> QuerySet[Flag]:
    """A person's flags; everyone's for a curator."""
    flags = Flag.objects.select_related("task", "spectrum", "raised_by", "closed_by")
    if not user.has_perm("kb.review_flag"):
        flags = flags.filter(raised_by=user)
    if task:
        flags = flags.filter(task__name=task)
    return flags.filter(status=status) if status else flags
