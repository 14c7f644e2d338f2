"""Reads for training runs and checkpoints."""

from training.models import TrainingRun


def training_run_in_service() -> TrainingRun | None:
    return TrainingRun.objects.filter(in_service=True).first()


def training_run_list() -> list[TrainingRun]:
    return list(TrainingRun.objects.all())
