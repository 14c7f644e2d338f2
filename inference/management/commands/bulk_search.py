"""python manage.py bulk_search --task T --out DIR: every ingested spectrum against a task's knowledge base."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from inference.services.bulk import bulk_search
from inference.tasks import bulk_search_task
from kb.selectors import search_task_get


class Command(BaseCommand):
    help = (
        "Search every ingested spectrum against a task's knowledge base in service, in chunks written as "
        "CSV parts; run it again to carry on after an interruption."
    )

    def add_arguments(self, parser):
        parser.add_argument("--task", required=True)
        parser.add_argument("--out", required=True, help="folder for manifest.json and part-NNNNN.csv")
        parser.add_argument("--chunk", type=int, default=10_000, help="spectra per part (default 10000)")
        parser.add_argument("-k", type=int, help="neighbours that vote (default: the knowledge base's own K)")
        parser.add_argument(
            "--background",
            action="store_true",
            help="send it to a Celery worker (embedding queue) and return; run again to see progress",
        )

    def handle(self, *args, task, out, chunk, k, background, **options):
        if background:
            sent = bulk_search_task.delay(search_task_get(name=task).pk, str(Path(out).resolve()), chunk, k)
            self.stdout.write(f"sent to a worker as Celery task {sent.id}; its parts appear under {out}")
            return
        try:
            with progress_bar("bulk search", "spectra", verbosity=options["verbosity"]) as on_progress:
                manifest = bulk_search(
                    task=search_task_get(name=task), out=out, chunk=chunk, k=k, on_progress=on_progress
                )
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{manifest['spectra']} spectra in {manifest['parts']} parts under {out} "
                f"({task} KB v{manifest['kb_version']}, checkpoint run {manifest['training_run']})"
            )
        )
