"""Pre-training runs of the encoder and the checkpoints they leave."""

from pathlib import Path

from django.db import models


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    preset = models.CharField(max_length=32, help_text="Model preset: small or paper")
    model_config = models.JSONField(default=dict, help_text="EncoderConfig as saved in the checkpoint")
    train_config = models.JSONField(default=dict, help_text="PretrainConfig as saved in the checkpoint")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    n_spectra = models.PositiveIntegerField(
        default=0,
        help_text="Spectra the run trained on: the training reserve (its checkpoint is chosen on the validation "
        "reserve)",
    )
    metrics = models.JSONField(
        default=dict, blank=True, help_text="val_masked_mse, val_interp_mse (dimensionless normalised flux^2), ..."
    )
    checkpoint_dir = models.CharField(max_length=500, blank=True)
    in_service = models.BooleanField(default=False, help_text="The checkpoint that embeds queries and KBs")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["in_service"], condition=models.Q(in_service=True), name="one_training_run_in_service"
            )
        ]

    def __str__(self):
        return f"training run {self.pk} ({self.preset}, {self.status})"

    @property
    def checkpoint_name(self) -> str:
        """How pages and the API name the checkpoint it serves: the run and the step of its best checkpoint,
        never the server's path to it."""
        step = self.metrics.get("best_step")
        return f"run {self.pk}, step {step}" if step is not None else f"run {self.pk}"

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint this run serves: the best by validation loss (``training.pretrain.BEST``)."""
        return Path(self.checkpoint_dir) / "best"
