"""Conversation outcome: does an unhappy customer end up happy, and what in the brand's reply goes with it?

A public thread in which an unhappy customer ends up satisfied is a quality signal to everyone who
reads it. This stage makes that outcome measurable:

1. every tweet gets a sentiment score (``sentiment.scorer``, VADER by default);
2. each customer opening that a brand answered gets a *label* comparing the opening's sentiment with
   the customer's **last** turn after the brand's first reply (thresholds in ``params.yaml``):
   ``recovered`` (opened negative, ended neutral/positive), ``stayed_negative``, ``deteriorated``
   (opened non-negative, ended negative), ``stable_non_negative``, ``no_follow_up`` (the customer
   never spoke after the first reply). Openings with no brand tweet are kept as ``unanswered``;
   non-opening threads (brand roots, roots whose parent is missing) are counted, not labelled;
3. the brand's **first** reply is described by predictors known when it is sent
   (:mod:`scrm.reply_features`);
4. among threads that opened negative and have a follow-up, models predict ``recovered`` with a
   customer-grouped, stratified k-fold (one customer's threads never straddle train and test);
5. a findings table compares recovery rates with vs without a reply feature, with Wilson intervals
   for each rate and Newcombe intervals for their difference. These are associations: brands choose
   how to reply knowing the complaint, so none of it is a causal effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .config import Paths, section
from .errors import DataError, ScrmError
from .reply_features import (
    BINARY_PREDICTORS,
    CATEGORICAL_PREDICTORS,
    NUMERIC_PREDICTORS,
    PREDICTORS,
    add_template_features,
    normalise_for_template,
    reply_features,
)
from .sentiment import SentimentScorer, get_scorer, score_frame

LABELS: tuple[str, ...] = ("recovered", "stayed_negative", "deteriorated", "stable_non_negative",
                           "no_follow_up", "unanswered")
CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
EXPERIMENT = "outcome"
MODEL_NAMES: tuple[str, ...] = ("dummy_prior", "brand_prior", "opening_only", "logreg", "hgb")


def _r(x: Any) -> float | None:
    """Round for the metrics file (None for missing / non-finite)."""
    if x is None:
        return None
    f = float(x)
    return round(f, 6) if np.isfinite(f) else None


# --------------------------------------------------------------------------------------------------
# sentiment and trajectories
# --------------------------------------------------------------------------------------------------
def sentiment_class(expr: pl.Expr, negative_threshold: float, positive_threshold: float) -> pl.Expr:
    """negative (<= neg), positive (>= pos), else neutral; null stays null."""
    return (pl.when(expr.is_null()).then(None)
            .when(expr <= negative_threshold).then(pl.lit("negative"))
            .when(expr >= positive_threshold).then(pl.lit("positive"))
            .otherwise(pl.lit("neutral")))


def score_tweets(tweets: pl.DataFrame, scorer: SentimentScorer,
                 roles: Sequence[str] = ("customer", "brand")) -> pl.DataFrame:
    """(tweet_id, thread_id, role, sentiment) for the tweets of the given roles."""
    sub = tweets.filter(pl.col("role").is_in(list(roles))).select("tweet_id", "thread_id", "role",
                                                                   "text")
    return score_frame(sub, "text", scorer, "sentiment").drop("text")


def conversation_frame(tweets: pl.DataFrame, threads: pl.DataFrame,
                       params: Mapping[str, Any]) -> pl.DataFrame:
    """One row per customer opening: the opening, the brand's first reply, the customer's last turn
    after it, and the trajectory label.

    ``tweets`` must carry a ``sentiment`` column (customer tweets at least). The customer is the
    opening's author; other customers chiming in are ignored. "After the first reply" is by thread
    turn order (created_at, tweet_id).
    """
    neg = float(params.get("negative_threshold", -0.05))
    pos = float(params.get("positive_threshold", 0.05))
    if not neg < pos:
        raise ScrmError(f"params.yaml outcome: negative_threshold ({neg}) must be below "
                        f"positive_threshold ({pos}).")
    op = threads.lazy().filter(pl.col("is_opening")).select(
        "thread_id", "multi_brand", "opening_tweet_id", "opening_at",
        thread_brand=pl.col("brand"), customer_id=pl.col("opening_author_id"))
    tw = (tweets.lazy().select("tweet_id", "thread_id", "author_id", "role", "created_at", "text",
                               "turn", "sentiment")
          .join(op.select("thread_id", "customer_id"), on="thread_id", how="inner"))
    first = (tw.filter(pl.col("role") == "brand").sort("thread_id", "turn")
             .group_by("thread_id", maintain_order=True).first()
             .select("thread_id", reply_tweet_id="tweet_id", reply_author="author_id",
                     reply_at="created_at", reply_text="text", reply_turn="turn"))
    cust = (tw.filter((pl.col("role") == "customer") & (pl.col("author_id") == pl.col("customer_id")))
            .join(first.select("thread_id", "reply_turn"), on="thread_id", how="left"))
    opening = tw.select("thread_id", opening_tweet_id="tweet_id", opening_sentiment="sentiment",
                        opening_text="text")
    before = (cust.filter(pl.col("reply_turn").is_null() | (pl.col("turn") < pl.col("reply_turn")))
              .group_by("thread_id").agg(n_customer_turns_before_reply=(pl.len() - 1)
                                         .clip(lower_bound=0).cast(pl.Int32)))
    after = (cust.filter(pl.col("turn") > pl.col("reply_turn")).sort("thread_id", "turn")
             .group_by("thread_id", maintain_order=True)
             .agg(n_followups=pl.len().cast(pl.Int32), last_tweet_id=pl.col("tweet_id").last(),
                  last_at=pl.col("created_at").last(), last_sentiment=pl.col("sentiment").last(),
                  last_text=pl.col("text").last()))
    # an unanswered opening is attributed to the first brand account it @mentions
    handles = (tweets.lazy().filter(pl.col("role") == "brand")
               .group_by(key=pl.col("author_id").str.to_lowercase())
               .agg(mentioned_brand=pl.col("author_id").min()))
    mentioned = (op.select("thread_id", "opening_tweet_id")
                 .join(opening, on=["thread_id", "opening_tweet_id"], how="inner")
                 .select("thread_id", key=pl.col("opening_text").str.extract_all(r"@\w+"))
                 .explode("key").drop_nulls("key")
                 .with_columns(pos=pl.int_range(pl.len()).over("thread_id"),
                               key=pl.col("key").str.slice(1).str.to_lowercase())
                 .join(handles, on="key", how="inner").sort("thread_id", "pos")
                 .group_by("thread_id").agg(pl.col("mentioned_brand").first()))
    df = (op.join(opening, on=["thread_id", "opening_tweet_id"], how="left")
          .join(mentioned, on="thread_id", how="left")
          .join(first, on="thread_id", how="left")
          .join(before, on="thread_id", how="left")
          .join(after, on="thread_id", how="left")
          # the brand is the one that replied first: ``threads.brand`` (most tweets) would depend
          # on later turns; an unanswered opening gets the brand it mentions
          .with_columns(brand=pl.coalesce("reply_author", "mentioned_brand"),
                        brand_source=pl.when(pl.col("reply_author").is_not_null())
                        .then(pl.lit("first_reply"))
                        .when(pl.col("mentioned_brand").is_not_null()).then(pl.lit("mention")),
                        n_followups=pl.col("n_followups").fill_null(0),
                        n_customer_turns_before_reply=pl.col("n_customer_turns_before_reply")
                        .fill_null(0),
                        answered=pl.col("reply_tweet_id").is_not_null(),
                        opening_class=sentiment_class(pl.col("opening_sentiment"), neg, pos),
                        last_class=sentiment_class(pl.col("last_sentiment"), neg, pos)))
    open_neg = pl.col("opening_class") == "negative"
    last_neg = pl.col("last_class") == "negative"
    label = (pl.when(~pl.col("answered")).then(pl.lit("unanswered"))
             .when(pl.col("last_tweet_id").is_null()).then(pl.lit("no_follow_up"))
             .when(open_neg & ~last_neg).then(pl.lit("recovered"))
             .when(open_neg & last_neg).then(pl.lit("stayed_negative"))
             .when(~open_neg & last_neg).then(pl.lit("deteriorated"))
             .otherwise(pl.lit("stable_non_negative")))
    return df.with_columns(label=label, recovered=label == "recovered").sort("thread_id").collect()


def build_outcome(tweets: pl.DataFrame, threads: pl.DataFrame,
                  params: Mapping[str, Any]) -> pl.DataFrame:
    """Trajectories + first-reply predictors (template-ness against all first replies, leave-one-out)."""
    conv = conversation_frame(tweets, threads, params)
    sign = list(params.get("signoff_patterns") or [])
    feats = reply_features(conv.filter(pl.col("answered")), params).with_columns(
        reply_norm=normalise_for_template("reply_text", sign))
    feats = add_template_features(feats, feats, params)
    keep = [c for c in feats.columns if c not in conv.columns]
    return conv.join(feats.select("thread_id", *keep), on="thread_id", how="left",
                     maintain_order="left")


def model_population(outcome: pl.DataFrame) -> pl.DataFrame:
    """Threads that opened negative and in which the customer spoke again after the first reply."""
    return outcome.filter(pl.col("label").is_in(["recovered", "stayed_negative"]))


# --------------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------------
def label_counts(outcome: pl.DataFrame, by: str | None = None) -> dict[str, Any]:
    """Counts per label (every label present, zeros included), optionally per ``by``."""
    if by is None:
        vc = dict(outcome.group_by("label").len().iter_rows())
        return {lab: int(vc.get(lab, 0)) for lab in LABELS}
    g = outcome.with_columns(pl.col(by).fill_null("(none)")).group_by(by, "label").len()
    out: dict[str, Any] = {}
    for key in sorted(g[by].unique().to_list()):
        vc = dict(g.filter(pl.col(by) == key).select("label", "len").iter_rows())
        out[key] = {lab: int(vc.get(lab, 0)) for lab in LABELS}
    return out


def transition_table(outcome: pl.DataFrame) -> pl.DataFrame:
    """Opening class -> end state (last class, ``no_follow_up`` or ``unanswered``), with counts:
    the edge list of a sankey diagram."""
    target = (pl.when(pl.col("label") == "unanswered").then(pl.lit("unanswered"))
              .when(pl.col("label") == "no_follow_up").then(pl.lit("no_follow_up"))
              .otherwise(pl.col("last_class")))
    targets = [*CLASSES, "no_follow_up", "unanswered"]
    grid = pl.DataFrame({"source": [s for s in CLASSES for _ in targets],
                         "target": [t for _ in CLASSES for t in targets]})
    counts = (outcome.filter(pl.col("opening_class").is_not_null())
              .group_by(source=pl.col("opening_class"), target=target).agg(n=pl.len()))
    return (grid.join(counts, on=["source", "target"], how="left", maintain_order="left")
            .with_columns(pl.col("n").fill_null(0).cast(pl.Int64))
            .with_columns(share_of_source=(pl.col("n") / pl.col("n").sum().over("source"))
                          .fill_nan(None).round(6)))


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k/n (nan where n == 0); good at small n and rates near 0 or 1."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def newcombe_interval(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray,
                      z: float) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval of p1 - p2 (method 10), built from the two Wilson intervals."""
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1 = np.asarray(k1, float) / np.asarray(n1, float)
        p2 = np.asarray(k2, float) / np.asarray(n2, float)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lo, hi


