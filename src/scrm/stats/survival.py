"""Survival analysis of right-censored waiting times: Kaplan–Meier, log-rank, Cox, C-index.

Why statsmodels: the issue asked for ``lifelines``, but lifelines requires pandas<3 and this project
pins pandas 3, so it cannot be installed. statsmodels ships the same estimators:
``SurvfuncRight`` (Kaplan–Meier with Greenwood variance), ``survdiff`` (log-rank, k groups, k-1
degrees of freedom) and ``PHReg`` (Cox proportional hazards, Efron ties, optional strata). Nothing
here is a hand-written estimator; this module only adapts their inputs and outputs to tables.

Conventions: ``duration`` is the time from the start to the event or to censoring (any unit, the
caller says which), ``event`` is 1 when the event (a brand reply) was observed and 0 when censored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from .intervals import finite


def _arrays(duration: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event, dtype=float)
    if d.shape != e.shape:
        raise ValueError(f"duration and event differ in length ({d.shape} vs {e.shape})")
    if d.size and (np.isnan(d).any() or (d < 0).any()):
        raise ValueError("durations must be non-negative numbers (no nulls)")
    return d, e


def km_fit(duration: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier step function as (event times, survival just after each time).

    Empty when no event was observed (the curve is then flat at 1, which statsmodels returns as
    empty arrays as well).
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    d, e = _arrays(duration, event)
    if d.size == 0 or e.sum() == 0:
        return np.array([]), np.array([])
    sf = SurvfuncRight(d, e)
    return np.asarray(sf.surv_times, dtype=float), np.asarray(sf.surv_prob, dtype=float)


def km_at(times: np.ndarray, surv: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Evaluate a KM step function (right-continuous) at ``grid`` points."""
    if times.size == 0:
        return np.ones_like(grid, dtype=float)
    idx = np.searchsorted(times, grid, side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


def km_quantile(duration: Any, event: Any, p: float = 0.5) -> float | None:
    """Time by which a share ``p`` of subjects had the event (KM-based, so censoring is respected).

    ``None`` when the curve never drops to ``1 - p`` (e.g. fewer than half were ever answered).
    """
    times, surv = km_fit(duration, event)
    if times.size == 0:
        return None
    hit = np.flatnonzero(surv <= 1.0 - p + 1e-12)
    return float(times[hit[0]]) if hit.size else None


def km_table(frame: pl.DataFrame, group_col: str, groups: Sequence[str], grid: np.ndarray,
             duration_col: str = "duration", event_col: str = "event",
             all_label: str | None = "(all)") -> pl.DataFrame:
    """Long table ``group, t, survival, event_prob, at_risk`` of KM curves on a common grid.

    A fixed grid keeps the table small and its size independent of the number of subjects, so
    the plot stays light on the full data set. ``all_label`` adds the pooled curve.
    """
    parts: list[pl.DataFrame] = []
    todo: list[tuple[str, pl.DataFrame]] = []
    if all_label is not None:
        todo.append((all_label, frame))
    for g in groups:
        todo.append((g, frame.filter(pl.col(group_col) == g)))
    for label, sub in todo:
        d = sub[duration_col].to_numpy().astype(float)
        e = sub[event_col].cast(pl.Float64).to_numpy()
        times, surv = km_fit(d, e)
        s = km_at(times, surv, grid)
        at_risk = d.size - np.searchsorted(np.sort(d), grid, side="left")
        parts.append(pl.DataFrame({
            group_col: [label] * grid.size,
            "t": grid.astype(float),
            "survival": np.round(s, 6),
            "event_prob": np.round(1.0 - s, 6),
            "at_risk": at_risk.astype(np.int64),
        }))
    if not parts:
        return pl.DataFrame(schema={group_col: pl.String, "t": pl.Float64, "survival": pl.Float64,
                                    "event_prob": pl.Float64, "at_risk": pl.Int64})
    return pl.concat(parts)


def logrank(duration: Any, event: Any, group: Any) -> dict[str, Any]:
    """Log-rank test that all groups share one survival curve (chi-square with k-1 df)."""
    from statsmodels.duration.survfunc import survdiff

    d, e = _arrays(duration, event)
    g = np.asarray(group)
    labels = sorted({str(x) for x in g.tolist()})
    out: dict[str, Any] = {"groups": labels, "df": max(len(labels) - 1, 0), "n": int(d.size),
                           "events": int(e.sum())}
    if len(labels) < 2 or e.sum() == 0:
        out.update(chi2=None, p_value=None, note="needs two groups and at least one event")
        return out
    chi2, p = survdiff(d, e, g)
    out.update(chi2=finite(chi2), p_value=finite(p))
    return out


def concordance(duration: Any, event: Any, risk: Any, strata: Any | None = None,
                max_rows: int = 2000, seed: int = 0) -> float | None:
    """Harrell's C: share of comparable pairs where the higher risk had the earlier event.

    A pair (i, j) is comparable when i had the event and ``t_i < t_j``; ties in risk count 1/2.
    Pairs are formed within strata only (a stratified Cox model has no cross-stratum ranking).
    Each stratum is subsampled to ``max_rows`` (seeded) so the O(n^2) pair count stays bounded.
    """
    d, e = _arrays(duration, event)
    r = np.asarray(risk, dtype=float)
    s = np.zeros(d.size, dtype=int) if strata is None else np.unique(np.asarray(strata),
                                                                     return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    num = 0.0
    den = 0.0
    for k in np.unique(s):
        idx = np.flatnonzero(s == k)
        if idx.size > max_rows:
            idx = np.sort(rng.choice(idx, size=max_rows, replace=False))
        dt, ev, rk = d[idx], e[idx], r[idx]
        comparable = (ev[:, None] == 1) & (dt[:, None] < dt[None, :])
        if not comparable.any():
            continue
        diff = rk[:, None] - rk[None, :]
        num += float(((diff > 0) & comparable).sum() + 0.5 * ((diff == 0) & comparable).sum())
        den += float(comparable.sum())
    return num / den if den else None


def cox_fit(duration: Any, event: Any, X: np.ndarray, names: Sequence[str],
            strata: Any | None = None) -> dict[str, Any]:
    """Cox proportional hazards (Efron ties) via statsmodels ``PHReg``; hazard ratios per column.

    A hazard ratio above 1 means a faster reply (the event is the reply). Columns are used as
    given: standardise them first to read the ratios per standard deviation.
    """
    from statsmodels.duration.hazard_regression import PHReg

    d, e = _arrays(duration, event)
    model = PHReg(d, np.asarray(X, dtype=float), status=e, ties="efron",
                  strata=None if strata is None else np.asarray(strata))
    res = model.fit()
    params = np.asarray(res.params, dtype=float)
    bse = np.asarray(res.bse, dtype=float)
    pvals = np.asarray(res.pvalues, dtype=float)
    coefs = {n: {"coef": finite(c), "hazard_ratio": finite(math.exp(c)), "se": finite(s),
                 "p_value": finite(p)}
             for n, c, s, p in zip(names, params, bse, pvals, strict=True)}
    return {"params": params, "coefficients": coefs, "log_likelihood": finite(res.llf)}
