"""One computation in a second process while this one goes on: how a stage keeps both cores busy
without changing a result.

Only for pure functions of their arguments (seeded, no global random state): the value is the same
whichever process computes it. Workers are spawned (not forked), so no thread pool or lock of this
process (polars, BLAS, OpenMP) is inherited half-held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


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
        yield pool.submit(fn, *args).result
