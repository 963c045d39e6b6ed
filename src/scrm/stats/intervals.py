"""Confidence intervals for rates and differences of rates (vectorised over numpy arrays).

Why these: Wilson's score interval keeps its coverage at small n and at rates near 0 or 1 where the
normal (Wald) interval fails, and Newcombe's hybrid score interval (method 10) builds the interval
of a difference from the two Wilson intervals with the same good behaviour.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm


def z_value(level: float) -> float:
    """Two-sided standard-normal quantile of a confidence level (0.95 -> 1.959964)."""
    return float(norm.ppf(0.5 + level / 2.0))


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k/n (nan where n == 0); good at small n and rates near 0 or 1."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def newcombe_interval(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray,
                      z: float) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval of p1 - p2 (method 10), built from the two Wilson intervals."""
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1 = np.asarray(k1, float) / np.asarray(n1, float)
        p2 = np.asarray(k2, float) / np.asarray(n2, float)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lo, hi


def finite(x: object, digits: int = 6) -> float | None:
    """A finite float rounded for a metrics file, else None (JSON has no NaN)."""
    if x is None:
        return None
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(f, digits) if math.isfinite(f) else None


def rate_with_interval(k: int, n: int, level: float) -> dict[str, int | float | None]:
    """``k`` of ``n`` as a metrics entry: the rate and its Wilson interval (None when n is 0)."""
    lo, hi = wilson_interval(np.array([k]), np.array([n]), z_value(level))
    return {"k": int(k), "n": int(n), "rate": finite(k / n) if n else None,
            "ci_low": finite(lo[0]) if n else None, "ci_high": finite(hi[0]) if n else None}


def difference_with_interval(k1: int, n1: int, k2: int, n2: int,
                             level: float) -> dict[str, float | None]:
    """p1 - p2 with Newcombe's interval (None when either n is 0)."""
    if not n1 or not n2:
        return {"diff": None, "ci_low": None, "ci_high": None}
    lo, hi = newcombe_interval(np.array([k1]), np.array([n1]), np.array([k2]), np.array([n2]),
                               z_value(level))
    return {"diff": finite(k1 / n1 - k2 / n2), "ci_low": finite(lo[0]), "ci_high": finite(hi[0])}


def chi2_two_proportions(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray,
                         n2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson's chi-square test (df = 1, no continuity correction) that k1/n1 and k2/n2 share one
    rate: (statistic, p-value, smallest expected cell count); nan where a margin is empty.

    The smallest expected count is returned so that a reader can see where the chi-square
    approximation is rough (below 5); the Newcombe interval beside it does not rely on it.
    """
    from scipy.stats import chi2

    a = np.asarray(k1, dtype=float)
    b = np.asarray(n1, dtype=float) - a
    c = np.asarray(k2, dtype=float)
    d = np.asarray(n2, dtype=float) - c
    n = a + b + c + d
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.where(margins > 0, n * (a * d - b * c) ** 2 / margins, np.nan)
        expected = np.minimum.reduce([(a + b) * (a + c), (a + b) * (b + d), (c + d) * (a + c),
                                      (c + d) * (b + d)]) / n
    return stat, chi2.sf(stat, 1), expected
