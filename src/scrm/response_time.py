"""Response time: per-brand service levels, unanswered openings, survival curves, latency drivers.

Definitions (the same in the report, the tests and the README)
    *Opening*: a thread root written by a customer that references no parent at all
    (``threads.is_opening``; see :mod:`scrm.data.schema`).
    *First response*: the earliest brand tweet (by ``created_at``, then ``tweet_id``) whose
    ``parent_id`` is the opening, i.e. a direct reply. Its author is the ``responder``.
    *Latency* (seconds) = first response ``created_at`` - opening ``created_at``. A reply stamped
    before its opening (clock errors in the raw file) is clipped to 0 and counted.
    *Censoring*: unanswered openings are not dropped. They are right-censored at the end of the
    observed data (the latest ``created_at`` of any tweet) or, when ``response_time.horizon_hours``
    is set, at that many hours after the opening, whichever comes first. With a horizon, a reply
    later than the horizon also counts as censored at the horizon. ``duration_s`` / ``event`` are
    the survival pair (``event`` = a reply was observed within the follow-up).
    *Later turns*: every brand tweet whose parent is a customer tweet is a reply; its latency is
    measured from that customer tweet. ``later_turns`` are the replies whose parent is not an
    opening (customer follow-ups inside a conversation).
    *Brand of an opening*: ``threads.brand`` (the brand replying most in the thread); when no brand
    ever replies in the thread, the first ``@handle`` in the opening text that is the author of any
    brand tweet in the data (case-insensitive); else ``(unknown)``. ``brand_source`` says which.

Features per opening, all computed from information available at the opening time
    ``hour_utc`` (0-23) and ``weekday_utc`` (1 = Monday ... 7 = Sunday), both in UTC because the
    data carry no user time zone; text surface counts from :func:`scrm.text.surface_counts`
    (``len_chars``, ``n_mentions``, ``n_urls``, ``n_emoji``, ``n_questions``, ``n_exclaims``);
    ``sentiment`` (compound score of the opening, scorer ``sentiment.scorer``, VADER by default);
    ``prior_openings_any`` / ``prior_openings_brand``: openings by the same customer strictly
    earlier, to any brand / to this brand; ``inbound_load``: customer tweets (any turn) in threads
    of this brand in the ``load_window_minutes`` before the opening, ``[t - w, t)`` (polars rolling
    window per brand); ``backlog``: earlier openings of this brand (opened within the last
    ``backlog_window_hours``, null = no limit) that have no first response yet at the opening time.

Targets
    ``answered_within_1h`` (classification; openings that were unanswered and followed for less
    than an hour have an unknown label, ``within_1h_known`` = False, and are left out of that model)
    and ``log1p(latency_s)`` for answered openings (regression). Models are trained on the earliest
    ``train_fraction`` of openings and tested on the later ones (a time split: no future leaks),
    tracked in MLflow (experiment ``response_time``) through :mod:`scrm.tracking`.

Outputs of the stage
    ``data/processed/response_time.parquet``: one row per opening (ids, ``customer_id``, brand,
    ``brand_source``, ``opening_at``, the features above, ``answered``, ``first_response_id`` /
    ``_at``, ``responder``, ``latency_s``, ``answered_within_1h``, ``within_1h_known``,
    ``censor_at`` (end of follow-up), ``duration_s``, ``event``, ``split``).
    ``data/processed/service_table.parquet``: one row per brand (see :func:`service_table`).
    ``reports/metrics/response_time.json``: overall figures, headline brands, log-rank, models.
    ``reports/plots/latency_by_brand.csv`` and ``km_curves.csv`` (``dvc plots show``) and
    ``reports/figures/response_time_importance.png`` (permutation importance).

Survival analysis uses statsmodels (:mod:`scrm.stats.survival`): the issue named lifelines, which cannot
be installed next to pandas 3.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .stats import survival
from .errors import DataError, ScrmError
from .text import surface_counts

EXPERIMENT = "response_time"
UNKNOWN_BRAND = "(unknown)"
ALL_BRANDS = "(all)"
WITHIN_1H_S = 3600.0
TEXT_FEATURES = ["len_chars", "n_mentions", "n_urls", "n_emoji", "n_questions", "n_exclaims"]
COUNT_FEATURES = [*TEXT_FEATURES, "prior_openings_any", "prior_openings_brand", "inbound_load",
                  "backlog"]
TIME_FEATURES = ["hour_utc", "weekday_utc"]
NUMERIC_FEATURES = [*TIME_FEATURES, *COUNT_FEATURES, "sentiment"]
FEATURES = ["brand", *NUMERIC_FEATURES]

_TWEET_COLS = ("tweet_id", "author_id", "created_at", "role", "parent_id", "thread_id")
_THREAD_COLS = ("thread_id", "brand", "is_opening", "opening_tweet_id", "opening_author_id",
                "opening_text", "opening_at")


# --------------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The ``response_time`` section of params.yaml, checked once (see params.yaml for meanings)."""

    seed: int = 42
    horizon_hours: float | None = None
    sla_minutes: tuple[int, ...] = (15, 60, 1440)
    load_window_minutes: int = 60
    backlog_window_hours: float | None = 24.0
    train_fraction: float = 0.7
    min_train_rows: int = 30
    min_brand_openings: int = 20
    headline_brands: int = 10
    logrank_brands: int = 5
    km_plot_brands: int = 8
    km_grid_points: int = 80
    km_max_hours: float = 168.0
    baseline_smoothing: float = 10.0
    logistic_c: float = 1.0
    ridge_alpha: float = 1.0
    gbm: dict[str, Any] = field(default_factory=lambda: {
        "max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
        "l2_regularization": 1.0})
    cox: bool = True
    cox_max_rows: int = 100000
    cox_concordance_max_rows: int = 2000
    importance_repeats: int = 5
    importance_max_rows: int = 20000
    n_threads: int = 1
    log_models: bool | tuple[str, ...] = ("logistic", "ridge", "hgb")
    sentiment_scorer: str = "vader"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Settings:
        """Build from the whole params dict; a misspelt or out-of-range key is a clear error."""
        from .config import section

        sec = section(params, "response_time")
        known = {f for f in cls.__dataclass_fields__ if f != "sentiment_scorer"}
        unknown = sorted(set(sec) - known)
        if unknown:
            raise ScrmError(f"params.yaml: unknown key(s) in response_time: {', '.join(unknown)}; "
                            f"known keys: {', '.join(sorted(known))}.")
        kw: dict[str, Any] = dict(sec)
        if "sla_minutes" in kw:
            kw["sla_minutes"] = tuple(int(m) for m in kw["sla_minutes"])
        if isinstance(kw.get("log_models"), (list, tuple)):
            kw["log_models"] = tuple(str(m) for m in kw["log_models"])
        if "gbm" in kw:
            kw["gbm"] = {**cls().gbm, **(kw["gbm"] or {})}
        kw["sentiment_scorer"] = str((params.get("sentiment") or {}).get("scorer", "vader"))
        s = cls(**kw)
        s.check()
        return s

    def logs_model(self, task: str, name: str) -> bool:
        """``log_models``: true (all), false (none) or a list of names (``hgb``, ``task/name``)."""
        if isinstance(self.log_models, bool):
            return self.log_models
        return name in self.log_models or f"{task}/{name}" in self.log_models

    def check(self) -> None:
        def bad(key: str, why: str) -> ScrmError:
            return ScrmError(f"params.yaml: response_time.{key} {why}")

        if not 0.0 < self.train_fraction < 1.0:
            raise bad("train_fraction", f"must be in (0, 1), got {self.train_fraction}")
        if self.horizon_hours is not None and self.horizon_hours <= 0:
            raise bad("horizon_hours", f"must be positive or null, got {self.horizon_hours}")
        if self.backlog_window_hours is not None and self.backlog_window_hours <= 0:
            raise bad("backlog_window_hours", f"must be positive or null, got "
                      f"{self.backlog_window_hours}")
        if self.load_window_minutes <= 0:
            raise bad("load_window_minutes", "must be positive")
        if not self.sla_minutes or any(m <= 0 for m in self.sla_minutes):
            raise bad("sla_minutes", f"must be a list of positive minutes, got {self.sla_minutes}")
        if self.km_grid_points < 2 or self.km_max_hours <= 0:
            raise bad("km_grid_points/km_max_hours", "must be >= 2 points and positive hours")


