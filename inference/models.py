"""Embeddings of the ingested spectra, one matrix per checkpoint."""
from django.db import models

from training.models import TrainingRun


class EmbeddingSet(models.Model):
    """The embeddings of every ingested spectrum under one checkpoint.

    Row i of the matrix (an array store under ``path``) is the embedding of the spectrum with
    ``store_row == i``; ``rows`` leading rows are done.
    """

    training_run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="embedding_set")
    width = models.PositiveIntegerField(help_text="Embedding width D")
    rows = models.PositiveIntegerField(default=0, help_text="Spectra embedded so far")
    path = models.CharField(max_length=500)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.rows} embeddings of width {self.width} from {self.training_run}"
