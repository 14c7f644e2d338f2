"""python manage.py fetch_sdss: spec-lite files, or a survey's catalogs and spectra, from the SDSS archive."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from kb.sdss_archive import (
    CATALOGS,
    SAS,
    Archive,
    estimate_bytes,
    fetch_catalogs,
    fetch_spectra,
    paper_sample,
    parse_identifier,
    read_list,
)

SIZE_SAMPLE = 20  # spectra whose sizes are asked for, to estimate the download


class Command(BaseCommand):
    help = (
        "Download SDSS spec-lite files by PLATE-MJD-FIBER (arguments and/or --list FILE) into OUT/PLATE/; or, "
        "with --survey, the catalogs ingest reads into OUT/catalogs/ and then the spectra of the paper's sample "
        "(galaxies with reliable redshifts in galSpecInfo) into OUT/spectra/, ready for `ingest OUT`. Sizes are "
        "estimated first; downloads are parallel, resumable, retried, checked and checksummed (SHA256SUMS). "
        "Exits non-zero if any failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("identifiers", nargs="*", help="PLATE-MJD-FIBER, e.g. 0266-51630-0168")
        parser.add_argument(
            "--list",
            dest="list_file",
            metavar="FILE",
            help="one PLATE-MJD-FIBER per line, or a CSV with plate, mjd, fiberid columns ('#' comments allowed)",
        )
        parser.add_argument("--survey", action="store_true", help="the catalogs, then the spectra they list")
        parser.add_argument("--limit", type=int, help="with --survey: at most this many spectra, in catalog order")
        parser.add_argument("--dry-run", action="store_true", help="with --survey: fetch the catalogs, estimate, stop")
        parser.add_argument("--out", required=True, help="folder to write into")
        parser.add_argument("--base-url", help=f"spectra's archive root (default {SAS}/dr16)")
        parser.add_argument("--sas-url", default=SAS, help=f"the archive's root, for the catalogs (default {SAS})")
        parser.add_argument("--workers", type=int, default=4, help="downloads at once (default 4)")
        parser.add_argument(
            "--retries", type=int, default=4, help="further attempts per file after the first (default 4)"
        )
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to connect and per read (default 60)")

    def handle(self, *args, identifiers, list_file, survey, limit, dry_run, out, verbosity, **options):
        try:
            archive = Archive(
                options["base_url"] or f"{options['sas_url'].rstrip('/')}/dr16",
                retries=options["retries"],
                timeout=options["timeout"],
            )
            if options["workers"] < 1 or (limit is not None and limit < 1):
                raise ValueError("--workers and --limit must be at least 1")
            if survey and (identifiers or list_file):
                raise ValueError("give --survey, or identifiers and --list, not both")
            if survey:
                wanted, spectra_out = self._survey(archive, out, options["sas_url"], limit), f"{out}/spectra"
            else:
                wanted = [parse_identifier(i) for i in identifiers] + (read_list(list_file) if list_file else [])
                spectra_out = out
        except ValueError as error:
            raise CommandError(str(error)) from None
        if not wanted:
            raise CommandError(
                "give PLATE-MJD-FIBER identifiers or --list FILE" if not survey else "no spectrum to fetch"
            )
        urls = [archive.candidate_urls(*identifier)[0] for identifier in wanted[:SIZE_SAMPLE]]
        size = estimate_bytes(urls, archive, total=len(wanted))
        self.stdout.write(f"{len(wanted)} spectra to fetch ({_about(size)}) into {spectra_out}")
        if dry_run:
            return
        with progress_bar("fetch", "spectra", verbosity=verbosity) as progress:
            summary = fetch_spectra(wanted, spectra_out, archive, on_progress=progress, workers=options["workers"])
        self._report(summary, "spectra")

    def _survey(self, archive: Archive, out: str, sas: str, limit: int | None) -> list[tuple[int, int, int]]:
        urls = [f"{sas.rstrip('/')}/{path}" for path in CATALOGS.values()]
        self.stdout.write(f"{len(CATALOGS)} catalogs ({_about(estimate_bytes(urls, archive))}) into {out}/catalogs")
        self._report(fetch_catalogs(f"{out}/catalogs", archive, sas), "catalogs")
        sample = paper_sample(f"{out}/catalogs/galSpecInfo-dr8.fits")
        self.stdout.write(f"galSpecInfo lists {len(sample)} galaxies with reliable redshifts")
        return sample[:limit] if limit else sample

    def _report(self, summary, what: str) -> None:
        self.stdout.write(
            f"{what}: {len(summary.downloaded)} downloaded, {len(summary.skipped)} already here, "
            f"{len(summary.failed)} failed"
        )
        for name, reason in sorted(summary.failed.items()):
            self.stdout.write(self.style.ERROR(f"  {name}: {reason}"))
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} {what} could not be fetched (listed above)")


def _about(size: int | None) -> str:
    if size is None:
        return "size unknown: the server does not say"
    return f"about {size / 1e9:.2f} GB" if size >= 1e9 else f"about {size / 1e6:.1f} MB"
