"""Can the first reply predict public recovery? Candidate models, grouped cross-validation, paired
AUC comparisons against the baseline.

Among answered openings the measure calls unhappy (silent threads included: they did not recover
publicly, :func:`~.trajectories.answered_unhappy`), the candidates predict ``recovered``: the prior,
the brand's recovery rate (:class:`~scrm.stats.baselines.GroupRateClassifier`: "is it just the
brand?"), opening sentiment only, an L2 logistic regression on every predictor and gradient
boosting. These are *prediction* models: the L2 penalty helps prediction, and their coefficients are
not reported (odds ratios come from the unpenalised model in :mod:`.effects`). Folds are stratified
and grouped by customer (one customer's threads never straddle train and test), and the template
features are refitted in every fold on training customers only. The pooled out-of-fold AUC gets a
percentile bootstrap interval, and every model is compared with the brand baseline on the same
threads by DeLong's paired test, Holm-adjusted across the comparisons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats.compare import auc_ranks, delong, weighted_auc
from ..stats.intervals import finite, holm, p_value
from .reply_features import (BINARY_PREDICTORS, CATEGORICAL_PREDICTORS, NUMERIC_PREDICTORS,
                             add_template_features, template_counts)
from .trajectories import answered_unhappy

if TYPE_CHECKING:
    from ..config import OutcomeModelSettings, OutcomeSettings

MODEL_NAMES: tuple[str, ...] = ("dummy_prior", "brand_prior", "opening_only", "logreg", "hgb")
FINAL_MODELS: tuple[str, ...] = ("logreg", "hgb")
BASELINE = "brand_prior"


def min_per_class(model: OutcomeModelSettings) -> int:
    """Fewest threads each class needs before any model is fitted (never below 2)."""
    return max(2, model.min_per_class)


def _logreg_pipeline(model: OutcomeModelSettings, seed: int) -> Any:
    """L2 logistic regression on scaled numeric predictors, raw 0/1 markers and brand dummies."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([
        # continuous: odds ratio per standard deviation
        ("num", StandardScaler(), list(NUMERIC_PREDICTORS)),
        # 0/1 markers stay unscaled: odds ratio = with vs without
        ("bin", "passthrough", list(BINARY_PREDICTORS)),
        ("brand", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                min_frequency=model.brand_min_frequency,
                                sparse_output=False), list(CATEGORICAL_PREDICTORS)),
    ], verbose_feature_names_out=True)
    return Pipeline([("pre", pre), ("clf", LogisticRegression(
        C=model.C, l1_ratio=0.0, max_iter=2000, random_state=seed))])


