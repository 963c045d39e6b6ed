"""Many classifiers scored on the same items: intervals, differences from the best, Holm.

Why: a leaderboard ranks many systems on one set of tweets, and "A is above B" is a claim only when
the difference is larger than the noise of those tweets. Two systems scored on the same 420 tweets
share every hard and easy tweet, so their difference is far less noisy than either score:
resampling the *items* once and scoring every system on the same resample keeps that pairing.
:mod:`.classification` compares two classifiers (with McNemar); this module extends the same
macro-F1 (:func:`scrm.stats.classification` ``_f1_from_codes``: a fixed label set,
``zero_division=0``) to a whole table, with the differences from a reference system tested and
Holm-adjusted (:func:`scrm.stats.intervals.holm`).

* :func:`encode`: labels -> integer codes; anything outside the label set (None, an abstention)
  becomes the extra code K, a wrong answer that belongs to no scored class;
* :func:`macro_f1` / :func:`accuracy`: point scores of codes;
* :func:`compare`: every system's score with a percentile interval, and its difference from a
  reference system with an interval, a two-sided bootstrap p-value (:func:`bootstrap_p`), the Holm
  adjustment and an "indistinguishable" mark.

A system's predictions may hold several repetitions (rows of a 2-D array, e.g. repeated
cross-validation with different seeds): its score is the mean of the repetitions' scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .classification import _f1_from_codes
from .intervals import finite, holm


def encode(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """Labels -> codes in ``classes`` order; a value outside ``classes`` gets K = len(classes)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, len(classes)) for v in values], dtype=np.int64)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """Macro-F1 over classes 0..k-1 of codes (code k: wrong, in no class; F1 = 0 for a class with
    no true and no predicted item)."""
    return float(_f1_from_codes(np.asarray(y_true), np.asarray(y_pred), k + 1,
                                np.arange(k)).mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def _score(y: np.ndarray, pred: np.ndarray, k: int, idx: np.ndarray) -> tuple[float, float]:
    """(macro-F1, accuracy) on the items ``idx``, averaged over the prediction's repetitions."""
    rows = pred[None, :] if pred.ndim == 1 else pred
    f1 = [macro_f1(y[idx], r[idx], k) for r in rows]
    acc = [accuracy(y[idx], r[idx]) for r in rows]
    return float(np.mean(f1)), float(np.mean(acc))


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
    reference's), ``diff_ci``, ``p_value`` (two-sided paired bootstrap), ``p_holm`` (Holm over all
    systems compared with the reference) and ``indistinguishable`` (``p_holm >= 1 - level``: the
    data cannot tell it from the reference). Resample b draws ``n`` items with replacement from a
    generator seeded with ``seed``, the same for every system (paired).
    """
    y = np.asarray(y_true, dtype=np.int64)
    names = list(preds)
    codes = {s: np.asarray(preds[s], dtype=np.int64) for s in names}
    n = y.size
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(names), 2))
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        for j, s in enumerate(names):
            boot[b, j] = _score(y, codes[s], k, idx)
    q = [(1 - level) / 2, (1 + level) / 2]
    every = np.arange(n)
    out: dict[str, dict[str, Any]] = {}
    for j, s in enumerate(names):
        f1, acc = _score(y, codes[s], k, every)
        out[s] = {"macro_f1": finite(f1),
                  "macro_f1_ci": [finite(v) for v in np.quantile(boot[:, j, 0], q)],
                  "accuracy": finite(acc),
                  "accuracy_ci": [finite(v) for v in np.quantile(boot[:, j, 1], q)]}
    ref = names.index(reference)
    others = [s for s in names if s != reference]
    p_raw = []
    for s in others:
        d = boot[:, names.index(s), 0] - boot[:, ref, 0]
        out[s].update(diff=finite(out[s]["macro_f1"] - out[reference]["macro_f1"]),
                      diff_ci=[finite(v) for v in np.quantile(d, q)],
                      p_value=finite(bootstrap_p(d)))
        p_raw.append(bootstrap_p(d))
    for s, p_adj in zip(others, holm(np.asarray(p_raw, dtype=float)).tolist(), strict=True):
        out[s]["p_holm"] = finite(p_adj)
        out[s]["indistinguishable"] = bool(p_adj >= 1 - level)
    out[reference].update(diff=0.0, diff_ci=None, p_value=None, p_holm=None,
                          indistinguishable=True)
    return out
