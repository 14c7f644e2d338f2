"""Writes to the kb tables, one module per sub-domain: ``ingest`` (SDSS-format files and catalogs),
``knowledge_bases`` (versions: create, finish, promote, discard), ``curation`` (flags, decisions,
corrections) and ``audit`` (the trail every change writes in its own transaction).
"""
