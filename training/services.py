"""Writes for training: creating and executing pre-training runs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kb.preprocess import PAPER, PreprocessConfig
from kb.reserves import TRAIN, VALIDATION
from kb.selectors import spectrum_reserve_rows, spectrum_store
from kb.services.audit import audit_record
from kb.store import folder_leftovers_clear, folder_write
from training.checkpoint import load_masked_model, read_info
from training.distributed import LAUNCH, Nodes, join, launch
from training.model import PRESETS, EncoderConfig
from training.models import TrainingRun
from training.pretrain import BEST, PRESET_DEFAULTS, PretrainConfig, pretrain

ProgressCallback = Callable[[int, int, dict], None]


def training_run_create(*, preset: str, out_dir: str | Path | None = None, **train_options) -> TrainingRun:
    """Record a run of `preset` ('small' or 'paper'); options override PretrainConfig's defaults."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    unknown = set(train_options) - fields
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
    options = {**PRESET_DEFAULTS[preset], **{k: v for k, v in train_options.items() if v is not None}}
    config = PretrainConfig(**options)
    run = TrainingRun.objects.create(
        preset=preset,
        model_config=dataclasses.asdict(PRESETS[preset]),
        train_config=dataclasses.asdict(config),
        max_steps=config.max_steps,
    )
    run.checkpoint_dir = str(Path(out_dir) if out_dir else settings.DATA_DIR / "checkpoints" / f"run-{run.pk}")
    run.save(update_fields=["checkpoint_dir"])
    return run


def training_run_execute(
    *, run: TrainingRun, promote: bool = True, on_progress: ProgressCallback | None = None
) -> TrainingRun:
    """Pre-train on every ingested spectrum of the training reserve, choosing the checkpoint on the
    validation reserve (kb.reserves.reserve); resumes from the run's last checkpoint if there is one.
    With ``GALSPEC_TRAIN_PROCESSES`` above 1, over that many processes on this machine (``torchrun``:
    DistributedDataParallel, NCCL on GPUs, gloo on CPUs; ``training.distributed``), and with
    ``GALSPEC_TRAIN_NODES`` above 1 on as many machines, this one node 0 (the others ``training_run_join``).

    On success the run records its metrics and, with ``promote``, its checkpoint goes into service.
    """
    store = spectrum_store()
    flux, valid = store.read()
    rows, val_rows = spectrum_reserve_rows(TRAIN), spectrum_reserve_rows(VALIDATION)
    if len(rows) < 10 or len(val_rows) < 1:
        raise ValueError(
            f"{len(rows)} ingested spectra are in the training reserve and {len(val_rows)} in the validation "
            "reserve; pre-training needs at least 10 and 1: ingest more spectra"
        )
    nodes = training_nodes(rank=0)
    shutil.rmtree(Path(run.checkpoint_dir) / LAUNCH, ignore_errors=True)  # a machine joining must not read the last
    run.status, run.started_at, run.n_spectra, run.error = TrainingRun.Status.RUNNING, timezone.now(), len(rows), ""
    run.save(update_fields=["status", "started_at", "n_spectra", "error"])

    def progress(step: int, max_steps: int, metrics: dict) -> None:
        if step == max_steps or step % 25 == 0:
            TrainingRun.objects.filter(pk=run.pk).update(step=step, max_steps=max_steps)
        if on_progress:
            on_progress(step, max_steps, metrics)

    model_config = EncoderConfig.from_dict(run.model_config)
    config = PretrainConfig(**run.train_config)
    processes = settings.GALSPEC_TRAIN_PROCESSES
    common = dict(
        model_config=model_config,
        config=config,
        out_dir=Path(run.checkpoint_dir),
        preprocess_config=PAPER.to_dict(),
        on_progress=progress,
        val_rows=val_rows,
    )
    try:
        if processes > 1 or nodes.count > 1:
            metrics = launch(processes=processes, store=store.folder, rows=rows, nodes=nodes, **common)
        else:
            metrics = pretrain(flux, valid, store.read_ivar(), rows=rows, **common)
    except BaseException as error:
        run.status, run.error, run.finished_at = TrainingRun.Status.FAILED, repr(error), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.status, run.metrics, run.finished_at = TrainingRun.Status.SUCCEEDED, metrics, timezone.now()
    run.step = run.max_steps = config.max_steps
    run.save(update_fields=["status", "metrics", "finished_at", "step", "max_steps"])
    if promote:
        training_run_promote(run=run)
    return run


def training_nodes(*, rank: int) -> Nodes:
    """The machines a pre-training spans (``GALSPEC_TRAIN_NODES``, meeting at ``GALSPEC_TRAIN_MASTER``),
    this one node ``rank``; ValueError if the settings do not make a valid set."""
    return Nodes(count=settings.GALSPEC_TRAIN_NODES, rank=rank, master=settings.GALSPEC_TRAIN_MASTER)


