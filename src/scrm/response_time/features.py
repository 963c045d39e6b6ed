"""The per-opening frame of the response-time stage: features known at the opening time, the
targets, the survival pair and the time split, built on the one opening table.

Why here: openings, their brand and "answered" are defined once in :mod:`scrm.data.openings`; this
module only adds what response time needs on top of that table (definitions in the package
docstring, :mod:`scrm.response_time`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import DataError
from ..stats.splits import time_split
from ..text import surface_counts

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings

UNKNOWN_BRAND = "(unknown)"
WITHIN_1H_S = 3600.0
TEXT_FEATURES = ["len_chars", "n_mentions", "n_urls", "n_emoji", "n_questions", "n_exclaims"]
COUNT_FEATURES = [*TEXT_FEATURES, "prior_openings_any", "prior_openings_brand", "inbound_load",
                  "backlog"]
TIME_FEATURES = ["hour_utc", "weekday_utc"]
NUMERIC_FEATURES = [*TIME_FEATURES, *COUNT_FEATURES, "sentiment"]
FEATURES = ["brand", *NUMERIC_FEATURES]

# the columns each input must hold (the stage reads exactly these)
OPENING_INPUT = ("opening_tweet_id", "thread_id", "customer_id", "opening_at", "opening_text",
                 "brand", "brand_source", "answered", "first_response_id", "first_response_at",
                 "responder", "latency_s")
TWEET_INPUT = ("tweet_id", "author_id", "created_at", "role", "parent_id", "thread_id")
THREAD_INPUT = ("thread_id", "brand")
SENTIMENT_INPUT = ("tweet_id", "sentiment")

FRAME_COLUMNS = ["opening_tweet_id", "thread_id", "customer_id", "brand", "brand_source",
                 "opening_at", *NUMERIC_FEATURES, "answered", "first_response_id",
                 "first_response_at", "responder", "latency_s", "answered_within_1h",
                 "within_1h_known", "follow_s", "censor_at", "duration_s", "event", "split",
                 "opening_text"]


def seconds(expr: pl.Expr) -> pl.Expr:
    """A polars duration as float seconds."""
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def survival_pair(op: pl.DataFrame, end_of_data: datetime,
                  horizon_hours: float | None) -> pl.DataFrame:
    """Add the targets and the right-censored survival pair to openings with ``latency_s``.

    Follow-up ends at the end of the data or ``horizon_hours`` after the opening (the earlier);
    ``follow_s`` is its length, ``event`` a response seen within it, ``duration_s`` the latency or
    the follow-up.
    """
    # typed even when there is no tweet at all (no end of data: nothing is followed)
    follow_end = seconds(pl.lit(end_of_data, dtype=pl.Datetime("us", "UTC")) - pl.col("opening_at"))
    follow = follow_end
    if horizon_hours is not None:
        follow = pl.min_horizontal(follow_end, pl.lit(horizon_hours * 3600.0))
    return op.with_columns(_follow_end=follow_end, follow_s=follow).with_columns(
        answered_within_1h=pl.col("answered")
        & (pl.col("latency_s") <= WITHIN_1H_S).fill_null(False),
        event=pl.col("answered") & (pl.col("latency_s") <= pl.col("follow_s")).fill_null(False),
    ).with_columns(
        within_1h_known=pl.col("answered_within_1h") | (pl.col("_follow_end") >= WITHIN_1H_S),
        duration_s=pl.when(pl.col("event")).then(pl.col("latency_s"))
        .otherwise(pl.col("follow_s")),
        censor_at=pl.col("opening_at") + pl.duration(
            microseconds=(pl.col("follow_s") * 1e6).round().cast(pl.Int64)),
    ).drop("_follow_end")


def backlog(op: pl.DataFrame, window_hours: float | None) -> pl.DataFrame:
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


def inbound_load(tweets: pl.DataFrame, thread_brand: pl.DataFrame, window_minutes: int,
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


def opening_sentiment(op: pl.DataFrame, sentiment: pl.DataFrame) -> pl.DataFrame:
    """The opening tweet's score from the sentiment table; every opening must have one."""
    scores = sentiment.select(pl.col("tweet_id").alias("opening_tweet_id"), "sentiment")
    out = op.join(scores, on="opening_tweet_id", how="left")
    missing = out["sentiment"].null_count()
    if missing:
        raise DataError(f"{missing} of {out.height} openings have no sentiment score: rerun "
                        "`scrm sentiment` after `scrm prepare` (params sentiment.roles must "
                        "include customer).", "sentiment.parquet")
    return out


def opening_frame(openings: pl.DataFrame, tweets: pl.DataFrame, threads: pl.DataFrame,
                  sentiment: pl.DataFrame, settings: ResponseTimeSettings,
                  ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per opening (:data:`FRAME_COLUMNS`, by opening time) plus counters for the metrics.

    ``openings`` is the opening table of :mod:`scrm.data.openings`; ``tweets`` give the end of the
    data and the inbound load, ``threads`` the brand of threads that are not openings,
    ``sentiment`` the score of each opening tweet.
    """
    end_of_data = tweets["created_at"].max()
    op = openings.select(OPENING_INPUT).with_columns(pl.col("brand").fill_null(UNKNOWN_BRAND))
    negative = int(op.select(pl.col("first_response_at") < pl.col("opening_at")).sum().item())
    op = survival_pair(op, end_of_data, settings.horizon_hours)

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
        .join(inbound_load(tweets, thread_brand, settings.load_window_minutes),
              on="opening_tweet_id", how="left")
        .join(backlog(op, settings.backlog_window_hours), on="opening_tweet_id", how="left"))
    op = opening_sentiment(op, sentiment)
    op = op.with_columns(split=time_split(op, settings.train_fraction)).sort(
        "opening_at", "opening_tweet_id")
    info = {"end_of_data": end_of_data, "negative_latency_clipped": negative}
    return op.select(FRAME_COLUMNS), info
