"""Multiple-comparison adjustment of a family of p-values: Holm and Benjamini–Hochberg.

Why both: a findings table with dozens of rows (features x outcomes x brands) will show a few
"significant" rows by chance alone. Holm's step-down keeps the family-wise error rate (the chance of
*any* false finding) at the level and is uniformly more powerful than Bonferroni; Benjamini–Hochberg
keeps the expected share of false findings among the rows called significant (the false discovery
rate), the usual choice when the table is exploratory. Missing p-values (nan, a row with nothing to
compare) stay missing and do not count towards the family size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def pvalue(p: Any, digits: int = 4) -> float | None:
    """A p-value for a metrics file: ``digits`` significant digits (never rounded to a bare 0.0; an
    underflow below 1e-300 is stored as 1e-300, and the statistic and df stored beside it say how
    small), None when missing."""
    if p is None:
        return None
    f = float(p)
    if not np.isfinite(f):
        return None
    return max(float(f"{f:.{digits}g}"), 1e-300)


def _adjust(p: Any, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``step`` (sorted valid p-values -> adjusted, same order) and put the results back in
    the input order, capped at 1; nan stays nan and does not count towards the family size."""
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1:
        raise ValueError("p-values must be a one-dimensional sequence")
    ok = np.isfinite(arr)
    if ((arr[ok] < 0) | (arr[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(arr.shape, np.nan)
    q = arr[ok]
    if q.size == 0:
        return out
    order = np.argsort(q, kind="stable")
    res = np.empty(q.size)
    res[order] = np.minimum(step(q[order]), 1.0)
    out[ok] = res
    return out


def holm(p: Any) -> np.ndarray:
    """Holm step-down adjusted p-values: sorted p_(i) * (m - i + 1), made monotone, capped at 1."""
    return _adjust(p, lambda q: np.maximum.accumulate(q * (q.size - np.arange(q.size))))


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values): sorted p_(i) * m / i, made monotone from
    the largest down, capped at 1."""
    return _adjust(p, lambda q: np.minimum.accumulate((q * q.size / np.arange(1, q.size + 1))[::-1])[::-1])
