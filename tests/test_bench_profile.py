"""bench/pipeline.py --profile: the time it puts inside the model libraries is each profiled second
counted once, helpers (SciPy, NumPy, compiled kernels) charged to the library that called them,
and our own code's helpers to no library."""

from __future__ import annotations

import importlib.util

from scrm.config import PROJECT_ROOT


def _bench_pipeline():
    spec = importlib.util.spec_from_file_location("bench_pipeline",
                                                  PROJECT_ROOT / "bench" / "pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SITE = "/venv/lib/python3.11/site-packages"
OURS = ("/repo/src/scrm/outcome/models.py", 10, "cross_validate")
FIT = (f"{SITE}/sklearn/linear_model/_logistic.py", 1200, "fit")
SKL_IMPORT = (f"{SITE}/sklearn/svm/__init__.py", 1, "<module>")
MINIMIZE = (f"{SITE}/scipy/optimize/_minimize.py", 50, "minimize")
LBFGS = ("~", 0, "<built-in method scipy.optimize._lbfgsb.setulb>")
NP_SUM = ("~", 0, "<method 'sum' of 'numpy.ndarray' objects>")
UMAP_FIT = (f"{SITE}/umap/umap_.py", 2300, "fit")


def test_library_time_counts_each_second_once_and_follows_the_caller():
    # (calls, primitive calls, own s, cumulative s, callers {caller: (.., .., own s, cum s)})
    raw = {
        OURS: (1, 1, 1.0, 16.0, {}),
        FIT: (1, 1, 2.0, 7.0, {OURS: (1, 1, 2.0, 7.0)}),
        SKL_IMPORT: (1, 1, 0.5, 0.5, {OURS: (1, 1, 0.5, 0.5)}),
        MINIMIZE: (1, 1, 1.0, 5.0, {FIT: (1, 1, 1.0, 5.0)}),
        # the kernel: 4 s under sklearn's optimiser, 2 s under UMAP's
        LBFGS: (3, 3, 6.0, 6.0, {MINIMIZE: (2, 2, 4.0, 4.0), UMAP_FIT: (1, 1, 2.0, 2.0)}),
        UMAP_FIT: (1, 1, 1.0, 3.0, {OURS: (1, 1, 1.0, 3.0)}),
        NP_SUM: (5, 5, 3.0, 3.0, {OURS: (4, 4, 2.0, 2.0), FIT: (1, 1, 1.0, 1.0)}),
    }
    inside = _bench_pipeline().self_time_by_library(raw)
    # sklearn: fit 2 + minimize 1 + its share of the kernel 4 + its share of numpy's sum 1
    assert abs(inside["sklearn"] - 8.0) < 1e-9
    assert abs(inside["umap"] - (1.0 + 2.0)) < 1e-9
    total_own = sum(v[2] for v in raw.values())
    assert sum(inside.values()) <= total_own
    # an import of a library (its module body) is not model work
    assert inside["statsmodels"] == 0.0
