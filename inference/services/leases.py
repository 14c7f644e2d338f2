"""A worker's hold on long work: an operation or a survey search, taken up by one worker at a time; and
on the parts of work shared by many (``WorkPart``: a survey search's, an embedding's).

Such work is a ``LeasedWork`` row (``inference.models``): ``status`` (queued, running, ...),
``heartbeat_at`` and ``attempts``. A worker
*claims* it while it is queued, or running with a heartbeat older than ``GALSPEC_OPERATION_STALE_S``
(its worker died), so a live worker is never doubled. Each claim is a new attempt, and a worker writes
only while its attempt is the row's last: one taken for dead that comes back finds no row to write,
and stops at its next step.

Progress reports stamp the heartbeat, but some steps report nothing for minutes (building an HNSW
index over a million vectors takes three on two cores); ``Lease.heartbeat`` runs a thread that keeps a
live worker from looking dead meanwhile, and stops with it, so a killed worker still goes silent.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import Error, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from inference.models import LeasedWork, RunStatus, WorkPart
from inference.selectors.background import stale_before

QUEUED, RUNNING = RunStatus.QUEUED, RunStatus.RUNNING  # every leased model's first two statuses


@dataclass(frozen=True)
class Lease:
    """Attempt ``attempt`` of a worker on row ``pk`` of ``model``."""

    model: type[LeasedWork]
    pk: int
    attempt: int

    @classmethod
    def claim(cls, model: type[LeasedWork], pk: int) -> Lease | None:
        """Take the row up if it is queued, or running with a stale heartbeat; None if it cannot be taken
        (finished, or alive with another worker)."""
        # running without a heartbeat: left by a worker from before leases (a batch job at the upgrade)
        silent = Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True)
        claimable = Q(status=QUEUED) | (Q(status=RUNNING) & silent)
        with transaction.atomic():
            if not model.objects.filter(claimable, pk=pk).update(
                status=RUNNING, heartbeat_at=timezone.now(), attempts=F("attempts") + 1
            ):
                return None
            return cls(model, pk, model.objects.values_list("attempts", flat=True).get(pk=pk))

    def own(self) -> QuerySet:
        """The row while this attempt is its running one (else no row): what this worker may write."""
        return self.model.objects.filter(pk=self.pk, status=RUNNING, attempts=self.attempt)

    def write(self, **fields) -> bool:
        """Write ``fields`` and a sign of life; False when the row is no longer this attempt's."""
        return bool(self.own().update(heartbeat_at=timezone.now(), **fields))

    def finish(self, status: str, **fields) -> bool:
        """End the work with ``status``; False (nothing written) when the row is no longer this attempt's."""
        return bool(self.own().update(status=status, finished_at=timezone.now(), **fields))

    def given_up(self, *, max_attempts: int, advice: str) -> str:
        """Past ``max_attempts`` workers dead on it (out of memory, often), fail the work rather than kill the
        next worker too, and return the sentence it was failed with, for the caller's own clearing up (this
        worker then leaves the work); "" while attempts are left."""
        if self.attempt <= max_attempts:
            return ""
        error = f"its worker died {max_attempts} times (out of memory?): {advice}"
        self.finish(RunStatus.FAILED, stage="failed", error=error)
        return error

    @contextmanager
    def heartbeat(self, *, every: float | None = None) -> Iterator[None]:
        """Stamp the row's ``heartbeat_at`` every ``every`` seconds (default: a quarter of the stale
        limit), while this attempt owns it, until the block ends."""
        every = every or settings.GALSPEC_OPERATION_STALE_S / 4
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(every):
                    try:
                        self.own().update(heartbeat_at=timezone.now())
                    except Error:  # a locked SQLite file, a dropped connection: the next beat tries on a new one
                        connection.close()
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.model.__name__}-{self.pk}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def part_claim(parts: QuerySet) -> WorkPart | None:
    """Take one of ``parts`` (a ``WorkPart`` queryset) that is pending, or running with a stale heartbeat
    (its worker died), for this process; None when there is none to take."""
    claimable = Q(status=WorkPart.Status.PENDING) | Q(status=WorkPart.Status.RUNNING, heartbeat_at__lt=stale_before())
    for pk in parts.filter(claimable).values_list("pk", flat=True)[:20]:
        taken = parts.filter(claimable, pk=pk).update(
            status=WorkPart.Status.RUNNING,
            heartbeat_at=timezone.now(),
            worker=f"{socket.gethostname()} pid {os.getpid()}",
            attempts=F("attempts") + 1,
        )
        if taken:
            return parts.get(pk=pk)
    return None


@contextmanager
def part_held(part: WorkPart) -> Iterator[None]:
    """Beat ``part``'s heartbeat while the block runs (so a slow part is not taken for abandoned), then
    mark it done, unless the block raised or another worker has taken the part since (its worker marks it)."""
    lease = Lease(type(part), part.pk, part.attempts)
    with lease.heartbeat():
        yield
    lease.own().update(status=WorkPart.Status.DONE, heartbeat_at=timezone.now())  # not if taken for dead since


def failure_sentence(error: Exception) -> str:
    """What a failed piece of work tells the people who follow it: a ValueError's message (GalSpec's own
    sentences, written for them), else only the kind of failure, never its text, which may name server paths
    (an OSError's file name); the worker logs the traceback for whoever runs it."""
    if isinstance(error, ValueError):
        return str(error)
    return f"the worker failed ({type(error).__name__}); the workers' logs have the details"
