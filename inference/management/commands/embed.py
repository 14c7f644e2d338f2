"""python manage.py embed: embed every ingested spectrum with the checkpoint in service."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from inference.services.embeddings import embedding_update
from inference.tasks import embedding_helpers_send
from training.models import TrainingRun
from training.selectors import training_run_in_service


class Command(BaseCommand):
    help = "Embed all ingested spectra not yet embedded (in parts, resumable) into the array store."

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="training run whose checkpoint embeds (default: in service)")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--device", help="cpu, cuda or auto")
        parser.add_argument(
            "--helpers",
            type=int,
            default=0,
            help="also send up to N helpers to the embedding workers, which take parts alongside this command "
            "(they need this deployment's database, broker and shared storage)",
        )

    def handle(self, *args, run, batch_size, device, helpers, verbosity, **options):
        if helpers < 0:
            raise CommandError(f"--helpers {helpers}: give 0 or more helpers")
        try:
            training_run = TrainingRun.objects.get(pk=run) if run else training_run_in_service()

            def fan_out(wanted: int) -> None:
                embedding_helpers_send(training_run.pk, min(wanted, helpers))

            with progress_bar("embed", "spectra", verbosity=verbosity) as progress:
                embedding_set = embedding_update(
                    training_run=training_run,
                    batch_size=batch_size,
                    device=device,
                    on_progress=progress,
                    fan_out=fan_out if helpers and training_run else None,
                )
        except TrainingRun.DoesNotExist:
            raise CommandError(f"no training run {run}") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{embedding_set.rows} spectra embedded (width {embedding_set.width}) with the checkpoint of "
            f"training run {embedding_set.training_run_id}, stored in {embedding_set.path}"
        )
