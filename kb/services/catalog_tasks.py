"""Search tasks of an astronomer's own: made from a catalog of examples they upload, private to them until
a curator publishes them. Retasking without retraining, for a population GalSpec did not foresee."""

from __future__ import annotations

import dataclasses
import hashlib

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.text import slugify

from kb.examples import read_examples
from kb.models import Catalog, CatalogLabel, SearchTask, Spectrum, TaskExample
from kb.roles import FLAG, REVIEW
from kb.search_tasks import CATALOG, OTHER, TRAIN, VOTERS, reserve
from kb.selectors import examples_match
from kb.services.audit import audit_record


@transaction.atomic
def catalog_task_create(
    *,
    user,
    name: str,
    target_label: str,
    data: bytes = b"",
    filename: str = "",
    ingested: tuple[str, str] | None = None,
    title: str = "",
    description: str = "",
    radius_arcsec: float = 2.0,
) -> SearchTask:
    """A new search task for ``target_label`` from a catalog (CSV or VOTable: ``kb.examples``), private to
    ``user``. Rows whose label is ``target_label`` or blank (every row, if the catalog has no label column)
    are its targets; rows with another label are labelled non-targets. Its knowledge bases add a sample of the
    survey's other galaxies. The match report (matched, unmatched and why) is kept in ``catalog``.
    ``ingested`` (catalog, label) takes the examples from a catalog already ingested instead of a file:
    every spectrum it gives that label.

    ValueError, writing nothing: a name taken or not a slug, a file without a usable identifier column,
    no row matching an ingested spectrum, or fewer than VOTERS targets outside the reserves.
    """
    if user is None or not user.is_authenticated or not user.has_perm(FLAG):
        raise PermissionDenied("log in as an astronomer to make a search task")
    name, target_label = name.strip(), target_label.strip()
    if not name or slugify(name) != name or len(name) > 32:
        raise ValueError(f"the task name {name!r} must be a slug of at most 32 characters: a-z, 0-9, - and _")
    if SearchTask.objects.filter(name=name).exists():
        raise ValueError(f"the task name {name!r} is taken: choose another")
    if not target_label or target_label == OTHER:
        raise ValueError(f"name the label of the targets (not {OTHER!r}, which the survey's other galaxies carry)")
    if not 0 < radius_arcsec <= 60:
        raise ValueError(f"the match radius must be between 0 and 60 arcsec, got {radius_arcsec}")
    if ingested is not None:
        data, filename = _ingested_examples(*ingested)
    examples = read_examples(data, filename)
    examples = [dataclasses.replace(e, label=e.label or target_label) for e in examples]  # unlabelled: a target
    matched, unmatched = examples_match(examples, radius_arcsec=radius_arcsec)
    if not matched:
        raise ValueError(
            f"none of the {len(examples)} rows matched an ingested spectrum (first: row {unmatched[0][0].row}, "
            f"{unmatched[0][1]}): check the identifiers, or ingest the spectra first"
        )
    chosen = {}
    for example, spectrum_id, separation in matched:  # a spectrum named twice keeps its first row
        chosen.setdefault(spectrum_id, (example, separation))
    specobjids = dict(Spectrum.objects.filter(pk__in=chosen).values_list("pk", "specobjid"))
    usable = sum(
        example.label == target_label and reserve(specobjids[pk]) == TRAIN for pk, (example, _) in chosen.items()
    )
    targets = sum(example.label == target_label for example, _ in chosen.values())
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
        "unmatched": [{"row": e.row, "named": _named(e), "why": why} for e, why in unmatched],
    }
    task = SearchTask.objects.create(
        name=name,
        title=title.strip() or f"{target_label} (from {user.username}'s catalog)",
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
        ]
    )
    audit_record(
        actor=user,
        action="task_created",
        subject=f"task {task.name}",
        task=task,
        after={**report, "examples": {str(pk): example.label for pk, (example, _) in chosen.items()}},
    )
    return task


def _ingested_examples(catalog: str, label: str) -> tuple[bytes, str]:
    """The spectra an ingested catalog gives ``label``, as a one-column catalog of specobjids, and its name."""
    if catalog not in Catalog.values:
        raise ValueError(f"no catalog {catalog!r}; choose one of {', '.join(Catalog.values)}")
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
