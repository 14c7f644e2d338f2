"""GalSpecEncoder: a Transformer encoder over overlapping spectrum patches, and its masked-modelling wrapper.

Reads top to bottom in data-flow order: configuration, patching, patch embedding, Transformer block,
encoder (whose ``forward_features`` is the embedding used for retrieval), then masked modelling.

Shapes: N spectra, L pixels (3688 on the paper's grid), Lp padded pixels, P patches, S pixels per patch,
D embedding width. Inputs are the preprocessed flux (dimensionless, see kb/preprocess.py) and ``valid``,
True where a pixel was really observed.

Decisions the paper leaves open:
- Patching. With S = 15 and a stride of 5 (overlap 10), (3688 - 15) / 5 + 1 = 735.6 is not an integer,
  so the spectrum is padded at the red end with 2 invalid pixels: 736 patches cover 3690 pixels.
- Masking. Patches overlap, so hiding whole patches would leave their pixels visible in the neighbours
  and the task could be solved by copying. We hide *pixels*: contiguous spans covering ``mask_ratio`` of
  the spectrum, in every patch that contains them. The loss is computed on pixels that are hidden and
  truly valid.
- Gaps. A pixel the model may not see (hidden, or invalid in the data) is filled by linear
  interpolation from its visible neighbours and flagged by the validity channel, so a hidden pixel
  looks exactly like a gap in the data and neither shows up as an artificial drop to zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kb.preprocess import PAPER

# Where the embedding looks for the diagnostic lines: Angstrom, vacuum, rest frame. The BPT lines and
# [O II] (the strongest line of star formation blue of 4000 Angstrom), each window wide enough for its
# doublet and a line's wings at a velocity dispersion of a few hundred km/s.
LINE_WINDOWS_REST = {
    "[O II] 3726, 3729": (3715.0, 3740.0),
    "H-beta": (4851.0, 4871.0),
    "[O III] 4959, 5007": (4950.0, 5017.0),
    "[O I] 6300, 6363": (6290.0, 6375.0),
    "H-alpha + [N II] 6548, 6583": (6540.0, 6595.0),
    "[S II] 6716, 6731": (6710.0, 6740.0),
}
LINE_MARGIN = 8.0  # Angstrom, observed: a patch (21 Angstrom) centred this far outside a window still overlaps it


@dataclass(frozen=True)
class EncoderConfig:
    n_pixels: int = 3688
    patch_size: int = 15  # S
    patch_overlap: int = 10
    d_model: int = 768  # D
    n_layers: int = 6
    n_heads: int = 6
    mlp_ratio: int = 4
    dropout: float = 0.0
    # The embedding (``GalSpecEncoder.forward_features``): the mean token of each of G equal stretches of
    # the grid, then (``pool_lines``) the mean token of each of the W windows of LINE_WINDOWS_REST at the
    # spectrum's redshift, then (``pool_peaks``) each channel's maximum over all observed tokens. The line
    # windows and peaks were chosen on the validation reserve (see there).
    pool_segments: int = 0  # G, 0 for none
    pool_lines: bool = True
    pool_peaks: bool = True
    wave_min: float = PAPER.wave_min  # Angstrom, observed: the grid's first and last pixel, where the
    wave_max: float = PAPER.wave_max  # line windows are looked for

    def __post_init__(self):
        if self.pool_segments < 0 or not (self.pool_segments or self.pool_lines or self.pool_peaks):
            raise ValueError("the embedding needs pool_segments > 0, pool_lines or pool_peaks")

    @classmethod
    def from_dict(cls, settings: dict) -> EncoderConfig:
        """A saved configuration (a checkpoint's, a training run's). One saved before a pooling existed
        keeps the embedding that its knowledge bases were built with, without that pooling."""
        return cls(**{"pool_lines": False, "pool_peaks": False, **settings})

    @property
    def embedding_width(self) -> int:  # (G + W + peaks) * D
        return (self.pool_segments + len(LINE_WINDOWS_REST) * self.pool_lines + self.pool_peaks) * self.d_model

    @property
    def stride(self) -> int:
        return self.patch_size - self.patch_overlap

    @property
    def n_patches(self) -> int:  # P
        return math.ceil((self.n_pixels - self.patch_size) / self.stride) + 1

    @property
    def padded_pixels(self) -> int:  # Lp
        return (self.n_patches - 1) * self.stride + self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # Tang et al. 2025: D = 768, 6 layers, 6 heads; 6 line windows and the peaks make the embedding 5376
    # floats (65 GB for SDSS's 3 million galaxy spectra in an exact index).
    "paper": EncoderConfig(),
    # Pre-trains on two CPU cores in minutes (~0.9 s per batch of 32); same patching as the paper.
    "small": EncoderConfig(d_model=64, n_layers=3, n_heads=4),
    # The paper's depth and heads at a quarter of its width, for one GPU in minutes (bench/gpu_pretrain.py);
    # its checkpoint stays under 16 MB, so it can ship beside the small one.
    "medium": EncoderConfig(d_model=192, n_layers=6, n_heads=6),
}


def pad(flux: torch.Tensor, valid: torch.Tensor, config: EncoderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) -> (N, Lp): padding pixels at the red end are 0 and invalid."""
    N, L = flux.shape
    if config.n_pixels != L:
        raise ValueError(f"Input length ({L}) doesn't match model ({config.n_pixels})")
    extra = config.padded_pixels - L
    return F.pad(flux, (0, extra)), F.pad(valid, (0, extra), value=False)


