"""What the supervised baselines share: their inputs checked, a stratified validation split, and one
training loop: AdamW on class-balanced cross-entropy with a cosine-decaying learning rate, the weights
with the highest validation macro-F1 kept, early stopping.

Balanced and chosen on macro-F1 because the classes are far from equal (LINERs are a tenth of the
five-class set, lenses and outliers a few percent): plain cross-entropy, and weights chosen on it, favour
a network that never predicts a rare class, which is what the 3k run's CNN did.

Data enter as ``flux`` (N, L) float32, the preprocessed flux (dimensionless: divided by the median over
rest-frame 5300-5850 Angstrom), with 0 where a pixel was not observed, ``valid`` (N, L) bool and ``z``
(N,) redshift. A network is called as ``model(flux, valid, z)``. Pure numpy/torch; never imports Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VAL_FRACTION = 0.1  # of each class's training spectra, held out to choose the best weights
EVALS_PER_EPOCH = 2  # validation-loss measurements per epoch, for every network
PATIENCE = 6  # measurements in a row without a higher macro-F1 (three epochs) before training stops early
FINAL_LR = 0.05  # the cosine schedule's last learning rate, as a share of the first
BATCH_NORM_SPECTRA = 128  # training spectra on which batch-norm statistics are measured before validating
Progress = Callable[
    [int, int, dict], None
]  # (step, total steps, {"epoch", "loss", "lr"[, "val_loss", "val_macro_f1"]})


class TrainTest(NamedTuple):
    train_flux: np.ndarray  # (N, L) float32
    train_valid: np.ndarray | None  # (N, L) bool
    train_y: np.ndarray  # (N,) int64, index into classes
    classes: list[str]  # sorted distinct training labels
    test_flux: np.ndarray  # (M, L) float32
    test_valid: np.ndarray | None  # (M, L) bool
    train_z: np.ndarray | None  # (N,) float32 redshift
    test_z: np.ndarray | None  # (M,) float32


def checked(
    train_flux, train_labels, test_flux, train_valid=None, test_valid=None, train_z=None, test_z=None
) -> TrainTest:
    """Arrays as float32/bool, labels as class indices, and errors a person can act on."""
    train_flux = np.asarray(train_flux, dtype=np.float32)
    test_flux = np.asarray(test_flux, dtype=np.float32)
    labels = list(train_labels)
    if train_flux.ndim != 2 or test_flux.ndim != 2:
        raise ValueError(f"flux must be (N, L) arrays; got train {train_flux.shape} and test {test_flux.shape}")
    if len(labels) != len(train_flux):
        raise ValueError(f"{len(train_flux)} training spectra but {len(labels)} labels: give one label per spectrum")
    if len(test_flux) == 0:
        raise ValueError("no test spectra to classify: give at least one")
    if train_flux.shape[1] != test_flux.shape[1]:
        raise ValueError(
            f"training spectra have {train_flux.shape[1]} pixels but test spectra {test_flux.shape[1]}: "
            "resample both onto the same grid"
        )
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"the training labels hold {len(classes)} class {classes}: a classifier needs at least 2")
    checked_valid = []
    for name, flux, valid in (("train", train_flux, train_valid), ("test", test_flux, test_valid)):
        if not np.isfinite(flux).all():
            raise ValueError(
                f"{name}_flux holds NaN or inf at {int((~np.isfinite(flux)).sum())} pixels; "
                "store unobserved pixels as 0 with valid False"
            )
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != flux.shape:
                raise ValueError(f"{name}_valid is {valid.shape} but {name}_flux is {flux.shape}: they must match")
        checked_valid.append(valid)
    checked_z = []
    for name, flux, z in (("train", train_flux, train_z), ("test", test_flux, test_z)):
        if z is not None:
            z = np.asarray(z, dtype=np.float32)
            if z.shape != (len(flux),) or not np.isfinite(z).all():
                raise ValueError(f"{name}_z must hold one finite redshift per spectrum ({len(flux)}), got {z.shape}")
        checked_z.append(z)
    index = {label: i for i, label in enumerate(classes)}
    train_y = np.array([index[label] for label in labels], dtype=np.int64)
    return TrainTest(train_flux, checked_valid[0], train_y, classes, test_flux, checked_valid[1], *checked_z)


def validation_split(y: np.ndarray, *, fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified hold-out of class indices y (N,): (fit indices, validation indices), both sorted.

    Each class gives round(fraction x its count) spectra, but never its last one, so every class is
    trained on (scikit-learn's stratified splits refuse classes of one spectrum instead). If no class is
    large enough to give one, one spectrum of the largest class is held out.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        held.append(members[: min(math.floor(fraction * len(members) + 0.5), len(members) - 1)])
    val = np.concatenate(held)
    if len(val) == 0:
        values, counts = np.unique(y, return_counts=True)
        if counts.max() < 2:
            raise ValueError(
                "every class has a single training spectrum: one class needs two, "
                "so that one can be held out for validation"
            )
        val = rng.permutation(np.flatnonzero(y == values[np.argmax(counts)]))[:1]
    val = np.sort(val)
    return np.setdiff1d(np.arange(len(y)), val), val


@contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch for model initialisation and dropout; the caller's RNG state is given back after."""
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def fit_and_predict(
    make_model: Callable[[torch.device], nn.Module], data: TrainTest, *, seed: int, device: torch.device, **training
) -> list[str]:
    """Split the training spectra (``validation_split``), build the model ``make_model(device)`` under
    ``seed``, train it (``train_and_predict``, with ``training``'s options) and classify the test spectra."""
    fit, val = validation_split(data.train_y, seed=seed)
    with seeded(seed, device):
        return train_and_predict(make_model(device), data, fit, val, seed=seed, device=device, **training)


