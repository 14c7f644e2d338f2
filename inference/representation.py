"""What a knowledge base's vectors are: the encoder's embedding, the raw flux in the encoder's line windows,
the whole rest-frame spectrum over its continuum, the emission lines measured from the pixels
(``inference.line_measures``), or the embedding with the windows or the lines beside it.

The encoder reads its six line windows (``training.model.LINE_WINDOWS_REST``) at each spectrum's redshift;
the raw flux sampled across the same windows carries the same knowledge of where the lines are, with no
learning at all. Neither sees what lies between the windows (the Wolf-Rayet bump at 4650 A, Na D at
5890 A, the widths of absorption lines), which the rest-frame spectrum does. Which of them a knowledge
base votes in is chosen per task on the validation reserve (``inference.services.knowledge_bases``) and
stored in its ``VotePolicy``, so that the product serves what wins and says which.

The raw representations are read against their own continuum: each window's flux over the window's
median, the rest-frame spectrum over its running median (CONTINUUM_WIDTH). What is left is each line or
band against the continuum under it, which more or less dust, a tilted flux calibration or the median
normalisation of the whole spectrum leave as they were.

Arrays in: the preprocessed flux (N, L) on the model's observed grid (``kb.preprocess``, dimensionless,
0 where not observed), its ``valid`` mask (N, L) bool, its ``ivar`` (N, L) in (normalised flux)^-2 (the
lines alone read it), redshifts ``z`` (N,), and embeddings (N, E) float32.
Pure numpy; never imports Django.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from inference.line_measures import line_features
from kb.preprocess import PAPER, wave_grid
from training.model import LINE_WINDOWS_REST

ENCODER, WINDOW, BOTH, RESTFRAME = "encoder", "window", "encoder+window", "restframe"
LINES, ENCODER_LINES = "lines", "encoder+lines"
REPRESENTATIONS = (ENCODER, WINDOW, BOTH, RESTFRAME, LINES, ENCODER_LINES)  # weighed in order: a later one must win
BESIDE_ENCODER = {BOTH: WINDOW, ENCODER_LINES: LINES}  # a pair: the embedding, and this part beside it
OBSERVED = wave_grid(PAPER)  # (L,) Angstrom, observed
WINDOW_STEP = 1.0  # Angstrom, rest: where the windows are sampled
WINDOW_SPANS = [np.arange(lo, hi + WINDOW_STEP / 2, WINDOW_STEP) for lo, hi in LINE_WINDOWS_REST.values()]
WINDOWS = np.concatenate(WINDOW_SPANS)  # (F,) Angstrom, rest: every window's samples in turn
REST_STEP = 2.0  # Angstrom, rest
REST_SPAN = np.arange(3650.0, 6800.0 + REST_STEP / 2, REST_STEP)  # (S,) Angstrom, rest: [O II] to [S II]
CONTINUUM_WIDTH = 101  # samples (202 A): wider than any line or the Wolf-Rayet bump; a median keeps the 4000 A step


def needs_embedding(representation: str) -> bool:
    return representation in (ENCODER, *BESIDE_ENCODER)


def needs_flux(representation: str) -> bool:
    return representation != ENCODER


def needs_ivar(representation: str) -> bool:
    return LINES in (representation, BESIDE_ENCODER.get(representation))


def represent(
    representation: str,
    embedding=None,
    flux=None,
    valid=None,
    z=None,
    ivar=None,
    *,
    window_scale: float = 1.0,
    lines=None,
    eigen=None,
) -> np.ndarray:
    """(N, D) float32 vectors in ``representation``: the ``embedding`` (N, E); the window flux of ``flux``,
    ``valid`` and ``z`` (``window_flux``, N x F); the rest-frame spectrum over its continuum; the lines
    measured with the inverse variance ``ivar`` too (N, L; ``inference.line_measures``); or the embedding with
    the window flux or the lines beside it, that part times ``window_scale`` (``window_scale_fit``) so that
    neither part drowns the other's distances. ``lines`` (N, len(line_measures.FEATURES)): these spectra's
    lines as ``line_features`` measured them already (a store's kept measurements), measured again if None,
    under the ``eigen`` continuum (``inference.continuum``; the data folder's, so that they compare with what is
    kept)."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; choose one of {', '.join(REPRESENTATIONS)}")
    if needs_embedding(representation) and embedding is None:
        raise ValueError(f"the {representation} representation needs the embeddings")
    if needs_flux(representation) and lines is None and any(a is None for a in (flux, valid, z)):
        raise ValueError(f"the {representation} representation needs the flux, its valid mask and the redshifts")
    if needs_ivar(representation) and ivar is None and lines is None:
        raise ValueError(f"the {representation} representation needs the flux's inverse variance")
    if representation == ENCODER:
        return np.asarray(embedding, dtype=np.float32)
    if representation in BESIDE_ENCODER:
        part = represent(BESIDE_ENCODER[representation], None, flux, valid, z, ivar, lines=lines, eigen=eigen)
        return np.hstack([np.asarray(embedding, dtype=np.float32), window_scale * part]).astype(np.float32)
    if representation == RESTFRAME:
        return restframe_lines(flux, valid, z)
    if representation == LINES:
        return line_features(flux, valid, z, ivar, eigen) if lines is None else np.asarray(lines, dtype=np.float32)
    return window_flux(flux, valid, z)


