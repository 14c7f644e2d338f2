"""Composing a knowledge base: which labelled spectra become its entries, in what proportion.

Pure Python; never imports Django.
"""

from __future__ import annotations

import numpy as np

VOTERS = 3  # entries, and targets, a knowledge base needs at least for the default K = 3 vote


def compose(
    candidates: dict[int, str], *, targets: tuple[str, ...], size: int | None, target_fraction: float | None, seed: int
) -> list[int]:
    """Choose the keys of a knowledge base from ``candidates`` {key: label}: deterministic for a seed.

    With no ``target_fraction`` the entries are a uniform sample (the labels in their natural
    proportions); with one, ``round(size * target_fraction)`` of them carry a target label. ``size``
    None takes as many as the proportion allows. Raises ValueError, with the counts available, when
    the candidates cannot make such a knowledge base.
    """
    rng = np.random.default_rng(seed)
    keys = sorted(candidates)
    if size is not None and size < 1:
        raise ValueError("a knowledge base needs at least one entry (--size)")
    if target_fraction is None:
        size = len(keys) if size is None else size
        if size > len(keys):
            raise ValueError(f"asked for {size} entries but only {len(keys)} labelled spectra are eligible")
        return sorted(rng.choice(keys, size, replace=False).tolist()) if keys else []
    if not targets:
        raise ValueError("this task has no target label: a target fraction applies to search tasks only")
    if not 0 < target_fraction < 1:
        raise ValueError(f"the target fraction must be between 0 and 1 (exclusive), got {target_fraction}")
    hits = [key for key in keys if candidates[key] in targets]
    rest = [key for key in keys if candidates[key] not in targets]
    if size is None:
        size = int(min(len(hits) / target_fraction, len(rest) / (1 - target_fraction)))
    n_hits = round(size * target_fraction)
    if n_hits > len(hits) or size - n_hits > len(rest) or size < 1:
        raise ValueError(
            f"{size} entries with a target fraction of {target_fraction} need {n_hits} targets and "
            f"{size - n_hits} others; {len(hits)} targets and {len(rest)} others are eligible"
        )
    chosen = rng.choice(hits, n_hits, replace=False).tolist() + rng.choice(rest, size - n_hits, replace=False).tolist()
    return sorted(chosen)
