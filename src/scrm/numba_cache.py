"""Numba kernels of UMAP and pynndescent compiled once per machine, not once per process.

UMAP compiles most of its numba kernels without ``cache=True``, so every process that fits a UMAP
pays the compilation again: about 10-25 s of CPU on two cores, more than the whole topic fit on the
sample (measured with cProfile on ``scrm topics``: 26 of 66 s in ``numba.core.dispatcher.compile``).
Turning on numba's own on-disk cache for those kernels (``Dispatcher.enable_caching``, the switch
``cache=True`` sets) keeps the machine code numba compiles; it is reused while the library's source
file is unchanged (numba keys the cache on the file's timestamp and size, and on the argument types
and CPU), so the numbers are those of a fresh compilation, bit for bit.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings

# the modules that define the kernels a BERTopic fit runs (imported here so their kernels exist)
KERNEL_MODULES = ("umap.umap_", "umap.layouts", "umap.spectral", "umap.distances", "umap.sparse",
                  "umap.utils", "pynndescent.pynndescent_", "pynndescent.distances",
                  "pynndescent.sparse", "pynndescent.utils", "pynndescent.rp_trees")


@functools.cache
def cache_numba_kernels(modules: tuple[str, ...] = KERNEL_MODULES) -> int:
    """Enable numba's disk cache on every uncached kernel of ``modules``' packages; how many were
    enabled. Once per process (a topic fit builds several models; the kernels stay switched on).

    A kernel numba cannot cache (no writable cache folder, dynamic globals) simply stays as it was.
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher
    from numba.core.errors import NumbaWarning

    # numba says so once per kernel it cannot save; the kernel still runs, compiled in memory
    warnings.filterwarnings("ignore", message="Cannot cache compiled function",
                            category=NumbaWarning)
    enabled = 0
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    packages = {m.split(".")[0] for m in modules}
    for name, mod in list(sys.modules.items()):
        if mod is None or name.split(".")[0] not in packages:
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):
                try:
                    obj.enable_caching()
                except RuntimeError:  # no cache locator for this file: compiled in memory
                    continue
                enabled += 1
    return enabled
