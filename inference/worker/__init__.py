"""The worker side of long work: claim it, run it, carry it on after a worker died.

``lease`` is how a worker holds an operation or a survey search; ``jobs``, ``surveys`` and
``operations`` run each kind. Only ``inference.tasks`` calls these.
"""
