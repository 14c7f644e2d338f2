"""python manage.py compare_mock --mock DIR: the mock survey against the real SDSS spectra."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kb.mock.compare import MEASURES, summarise

LABELS = {
    "snr": "median S/N per pixel",
    "colour": "colour f(6000-6400)/f(4200-4500) rest",
    "dn4000": "Dn4000 break",
    "halpha_ew": "H-alpha EW (Angstrom, SPZLINE)",
    "log_o3_hb": "log [O III]5007/H-beta (S/N>=3)",
    "log_n2_ha": "log [N II]6583/H-alpha (S/N>=3)",
}


class Command(BaseCommand):
    help = "Print S/N, continuum colour, 4000 A break and line strengths of the mock and the real spectra side by side."

    def add_arguments(self, parser):
        parser.add_argument("--mock", required=True, help="mock survey folder (as written by mock_survey)")
        parser.add_argument("--real", help="real spectra folder (default: GALSPEC_SHARED_DATA/sdss-spectra)")
        parser.add_argument("--limit", type=int, default=2000, help="mock spectra to measure at most")

    def handle(self, *args, mock, real, limit, **options):
        real = Path(real or Path(settings.SHARED_DATA_DIR) / "sdss-spectra")
        if not Path(mock).is_dir() or not real.is_dir():
            raise CommandError(f"need two folders of spec-*.fits files: {mock}, {real}")
        ours, theirs = summarise(Path(mock), limit), summarise(real)
        self.stdout.write(
            f"{'measure':42s} {'mock (' + str(ours['files']) + ' spectra)':>30s} "
            f"{'real (' + str(theirs['files']) + ' spectra)':>30s}"
        )
        self.stdout.write(f"{'':42s} {'p16 / median / p84 (n)':>30s} {'p16 / median / p84 (n)':>30s}")
        for m in MEASURES:
            cells = [
                f"{s[m]['p16']:.2f} / {s[m]['median']:.2f} / {s[m]['p84']:.2f} ({s[m]['n']})" for s in (ours, theirs)
            ]
            self.stdout.write(f"{LABELS[m]:42s} {cells[0]:>30s} {cells[1]:>30s}")
