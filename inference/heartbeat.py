"""A sign of life for long work: a thread that stamps the row's ``heartbeat_at`` while the work runs.

Operations and survey searches are taken up by another worker once their heartbeat is older than
``GALSPEC_OPERATION_STALE_S``. Progress reports stamp it too, but some steps report nothing for minutes
(building an HNSW index over a million vectors takes three on two cores); the thread keeps a live worker
from looking dead meanwhile, and stops with it, so a killed worker still goes silent.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import Error, connection, models
from django.utils import timezone


@contextmanager
def heartbeat(model: type[models.Model], pk: int, *, every: float | None = None) -> Iterator[None]:
    """Stamp ``model`` row ``pk``'s ``heartbeat_at`` every ``every`` seconds (default: a quarter of the
    stale limit) until the block ends."""
    every = every or settings.GALSPEC_OPERATION_STALE_S / 4
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
                except Error:  # a locked SQLite file, a dropped connection: the next beat tries on a new one
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
