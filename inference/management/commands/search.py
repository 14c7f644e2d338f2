"""python manage.py search FILE_OR_SPECOBJID --task TASK: the vote and its evidence."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference.services.search import search
from kb.selectors import spectrum_find


class Command(BaseCommand):
    help = "Search one spectrum (a spec-*.fits file, a specobjid or PLATE-MJD-FIBER) against a task's knowledge base."

    def add_arguments(self, parser):
        parser.add_argument("query", help="a spectrum file, a specobjid, or PLATE-MJD-FIBER of an ingested spectrum")
        parser.add_argument("--task", required=True)
        parser.add_argument("-k", type=int, help="neighbours that vote (default: the knowledge base's own K)")
        parser.add_argument(
            "--weights", help="exp, inverse, inverse_square or linear (default: the knowledge base's own weighting)"
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the answer as JSON")

    def handle(self, *args, query, task, k, weights, as_json, **options):
        try:
            if Path(query).is_file():
                answer = search(task=task, path=query, k=k, weight_function=weights)
            else:
                answer = search(task=task, spectrum=spectrum_find(query=query), k=k, weight_function=weights)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if as_json:
            self.stdout.write(json.dumps(answer.as_dict(), indent=2))
            return
        verdict = "" if answer.is_target is None else ("  -> a target" if answer.is_target else "  -> not a target")
        context = answer.context
        self.stdout.write(
            f"{answer.query}, task {answer.task}: {answer.label}, {context.voters} of {len(answer.neighbours)} "
            f"neighbours ({answer.share:.1%} of the weight){verdict}"
        )
        for disagreement in context.disagreements:
            self.stdout.write(self.style.WARNING(f"the query's own data disagree: {disagreement}"))
        if context.precision is not None:
            self.stdout.write(
                f"on {context.scored_on}: precision {context.precision:.2f}, recall {context.recall:.2f}"
                f"{'' if answer.is_target is None else ' (of target votes)'}, at {context.scored_with}"
            )
        else:
            self.stdout.write(f"no precision quoted: {context.unscored_because}")
        self.stdout.write(
            f"knowledge base v{answer.kb_version} (id {answer.knowledge_base}), checkpoint {answer.checkpoint}"
        )
        trust = answer.trust
        if trust.in_distribution is False:
            self.stdout.write(
                self.style.WARNING(f"NOT IN DISTRIBUTION, do not act on this vote unseen: {'; '.join(trust.reasons)}")
            )
        else:
            where = (
                "" if trust.distance_percentile is None else f", nearest at percentile {trust.distance_percentile:.1f}"
            )
            if trust.reconstruction_percentile is not None:
                where += f", reconstruction at percentile {trust.reconstruction_percentile:.1f}"
            known = "in distribution" if trust.in_distribution else "in distribution: unknown (no calibration)"
            self.stdout.write(f"{known} ({trust.valid_fraction:.0%} of pixels valid{where})")
        self.stdout.write(
            f"{'specobjid':>20}  {'plate-mjd-fiber':>16}  {'label':<14} {'distance':>9} {'weight':>7}  from"
        )
        for n in answer.neighbours:
            self.stdout.write(
                f"{n.specobjid:>20}  {n.plate_mjd_fiber:>16}  {n.label:<14} {n.distance:9.4f} "
                f"{n.weight:7.1%}  {', '.join(n.catalogs)}{' ' + str(n.details) if n.details else ''}"
            )
