"""One computation in a second process while this one goes on: how a stage keeps both cores busy
without changing a result.

Only for pure functions of their arguments (seeded, no global random state): the value is the same
whichever process computes it. Workers are spawned (not forked), so no thread pool or lock of this
process (polars, BLAS, OpenMP) is inherited half-held.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Where a worker process writes a cProfile of each call it runs (``bench/pipeline.py --profile``
# sets it for a stage). cProfile in the stage's own process sees none of its workers' time, so
# without this a stage that works in spawned processes has no profile of most of its CPU.
PROFILE_DIR_ENV = "SCRM_PROFILE_DIR"
_CALLS = itertools.count()


@dataclass(frozen=True)
class Profiled(Generic[T]):
    """``fn``, picklable for a process pool; with ``$SCRM_PROFILE_DIR`` set in the process that
    runs it, each call runs under cProfile and leaves ``worker-<pid>-<n>.prof`` there. Same value
    either way."""

    fn: Callable[..., T]

    def __call__(self, *args: Any) -> T:
        folder = os.environ.get(PROFILE_DIR_ENV)
        if not folder:
            return self.fn(*args)
        import cProfile

        prof = cProfile.Profile()
        try:
            return prof.runcall(self.fn, *args)
        finally:
            os.makedirs(folder, exist_ok=True)
            prof.dump_stats(os.path.join(folder, f"worker-{os.getpid()}-{next(_CALLS)}.prof"))


@contextmanager
def beside(n_jobs: int, fn: Callable[..., T], *args: Any) -> Iterator[Callable[[], T]]:
    """A getter of ``fn(*args)``. With ``n_jobs > 1`` the call starts on entry in a spawned
    process, so the caller's work and ``fn`` overlap; with 1 it runs in this process when the
    getter is called. An exception of ``fn`` is raised by the getter either way."""
    if n_jobs < 2:
        yield lambda: fn(*args)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        yield pool.submit(Profiled(fn), *args).result