def findings_table(pop: pl.DataFrame, params: Mapping[str, Any]) -> pl.DataFrame:
    """Recovery rate with vs without each reply feature, overall and for the largest brands."""
    from scipy.stats import norm

    feats = list(params.get("findings_features") or ["off_social", "template_reply", "apology",
                                                     "fast_reply"])
    z = float(norm.ppf(0.5 + float(params.get("ci_level", 0.95)) / 2))
    top_n = int(params.get("top_brands", 8))
    top = (pop.group_by("brand").len().sort(["len", "brand"], descending=[True, False])
           .head(top_n)["brand"].to_list())
    long = pop.select("brand", "recovered", *feats).unpivot(
        index=["brand", "recovered"], on=feats, variable_name="feature", value_name="has")
    long = long.with_columns(pl.col("has").cast(pl.Boolean))
    overall = long.with_columns(scope=pl.lit("overall"), brand=pl.lit("(all brands)"))
    per_brand = long.filter(pl.col("brand").is_in(top)).with_columns(scope=pl.lit("brand"))
    both = pl.concat([overall, per_brand.select(overall.columns)])
    agg = both.group_by("scope", "brand", "feature").agg(
        n_with=pl.col("has").sum().cast(pl.Int64),
        recovered_with=(pl.col("has") & pl.col("recovered")).sum().cast(pl.Int64),
        n_without=(~pl.col("has")).sum().cast(pl.Int64),
        recovered_without=(~pl.col("has") & pl.col("recovered")).sum().cast(pl.Int64),
        n_unknown=pl.col("has").is_null().sum().cast(pl.Int64),
    )
    order = {f: i for i, f in enumerate(feats)}
    brand_rank = {b: i for i, b in enumerate(top)}
    agg = (agg.with_columns(_s=(pl.col("scope") != "overall").cast(pl.Int32),
                            _b=pl.col("brand").replace_strict(brand_rank, default=-1),
                            _f=pl.col("feature").replace_strict(order, default=len(order)))
           .sort("_s", "_b", "_f").drop("_s", "_b", "_f"))
    a = {c: agg[c].to_numpy() for c in ("n_with", "recovered_with", "n_without", "recovered_without")}
    lw, hw = wilson_interval(a["recovered_with"], a["n_with"], z)
    lo, ho = wilson_interval(a["recovered_without"], a["n_without"], z)
    ld, hd = newcombe_interval(a["recovered_with"], a["n_with"], a["recovered_without"],
                               a["n_without"], z)
    res = agg.with_columns(
        rate_with=(pl.col("recovered_with") / pl.col("n_with")),
        rate_without=(pl.col("recovered_without") / pl.col("n_without")),
        ci_low_with=pl.Series(lw), ci_high_with=pl.Series(hw),
        ci_low_without=pl.Series(lo), ci_high_without=pl.Series(ho),
        diff_ci_low=pl.Series(ld), diff_ci_high=pl.Series(hd),
    ).with_columns(diff=pl.col("rate_with") - pl.col("rate_without"))
    res = res.with_columns([pl.col(c).fill_nan(None).round(6) for c in
                            ("rate_with", "rate_without", "ci_low_with", "ci_high_with",
                             "ci_low_without", "ci_high_without", "diff", "diff_ci_low",
                             "diff_ci_high")])

    def pct(c: str) -> pl.Expr:
        return (pl.col(c) * 100).round(0).cast(pl.Int64).cast(pl.String)

    fast = params.get("fast_reply_minutes", 60)
    phrase = {"off_social": "asked to move off social (DM, phone, email)",
              "template_reply": "was template-like", "apology": "apologised",
              "empathy": "showed empathy", "thanks": "thanked the customer",
              "fast_reply": f"came within {fast} min", "has_link": "had a link",
              "question_back": "asked a question", "addresses_name": "used the customer's name",
              "agent_signoff": "was signed by an agent"}
    what = pl.col("feature").replace_strict(phrase, default=pl.col("feature"))
    level = f"{round(float(params.get('ci_level', 0.95)) * 100)}%"
    comparable = (pl.col("n_with") > 0) & (pl.col("n_without") > 0)
    verdict = (pl.when(~comparable).then(pl.lit("not comparable"))
               .when(pl.col("diff_ci_low") > 0).then(pl.lit("higher"))
               .when(pl.col("diff_ci_high") < 0).then(pl.lit("lower"))
               .otherwise(pl.lit("not distinguishable")))
    verdict_text = (pl.when(verdict == "higher").then(pl.lit("higher with it at this n"))
                    .when(verdict == "lower").then(pl.lit("lower with it at this n"))
                    .otherwise(pl.lit("not distinguishable from zero at this n")))
    points = (pl.col("diff") * 100).round(0).cast(pl.Int64).cast(pl.String)
    compared = pl.format(
        "{}: of threads that opened negative, {}% recovered when the first reply {} ("
        + level + " CI {}-{}%, n={}) vs {}% when it did not ({}-{}%, n={}); difference {} points ("
        + level + " CI {} to {}), {}. An association, not a causal effect.",
        pl.col("brand"), pct("rate_with"), what, pct("ci_low_with"), pct("ci_high_with"),
        pl.col("n_with"), pct("rate_without"), pct("ci_low_without"), pct("ci_high_without"),
        pl.col("n_without"), points, pct("diff_ci_low"), pct("diff_ci_high"), verdict_text)
    one_sided = pl.format("{}: no comparison for a first reply that {} ({} threads with it, {} "
                          "without).", pl.col("brand"), what, pl.col("n_with"), pl.col("n_without"))
    statement = pl.when(comparable).then(compared).otherwise(one_sided)
    return res.with_columns(verdict=verdict, statement=statement)


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------
class GroupRateClassifier:
    """Baseline: a group's (brand's) training recovery rate, shrunk towards the overall rate.

    Answers "is it just the brand?" before any reply feature is credited.
    """

    _estimator_type = "classifier"

    def __init__(self, column: str = "brand", alpha: float = 5.0) -> None:
        self.column = column
        self.alpha = alpha

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"column": self.column, "alpha": self.alpha}

    def set_params(self, **kw: Any) -> GroupRateClassifier:
        for k, v in kw.items():
            setattr(self, k, v)
        return self

    def fit(self, X: Any, y: Any) -> GroupRateClassifier:
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.prior_ = float(y.mean())
        g = pl.DataFrame({"g": X[self.column].astype(str).tolist(), "y": y})
        rates = g.group_by("g").agg(k=pl.col("y").sum(), n=pl.len()).with_columns(
            p=(pl.col("k") + self.alpha * self.prior_) / (pl.col("n") + self.alpha))
        self.rates_ = dict(zip(rates["g"].to_list(), rates["p"].to_list()))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.array([self.rates_.get(g, self.prior_) for g in X[self.column].astype(str).tolist()])
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _logreg_pipeline(mp: Mapping[str, Any], seed: int) -> Any:
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
                                min_frequency=int(mp.get("brand_min_frequency", 10)),
                                sparse_output=False), list(CATEGORICAL_PREDICTORS)),
    ], verbose_feature_names_out=True)
    return Pipeline([("pre", pre), ("clf", LogisticRegression(
        C=float(mp.get("C", 1.0)), l1_ratio=0.0, max_iter=2000, random_state=seed))])


