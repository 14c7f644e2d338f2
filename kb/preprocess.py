"""The paper's preprocessing (section 3.2): resample, normalise, carry a validity mask.

1. Resample from SDSS's log-lambda pixels onto ``wave_grid()``: 3688 points, linear in wavelength,
   3850-9000 Angstrom observed (step 1.3969 Angstrom), by linear interpolation.
2. Divide by the median of the valid resampled flux over rest-frame 5300-5850 Angstrom, so the flux
   becomes dimensionless and redshift-independent in amplitude. That window leaves the grid above
   z = 0.54 and holds too few pixels from z = 0.69; there the median over rest-frame 4600-4800 Angstrom
   (free of strong lines and absorption; in the grid up to z = 0.87) is used instead, so lens candidates
   at BOSS redshifts are searchable. Their normalised flux is then relative to the blue continuum, about
   10-30% higher at 5575 Angstrom than the paper's normalisation would make it for a passive galaxy.

How missing data is represented (decided here, used everywhere after):
- A grid pixel is valid only if both native pixels it interpolates between are valid. Grid pixels
  outside the observed wavelength range are invalid too.
- The inverse variance follows the interpolation: a grid pixel at fraction t between native pixels a
  and b has variance (1-t)^2 / ivar_a + t^2 / ivar_b, and is divided by norm^2 with the flux.
- Invalid pixels hold flux 0.0, ivar 0.0 and ``valid`` False. The model gets ``valid`` as an input channel, so
  a 0.0 that was measured is never confused with a gap, and no loss is ever computed on a gap.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kb.spectra import SdssSpectrum, SpectrumFileError, read_spectrum


@dataclass(frozen=True)
class PreprocessConfig:
    wave_min: float = 3850.0  # Angstrom, observed, vacuum
    wave_max: float = 9000.0  # Angstrom
    n_pixels: int = 3688
    norm_window_rest: tuple[float, float] = (5300.0, 5850.0)  # Angstrom, rest frame
    norm_fallback_rest: tuple[float, float] = (4600.0, 4800.0)  # where the first holds too few pixels
    min_norm_pixels: int = 20  # fewer valid pixels than this in the window: cannot normalise

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PreprocessConfig:
        values = dict(values)
        values["norm_window_rest"] = tuple(values["norm_window_rest"])
        values["norm_fallback_rest"] = tuple(values.get("norm_fallback_rest", cls.norm_fallback_rest))
        return cls(**values)


PAPER = PreprocessConfig()


class PreprocessError(ValueError):
    """A spectrum that cannot be brought onto the grid (the message says why)."""


@dataclass(frozen=True)
class Preprocessed:
    flux: np.ndarray  # (n_pixels,) float32, dimensionless: flux / norm; 0.0 where not valid
    valid: np.ndarray  # (n_pixels,) bool
    ivar: np.ndarray  # (n_pixels,) float32, in (normalised flux)^-2: ivar * norm^2; 0.0 where not valid
    norm: float  # 1e-17 erg s^-1 cm^-2 Angstrom^-1: median over rest-frame norm_window_rest


def wave_grid(config: PreprocessConfig = PAPER) -> np.ndarray:
    """The model's wavelength grid: (n_pixels,) float64, Angstrom, observed frame, linear spacing."""
    return np.linspace(config.wave_min, config.wave_max, config.n_pixels)


def _neighbours(wave_obs: np.ndarray, config: PreprocessConfig):
    """For each grid point: whether it is inside wave_obs, its native pixels left and right, and whether
    it falls exactly on the right one (then that pixel alone is used)."""
    grid = wave_grid(config)
    inside = (grid >= wave_obs[0]) & (grid <= wave_obs[-1])
    right = np.clip(np.searchsorted(wave_obs, grid), 0, len(wave_obs) - 1)  # first pixel at or red of grid
    left = np.clip(right - 1, 0, len(wave_obs) - 1)
    return grid, inside, left, right, wave_obs[right] == grid


