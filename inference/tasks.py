"""Celery tasks for inference: ids in, services called."""
from celery import shared_task

from inference.services import embedding_update
from training.models import TrainingRun


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def embedding_update_task(self, run_id: int | None = None) -> int:
    run = TrainingRun.objects.get(pk=run_id) if run_id else None

    def progress(done, total):
        self.update_state(state="PROGRESS", meta={"current": done, "total": total})

    return embedding_update(training_run=run, on_progress=progress).rows
