"""Reads for training runs and checkpoints."""

from training.models import TrainingRun


def training_run_in_service(*, for_update: bool = False) -> TrainingRun | None:
    """The run whose checkpoint serves; ``for_update`` locks its row until the transaction ends (PostgreSQL),
    so that two promotions cannot both read the same run and leave tasks on different encoders."""
    runs = TrainingRun.objects.filter(in_service=True)
    return (runs.select_for_update() if for_update else runs).first()


def training_run_list() -> list[TrainingRun]:
    return list(TrainingRun.objects.all())