def train_and_predict(
    model: nn.Module,
    data: TrainTest,
    fit: np.ndarray,
    val: np.ndarray,
    *,
    seed: int,
    epochs: int,
    lr: float,
    batch_size: int,
    evals_per_epoch: int,
    device: torch.device,
    on_progress: Progress | None,
    weight_decay: float = 0.01,
) -> list[str]:
    """Fit ``model`` (flux, valid, z -> logits) on the training spectra ``fit`` by cross-entropy with each
    class weighted by the inverse of its share of ``fit``, the learning rate decaying along a cosine from
    ``lr`` to FINAL_LR of it; keep the weights with the highest macro-F1 on the spectra ``val`` (the lower
    validation loss breaks a tie) and return their predictions for the test spectra.

    ``evals_per_epoch`` validations per epoch; training stops after ``PATIENCE`` of them in a row
    without a higher macro-F1."""
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"need epochs >= 1 and batch_size >= 2 (batch norm); got {epochs} and {batch_size}")
    if data.train_valid is None or data.test_valid is None:
        raise ValueError("the networks need train_valid and test_valid, (N, L) bool, True where a pixel was observed")
    if data.train_z is None or data.test_z is None:
        raise ValueError("the networks need train_z and test_z, each spectrum's redshift")
    model = model.to(device)
    inputs = _tensors(data.train_flux, data.train_valid, data.train_z)  # (flux, valid, z)
    y = torch.from_numpy(data.train_y)
    counts = np.bincount(data.train_y[fit], minlength=len(data.classes))
    balance = torch.tensor(len(fit) / (len(data.classes) * np.maximum(counts, 1)), dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n_batches = max(1, len(fit) // batch_size)  # each epoch deals the fit spectra into this many near-equal batches
    reference = fit[:: max(1, len(fit) // BATCH_NORM_SPECTRA)]  # evenly spaced
    checks = {round((i + 1) * n_batches / evals_per_epoch) for i in range(evals_per_epoch)}  # batches then validated
    total, step, best = epochs * n_batches, 0, _Best()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: FINAL_LR + (1 - FINAL_LR) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))
    )
    for epoch in range(epochs):
        order = fit[torch.randperm(len(fit), generator=generator).numpy()]
        for b, batch in enumerate(np.array_split(order, n_batches)):
            loss = _train_batch(model, optimizer, _rows(inputs, batch), y[batch], balance, device)
            schedule.step()
            step += 1
            report = {"epoch": epoch + 1, "loss": loss, "lr": optimizer.param_groups[0]["lr"]}
            if b + 1 in checks:
                _precise_batch_norm(model, _rows(inputs, reference), device)
                logits = _logits(model, _rows(inputs, val), device)
                report["val_loss"] = F.cross_entropy(logits, y[val], weight=balance).item()
                report["val_macro_f1"] = macro_f1(y[val].numpy(), logits.argmax(dim=1).numpy(), len(data.classes))
                best.offer(model, (report["val_macro_f1"], -report["val_loss"]))
            if on_progress:
                on_progress(step, total, report)
            if best.stale >= PATIENCE:
                break
        if best.stale >= PATIENCE:
            break
    if best.state is None:
        raise RuntimeError(
            f"the validation loss was never finite (last training loss {report['loss']}): "
            "lower lr, or look for extreme flux values"
        )
    model.load_state_dict(best.state)
    test_logits = _logits(model, _tensors(data.test_flux, data.test_valid, data.test_z), device)  # (M, C)
    return [data.classes[i] for i in test_logits.argmax(dim=1).tolist()]


Inputs = tuple[torch.Tensor, ...]  # (flux (n, L), valid (n, L), z (n,)): what a network is called with


def _tensors(*arrays: np.ndarray) -> Inputs:
    return tuple(torch.from_numpy(np.array(a)) for a in arrays)


def _rows(inputs: Inputs, rows) -> Inputs:
    return tuple(t[rows] for t in inputs)


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """The mean over the ``n_classes`` classes of each one's F1 (0 for a class never predicted nor present)."""
    scores = []
    for c in range(n_classes):
        tp = np.sum((predicted == c) & (truth == c))
        fp, fn = np.sum((predicted == c) & (truth != c)), np.sum((predicted != c) & (truth == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def _train_batch(
    model: nn.Module, optimizer, inputs: Inputs, y: torch.Tensor, balance: torch.Tensor, device: torch.device
) -> float:
    """One optimizer step on a batch, cross-entropy against its labels ``y`` with class weights ``balance``;
    returns the loss."""
    model.train()
    loss = F.cross_entropy(_forward(model, inputs, device), y.to(device), weight=balance.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


class _Best:
    """The weights with the best validation score so far (a tuple, higher is better), and how many
    validations have passed since."""

    def __init__(self) -> None:
        self.score, self.state, self.stale = (-math.inf,), None, 0

    def offer(self, model: nn.Module, score: tuple[float, ...]) -> None:
        if all(map(math.isfinite, score)) and score > self.score:
            self.score, self.stale = score, 0
            self.state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        else:
            self.stale += 1


@torch.no_grad()
def _precise_batch_norm(model: nn.Module, inputs: Inputs, device: torch.device) -> None:
    """Re-measure every batch norm's running mean and variance with the current weights on these spectra.

    The running averages that training keeps lag behind the weights; evaluated with them, a model
    can score far worse than it trains (badly so for the fine-tuned encoder's head, whose inputs
    move by more than their spread as the encoder learns). Precise statistics (Wu & Johnson 2021,
    "Rethinking 'Batch' in BatchNorm") make evaluation see what training saw.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
        m.train()
    n = len(inputs[0])
    for batch in np.array_split(np.arange(n), max(1, n // 64)):
        _forward(model, _rows(inputs, batch), device)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def _forward(model: nn.Module, inputs: Inputs, device: torch.device) -> torch.Tensor:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(*(t.to(device) for t in inputs)).float()


@torch.no_grad()
def _logits(model: nn.Module, inputs: Inputs, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """(n, C) logits on the CPU, in eval mode (batch norm's running statistics, no dropout)."""
    model.eval()
    n = len(inputs[0])
    return torch.cat(
        [_forward(model, _rows(inputs, slice(s, s + batch_size)), device).cpu() for s in range(0, n, batch_size)]
    )
