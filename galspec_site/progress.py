"""Progress for people: a tqdm bar in management commands, and the JSON a page's progress bar polls."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.http import JsonResponse
from tqdm import tqdm


@contextmanager
def progress_bar(desc: str, unit: str, *, verbosity: int = 1) -> Iterator[Callable[[int, int], None]]:
    """Yield ``on_progress(done, total)`` for a service; the bar is hidden at verbosity 0."""
    bar = tqdm(total=0, unit=unit, desc=desc, disable=verbosity == 0)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield on_progress
    finally:
        bar.close()


def progress_json(
    *,
    status: str,
    finished: bool,
    succeeded: bool,
    current: int,
    total: int,
    description: str = "",
    error: str = "",
    **extra,
) -> JsonResponse:
    """A background run's progress in the format celery-progress's bar polls, read from the run's own row
    (which outlives the broker's task results); ``extra`` keys are added for the page's own scripts."""
    return JsonResponse(
        {
            "state": status.upper(),
            "complete": finished,
            "success": succeeded if finished else None,
            "progress": {
                "current": current,
                "total": total,
                "description": description,
                "percent": round(100 * current / total, 1) if total else (100.0 if finished else 0.0),
                "pending": status == "queued",
            },
            "result": error or status,
            **extra,
        }
    )


def stage_progress_json(row, *, finished: bool, succeeded: bool, **extra) -> JsonResponse:
    """``progress_json`` of a run whose row says what it is doing (an operation, a survey search): its
    ``status``, ``step`` of ``total``, ``stage`` and ``error``."""
    return progress_json(
        status=row.status,
        finished=finished,
        succeeded=succeeded,
        current=row.step,
        total=row.total,
        description=row.stage,
        error=row.error,
        **extra,
    )