def make_models(model: OutcomeModelSettings, seed: int) -> dict[str, Any]:
    """The candidates, unfitted: two baselines, opening-sentiment-only, L2 logistic, boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    from ..stats.baselines import GroupRateClassifier

    hp = model.hgb
    numeric = list(NUMERIC_PREDICTORS) + list(BINARY_PREDICTORS)
    hgb_pre = ColumnTransformer([
        ("num", "passthrough", numeric),
        ("brand", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan,
                                 min_frequency=model.brand_min_frequency),
         list(CATEGORICAL_PREDICTORS)),
    ])
    cat_mask = [False] * len(numeric) + [True] * len(CATEGORICAL_PREDICTORS)
    return {
        "dummy_prior": DummyClassifier(strategy="prior"),
        "brand_prior": GroupRateClassifier(column="brand", smoothing=model.brand_prior_alpha),
        "opening_only": Pipeline([
            ("pre", ColumnTransformer([("num", StandardScaler(), ["opening_sentiment"])])),
            ("clf", LogisticRegression(C=model.C, max_iter=2000))]),
        "logreg": _logreg_pipeline(model, seed),
        "hgb": Pipeline([("pre", hgb_pre), ("clf", HistGradientBoostingClassifier(
            learning_rate=hp.learning_rate, max_iter=hp.max_iter, max_depth=hp.max_depth,
            min_samples_leaf=hp.min_samples_leaf, l2_regularization=hp.l2_regularization,
            categorical_features=cat_mask, early_stopping=False, random_state=seed))]),
    }


def feature_matrix(df: pl.DataFrame) -> Any:
    """pandas frame of the predictors (booleans as 0/1).

    A missing template similarity (the brand has no *other* reference reply to be similar to) is
    0: there is no repertoire the reply could repeat. Filling here rather than with a fitted imputer
    also keeps the pipelines loadable from MLflow (skops rejects SimpleImputer's stored dtype).
    """
    out = df.select(
        *[pl.col(c).cast(pl.Float64).fill_null(0.0) for c in NUMERIC_PREDICTORS],
        *[pl.col(c).fill_null(False).cast(pl.Float64) for c in BINARY_PREDICTORS],
        *[pl.col(c).fill_null("(none)").cast(pl.String) for c in CATEGORICAL_PREDICTORS],
    ).to_pandas()
    return out


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC (ties count half, :func:`scrm.stats.compare.weighted_auc` with unit weights); None
    with a single class."""
    y = np.asarray(y)
    value = weighted_auc(y, auc_ranks(p), np.ones(len(y)))
    return None if np.isnan(value) else value


def cross_validate(outcome: pl.DataFrame, settings: OutcomeSettings, seed: int) -> dict[str, Any]:
    """Out-of-fold AUC per model with a customer-grouped, stratified k-fold.

    Template features are refitted in every fold on the first replies of *training* customers only
    (all answered openings, whatever their label, minus the test fold's customers), so no test reply
    shapes a centroid or a duplicate count.
    """
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from ..stats.group_folds import StratifiedGroupKFold  # scikit-learn's folds, faster

    mp = settings.model
    pop = answered_unhappy(outcome)
    y = pop["recovered"].cast(pl.Int32).to_numpy()
    groups = pop["customer_id"].to_numpy()
    n, n_pos = len(y), int(y.sum())
    info: dict[str, Any] = {"n": n, "n_positive": n_pos, "n_negative": n - n_pos,
                            "n_customers": int(len(np.unique(groups))) if n else 0,
                            "split": "StratifiedGroupKFold by customer_id", "models": {}}
    k = min(mp.cv_folds, n_pos, n - n_pos, info["n_customers"])
    need = min_per_class(mp)
    if k < 2 or min(n_pos, n - n_pos) < need:
        info["skipped"] = (f"not enough threads to cross-validate: n={n}, recovered={n_pos}, "
                           f"not recovered={n - n_pos} (need at least {need} of each)")
        return info
    info["folds"] = k
    answered = outcome.filter(pl.col("answered"))
    counts = template_counts(answered["reply_norm"], settings)  # tokenised once for every fold
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    models = make_models(mp, seed)
    oof = {m: np.full(n, np.nan) for m in models}
    fold_auc: dict[str, list[float]] = {m: [] for m in models}
    skipped: dict[str, list[str]] = {m: [] for m in models}
    with threadpool_limits(1):
        for fold, (tr, te) in enumerate(cv.split(np.zeros(n), y, groups)):
            test_customers = pl.Series(groups[te]).implode()
            ref = answered.filter(~pl.col("customer_id").is_in(test_customers))
            X = feature_matrix(add_template_features(pop, ref, settings, counts))
            if len(np.unique(y[tr])) < 2:
                for m in models:
                    skipped[m].append(f"fold {fold}: one class in training")
                continue
            for name, est in models.items():
                model = clone(est).fit(X.iloc[tr], y[tr])
                p = model.predict_proba(X.iloc[te])[:, 1]
                oof[name][te] = p
                a = auc(y[te], p)
                if a is None:
                    skipped[name].append(f"fold {fold}: one class in test")
                else:
                    fold_auc[name].append(a)
    rng = np.random.default_rng(seed)
    boot_idx = [rng.integers(0, n, n) for _ in range(mp.n_boot)]
    alpha = 1 - settings.ci_level
    for name in models:
        done = ~np.isnan(oof[name])
        # percentile bootstrap of the pooled out-of-fold AUC (threads resampled, same draws for
        # every model): at a few hundred threads the interval is wide and says so
        boots = [a for a in (auc(y[i][done[i]], oof[name][i][done[i]]) for i in boot_idx)
                 if a is not None]
        ci = ([finite(np.quantile(boots, alpha / 2)), finite(np.quantile(boots, 1 - alpha / 2))]
              if boots else [None, None])
        info["models"][name] = {
            "oof_auc": finite(auc(y[done], oof[name][done])),
            "oof_auc_ci": ci,
            "fold_auc_mean": finite(np.mean(fold_auc[name])) if fold_auc[name] else None,
            "fold_auc_sd": (finite(np.std(fold_auc[name], ddof=1)) if len(fold_auc[name]) > 1
                            else None),
            "folds_scored": len(fold_auc[name]),
            "skipped_folds": skipped[name],
        }
    info["vs_baseline"] = compare_with_baseline(y, oof)
    info["note"] = (f"pooled out-of-fold AUC over n={n} answered unhappy openings ({n_pos} recovered "
                    f"publicly, {n - n_pos} not, silent ones included) from {k} customer-grouped "
                    f"folds; oof_auc_ci is a {round((1 - alpha) * 100)}% bootstrap interval; "
                    f"vs_baseline: DeLong paired test against {BASELINE}, Holm-adjusted")
    return info


def compare_with_baseline(y: np.ndarray, oof: dict[str, np.ndarray]) -> dict[str, Any]:
    """DeLong's paired test (:func:`scrm.stats.compare.delong`) of every model's pooled
    out-of-fold AUC against :data:`BASELINE`'s, on the threads both scored, with Holm-adjusted
    p-values across the comparisons."""
    base = oof[BASELINE]
    rows: dict[str, Any] = {}
    for name, p in oof.items():
        if name == BASELINE:
            continue
        done = ~np.isnan(p) & ~np.isnan(base)
        rows[name] = {**delong(y[done], p[done], base[done]), "baseline": BASELINE}
    names = [m for m in rows if rows[m].get("p_value") is not None]
    adj = holm(np.array([rows[m]["p_value"] for m in names]))
    for m, a in zip(names, adj, strict=True):
        rows[m]["p_holm"] = p_value(a)
    return rows


def fit_final_models(pop: pl.DataFrame, model: OutcomeModelSettings, seed: int) -> dict[str, Any]:
    """logreg and hgb fitted on every answered unhappy opening (for the model registry); {} when a
    class has fewer than :func:`min_per_class` threads."""
    from threadpoolctl import threadpool_limits

    y = pop["recovered"].cast(pl.Int32).to_numpy()
    if min(int(y.sum()), int(len(y) - y.sum())) < min_per_class(model):
        return {}
    X = feature_matrix(pop)
    models = make_models(model, seed)
    with threadpool_limits(1):
        return {m: models[m].fit(X, y) for m in FINAL_MODELS}
