"""The methods the knowledge base is compared with in the paper's Table 2 (section 4.1), made honest.

Every method sees the same training spectra and labels, is fit on them alone (never on the test
spectra), and predicts one training label per test spectrum, deterministically for a given ``seed``.
Every one knows what the encoder knows, each spectrum's redshift: ``evaluate`` hands them rest-frame
arrays (``experiments.restframe``), so a win of the encoder's must come from the encoder.

- ``shortcut_knn``: the same K-vote on what a survey catalog says of a spectrum without looking at it
  (redshift, velocity dispersion, S/N): the shortcut a mock or a catalog may leak the label through;
- ``flux_knn``: the knowledge base's own K-vote (``inference.retriever.knn_vote``) on flux (the raw
  rest-frame flux, or the flux sampled in the encoder's own line windows);
- ``pca_knn``: the same vote on principal components fit on the training flux;
- ``random_forest``: the paper's classical ML baseline;
- ``cnn``: a supervised 1D CNN in the spirit of GalSpecNet (Wu et al. 2024), the paper's DL baseline;
- ``encoder_finetuned``: the pre-trained GalSpecEncoder with a linear head, fine-tuned end to end
  (the paper's "supervised GalSpecEncoder"), on the observed frame with z, as the encoder reads it.

The two networks share one training loop (``experiments.supervised``): AdamW on class-balanced
cross-entropy with a cosine-decaying learning rate, 10% of the training spectra held out (stratified)
and the weights with the highest validation macro-F1 kept. The K-votes and the forest weight no class,
as the knowledge base's vote does not.

Data enter as ``flux`` (N, L) float32 (dimensionless: the preprocessed flux, divided by the median over
rest-frame 5300-5850 Angstrom, see kb/preprocess.py), with 0 where a pixel was not observed, and
``valid`` (N, L) bool, True where a pixel was observed. Labels are strings.

Pure numpy/torch/scikit-learn/faiss; never imports Django.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from torch import nn

from experiments import supervised
from experiments.supervised import Progress
from inference.retriever import PAPER_POLICY, VotePolicy, knn_vote
from training.checkpoint import load_checkpoint, resolve_device
from training.model import GalSpecEncoder

# --- the K-vote on other vectors ---------------------------------------------------------------------


SHORTCUT_FEATURES = ("z", "vdisp", "sn_median")  # a catalog's redshift, km/s and median S/N per pixel


def shortcut_knn(train_features, train_labels, test_features, *, policy: VotePolicy = PAPER_POLICY) -> list[str]:
    """The knowledge base's K-vote on catalog quantities alone: ``*_features`` (N, F) float, one column per
    SHORTCUT_FEATURES. Each column is standardised by the training spectra's mean and spread; a value the
    catalog lacks (NaN) takes the training median. A method that beats the spectra with this is finding
    the label in the catalog, not in the light.
    """
    train = np.asarray(train_features, dtype=np.float64)
    test = np.asarray(test_features, dtype=np.float64)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"features must be (N, F) arrays with the same F; got {train.shape} and {test.shape}")
    median = np.nanmedian(train, axis=0)
    train, test = (np.where(np.isnan(a), median, a) for a in (train, test))
    mean, spread = train.mean(axis=0), train.std(axis=0)
    spread[spread == 0] = 1.0
    votes = knn_vote(
        ((train - mean) / spread).astype(np.float32),
        list(train_labels),
        ((test - mean) / spread).astype(np.float32),
        policy=policy,
    )
    return [v.label for v in votes]


def flux_knn(train_flux, train_labels, test_flux, *, policy: VotePolicy = PAPER_POLICY) -> list[str]:
    """The knowledge base's K-vote on the raw flux (N, L), unobserved pixels as stored (0).

    Distances are Euclidean in flux units, so the ``exp`` weights (softmax of exp(-distance)) are nearly
    uniform when neighbours lie many units away: then the vote is close to a plain majority.
    """
    data = supervised.checked(train_flux, train_labels, test_flux)
    return _vote(data.train_flux, data, data.test_flux, policy=policy)


def pca_knn(
    train_flux, train_labels, test_flux, *, n_components: int = 64, policy: VotePolicy = PAPER_POLICY, seed: int = 0
) -> list[str]:
    """The same K-vote on principal components of the flux, fit on the training spectra only.

    ``n_components`` (capped at min(n_train, L)) defaults to 64, chosen for PCA's sake rather than to
    match the knowledge base's vector width (512 for the ``small`` preset, 3072 for ``paper``): galaxy
    continua need about ten eigenspectra (Yip et al. 2004); the next few dozen keep the emission-line
    strengths and ratios that separate star-forming, AGN and quiescent spectra; the thousands after
    them are mostly noise, which is what blurs the distances of ``flux_knn``. Sweep it to be sure on
    a given data set. Components are not whitened: distances stay in flux units, as in ``flux_knn``.
    """
    data = supervised.checked(train_flux, train_labels, test_flux)
    n_components = min(n_components, *data.train_flux.shape)
    pca = PCA(n_components=n_components, random_state=seed).fit(data.train_flux)
    train_components, test_components = pca.transform(data.train_flux), pca.transform(data.test_flux)  # (N, n), (M, n)
    return _vote(train_components, data, test_components, policy=policy)


def _vote(vectors: np.ndarray, data: supervised.TrainTest, queries: np.ndarray, *, policy: VotePolicy) -> list[str]:
    labels = [data.classes[i] for i in data.train_y]
    votes = knn_vote(vectors.astype(np.float32), labels, queries.astype(np.float32), policy=policy)
    return [v.label for v in votes]


# --- random forest ----------------------------------------------------------------------------------


def random_forest(train_flux, train_labels, test_flux, *, seed: int = 0, n_estimators: int = 300) -> list[str]:
    """A random forest (Breiman 2001) on the flux (N, L), one feature per pixel.

    scikit-learn's defaults otherwise (sqrt(L) pixels tried per split, fully grown trees); in particular
    ``class_weight`` is left unset, so rare classes are not up-weighted, as in the other methods.
    All cores are used; the result depends only on ``seed``.
    """
    data = supervised.checked(train_flux, train_labels, test_flux)
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

    def forward(self, flux: torch.Tensor, valid: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """z is not read: ``evaluate`` gives the CNN rest-frame spectra, which already hold it."""
        x = self.features(torch.stack([flux, valid.to(flux.dtype)], dim=1))  # (N, 2, L) -> (N, C', L / 64)
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)  # (N, 2 C')
        return self.head(pooled)


class EncoderClassifier(nn.Module):
    """GalSpecEncoder's embedding (``forward_features``, (N, E), E = ``config.embedding_width``) and a
    linear head -> (N, C) class logits.

    The head standardises each embedding dimension first (batch norm without affine parameters, as in
    MAE's linear probe, He et al. 2022), so once trained it is one linear map. Without it the head
    barely learns in a short fine-tuning: embeddings that were means over hundreds of tokens differed from
    spectrum to spectrum by about 1% of their size (measured on a small-preset checkpoint).
    """

    def __init__(self, encoder: GalSpecEncoder, n_classes: int):
        super().__init__()
        self.encoder = encoder
        width = encoder.config.embedding_width
        self.head = nn.Sequential(nn.BatchNorm1d(width, affine=False, eps=1e-6), nn.Linear(width, n_classes))

    def forward(self, flux: torch.Tensor, valid: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_features(flux, valid, z))


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

    AdamW (lr 1e-3 decaying along a cosine, weight decay 0.01) on class-balanced cross-entropy, batches of
    ``batch_size``, at most ``epochs`` epochs, the validation macro-F1 measured
    ``supervised.EVALS_PER_EPOCH`` times an epoch and training stopped after ``supervised.PATIENCE``
    measurements without a higher one; the best weights classify (the policy of ``encoder_finetuned`` too).
    About a minute for 2000 spectra on two CPU cores.
    ``on_progress(step, total, report)`` after every batch (``total`` assumes no early stop).
    """
    no_z = np.zeros(len(train_flux)), np.zeros(len(test_flux))  # the CNN does not read z
    data = supervised.checked(train_flux, train_labels, test_flux, train_valid, test_valid, *no_z)
    if data.train_flux.shape[1] < 64:  # a stride of 4, then 4 poolings by 2
        raise ValueError(f"the CNN needs spectra of 64 pixels or more, got {data.train_flux.shape[1]}")
    return supervised.fit_and_predict(
        lambda device: SpectrumCNN(len(data.classes)),
        data,
        seed=seed,
        device=resolve_device(device),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        evals_per_epoch=supervised.EVALS_PER_EPOCH,
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
    train_z,
    test_z,
    seed: int = 0,
    epochs: int = 15,
    lr: float = 3e-4,
    batch_size: int = 32,
    device: str = "cpu",
    on_progress: Progress | None = None,
) -> list[str]:
    """The supervised GalSpecEncoder: the pre-trained encoder plus a linear head, fine-tuned end to end.

    ``checkpoint`` is a checkpoint folder (``TrainingRun.checkpoint_path``); it is only read. ``train_z``
    (N,) and ``test_z`` (M,) are the spectra's redshifts, which the embedding's line windows need. The same loop
    and policy as ``cnn``: at most ``epochs`` epochs, ended early when the validation macro-F1 stops rising.
    On two CPU cores one epoch of the ``small`` preset over 2000 spectra, with its validations, takes two
    to three minutes (self-attention over 736 patches costs about 2 s per batch of 32 forward and
    backward).
    """
    data = supervised.checked(train_flux, train_labels, test_flux, train_valid, test_valid, train_z, test_z)
    return supervised.fit_and_predict(
        lambda device: EncoderClassifier(load_checkpoint(checkpoint, device=device), len(data.classes)),
        data,
        seed=seed,
        device=resolve_device(device),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        evals_per_epoch=supervised.EVALS_PER_EPOCH,
        on_progress=on_progress,
    )
