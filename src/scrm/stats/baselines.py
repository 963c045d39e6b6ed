"""Baselines that answer "is it just the group (the brand)?" before any feature gets credit.

One home for the two baselines every research question uses, with the scikit-learn estimator API
so they sit in the same cross-validation and scoring code as the real models:

* :class:`GroupRateClassifier` the group's training share of positives, shrunk towards the overall
  share by ``smoothing`` pseudo-rows (an m-estimate), so a small group never predicts 0 or 1;
* :class:`GroupMedianRegressor` the group's training median (the global median for groups with fewer
  than ``min_count`` training rows, and for unseen groups).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


def _groups(X: Any, column: str) -> np.ndarray:
    return np.asarray(X[column], dtype=object).astype(str)


class GroupRateClassifier(ClassifierMixin, BaseEstimator):
    """P(y = 1) = (positives in the group + smoothing * prior) / (rows in the group + smoothing)."""

    def __init__(self, column: str = "brand", smoothing: float = 10.0) -> None:
        self.column = column
        self.smoothing = smoothing

    def fit(self, X: Any, y: Any) -> GroupRateClassifier:
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.prior_ = float(y.mean()) if y.size else 0.5
        g = pd.Series(y, index=_groups(X, self.column)).groupby(level=0)
        rate = (g.sum() + self.smoothing * self.prior_) / (g.size() + self.smoothing)
        self.rates_ = {str(k): float(v) for k, v in rate.items()}
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.array([self.rates_.get(b, self.prior_) for b in _groups(X, self.column)], dtype=float)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class GroupMedianRegressor(RegressorMixin, BaseEstimator):
    """Predict the group's training median of the target."""

    def __init__(self, column: str = "brand", min_count: int = 20) -> None:
        self.column = column
        self.min_count = min_count

    def fit(self, X: Any, y: Any) -> GroupMedianRegressor:
        y = np.asarray(y, dtype=float)
        g = pd.Series(y, index=_groups(X, self.column)).groupby(level=0)
        counts, med = g.size(), g.median()
        self.global_ = float(np.median(y))
        self.medians_ = {str(k): float(v) for k, v in med[counts >= self.min_count].items()}
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.array([self.medians_.get(b, self.global_) for b in _groups(X, self.column)],
                        dtype=float)
