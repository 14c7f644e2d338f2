"""Celery tasks for training: ids in, services called."""

from celery import shared_task

from training.models import TrainingRun
from training.services import training_run_execute


@shared_task(bind=True, acks_late=True)
def training_run_execute_task(self, run_id: int, promote: bool = True) -> dict:
    run = TrainingRun.objects.get(pk=run_id)

    def progress(step, max_steps, metrics):
        self.update_state(state="PROGRESS", meta={"current": step, "total": max_steps, **metrics})

    run = training_run_execute(run=run, promote=promote, on_progress=progress)
    return run.metrics
