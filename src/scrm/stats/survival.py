"""Survival analysis of right-censored waiting times: Kaplan–Meier with Greenwood bands, KM quantiles
with intervals, restricted mean survival time (RMST), and log-rank tests (global and pairwise).

Why statsmodels: lifelines requires pandas<3 and this project pins pandas 3, so it cannot be
installed. statsmodels ships the estimators: ``SurvfuncRight`` (Kaplan–Meier with Greenwood
standard errors, Brookmeyer–Crowley quantile intervals) and ``survdiff`` (log-rank, k groups, k-1
degrees of freedom). The Cox model and the C-index are in :mod:`.cox`.

Two pieces are written here because statsmodels has none, each tested against a direct
computation: the pointwise band on the complementary log-log scale (it stays inside [0, 1], unlike
the plain ``S ± z·se``) and RMST with its Greenwood-type variance.

*RMST* up to a horizon tau is the area under the KM curve from 0 to tau: the mean time waited
within the first tau (a customer still waiting at tau counts tau). Unlike a median it uses the whole
curve, exists even when fewer than half are ever answered, and differences of RMST are in minutes.
Variance (Klein & Moeschberger 4.5): ``sum_j A_j^2 d_j / (n_j (n_j - d_j))`` over event times
``t_j <= tau`` with ``A_j`` the area under the curve from ``t_j`` to tau.

Conventions: ``duration`` is the time from the start to the event or to censoring (any unit, the
caller says which), ``event`` is 1 when the event (a brand reply) was observed and 0 when censored.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .intervals import chi2_log10_sf, chi2_test, finite, holm_log10, p_value, z_test


def _arrays(duration: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event, dtype=float)
    if d.shape != e.shape:
        raise ValueError(f"duration and event differ in length ({d.shape} vs {e.shape})")
    if d.size and (np.isnan(d).any() or (d < 0).any()):
        raise ValueError("durations must be non-negative numbers (no nulls)")
    return d, e


@dataclass(frozen=True)
class KMCurve:
    """A Kaplan–Meier step function at its event times (empty when no event was observed)."""

    times: np.ndarray
    surv: np.ndarray
    se: np.ndarray          # Greenwood standard error of surv
    n_risk: np.ndarray
    n_events: np.ndarray
    n: int

    def at(self, grid: np.ndarray) -> np.ndarray:
        """Survival at ``grid`` (right-continuous steps; 1 before the first event)."""
        return km_at(self.times, self.surv, np.asarray(grid, dtype=float))

    def se_at(self, grid: np.ndarray) -> np.ndarray:
        """Greenwood standard error at ``grid`` (0 before the first event)."""
        if self.times.size == 0:
            return np.zeros_like(np.asarray(grid, dtype=float))
        idx = np.searchsorted(self.times, grid, side="right") - 1
        return np.where(idx >= 0, self.se[np.clip(idx, 0, None)], 0.0)


def km_curve(duration: Any, event: Any) -> KMCurve:
    """Kaplan–Meier curve with Greenwood standard errors (statsmodels ``SurvfuncRight``)."""
    from statsmodels.duration.survfunc import SurvfuncRight

    d, e = _arrays(duration, event)
    if d.size == 0 or e.sum() == 0:
        empty = np.array([], dtype=float)
        return KMCurve(empty, empty, empty, empty, empty, int(d.size))
    sf = SurvfuncRight(d, e)
    return KMCurve(np.asarray(sf.surv_times, float), np.asarray(sf.surv_prob, float),
                   np.nan_to_num(np.asarray(sf.surv_prob_se, float), nan=0.0),
                   np.asarray(sf.n_risk, float), np.asarray(sf.n_events, float), int(d.size))


def km_fit(duration: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier step function as (event times, survival just after each time)."""
    c = km_curve(duration, event)
    return c.times, c.surv