def training_run_join(*, run: TrainingRun, node_rank: int, wait_s: float = 600, poll_s: float = 1.0) -> None:
    """Run this machine's share (node ``node_rank``) of ``run``, pre-trained over several machines, once
    node 0 has launched it; returns when the run ends. ValueError, running nothing, if the settings make
    no such node, the run has ended, or node 0 has not launched it within ``wait_s`` seconds."""
    nodes = training_nodes(rank=node_rank)
    if nodes.count == 1:
        raise ValueError("GALSPEC_TRAIN_NODES is 1: a run on one machine has no node to join")
    spec = Path(run.checkpoint_dir) / LAUNCH / "spec.json"
    deadline = time.monotonic() + wait_s
    while True:
        run.refresh_from_db(fields=["status"])
        if run.status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED):
            raise ValueError(f"{run} has {run.status}: there is nothing to join")
        if run.status == TrainingRun.Status.RUNNING and spec.exists():
            break
        if time.monotonic() > deadline:
            raise ValueError(f"{run} was not launched within {wait_s:.0f} s: start its pre-training on node 0 first")
        time.sleep(poll_s)
    join(spec, processes=settings.GALSPEC_TRAIN_PROCESSES, nodes=nodes)


def training_run_import(*, source: str | Path, promote: bool = True) -> TrainingRun:
    """Record a checkpoint pre-trained elsewhere (on a GPU machine, or the one shipped in
    ``training/shipped``) as a succeeded run: ``source`` is a run's folder (``best`` inside, and its
    ``metrics.json``) or a checkpoint folder. It is copied into GALSPEC_DATA_DIR/checkpoints/run-ID and,
    with ``promote``, goes into service."""
    source = Path(source)
    best = source / BEST if (source / BEST).is_dir() else source
    try:
        info = read_info(best)
        prepared = PreprocessConfig.from_dict(info["preprocess"])
        model_config = EncoderConfig.from_dict(info["model"])
        train_config = PretrainConfig(**info["training"]).to_dict()
        load_masked_model(best, "cpu")
    except (OSError, KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{source} is not a GalSpec checkpoint: {error}") from None
    if prepared != PAPER:
        raise ValueError(
            f"{source} was trained on spectra prepared otherwise ({info.get('preprocess')}) than this "
            f"installation prepares them ({PAPER.to_dict()}); its embeddings would not be comparable"
        )
    metrics_file = source / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else info.get("metrics", {})
    metrics.setdefault("best_step", info.get("metrics", {}).get("step"))
    preset = next((name for name, preset in PRESETS.items() if preset == model_config), "custom")
    steps = metrics.get("steps", info.get("metrics", {}).get("step", 0))
    now = timezone.now()
    with transaction.atomic():  # the run and its folder both, or neither
        run = _imported(preset, model_config, train_config, steps, metrics, now)
        folder = Path(run.checkpoint_dir)
        try:
            folder_write(folder, lambda tmp: _copy(best, metrics, tmp))
        except BaseException:
            folder_leftovers_clear(folder)
            raise
        if promote:
            training_run_promote(run=run)
    return run


def _imported(preset: str, model_config: EncoderConfig, train_config: dict, steps: int, metrics: dict, now):
    run = TrainingRun.objects.create(
        preset=preset,
        model_config=model_config.to_dict(),
        train_config=train_config,
        status=TrainingRun.Status.SUCCEEDED,
        step=steps,
        max_steps=steps,
        n_spectra=metrics.get("n_train", 0),
        metrics=metrics,
        started_at=now,
        finished_at=now,
    )
    run.checkpoint_dir = str(settings.DATA_DIR / "checkpoints" / f"run-{run.pk}")
    run.save(update_fields=["checkpoint_dir"])
    return run


def _copy(best: Path, metrics: dict, folder: Path) -> None:
    shutil.copytree(best, folder / BEST)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))


@transaction.atomic
def training_run_promote(*, run: TrainingRun, actor=None, reason: str = "") -> TrainingRun:
    """Put a succeeded run's checkpoint into service, taking the previous one out (one switch), in the audit
    trail (``actor`` None: a command run on the server, ``manage.py import_checkpoint`` or ``pretrain``)."""
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValueError(f"{run} has not succeeded; only a finished run can go into service")
    previous = TrainingRun.objects.select_for_update().filter(in_service=True).exclude(pk=run.pk)
    before = {"in_service": [str(r) for r in previous]}
    previous.update(in_service=False)
    run.in_service = True
    run.save(update_fields=["in_service"])
    audit_record(
        actor=actor,
        action="checkpoint_promoted",
        subject=f"training run {run.pk}",
        before=before,
        after={"in_service": [str(run)], "checkpoint": run.checkpoint_name},
        reason=reason or "a command on the server",
    )
    return run
