"""Reads for inference, one module per subject: ``embeddings`` (and the pipeline at a glance), ``background``
(search jobs, survey searches, operations), ``evidence`` (a search's evidence as the result page shows it),
``lines`` (background emission lines scanned in stored spectra) and ``store_check`` (do the files agree with
the database?). Reads only: nothing here writes.
"""
