"""Scores of a binary detector on labelled items, with intervals, and paired comparisons of two.

Why these methods
* precision, recall and accuracy are proportions of a fixed set of items: Wilson score intervals
  (:mod:`.intervals`), good at small n and near 0 or 1;
* F1 is not a proportion: a percentile bootstrap over items (the unit that was labelled);
* two detectors scored on the *same* items are compared pairwise: McNemar's exact test on the items
  where exactly one of them is right (a binomial test, so no degrees of freedom), and a paired
  bootstrap interval of the F1 difference (the same resampled items for both);
* many comparisons: Holm's step-down adjustment (statsmodels ``multipletests``), which keeps the
  family-wise error rate without assuming independence.

p-values are kept with their statistic and rounded to significant digits (:func:`p_value`), never
to a bare 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .intervals import finite, wilson_interval, z_value


def p_value(p: float | None, digits: int = 4) -> float | None:
    """A p-value for a metrics file: ``digits`` significant digits, floored at the smallest positive
    double so that an underflow never reads as an exact 0."""
    if p is None or not math.isfinite(float(p)):
        return None
    p = max(float(p), np.finfo(float).tiny)
    return float(f"{p:.{digits}g}")


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.sum(y_true & y_pred)), int(np.sum(~y_true & y_pred)),
            int(np.sum(y_true & ~y_pred)), int(np.sum(~y_true & ~y_pred)))


def f1_from_counts(tp: Any, fp: Any, fn: Any) -> Any:
    """F1 = 2 TP / (2 TP + FP + FN) (nan where there is no positive at all), vectorised."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)


def _as_bool(y: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype != bool:
        raise ValueError("labels and predictions must be Boolean arrays (True = positive)")
    return arr


def _draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def binary_scores(y_true: Sequence[bool] | np.ndarray, y_pred: Sequence[bool] | np.ndarray, *,
                  level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Confusion counts; precision, recall and accuracy with Wilson intervals; F1 with a percentile
    bootstrap interval over items (``n_boot`` resamples, ``seed``). Rounded for a metrics file."""
    t, p = _as_bool(y_true), _as_bool(y_pred)
    if t.shape != p.shape or t.size == 0:
        raise ValueError("two non-empty Boolean arrays of the same length are needed")
    tp, fp, fn, tn = _counts(t, p)
    z = z_value(level)
    out: dict[str, Any] = {"n": int(t.size), "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn,
                           "tn": tn}
    for name, k, n in (("precision", tp, tp + fp), ("recall", tp, tp + fn),
                       ("accuracy", tp + tn, t.size)):
        lo, hi = wilson_interval(np.array([k]), np.array([n]), z)
        out[name] = finite(k / n) if n else None
        out[f"{name}_ci"] = [finite(lo[0]), finite(hi[0])] if n else None
    d = _draws(t.size, n_boot, seed)
    tb, pb = t[d], p[d]
    boot = f1_from_counts((tb & pb).sum(1), (~tb & pb).sum(1), (tb & ~pb).sum(1))
    boot = boot[np.isfinite(boot)]
    out["f1"] = finite(f1_from_counts(tp, fp, fn))
    out["f1_ci"] = ([finite(q) for q in np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])]
                    if boot.size else None)
    out.update(ci_level=level, f1_ci_method=f"percentile bootstrap over items ({n_boot} resamples)",
               prf_ci_method="Wilson score")
    return out


def paired_comparison(y_true: Sequence[bool] | np.ndarray, pred_a: Sequence[bool] | np.ndarray,
                      pred_b: Sequence[bool] | np.ndarray, *, level: float = 0.95,
                      n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """A against B on the same items: McNemar's exact test (``a_only``: items only A gets right,
    ``b_only``: only B) and the F1 difference A - B with a paired percentile bootstrap interval."""
    from statsmodels.stats.contingency_tables import mcnemar

    t, a, b = _as_bool(y_true), _as_bool(pred_a), _as_bool(pred_b)
    ra, rb = a == t, b == t
    a_only, b_only = int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))
    both, neither = int(np.sum(ra & rb)), int(np.sum(~ra & ~rb))
    res = mcnemar(np.array([[both, a_only], [b_only, neither]]), exact=True)
    d = _draws(t.size, n_boot, seed)
    tb, ab, bb = t[d], a[d], b[d]

    def f1(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return f1_from_counts((truth & pred).sum(-1), (~truth & pred).sum(-1),
                              (truth & ~pred).sum(-1))

    diff = f1(ab, tb) - f1(bb, tb)
    diff = diff[np.isfinite(diff)]
    return {
        "n": int(t.size), "a_only_right": a_only, "b_only_right": b_only,
        "test": "McNemar exact (two-sided binomial on the discordant items)",
        "statistic": float(res.statistic), "df": None, "p_value": p_value(res.pvalue),
        "f1_diff": finite(f1(a, t) - f1(b, t)),
        "f1_diff_ci": ([finite(q) for q in np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])]
                       if diff.size else None),
        "ci_level": level,
    }


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None stays None), in the input order."""
    from statsmodels.stats.multitest import multipletests

    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if idx:
        adj = multipletests([float(p_values[i]) for i in idx], method="holm")[1]  # type: ignore[arg-type]
        for i, q in zip(idx, adj):
            out[i] = p_value(q)
    return out
