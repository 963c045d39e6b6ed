"""scikit-learn's StratifiedGroupKFold, the same folds in a fraction of the time.

Why: the outcome stage splits its threads by customer. At 2.8 M tweets that is ~290,000 customers,
and scikit-learn's fold assignment (greedy, one customer at a time: for each of the k folds it
calls ``np.std`` on the k x classes table of class shares) took 85 of the stage's 368 profiled
seconds (`bench/results/pipeline-profile.md`). Here the same greedy pass runs on Python floats
with the same arithmetic, in the same order, so every comparison, tie (``np.isclose``) and chosen
fold is what scikit-learn's code computes; counting and the test indices are vectorised.
``tests/test_group_folds.py`` checks the folds against scikit-learn's on many random inputs.

Scope: exactly two classes (the outcome's recovered / not recovered), where the order of numpy's
additions is checked to be reproduced; with one class or more than two scikit-learn's own code runs
(with more, numpy's sums over the classes associate differently).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold as _SklearnStratifiedGroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d

N_CLASSES = 2  # exactly two classes (see the module's docstring)
_RTOL, _ATOL = 1e-05, 1e-08  # np.isclose's defaults, as scikit-learn calls it


def _isclose(a: float, b: float) -> bool:
    """``np.isclose(a, b)`` for two floats (infinities equal only to themselves)."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= _ATOL + _RTOL * abs(b)


def _class_sum(values: list[float]) -> float:
    """``np.sum`` of a short 1-D float vector: the first element plus numpy's pairwise sum of the
    rest, which for fewer than 8 elements adds them one by one onto 0.0."""
    rest = 0.0
    for v in values[1:]:
        rest += v
    return values[0] + rest


def _fold_eval(shares: list[list[float]], k: int, n_classes: int) -> float:
    """``np.mean(np.std(shares, axis=0))`` with numpy's order of operations: each class column
    summed row after row, divided by k; squared deviations likewise; the square root; then the
    mean over classes."""
    stds = []
    for j in range(n_classes):
        total = shares[0][j]
        for i in range(1, k):
            total += shares[i][j]
        mean = total / k
        d = shares[0][j] - mean
        sq = d * d
        for i in range(1, k):
            d = shares[i][j] - mean
            sq += d * d
        stds.append(math.sqrt(sq / k))
    return _class_sum(stds) / n_classes


class StratifiedGroupKFold(_SklearnStratifiedGroupKFold):
    """Drop-in for :class:`sklearn.model_selection.StratifiedGroupKFold` (same parameters, same
    folds, same warnings and errors), faster on many groups."""

    def _iter_test_indices(self, X: Any, y: Any, groups: Any) -> Iterator[np.ndarray]:
        y = np.asarray(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Supported target types are: ('binary', 'multiclass'). Got {kind!r} "
                             "instead.")
        y = column_or_1d(y)
        _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
        if len(y_cnt) != N_CLASSES:
            yield from super()._iter_test_indices(X, y, groups)
            return
        rng = check_random_state(self.random_state)
        k = self.n_splits
        if np.all(k > y_cnt):
            raise ValueError("n_splits=%d cannot be greater than the number of members in each "
                             "class." % k)
        n_smallest_class = np.min(y_cnt)
        if k > n_smallest_class:
            warnings.warn("The least populated class in y has only %d members, which is less "
                          "than n_splits=%d." % (n_smallest_class, k), UserWarning)
        n_classes = len(y_cnt)
        _, groups_inv, groups_cnt = np.unique(groups, return_inverse=True, return_counts=True)
        n_groups = len(groups_cnt)
        if k > n_groups:
            raise ValueError(f"Cannot have number of splits n_splits={k} greater than the number "
                             f"of groups: {n_groups}.")
        counts = np.zeros((n_groups, n_classes))
        np.add.at(counts, (groups_inv.ravel(), y_inv.ravel()), 1)
        if self.shuffle:  # the same draw from the same generator as scikit-learn's
            perm = np.arange(n_groups)
            rng.shuffle(perm)
            counts = counts[perm]
            inv_perm = np.empty_like(perm)
            inv_perm[perm] = np.arange(perm.size)
            groups_inv = inv_perm[groups_inv]
        order = np.argsort(-np.std(counts, axis=1), kind="stable")

        per_fold = [[0.0] * n_classes for _ in range(k)]
        y_total = [float(c) for c in y_cnt]
        fold_of = np.empty(n_groups, dtype=np.int64)
        rows = counts.tolist()
        for g in order.tolist():
            add = rows[g]
            best, min_eval, min_samples = -1, math.inf, math.inf
            shares = [[per_fold[i][j] / y_total[j] for j in range(n_classes)] for i in range(k)]
            for i in range(k):
                row = shares[i]
                shares[i] = [(per_fold[i][j] + add[j]) / y_total[j] for j in range(n_classes)]
                fold_eval = _fold_eval(shares, k, n_classes)
                shares[i] = row
                samples = _class_sum(per_fold[i])
                if fold_eval < min_eval or (_isclose(fold_eval, min_eval)
                                            and samples < min_samples):
                    best, min_eval, min_samples = i, fold_eval, samples
            target = per_fold[best]
            for j in range(n_classes):
                target[j] += add[j]
            fold_of[g] = best
        row_fold = fold_of[groups_inv]
        for i in range(k):
            yield np.flatnonzero(row_fold == i)
