"""The shipped search tasks kept in step with ``kb.labellings.TASKS``, after every ``migrate``."""

from __future__ import annotations

from django.db import transaction

from kb.labellings import TASKS
from kb.models import SearchTask


@transaction.atomic
def shipped_tasks_sync(**signal_kwargs) -> list[str]:
    """Create each task of TASKS that the database lacks and bring the others' title, description,
    labelling and targets up to date; a task no longer shipped is left as it is (its knowledge bases and
    curation history stay). Connected to ``post_migrate`` (``kb.apps``). Returns the names created."""
    created = []
    for task in TASKS.values():
        _, made = SearchTask.objects.update_or_create(
            name=task.name,
            owner=None,
            defaults={
                "title": task.title,
                "description": task.description,
                "labelling": task.labelling,
                "target_labels": list(task.target_labels),
            },
        )
        if made:
            created.append(task.name)
    return created