def patchify(x: torch.Tensor, config: EncoderConfig) -> torch.Tensor:
    """(N, Lp) -> (N, P, S) overlapping patches."""
    return x.unfold(-1, config.patch_size, config.stride)


def unpatchify(patches: torch.Tensor, config: EncoderConfig) -> torch.Tensor:
    """(N, P, S) -> (N, Lp), each pixel the mean of the patches that contain it."""
    N, P, S = patches.shape
    index = torch.arange(P, device=patches.device)[:, None] * config.stride + torch.arange(S, device=patches.device)
    index = index.reshape(1, P * S).expand(N, -1)  # (N, P*S) pixel of each patch entry
    total = patches.new_zeros(N, config.padded_pixels).scatter_add_(1, index, patches.reshape(N, P * S))
    count = patches.new_zeros(1, config.padded_pixels).scatter_add_(1, index[:1], patches.new_ones(1, P * S))
    return total / count


def fill_gaps(flux: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(N, L) flux with every pixel that is not ``visible`` replaced by linear interpolation between the
    nearest visible pixels on either side (the nearest one alone at the ends; 0 if none is visible)."""
    N, L = flux.shape
    position = torch.arange(L, device=flux.device).expand(N, L)
    left = torch.where(visible, position, -1).cummax(dim=1).values  # (N, L) nearest visible at or left
    right = torch.where(visible, position, L).flip(1).cummin(dim=1).values.flip(1)  # at or right
    has_left, has_right = left >= 0, right < L
    left_value = flux.gather(1, left.clamp(min=0))
    right_value = flux.gather(1, right.clamp(max=L - 1))
    span = (right - left).clamp(min=1)
    weight = ((position - left) / span).to(flux.dtype)
    inside = left_value + (right_value - left_value) * weight
    filled = torch.where(has_left & has_right, inside, torch.where(has_left, left_value, right_value))
    filled = torch.where(has_left | has_right, filled, torch.zeros_like(flux))
    return torch.where(visible, flux, filled)


class PatchEmbed(nn.Module):
    """A linear projection of each patch's flux and validity: (N, P, S) x 2 -> (N, P, D)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.proj = nn.Linear(2 * config.patch_size, config.d_model)

    def forward(self, flux_patches: torch.Tensor, valid_patches: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([flux_patches, valid_patches.to(flux_patches.dtype)], dim=-1))


class Attention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"d_model ({config.d_model}) must be a multiple of n_heads ({config.n_heads})")
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, P, D = x.shape
        q, k, v = self.qkv(x).reshape(N, P, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # (N, h, P, Dh)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # fused
        return self.proj(y.transpose(1, 2).reshape(N, P, D))


class Block(nn.Module):
    """Pre-LN Transformer encoder layer: x + MSA(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(hidden, config.d_model)
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class GalSpecEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.n_patches, config.d_model))  # learnable 1D
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_weights)
        # Not weights: what pooling needs to place each patch in wavelength (kept out of checkpoints).
        step = (config.wave_max - config.wave_min) / (config.n_pixels - 1)  # Angstrom per pixel
        centre = torch.arange(config.n_patches) * config.stride + (config.patch_size - 1) / 2  # (P,) pixel
        self.register_buffer("patch_wave", config.wave_min + step * centre, persistent=False)  # (P,) Angstrom
        self.register_buffer("line_windows", torch.tensor(list(LINE_WINDOWS_REST.values())), persistent=False)

    def forward_tokens(self, flux: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L) flux and valid -> tokens (N, P, D) and the patches holding any valid pixel (N, P)."""
        flux = fill_gaps(flux, valid)  # a pixel the model may not see carries only its neighbours' guess
        flux, valid = pad(flux, valid, self.config)  # (N, Lp)
        flux_patches, valid_patches = patchify(flux, self.config), patchify(valid, self.config)  # (N, P, S)
        x = self.patch_embed(flux_patches, valid_patches) + self.pos_embed  # (N, P, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), valid_patches.any(dim=-1)

    def forward_features(self, flux: torch.Tensor, valid: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The embedding used for retrieval: (N, L) flux and valid, and z (N,) -> (N, E), E = (G + W + 1) * D
        with peaks, (G + W) * D without.

        Poolings of the final tokens, concatenated in this order; patches with no valid pixel (outside the
        observed range) are left out, and a pooling over no patch is zeros.
        - Segments (G = ``pool_segments``): the mean token of each of G equal, contiguous stretches of the
          grid. One mean over the whole spectrum lets the continuum's 700-odd tokens drown the few that
          carry emission lines, and loses where features lie.
        - Lines (``pool_lines``, W windows): the mean token of the patches whose centres fall in each
          window of LINE_WINDOWS_REST moved to the spectrum's redshift, so the same line ratio lands in
          the same dimensions at any z. Each token has attended to the whole spectrum, so the windows
          carry the continuum's context too.
        - Peaks (``pool_peaks``): each channel's maximum over every observed token. A feature at any
          wavelength that the windows miss, such as a lensed background galaxy's lines at its own
          redshift, raises the channels it drives wherever it lies.
        The default, line windows and peaks, was chosen on the validation reserve (``evaluate``'s variants
        table; the figures are in README's Decisions).
        """
        return self.pool(*self.forward_tokens(flux, valid), z)

    def pool(self, tokens: torch.Tensor, observed: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """(N, P, D) tokens, (N, P) observed patches and z (N,) -> (N, E): ``forward_features``'s pooling."""
        N, P, D = tokens.shape
        weights = []  # (N, K, P) for K pooled groups of patches
        if self.config.pool_segments:
            G = self.config.pool_segments
            stretch = F.one_hot(torch.arange(P, device=tokens.device) * G // P, G).T.bool()  # (G, P)
            weights.append(stretch[None] & observed[:, None])
        if self.config.pool_lines:
            if z is None:
                raise ValueError("line-window pooling needs each spectrum's redshift: forward_features(flux, valid, z)")
            z = torch.as_tensor(z, dtype=self.patch_wave.dtype, device=tokens.device).reshape(N, 1, 1)
            window = self.line_windows[None] * (1 + z)  # (N, W, 2) Angstrom, observed
            inside = (self.patch_wave >= window[..., :1] - LINE_MARGIN) & (
                self.patch_wave <= window[..., 1:] + LINE_MARGIN
            )
            weights.append(inside & observed[:, None])  # (N, W, P)
        parts = []
        if weights:
            weights = torch.cat(weights, 1).to(tokens.dtype)  # (N, K, P)
            sums = torch.einsum("nkp,npd->nkd", weights, tokens)  # (N, K, D)
            parts.append((sums / weights.sum(-1, keepdim=True).clamp(min=1.0)).reshape(N, -1))
        if self.config.pool_peaks:
            peaks = tokens.masked_fill(~observed[..., None], float("-inf")).amax(1)  # (N, D)
            parts.append(peaks.masked_fill(~observed.any(1, keepdim=True), 0.0))
        return torch.cat(parts, 1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MaskedSpectrumModel(nn.Module):
    """Masked modelling: hide pixel spans, encode what is left, reconstruct the hidden pixels.

    The reconstruction is a correction to the linear interpolation across each gap (the head starts at
    zero), so the model begins as good as interpolation and everything it gains is spectral knowledge.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = GalSpecEncoder(config)
        self.head = nn.Linear(config.d_model, config.patch_size)  # token -> correction to its S pixels
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward_decoder(self, tokens: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        """(N, P, D) tokens and (N, L) gap-filled flux -> (N, L) reconstruction; overlapping patch
        corrections are averaged."""
        return filled + unpatchify(self.head(tokens), self.config)[:, : self.config.n_pixels]

    def forward_loss(
        self, flux: torch.Tensor, valid: torch.Tensor, hidden: torch.Tensor, ivar: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss on pixels that are hidden and valid, and the prediction (N, L).

        Without ``ivar``: the mean squared error over all of them (the paper's). With ``ivar`` (N, L): each
        spectrum's chi-squared per hidden pixel (squared error x inverse variance), averaged over the
        spectra, so a strong line counts by its significance rather than its height and no spectrum by
        its S/N alone."""
        visible = valid & ~hidden
        tokens, _ = self.encoder.forward_tokens(flux, visible)
        prediction = self.forward_decoder(tokens, fill_gaps(flux, visible))
        scored = (hidden & valid).float()
        squared = (prediction.float() - flux) ** 2 * scored
        if ivar is None:
            return squared.sum() / scored.sum().clamp(min=1.0), prediction
        counted = scored.sum(1)  # (N,) hidden valid pixels per spectrum
        per_spectrum = (squared * ivar).sum(1) / counted.clamp(min=1.0)
        return per_spectrum.sum() / (counted > 0).sum().clamp(min=1), prediction

    def forward(
        self, flux: torch.Tensor, valid: torch.Tensor, hidden: torch.Tensor, ivar: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_loss(flux, valid, hidden, ivar)[0]


def span_mask(
    shape: tuple[int, int], *, mask_ratio: float, span: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """Hidden pixels (N, L) bool: the pixel axis is cut into spans of ``span`` pixels and a random
    ``mask_ratio`` of them (exactly, rounded) is hidden in each spectrum. Neighbouring hidden spans
    merge, so hidden stretches vary in length."""
    N, L = shape
    n_spans = math.ceil(L / span)
    n_hidden = round(mask_ratio * n_spans)
    scores = torch.rand(N, n_spans, generator=generator)
    chosen = torch.zeros(N, n_spans, dtype=torch.bool)
    chosen.scatter_(1, scores.argsort(dim=1)[:, :n_hidden], True)
    return chosen.repeat_interleave(span, dim=1)[:, :L].to(device)


def interpolation_baseline(flux: np.ndarray, valid: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Linear interpolation across hidden pixels from the nearest visible valid pixels on either side.

    flux, valid, hidden: (N, L) arrays. Returns (N, L) float32 with every pixel that is not visible
    (hidden or invalid) replaced by the interpolation.
    """
    visible = torch.from_numpy(np.asarray(valid, dtype=bool) & ~np.asarray(hidden, dtype=bool))
    return fill_gaps(torch.from_numpy(np.array(flux, dtype=np.float32)), visible).numpy()
