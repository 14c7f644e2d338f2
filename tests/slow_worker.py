"""A Celery worker whose searches each take ``GALSPEC_TEST_SEARCH_DELAY`` seconds more, and whose embedding
calls each ``GALSPEC_TEST_EMBED_DELAY`` seconds more (0 unless set), so that a test sees two workers share
a survey search or an embedding part by part, and can kill one in the middle of a part.

Run in place of ``python -m celery`` (``start_worker(..., module="tests.slow_worker")``).
"""

import os
import sys
import time

from celery.__main__ import main

import inference.embed
import inference.retriever


def _slowed(function, delay: float):
    def slow(*args, **kwargs):
        time.sleep(delay)
        return function(*args, **kwargs)

    return slow


# before inference.services.embeddings binds the name; every search goes through the Retriever's method
inference.retriever.Retriever.neighbours = _slowed(
    inference.retriever.Retriever.neighbours, float(os.environ.get("GALSPEC_TEST_SEARCH_DELAY", 0))
)
inference.embed.embed = _slowed(inference.embed.embed, float(os.environ.get("GALSPEC_TEST_EMBED_DELAY", 0)))

if __name__ == "__main__":
    sys.argv[0] = "celery"
    main()