def sla_label(minutes: int) -> str:
    """15 -> '15m', 60 -> '1h', 1440 -> '24h' (column-name friendly)."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


# --------------------------------------------------------------------------------------------------
# openings: brand, first response, censoring, features
# --------------------------------------------------------------------------------------------------
def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def known_brands(tweets: pl.DataFrame) -> pl.DataFrame:
    """Brand handles seen as authors of brand tweets, keyed by lower case (Twitter ignores case)."""
    return (tweets.lazy().filter(pl.col("role") == "brand")
            .select(pl.col("author_id").alias("mention_brand")).unique()
            .with_columns(handle=pl.col("mention_brand").str.to_lowercase())
            .group_by("handle").agg(pl.col("mention_brand").min())
            .collect())


def mentioned_brand(openings: pl.DataFrame, brands: pl.DataFrame) -> pl.DataFrame:
    """(opening_tweet_id, mention_brand): the first @handle of the text that is a known brand."""
    handles = (openings.lazy().select(
        "opening_tweet_id",
        handle=pl.col("opening_text").str.extract_all(r"@(\w+)"))
        .explode("handle")
        .drop_nulls("handle")
        .with_columns(pos=pl.int_range(pl.len()).over("opening_tweet_id"),
                      handle=pl.col("handle").str.strip_prefix("@").str.to_lowercase()))
    return (handles.join(brands.lazy(), on="handle", how="inner")
            .group_by("opening_tweet_id")
            .agg(pl.col("mention_brand").sort_by("pos").first())
            .collect())


def first_responses(tweets: pl.DataFrame, opening_ids: pl.Series) -> pl.DataFrame:
    """Earliest direct brand reply per opening (first_response_id/_at, responder)."""
    return (tweets.lazy()
            .filter((pl.col("role") == "brand") & pl.col("parent_id").is_in(opening_ids.implode()))
            .sort(["parent_id", "created_at", "tweet_id"])
            .group_by("parent_id", maintain_order=True)
            .agg(first_response_id=pl.col("tweet_id").first(),
                 first_response_at=pl.col("created_at").first(),
                 responder=pl.col("author_id").first())
            .rename({"parent_id": "opening_tweet_id"})
            .collect())


def reply_latencies(tweets: pl.DataFrame, opening_ids: pl.Series) -> pl.DataFrame:
    """Every brand reply to a customer tweet (reply_id, brand, parent_id, to_opening, latency_s)."""
    parents = tweets.lazy().filter(pl.col("role") == "customer").select(
        pl.col("tweet_id").alias("parent_id"), pl.col("created_at").alias("_parent_at"))
    return (tweets.lazy().filter((pl.col("role") == "brand") & pl.col("parent_id").is_not_null())
            .join(parents, on="parent_id", how="inner")
            .select(pl.col("tweet_id").alias("reply_id"), pl.col("author_id").alias("brand"),
                    "parent_id",
                    to_opening=pl.col("parent_id").is_in(opening_ids.implode()),
                    raw_latency_s=_seconds(pl.col("created_at") - pl.col("_parent_at")))
            .with_columns(latency_s=pl.col("raw_latency_s").clip(lower_bound=0.0))
            .sort("reply_id")
            .collect())


def _backlog(op: pl.DataFrame, window_hours: float | None) -> pl.DataFrame:
    """Per opening, earlier openings of its brand still waiting for a first response at that time.

    An earlier opening j is pending at time t when ``s_j < t < end_j`` with ``end_j`` the first
    response time, capped at ``s_j + window``. With ``end_j > s_j`` this count equals
    ``#{s_j < t} - #{end_j <= t}``: two as-of joins on per-brand cumulative counts, O(n log n).
    """
    end = pl.col("first_response_at")
    if window_hours is not None:
        cap = pl.col("opening_at") + pl.duration(microseconds=int(window_hours * 3600e6))
        end = pl.min_horizontal(end, cap)
    base = op.select("brand", "opening_at", _end=end).filter(
        pl.col("_end").is_null() | (pl.col("_end") > pl.col("opening_at")))
    starts = (base.group_by("brand", "opening_at").len().sort("brand", "opening_at")
              .select("brand", pl.col("opening_at").alias("_t"),
                      _n_started=pl.col("len").cum_sum().over("brand")).sort("_t"))
    ends = (base.drop_nulls("_end").group_by("brand", "_end").len().sort("brand", "_end")
            .select("brand", pl.col("_end").alias("_t"),
                    _n_ended=pl.col("len").cum_sum().over("brand")).sort("_t"))
    q = op.select("opening_tweet_id", "brand", _t=pl.col("opening_at")).sort("_t")
    q = q.join_asof(starts, on="_t", by="brand", strategy="backward", allow_exact_matches=False,
                    check_sortedness=False)
    q = q.join_asof(ends, on="_t", by="brand", strategy="backward", allow_exact_matches=True,
                    check_sortedness=False)
    return q.select("opening_tweet_id", backlog=(pl.col("_n_started").fill_null(0)
                                                 - pl.col("_n_ended").fill_null(0)).cast(pl.Int64))


def _inbound_load(tweets: pl.DataFrame, thread_brand: pl.DataFrame, window_minutes: int,
                  ) -> pl.DataFrame:
    """Customer tweets of the brand's threads in ``[t - window, t)`` before each customer tweet."""
    cust = (tweets.lazy().filter(pl.col("role") == "customer")
            .select("tweet_id", "thread_id", "created_at")
            .join(thread_brand.lazy(), on="thread_id", how="left")
            .with_columns(pl.col("brand").fill_null(UNKNOWN_BRAND), _one=pl.lit(1, pl.Int64))
            .sort("brand", "created_at", "tweet_id"))
    return cust.select(
        pl.col("tweet_id").alias("opening_tweet_id"),
        inbound_load=pl.col("_one").rolling_sum_by("created_at", f"{int(window_minutes)}m",
                                                   closed="left").over("brand"),
    ).collect()


