"""python manage.py fetch_sdss: download spec-lite files from the SDSS archive (DR16 layout)."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from kb.sdss_archive import DR16, Archive, fetch_spectra, parse_identifier, read_list


class Command(BaseCommand):
    help = (
        "Download SDSS spec-lite files by PLATE-MJD-FIBER (arguments and/or --list FILE) into OUT/PLATE/. "
        "Resumable and retried; files already complete are skipped. Exits non-zero if any failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("identifiers", nargs="*", help="PLATE-MJD-FIBER, e.g. 0266-51630-0168")
        parser.add_argument(
            "--list",
            dest="list_file",
            metavar="FILE",
            help="one PLATE-MJD-FIBER per line, or a CSV with plate, mjd, fiberid columns ('#' comments allowed)",
        )
        parser.add_argument("--out", required=True, help="folder to write OUT/PLATE/spec-*.fits into")
        parser.add_argument("--base-url", default=DR16, help=f"archive root (default {DR16})")
        parser.add_argument(
            "--retries", type=int, default=4, help="further attempts per file after the first (default 4)"
        )
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to connect and per read (default 60)")

    def handle(self, *args, identifiers, list_file, out, base_url, retries, timeout, verbosity, **options):
        try:
            wanted = [parse_identifier(i) for i in identifiers] + (read_list(list_file) if list_file else [])
            archive = Archive(base_url, retries=retries, timeout=timeout)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if not wanted:
            raise CommandError("give PLATE-MJD-FIBER identifiers or --list FILE")
        with progress_bar("fetch", "spectra", verbosity=verbosity) as progress:
            summary = fetch_spectra(wanted, out, archive, on_progress=progress)
        self.stdout.write(
            f"{len(summary.downloaded)} downloaded, {len(summary.skipped)} already here, {len(summary.failed)} failed"
        )
        for name, reason in sorted(summary.failed.items()):
            self.stdout.write(self.style.ERROR(f"  {name}: {reason}"))
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} spectra could not be fetched (listed above)")
