"""A learned distance for a knowledge base: a linear map fitted on its own labels, applied before the index.

The embedding's largest directions are continuum shape and noise; the few directions that tell a LINER from
a Seyfert, or a double-peaked galaxy from an ordinary one, carry little of its variance, so plain L2 finds
neighbours that look alike rather than neighbours of the same kind. A map fitted on the knowledge base's
labelled entries (finer classes where the labels have them: outlier kinds, the BPT class of "other") puts
distance where the labels differ:

- ``identity``: the embedding as it is (the paper's L2);
- ``whiten``: divides by the pooled within-class covariance (Ledoit-Wolf shrunk), so that scatter common to
  all classes counts less (a Mahalanobis distance);
- ``lda``: linear discriminant analysis with shrinkage, keeping its (classes - 1) discriminant directions;
- ``nca``: neighbourhood components analysis (Goldberger et al. 2005) on the leading principal components,
  trained to make each entry's nearest neighbours share its class.

Every map is ``y = (x - mean) @ matrix``, (D,) and (D, d), so it is stored as two arrays and applied in one
product; distances are L2 in the mapped space. Which map a knowledge base uses is chosen on the validation
reserve (``inference.retriever.policy_choose``). Pure numpy/scikit-learn; never imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.covariance import ledoit_wolf
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.neighbors import NeighborhoodComponentsAnalysis

METRICS = ("identity", "whiten", "lda", "nca")
NCA_COMPONENTS = 64  # principal components NCA starts from
NCA_SAMPLE = 1500  # entries NCA is trained on at most (its cost grows with the square of their number)
NCA_ITERATIONS = 40


@dataclass(frozen=True)
class LinearMetric:
    """y = (x - mean) @ matrix: ``mean`` (D,), ``matrix`` (D, d); ``matrix`` None for the identity."""

    name: str = "identity"
    mean: np.ndarray | None = None
    matrix: np.ndarray | None = None

    @property
    def identity(self) -> bool:
        return self.matrix is None

    def width(self, d: int) -> int:
        """The mapped width of vectors d wide."""
        return d if self.matrix is None else self.matrix.shape[1]

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """(n, D) embeddings -> (n, d) float32 in the space whose L2 the index measures."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.matrix is None:
            return vectors
        if vectors.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"vector width ({vectors.shape[-1]}) doesn't match the metric ({self.mean.shape[0]})")
        return np.ascontiguousarray((vectors - self.mean) @ self.matrix, dtype=np.float32)

    def save(self, path: str | Path) -> None:
        if self.matrix is not None:
            np.savez(path, mean=self.mean, matrix=self.matrix, name=np.array(self.name))

    @classmethod
    def load(cls, path: str | Path, name: str) -> LinearMetric:
        if name == "identity":
            return IDENTITY
        with np.load(path) as arrays:
            return cls(name=name, mean=arrays["mean"].astype(np.float32), matrix=arrays["matrix"].astype(np.float32))


IDENTITY = LinearMetric()


def metric_fit(name: str, vectors: np.ndarray, classes: list[str], *, seed: int = 0) -> LinearMetric:
    """The map ``name`` (one of METRICS) fitted on ``vectors`` (n, D) of entries labelled ``classes`` (n,).
    ValueError where the entries cannot support it (fewer than two classes, or a class of one entry)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    if name == "identity":
        return IDENTITY
    x = np.asarray(vectors, dtype=np.float64)
    names, y = np.unique(np.asarray(classes), return_inverse=True)
    counts = np.bincount(y)
    if len(names) < 2 or counts.min() < 2:
        raise ValueError(
            f"a learned metric needs two or more classes of two or more entries, got {dict(zip(names, counts))}"
        )
    mean = x.mean(axis=0)
    if name == "whiten":
        within = x - np.stack([x[y == c].mean(axis=0) for c in range(len(names))])[y]
        covariance, _ = ledoit_wolf(within, assume_centered=True)
        values, vectors_ = np.linalg.eigh(covariance)
        matrix = vectors_ / np.sqrt(np.maximum(values, values.max() * 1e-9))
    elif name == "lda":
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, y)
        matrix = _linear_part(lda.transform, mean)
    else:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(len(x), NCA_SAMPLE, replace=False)) if len(x) > NCA_SAMPLE else np.arange(len(x))
        pca = PCA(n_components=min(NCA_COMPONENTS, len(sample) - 1, x.shape[1]), random_state=seed).fit(x[sample])
        nca = NeighborhoodComponentsAnalysis(max_iter=NCA_ITERATIONS, random_state=seed, init="pca")
        nca.fit(pca.transform(x[sample]), y[sample])
        matrix = _linear_part(lambda v: nca.transform(pca.transform(v)), mean)
    return LinearMetric(name=name, mean=mean.astype(np.float32), matrix=matrix.astype(np.float32))


def _linear_part(transform, mean: np.ndarray) -> np.ndarray:
    """(D, d): the matrix of an affine ``transform``, read from its images of ``mean`` and of mean + each axis."""
    origin = transform(mean[None])
    return transform(mean[None] + np.eye(len(mean))) - origin
