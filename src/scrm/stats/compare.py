"""Test-set metrics with intervals, and paired comparisons of models scored on the same rows.

Why paired: two models scored on the same test openings share that set's luck; the interval of the
*difference* from resampling rows jointly (the same bootstrap draw for both models) is much tighter
and is the honest answer to "is the model better than the baseline?". Two unpaired intervals that
overlap do not answer it.

* :func:`bootstrap` percentile intervals of any set of metrics, and of each model's difference to a
  baseline, from one shared set of bootstrap draws. Rows are resampled as multinomial counts used
  as weights, so every metric below is a weighted sum: O(n) per draw after one sort.
* :func:`delong` DeLong's test of two correlated AUCs (Sun & Xu's midrank algorithm).
* The weighted metrics: AUC (Mann–Whitney with ties counted 1/2), Brier score, MAE, R^2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .intervals import finite, z_test

Scores = dict[str, dict[str, float]]


def auc_ranks(p: np.ndarray) -> tuple[np.ndarray, int]:
    """Tie groups of scores (group index per row, number of groups): computed once per model."""
    _, inv = np.unique(np.asarray(p, dtype=float), return_inverse=True)
    return inv, int(inv.max()) + 1 if inv.size else 0


def weighted_auc(y: np.ndarray, groups: tuple[np.ndarray, int], w: np.ndarray) -> float:
    """AUC = P(score of a positive > score of a negative) + 1/2 P(tie), rows weighted by ``w``."""
    inv, k = groups
    yf = np.asarray(y, dtype=float)
    pos = np.bincount(inv, weights=w * yf, minlength=k)
    neg = np.bincount(inv, weights=w * (1.0 - yf), minlength=k)
    den = pos.sum() * neg.sum()
    if den <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / den)


def weighted_brier(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (np.asarray(p, float) - np.asarray(y, float)) ** 2) / np.sum(w))


def weighted_mae(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * np.abs(np.asarray(pred, float) - np.asarray(y, float))) / np.sum(w))


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    """1 - SSE / SST with the weighted mean of y: negative when worse than predicting that mean."""
    yf = np.asarray(y, dtype=float)
    mean = np.sum(w * yf) / np.sum(w)
    sst = float(np.sum(w * (yf - mean) ** 2))
    return 1.0 - float(np.sum(w * (yf - np.asarray(pred, float)) ** 2)) / sst if sst > 0 \
        else float("nan")


def bootstrap(n: int, statistic: Callable[[np.ndarray], Scores], *, baseline: str | None,
              n_boot: int, seed: int, level: float) -> dict[str, dict[str, Any]]:
    """Point estimates, percentile intervals and paired differences to ``baseline``.

    ``statistic(w)`` returns ``{model: {metric: value}}`` for row weights ``w`` (all ones for the
    estimate; bootstrap draws are multinomial counts, the same draw for every model). For each model
    and metric the result holds ``metric``, ``metric_ci_low``, ``metric_ci_high`` and, for models
    other than the baseline, ``metric_diff`` (model - baseline) with its interval.
    """
    est = statistic(np.ones(n))
    rng = np.random.default_rng(seed)
    draws: list[Scores] = [statistic(np.bincount(rng.integers(0, n, n), minlength=n).astype(float))
                           for _ in range(n_boot)] if n else []
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]

    def interval(values: list[float]) -> tuple[float | None, float | None]:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if v.size < max(10, n_boot // 2):
            return None, None
        lo, hi = np.quantile(v, q)
        return finite(lo), finite(hi)

    out: dict[str, dict[str, Any]] = {}
    for model, metrics in est.items():
        row: dict[str, Any] = {}
        for metric, value in metrics.items():
            row[metric] = finite(value)
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = interval(
                [d[model][metric] for d in draws])
            if baseline is not None and model != baseline:
                row[f"{metric}_diff"] = finite(value - est[baseline][metric])
                row[f"{metric}_diff_ci_low"], row[f"{metric}_diff_ci_high"] = interval(
                    [d[model][metric] - d[baseline][metric] for d in draws])
        out[model] = {**row, "n_boot": n_boot, "ci_level": level}
    return out


def _midrank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def delong(y: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> dict[str, Any]:
    """DeLong's test that two models scored on the same rows have the same AUC.

    Returns both AUCs, the difference (1 - 2), its standard error and the two-sided z-test.
    """
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return {"auc_diff": None, "se": None, **z_test(float("nan"))}
    aucs, v01, v10 = [], [], []
    for p in (np.asarray(p1, float), np.asarray(p2, float)):
        x, z = p[y], p[~y]
        tx, tz, txz = _midrank(x), _midrank(z), _midrank(np.r_[x, z])
        aucs.append((txz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
        v01.append((txz[:m] - tx) / n)          # per positive: share of negatives ranked below
        v10.append(1.0 - (txz[m:] - tz) / m)    # per negative: share of positives ranked above
    s = np.cov(np.vstack(v01)) / m + np.cov(np.vstack(v10)) / n
    var = float(s[0, 0] + s[1, 1] - 2.0 * s[0, 1])
    diff = float(aucs[0] - aucs[1])
    se = float(np.sqrt(var)) if var > 0 else 0.0
    test = z_test(diff / se) if se > 0 else z_test(float("nan"))
    return {"auc_1": finite(aucs[0]), "auc_2": finite(aucs[1]), "auc_diff": finite(diff),
            "se": finite(se), **test}



def calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int, z: float) -> dict[str, np.ndarray]:
    """Reliability table: quantile bins of the predicted probability (ties kept in one bin), per bin
    the mean prediction, the observed share with its Wilson interval and the row count.

    Quantile bins put the same number of rows in each bin, so every observed share has about the
    same precision (equal-width bins leave the extreme bins nearly empty).
    """
    from .intervals import wilson_interval

    yf = np.asarray(y, dtype=float)
    pf = np.asarray(p, dtype=float)
    edges = np.unique(np.quantile(pf, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])) if pf.size else \
        np.array([])
    idx = np.searchsorted(edges, pf, side="right")
    k = max(int(idx.max()) + 1 if idx.size else 0, 0)
    n = np.bincount(idx, minlength=k).astype(float)
    pos = np.bincount(idx, weights=yf, minlength=k)
    mean_p = np.bincount(idx, weights=pf, minlength=k)
    keep = n > 0
    n, pos, mean_p = n[keep], pos[keep], mean_p[keep]
    lo, hi = wilson_interval(pos, n, z)
    return {"n": n.astype(np.int64), "mean_predicted": mean_p / n, "observed": pos / n,
            "observed_ci_low": lo, "observed_ci_high": hi}


def expected_calibration_error(bins: dict[str, np.ndarray]) -> float:
    """Row-weighted mean of |observed - mean predicted| over the bins of :func:`calibration_bins`."""
    n = bins["n"].astype(float)
    if n.sum() == 0:
        return float("nan")
    return float(np.sum(n * np.abs(bins["observed"] - bins["mean_predicted"])) / n.sum())
