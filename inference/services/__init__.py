"""What inference does, one module per sub-domain, in two layers (``curation`` only reads, built on a search).

The core, which the worker side runs: ``search`` (one query against a knowledge base), ``embeddings``
(the ingested spectra under a checkpoint), ``knowledge_bases`` (a version's index and scores), ``bulk``
(every spectrum of the survey), and ``curation`` (what curators see, built on a search).

The web side, which people's requests call and which queues the worker's tasks: ``jobs`` (batch
searches), ``surveys`` (survey searches) and ``operations`` (the admins' pre-training and rebuilds).
Imports go down: web side -> ``inference.tasks`` -> ``inference.worker`` -> core -> selectors -> models.
"""
