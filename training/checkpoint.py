"""Checkpoints: a folder that alone says how to use it.

- ``model.safetensors``: the weights of the masked-modelling model (encoder and reconstruction head).
- ``config.json``: ``model`` (EncoderConfig), ``preprocess`` (grid and normalisation window),
  ``training`` (PretrainConfig) and ``metrics``.
- ``training_state.pt`` (``last`` checkpoints only): optimizer, step, RNG and history, for resuming.

Folders are written whole (``kb.store.folder_write``), so a reader never sees half of one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kb.store import folder_write
from training.model import EncoderConfig, GalSpecEncoder, MaskedSpectrumModel

SHIPPED = Path(__file__).resolve().parent / "shipped" / "small"  # the demo's encoder (README: how it was made)


def save_checkpoint(folder: str | Path, model: MaskedSpectrumModel, info: dict) -> None:
    """Weights as safetensors and ``info`` (model, preprocess, training, metrics) as config.json."""
    weights = {name: tensor.detach().float().cpu().contiguous() for name, tensor in model.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(info, indent=2))

    folder_write(folder, write)


def read_info(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device from a name: ``auto`` (or None) takes CUDA where torch sees it, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_masked_model(folder: str | Path, device=None) -> MaskedSpectrumModel:
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder}: no model.safetensors (not a GalSpec checkpoint)")
    config = EncoderConfig.from_dict(read_info(folder)["model"])
    model = MaskedSpectrumModel(config)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.to(resolve_device(device)).eval()


def load_checkpoint(folder: str | Path, device=None) -> GalSpecEncoder:
    """The encoder of a checkpoint, in eval mode, ready to embed."""
    return load_masked_model(folder, device).encoder


def save_training_state(folder, *, model, optimizer, generators: list[torch.Tensor], state: dict, shared: dict) -> None:
    """A ``last`` checkpoint: weights and config as any checkpoint, plus what resuming needs; ``generators``
    are the batch-and-mask random states of every rank, in rank order (one for a run in one process)."""
    weights = {name: tensor.detach().float().cpu().contiguous() for name, tensor in model.state_dict().items()}
    extra = {
        "optimizer": optimizer.state_dict(),
        "generator": generators[0],
        "generators": generators,
        "state": state,
        "torch_rng": torch.get_rng_state(),
    }

    def write(tmp: Path) -> None:
        save_file(weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps({**shared, "metrics": {"step": state["step"]}}, indent=2))
        torch.save(extra, tmp / "training_state.pt")

    folder_write(folder, write)


def load_training_state(folder, *, model, optimizer, generator: torch.Generator, rank: int = 0) -> dict:
    """Restore model, optimizer and RNG (``rank``'s, of a run over several processes) from a ``last``
    checkpoint; returns the loop's state. A run resumed over another number of processes than it was saved
    by starts its extra ranks' random streams afresh."""
    folder = Path(folder)
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in load_file(folder / "model.safetensors").items()})
    # weights_only: tensors, numbers, strings and containers, never pickled code (the file may sit on shared storage)
    extra = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    saved = extra.get("generators", [extra["generator"]])
    if rank < len(saved):
        generator.set_state(saved[rank])
    torch.set_rng_state(extra["torch_rng"])
    return extra["state"]
