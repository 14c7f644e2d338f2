"""Reads for embeddings."""
import numpy as np

from inference.models import EmbeddingSet
from inference.services import embedding_store
from training.selectors import training_run_in_service


def embeddings_in_service() -> tuple[EmbeddingSet | None, np.ndarray]:
    """The embedding set of the checkpoint in service and its (rows, D) memory-mapped vectors."""
    run = training_run_in_service()
    embedding_set = EmbeddingSet.objects.filter(training_run=run).first() if run else None
    if embedding_set is None:
        return None, np.empty((0, 0), dtype=np.float32)
    return embedding_set, embedding_store(embedding_set).read()[: embedding_set.rows]
