"""Progress bars for management commands: one tqdm bar driven by a (done, total) callback."""
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(desc: str, unit: str, *, verbosity: int = 1) -> Iterator[Callable[[int, int], None]]:
    """Yield ``on_progress(done, total)`` for a service; the bar is hidden at verbosity 0."""
    bar = tqdm(total=0, unit=unit, desc=desc, disable=verbosity == 0)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield on_progress
    finally:
        bar.close()