def window_scale_fit(embedding: np.ndarray, windows: np.ndarray) -> float:
    """The weight of the part beside the encoder's in a pair (``BESIDE_ENCODER``): the ratio of their median
    lengths over a knowledge base's entries (N, E) and (N, F), so that each part spans distances of one size."""
    window_norm = float(np.median(np.linalg.norm(windows, axis=1)))
    return float(np.median(np.linalg.norm(embedding, axis=1))) / window_norm if window_norm > 0 else 1.0


def window_flux(flux, valid, z) -> np.ndarray:
    """(N, L) flux and valid at redshifts (N,) -> (N, F) float32: the flux sampled every WINDOW_STEP Angstrom
    (rest) across each of LINE_WINDOWS_REST, each window divided by the median of its observed samples
    (left as it is where that median is not positive), 0 where not observed."""
    sampled, seen = sample_rest(flux, valid, z, WINDOWS)
    start = 0
    for span in WINDOW_SPANS:
        part, ok = sampled[:, start : start + len(span)], seen[:, start : start + len(span)]
        levels = np.where(ok, part, np.nan)
        levels[~ok.any(axis=1)] = 1.0  # a window not observed at all: nothing to divide
        level = np.nanmedian(levels, axis=1, keepdims=True)
        part /= np.where(level > 0, level, 1.0)
        start += len(span)
    return np.where(seen, sampled, 0.0).astype(np.float32)


def restframe_lines(flux, valid, z) -> np.ndarray:
    """(N, L) flux and valid at redshifts (N,) -> (N, S) float32: the flux sampled every REST_STEP Angstrom
    (rest) across REST_SPAN, over its running median of CONTINUUM_WIDTH samples, minus 1: 0 where the
    spectrum follows its continuum or is not observed, positive in emission, negative in absorption."""
    sampled, seen = sample_rest(flux, valid, z, REST_SPAN)
    out = np.zeros_like(sampled)
    index = np.arange(len(REST_SPAN))
    for i, (row, ok) in enumerate(zip(sampled, seen)):
        if ok.sum() < CONTINUUM_WIDTH // 2:
            continue  # too little of the span observed to know its continuum
        filled = np.interp(index, index[ok], row[ok])  # gaps take their neighbours' flux, not zeros
        continuum = median_filter(filled, size=CONTINUUM_WIDTH, mode="nearest")
        good = ok & (continuum > 0)
        out[i, good] = row[good] / continuum[good] - 1.0
    return out


def sample_rest(flux, valid, z, wave_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) flux and valid at redshifts (N,) -> (N, R) flux and valid at rest wavelengths ``wave_rest``
    (R,) Angstrom, by linear interpolation; a sample is valid where both observed pixels around it are, and
    0 where it is not."""
    flux, valid, z = np.asarray(flux, np.float32), np.asarray(valid, bool), np.asarray(z, np.float64)
    if flux.shape != valid.shape or flux.ndim != 2 or z.shape != (len(flux),):
        raise ValueError(f"need (N, L) flux and valid and (N,) z; got {flux.shape}, {valid.shape} and {z.shape}")
    if flux.shape[1] != len(OBSERVED):
        raise ValueError(f"spectra have {flux.shape[1]} pixels; the model's grid has {len(OBSERVED)}")
    out = np.zeros((len(flux), len(wave_rest)), np.float32)
    seen = np.zeros((len(flux), len(wave_rest)), bool)
    for i, (row, ok, redshift) in enumerate(zip(flux, valid, z)):
        observed = wave_rest * (1 + redshift)
        inside = (observed >= OBSERVED[0]) & (observed <= OBSERVED[-1])
        good = np.interp(observed[inside], OBSERVED, ok.astype(np.float32)) > 0.999
        out[i, inside] = np.where(good, np.interp(observed[inside], OBSERVED, row), 0.0)
        seen[i, inside] = good
    return out, seen
