"""python manage.py import_checkpoint PATH: serve a checkpoint pre-trained elsewhere."""

from django.core.management.base import BaseCommand, CommandError

from training.services import training_run_import


class Command(BaseCommand):
    help = (
        "Record a checkpoint pre-trained elsewhere (a run's folder with best/ and metrics.json, or a checkpoint "
        "folder) as a training run, copied into GALSPEC_DATA_DIR/checkpoints, and put it into service unless "
        "--no-promote. Knowledge bases must then be built with it (build_kb)."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="the run's or the checkpoint's folder")
        parser.add_argument("--no-promote", action="store_true", help="do not put the checkpoint into service")

    def handle(self, *args, source, no_promote, **options):
        try:
            run = training_run_import(source=source, promote=not no_promote)
        except ValueError as error:
            raise CommandError(str(error)) from None
        metrics = run.metrics
        self.stdout.write(
            f"training run {run.pk}: preset {run.preset}, {run.step} steps on {run.n_spectra} spectra, "
            f"{'in service' if run.in_service else 'not in service'}"
        )
        if metrics.get("val_interp_chi2"):
            self.stdout.write(
                f"chi-squared per masked pixel where it was trained: {metrics['val_masked_chi2']:.4g} against "
                f"interpolation's {metrics['val_interp_chi2']:.4g}"
            )
