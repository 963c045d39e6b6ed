"""Latency drivers: the estimator zoo (baselines first), fitting on the time split, test metrics
and permutation importance. Intervals and paired comparisons of the test metrics are in
:mod:`.evaluation`, the Cox model in :mod:`.cox`.

Every model consumes the same raw feature frame (:func:`model_frame`, columns
:data:`.features.FEATURES`); the baselines are the shared group baselines of
:mod:`scrm.stats.baselines` with the brand as the group, so a model only earns credit for beating
"it is just the brand".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats.intervals import finite
from .features import COUNT_FEATURES, FEATURES, NUMERIC_FEATURES, TIME_FEATURES

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings


def _linear_features(settings: ResponseTimeSettings) -> Any:
    """One-hot brand (rare brands pooled) and time, log-scaled counts, scaled sentiment."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("brand", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                                min_frequency=settings.min_brand_openings), ["brand"]),
        ("time", OneHotEncoder(handle_unknown="ignore", sparse_output=False), TIME_FEATURES),
        ("counts", Pipeline([("log1p", FunctionTransformer(np.log1p,
                                                            feature_names_out="one-to-one")),
                             ("scale", StandardScaler())]), COUNT_FEATURES),
        ("sentiment", StandardScaler(), ["sentiment"]),
    ])


def _tree_features(settings: ResponseTimeSettings) -> Any:
    """Ordinal brand (a categorical column for the boosting model) and the raw numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer([
        ("brand", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan,
                                 min_frequency=settings.min_brand_openings), ["brand"]),
        ("num", "passthrough", NUMERIC_FEATURES),
    ])


def make_classifiers(settings: ResponseTimeSettings) -> dict[str, Any]:
    """Baselines first, then linear and gradient boosting (all consume the raw feature frame)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from ..stats.baselines import GroupRateClassifier

    return {
        "dummy": DummyClassifier(strategy="prior"),
        "brand_rate": GroupRateClassifier(column="brand", smoothing=settings.baseline_smoothing),
        "logistic": Pipeline([("features", _linear_features(settings)),
                              ("model", LogisticRegression(C=settings.logistic_c, max_iter=2000))]),
        "hgb": Pipeline([("features", _tree_features(settings)),
                         ("model", HistGradientBoostingClassifier(
                             **settings.gbm, categorical_features=[0], early_stopping=False,
                             random_state=settings.seed))]),
    }


