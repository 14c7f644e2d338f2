"""The stars' light under a galaxy's emission lines, as a sum of eigen-spectra of the survey's own quiet
galaxies (Connolly et al. 1995; Yip et al. 2004).

A running median of the flux (``inference.line_measures``) passes under an emission line at the level of
its surroundings, so the stellar absorption beneath a Balmer line is taken for missing emission: H-beta,
whose absorption is deep beside its emission, reads low, and [O III]/H-beta high by a few hundredths of a
dex, which is the width of the strip between the BPT demarcations. The catalogs subtract a stellar template
fitted to the whole spectrum instead. Here the templates are learnt from the survey itself: the principal
components, in the rest frame, of spectra with no emission line of their own (old and post-starburst
galaxies, whose absorption lines they carry), fitted to each spectrum's pixels away from its lines by
least squares weighted by the inverse variance, so that the depth of the absorption under a line is read
from the rest of the spectrum. What the eigen-spectra leave (dust, calibration) a running median takes up.

Pure numpy; no Django. Arrays are on the model's observed grid (``kb.preprocess``) unless named rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

REST = np.arange(3600.0, 7000.0, 1.0)  # (R,) Angstrom, rest: [O II] to [S II] with room either side
COMPONENTS = 6  # eigen-spectra beside the mean
MIN_SPECTRA = 50  # quiet spectra below this fit no basis


@dataclass(frozen=True)
class EigenContinuum:
    """The mean quiet spectrum and its first eigen-spectra on REST, (1 + COMPONENTS, R)."""

    basis: np.ndarray

    @property
    def digest(self) -> str:
        return hashlib.blake2b(np.ascontiguousarray(self.basis, dtype=np.float64).tobytes(), digest_size=6).hexdigest()

    def model(self, wave: np.ndarray, flux, usable, z: float, ivar) -> tuple[np.ndarray, np.ndarray]:
        """(L,) the basis fitted to ``flux`` at the ``usable`` pixels (L,) bool, weighted by ``ivar``, and
        where that model holds (L,) bool: inside REST at redshift ``z``. Zero where it does not hold."""
        rest = wave / (1 + z)
        inside = (rest >= REST[0]) & (rest <= REST[-1])
        use = usable & inside
        if use.sum() <= len(self.basis):
            return np.zeros(len(wave)), np.zeros(len(wave), bool)
        design = np.stack([np.interp(rest, REST, row) for row in self.basis], axis=1)  # (L, 1 + COMPONENTS)
        root_w = np.sqrt(ivar[use])
        amplitudes, *_ = np.linalg.lstsq(design[use] * root_w[:, None], flux[use] * root_w, rcond=None)
        return np.where(inside, design @ amplitudes, 0.0), inside


def fit_eigen_continuum(wave: np.ndarray, flux, valid, z) -> EigenContinuum:
    """The eigen-spectra of quiet spectra (N, L) with their ``valid`` masks and redshifts (N,): each resampled
    to REST, the pixels it does not cover filled with the mean of those that do, then the mean and the
    first COMPONENTS right singular vectors. ValueError below MIN_SPECTRA spectra."""
    flux, valid, z = np.asarray(flux, np.float64), np.asarray(valid, bool), np.asarray(z, np.float64)
    if len(flux) < MIN_SPECTRA:
        raise ValueError(f"an eigen-continuum needs at least {MIN_SPECTRA} quiet spectra; got {len(flux)}")
    rest = np.full((len(flux), len(REST)), np.nan)
    for i, (row, seen, redshift) in enumerate(zip(flux, valid, z)):
        if seen.sum() > 1:
            rest[i] = np.interp(REST, wave[seen] / (1 + redshift), row[seen], left=np.nan, right=np.nan)
    mean = np.nanmean(rest, axis=0)
    if np.isnan(mean).any():
        raise ValueError("the quiet spectra leave part of the rest-frame range uncovered")
    filled = np.where(np.isnan(rest), mean, rest) - mean
    _, _, components = np.linalg.svd(filled, full_matrices=False)
    return EigenContinuum(np.vstack([mean, components[:COMPONENTS]]))
