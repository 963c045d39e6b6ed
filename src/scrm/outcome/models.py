"""Can the first reply predict recovery? Candidate models, grouped cross-validation, odds ratios.

Among threads that opened negative and have a follow-up (:func:`~.trajectories.model_population`),
the candidates predict ``recovered``: the prior, the brand's recovery rate
(:class:`~scrm.stats.baselines.GroupRateClassifier`: "is it just the brand?"), opening sentiment only,
an L2 logistic regression on every predictor and gradient boosting. Folds are stratified and grouped
by customer (one customer's threads never straddle train and test), and the template features are
refitted in every fold on training customers only. The pooled out-of-fold AUC gets a percentile
bootstrap interval; the logistic regression's odds ratios get a customer bootstrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats.intervals import finite
from .reply_features import (BINARY_PREDICTORS, CATEGORICAL_PREDICTORS, NUMERIC_PREDICTORS,
                             add_template_features)
from .trajectories import model_population

if TYPE_CHECKING:
    from ..config import OutcomeModelSettings, OutcomeSettings

MODEL_NAMES: tuple[str, ...] = ("dummy_prior", "brand_prior", "opening_only", "logreg", "hgb")
FINAL_MODELS: tuple[str, ...] = ("logreg", "hgb")


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
    """ROC AUC as the Mann-Whitney statistic (ties count half); None with a single class.

    Equal to ``sklearn.metrics.roc_auc_score`` and cheap enough to bootstrap.
    """
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def cross_validate(outcome: pl.DataFrame, settings: OutcomeSettings, seed: int) -> dict[str, Any]:
    """Out-of-fold AUC per model with a customer-grouped, stratified k-fold.

    Template features are refitted in every fold on the first replies of *training* customers only
    (all answered openings, whatever their label, minus the test fold's customers), so no test reply
    shapes a centroid or a duplicate count.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold
    from threadpoolctl import threadpool_limits

    mp = settings.model
    pop = model_population(outcome)
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
                           f"stayed_negative={n - n_pos} (need at least {need} of each)")
        return info
    info["folds"] = k
    answered = outcome.filter(pl.col("answered"))
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    models = make_models(mp, seed)
    oof = {m: np.full(n, np.nan) for m in models}
    fold_auc: dict[str, list[float]] = {m: [] for m in models}
    skipped: dict[str, list[str]] = {m: [] for m in models}
    with threadpool_limits(1):
        for fold, (tr, te) in enumerate(cv.split(np.zeros(n), y, groups)):
            test_customers = pl.Series(groups[te]).implode()
            ref = answered.filter(~pl.col("customer_id").is_in(test_customers))
            X = feature_matrix(add_template_features(pop, ref, settings))
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
    info["note"] = (f"pooled out-of-fold AUC over n={n} threads ({n_pos} recovered, "
                    f"{n - n_pos} stayed negative) from {k} customer-grouped folds; "
                    f"oof_auc_ci is a {round((1 - alpha) * 100)}% bootstrap interval")
    return info


def odds_ratios(pop: pl.DataFrame, settings: OutcomeSettings, seed: int) -> dict[str, Any]:
    """Odds ratios of the L2 logistic regression on all eligible threads, with percentile bootstrap
    intervals from resampling *customers* (``model.n_boot`` resamples, seeded).

    The penalty shrinks the ratios towards 1; continuous predictors are per standard deviation,
    0/1 markers with vs without. Brand dummies are fitted (to adjust for brand) but not reported.
    """
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    mp = settings.model
    y = pop["recovered"].cast(pl.Int32).to_numpy()
    need = min_per_class(mp)
    if min(int(y.sum()), int(len(y) - y.sum())) < need:
        return {"skipped": f"fewer than {need} threads in a class (n={len(y)}, "
                           f"recovered={int(y.sum())})", "n": int(len(y))}
    X = feature_matrix(pop)
    names = [f"num__{c}" for c in NUMERIC_PREDICTORS] + [f"bin__{c}" for c in BINARY_PREDICTORS]

    with threadpool_limits(1):
        full = _logreg_pipeline(mp, seed).fit(X, y)
        fn = list(full.named_steps["pre"].get_feature_names_out())
        cols = [fn.index(nm) for nm in names]
        point = full.named_steps["clf"].coef_.ravel()[cols]
        # the preprocessing (mean, SD, brand categories) is fixed from the full fit so that every
        # resample measures "per SD" in the same unit; only the penalised regression is refitted
        Z = full.named_steps["pre"].transform(X)
        clf = full.named_steps["clf"]
        rng = np.random.default_rng(seed)
        groups = pop["customer_id"].to_numpy()
        uniq, inv = np.unique(groups, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
        rows_of = [order[bounds[g]:bounds[g + 1]] for g in range(len(uniq))]
        n_boot = mp.n_boot
        boots = []
        skipped = 0
        for _ in range(n_boot):
            pick = rng.integers(0, len(uniq), len(uniq))
            idx = np.concatenate([rows_of[g] for g in pick])
            if len(np.unique(y[idx])) < 2:
                skipped += 1
                continue
            boots.append(clone(clf).fit(Z[idx], y[idx]).coef_.ravel()[cols])
    alpha = 1 - settings.ci_level
    B = np.array(boots) if boots else np.empty((0, len(names)))
    out: dict[str, Any] = {}
    for j, nm in enumerate(names):
        feat = nm.split("__", 1)[1]
        lo = np.quantile(B[:, j], alpha / 2) if len(B) else np.nan
        hi = np.quantile(B[:, j], 1 - alpha / 2) if len(B) else np.nan
        out[feat] = {"odds_ratio": finite(np.exp(point[j])), "ci_low": finite(np.exp(lo)),
                     "ci_high": finite(np.exp(hi)),
                     "scale": "per SD" if nm.startswith("num__") else "with vs without"}
    return {"n": int(len(y)), "n_boot": n_boot, "n_boot_used": len(boots),
            "n_boot_skipped_one_class": skipped, "ci_level": settings.ci_level,
            "odds_ratios": out}


def fit_final_models(pop: pl.DataFrame, model: OutcomeModelSettings, seed: int) -> dict[str, Any]:
    """logreg and hgb fitted on every eligible thread (for the model registry); {} when a class has
    fewer than :func:`min_per_class` threads."""
    from threadpoolctl import threadpool_limits

    y = pop["recovered"].cast(pl.Int32).to_numpy()
    if min(int(y.sum()), int(len(y) - y.sum())) < min_per_class(model):
        return {}
    X = feature_matrix(pop)
    models = make_models(model, seed)
    with threadpool_limits(1):
        return {m: models[m].fit(X, y) for m in FINAL_MODELS}
