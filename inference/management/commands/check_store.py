"""python manage.py check_store: does the database agree with the array store, embeddings, checkpoints and indexes?"""

from django.core.management.base import BaseCommand, CommandError

from inference.selectors.store_check import store_check


class Command(BaseCommand):
    help = "Check that the database, the array store, the embeddings, the checkpoints and the indexes agree."

    def handle(self, *args, **options):
        findings = store_check()
        for finding in findings:
            style = self.style.ERROR if finding.level == "error" else self.style.WARNING
            self.stdout.write(
                style(f"{finding.level}: {finding.what}") + (f"\n    fix: {finding.fix}" if finding.fix else "")
            )
        errors = sum(finding.level == "error" for finding in findings)
        if errors:
            raise CommandError(f"{errors} errors, {len(findings) - errors} warnings")
        self.stdout.write(self.style.SUCCESS(f"the database and the files agree ({len(findings)} warnings)"))
