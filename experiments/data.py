"""What every experiment draws on: its configuration, the arrays of the ingested spectra, and the
knowledge bases' entries and neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments import timing
from experiments.baselines import SHORTCUT_FEATURES
from inference import index as vector_index
from inference.representation import needs_ivar, represent
from inference.retriever import VotePolicy
from inference.selectors.embeddings import embedding_store, line_continuum, line_vectors, reconstruction_store
from inference.services.embeddings import embedding_update
from inference.services.search import load_retriever
from kb.models import KnowledgeBase, Spectrum
from kb.selectors import spectrum_store


@dataclass(frozen=True)
class EvaluationConfig:
    k: int = 3
    weight_function: str = "exp"
    seed: int = 0
    n_resamples: int = 1000  # bootstrap resamples for every 95% interval
    max_k: int = 15  # the K sweep runs 1..max_k
    proportions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # lens share of the KB (Figure 4)
    retrieval_sizes: tuple[int, ...] = timing.PAPER_SIZES
    approximate_max_size: int = 100_000  # HNSW/IVF builds past this take minutes on two cores
    cnn_epochs: int = 15  # at most; both networks stop early on their validation macro-F1 (experiments.supervised)
    finetune_epochs: int = 15  # 0: the fine-tuned encoder is left out of Table 2
    distance_sample: int = 2000  # KB entries whose pairwise distances Table A1 describes


@dataclass
class Data:
    """The arrays every experiment draws on; rows of ``flux``/``valid``/``vectors`` are store rows."""

    flux: np.ndarray  # (n, L) normalised flux
    valid: np.ndarray  # (n, L) bool
    ivar: np.ndarray  # (n, L) its inverse variance, (normalised flux)^-2
    vectors: np.ndarray  # (n, D) embeddings under the checkpoint in service
    spectra: dict[int, Spectrum]  # spectrum id -> row (store_row, z, lines, ...)
    reconstruction: np.ndarray  # (n,) the checkpoint's reconstruction chi-squared (inference.embed)

    def rows(self, ids) -> np.ndarray:
        return np.array([self.spectra[i].store_row for i in ids], dtype=np.int64)

    def redshifts(self, ids) -> np.ndarray:
        return np.array([self.spectra[i].z for i in ids], dtype=np.float32)

    def vectors_of(self, ids) -> np.ndarray:
        """(n, E) the embeddings of spectra ``ids``."""
        return np.asarray(self.vectors[self.rows(ids)])

    def served(self, kb: KnowledgeBase, ids) -> np.ndarray:
        """(n, D) spectra ``ids`` in the representation the knowledge base votes in (``inference.representation``)."""
        policy, rows = VotePolicy.from_dict(kb.policy), self.rows(ids)
        pixels = (self.flux[rows], self.valid[rows], self.ivar[rows])
        lines = line_vectors(store_rows=rows) if needs_ivar(policy.representation) else None  # as kept
        return self.represented(policy, np.asarray(self.vectors[rows]), *pixels, ids, lines=lines)

    def represented(self, policy: VotePolicy, embedding, flux, valid, ivar, ids, lines=None) -> np.ndarray:
        """(n, D) spectra ``ids`` with these (n, E) embeddings and (n, L) flux, valid and ivar (perturbed, say)
        in the representation ``policy`` names; their lines measured afresh unless ``lines`` are given."""
        z = self.redshifts(ids)
        arrays = (embedding, np.asarray(flux), np.asarray(valid), z, np.asarray(ivar))
        eigen = line_continuum() if needs_ivar(policy.representation) and lines is None else None
        return represent(policy.representation, *arrays, window_scale=policy.window_scale, lines=lines, eigen=eigen)

    def features(self, ids) -> np.ndarray:
        """(n, 3) redshift, velocity dispersion (km/s) and median S/N: ``baselines.SHORTCUT_FEATURES``; NaN where
        the catalog has none."""
        return np.array(
            [[getattr(self.spectra[i], name) for name in SHORTCUT_FEATURES] for i in ids], dtype=np.float64
        ).reshape(len(ids), len(SHORTCUT_FEATURES))


def data_load(run) -> Data:
    """Every ingested spectrum and its embedding under ``run``'s checkpoint (embedding what is not yet)."""
    embedding_set = embedding_update(training_run=run)
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    return Data(
        flux=flux,
        valid=valid,
        ivar=ivar,
        vectors=embedding_store(embedding_set).read()[: embedding_set.rows],
        spectra={s.pk: s for s in Spectrum.objects.all()},
        reconstruction=reconstruction_store(embedding_set).read()[: embedding_set.rows, 0],
    )


def kb_entries(kb: KnowledgeBase) -> list[tuple[int, str]]:
    return list(kb.entries.order_by("spectrum_id").values_list("spectrum_id", "label"))


def kb_neighbours(data: Data, kb: KnowledgeBase, ids: list[int], k: int) -> vector_index.Neighbours:
    """The ``k`` nearest entries of spectra ``ids``, found by the knowledge base's retriever (its metric)."""
    return load_retriever(kb).neighbours(data.served(kb, ids), k)


def config_policy(config: EvaluationConfig) -> VotePolicy:
    """The vote of the baselines: the configuration's K and weighting, at temperature 1, on plain L2."""
    return VotePolicy(k=config.k, weighting=config.weight_function)
