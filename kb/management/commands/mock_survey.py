"""python manage.py mock_survey --out DIR --size N --seed S: an SDSS-format mock survey."""

import json
import os

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from kb.mock import generate_survey
from kb.mock.populations import MASSIVE_PER_LENS
from kb.mock.survey import MOCK_VERSION, VERSIONS


class Command(BaseCommand):
    help = (
        "Write a mock survey in SDSS's formats: DIR/spectra/PLATE/spec-PLATE-MJD-FIBER.fits (spec-lite), "
        "DIR/catalogs/ (galSpecInfo/galSpecExtra DR8, Portsmouth DR12, lenscat-format lenses, Baron & "
        "Poznanski outliers, Goto 2007 E+A galaxies) and DIR/mock_truth.csv. Same seed and version, same files."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True)
        parser.add_argument("--size", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--mock-version",
            type=int,
            default=MOCK_VERSION,
            choices=sorted(VERSIONS),
            help=f"the mock's version (default {MOCK_VERSION}; 2 regenerates surveys made before 2026-12-06)",
        )
        parser.add_argument("--lens-fraction", type=float, default=0.025)
        parser.add_argument("--outlier-fraction", type=float, default=0.025)
        parser.add_argument(
            "--massive-per-lens",
            type=float,
            default=MASSIVE_PER_LENS,
            help="massive passive galaxies drawn like the lens hosts, per lens (the lens search's matched others)",
        )
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (output is the same)")

    def handle(
        self,
        *args,
        out,
        size,
        seed,
        mock_version,
        lens_fraction,
        outlier_fraction,
        massive_per_lens,
        workers,
        verbosity,
        **options,
    ):
        if min(lens_fraction, outlier_fraction, massive_per_lens) < 0:
            raise CommandError("--lens-fraction, --outlier-fraction and --massive-per-lens cannot be negative")
        try:
            with progress_bar("mock survey", "spectra", verbosity=verbosity) as progress:
                summary = generate_survey(
                    out=out,
                    size=size,
                    seed=seed,
                    version=mock_version,
                    lens_fraction=lens_fraction,
                    outlier_fraction=outlier_fraction,
                    massive_per_lens=massive_per_lens,
                    workers=workers,
                    on_progress=progress,
                )
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(summary, indent=2))
