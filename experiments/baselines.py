"""The methods the knowledge base is compared with in the paper's Table 2 (section 4.1), made honest.

Every method sees the same training spectra and labels, is fit on them alone (never on the test
spectra), and predicts one training label per test spectrum, deterministically for a given ``seed``:

- ``flux_knn``: the knowledge base's own K-vote (``inference.retrieval.knn_vote``) on the raw flux;
- ``pca_knn``: the same vote on principal components fit on the training flux;
- ``random_forest``: the paper's classical ML baseline;
- ``cnn``: a supervised 1D CNN in the spirit of GalSpecNet (Wu et al. 2024), the paper's DL baseline;
- ``encoder_finetuned``: the pre-trained GalSpecEncoder with a linear head, fine-tuned end to end
  (the paper's "supervised GalSpecEncoder").

The two networks share one training loop: AdamW on cross-entropy (the paper gives both the same loss
and optimizer), 10% of the training spectra held out (stratified) and the weights with the lowest
validation loss kept. Neither weights its loss by class, like the random forest: class imbalance is
left as it is in every method, as it is in the knowledge base's vote.

Data enter as ``flux`` (N, L) float32, the preprocessed flux (dimensionless: divided by the median over
rest-frame 5300-5850 Angstrom, see kb/preprocess.py; L = 3688 on the paper's grid), with 0 where a pixel
was not observed, and ``valid`` (N, L) bool, True where a pixel was observed. Labels are strings.

Pure numpy/torch/scikit-learn/faiss; never imports Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from torch import nn

from inference.retrieval import knn_vote
from training.checkpoint import load_checkpoint, resolve_device
from training.model import GalSpecEncoder

VAL_FRACTION = 0.1  # of each class's training spectra, held out to choose the best weights
PATIENCE = 5  # validations in a row without a lower loss before training stops early
BATCH_NORM_SPECTRA = 128  # training spectra on which batch-norm statistics are measured before validating
Progress = Callable[[int, int, dict], None]  # (step, total steps, {"epoch", "loss"[, "val_loss"]})


# --- the K-vote on other vectors ---------------------------------------------------------------------


def flux_knn(train_flux, train_labels, test_flux, *, k: int = 3, weight_function: str = "exp") -> list[str]:
    """The knowledge base's K-vote on the raw flux (N, L), unobserved pixels as stored (0).

    Distances are Euclidean in flux units, so the ``exp`` weights (softmax of exp(-distance)) are nearly
    uniform when neighbours lie many units away: then the vote is close to a plain majority.
    """
    data = _checked(train_flux, train_labels, test_flux)
    return _vote(data.train_flux, data, data.test_flux, k=k, weight_function=weight_function)


def pca_knn(
    train_flux,
    train_labels,
    test_flux,
    *,
    n_components: int = 64,
    k: int = 3,
    weight_function: str = "exp",
    seed: int = 0,
) -> list[str]:
    """The same K-vote on principal components of the flux, fit on the training spectra only.

    ``n_components`` (capped at min(n_train, L)) defaults to 64, chosen for PCA's sake rather than to
    match the knowledge base's vector width (512 for the ``small`` preset, 3072 for ``paper``): galaxy
    continua need about ten eigenspectra (Yip et al. 2004); the next few dozen keep the emission-line
    strengths and ratios that separate star-forming, AGN and quiescent spectra; the thousands after
    them are mostly noise, which is what blurs the distances of ``flux_knn``. Sweep it to be sure on
    a given data set. Components are not whitened: distances stay in flux units, as in ``flux_knn``.
    """
    data = _checked(train_flux, train_labels, test_flux)
    n_components = min(n_components, *data.train_flux.shape)
    pca = PCA(n_components=n_components, random_state=seed).fit(data.train_flux)
    train_components, test_components = pca.transform(data.train_flux), pca.transform(data.test_flux)  # (N, n), (M, n)
    return _vote(train_components, data, test_components, k=k, weight_function=weight_function)


def _vote(vectors: np.ndarray, data: _TrainTest, queries: np.ndarray, *, k: int, weight_function: str) -> list[str]:
    labels = [data.classes[i] for i in data.train_y]
    votes = knn_vote(
        vectors.astype(np.float32), labels, queries.astype(np.float32), k=k, weight_function=weight_function
    )
    return [v.label for v in votes]


# --- random forest ----------------------------------------------------------------------------------


def random_forest(train_flux, train_labels, test_flux, *, seed: int = 0, n_estimators: int = 300) -> list[str]:
    """A random forest (Breiman 2001) on the flux (N, L), one feature per pixel.

    scikit-learn's defaults otherwise (sqrt(L) pixels tried per split, fully grown trees); in particular
    ``class_weight`` is left unset, so rare classes are not up-weighted, as in the other methods.
    All cores are used; the result depends only on ``seed``.
    """
    data = _checked(train_flux, train_labels, test_flux)
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=-1)
    forest.fit(data.train_flux, data.train_y)
    return [data.classes[i] for i in forest.predict(data.test_flux)]


# --- the networks -----------------------------------------------------------------------------------


class SpectrumCNN(nn.Module):
    """A 1D CNN in the spirit of GalSpecNet: (N, L) flux and valid -> (N, C) class logits.

    Four Conv1d + BatchNorm + ReLU + MaxPool(2) stages with 16, 32, 64 and 128 channels; the first
    convolution has stride 4, so the spectrum is at 1/8 of its pixels after one stage, which is what
    lets it train on two CPU cores. A feature at the last stage sees about 230 pixels (320 Angstrom
    on the paper's grid, wide enough for [OIII] 5007 with H-beta). Global average and max pooling make
    it translation invariant (the inductive bias the paper credits for the CNN's results across
    redshift); then dropout and a linear head.
    """

    def __init__(self, n_classes: int, *, channels=(16, 32, 64, 128), kernels=(9, 5, 5, 3), dropout: float = 0.3):
        super().__init__()
        layers, width = [], 2  # input channels: flux and valid
        for i, (out, kernel) in enumerate(zip(channels, kernels)):
            layers += [
                nn.Conv1d(width, out, kernel, stride=4 if i == 0 else 1, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(out),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, n_classes))

    def forward(self, flux: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.features(torch.stack([flux, valid.to(flux.dtype)], dim=1))  # (N, 2, L) -> (N, C', L / 64)
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)  # (N, 2 C')
        return self.head(pooled)


class EncoderClassifier(nn.Module):
    """GalSpecEncoder's embedding (``forward_features``, (N, E), E = ``config.embedding_width``) and a
    linear head -> (N, C) class logits.

    The head standardises each embedding dimension first (batch norm without affine parameters, as in
    MAE's linear probe, He et al. 2022), so once trained it is one linear map. Without it the head
    barely learns in a short fine-tuning: the embeddings are means over hundreds of tokens and differ
    from spectrum to spectrum by about 1% of their size (measured on a small-preset checkpoint).
    """

    def __init__(self, encoder: GalSpecEncoder, n_classes: int):
        super().__init__()
        self.encoder = encoder
        width = encoder.config.embedding_width
        self.head = nn.Sequential(nn.BatchNorm1d(width, affine=False, eps=1e-6), nn.Linear(width, n_classes))

    def forward(self, flux: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_features(flux, valid))


def cnn(
    train_flux,
    train_valid,
    train_labels,
    test_flux,
    test_valid,
    *,
    seed: int = 0,
    epochs: int = 15,
    lr: float = 1e-3,
    batch_size: int = 64,
    device: str = "cpu",
    on_progress: Progress | None = None,
) -> list[str]:
    """Train ``SpectrumCNN`` on the training spectra and classify the test spectra.

    AdamW (lr 1e-3, weight decay 0.01), batches of ``batch_size``, at most ``epochs`` epochs, stopping
    after ``PATIENCE`` epochs without a lower validation loss; the best epoch's weights classify.
    About a minute for 2000 spectra on two CPU cores. ``on_progress(step, total, report)`` after every
    batch (``total`` assumes no early stop).
    """
    data = _checked(train_flux, train_labels, test_flux, train_valid, test_valid)
    if data.train_flux.shape[1] < 64:  # a stride of 4, then 4 poolings by 2
        raise ValueError(f"the CNN needs spectra of 64 pixels or more, got {data.train_flux.shape[1]}")
    device = resolve_device(device)
    fit, val = validation_split(data.train_y, seed=seed)
    with _seeded(seed, device):
        model = SpectrumCNN(len(data.classes))
        return _train_and_predict(
            model,
            data,
            fit,
            val,
            seed=seed,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            evals_per_epoch=1,
            device=device,
            on_progress=on_progress,
        )


def encoder_finetuned(
    checkpoint,
    train_flux,
    train_valid,
    train_labels,
    test_flux,
    test_valid,
    *,
    seed: int = 0,
    epochs: int = 1,
    lr: float = 3e-4,
    batch_size: int = 32,
    device: str = "cpu",
    on_progress: Progress | None = None,
) -> list[str]:
    """The supervised GalSpecEncoder: the pre-trained encoder plus a linear head, fine-tuned end to end.

    ``checkpoint`` is a checkpoint folder (``TrainingRun.checkpoint_path``); it is only read. Same loop as
    ``cnn``, with the validation loss measured four times
    per epoch, so that even one epoch chooses among four sets of weights. The defaults fit the ``small``
    preset on two CPU cores: one epoch over 2000 spectra, with its validations and the test spectra,
    takes two to three minutes (self-attention over 736 patches costs about 2 s per batch of 32 forward
    and backward). On a GPU raise ``epochs`` and let early stopping end it.
    """
    data = _checked(train_flux, train_labels, test_flux, train_valid, test_valid)
    device = resolve_device(device)
    fit, val = validation_split(data.train_y, seed=seed)
    with _seeded(seed, device):
        model = EncoderClassifier(load_checkpoint(checkpoint, device=device), len(data.classes))
        return _train_and_predict(
            model,
            data,
            fit,
            val,
            seed=seed,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            evals_per_epoch=4,
            device=device,
            on_progress=on_progress,
        )


# --- shared: inputs, labels, the validation split, the training loop -------------------------------


class _TrainTest(NamedTuple):
    train_flux: np.ndarray  # (N, L) float32
    train_valid: np.ndarray | None  # (N, L) bool
    train_y: np.ndarray  # (N,) int64, index into classes
    classes: list[str]  # sorted distinct training labels
    test_flux: np.ndarray  # (M, L) float32
    test_valid: np.ndarray | None  # (M, L) bool


def _checked(train_flux, train_labels, test_flux, train_valid=None, test_valid=None) -> _TrainTest:
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
    index = {label: i for i, label in enumerate(classes)}
    train_y = np.array([index[label] for label in labels], dtype=np.int64)
    return _TrainTest(train_flux, checked_valid[0], train_y, classes, test_flux, checked_valid[1])


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
def _seeded(seed: int, device: torch.device):
    """Seed torch for model initialisation and dropout; the caller's RNG state is given back after."""
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def _train_and_predict(
    model: nn.Module,
    data: _TrainTest,
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
    """Fit ``model`` (flux, valid -> logits) on the training spectra ``fit`` by cross-entropy, keep the
    weights with the lowest loss on the spectra ``val``, and return its predictions for the test spectra.

    ``evals_per_epoch`` validations per epoch; training stops after ``PATIENCE`` of them in a row
    without a lower loss."""
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"need epochs >= 1 and batch_size >= 2 (batch norm); got {epochs} and {batch_size}")
    if data.train_valid is None or data.test_valid is None:
        raise ValueError("the networks need train_valid and test_valid, (N, L) bool, True where a pixel was observed")
    model = model.to(device)
    flux, valid = torch.from_numpy(np.array(data.train_flux)), torch.from_numpy(np.array(data.train_valid))
    y = torch.from_numpy(data.train_y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n_batches = max(1, len(fit) // batch_size)  # each epoch deals the fit spectra into this many near-equal batches
    reference = fit[:: max(1, len(fit) // BATCH_NORM_SPECTRA)]  # evenly spaced
    checks = {round((i + 1) * n_batches / evals_per_epoch) for i in range(evals_per_epoch)}  # batches then validated
    total, step, stale = epochs * n_batches, 0, 0
    best_loss, best_state = math.inf, None
    for epoch in range(epochs):
        order = fit[torch.randperm(len(fit), generator=generator).numpy()]
        for b, batch in enumerate(np.array_split(order, n_batches)):
            model.train()
            logits = _forward(model, flux[batch], valid[batch], device)
            loss = F.cross_entropy(logits, y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            report = {"epoch": epoch + 1, "loss": loss.item()}
            if b + 1 in checks:
                _precise_batch_norm(model, flux[reference], valid[reference], device)
                report["val_loss"] = F.cross_entropy(_logits(model, flux[val], valid[val], device), y[val]).item()
                if report["val_loss"] < best_loss:
                    best_loss, stale = report["val_loss"], 0
                    best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
                else:
                    stale += 1
            if on_progress:
                on_progress(step, total, report)
            if stale >= PATIENCE:
                break
        if stale >= PATIENCE:
            break
    if best_state is None:
        raise RuntimeError(
            f"the validation loss was never finite (last training loss {report['loss']}): "
            "lower lr, or look for extreme flux values"
        )
    model.load_state_dict(best_state)
    test_flux, test_valid = torch.from_numpy(np.array(data.test_flux)), torch.from_numpy(np.array(data.test_valid))
    test_logits = _logits(model, test_flux, test_valid, device)  # (M, C)
    return [data.classes[i] for i in test_logits.argmax(dim=1).tolist()]


@torch.no_grad()
def _precise_batch_norm(model: nn.Module, flux: torch.Tensor, valid: torch.Tensor, device: torch.device) -> None:
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
    for batch in np.array_split(np.arange(len(flux)), max(1, len(flux) // 64)):
        _forward(model, flux[batch], valid[batch], device)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def _forward(model: nn.Module, flux: torch.Tensor, valid: torch.Tensor, device: torch.device) -> torch.Tensor:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(flux.to(device), valid.to(device)).float()


@torch.no_grad()
def _logits(
    model: nn.Module, flux: torch.Tensor, valid: torch.Tensor, device: torch.device, batch_size: int = 64
) -> torch.Tensor:
    """(n, C) logits on the CPU, in eval mode (batch norm's running statistics, no dropout)."""
    model.eval()
    return torch.cat(
        [
            _forward(model, flux[s : s + batch_size], valid[s : s + batch_size], device).cpu()
            for s in range(0, len(flux), batch_size)
        ]
    )
