"""Scoring a classifier against reference labels, and comparing two classifiers on the same items.

Why this module: "the new measure beats the baseline" is a claim about two sets of predictions on
the *same* labelled items, so it needs paired evidence: a bootstrap over items that resamples both
predictions together (the interval of the difference), and McNemar's test of which items each gets
right. Macro-F1 weighs every class equally, so a rare class (a satisfied customer) counts as much as
a common one; Cohen's kappa (:mod:`.agreement`) gives agreement beyond chance.

Conventions: ``classes`` is the full label set (rows and columns of the confusion matrix, in that
order); ``scored`` the classes macro-F1 averages over (by default all). An item whose reference
label is outside ``scored`` still counts as a false positive for the class it was predicted as.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binom

from .agreement import _kappa_codes
from .intervals import chi2_test, finite, p_value


def _codes(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([index[v] for v in values], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of {list(classes)}") from None


def confusion(true: Sequence[Any], pred: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """Counts, rows = reference label, columns = prediction, both in ``classes`` order."""
    t, p = _codes(true, classes), _codes(pred, classes)
    k = len(classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _f1_from_codes(t: np.ndarray, p: np.ndarray, k: int, scored: np.ndarray) -> np.ndarray:
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, den, out=np.zeros(k), where=den > 0)
    return f1[scored]


def f1_per_class(true: Sequence[Any], pred: Sequence[Any], classes: Sequence[str],
                 scored: Sequence[str] | None = None) -> dict[str, float]:
    """F1 = 2TP / (2TP + FP + FN) of each scored class (0 when the class is never seen nor
    predicted, as in scikit-learn's ``zero_division=0``)."""
    scored = list(scored or classes)
    idx = np.array([list(classes).index(c) for c in scored])
    f1 = _f1_from_codes(_codes(true, classes), _codes(pred, classes), len(classes), idx)
    return {c: float(v) for c, v in zip(scored, f1, strict=True)}


def macro_f1(true: Sequence[Any], pred: Sequence[Any], classes: Sequence[str],
             scored: Sequence[str] | None = None) -> float:
    """Unweighted mean of the per-class F1 over ``scored``."""
    return float(np.mean(list(f1_per_class(true, pred, classes, scored).values())))


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """McNemar's test on paired correctness: ``b`` items only A gets right, ``c`` only B.

    The p-value is the exact two-sided binomial test of b against Bin(b + c, 1/2) (valid at any
    count); the chi-square statistic (b - c)^2 / (b + c) with df = 1 and its p-value are stored beside
    it for comparison with other reports.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    n = b + c
    out: dict[str, Any] = {"only_a_correct": b, "only_b_correct": c,
                           "test": "McNemar (exact binomial p; chi-square beside it)"}
    if n == 0:
        out.update(p_value=None, chi2=chi2_test(float("nan"), 1))
        return out
    p_exact = min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))
    out.update(p_value=p_value(p_exact), chi2=chi2_test((b - c) ** 2 / n, 1))
    return out


def paired_scores(true: Sequence[Any], pred_a: Sequence[Any], pred_b: Sequence[Any],
                  classes: Sequence[str], scored: Sequence[str] | None = None, *,
                  n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Macro-F1, Cohen's kappa and accuracy of two predictions of the same items, each with a
    percentile bootstrap interval, and the paired difference (a - b) with its interval from the
    *same* resamples; McNemar's test on correctness.

    A resample in which kappa is undefined (chance agreement 1) is left out of kappa's interval.
    """
    classes = list(classes)
    scored = list(scored or classes)
    k = len(classes)
    sidx = np.array([classes.index(c) for c in scored])
    t = _codes(true, classes)
    pa, pb = _codes(pred_a, classes), _codes(pred_b, classes)
    n = t.size
    if n == 0:
        raise ValueError("no items to score")

    def stats(idx: np.ndarray) -> np.ndarray:
        tt, aa, bb = t[idx], pa[idx], pb[idx]
        return np.array([
            _f1_from_codes(tt, aa, k, sidx).mean(), _f1_from_codes(tt, bb, k, sidx).mean(),
            _kappa_codes(tt, aa, k), _kappa_codes(tt, bb, k),
            float(np.mean(tt == aa)), float(np.mean(tt == bb))])

    point = stats(np.arange(n))
    rng = np.random.default_rng(seed)
    boot = np.array([stats(rng.integers(0, n, n)) for _ in range(n_boot)])
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2

    def ci(values: np.ndarray) -> list[float | None]:
        v = values[np.isfinite(values)]
        return [finite(np.quantile(v, lo_q)), finite(np.quantile(v, hi_q))] if v.size else [None, None]

    out: dict[str, Any] = {"n": int(n), "n_boot": n_boot, "ci_level": level, "scored_classes": scored}
    for j, metric in enumerate(("macro_f1", "kappa", "accuracy")):
        ia, ib = 2 * j, 2 * j + 1
        diff = boot[:, ia] - boot[:, ib]
        out[metric] = {
            "a": finite(point[ia]), "a_ci": ci(boot[:, ia]),
            "b": finite(point[ib]), "b_ci": ci(boot[:, ib]),
            "diff": finite(point[ia] - point[ib]), "diff_ci": ci(diff),
            # share of resamples in which A does not beat B: a one-sided bootstrap check
            "share_boot_diff_le_0": finite(np.mean(diff[np.isfinite(diff)] <= 0)),
        }
    out["mcnemar"] = mcnemar(t == pa, t == pb)
    return out
