"""ROC AUC and DeLong's paired test of two AUCs on the same items.

Why DeLong: two models scored on the same threads have correlated AUCs, so comparing their two
bootstrap intervals by eye is too conservative and an unpaired test is wrong. DeLong, DeLong &
Clarke-Pearson (1988) estimate the covariance of the two AUCs from the per-item "structural
components" (the share of the other class each positive outranks, and vice versa), giving a z test
of the difference with one degree of freedom (reported as chi-square = z^2, df = 1). The components
are computed from mid-ranks (Sun & Xu 2014), so ties count one half as in the AUC itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

from .intervals import finite
from .multiplicity import pvalue


def auc(y: Any, p: Any) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (ties count half); None with a single class.

    Equal to ``sklearn.metrics.roc_auc_score`` and cheap enough to bootstrap.
    """
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def structural_components(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """(V10, V01): for each positive the share of negatives it outranks, for each negative the share
    of positives that outrank it (ties one half). ``mean(V10) == mean(V01) == AUC``."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    pos, neg = p[y], p[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise ValueError("both classes are needed")
    r_all = rankdata(np.concatenate([pos, neg]))
    v10 = (r_all[:m] - rankdata(pos)) / n
    v01 = 1.0 - (r_all[m:] - rankdata(neg)) / m
    return v10, v01


def delong_paired(y: Any, p_a: Any, p_b: Any) -> dict[str, Any]:
    """DeLong's test that two scores have the same AUC on the same items (two-sided).

    Returns both AUCs, their difference (a - b), its standard error and a normal interval, z,
    chi-square (= z^2) with df = 1 and the p-value. A zero standard error (identical rankings) gives
    z and p as None.
    """
    y = np.asarray(y).astype(bool)
    a10, a01 = structural_components(y, p_a)
    b10, b01 = structural_components(y, p_b)
    m, n = a10.size, a01.size
    s10 = np.cov(np.vstack([a10, b10])) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack([a01, b01])) if n > 1 else np.zeros((2, 2))
    var = ((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m
           + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n)
    auc_a, auc_b = float(a10.mean()), float(b10.mean())
    diff = auc_a - auc_b
    se = float(np.sqrt(max(var, 0.0)))
    out: dict[str, Any] = {"auc_a": finite(auc_a), "auc_b": finite(auc_b), "diff": finite(diff),
                           "se": finite(se), "n_positive": int(m), "n_negative": int(n), "df": 1,
                           "test": "DeLong paired (two-sided)"}
    if se <= 1e-12:
        out.update(z=None, chi2=None, p_value=None, ci_low=finite(diff), ci_high=finite(diff))
        return out
    z = diff / se
    q = float(norm.ppf(0.975))
    out.update(z=finite(z), chi2=finite(z * z), p_value=pvalue(2 * norm.sf(abs(z))),
               ci_low=finite(diff - q * se), ci_high=finite(diff + q * se))
    return out
