"""python manage.py ingest DIR: load SDSS-format spectra and catalogs (real or mock) into GalSpec."""

import os

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from kb.services.ingest import ingest_folder


class Command(BaseCommand):
    help = (
        "Ingest every spec-*.fits file under DIR (preprocessed flux into the array store, metadata and "
        "emission lines into the database) and the catalogs found there (galSpecInfo/galSpecExtra, "
        "emissionLinesPort, lenscat-format lens candidates, Baron & Poznanski outliers). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", help="folder holding spec-*.fits files (searched recursively) and catalogs")
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes reading files")
        parser.add_argument("--quiet-rejects", action="store_true", help="count rejected files, do not list them")

    def handle(self, *args, folder, workers, quiet_rejects, verbosity, **options):
        try:
            with progress_bar("ingest", "spectra", verbosity=verbosity) as on_progress:
                summary = ingest_folder(folder=folder, workers=workers, on_progress=on_progress)
        except (FileNotFoundError, RuntimeError) as error:
            raise CommandError(str(error)) from None
        out = self.stdout
        out.write(
            f"{summary.found} spectrum files: {summary.added} added, {summary.already} already ingested, "
            f"{len(summary.rejected)} rejected"
        )
        if summary.rejected and not quiet_rejects:
            for name, reason in sorted(summary.rejected.items()):
                out.write(self.style.WARNING(f"  rejected {name}: {reason}"))
        for catalog, count in sorted(summary.labels_added.items()):
            unmatched = summary.labels_unmatched.get(catalog, 0)
            out.write(f"catalog {catalog}: {count} labels added, {unmatched} rows match no ingested spectrum")
        for name, reason in sorted(summary.catalog_errors.items()):
            out.write(self.style.ERROR(f"  catalog {name} not read: {reason}"))
