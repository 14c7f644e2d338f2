"""python manage.py upgrade_store: give a spectrum store from before inverse variances were kept its ivar."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from kb.services.ingest import spectrum_store_upgrade


class Command(BaseCommand):
    help = (
        "Add the inverse variance of every stored spectrum to a store written before GalSpec kept it, reading "
        "each spectrum's file again (it must be where it was ingested from, unchanged). Nothing changes unless "
        "every file can be read; a store that needs nothing is left alone."
    )

    def handle(self, *args, verbosity, **options):
        try:
            with progress_bar("upgrade store", "spectra", verbosity=verbosity) as progress:
                rows = spectrum_store_upgrade(on_progress=progress)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write("the store needed no upgrade" if rows == 0 else f"ivar added for {rows} rows")
