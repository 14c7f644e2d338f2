"""Masked-modelling pre-training of GalSpecEncoder (paper section 3.3).

AdamW, linear warm-up then cosine decay, batches of 32, validation on held-out spectra with a fixed
mask, the best checkpoint kept by a robust validation figure, and a ``last`` checkpoint to resume from.
Deterministic for a given seed on the CPU.

The loss is chi-squared per hidden pixel (squared error weighted by the pixel's inverse variance), so
a strong line counts by how significant it is, not by how high: with the plain MSE of normalised flux
(the paper's, ``loss="mse"``) a few spectra with the strongest lines dominate both training and the
pooled validation figure. The best checkpoint is the one with the lowest median over validation
spectra of their own chi-squared per hidden pixel, a figure no handful of spectra can move.

Over several processes (``torch.distributed`` initialised, as ``training.distributed`` does under
``torchrun``), the model is wrapped in DistributedDataParallel: each rank draws its share of every batch
(batch_size / world) from its own slice of the training rows with its own random stream, gradients are
averaged, and rank 0 alone validates and writes checkpoints, which hold every rank's random state so that
a resumed run carries on where each rank stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from training.checkpoint import load_training_state, resolve_device, save_checkpoint, save_training_state
from training.model import EncoderConfig, MaskedSpectrumModel, interpolation_baseline, span_mask


@dataclass(frozen=True)
class PretrainConfig:
    lr: float = 1e-5  # the paper's; the small preset learns in minutes with about 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 2000
    max_steps: int = 500_000
    min_lr_ratio: float = 0.05  # the cosine ends at lr * min_lr_ratio
    batch_size: int = 32
    eval_every: int = 100
    val_fraction: float = 0.1
    max_val_spectra: int = 512
    mask_ratio: float = 0.25
    mask_span: int = 20  # pixels (28 Angstrom) per hidden span; neighbouring spans merge
    loss: str = "chi2"  # chi2: squared error x inverse variance | mse: the paper's plain squared error
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 keeps torch's default

    def to_dict(self) -> dict:
        return asdict(self)


BEST, LAST = "best", "last"  # the checkpoints in a run's folder: best validation figure, and the one to resume from
LOSSES = ("chi2", "mse")
SELECTED_BY = "val_median_spectrum_masked_chi2"  # the figure that chooses the best checkpoint

# Training defaults per model preset: the paper's for `paper`; for `small`, a schedule that learns in
# about five minutes on two CPU cores (measured: see README).
PRESET_DEFAULTS = {
    "paper": {},
    "small": dict(lr=2e-3, warmup_steps=20, max_steps=300, eval_every=50, max_val_spectra=256),
    "medium": dict(lr=5e-4, warmup_steps=200, max_steps=3000, eval_every=250, max_val_spectra=512),
}


def learning_rate(step: int, config: PretrainConfig) -> float:
    """Linear warm-up to config.lr over warmup_steps, then cosine decay to lr * min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def split(n: int, config: PretrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of n spectra: (train indices, validation indices), sorted."""
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = min(config.max_val_spectra, max(1, round(config.val_fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def validation_sample(rows: np.ndarray, config: PretrainConfig) -> np.ndarray:
    """At most config.max_val_spectra of ``rows``, a seeded sample, sorted."""
    if len(rows) <= config.max_val_spectra:
        return rows
    return np.sort(np.random.default_rng(config.seed).choice(rows, config.max_val_spectra, replace=False))


def _batch(arrays, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the (memory-mapped) flux, valid and ivar as tensors; indices sorted for sequential reads."""
    flux, valid, ivar = arrays
    return tuple(
        torch.from_numpy(np.ascontiguousarray(a[indices], dtype=dtype)).to(device)
        for a, dtype in ((flux, np.float32), (valid, bool), (ivar, np.float32))
    )


def _autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def validation_errors(model: MaskedSpectrumModel, arrays, indices, hidden: torch.Tensor, device) -> np.ndarray:
    """Per validation spectrum, over its hidden valid pixels: the summed squared error, the summed
    squared error x ivar (chi-squared), the number of pixels and the summed noise variance 1/ivar (what
    a perfect model's squared error would sum to): (n, 4)."""
    model.eval()
    out = []
    for start in range(0, len(indices), 64):
        f, v, w = _batch(arrays, indices[start : start + 64], device)
        h = hidden[start : start + 64].to(device)
        with _autocast(device):
            _, prediction = model.forward_loss(f, v, h)
        out.append(_errors(prediction.float(), f, v, w, h).cpu().numpy())
    model.train()
    return np.concatenate(out)


def interpolation_errors(arrays, indices, hidden: torch.Tensor) -> np.ndarray:
    """The same per-spectrum errors for linear interpolation across the hidden spans: (n, 4)."""
    f, v, w = _batch(arrays, indices, torch.device("cpu"))
    prediction = torch.from_numpy(interpolation_baseline(f.numpy(), v.numpy(), hidden.numpy()))
    return _errors(prediction, f, v, w, hidden).numpy()


def _errors(prediction, flux, valid, ivar, hidden) -> torch.Tensor:
    scored = (hidden & valid).float()
    squared = (prediction - flux) ** 2 * scored
    variance = torch.where(ivar > 0, 1 / ivar.clamp(min=1e-30), 0.0) * scored
    return torch.stack([squared.sum(1), (squared * ivar).sum(1), scored.sum(1), variance.sum(1)], 1)


def mse(errors: np.ndarray) -> float:
    """Pooled over every hidden pixel of every spectrum: the squared error's mean."""
    return float(errors[:, 0].sum() / max(errors[:, 2].sum(), 1.0))


def chi2(errors: np.ndarray) -> float:
    """Pooled: chi-squared per hidden pixel."""
    return float(errors[:, 1].sum() / max(errors[:, 2].sum(), 1.0))


def per_spectrum(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each spectrum's own (MSE, chi-squared per pixel), for spectra with a hidden valid pixel."""
    scored = errors[:, 2] > 0
    return errors[scored, 0] / errors[scored, 2], errors[scored, 1] / errors[scored, 2]


def noise_floor(errors: np.ndarray) -> np.ndarray:
    """Each spectrum's MSE were the prediction the noiseless flux: its mean noise variance on the scored
    pixels (for spectra with a hidden valid pixel)."""
    scored = errors[:, 2] > 0
    return errors[scored, 3] / errors[scored, 2]


def figures(errors: np.ndarray, interp_errors: np.ndarray) -> dict:
    """Validation figures of a model's errors beside interpolation's on the same hidden pixels."""
    model_mse, model_chi2 = per_spectrum(errors)
    interp_mse, interp_chi2 = per_spectrum(interp_errors)
    return {
        "val_masked_mse": mse(errors),
        "val_masked_chi2": chi2(errors),
        "val_median_spectrum_masked_mse": float(np.median(model_mse)),
        "val_median_spectrum_masked_chi2": float(np.median(model_chi2)),
        "val_fraction_beating_interp": float((model_chi2 < interp_chi2).mean()),  # each on its own chi-squared
        "val_interp_mse": mse(interp_errors),
        "val_interp_chi2": chi2(interp_errors),
        "val_median_spectrum_interp_mse": float(np.median(interp_mse)),
        "val_median_spectrum_interp_chi2": float(np.median(interp_chi2)),
        "val_median_spectrum_noise_mse": float(np.median(noise_floor(errors))),  # a perfect model's
    }


@dataclass
class _Loop:
    """What the training loop carries from step to step."""

    model: MaskedSpectrumModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # draws batches and masks
    device: torch.device
    train_idx: np.ndarray  # (n_train,) store rows
    val_idx: np.ndarray  # (n_val,) store rows
    val_hidden: torch.Tensor  # (n_val, L) bool: the fixed validation mask
    interp_errors: np.ndarray  # (n_val, 4): interpolation's errors on it
    state: dict  # step, best_val, history, seconds (and the best checkpoint's per-spectrum figures)
    shared: dict  # model, training and preprocessing settings, saved in every checkpoint
    rank: int = 0  # this process among ``world`` (torch.distributed), 0 alone validates and saves
    world: int = 1
    ddp: DistributedDataParallel | None = None  # the model as trained over several processes


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pretrain(
    flux,
    valid,
    ivar,
    *,
    model_config: EncoderConfig,
    config: PretrainConfig,
    out_dir: str | Path,
    preprocess_config: dict | None = None,
    on_progress: Callable[[int, int, dict], None] | None = None,
    resume: bool = True,
    rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
) -> dict:
    """Pre-train on flux (n, L) float32, valid (n, L) bool and ivar (n, L) float32 (the normalised flux's
    inverse variance); returns the metrics also written to out_dir/metrics.json. Checkpoints: out_dir/best
    (lowest SELECTED_BY), out_dir/last (to resume from).

    ``rows`` (m,) are the rows to learn from (default: all) and ``val_rows`` the rows the checkpoint is
    chosen on (at most ``max_val_spectra`` of them, a seeded sample); without ``val_rows`` a seeded
    ``val_fraction`` of ``rows`` is set aside instead. Run by every rank of a distributed run (see the
    module's docstring); ranks other than 0 write nothing and return {}."""
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = (flux, valid, ivar)
    loop = _prepare(arrays, model_config, config, out_dir, preprocess_config, resume, rows, val_rows)
    started = time.perf_counter() - loop.state["seconds"]
    loop.model.train()
    step = loop.state["step"]
    while step < config.max_steps:
        report = train_step(loop, arrays, step, config)
        step += 1
        if step % config.eval_every == 0 or step == config.max_steps:
            generators = _gathered(loop, loop.generator.get_state())
            loop.state.update(step=step, seconds=time.perf_counter() - started)
            if loop.rank == 0:
                report.update(validate_and_save(loop, arrays, step, report, out_dir))
                save_training_state(
                    out_dir / LAST,
                    model=loop.model,
                    optimizer=loop.optimizer,
                    generators=generators,
                    state=loop.state,
                    shared=loop.shared,
                )
        if on_progress and loop.rank == 0:
            on_progress(step, config.max_steps, report)
    if loop.rank != 0:
        return {}
    metrics = _metrics(loop, step, time.perf_counter() - started)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _gathered(loop: _Loop, value) -> list:
    """``value`` from every rank, in rank order (a list of one when not distributed)."""
    if loop.world == 1:
        return [value]
    out = [None] * loop.world
    dist.all_gather_object(out, value)
    return out


def _prepare(
    arrays,
    model_config: EncoderConfig,
    config: PretrainConfig,
    out_dir: Path,
    preprocess_config: dict | None,
    resume: bool,
    rows: np.ndarray | None,
    val_rows: np.ndarray | None,
) -> _Loop:
    """The device, the train/validation split and its fixed mask, the model and optimizer (restored from
    out_dir/last when resuming), and interpolation's validation errors."""
    rank, world = rank_and_world()
    if config.batch_size % world:
        raise ValueError(f"a batch of {config.batch_size} does not split over {world} processes: choose a multiple")
    device = resolve_device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    n = len(arrays[0])
    usable = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    if val_rows is None:
        train_pos, val_pos = split(len(usable), config)
        train_idx, val_idx = usable[train_pos], usable[val_pos]
    else:
        train_idx, val_idx = usable, validation_sample(np.unique(np.asarray(val_rows, dtype=np.int64)), config)
        if np.intersect1d(train_idx, val_idx).size:
            raise ValueError("the validation rows overlap the rows to train on")
    if len(train_idx) == 0:
        raise ValueError(f"{len(usable)} spectra leave none to train on after the validation split")
    if len(val_idx) == 0:
        raise ValueError("no spectrum to validate on: the checkpoint could not be chosen")
    val_hidden = span_mask(
        (len(val_idx), model_config.n_pixels),
        mask_ratio=config.mask_ratio,
        span=config.mask_span,
        generator=torch.Generator().manual_seed(config.seed + 1),
    )
    model = MaskedSpectrumModel(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed + 2 + rank)  # each rank its own batches and masks
    state = {"step": 0, "best_val": math.inf, "best": {}, "history": [], "seconds": 0.0}
    if resume and (out_dir / LAST).exists():
        state = load_training_state(out_dir / LAST, model=model, optimizer=optimizer, generator=generator, rank=rank)
        if "best" not in state:
            raise ValueError(
                f"{out_dir} holds a run started before pre-training used chi-squared and chose its checkpoint "
                "on the validation reserve: it cannot be resumed; start a new run (its checkpoints stay readable)"
            )
    shared = {"model": model_config.to_dict(), "training": config.to_dict(), "preprocess": preprocess_config or {}}
    ddp = None
    if world > 1:
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Loop(
        model,
        optimizer,
        generator,
        device,
        train_idx,
        val_idx,
        val_hidden,
        interpolation_errors(arrays, val_idx, val_hidden) if rank == 0 else np.empty((0, 4)),
        state,
        shared,
        rank,
        world,
        ddp,
    )


def train_step(loop: _Loop, arrays, step: int, config: PretrainConfig) -> dict:
    """One optimizer step on a random batch with fresh span masks; returns its loss and learning rate (over
    all ranks, each drawing batch_size / world spectra, the loss averaged)."""
    model, optimizer = loop.ddp or loop.model, loop.optimizer
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, config)
    mine = loop.train_idx[loop.rank :: loop.world]  # each rank draws from its own slice of the training rows
    picks = np.sort(
        mine[torch.randint(len(mine), (config.batch_size // loop.world,), generator=loop.generator).numpy()]
    )
    f, v, w = _batch(arrays, picks, loop.device)
    hidden = span_mask(
        f.shape, mask_ratio=config.mask_ratio, span=config.mask_span, generator=loop.generator, device=loop.device
    )
    with _autocast(loop.device):
        loss = model(f, v, hidden, w if config.loss == "chi2" else None)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss = loss.detach()
    if loop.world > 1:
        dist.all_reduce(loss)
        loss /= loop.world
    return {"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]}


def validate_and_save(loop: _Loop, arrays, step: int, report: dict, out_dir: Path) -> dict:
    """The validation figures (``figures``), recorded in the history; a new lowest SELECTED_BY is saved as
    out_dir/best. Returns the masked MSE and chi-squared."""
    found = figures(
        validation_errors(loop.model, arrays, loop.val_idx, loop.val_hidden, loop.device), loop.interp_errors
    )
    loop.state["history"].append(
        {
            "step": step,
            "train_loss": report["loss"],
            "lr": report["lr"],
            **{key: found[key] for key in ("val_masked_mse", "val_masked_chi2", SELECTED_BY)},
        }
    )
    if found[SELECTED_BY] < loop.state["best_val"]:
        loop.state.update(best_val=found[SELECTED_BY], best={**found, "best_step": step})
        save_checkpoint(out_dir / BEST, loop.model, {**loop.shared, "metrics": {"step": step, **found}})
    return {key: found[key] for key in ("val_masked_mse", "val_masked_chi2")}


def _metrics(loop: _Loop, step: int, seconds: float) -> dict:
    best = loop.state["best"]
    return {
        **best,
        "model_over_interp": best["val_masked_mse"] / best["val_interp_mse"] if best.get("val_interp_mse") else None,
        "selected_by": SELECTED_BY,
        "loss": loop.shared["training"]["loss"],
        "steps": step,
        "n_train": int(len(loop.train_idx)),
        "n_val": int(len(loop.val_idx)),
        "seconds": round(seconds, 1),
        "device": loop.device.type,
        "processes": loop.world,
        "history": loop.state["history"],
    }
