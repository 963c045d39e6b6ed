"""Cox proportional hazards: fit with cluster-robust standard errors, a proportional-hazards check per
covariate, and Harrell's C-index with a bootstrap interval.

Why each piece
* ``PHReg`` (statsmodels; Efron ties, optional strata) with ``groups``: repeated openings of one
  customer are not independent, so the standard errors are the Huber–White sandwich clustered by the
  caller's groups (e.g. customer). Point estimates are unchanged.
* A hazard ratio is only one number if hazards are proportional. The check is the Grambsch–Therneau
  test on scaled Schoenfeld residuals against the rank of the event time (as R's ``cox.zph`` did
  before version 3 and lifelines' ``proportional_hazard_test`` does): for covariate k,
  ``T_k = (sum_i g_i r*_ik)^2 / (D * V_kk * sum_i g_i^2)`` ~ chi-square(1), with ``g`` the centred
  ranks, ``r* = D * r @ V`` the scaled residuals, D the number of events and V the model-based
  (not robust) covariance. A small p says the covariate's effect drifts with waiting time.
* Harrell's C within strata (a stratified model does not rank across strata) on held-out rows, with
  a percentile bootstrap interval over those rows: 0.5 is chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .intervals import chi2_test, finite, z_test, z_value
from .survival import _arrays


def _exp(x: float) -> float:
    """exp that gives inf instead of raising: a coefficient whose standard error is huge (a
    column nearly constant in a tiny or one-day sample) has no finite upper limit."""
    return math.exp(x) if x < 709.0 else math.inf


def cox_fit(duration: Any, event: Any, X: np.ndarray, names: Sequence[str],
            level: float, strata: Any | None = None, groups: Any | None = None) -> dict[str, Any]:
    """Cox model (Efron ties) via statsmodels ``PHReg``: hazard ratios with intervals per column.

    A hazard ratio above 1 means the event comes sooner (here: a faster reply). ``groups`` gives
    cluster-robust standard errors (``cov``: the covariance used); each coefficient's ``ph_test`` is
    the proportional-hazards check of its column.
    Columns are used as given: standardise them first to read the ratios per standard deviation.
    """
    from statsmodels.duration.hazard_regression import PHReg

    d, e = _arrays(duration, event)
    model = PHReg(d, np.asarray(X, dtype=float), status=e, ties="efron",
                  strata=None if strata is None else np.asarray(strata))
    g = None if groups is None else np.asarray(groups)
    res, optimizer = model.fit(groups=g), "newton"
    if not np.all(np.isfinite(res.params)):
        # Newton's first steps can overshoot on nearly collinear columns (two prior-contact
        # counts that are mostly 0); BFGS then reaches the same maximum of the partial likelihood
        res, optimizer = model.fit(groups=g, method="bfgs", maxiter=2000, gtol=1e-8), "bfgs"
    params = np.asarray(res.params, dtype=float)
    bse = np.asarray(res.bse, dtype=float)
    naive = np.linalg.inv(-model.hessian(params))
    z = z_value(level)
    ph = ph_test(res.schoenfeld_residuals, d, e, naive, names)
    coefs: dict[str, dict[str, Any]] = {}
    for n, c, s in zip(names, params, bse, strict=True):
        test = z_test(c / s) if s > 0 else z_test(math.nan)
        coefs[n] = {"coef": finite(c), "se": finite(s),
                    "hazard_ratio": finite(_exp(c)),
                    "hazard_ratio_ci_low": finite(_exp(c - z * s)),
                    "hazard_ratio_ci_high": finite(_exp(c + z * s)),
                    "z": test["z"], "p_value": test["p_value"], "log10_p": test["log10_p"],
                    "ph_test": ph[n]}
    return {"params": params, "cov": np.asarray(res.cov_params(), dtype=float),
            "coefficients": coefs, "log_likelihood": finite(res.llf),
            "n_events": int(e.sum()), "optimizer": optimizer, "se_type": "naive" if groups is None else "cluster_robust",
            "n_clusters": None if groups is None else int(len(np.unique(np.asarray(groups))))}


def ph_test(schoenfeld: np.ndarray, duration: np.ndarray, event: np.ndarray, cov: np.ndarray,
            names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Grambsch–Therneau test per covariate (module docstring) from unscaled Schoenfeld residuals.

    ``schoenfeld`` is n x p with NaN rows for censored subjects (statsmodels' layout).
    """
    from scipy.stats import rankdata

    r = np.asarray(schoenfeld, dtype=float)
    rows = (np.asarray(event) > 0) & np.all(np.isfinite(r), axis=1)
    r = r[rows]
    n_events = r.shape[0]
    out: dict[str, dict[str, Any]] = {}
    if n_events < 3:
        return {n: {**chi2_test(math.nan, 1), "note": "fewer than 3 events"} for n in names}
    g = rankdata(np.asarray(duration, dtype=float)[rows])
    g = g - g.mean()
    scaled = n_events * r @ cov
    num = (g[:, None] * scaled).sum(axis=0) ** 2
    den = n_events * np.diag(cov) * float((g ** 2).sum())
    for k, n in enumerate(names):
        out[n] = chi2_test(num[k] / den[k], 1) if den[k] > 0 else chi2_test(math.nan, 1)
    return out


