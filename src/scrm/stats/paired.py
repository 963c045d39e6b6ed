"""Paired comparison of classifiers scored on the same items: macro-F1, bootstrap intervals, Holm.

Why paired: two models scored on the same 420 tweets share every hard and easy tweet, so their
difference is far less noisy than either score; resampling the *items* once and scoring every model
on the same resample keeps that pairing. Why macro-F1 over a fixed label set: averaging over
"whichever classes a split happens to contain" changes the denominator between splits and models;
here every score averages over the same K classes, and a class with no true and no predicted item
scores 0 (``zero_division=0``, as scikit-learn), stated wherever the number is shown.

* :func:`macro_f1` / :func:`accuracy`: vectorised over bootstrap weight rows (an item drawn twice
  counts twice), equal to ``sklearn.metrics.f1_score(..., labels=all K, average="macro",
  zero_division=0)`` on the resampled items;
* :func:`bootstrap_weights`: how often each item appears in each resample (seeded);
* :func:`compare`: every system's score with a percentile interval, and its difference from a
  reference system with an interval and a two-sided bootstrap p-value, Holm-adjusted over the
  comparisons (:func:`scrm.stats.intervals.holm`).

A system's predictions may hold several repetitions (rows of a 2-D array, e.g. repeated
cross-validation with different seeds): its score is the mean of the repetitions' scores.
Predictions are integer codes 0..K-1; any other code (e.g. K for "abstain") is a wrong answer
that belongs to no class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .intervals import finite, holm

BLOCK = 250  # resamples scored at once (bounds memory: BLOCK x n weights)


def encode(values: Sequence[Any], classes: Sequence[str], missing: int | None = None) -> np.ndarray:
    """Labels -> integer codes in ``classes`` order; a value not in ``classes`` (None, an abstain
    marker) gets ``missing`` (default K, a code that belongs to no class)."""
    index = {c: i for i, c in enumerate(classes)}
    miss = len(classes) if missing is None else missing
    return np.array([index.get(v, miss) for v in values], dtype=np.int64)


def _as_2d(pred: np.ndarray) -> np.ndarray:
    p = np.asarray(pred, dtype=np.int64)
    return p[None, :] if p.ndim == 1 else p


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int,
             weights: np.ndarray | None = None) -> np.ndarray:
    """Macro-F1 over classes 0..k-1 for each weight row (shape (B,) ; unweighted: B = 1).

    Per class c: TP = sum w[t==c & p==c], FP = sum w[t!=c & p==c], FN = sum w[t==c & p!=c];
    F1 = 2TP / (2TP + FP + FN), and 0 when that denominator is 0 (no true and no predicted item).
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    w = np.ones((1, t.size)) if weights is None else np.atleast_2d(weights).astype(float)
    onehot_t = (t[:, None] == np.arange(k)[None, :]).astype(float)      # n x k
    onehot_p = (p[:, None] == np.arange(k)[None, :]).astype(float)
    tp = w @ (onehot_t * onehot_p)                                        # B x k
    n_true = w @ onehot_t
    n_pred = w @ onehot_p
    den = n_true + n_pred                                                 # = 2TP + FP + FN
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    return f1.mean(axis=1)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Share of (weighted) items predicted right, for each weight row."""
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    w = np.ones((1, correct.size)) if weights is None else np.atleast_2d(weights).astype(float)
    return (w @ correct) / w.sum(axis=1)


def bootstrap_weights(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of resample weights: row b counts how often each of the ``n`` items is in resample b.

    Seeded and drawn in a fixed order, so the same (n, n_boot, seed) gives the same resamples, and
    every system scored with them is paired with every other.
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        m = min(BLOCK, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        w = np.zeros((m, n), dtype=np.float64)
        np.add.at(w, (np.repeat(np.arange(m), n), idx.ravel()), 1.0)
        done += m
        yield w


def _score(metric: str, y: np.ndarray, pred: np.ndarray, k: int,
           weights: np.ndarray | None) -> np.ndarray:
    """Mean over the prediction's repetitions (rows) of the metric, per weight row."""
    rows = _as_2d(pred)
    if metric == "macro_f1":
        vals = [macro_f1(y, r, k, weights) for r in rows]
    elif metric == "accuracy":
        vals = [accuracy(y, r, weights) for r in rows]
    else:
        raise ValueError(f"unknown metric {metric!r} (macro_f1 | accuracy)")
    return np.mean(vals, axis=0)


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value of "no difference": twice the smaller tail share of
    resampled differences at or beyond 0, with the +1 correction (never exactly 0; the interval at
    level 1 - alpha excludes 0 roughly when p < alpha)."""
    b = diffs.size
    lower = (np.sum(diffs <= 0) + 1) / (b + 1)
    upper = (np.sum(diffs >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(lower, upper)))


def compare(y_true: np.ndarray, preds: Mapping[str, np.ndarray], k: int, reference: str, *,
            n_boot: int, seed: int, level: float) -> dict[str, dict[str, Any]]:
    """Scores, percentile intervals and paired differences from ``reference`` for every system.

    Per system: ``macro_f1`` and ``accuracy`` with ``*_ci`` ([low, high], percentile bootstrap over
    items at ``level``); for systems other than the reference: ``diff`` (its macro-F1 minus the
    reference's), ``diff_ci``, ``p_value`` (two-sided paired bootstrap, :func:`bootstrap_p`),
    ``p_holm`` (Holm over all systems compared with the reference) and ``indistinguishable``
    (``p_holm >= 1 - level``: the data cannot tell it from the reference). All resamples are shared
    by all systems (paired).
    """
    y = np.asarray(y_true, dtype=np.int64)
    names = list(preds)
    boot_f1: dict[str, list[np.ndarray]] = {s: [] for s in names}
    boot_acc: dict[str, list[np.ndarray]] = {s: [] for s in names}
    for w in bootstrap_weights(y.size, n_boot, seed):
        for s in names:
            boot_f1[s].append(_score("macro_f1", y, preds[s], k, w))
            boot_acc[s].append(_score("accuracy", y, preds[s], k, w))
    q = [(1 - level) / 2, (1 + level) / 2]
    f1 = {s: np.concatenate(v) for s, v in boot_f1.items()}
    acc = {s: np.concatenate(v) for s, v in boot_acc.items()}
    out: dict[str, dict[str, Any]] = {}
    for s in names:
        out[s] = {"macro_f1": finite(_score("macro_f1", y, preds[s], k, None)[0]),
                  "macro_f1_ci": [finite(v) for v in np.quantile(f1[s], q)],
                  "accuracy": finite(_score("accuracy", y, preds[s], k, None)[0]),
                  "accuracy_ci": [finite(v) for v in np.quantile(acc[s], q)]}
    others = [s for s in names if s != reference]
    p_raw = []
    for s in others:
        d = f1[s] - f1[reference]
        out[s].update(diff=finite(out[s]["macro_f1"] - out[reference]["macro_f1"]),
                      diff_ci=[finite(v) for v in np.quantile(d, q)],
                      p_value=finite(bootstrap_p(d)))
        p_raw.append(out[s]["p_value"])
    for s, p_adj in zip(others, holm(np.asarray(p_raw, dtype=float)).tolist(), strict=True):
        out[s]["p_holm"] = finite(p_adj)
        out[s]["indistinguishable"] = bool(p_adj >= 1 - level)
    out[reference].update(diff=0.0, diff_ci=None, p_value=None, p_holm=None,
                          indistinguishable=True)
    return out
