"""Search tasks of an astronomer's own: made from a catalog of examples they upload, private to them until
a curator publishes them. Retasking without retraining, for a population GalSpec did not foresee."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from kb.catalogs import CATALOG_SOURCES
from kb.composition import VOTERS
from kb.examples import read_examples
from kb.labellings import CATALOG, OTHER
from kb.models import EXCLUDE, CatalogLabel, SearchTask, TaskExample
from kb.reserves import TRAIN
from kb.roles import FLAG, REVIEW
from kb.selectors import examples_match, spectra_of_reserve
from kb.services.audit import audit_record

TITLE_LENGTH = SearchTask._meta.get_field("title").max_length
LABEL_LENGTH = TaskExample._meta.get_field("label").max_length
# Names are unique over every task, private ones too, so a taken name cannot be hidden; the answer says no more
# than that: not whose it is, nor whether it is a task one may see.
NAME_UNAVAILABLE = "the task name {name!r} is not available: choose another"
UNMATCHED_SHOWN = 1000  # unmatched rows kept in the match report, with why; the rest are counted


def catalog_task_create(
    *,
    user,
    name: str,
    target_label: str,
    data: bytes | None = None,
    filename: str = "",
    ingested: tuple[str, str] | None = None,
    title: str = "",
    description: str = "",
    radius_arcsec: float = 2.0,
) -> SearchTask:
    """A new search task for ``target_label`` from a catalog, private to ``user``: either ``data``, a CSV or
    VOTable file (``kb.examples``), or ``ingested`` (catalog, label), every spectrum a catalog already
    ingested gives that label. Rows whose label is ``target_label`` or blank (every row, if the catalog has
    no label column) are its targets; rows with another label are labelled non-targets. Its knowledge bases
    add a sample of the survey's other galaxies. The match report (matched, unmatched and why) is kept in
    ``catalog``.

    ValueError, writing nothing: a name taken or not a slug, a file without a usable identifier column, a
    spectrum named twice with different labels, no row matching an ingested spectrum, or fewer than VOTERS
    targets outside the reserves.
    """
    if user is None or not user.is_authenticated or not user.has_perm(FLAG):
        raise PermissionDenied("log in as an astronomer to make a search task")
    name, target_label, title = name.strip(), target_label.strip(), title.strip()
    if not name or slugify(name) != name or len(name) > 32:
        raise ValueError(f"the task name {name!r} must be a slug of at most 32 characters: a-z, 0-9, - and _")
    if SearchTask.objects.filter(name=name).exists():
        raise ValueError(NAME_UNAVAILABLE.format(name=name))
    if not target_label or target_label == OTHER:
        raise ValueError(f"name the label of the targets (not {OTHER!r}, which the survey's other galaxies carry)")
    if len(title) > TITLE_LENGTH:
        raise ValueError(f"the title is {len(title)} characters long; shorten it to at most {TITLE_LENGTH}")
    if not 0 < radius_arcsec <= 60:
        raise ValueError(f"the match radius must be between 0 and 60 arcsec, got {radius_arcsec}")
    if (data is None) == (ingested is None):
        raise ValueError("give either your catalog's file or a catalog already ingested, not both")
    if ingested is not None:
        data, filename = _ingested_examples(*ingested)
    examples = [dataclasses.replace(e, label=e.label or target_label) for e in read_examples(data, filename)]
    for label in {target_label, *(e.label for e in examples)}:
        if label == EXCLUDE or len(label) > LABEL_LENGTH:
            row = next((e.row for e in examples if e.label == label), None)
            raise ValueError(
                f"{'row ' + str(row) + ': ' if row else ''}the label {label[:80]!r} cannot be used: a label is at "
                f"most {LABEL_LENGTH} characters and not {EXCLUDE!r} (curation's word for leaving an entry out)"
            )
    matched, unmatched = examples_match(examples, radius_arcsec=radius_arcsec)
    if not matched:
        raise ValueError(
            f"none of the {len(examples)} rows matched an ingested spectrum (first: row {unmatched[0][0].row}, "
            f"{unmatched[0][1]}): check the identifiers, or ingest the spectra first"
        )
    chosen = _one_row_per_spectrum(matched)
    in_train = spectra_of_reserve(chosen, TRAIN)
    targets = sum(example.label == target_label for example, _ in chosen.values())
    usable = sum(example.label == target_label and pk in in_train for pk, (example, _) in chosen.items())
    if targets == 0:
        labels = sorted({e.label for e, _ in chosen.values()})
        raise ValueError(f"no matched row has the label {target_label!r} (labels found: {', '.join(labels)})")
    if usable < VOTERS:
        raise ValueError(
            f"{targets} matched targets, {usable} of them outside the test and validation reserves (which no "
            f"knowledge base holds): a vote of {VOTERS} neighbours needs at least {VOTERS}; add examples"
        )
    report = {
        "file": filename,
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": len(examples),
        "matched": len(matched),
        "spectra": len(chosen),
        "targets": targets,
        "targets_usable": usable,
        "radius_arcsec": radius_arcsec,
        "unmatched": [{"row": e.row, "named": _named(e), "why": why} for e, why in unmatched[:UNMATCHED_SHOWN]],
        "unmatched_count": len(unmatched),
    }
    try:
        with transaction.atomic():  # the file was read and matched before: no write lock is held while it is
            return _catalog_task_write(user, name, target_label, title, description, filename, report, chosen)
    except IntegrityError:  # another request took the name meanwhile
        raise ValueError(NAME_UNAVAILABLE.format(name=name)) from None


def _catalog_task_write(user, name, target_label, title, description, filename, report, chosen) -> SearchTask:
    task = SearchTask.objects.create(
        name=name,
        title=title or f"{target_label} (from {user.username}'s catalog)"[:TITLE_LENGTH],
        description=description.strip() or f"Finds {target_label} like the examples in {filename or 'a catalog'}.",
        labelling=CATALOG,
        target_labels=[target_label],
        owner=user,
        published=False,
        catalog=report,
    )
    TaskExample.objects.bulk_create(
        [
            TaskExample(
                task=task,
                spectrum_id=pk,
                label=example.label,
                row=example.row,
                matched_by=example.key,
                separation_arcsec=separation,
            )
            for pk, (example, separation) in chosen.items()
        ],
        batch_size=2000,
    )
    labels = dict(Counter(example.label for example, _ in chosen.values()))
    audit_record(
        actor=user, action="task_created", subject=f"task {task.name}", task=task, after={**report, "labels": labels}
    )
    return task


def _one_row_per_spectrum(matched) -> dict[int, tuple]:
    """Spectrum id -> (example, separation): a spectrum named by several rows keeps its first, which is only
    allowed where they agree on its label."""
    chosen = {}
    for example, spectrum_id, separation in matched:
        first, _ = chosen.setdefault(spectrum_id, (example, separation))
        if first.label != example.label:
            raise ValueError(
                f"rows {first.row} and {example.row} name the same spectrum ({_named(first)}; {_named(example)}) "
                f"with different labels, {first.label!r} and {example.label!r}: keep one of them"
            )
    return chosen


def _ingested_examples(catalog: str, label: str) -> tuple[bytes, str]:
    """The spectra an ingested catalog gives ``label``, as a one-column catalog of specobjids, and its name."""
    if catalog not in CATALOG_SOURCES:
        raise ValueError(f"no catalog {catalog!r}; choose one of {', '.join(CATALOG_SOURCES)}")
    labelled = CatalogLabel.objects.filter(catalog=catalog)
    ids = list(labelled.filter(label=label).values_list("spectrum__specobjid", flat=True))
    if not ids:
        labels = sorted(set(labelled.values_list("label", flat=True)))
        raise ValueError(f"no ingested spectrum has the label {label!r} in {catalog} (its labels: {', '.join(labels)})")
    return "\n".join(["specobjid", *ids]).encode(), f"ingested catalog {catalog}, label {label}"


def _named(example) -> str:
    return f"{example.value[0]:.6f}, {example.value[1]:.6f}" if example.key == "position" else str(example.value)


@transaction.atomic
def search_task_publish(*, user, task: SearchTask, reason: str = "") -> SearchTask:
    """Let everyone see and search with an astronomer's task: a curator's decision, in the audit trail."""
    if user is None or not user.is_authenticated or not user.has_perm(REVIEW):
        raise PermissionDenied("only curators publish a search task")
    task = SearchTask.objects.select_for_update().get(pk=task.pk)
    if task.published:
        raise ValueError(f"task {task.name} is already published")
    task.published = True
    task.save(update_fields=["published"])
    audit_record(
        actor=user,
        action="task_published",
        subject=f"task {task.name}",
        task=task,
        before={"published": False},
        after={"published": True},
        reason=reason,
    )
    return task
