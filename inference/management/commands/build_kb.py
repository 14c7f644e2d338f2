"""python manage.py build_kb --task TASK: a new version of a task's knowledge base, put into service."""

from django.core.management.base import BaseCommand, CommandError

from galspec_site.progress import progress_bar
from inference.index import CHOICES, FLAT_MAX
from inference.services.knowledge_bases import knowledge_base_build
from kb.selectors import search_task_get


class Command(BaseCommand):
    help = (
        "Sample labelled spectra (never those reserved for testing) into a new knowledge-base version for a "
        "task, embed what is missing, build its index and put it into service."
    )

    def add_arguments(self, parser):
        parser.add_argument("--task", required=True, help="bpt3, bpt5, liner, lens or outlier")
        parser.add_argument("--size", type=int, help="entries (default: as many as are eligible)")
        parser.add_argument(
            "--target-fraction",
            type=float,
            help="share of entries with the task's target label (default: natural proportions)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--index",
            choices=CHOICES,
            default="auto",
            help=f"auto (default: flat, exact, up to {FLAT_MAX:,} entries; compressed beyond), flat, hnsw, ivf or "
            "compressed (IVF-PQ codes in memory, the shortlist re-ranked exactly from vectors on disk)",
        )
        parser.add_argument("--no-promote", action="store_true", help="build it but leave the version in service")

    def handle(self, *args, task, size, target_fraction, seed, index, no_promote, verbosity, **options):
        try:
            search_task = search_task_get(name=task)
            with progress_bar("embed", "spectra", verbosity=verbosity) as progress:
                kb = knowledge_base_build(
                    task=search_task,
                    size=size,
                    target_fraction=target_fraction,
                    seed=seed,
                    index_kind=index,
                    promote=not no_promote,
                    on_progress=progress,
                )
        except ValueError as error:
            raise CommandError(str(error)) from None
        composition = ", ".join(f"{label} {n}" for label, n in kb.composition.items())
        recall = f", recall@3 {kb.index_recall:.4f} against exact" if kb.index_recall is not None else ""
        state = "in service" if kb.in_service else "built, not in service"
        self.stdout.write(
            self.style.SUCCESS(
                f"{task} knowledge base v{kb.version} {state}: {kb.size} entries ({composition}); "
                f"{kb.index_kind} index{recall}; checkpoint of training run {kb.training_run_id}; {kb.index_path}"
            )
        )
