"""REST API for searches (``search``), batch search jobs (``jobs``) and survey searches (``surveys``).

``POST /api/v1/search/`` answers one spectrum at once, for anyone (throttled); batch jobs need a token
and belong to the user who made them. Survey searches are shared: anyone reads them, a token starts one.
"""