def make_models(mp: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The candidates, unfitted: two baselines, opening-sentiment-only, L2 logistic, boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    hp = dict(mp.get("hgb") or {})
    numeric = list(NUMERIC_PREDICTORS) + list(BINARY_PREDICTORS)
    hgb_pre = ColumnTransformer([
        ("num", "passthrough", numeric),
        ("brand", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan,
                                 min_frequency=int(mp.get("brand_min_frequency", 10))),
         list(CATEGORICAL_PREDICTORS)),
    ])
    cat_mask = [False] * len(numeric) + [True] * len(CATEGORICAL_PREDICTORS)
    return {
        "dummy_prior": DummyClassifier(strategy="prior"),
        "brand_prior": GroupRateClassifier("brand", float(mp.get("brand_prior_alpha", 5.0))),
        "opening_only": Pipeline([
            ("pre", ColumnTransformer([("num", StandardScaler(), ["opening_sentiment"])])),
            ("clf", LogisticRegression(C=float(mp.get("C", 1.0)), max_iter=2000))]),
        "logreg": _logreg_pipeline(mp, seed),
        "hgb": Pipeline([("pre", hgb_pre), ("clf", HistGradientBoostingClassifier(
            learning_rate=float(hp.get("learning_rate", 0.05)),
            max_iter=int(hp.get("max_iter", 200)), max_depth=hp.get("max_depth", 3),
            min_samples_leaf=int(hp.get("min_samples_leaf", 10)),
            l2_regularization=float(hp.get("l2_regularization", 1.0)),
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


def _clone(est: Any) -> Any:
    if isinstance(est, GroupRateClassifier):
        return GroupRateClassifier(**est.get_params())
    from sklearn.base import clone

    return clone(est)


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


def cross_validate(outcome: pl.DataFrame, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Out-of-fold AUC per model with a customer-grouped, stratified k-fold.

    Template features are refitted in every fold on the first replies of *training* customers only
    (all answered openings, whatever their label, minus the test fold's customers), so no test reply
    shapes a centroid or a duplicate count.
    """
    from threadpoolctl import threadpool_limits
    from sklearn.model_selection import StratifiedGroupKFold

    mp = dict(params.get("model") or {})
    pop = model_population(outcome)
    y = pop["recovered"].cast(pl.Int32).to_numpy()
    groups = pop["customer_id"].to_numpy()
    n, n_pos = len(y), int(y.sum())
    info: dict[str, Any] = {"n": n, "n_positive": n_pos, "n_negative": n - n_pos,
                            "n_customers": int(len(np.unique(groups))) if n else 0,
                            "split": "StratifiedGroupKFold by customer_id", "models": {}}
    k = min(int(mp.get("cv_folds", 5)), n_pos, n - n_pos, info["n_customers"])
    need = max(2, int(mp.get("min_per_class", 5)))
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
            X = feature_matrix(add_template_features(pop, ref, params))
            if len(np.unique(y[tr])) < 2:
                for m in models:
                    skipped[m].append(f"fold {fold}: one class in training")
                continue
            for name, est in models.items():
                model = _clone(est).fit(X.iloc[tr], y[tr])
                p = model.predict_proba(X.iloc[te])[:, 1]
                oof[name][te] = p
                a = auc(y[te], p)
                if a is None:
                    skipped[name].append(f"fold {fold}: one class in test")
                else:
                    fold_auc[name].append(a)
    rng = np.random.default_rng(seed)
    boot_idx = [rng.integers(0, n, n) for _ in range(int(mp.get("n_boot", 200)))]
    alpha = 1 - float(params.get("ci_level", 0.95))
    for name in models:
        done = ~np.isnan(oof[name])
        # percentile bootstrap of the pooled out-of-fold AUC (threads resampled, same draws for
        # every model): at a few hundred threads the interval is wide and says so
        boots = [a for a in (auc(y[i][done[i]], oof[name][i][done[i]]) for i in boot_idx)
                 if a is not None]
        ci = ([_r(np.quantile(boots, alpha / 2)), _r(np.quantile(boots, 1 - alpha / 2))]
              if boots else [None, None])
        info["models"][name] = {
            "oof_auc": _r(auc(y[done], oof[name][done])),
            "oof_auc_ci": ci,
            "fold_auc_mean": _r(np.mean(fold_auc[name])) if fold_auc[name] else None,
            "fold_auc_sd": _r(np.std(fold_auc[name], ddof=1)) if len(fold_auc[name]) > 1 else None,
            "folds_scored": len(fold_auc[name]),
            "skipped_folds": skipped[name],
        }
    info["note"] = (f"pooled out-of-fold AUC over n={n} threads ({n_pos} recovered, "
                    f"{n - n_pos} stayed negative) from {k} customer-grouped folds; "
                    f"oof_auc_ci is a {round((1 - alpha) * 100)}% bootstrap interval")
    return info


def odds_ratios(pop: pl.DataFrame, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Odds ratios of the L2 logistic regression on all eligible threads, with percentile bootstrap
    intervals from resampling *customers* (``model.n_boot`` resamples, seeded).

    The penalty shrinks the ratios towards 1; continuous predictors are per standard deviation,
    0/1 markers with vs without. Brand dummies are fitted (to adjust for brand) but not reported.
    """
    from threadpoolctl import threadpool_limits

    mp = dict(params.get("model") or {})
    y = pop["recovered"].cast(pl.Int32).to_numpy()
    need = max(2, int(mp.get("min_per_class", 5)))
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
        n_boot = int(mp.get("n_boot", 200))
        boots = []
        skipped = 0
        for _ in range(n_boot):
            pick = rng.integers(0, len(uniq), len(uniq))
            idx = np.concatenate([rows_of[g] for g in pick])
            if len(np.unique(y[idx])) < 2:
                skipped += 1
                continue
            boots.append(_clone(clf).fit(Z[idx], y[idx]).coef_.ravel()[cols])
    alpha = 1 - float(params.get("ci_level", 0.95))
    B = np.array(boots) if boots else np.empty((0, len(names)))
    out: dict[str, Any] = {}
    for j, nm in enumerate(names):
        feat = nm.split("__", 1)[1]
        lo = np.quantile(B[:, j], alpha / 2) if len(B) else np.nan
        hi = np.quantile(B[:, j], 1 - alpha / 2) if len(B) else np.nan
        out[feat] = {"odds_ratio": _r(np.exp(point[j])), "ci_low": _r(np.exp(lo)),
                     "ci_high": _r(np.exp(hi)),
                     "scale": "per SD" if nm.startswith("num__") else "with vs without"}
    return {"n": int(len(y)), "n_boot": n_boot, "n_boot_used": len(boots),
            "n_boot_skipped_one_class": skipped, "ci_level": float(params.get("ci_level", 0.95)),
            "odds_ratios": out}


def fit_final_models(pop: pl.DataFrame, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """logreg and hgb fitted on every eligible thread (for the model registry); {} if one class."""
    from threadpoolctl import threadpool_limits

    y = pop["recovered"].cast(pl.Int32).to_numpy()
    need = max(2, int(dict(params.get("model") or {}).get("min_per_class", 5)))
    if min(int(y.sum()), int(len(y) - y.sum())) < need:
        return {}
    X = feature_matrix(pop)
    models = make_models(dict(params.get("model") or {}), seed)
    with threadpool_limits(1):
        return {m: models[m].fit(X, y) for m in ("logreg", "hgb")}


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
OUTCOME_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys((
    "thread_id", "customer_id", "brand", "brand_source", "thread_brand", "multi_brand",
    "opening_tweet_id", "opening_at",
    "opening_sentiment", "opening_class", "answered", "reply_tweet_id", "reply_author", "reply_at",
    "n_followups", "last_tweet_id", "last_at", "last_sentiment", "last_class", "label", "recovered",
    "latency_min", "latency_negative", "opening_hour", "template_dups", "template_reply",
    *PREDICTORS,
)))


def _read_inputs(paths: Paths) -> tuple[pl.DataFrame, pl.DataFrame]:
    for p in (paths.tweets, paths.threads):
        if not p.exists():
            raise DataError("input missing; run `scrm prepare` first.", p)
    tweets = pl.read_parquet(paths.tweets, columns=["tweet_id", "author_id", "role", "created_at",
                                                    "text", "thread_id", "turn"])
    threads = pl.read_parquet(paths.threads)
    return tweets, threads


def summarise(outcome: pl.DataFrame, threads: pl.DataFrame, transitions: pl.DataFrame,
              findings: pl.DataFrame, cv: dict[str, Any], ors: dict[str, Any],
              params: Mapping[str, Any], n_scored: int, scorer: str) -> dict[str, Any]:
    """The metrics file: counts, label distribution, transitions, model AUCs, odds ratios."""
    pop = model_population(outcome)
    counts = label_counts(outcome)
    answered = int(outcome["answered"].sum())
    n_open = outcome.height
    matrix: dict[str, dict[str, int]] = {}
    for s, t, n in transitions.select("source", "target", "n").iter_rows():
        matrix.setdefault(s, {})[t] = int(n)
    overall = findings.filter(pl.col("scope") == "overall").select(
        "feature", "n_with", "rate_with", "n_without", "rate_without", "diff", "diff_ci_low",
        "diff_ci_high")
    rec = outcome.filter(pl.col("label") == "recovered")
    return {
        "sentiment": {"scorer": scorer, "tweets_scored": n_scored,
                      "negative_threshold": float(params.get("negative_threshold", -0.05)),
                      "positive_threshold": float(params.get("positive_threshold", 0.05))},
        "threads": {
            "threads": threads.height,
            "openings": n_open,
            "excluded_not_opening": threads.height - n_open,
            "answered": answered,
            "unanswered": n_open - answered,
            "with_follow_up": int((outcome["n_followups"] > 0).sum()),
            "opened_negative_answered": int(outcome.filter(
                pl.col("answered") & (pl.col("opening_class") == "negative")).height),
            "model_population": pop.height,
            "latency_negative_clipped": int(outcome["latency_negative"].fill_null(False).sum()),
        },
        "labels": counts,
        "label_share_of_answered": {lab: _r(counts[lab] / answered) if answered else None
                                    for lab in LABELS if lab != "unanswered"},
        "recovery_rate": _r(counts["recovered"] / pop.height) if pop.height else None,
        "recovered_ending_positive": int((rec["last_class"] == "positive").sum()),
        "labels_by_brand": label_counts(outcome, "brand"),
        "transition_matrix": matrix,
        "template": {"threshold": float(params.get("template_threshold", 0.5)),
                     "share_template_replies": _r(outcome["template_reply"].drop_nulls().mean()),
                     "median_template_sim": _r(outcome["template_sim"].drop_nulls().median())},
        "model": cv,
        "odds_ratios": ors,
        "findings_overall": overall.to_dicts(),
    }


@dataclass(frozen=True)
class OutcomeResult:
    """Everything the stage computes, before anything is written or tracked."""

    outcome: pl.DataFrame
    findings: pl.DataFrame
    transitions: pl.DataFrame
    sentiment: pl.DataFrame
    population: pl.DataFrame
    metrics: dict[str, Any]


def compute(paths: Paths, params: dict[str, Any]) -> OutcomeResult:
    """Score, label, describe and model; pure apart from reading the two inputs."""
    sec = section(params, "outcome")
    sent = section(params, "sentiment")
    seed = int(sec["seed"])
    tweets, threads = _read_inputs(paths)
    scorer_name = str(sent.get("scorer", "vader"))
    scorer = get_scorer(scorer_name)
    roles = list(sec.get("score_roles") or ["customer", "brand"])
    if "customer" not in roles:
        raise ScrmError("params.yaml outcome.score_roles must include customer: the labels "
                        "compare customer turns.")
    neg, pos = float(sec.get("negative_threshold", -0.05)), float(sec.get("positive_threshold", 0.05))
    scored = score_tweets(tweets, scorer, roles).with_columns(
        sentiment_class=sentiment_class(pl.col("sentiment"), neg, pos))
    tw = tweets.join(scored.select("tweet_id", "sentiment"), on="tweet_id", how="left")
    outcome = build_outcome(tw, threads, sec)
    pop = model_population(outcome)
    findings = findings_table(pop, sec)
    transitions = transition_table(outcome)
    cv = cross_validate(outcome, sec, seed)
    ors = odds_ratios(pop, sec, seed)
    metrics = summarise(outcome, threads, transitions, findings, cv, ors, sec, scored.height,
                        str(getattr(scorer, "name", scorer_name)))
    return OutcomeResult(outcome.select(list(OUTCOME_COLUMNS)), findings, transitions, scored, pop,
                         metrics)


def run(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Stage ``outcome``: write outcome.parquet, outcome_findings.parquet, outcome_transitions.parquet,
    sentiment.parquet and reports/metrics/outcome.json; log the runs to MLflow (experiment outcome)."""
    from .io import write_json, write_parquet

    paths.ensure()
    res = compute(paths, params)
    write_parquet(res.outcome, paths.processed / "outcome.parquet")
    write_parquet(res.findings, paths.processed / "outcome_findings.parquet")
    write_parquet(res.transitions, paths.processed / "outcome_transitions.parquet")
    write_parquet(res.sentiment, paths.processed / "sentiment.parquet")
    write_json(paths.metrics / "outcome.json", res.metrics)
    sec = section(params, "outcome")
    _track(paths, params, sec, int(sec["seed"]), res.metrics, res.population)
    return res.metrics


def _track(paths: Paths, params: dict[str, Any], sec: Mapping[str, Any], seed: int,
           metrics: dict[str, Any], pop: pl.DataFrame) -> None:
    """One run for the trajectories, one per model (final logreg/hgb registered)."""
    from . import tracking

    inputs = [paths.tweets, paths.threads]
    logged = {"sentiment": params.get("sentiment"), "outcome": sec}
    with tracking.start_run(EXPERIMENT, "trajectories", params=logged, seed=seed, inputs=inputs,
                            root=paths.root):
        tracking.log_metrics({f"labels.{k}": v for k, v in metrics["labels"].items()})
        tracking.log_metrics({f"threads.{k}": v for k, v in metrics["threads"].items()})
        tracking.log_metrics({"recovery_rate": metrics["recovery_rate"]})
        tracking.log_artifact(paths.processed / "outcome_findings.parquet")
        tracking.log_artifact(paths.processed / "outcome_transitions.parquet")
    cv = metrics["model"]
    finals = fit_final_models(pop, sec, seed) if "skipped" not in cv else {}
    for name in MODEL_NAMES:
        m = cv.get("models", {}).get(name, {})
        tags = {"scrm.model": name}
        if "skipped" in cv:
            tags["scrm.skipped"] = cv["skipped"][:250]
        with tracking.start_run(EXPERIMENT, name, params=logged, seed=seed, inputs=inputs,
                                tags=tags, root=paths.root):
            tracking.log_metrics({"n": cv["n"], "n_positive": cv["n_positive"],
                                  "oof_auc": m.get("oof_auc"), "fold_auc_mean": m.get("fold_auc_mean"),
                                  "fold_auc_sd": m.get("fold_auc_sd")})
            if name == "logreg":
                tracking.log_dict(metrics["odds_ratios"], "odds_ratios.json")
            if name in finals and sec.get("model", {}).get("log_models", True):
                _log_model(finals[name], feature_matrix(pop), f"scrm-outcome-{name}")


def _log_model(model: Any, X: Any, registered_name: str) -> None:
    """Register a final model; a model MLflow refuses to serialise is recorded, not fatal.

    MLflow's skops format rejects HistGradientBoosting's tree predictor as an untrusted type unless
    the caller lists it, which ``tracking.log_sklearn_model`` cannot do yet; the run then carries a
    ``model_not_logged.json`` artifact with the reason and the stage goes on.
    """
    from . import tracking

    try:
        tracking.log_sklearn_model(model, X, registered_name=registered_name)
    except Exception as exc:  # noqa: BLE001 - only MLflow's own refusal is tolerated
        if type(exc).__name__ != "MlflowException":
            raise
        tracking.log_dict({"model_not_logged": registered_name,
                           "reason": str(exc).split("\n", 1)[0]}, "model_not_logged.json")