def km_at(times: np.ndarray, surv: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Evaluate a KM step function (right-continuous) at ``grid`` points."""
    if times.size == 0:
        return np.ones_like(grid, dtype=float)
    idx = np.searchsorted(times, grid, side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


def loglog_band(surv: np.ndarray, se: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise band on the complementary log-log scale: ``S ** exp(±z·se / (S·|log S|))``.

    Where S is 1 (before any event) or 0 (after the last subject) the band collapses onto S.
    """
    s = np.asarray(surv, dtype=float)
    se = np.asarray(se, dtype=float)
    inner = (s > 0) & (s < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(inner, z * se / (s * np.abs(np.log(np.where(inner, s, 0.5)))), 0.0)
        lo = np.where(inner, s ** np.exp(w), s)
        hi = np.where(inner, s ** np.exp(-w), s)
    return lo, hi


def km_quantile(duration: Any, event: Any, p: float = 0.5) -> float | None:
    """Time by which a share ``p`` of subjects had the event (KM-based, so censoring is respected).

    ``None`` when the curve never drops to ``1 - p`` (e.g. fewer than half were ever answered).
    """
    c = km_curve(duration, event)
    hit = np.flatnonzero(c.surv <= 1.0 - p + 1e-12)
    return float(c.times[hit[0]]) if hit.size else None


def km_quantile_ci(duration: Any, event: Any, p: float, level: float,
                   ) -> tuple[float | None, float | None, float | None]:
    """KM quantile with its Brookmeyer–Crowley interval (statsmodels ``quantile_ci``, cloglog).

    A limit the data cannot bound (the curve stays above the needed level) is None.
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    d, e = _arrays(duration, event)
    est = km_quantile(d, e, p)
    if d.size == 0 or e.sum() == 0:
        return est, None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = SurvfuncRight(d, e).quantile_ci(p, alpha=1.0 - level, method="cloglog")
    return est, finite(lo), finite(hi)


def rmst(duration: Any, event: Any, tau: float) -> tuple[float, float]:
    """Restricted mean survival time up to ``tau`` and its standard error (module docstring)."""
    d, e = _arrays(duration, event)
    if d.size == 0:
        return math.nan, math.nan
    c = km_curve(d, e)
    keep = c.times <= tau
    t, s, n, ev = c.times[keep], c.surv[keep], c.n_risk[keep], c.n_events[keep]
    edges = np.r_[0.0, t, tau]
    heights = np.r_[1.0, s]
    pieces = heights * np.diff(edges)              # area of each step up to tau
    area = float(pieces.sum())
    after = np.cumsum(pieces[::-1])[::-1][1:]      # A_j: area from t_j to tau
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > ev, after ** 2 * ev / (n * (n - ev)), 0.0)
    return area, float(math.sqrt(terms.sum()))


def km_table(frame: pl.DataFrame, group_col: str, groups: Sequence[str], grid: np.ndarray,
             z: float, duration_col: str = "duration", event_col: str = "event",
             all_label: str | None = "(all)") -> pl.DataFrame:
    """Long table ``group, t, survival, survival_low, survival_high, event_prob, at_risk`` of KM
    curves with pointwise log-log bands (level of ``z``) on a common grid.

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
        c = km_curve(d, sub[event_col].cast(pl.Float64).to_numpy())
        s = c.at(grid)
        lo, hi = loglog_band(s, c.se_at(grid), z)
        at_risk = d.size - np.searchsorted(np.sort(d), grid, side="left")
        parts.append(pl.DataFrame({
            group_col: [label] * grid.size,
            "t": grid.astype(float),
            "survival": np.round(s, 6),
            "survival_low": np.round(lo, 6),
            "survival_high": np.round(hi, 6),
            "event_prob": np.round(1.0 - s, 6),
            "at_risk": at_risk.astype(np.int64),
        }))
    if not parts:
        return pl.DataFrame(schema={group_col: pl.String, "t": pl.Float64, "survival": pl.Float64,
                                    "survival_low": pl.Float64, "survival_high": pl.Float64,
                                    "event_prob": pl.Float64, "at_risk": pl.Int64})
    return pl.concat(parts)


def _logrank_statistic(d: np.ndarray, e: np.ndarray, g: np.ndarray) -> float | None:
    """The log-rank chi-square of statsmodels ``survdiff`` (None without two groups or an event)."""
    from statsmodels.duration.survfunc import survdiff

    if len(np.unique(g)) < 2 or e.sum() == 0:
        return None
    return float(survdiff(d, e, g)[0])


def logrank(duration: Any, event: Any, group: Any) -> dict[str, Any]:
    """Log-rank test that all groups share one survival curve (chi-square with k-1 df)."""
    d, e = _arrays(duration, event)
    g = np.asarray(group).astype(str)
    labels = sorted(set(g.tolist()))
    out: dict[str, Any] = {"groups": labels, "n": int(d.size), "events": int(e.sum())}
    stat = _logrank_statistic(d, e, g)
    if stat is None:
        out.update(statistic=None, df=max(len(labels) - 1, 0), p_value=None, log10_p=None,
                   note="needs two groups and at least one event")
        return out
    out.update(chi2_test(stat, len(labels) - 1))
    return out


def pairwise_comparisons(duration: Any, event: Any, group: Any, groups: Sequence[str], tau: float,
                         z: float) -> list[dict[str, Any]]:
    """Every pair of ``groups``: log-rank (1 df) with Holm-adjusted p-values over the pairs, and
    the RMST difference (a - b, same unit as ``duration``) with a normal interval and z-test.

    The RMST difference is the effect size: "customers of a wait on average x minutes longer
    within the first tau than customers of b".
    """
    d, e = _arrays(duration, event)
    g = np.asarray(group).astype(str)
    rm = {k: rmst(d[g == k], e[g == k], tau) for k in groups}
    rows: list[dict[str, Any]] = []
    log10_p: list[float] = []
    for a, b in itertools.combinations(groups, 2):
        m = (g == a) | (g == b)
        stat = _logrank_statistic(d[m], e[m], g[m])
        test = chi2_test(stat, 1) if stat is not None else chi2_test(math.nan, 1)
        log10_p.append(chi2_log10_sf(stat, 1) if stat is not None else math.nan)
        (ra, sa), (rb, sb) = rm[a], rm[b]
        diff, se = ra - rb, math.sqrt(sa ** 2 + sb ** 2)
        zt = z_test(diff / se) if se > 0 else z_test(math.nan)
        rows.append({"a": a, "b": b, "n_a": int((g == a).sum()), "n_b": int((g == b).sum()),
                     "logrank_chi2": test["statistic"], "logrank_df": 1,
                     "logrank_p": test["p_value"], "logrank_log10_p": test["log10_p"],
                     "rmst_a": finite(ra), "rmst_b": finite(rb), "rmst_diff": finite(diff),
                     "rmst_diff_ci_low": finite(diff - z * se),
                     "rmst_diff_ci_high": finite(diff + z * se),
                     "rmst_diff_z": zt["z"], "rmst_diff_p": zt["p_value"]})
    adj = holm_log10(np.array(log10_p, dtype=float))
    for r, lp in zip(rows, adj, strict=True):
        r["logrank_p_holm"] = p_value(10.0 ** lp) if np.isfinite(lp) else None
        r["logrank_log10_p_holm"] = finite(lp, 4)
    return rows
