"""What a search answers: the vote with its evidence, and the query as the result page draws it.

Plain dataclasses, shared by the search service that makes them, the selectors that turn them into
pages, and the API that serialises them. Never imports Django.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from inference.trust import Trust

if TYPE_CHECKING:
    from kb.models import Spectrum


@dataclass(frozen=True)
class Neighbour:
    spectrum_id: int
    specobjid: str
    plate_mjd_fiber: str
    z: float
    label: str
    distance: float  # L2 between embeddings, in the knowledge base's learned metric where it has one
    weight: float  # softmax-normalised share of the vote
    catalogs: list[str]  # where the label came from
    details: dict = field(default_factory=dict)
    mock: bool = False  # from GalSpec's mock survey: its ids name no SDSS object


@dataclass(frozen=True)
class Context:
    """What the query's own data say beside the vote, and how often votes for its label were right."""

    voters: int  # neighbours whose label won the vote
    own_lines: str | None  # the BPT class the query's own line fluxes give (kb.bpt), None without line fits
    sdss_class: str  # the SDSS pipeline's CLASS and SUBCLASS, '' where the file gives none
    precision: float | None  # of votes for this label (of target votes, for a search), where it was scored
    recall: float | None  # of spectra with this label (of targets, for a search)
    scored_on: str  # 'the test reserve', 'cross-validation on the catalog's examples', or '' if never scored
    scored_with: str  # the vote policy precision and recall were measured under; '' if none under this answer's
    unscored_because: str  # why no precision is quoted, in words; '' where one is
    disagreements: list[str]  # sentences: where the query's own data contradict the vote


@dataclass(frozen=True)
class Answer:
    task: str
    label: str
    share: float  # the winning label's share of the weight
    shares: dict[str, float]
    is_target: bool | None  # None for a classification task
    neighbours: list[Neighbour]
    knowledge_base: int
    kb_version: int
    checkpoint: str
    training_run: int
    k: int
    weight_function: str
    policy: dict  # inference.retriever.VotePolicy as a dict: k, weighting, temperature, metric
    query: str  # what was searched: 'specobjid ...' or a file name
    mock: bool  # the query is a spectrum of GalSpec's mock survey, not an observed one
    trust: Trust  # how far to trust it: is the query like what the knowledge base was checked on?
    context: Context  # what its own data say beside the vote, and how often such votes were right
    background: dict | None = None  # lens tasks: the background-line scan, {z_source, snr, lines, detected, threshold}
    weirdness: dict | None = None  # outlier tasks: {score, k, threshold, false_positive_rate, flagged}

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Query:
    """What was searched, as the result page draws it."""

    name: str
    z: float
    flux: np.ndarray  # (L,) normalised flux on wave_grid()
    valid: np.ndarray  # (L,) bool
    lines: dict  # line fits by SPZLINE name (flux in 1e-17 erg s^-1 cm^-2), empty when the file has none
    spectrum: Spectrum | None  # the ingested spectrum, when one was searched