def make_regressors(settings: ResponseTimeSettings) -> dict[str, Any]:
    """The brand-median baseline first, then ridge and gradient boosting (raw feature frame)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    from ..stats.baselines import GroupMedianRegressor

    return {
        "brand_median": GroupMedianRegressor(column="brand", min_count=settings.min_brand_openings),
        "ridge": Pipeline([("features", _linear_features(settings)),
                           ("model", Ridge(alpha=settings.ridge_alpha))]),
        "hgb": Pipeline([("features", _tree_features(settings)),
                         ("model", HistGradientBoostingRegressor(
                             **settings.gbm, categorical_features=[0], early_stopping=False,
                             random_state=settings.seed))]),
    }


def model_frame(op: pl.DataFrame) -> Any:
    """Feature frame for sklearn (pandas; brand as plain object strings for stable signatures)."""
    pdf = op.select(FEATURES).to_pandas()
    pdf["brand"] = pdf["brand"].astype(object)
    for c in NUMERIC_FEATURES:
        pdf[c] = pdf[c].astype("float64")
    return pdf


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """AUC and AP need both classes in the test set; when one is missing they are None (not 0.5)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    both = len(np.unique(y)) == 2
    return {
        "auc": finite(roc_auc_score(y, p)) if both else None,
        "average_precision": finite(average_precision_score(y, p)) if y.sum() > 0 else None,
        "brier": finite(brier_score_loss(y, p, labels=[0, 1])),
        "log_loss": finite(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "n_test": int(y.size),
        "test_positive_share": finite(y.mean()) if y.size else None,
    }


def regression_metrics(y_log: np.ndarray, pred_log: np.ndarray) -> dict[str, Any]:
    """MAE in minutes after back-transforming log1p(seconds); R^2 on the log scale it was fit on."""
    from sklearn.metrics import r2_score

    err_min = np.abs(np.expm1(pred_log) - np.expm1(y_log)) / 60.0
    return {
        "mae_minutes": finite(err_min.mean()),
        "median_ae_minutes": finite(np.median(err_min)),
        "r2_log": finite(r2_score(y_log, pred_log)) if y_log.size > 1 else None,
        "n_test": int(y_log.size),
    }


TASKS = ("within_1h", "log_latency")


def task_rows(op: pl.DataFrame, task: str) -> pl.DataFrame:
    """The openings a task learns from: known 1-hour labels, or answered openings."""
    return op.filter(pl.col("within_1h_known") if task == "within_1h" else pl.col("answered"))


def task_target(df: pl.DataFrame, task: str) -> np.ndarray:
    """``answered_within_1h`` as 0/1, or ``log1p(latency_s)``."""
    if task == "within_1h":
        return df["answered_within_1h"].cast(pl.Int64).to_numpy()
    return np.log1p(df["latency_s"].to_numpy())


@dataclass
class ModelResult:
    """One model of one task: test metrics, and the fitted model unless it was skipped."""

    task: str
    name: str
    metrics: dict[str, Any]
    model: Any = None
    X_train: Any = None
    y_test: Any = None
    pred_test: Any = None
    status: str = "ok"
    reason: str = ""


def _skip_reason(task: str, n_train: int, n_test: int, y_train: np.ndarray,
                 settings: ResponseTimeSettings) -> str:
    if n_train < settings.min_train_rows:
        return f"{n_train} training rows < min_train_rows={settings.min_train_rows}"
    if n_test == 0:
        return "no test rows after the time split"
    if task == "within_1h" and len(np.unique(y_train)) < 2:
        return "the training split has a single class"
    return ""


def fit_models(op: pl.DataFrame, settings: ResponseTimeSettings) -> list[ModelResult]:
    """Fit every model on the train split and score it on the test split; skip with a reason when
    a split is too small or has a single class (never crash on a small sample)."""
    from threadpoolctl import threadpool_limits

    results: list[ModelResult] = []
    zoo = {"within_1h": make_classifiers(settings), "log_latency": make_regressors(settings)}
    with threadpool_limits(limits=settings.n_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        for task in TASKS:
            data = task_rows(op, task)
            tr, te = data.filter(pl.col("split") == "train"), data.filter(pl.col("split") == "test")
            y_tr, y_te = task_target(tr, task), task_target(te, task)
            base = {"n_train": tr.height, "n_test": te.height}
            reason = _skip_reason(task, tr.height, te.height, y_tr, settings)
            if reason:
                results.extend(ModelResult(task, n, base, status="skipped", reason=reason)
                               for n in zoo[task])
                continue
            X_tr, X_te = model_frame(tr), model_frame(te)
            for name, model in zoo[task].items():
                model.fit(X_tr, y_tr)
                if task == "within_1h":
                    pred = model.predict_proba(X_te)[:, 1]
                    m = classification_metrics(y_te, pred)
                    m["train_positive_share"] = finite(y_tr.mean())
                else:
                    pred = model.predict(X_te)
                    m = regression_metrics(y_te, pred)
                results.append(ModelResult(task, name, {**base, **m}, model=model, X_train=X_tr,
                                           y_test=y_te, pred_test=pred))
    return results


def permutation_importances(results: list[ModelResult], op: pl.DataFrame,
                            settings: ResponseTimeSettings) -> dict[str, dict[str, Any]]:
    """Permutation importance of the boosting models on the test split (seeded, 1 BLAS thread).

    ``settings.n_jobs`` processes share the columns: scikit-learn draws one seed before dispatch and
    every column's shuffles use it, so the values do not depend on the number of processes.
    """
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    out: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.status != "ok" or r.name != "hgb":
            continue
        te = task_rows(op, r.task).filter(pl.col("split") == "test")
        if te.height < 2:
            continue
        scoring = "neg_mean_absolute_error"
        if r.task == "within_1h":
            both = len(np.unique(task_target(te, r.task))) == 2
            scoring = "roc_auc" if both else "neg_brier_score"
        if te.height > settings.importance_max_rows:
            te = te.sample(settings.importance_max_rows, seed=settings.seed)
        # the tree pipeline maps each raw feature to one column, in FEATURES order: transform
        # once and permute the encoded columns (same result, the encoder does not run per repeat)
        with threadpool_limits(limits=settings.n_threads):
            Z = r.model[:-1].transform(model_frame(te))
            pi = permutation_importance(r.model[-1], Z, task_target(te, r.task), scoring=scoring,
                                        n_repeats=settings.importance_repeats,
                                        random_state=settings.seed,
                                        n_jobs=settings.n_jobs)
        out[r.task] = {"scoring": scoring,
                       **{f: {"mean": finite(m), "std": finite(s)}
                          for f, m, s in zip(FEATURES, pi.importances_mean, pi.importances_std,
                                             strict=True)}}
    return out
