"""One row per customer opening: the opening, the brand's first reply, the customer's last turn after
it, and the trajectory label (definitions in :mod:`scrm.outcome`).

The opening, its brand, whether it was answered and which brand tweet is the first reply come from
the shared openings table (:mod:`scrm.data.openings`); sentiment comes from the ``sentiment`` stage's
table. This module only adds what the outcome question needs on top: the customer's turns before and
after that reply, the sentiment classes and the label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from .reply_features import add_template_features, normalise_for_template, reply_features

if TYPE_CHECKING:
    from ..config import OutcomeSettings

LABELS: tuple[str, ...] = ("recovered", "stayed_negative", "deteriorated", "stable_non_negative",
                           "no_follow_up", "unanswered")
CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
# columns of tweets.parquet the trajectories read (plus ``sentiment``, joined from sentiment.parquet)
TWEET_COLUMNS: tuple[str, ...] = ("tweet_id", "author_id", "role", "created_at", "text", "thread_id",
                                  "turn")


def sentiment_class(expr: pl.Expr, negative_threshold: float, positive_threshold: float) -> pl.Expr:
    """negative (<= neg), positive (>= pos), else neutral; null stays null."""
    return (pl.when(expr.is_null()).then(None)
            .when(expr <= negative_threshold).then(pl.lit("negative"))
            .when(expr >= positive_threshold).then(pl.lit("positive"))
            .otherwise(pl.lit("neutral")))


def with_sentiment(tweets: pl.DataFrame, sentiment: pl.DataFrame) -> pl.DataFrame:
    """``tweets`` with the ``sentiment`` stage's score of each tweet (null for unscored roles)."""
    return tweets.join(sentiment.select("tweet_id", "sentiment"), on="tweet_id", how="left")


def conversation_frame(tweets: pl.DataFrame, openings: pl.DataFrame, threads: pl.DataFrame,
                       settings: OutcomeSettings) -> pl.DataFrame:
    """One row per customer opening with its first reply, the customer's last turn after it and the
    trajectory label.

    ``tweets`` must carry a ``sentiment`` column (customer tweets at least, see
    :func:`with_sentiment`). The reply is the opening's ``first_response_id`` in ``openings`` (the
    definition chosen in ``openings.answered_definition``). The customer is the opening's author;
    other customers chiming in are ignored. "After the first reply" is by thread turn order
    (created_at, tweet_id). ``thread_brand`` is kept from ``threads`` for inspection only.
    """
    neg, pos = settings.negative_threshold, settings.positive_threshold
    op = (openings.lazy()
          .select("thread_id", "multi_brand", "opening_tweet_id", "opening_at", "customer_id",
                  "brand", "brand_source", "answered", reply_tweet_id="first_response_id")
          .join(threads.lazy().select("thread_id", thread_brand="brand"), on="thread_id",
                how="left"))
    tw = (tweets.lazy().select(*TWEET_COLUMNS, "sentiment")
          .join(op.select("thread_id", "customer_id"), on="thread_id", how="inner"))
    first = (op.select("thread_id", "reply_tweet_id").drop_nulls("reply_tweet_id")
             .join(tw.select(reply_tweet_id="tweet_id", reply_author="author_id",
                             reply_at="created_at", reply_text="text", reply_turn="turn"),
                   on="reply_tweet_id", how="inner")
             .drop("reply_tweet_id"))
    cust = (tw.filter((pl.col("role") == "customer") & (pl.col("author_id") == pl.col("customer_id")))
            .join(first.select("thread_id", "reply_turn"), on="thread_id", how="left"))
    opening = tw.select(opening_tweet_id="tweet_id", opening_sentiment="sentiment",
                        opening_text="text")
    before = (cust.filter(pl.col("reply_turn").is_null() | (pl.col("turn") < pl.col("reply_turn")))
              .group_by("thread_id").agg(n_customer_turns_before_reply=(pl.len() - 1)
                                         .clip(lower_bound=0).cast(pl.Int32)))
    after = (cust.filter(pl.col("turn") > pl.col("reply_turn")).sort("thread_id", "turn")
             .group_by("thread_id", maintain_order=True)
             .agg(n_followups=pl.len().cast(pl.Int32), last_tweet_id=pl.col("tweet_id").last(),
                  last_at=pl.col("created_at").last(), last_sentiment=pl.col("sentiment").last(),
                  last_text=pl.col("text").last()))
    df = (op.join(opening, on="opening_tweet_id", how="left")
          .join(first, on="thread_id", how="left")
          .join(before, on="thread_id", how="left")
          .join(after, on="thread_id", how="left")
          .with_columns(n_followups=pl.col("n_followups").fill_null(0),
                        n_customer_turns_before_reply=pl.col("n_customer_turns_before_reply")
                        .fill_null(0),
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


def build_outcome(tweets: pl.DataFrame, openings: pl.DataFrame, threads: pl.DataFrame,
                  settings: OutcomeSettings) -> pl.DataFrame:
    """Trajectories + first-reply predictors (template-ness against all first replies, leave-one-out)."""
    conv = conversation_frame(tweets, openings, threads, settings)
    feats = reply_features(conv.filter(pl.col("answered")), settings).with_columns(
        reply_norm=normalise_for_template("reply_text", settings.signoff_patterns))
    feats = add_template_features(feats, feats, settings)
    keep = [c for c in feats.columns if c not in conv.columns]
    return conv.join(feats.select("thread_id", *keep), on="thread_id", how="left",
                     maintain_order="left")


def model_population(outcome: pl.DataFrame) -> pl.DataFrame:
    """Threads that opened negative and in which the customer spoke again after the first reply."""
    return outcome.filter(pl.col("label").is_in(["recovered", "stayed_negative"]))
