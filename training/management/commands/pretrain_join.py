"""python manage.py pretrain_join --run ID --node-rank R: this machine's share of a pre-training over several."""

from django.core.management.base import BaseCommand, CommandError

from training.models import TrainingRun
from training.services import training_run_join


class Command(BaseCommand):
    help = (
        "Join a pre-training that spans several machines (GALSPEC_TRAIN_NODES) as node R: once node 0's worker "
        "has launched the run, start this machine's GALSPEC_TRAIN_PROCESSES processes, which meet node 0 at "
        "GALSPEC_TRAIN_MASTER and read the store and the run's folder from the storage every node shares. "
        "Returns when the run ends; node 0 writes the checkpoints."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, required=True, help="the training run to join")
        parser.add_argument("--node-rank", type=int, required=True, help="this machine's rank, 1 to nodes - 1")
        parser.add_argument("--wait", type=float, default=600, help="seconds to wait for node 0 to launch the run")

    def handle(self, *args, run, node_rank, wait, **options):
        try:
            training_run = TrainingRun.objects.get(pk=run)
            training_run_join(run=training_run, node_rank=node_rank, wait_s=wait)
        except TrainingRun.DoesNotExist:
            raise CommandError(f"no training run {run}") from None
        except (ValueError, RuntimeError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"node {node_rank} of {training_run} is done; node 0 wrote its checkpoints")