def build_openings(tweets: pl.DataFrame, threads: pl.DataFrame, settings: Settings,
                   scorer: Any | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per opening with brand, features, targets and the survival pair; plus counters."""
    from .sentiment import get_scorer, score_frame

    _require(tweets, _TWEET_COLS, "tweets.parquet")
    _require(threads, _THREAD_COLS, "threads.parquet")
    end_of_data = tweets["created_at"].max()
    op = threads.filter(pl.col("is_opening")).select(
        "thread_id", "opening_tweet_id", customer_id=pl.col("opening_author_id"),
        opening_at=pl.col("opening_at"), opening_text=pl.col("opening_text"),
        thread_brand=pl.col("brand"))
    ids = op["opening_tweet_id"]
    op = (op.join(mentioned_brand(op, known_brands(tweets)), on="opening_tweet_id", how="left")
          .with_columns(
              brand=pl.coalesce("thread_brand", "mention_brand", pl.lit(UNKNOWN_BRAND)),
              brand_source=pl.when(pl.col("thread_brand").is_not_null()).then(pl.lit("thread"))
              .when(pl.col("mention_brand").is_not_null()).then(pl.lit("mention"))
              .otherwise(pl.lit("none")))
          .join(first_responses(tweets, ids), on="opening_tweet_id", how="left")
          .with_columns(answered=pl.col("first_response_id").is_not_null(),
                        _raw_latency=_seconds(pl.col("first_response_at") - pl.col("opening_at"))))
    negative = int(op.select((pl.col("_raw_latency") < 0).sum()).item() or 0)

    follow_end = _seconds(pl.lit(end_of_data) - pl.col("opening_at"))
    follow = follow_end
    if settings.horizon_hours is not None:
        follow = pl.min_horizontal(follow_end, pl.lit(settings.horizon_hours * 3600.0))
    op = op.with_columns(
        latency_s=pl.col("_raw_latency").clip(lower_bound=0.0),
        _follow_end=follow_end, _follow=follow,
    ).with_columns(
        answered_within_1h=pl.col("answered")
        & (pl.col("latency_s") <= WITHIN_1H_S).fill_null(False),
        event=pl.col("answered") & (pl.col("latency_s") <= pl.col("_follow")).fill_null(False),
    ).with_columns(
        within_1h_known=pl.col("answered_within_1h") | (pl.col("_follow_end") >= WITHIN_1H_S),
        duration_s=pl.when(pl.col("event")).then(pl.col("latency_s")).otherwise(pl.col("_follow")),
        censor_at=pl.col("opening_at") + pl.duration(
            microseconds=(pl.col("_follow") * 1e6).round().cast(pl.Int64)),
    )

    # features known at the opening time
    thread_brand = (threads.select("thread_id", "brand")
                    .join(op.select("thread_id", pl.col("brand").alias("_ob")), on="thread_id",
                          how="left")
                    .select("thread_id", brand=pl.coalesce("_ob", "brand")))
    op = (op.with_columns(
        *[e.cast(pl.Int64) for e in surface_counts("opening_text")],
        hour_utc=pl.col("opening_at").dt.hour().cast(pl.Int32),
        weekday_utc=pl.col("opening_at").dt.weekday().cast(pl.Int32),
        prior_openings_any=(pl.col("opening_at").rank("min").over("customer_id") - 1)
        .cast(pl.Int64),
        prior_openings_brand=(pl.col("opening_at").rank("min").over(["customer_id", "brand"]) - 1)
        .cast(pl.Int64),
    )
        .join(_inbound_load(tweets, thread_brand, settings.load_window_minutes),
              on="opening_tweet_id", how="left")
        .join(_backlog(op, settings.backlog_window_hours), on="opening_tweet_id", how="left"))
    scorer = scorer or get_scorer(settings.sentiment_scorer)
    op = score_frame(op, "opening_text", scorer, "sentiment")
    op = op.with_columns(split=time_split(op, settings.train_fraction)).sort(
        "opening_at", "opening_tweet_id")
    cols = ["opening_tweet_id", "thread_id", "customer_id", "brand", "brand_source", "opening_at",
            *NUMERIC_FEATURES, "answered", "first_response_id", "first_response_at", "responder",
            "latency_s", "answered_within_1h", "within_1h_known", "censor_at", "duration_s",
            "event", "split", "opening_text"]
    info = {"end_of_data": end_of_data, "negative_latency_clipped": negative}
    return op.select(cols), info


def time_split(op: pl.DataFrame, train_fraction: float) -> pl.Expr:
    """'train' for openings before the cut time, 'test' from it on (ties stay on one side).

    The cut is the opening time at position ``floor(n * train_fraction)`` in time order.
    """
    n = op.height
    if n == 0:
        return pl.lit("train")
    times = op["opening_at"].sort()
    cut = times[min(int(math.floor(n * train_fraction)), n - 1)]
    return pl.when(pl.col("opening_at") < pl.lit(cut)).then(pl.lit("train")).otherwise(
        pl.lit("test"))


def _require(df: pl.DataFrame, cols: tuple[str, ...], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; rerun `scrm prepare` "
                        "(the data contract is in src/scrm/data/schema.py).", name)


# --------------------------------------------------------------------------------------------------
# service table, KM curves, log-rank
# --------------------------------------------------------------------------------------------------
def _latency_stats(prefix: str, col: str = "latency_s") -> list[pl.Expr]:
    c = pl.col(col)
    return [c.median().alias(f"{prefix}median_latency_s"),
            c.quantile(0.9, "linear").alias(f"{prefix}p90_latency_s")]


def service_table(op: pl.DataFrame, replies: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """One row per brand: volume, answered share, latency quantiles, SLA shares, KM median, replies.

    Shares within a limit count unanswered openings in the denominator (a customer who never got
    an answer was not served within the hour either). ``km_median_latency_s`` uses the censored
    survival curve instead, so late openings near the end of the data do not bias it.
    """
    sla = [pl.col("latency_s").le(m * 60.0).fill_null(False).mean().alias(
        f"share_within_{sla_label(m)}") for m in settings.sla_minutes]
    lat = pl.col("latency_s")
    table = op.group_by("brand").agg(
        pl.len().cast(pl.Int64).alias("n_openings"),
        pl.col("answered").sum().cast(pl.Int64).alias("n_answered"),
        pl.col("answered").mean().alias("answered_share"),
        *_latency_stats(""),
        *sla,
    )
    km = [{"brand": b, "km_median_latency_s": survival.km_quantile(g["duration_s"], g["event"])}
          for (b,), g in op.group_by("brand")]
    km_df = pl.DataFrame(km, schema={"brand": pl.String, "km_median_latency_s": pl.Float64})
    rep = replies.group_by("brand").agg(
        pl.len().cast(pl.Int64).alias("n_replies"), *_latency_stats("reply_"),
        n_later_replies=(~pl.col("to_opening")).sum().cast(pl.Int64),
        later_median_latency_s=lat.filter(~pl.col("to_opening")).median(),
        later_p90_latency_s=lat.filter(~pl.col("to_opening")).quantile(0.9, "linear"))
    return (table.join(km_df, on="brand", how="left").join(rep, on="brand", how="left")
            .with_columns(pl.col("n_replies", "n_later_replies").fill_null(0))
            .sort(["n_openings", "brand"], descending=[True, False]))


def overall_summary(op: pl.DataFrame, replies: pl.DataFrame, settings: Settings,
                    info: dict[str, Any]) -> dict[str, Any]:
    """Headline figures over all openings (same definitions as the service table)."""
    lat = pl.col("latency_s")
    row = op.select(
        n_openings=pl.len(), n_answered=pl.col("answered").sum(),
        answered_share=pl.col("answered").mean(), median_latency_s=lat.median(),
        p90_latency_s=lat.quantile(0.9, "linear"),
        n_censored=(~pl.col("event")).sum(),
        n_brands=pl.col("brand").n_unique(),
        n_brand_from_mention=(pl.col("brand_source") == "mention").sum(),
        n_brand_unknown=(pl.col("brand_source") == "none").sum(),
        **{f"share_within_{sla_label(m)}": lat.le(m * 60.0).fill_null(False).mean()
           for m in settings.sla_minutes},
    ).row(0, named=True)
    out = {k: _clean(v) for k, v in row.items()}
    out["median_latency_min"] = _clean(None if row["median_latency_s"] is None
                                       else row["median_latency_s"] / 60.0)
    out["km_median_latency_s"] = _clean(survival.km_quantile(op["duration_s"], op["event"]))
    out["end_of_data"] = info["end_of_data"].isoformat() if info.get("end_of_data") else None
    out["horizon_hours"] = settings.horizon_hours
    out["negative_latency_clipped"] = info.get("negative_latency_clipped", 0)

    def reply_block(df: pl.DataFrame) -> dict[str, Any]:
        r = df.select(n=pl.len(), median_latency_s=lat.median(),
                      p90_latency_s=lat.quantile(0.9, "linear")).row(0, named=True)
        return {k: _clean(v) for k, v in r.items()}

    out["replies"] = reply_block(replies)
    out["later_turns"] = reply_block(replies.filter(~pl.col("to_opening")))
    out["replies"]["negative_latency_clipped"] = int(
        replies.select((pl.col("raw_latency_s") < 0).sum()).item() or 0)
    return out


def largest_brands(op: pl.DataFrame, k: int, min_openings: int) -> list[str]:
    """Top-k known brands by openings (ties by name), each with at least ``min_openings``."""
    counts = (op.filter(pl.col("brand") != UNKNOWN_BRAND).group_by("brand").len()
              .filter(pl.col("len") >= min_openings)
              .sort(["len", "brand"], descending=[True, False]))
    return counts["brand"].head(k).to_list()


def km_grid(settings: Settings) -> np.ndarray:
    """Minutes: 0 plus a log-spaced grid up to ``km_max_hours`` (readable on a log axis)."""
    top = settings.km_max_hours * 60.0
    return np.unique(np.round(np.r_[0.0, np.geomspace(0.5, top, settings.km_grid_points - 1)], 3))


def km_curves(op: pl.DataFrame, brands: list[str], settings: Settings) -> pl.DataFrame:
    """KM curves (probability of still waiting for a first response) per brand, in minutes."""
    frame = op.select("brand", duration=pl.col("duration_s") / 60.0, event="event")
    t = survival.km_table(frame, "brand", brands, km_grid(settings), all_label=ALL_BRANDS)
    return t.rename({"t": "minutes", "survival": "still_waiting", "event_prob": "answered_prob"})


def latency_plot_table(op: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Latency quantiles (minutes) per brand with enough openings: the DVC 'distribution' plot."""
    keep = set(largest_brands(op, 10**9, settings.min_brand_openings))
    lat = pl.col("latency_s") / 60.0
    return (op.filter(pl.col("brand").is_in(sorted(keep)) & pl.col("answered"))
            .group_by("brand")
            .agg(n_answered=pl.len(),
                 **{f"{n}_min": lat.quantile(q, "linear").round(3)
                    for n, q in (("p10", .1), ("p25", .25), ("median", .5), ("p75", .75),
                                 ("p90", .9))})
            .join(op.group_by("brand").agg(n_openings=pl.len(),
                                           answered_share=pl.col("answered").mean().round(4)),
                  on="brand", how="left")
            .sort(["median_min", "brand"]))


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------
class BrandMedianRegressor(RegressorMixin, BaseEstimator):
    """Baseline: predict the training median of the target for the brand (global median for brands
    with fewer than ``min_count`` training rows or unseen brands)."""

    def __init__(self, brand_col: str = "brand", min_count: int = 20) -> None:
        self.brand_col = brand_col
        self.min_count = min_count

    def fit(self, X: Any, y: Any) -> BrandMedianRegressor:
        import pandas as pd

        y = np.asarray(y, dtype=float)
        s = pd.Series(y, index=np.asarray(X[self.brand_col], dtype=object))
        g = s.groupby(level=0)
        counts, med = g.size(), g.median()
        self.global_ = float(np.median(y))
        self.medians_ = {str(k): float(v) for k, v in med[counts >= self.min_count].items()}
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        brands = np.asarray(X[self.brand_col], dtype=object)
        return np.array([self.medians_.get(str(b), self.global_) for b in brands], dtype=float)


class BrandRateClassifier(ClassifierMixin, BaseEstimator):
    """Baseline: the brand's training share of positives, shrunk to the overall share
    (m-estimate, ``smoothing`` pseudo-rows) so small brands do not get 0 or 1."""

    def __init__(self, brand_col: str = "brand", smoothing: float = 10.0) -> None:
        self.brand_col = brand_col
        self.smoothing = smoothing

    def fit(self, X: Any, y: Any) -> BrandRateClassifier:
        import pandas as pd

        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.prior_ = float(y.mean()) if y.size else 0.5
        s = pd.Series(y, index=np.asarray(X[self.brand_col], dtype=object))
        g = s.groupby(level=0)
        pos, n = g.sum(), g.size()
        rate = (pos + self.smoothing * self.prior_) / (n + self.smoothing)
        self.rates_ = {str(k): float(v) for k, v in rate.items()}
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        brands = np.asarray(X[self.brand_col], dtype=object)
        p = np.array([self.rates_.get(str(b), self.prior_) for b in brands], dtype=float)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _linear_features(settings: Settings) -> Any:
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


def _tree_features(settings: Settings) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer([
        ("brand", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan,
                                 min_frequency=settings.min_brand_openings), ["brand"]),
        ("num", "passthrough", NUMERIC_FEATURES),
    ])


