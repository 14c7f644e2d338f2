"""python manage.py pretrain: masked-modelling pre-training of the encoder on the ingested spectra."""

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from training.models import TrainingRun
from training.pretrain import LOSSES
from training.services import training_run_create, training_run_execute


class Command(BaseCommand):
    help = (
        "Pre-train GalSpecEncoder by masked modelling on the ingested spectra of the training reserve. Writes "
        "the checkpoints "
        "(best by the median validation spectrum's chi-squared, last for resuming) and OUT/metrics.json with "
        "val_masked_mse, val_masked_chi2 and interpolation's val_interp_mse, val_interp_chi2, and records a "
        "TrainingRun. The checkpoint goes into service unless --no-promote."
    )

    def add_arguments(self, parser):
        parser.add_argument("--preset", default="small", help="model preset: small (CPU, minutes) or paper")
        parser.add_argument("--out", help="checkpoint folder (default: GALSPEC_DATA_DIR/checkpoints/run-ID)")
        parser.add_argument("--max-steps", type=int, help="optimizer steps")
        parser.add_argument("--batch-size", type=int, help="spectra per step (paper: 32)")
        parser.add_argument("--lr", type=float, help="peak learning rate (paper: 1e-5)")
        parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps before the cosine decay")
        parser.add_argument("--seed", type=int, help="seed for the split, the masks and the weights")
        parser.add_argument("--device", help="cpu, cuda or auto")
        parser.add_argument(
            "--loss", choices=LOSSES, help="chi2 (default: squared error x inverse variance) or mse (the paper's)"
        )
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="continue an interrupted run")
        parser.add_argument("--no-promote", action="store_true", help="do not put the checkpoint into service")

    def handle(self, *args, **opts):
        options = {
            "max_steps": opts["max_steps"],
            "batch_size": opts["batch_size"],
            "lr": opts["lr"],
            "warmup_steps": opts["warmup_steps"],
            "seed": opts["seed"],
            "device": opts["device"],
            "loss": opts["loss"],
        }
        try:
            if opts["resume"]:
                run = TrainingRun.objects.get(pk=opts["resume"])
            else:
                run = training_run_create(preset=opts["preset"], out_dir=opts["out"], **options)
        except TrainingRun.DoesNotExist:
            raise CommandError(f"no training run {opts['resume']}") from None
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"training run {run.pk}: preset {run.preset}, checkpoints in {run.checkpoint_dir}")
        bar = tqdm(total=run.max_steps, unit="step", desc="pretrain", disable=opts["verbosity"] == 0)

        def progress(step, max_steps, metrics):
            bar.total = max_steps
            bar.n = step
            shown = {k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)}
            bar.set_postfix(shown, refresh=True)

        try:
            run = training_run_execute(run=run, promote=not opts["no_promote"], on_progress=progress)
        except ValueError as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        metrics = {k: v for k, v in run.metrics.items() if not isinstance(v, (list, dict))}
        self.stdout.write(json.dumps(metrics, indent=2))
        for figure, name in (
            ("val_masked_chi2", "chi-squared per masked pixel"),
            ("val_median_spectrum_masked_mse", "the median spectrum's masked-pixel MSE"),
            ("val_masked_mse", "masked-pixel MSE (pooled)"),
        ):
            model, interp = run.metrics.get(figure), run.metrics.get(figure.replace("masked", "interp"))
            if model is not None and interp:
                self.stdout.write(
                    f"{name} on the validation reserve: model {model:.4g}, linear interpolation {interp:.4g} "
                    f"(model/interpolation = {model / interp:.3f})"
                )
        noise = run.metrics.get("val_median_spectrum_noise_mse")
        if noise is not None:
            model, interp = (run.metrics[f"val_median_spectrum_{k}_mse"] for k in ("masked", "interp"))
            self.stdout.write(
                f"a perfect model would score {noise:.4g} on the median spectrum (its noise, {noise / interp:.3f} "
                f"x interpolation); the model removes {(interp - model) / (interp - noise):.0%} of interpolation's "
                "error above it"
            )
