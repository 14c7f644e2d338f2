"""python manage.py evaluate --out DIR: every experiment of the paper on the held-out test spectra."""

import time

from django.core.management.base import BaseCommand, CommandError

from experiments.data import EvaluationConfig
from experiments.evaluation import evaluate


def sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


class Command(BaseCommand):
    help = (
        "Reproduce the paper's experiments (Table 2, Tables 3-4, Figures 4, 5 and C1, Table A1, appendix B.2, "
        "the real SDSS spectra) and write DIR/report.md, DIR/results.json and the figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="folder for report.md, results.json and the figures")
        parser.add_argument("-k", type=int, default=3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--seeds",
            type=int,
            default=1,
            help="repeat pre-training and knowledge-base sampling with this many seeds in all (new runs, kept out "
            "of service) and report each headline figure's mean and spread",
        )
        parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% intervals")
        parser.add_argument(
            "--retrieval-sizes",
            type=sizes,
            default=EvaluationConfig.retrieval_sizes,
            help="comma-separated KB sizes for the retrieval-time curve",
        )
        parser.add_argument("--approximate-max-size", type=int, default=EvaluationConfig.approximate_max_size)
        parser.add_argument("--cnn-epochs", type=int, default=EvaluationConfig.cnn_epochs)
        parser.add_argument(
            "--finetune-epochs",
            type=int,
            default=EvaluationConfig.finetune_epochs,
            help="at most; 0 leaves the fine-tuned encoder out (the costliest method: minutes per epoch on a CPU)",
        )

    def handle(
        self,
        *args,
        out,
        k,
        seed,
        seeds,
        bootstrap,
        retrieval_sizes,
        approximate_max_size,
        cnn_epochs,
        finetune_epochs,
        verbosity,
        **options,
    ):
        config = EvaluationConfig(
            k=k,
            seed=seed,
            n_resamples=bootstrap,
            retrieval_sizes=retrieval_sizes,
            approximate_max_size=approximate_max_size,
            cnn_epochs=cnn_epochs,
            finetune_epochs=finetune_epochs,
        )
        start = time.perf_counter()

        def log(message: str) -> None:
            if verbosity:
                self.stdout.write(f"[{time.perf_counter() - start:6.0f} s] {message}")

        try:
            results = evaluate(out=out, config=config, seeds=seeds, log=log)
        except ValueError as error:
            raise CommandError(str(error)) from None
        five, ceiling = results["classification_5class"], results["label_ceiling"]["classification_5class"]
        self.stdout.write(
            self.style.SUCCESS(
                "five-class macro-F1: the served KB {:.3f}, encoder chosen {:.3f}, raw windows chosen {:.3f}, "
                "rest-frame PCA K-vote {:.3f}, CNN {:.3f}; label ceiling {:.3f}".format(
                    *(
                        five[m]["macro_f1"]
                        for m in ("encoder_kb", "encoder_chosen", "raw_window_chosen", "restframe_pca_knn", "cnn")
                    ),
                    ceiling["macro_f1"],
                )
            )
        )
        self.stdout.write(f"report: {out}/report.md")
