"""A Celery worker whose first index write stops half-done, for killing a worker at a known point.

Run in place of ``python -m celery`` (``start_worker(..., module="tests.gated_worker")``). In this process
``faiss.write_index`` writes the index file into its ``.tmp`` folder as usual, then touches the file
named by ``GALSPEC_TEST_GATE`` and blocks for good: the sidecar is not written and the folder is not
renamed, so a test can SIGKILL the worker in the middle of ``inference.index.save``
(``kb.store.folder_write``).
"""

import os
import sys
import time
from pathlib import Path

import faiss
from celery.__main__ import main

GATE = Path(os.environ["GALSPEC_TEST_GATE"])
_write_index = faiss.write_index


def _write_index_then_block(index, path, *args):
    _write_index(index, path, *args)
    if Path(path).parent.name.endswith(".tmp"):  # inference.index.save (kb.store.folder_write), half done
        GATE.write_text(str(path))
        while True:
            time.sleep(60)


faiss.write_index = _write_index_then_block

if __name__ == "__main__":
    sys.argv[0] = "celery"
    main()
