"""Pre-train a larger preset on one GPU in minutes, against the small one given the same time, and say which
one's knowledge bases win on validation; everything in one folder.

    .venv/bin/python bench/gpu_pretrain.py --out var/bench/gpu_pretrain                # on a CUDA machine
    .venv/bin/python bench/gpu_pretrain.py --device cpu --smoke --out /tmp/gpu-smoke    # the smoke test CI runs

On a fresh site in ``OUT/site`` (SQLite): a mock v3 survey of ``--size`` spectra (seed 2027, the survey the
README's figures use), ingested; then for each of ``--presets`` (``small`` and ``medium`` by default) a
pre-training run of ``--train-minutes`` on ``--device`` (the steps that fit, measured on the device first),
its embedding, and a knowledge base per task of ``--tasks``, each with its vote policy chosen on the
validation reserve. ``OUT/summary.json`` holds each preset's steps, seconds, pre-training validation
figures, checkpoint size, and per task the validation score its policy was chosen on and the test-reserve
scores; ``winner`` is the preset with the higher mean validation score (the only figure a choice may rest
on). ``OUT/checkpoint-PRESET/`` holds each best checkpoint, to ship the winner with
``manage.py import_checkpoint``. Figures are on generated data, not SDSS.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = ("bpt5", "liner", "lens", "outlier")
CALIBRATION_STEPS = 5  # steps timed on the device to size the run to its minutes
MIN_STEPS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--size", type=int, default=10_000, help="spectra in the mock survey")
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--train-minutes", type=float, default=1.5, help="pre-training time for each preset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--smoke", action="store_true", help="a few hundred spectra and seconds: does it run?")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.train_minutes, args.tasks = 300, 0.05, ["bpt5", "lens"]
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["GALSPEC_DATA_DIR"] = str(args.out / "site")
    os.environ.pop("DATABASE_URL", None)  # its own SQLite site, never the database a caller's shell points at
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    timings = {}
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    survey = args.out / "site" / "survey"
    if not (survey / "catalogs").exists():
        call_command("mock_survey", out=str(survey), size=args.size, seed=args.seed, workers=os.cpu_count())
    call_command("ingest", str(survey), quiet_rejects=True)
    timings["survey_and_ingest_s"] = time.perf_counter() - started
    summary = {
        "device": args.device,
        "smoke": args.smoke,
        "spectra": args.size,
        "survey_seed": args.seed,
        "train_minutes": args.train_minutes,
        "batch_size": args.batch_size,
        "presets": {preset: preset_run(preset, args) for preset in args.presets},
    }
    scores = {
        preset: [row["validation_score"] for row in result["tasks"].values() if row["validation_score"] is not None]
        for preset, result in summary["presets"].items()
    }
    means = {preset: sum(values) / len(values) for preset, values in scores.items() if values}
    summary["mean_validation_score"] = means
    summary["winner"] = max(means, key=means.get) if means else None
    summary["timings"] = {**timings, "total_s": time.perf_counter() - started}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: summary[key] for key in ("mean_validation_score", "winner", "timings")}, indent=2))


def preset_run(preset: str, args) -> dict:
    """Pre-train ``preset`` for the minutes given, embed, and build a knowledge base per task with it."""
    from inference.services.embeddings import embedding_update
    from inference.services.knowledge_bases import knowledge_base_build
    from kb.models import SearchTask
    from training.services import training_run_create, training_run_execute

    step_s = calibrated_step(preset, args)
    steps = max(MIN_STEPS, int(args.train_minutes * 60 / step_s))
    run = training_run_create(
        preset=preset,
        device=args.device,
        batch_size=args.batch_size,
        max_steps=steps,
        warmup_steps=max(2, steps // 10),
        eval_every=max(5, steps // 8),
        seed=args.seed,
    )
    start = time.perf_counter()
    run = training_run_execute(run=run, promote=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    embedding_update(training_run=run, device=args.device)
    embed_s = time.perf_counter() - start
    best = Path(run.checkpoint_dir) / "best"
    folder = args.out / f"checkpoint-{preset}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(best, folder)
    (folder / "metrics.json").write_text(json.dumps(run.metrics, indent=2))
    tasks = {}
    for name in args.tasks:
        start = time.perf_counter()
        kb = knowledge_base_build(task=SearchTask.objects.get(name=name), training_run=run, promote=False)
        scores = {key: kb.evaluation.get(key) for key in ("precision", "recall", "f1", "macro_f1", "accuracy")}
        tasks[name] = {
            "policy": kb.policy,
            "validation_score": kb.policy_validation.get("score"),
            "test": {key: value for key, value in scores.items() if value is not None},
            "build_s": time.perf_counter() - start,
        }
    return {
        "training_run": run.pk,
        "step_s": step_s,
        "steps": steps,
        "train_s": train_s,
        "embed_s": embed_s,
        "checkpoint_mb": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6,
        "pretraining_validation": {
            k: v for k, v in run.metrics.items() if k.startswith("val_") and not isinstance(v, (list, dict))
        },
        "tasks": tasks,
    }


def calibrated_step(preset: str, args) -> float:
    """Seconds per pre-training step of ``preset`` at the batch size on the device, timed on stored spectra."""
    import numpy as np

    from bench.gpu import step_time
    from kb.selectors import spectrum_store
    from training.model import PRESETS

    flux, valid = spectrum_store().read()
    rows = np.arange(min(len(flux), args.batch_size))
    data = {"flux": np.asarray(flux[rows]), "valid": np.asarray(valid[rows]), "z": rows}
    return step_time(PRESETS[preset], data, args.device, args.batch_size, CALIBRATION_STEPS)


if __name__ == "__main__":
    main()