def resample(
    wave_obs: np.ndarray, flux: np.ndarray, valid: np.ndarray, config: PreprocessConfig = PAPER
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation onto wave_grid(): returns flux (n_pixels,) float32 and valid (n_pixels,) bool.

    wave_obs (L,) Angstrom increasing; flux (L,) any unit; valid (L,) bool.
    """
    wave_obs = np.asarray(wave_obs, dtype=np.float64)
    grid, inside, left, right, on_pixel = _neighbours(wave_obs, config)
    grid_valid = inside & np.where(on_pixel, valid[right], valid[left] & valid[right])
    grid_flux = np.interp(grid, wave_obs, np.where(valid, flux, 0.0))
    return np.where(grid_valid, grid_flux, 0.0).astype(np.float32), grid_valid


def resample_ivar(
    wave_obs: np.ndarray, ivar: np.ndarray, valid: np.ndarray, config: PreprocessConfig = PAPER
) -> np.ndarray:
    """The inverse variance (n_pixels,) float32 of ``resample``'s flux: a grid pixel at fraction t from
    native pixel a to b has variance (1-t)^2 / ivar_a + t^2 / ivar_b; 0 where the grid pixel is not valid.

    wave_obs (L,) Angstrom increasing; ivar (L,) in the flux unit^-2; valid (L,) bool.
    """
    wave_obs = np.asarray(wave_obs, dtype=np.float64)
    grid, inside, left, right, on_pixel = _neighbours(wave_obs, config)
    step = np.where(right > left, wave_obs[right] - wave_obs[left], 1.0)
    t = np.where(on_pixel | (right == left), 1.0, (grid - wave_obs[left]) / step)
    usable = np.where(valid, ivar, 0.0).astype(np.float64) > 0
    sigma2 = np.where(usable, 1.0 / np.where(usable, ivar, 1.0), np.inf)  # (L,) native variance
    variance = (1 - t) ** 2 * np.where(t < 1, sigma2[left], 0.0) + t**2 * sigma2[right]
    grid_valid = inside & np.isfinite(variance) & (variance > 0)
    return np.where(grid_valid, 1.0 / np.where(grid_valid, variance, 1.0), 0.0).astype(np.float32)


def normalisation(flux: np.ndarray, valid: np.ndarray, z: float, config: PreprocessConfig = PAPER) -> float:
    """Median of the valid grid flux over rest-frame norm_window_rest (or, where that holds fewer than
    min_norm_pixels valid pixels, norm_fallback_rest), in the flux's own unit."""
    grid = wave_grid(config)
    tried = []
    for lo_rest, hi_rest in (config.norm_window_rest, config.norm_fallback_rest):
        lo, hi = lo_rest * (1.0 + z), hi_rest * (1.0 + z)
        window = valid & (grid >= lo) & (grid <= hi)
        if window.sum() >= config.min_norm_pixels:
            break
        tried.append(
            f"{int(window.sum())} in rest-frame {lo_rest:.0f}-{hi_rest:.0f} Angstrom (observed {lo:.0f}-{hi:.0f})"
        )
    else:
        raise PreprocessError(
            f"too few valid pixels to normalise at z={z:.4f}: {' and '.join(tried)}; need {config.min_norm_pixels}"
        )
    norm = float(np.median(flux[window]))
    if not np.isfinite(norm) or norm <= 0:
        raise PreprocessError(f"median flux in the normalisation window is {norm:.3g}, not positive")
    return norm


def preprocess(
    wave_obs: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    valid: np.ndarray,
    z: float,
    config: PreprocessConfig = PAPER,
) -> Preprocessed:
    """Resample and normalise one spectrum (arrays (L,), flux in 1e-17 erg s^-1 cm^-2 Angstrom^-1, ivar
    in its inverse square)."""
    grid_flux, grid_valid = resample(wave_obs, flux, valid, config)
    grid_ivar = np.where(grid_valid, resample_ivar(wave_obs, ivar, valid, config), 0.0)
    norm = normalisation(grid_flux, grid_valid, z, config)
    return Preprocessed(
        flux=(grid_flux / norm).astype(np.float32),
        valid=grid_valid,
        ivar=(grid_ivar * norm**2).astype(np.float32),
        norm=norm,
    )


@dataclass(frozen=True)
class PreparedFile:
    """One file read and preprocessed, or the reason it could not be."""

    path: Path
    spectrum: SdssSpectrum | None = None
    grid: Preprocessed | None = None
    sha256: str = ""
    error: str = ""


def prepare_file(path: Path, config: PreprocessConfig = PAPER) -> PreparedFile:
    """Read and preprocess one spectrum file; never raises for a bad file (runs in worker processes)."""
    try:
        data = path.read_bytes()
        spectrum = read_spectrum(path)
        grid = preprocess(spectrum.wave_obs, spectrum.flux, spectrum.ivar, spectrum.valid, spectrum.z, config)
    except SpectrumFileError as error:
        return PreparedFile(path, error=error.reason)
    except PreprocessError as error:
        return PreparedFile(path, error=f"cannot preprocess: {error}")
    except OSError as error:  # its text would name the server's path: say what happened, not where
        return PreparedFile(path, error=f"cannot read the file ({error.strerror or type(error).__name__})")
    return PreparedFile(path, spectrum, grid, hashlib.sha256(data).hexdigest())