def _pairs(d: np.ndarray, e: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """(concordant + ties/2, comparable) over all pairs of one stratum."""
    comparable = (e[:, None] == 1) & (d[:, None] < d[None, :])
    if not comparable.any():
        return 0.0, 0.0
    diff = r[:, None] - r[None, :]
    return (float(((diff > 0) & comparable).sum() + 0.5 * ((diff == 0) & comparable).sum()),
            float(comparable.sum()))


def _stratum_index(n: int, strata: Any | None, max_rows: int,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices per stratum, each subsampled to ``max_rows`` (seeded) to bound the O(n^2) pairs."""
    s = np.zeros(n, dtype=int) if strata is None else np.unique(np.asarray(strata),
                                                                return_inverse=True)[1]
    out = []
    for k in np.unique(s):
        idx = np.flatnonzero(s == k)
        if idx.size > max_rows:
            idx = np.sort(rng.choice(idx, size=max_rows, replace=False))
        out.append(idx)
    return out


def concordance(duration: Any, event: Any, risk: Any, strata: Any | None = None,
                max_rows: int = 2000, seed: int = 0) -> float | None:
    """Harrell's C: share of comparable pairs where the higher risk had the earlier event.

    A pair (i, j) is comparable when i had the event and ``t_i < t_j``; ties in risk count 1/2.
    Pairs are formed within strata only. Each stratum is subsampled to ``max_rows`` (seeded).
    """
    return concordance_interval(duration, event, risk, strata, max_rows=max_rows, seed=seed,
                                n_boot=0)["c_index"]


def concordance_interval(duration: Any, event: Any, risk: Any, strata: Any | None = None, *,
                         max_rows: int, seed: int, n_boot: int, level: float = 0.95,
                         ) -> dict[str, Any]:
    """Harrell's C and a percentile bootstrap interval (rows resampled within each stratum)."""
    d, e = _arrays(duration, event)
    r = np.asarray(risk, dtype=float)
    rng = np.random.default_rng(seed)
    strata_idx = _stratum_index(d.size, strata, max_rows, rng)

    def c_of(index: list[np.ndarray]) -> float | None:
        num = den = 0.0
        for idx in index:
            a, b = _pairs(d[idx], e[idx], r[idx])
            num, den = num + a, den + b
        return num / den if den else None

    c = c_of(strata_idx)
    out: dict[str, Any] = {"c_index": finite(c), "c_index_ci_low": None, "c_index_ci_high": None,
                           "n_boot": n_boot, "n": int(sum(i.size for i in strata_idx))}
    if c is None or n_boot <= 0:
        return out
    boots = [c_of([idx[rng.integers(0, idx.size, idx.size)] for idx in strata_idx])
             for _ in range(n_boot)]
    vals = np.array([b for b in boots if b is not None], dtype=float)
    if vals.size:
        lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
        out.update(c_index_ci_low=finite(lo), c_index_ci_high=finite(hi))
    return out