def make_classifiers(settings: Settings) -> dict[str, Any]:
    """Baselines first, then linear and gradient boosting (all consume the raw feature frame)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return {
        "dummy": DummyClassifier(strategy="prior"),
        "brand_rate": BrandRateClassifier(smoothing=settings.baseline_smoothing),
        "logistic": Pipeline([("features", _linear_features(settings)),
                              ("model", LogisticRegression(C=settings.logistic_c, max_iter=2000))]),
        "hgb": Pipeline([("features", _tree_features(settings)),
                         ("model", HistGradientBoostingClassifier(
                             **settings.gbm, categorical_features=[0], early_stopping=False,
                             random_state=settings.seed))]),
    }


def make_regressors(settings: Settings) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    return {
        "brand_median": BrandMedianRegressor(min_count=settings.min_brand_openings),
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
        "auc": _clean(roc_auc_score(y, p)) if both else None,
        "average_precision": _clean(average_precision_score(y, p)) if y.sum() > 0 else None,
        "brier": _clean(brier_score_loss(y, p, labels=[0, 1])),
        "log_loss": _clean(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "n_test": int(y.size),
        "test_positive_share": _clean(y.mean()) if y.size else None,
    }


def regression_metrics(y_log: np.ndarray, pred_log: np.ndarray) -> dict[str, Any]:
    """MAE in minutes after back-transforming log1p(seconds); R^2 on the log scale it was fit on."""
    from sklearn.metrics import r2_score

    err_min = np.abs(np.expm1(pred_log) - np.expm1(y_log)) / 60.0
    return {
        "mae_minutes": _clean(err_min.mean()),
        "median_ae_minutes": _clean(np.median(err_min)),
        "r2_log": _clean(r2_score(y_log, pred_log)) if y_log.size > 1 else None,
        "n_test": int(y_log.size),
    }


@dataclass
class ModelResult:
    task: str
    name: str
    metrics: dict[str, Any]
    model: Any = None
    X_train: Any = None
    status: str = "ok"
    reason: str = ""


def fit_models(op: pl.DataFrame, settings: Settings) -> list[ModelResult]:
    """Fit every model on the train split and score it on the test split; skip with a reason when
    a split is too small or has a single class (never crash on a small sample)."""
    from threadpoolctl import threadpool_limits

    results: list[ModelResult] = []
    cls = op.filter(pl.col("within_1h_known"))
    reg = op.filter(pl.col("answered"))
    tasks = [("within_1h", cls, make_classifiers(settings)),
             ("log_latency", reg, make_regressors(settings))]
    with threadpool_limits(limits=settings.n_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        for task, data, models in tasks:
            tr, te = data.filter(pl.col("split") == "train"), data.filter(pl.col("split") == "test")
            if task == "within_1h":
                y_tr = tr["answered_within_1h"].cast(pl.Int64).to_numpy()
                y_te = te["answered_within_1h"].cast(pl.Int64).to_numpy()
            else:
                y_tr = np.log1p(tr["latency_s"].to_numpy())
                y_te = np.log1p(te["latency_s"].to_numpy())
            reason = ""
            if tr.height < settings.min_train_rows:
                reason = f"{tr.height} training rows < min_train_rows={settings.min_train_rows}"
            elif te.height == 0:
                reason = "no test rows after the time split"
            elif task == "within_1h" and len(np.unique(y_tr)) < 2:
                reason = "the training split has a single class"
            base = {"n_train": tr.height, "n_test": te.height}
            if reason:
                results.extend(ModelResult(task, n, base, status="skipped", reason=reason)
                               for n in models)
                continue
            X_tr, X_te = model_frame(tr), model_frame(te)
            for name, model in models.items():
                model.fit(X_tr, y_tr)
                if task == "within_1h":
                    m = classification_metrics(y_te, model.predict_proba(X_te)[:, 1])
                    m["train_positive_share"] = _clean(y_tr.mean())
                else:
                    m = regression_metrics(y_te, model.predict(X_te))
                results.append(ModelResult(task, name, {**base, **m}, model=model, X_train=X_tr))
    return results


def permutation_importances(results: list[ModelResult], op: pl.DataFrame,
                            settings: Settings) -> dict[str, dict[str, dict[str, float]]]:
    """Permutation importance of the boosting models on the test split (seeded, 1 thread)."""
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        if r.status != "ok" or r.name != "hgb":
            continue
        if r.task == "within_1h":
            te = op.filter(pl.col("within_1h_known") & (pl.col("split") == "test"))
            y = te["answered_within_1h"].cast(pl.Int64).to_numpy()
            scoring = "roc_auc" if len(np.unique(y)) == 2 else "neg_brier_score"
        else:
            te = op.filter(pl.col("answered") & (pl.col("split") == "test"))
            y = np.log1p(te["latency_s"].to_numpy())
            scoring = "neg_mean_absolute_error"
        if te.height < 2:
            continue
        if te.height > settings.importance_max_rows:
            te = te.sample(settings.importance_max_rows, seed=settings.seed)
            y = (te["answered_within_1h"].cast(pl.Int64).to_numpy() if r.task == "within_1h"
                 else np.log1p(te["latency_s"].to_numpy()))
        # the tree pipeline maps each raw feature to one column, in FEATURES order: transform
        # once and permute the encoded columns (same result, the encoder does not run per repeat)
        with threadpool_limits(limits=settings.n_threads):
            Z = r.model[:-1].transform(model_frame(te))
            pi = permutation_importance(r.model[-1], Z, y, scoring=scoring,
                                        n_repeats=settings.importance_repeats,
                                        random_state=settings.seed, n_jobs=1)
        out[r.task] = {"scoring": scoring,  # type: ignore[dict-item]
                       **{f: {"mean": _clean(m), "std": _clean(s)}
                          for f, m, s in zip(FEATURES, pi.importances_mean, pi.importances_std,
                                             strict=True)}}
    return out


def cox_model(op: pl.DataFrame, settings: Settings) -> dict[str, Any]:
    """Cox model of the time to first response, stratified by brand (rare brands pooled).

    Fitted on the train split (a seeded sample of ``cox_max_rows`` at most: PHReg's cost grows
    fast with rows) with features standardised on train; Harrell's C on the test split, pairs
    within the same brand stratum. A hazard ratio > 1 means a faster reply.
    """
    tr, te = op.filter(pl.col("split") == "train"), op.filter(pl.col("split") == "test")
    if tr.height > settings.cox_max_rows:
        tr = tr.sample(settings.cox_max_rows, seed=settings.seed).sort("opening_at",
                                                                      "opening_tweet_id")
    if tr.height < settings.min_train_rows or tr["event"].sum() == 0:
        return {"status": "skipped", "reason": "too few training rows or no observed replies"}
    X_tr = tr.select(NUMERIC_FEATURES).cast(pl.Float64).to_numpy()
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    keep = sd > 0
    names = [n for n, k in zip(NUMERIC_FEATURES, keep, strict=True) if k]
    frequent = set(largest_brands(tr, 10**9, settings.min_brand_openings))

    def strata(df: pl.DataFrame) -> np.ndarray:
        return np.array([b if b in frequent else "(other)" for b in df["brand"].to_list()])

    def design(df: pl.DataFrame) -> np.ndarray:
        X = df.select(NUMERIC_FEATURES).cast(pl.Float64).to_numpy()
        return ((X - mu) / np.where(sd > 0, sd, 1.0))[:, keep]

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = survival.cox_fit(tr["duration_s"].to_numpy() / 60.0,
                                   tr["event"].cast(pl.Int64).to_numpy(), design(tr), names,
                                   strata=strata(tr))
    except (np.linalg.LinAlgError, ValueError) as exc:
        return {"status": "skipped", "reason": f"Cox fit failed: {exc}"}
    out: dict[str, Any] = {"status": "ok", "n_train": tr.height, "n_test": te.height,
                           "coefficients": fit["coefficients"],
                           "log_likelihood": fit["log_likelihood"], "c_index": None}
    if te.height and np.all(np.isfinite(fit["params"])):
        risk = design(te) @ fit["params"]
        out["c_index"] = _clean(survival.concordance(
            te["duration_s"].to_numpy(), te["event"].cast(pl.Int64).to_numpy(), risk,
            strata=strata(te), max_rows=settings.cox_concordance_max_rows, seed=settings.seed))
    return out


def importance_figure(importances: dict[str, Any], target: Path, note: str = "") -> Path:
    """Bar chart of permutation importances (one panel per task), PNG via the atomic writer.

    Without any fitted model (tiny data) the PNG says why, so the declared DVC output always exists.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    if not importances:
        fig, ax = plt.subplots(figsize=(6.5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No permutation importance: no boosting model was fitted.\n" + note,
                ha="center", va="center", wrap=True)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        return target
    titles = {"within_1h": "answered within 1 h (drop in AUC)",
              "log_latency": "log latency (increase in MAE, log scale)"}
    fig, axes = plt.subplots(1, len(importances), figsize=(6.5 * len(importances), 5),
                             squeeze=False)
    order = sorted(importances, key=lambda t: (t != "within_1h", t))
    for ax, task in zip(axes[0], order, strict=True):
        imp = importances[task]
        feats = sorted((f for f in imp if f != "scoring"), key=lambda f: imp[f]["mean"] or 0.0)
        ax.barh(feats, [imp[f]["mean"] or 0.0 for f in feats],
                xerr=[imp[f]["std"] or 0.0 for f in feats], color="#4c72b0")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(titles.get(task, task) + f"\nscoring: {imp['scoring']}", fontsize=10)
        ax.set_xlabel("permutation importance (test split)")
    fig.suptitle("What drives brand response time (gradient boosting)")
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return target


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def _clean(v: Any) -> Any:
    """JSON-safe, rounded scalar (NaN/inf -> None, numpy -> python, 6 decimals)."""
    if v is None or isinstance(v, (bool, np.bool_, str)):
        return bool(v) if isinstance(v, np.bool_) else v
    if isinstance(v, (int, np.integer)):
        return int(v)
    return survival._num(v)


def _brand_rows(table: pl.DataFrame, brands: list[str]) -> dict[str, dict[str, Any]]:
    keep = ["n_openings", "n_answered", "answered_share", "median_latency_s", "p90_latency_s",
            "km_median_latency_s", *[c for c in table.columns if c.startswith("share_within_")],
            "reply_median_latency_s", "later_median_latency_s"]
    rows = table.filter(pl.col("brand").is_in(brands)).to_dicts()
    return {r["brand"]: {k: _clean(r[k]) for k in keep} for r in rows}


def run(paths: Any, params: dict[str, Any]) -> dict[str, Any]:
    """DVC stage ``response_time``: openings table, service table, KM/log-rank, models, plots."""
    from . import io as sio

    settings = Settings.from_params(params)
    for p in (paths.tweets, paths.threads):
        if not p.exists():
            raise ScrmError(f"{p} not found: run `scrm fetch` and `scrm prepare` first.")
    paths.ensure()
    outputs = {"parquet": paths.processed / "response_time.parquet",
               "table": paths.processed / "service_table.parquet",
               "latency": paths.plots / "latency_by_brand.csv",
               "km": paths.plots / "km_curves.csv",
               "figure": paths.figures / "response_time_importance.png",
               "metrics": paths.metrics / "response_time.json"}
    for target in outputs.values():  # temp files a killed run of this stage left behind
        sio.cleanup_stale_tmp(target.parent, target.name)
    tweets = pl.read_parquet(paths.tweets, columns=list(_TWEET_COLS))
    threads = pl.read_parquet(paths.threads, columns=list(_THREAD_COLS))

    op, info = build_openings(tweets, threads, settings)
    replies = reply_latencies(tweets, op["opening_tweet_id"])
    table = service_table(op, replies, settings)
    overall = overall_summary(op, replies, settings, info)
    headline = largest_brands(op, settings.headline_brands, 1)
    lr_brands = largest_brands(op, settings.logrank_brands, settings.min_brand_openings)
    lr_data = op.filter(pl.col("brand").is_in(lr_brands))
    logrank = survival.logrank(lr_data["duration_s"].to_numpy() / 60.0,
                               lr_data["event"].cast(pl.Int64).to_numpy(),
                               lr_data["brand"].to_numpy())
    km = km_curves(op, largest_brands(op, settings.km_plot_brands, settings.min_brand_openings),
                   settings)
    lat_plot = latency_plot_table(op, settings)

    results = fit_models(op, settings)
    importances = permutation_importances(results, op, settings)
    cox = cox_model(op, settings) if settings.cox else {"status": "skipped", "reason": "cox: false"}

    sio.write_parquet(op.drop("opening_text"), outputs["parquet"])
    sio.write_parquet(table, outputs["table"])
    sio.write_csv(lat_plot, outputs["latency"])
    sio.write_csv(km, outputs["km"])
    skipped = sorted({r.reason for r in results if r.status != "ok"})
    importance_figure(importances, outputs["figure"], note="; ".join(skipped))

    split = op.group_by("split").agg(n=pl.len(), first=pl.col("opening_at").min(),
                                     last=pl.col("opening_at").max())
    split_info = {r["split"]: {"n_openings": r["n"], "from": r["first"].isoformat(),
                               "to": r["last"].isoformat()} for r in split.to_dicts()}
    models: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = dict(r.metrics)
        entry["status"] = r.status
        if r.reason:
            entry["reason"] = r.reason
        models.setdefault(r.task, {})[r.name] = entry
    models["cox"] = {k: v for k, v in cox.items() if k != "params"}
    metrics: dict[str, Any] = {
        "overall": overall,
        "brands": _brand_rows(table, headline),
        "logrank": logrank,
        "split": {"train_fraction": settings.train_fraction, **split_info},
        "models": models,
        "importance": importances,
    }
    sio.write_json(outputs["metrics"], metrics)

    _track(paths, params, settings, metrics, results,
           [outputs["latency"], outputs["km"], outputs["figure"]])
    return metrics


def _log_model(r: ModelResult, registered_name: str) -> None:
    """Log and register a fitted model; MLflow's refusal to serialise one is recorded, not fatal.

    MLflow saves with skops, which refuses types outside the namespaces ``scrm.tracking`` trusts;
    should a model ever hold one, the run carries ``model_not_logged.json`` with the reason and the
    stage goes on (the metrics are logged either way).
    """
    from . import tracking

    try:
        tracking.log_sklearn_model(r.model, r.X_train, registered_name=registered_name)
    except Exception as exc:  # noqa: BLE001 - only MLflow's own refusal is tolerated
        if type(exc).__name__ != "MlflowException":
            raise
        tracking.log_dict({"model_not_logged": registered_name,
                           "reason": str(exc).split("\n", 1)[0]}, "model_not_logged.json")


def _track(paths: Any, params: dict[str, Any], settings: Settings, metrics: dict[str, Any],
           results: list[ModelResult], artifacts: list[Path]) -> None:
    """One MLflow run for the service figures and one per model (registered when fitted)."""
    from . import tracking

    inputs = [paths.tweets, paths.threads]
    sec = {"response_time": asdict(settings), "sentiment": params.get("sentiment") or {}}
    tags = {"scrm.stage": "response_time"}
    with tracking.start_run(EXPERIMENT, "service_levels", params=sec, seed=settings.seed,
                            inputs=inputs, tags=tags, root=paths.root):
        tracking.log_metrics(tracking.flatten(metrics["overall"]))
        tracking.log_metrics({f"logrank.{k}": v for k, v in metrics["logrank"].items()})
        tracking.log_dict(metrics, "response_time.json")
        for a in artifacts:
            if Path(a).exists():
                tracking.log_artifact(a)
    slug = {"within_1h": "within1h", "log_latency": "loglatency"}
    for r in results:
        if r.status != "ok":
            continue
        with tracking.start_run(EXPERIMENT, f"{r.task}/{r.name}",
                                params={**sec, "task": r.task, "model": r.name},
                                seed=settings.seed, inputs=inputs,
                                tags={**tags, "scrm.task": r.task}, root=paths.root):
            tracking.log_metrics(r.metrics)
            if settings.logs_model(r.task, r.name):
                _log_model(r, f"scrm-response-time-{slug[r.task]}-{r.name.replace('_', '-')}")
    cox = metrics["models"].get("cox", {})
    if cox.get("status") == "ok":
        with tracking.start_run(EXPERIMENT, "cox/phreg", params={**sec, "model": "cox"},
                                seed=settings.seed, inputs=inputs,
                                tags={**tags, "scrm.task": "time_to_reply"}, root=paths.root):
            tracking.log_metrics({"c_index": cox.get("c_index"),
                                  "log_likelihood": cox.get("log_likelihood")})
            tracking.log_dict(cox, "cox.json")
