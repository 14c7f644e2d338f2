"""python manage.py embed: embed every ingested spectrum with the checkpoint in service."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from inference.services.embeddings import embedding_update
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Embed all ingested spectra not yet embedded (batched, resumable) into the array store."

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="training run whose checkpoint embeds (default: in service)")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--device", help="cpu, cuda or auto")

    def handle(self, *args, run, batch_size, device, verbosity, **options):
        try:
            training_run = TrainingRun.objects.get(pk=run) if run else None
            with progress_bar("embed", "spectra", verbosity=verbosity) as progress:
                embedding_set = embedding_update(
                    training_run=training_run, batch_size=batch_size, device=device, on_progress=progress
                )
        except TrainingRun.DoesNotExist:
            raise CommandError(f"no training run {run}") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{embedding_set.rows} spectra embedded (width {embedding_set.width}) with the checkpoint of "
            f"training run {embedding_set.training_run_id}, stored in {embedding_set.path}"
        )
