"""A Celery worker whose searches each take ``GALSPEC_TEST_SEARCH_DELAY`` seconds more, so that a test sees
two workers share a survey search part by part, and can kill one in the middle of a part.

Run in place of ``python -m celery`` (``start_worker(..., module="tests.slow_worker")``).
"""

import os
import sys
import time

from celery.__main__ import main

import inference.retrieval

DELAY = float(os.environ["GALSPEC_TEST_SEARCH_DELAY"])
_neighbours_excluding = inference.retrieval.neighbours_excluding


def _slow(*args, **kwargs):
    time.sleep(DELAY)
    return _neighbours_excluding(*args, **kwargs)


inference.retrieval.neighbours_excluding = _slow  # before inference.services.bulk binds the name

if __name__ == "__main__":
    sys.argv[0] = "celery"
    main()
