"""Confidence intervals for rates, differences of rates and quantiles; p-values that survive JSON.

Why these: Wilson's score interval keeps its coverage at small n and at rates near 0 or 1 where the
normal (Wald) interval fails, and Newcombe's hybrid score interval (method 10) builds the interval
of a difference from the two Wilson intervals with the same good behaviour. A sample quantile (a
median latency) gets the distribution-free order-statistic interval: it assumes nothing about the
heavy-tailed shape of waiting times. p-values are kept to significant digits (a p of 3e-12 rounded
to 6 decimals would read as a bare 0.0) together with their statistic, degrees of freedom and
log10, and many p-values are adjusted with Holm's step-down method (family-wise error) or
Benjamini–Hochberg's (false discovery rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def quantile_interval(values: np.ndarray, q: float, level: float) -> tuple[float | None, float | None]:
    """Distribution-free interval of the ``q`` quantile from order statistics (None when n is too
    small for the level).

    With n sorted values x(1) <= ... <= x(n) and K ~ Binomial(n, q), the interval [x(l), x(u)]
    with l = the largest rank with P(K < l) <= alpha/2 and u = the smallest rank with
    P(K >= u) <= alpha/2 covers the population quantile with probability >= level (conservative,
    as the binomial is discrete).
    """
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return None, None
    half = (1.0 - level) / 2.0
    cdf = binom.cdf(np.arange(n + 1), n, q)              # cdf[k] = P(K <= k)
    lows = np.flatnonzero(cdf[:n] <= half)               # l - 1 with P(K <= l - 1) <= alpha/2
    highs = np.flatnonzero(1.0 - cdf[:n] <= half)        # u - 1 with P(K >= u) <= alpha/2
    lo = float(x[lows[-1]]) if lows.size else None       # x(l) = x[l - 1] (0-based)
    hi = float(x[highs[0]]) if highs.size else None      # x(u) = x[u - 1]
    return lo, hi


def log_normal_interval(estimate: float, se: float, z: float) -> tuple[float | None, float | None]:
    """Interval of a positive estimate on the log scale (delta method: se of log = se / estimate):
    ``estimate * exp(±z * se / estimate)``. It stays positive and is wider upwards, as the sampling
    distribution of a mean waiting time is; a normal interval would reach below 0 at small n."""
    if not (math.isfinite(estimate) and math.isfinite(se)) or estimate <= 0:
        return None, None
    w = math.exp(z * se / estimate)
    return estimate / w, estimate * w


def p_value(p: object, digits: int = 6) -> float | None:
    """A p-value for a metrics file: ``digits`` significant digits (never rounded to a bare 0.0),
    None when it is not finite or underflowed to 0 (then read ``log10_p``)."""
    try:
        f = float(p)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f <= 0.0:
        return None
    return float(f"{f:.{digits}g}")


def chi2_log10_sf(statistic: float, df: int) -> float:
    """log10 of the chi-square upper tail, exact far beyond where the p-value itself underflows."""
    from scipy.stats import chi2

    log_p = float(chi2.logsf(statistic, df))
    if not math.isfinite(log_p):  # far tail: Gamma(a, y) ~ y^(a-1) e^-y sum_k (a-1)...(a-k) / y^k
        a, y = df / 2.0, statistic / 2.0
        terms = np.cumprod([1.0, *[(a - k) / y for k in range(1, 12)]])
        log_p = (a - 1.0) * math.log(y) - y - math.lgamma(a) + math.log(float(terms.sum()))
    return log_p / math.log(10.0)


def chi2_test(statistic: float, df: int) -> dict[str, float | int | None]:
    """A chi-square test as stored: statistic, df, p-value and log10 p (exact even when p underflows)."""
    stat = float(statistic)
    if not math.isfinite(stat) or df < 1:
        return {"statistic": None, "df": int(df), "p_value": None, "log10_p": None}
    log10_p = chi2_log10_sf(stat, df)
    return {"statistic": finite(stat), "df": int(df), "p_value": p_value(10.0 ** log10_p),
            "log10_p": finite(log10_p, 4)}


def z_test(z: float) -> dict[str, float | None]:
    """Two-sided normal test as stored: z, p-value and log10 p."""
    zf = float(z)
    if not math.isfinite(zf):
        return {"z": None, "p_value": None, "log10_p": None}
    log10_p = (math.log(2.0) + float(norm.logsf(abs(zf)))) / math.log(10.0)
    return {"z": finite(zf), "p_value": p_value(2.0 * norm.sf(abs(zf))),
            "log10_p": finite(min(log10_p, 0.0), 4)}


def _adjust_log10(log10_p: np.ndarray, step: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Apply a step-wise adjustment ``step(sorted log10 p, m)`` to the non-nan entries, put the
    results back in input order and cap them at log10(1) = 0; nan stays nan and is not counted."""
    lp = np.asarray(log10_p, dtype=float)
    out = np.full(lp.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(lp))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(lp[ok], kind="stable")]
    out[order] = np.minimum(step(lp[order], m), 0.0)
    return out


def holm_log10(log10_p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment on log10 p-values (exact where p itself underflows); nan stays
    nan. The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    return _adjust_log10(log10_p, lambda lp, m: np.maximum.accumulate(np.log10(m - np.arange(m)) + lp))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); nan entries stay nan."""
    with np.errstate(divide="ignore"):
        return 10.0 ** holm_log10(np.log10(np.asarray(p_values, dtype=float)))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values, false discovery rate): the i-th smallest of
    m becomes min over j >= i of min(1, m p_(j) / j); nan entries stay nan and do not count in m.

    Beside Holm when a table is exploratory: Holm bounds the chance of *any* false row, BH the
    expected share of false rows among those called significant.
    """
    def step(lp: np.ndarray, m: int) -> np.ndarray:
        scaled = lp + np.log10(m) - np.log10(np.arange(1, m + 1))
        return np.minimum.accumulate(scaled[::-1])[::-1]

    with np.errstate(divide="ignore"):
        return 10.0 ** _adjust_log10(np.log10(np.asarray(p_values, dtype=float)), step)


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
