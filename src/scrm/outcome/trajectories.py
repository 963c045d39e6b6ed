"""One row per customer opening: the opening, the brand's first reply, the customer's last turn before
and after it, the measured states and the trajectory label (definitions in :mod:`scrm.outcome`).

The opening, its brand, whether it was answered and which brand tweet is the first reply come from
the shared openings table (:mod:`scrm.data.openings`); sentiment comes from the ``sentiment`` stage's
table; the customer's states come from the text measure (:mod:`.measure`). This module only adds
what the outcome question needs on top: the customer's turns before and after that reply, the label,
and the former sentiment-class label kept as a sensitivity (``vader_label``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from .reply_features import add_template_features, normalise_for_template, reply_features

if TYPE_CHECKING:
    from ..config import OutcomeSettings
    from .measure import Measure

# the trajectory of an opening, from the measured states (definitions in :mod:`scrm.outcome`)
LABELS: tuple[str, ...] = ("recovered", "still_unhappy", "procedural", "deteriorated",
                           "stable_not_unhappy", "silent", "unanswered")
# the competing outcomes of an answered unhappy opening (the first is the multinomial's base)
COMPETING: tuple[str, ...] = ("silent", "recovered", "still_unhappy", "procedural")
# the former definition (VADER classes of the opening and the last turn), kept as a sensitivity
VADER_LABELS: tuple[str, ...] = ("recovered", "stayed_negative", "deteriorated", "stable_non_negative",
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
    """One row per customer opening with its first reply, the customer's last turn before and after
    it, and the former sentiment-class label (``vader_label``).

    ``tweets`` must carry a ``sentiment`` column (customer tweets at least, see
    :func:`with_sentiment`). The reply is the opening's ``first_response_id`` in ``openings`` (the
    definition chosen in ``openings.answered_definition``). The customer is the opening's author;
    other customers chiming in are ignored. "After the first reply" is by thread turn order
    (created_at, tweet_id). ``pre_last_*`` is the customer's last tweet after the opening and before
    the first reply (every later tweet when the opening is unanswered): the placebo's "end".
    ``thread_brand`` is kept from ``threads`` for inspection only.
    """
    neg, pos = settings.negative_threshold, settings.positive_threshold
    op = (openings.lazy()
          .select("thread_id", "multi_brand", "opening_tweet_id", "opening_at", "customer_id",
                  "brand", "brand_source", "answered", reply_tweet_id="first_response_id")
          .join(threads.lazy().select("thread_id", thread_brand="brand"), on="thread_id",
                how="left"))
    tw = (tweets.lazy().select(*TWEET_COLUMNS, "sentiment")
          .join(op.select("thread_id", "customer_id", "opening_tweet_id"), on="thread_id",
                how="inner"))
    first = (op.select("thread_id", "reply_tweet_id").drop_nulls("reply_tweet_id")
             .join(tw.select(reply_tweet_id="tweet_id", reply_author="author_id",
                             reply_at="created_at", reply_text="text", reply_turn="turn"),
                   on="reply_tweet_id", how="inner")
             .drop("reply_tweet_id"))
    cust = (tw.filter((pl.col("role") == "customer") & (pl.col("author_id") == pl.col("customer_id")))
            .join(first.select("thread_id", "reply_turn"), on="thread_id", how="left"))
    opening = tw.select(opening_tweet_id="tweet_id", opening_sentiment="sentiment",
                        opening_text="text")
    before = (cust.filter((pl.col("tweet_id") != pl.col("opening_tweet_id"))
                          & (pl.col("reply_turn").is_null() | (pl.col("turn") < pl.col("reply_turn"))))
              .sort("thread_id", "turn").group_by("thread_id", maintain_order=True)
              .agg(n_customer_turns_before_reply=pl.len().cast(pl.Int32),
                   pre_last_tweet_id=pl.col("tweet_id").last(),
                   pre_last_sentiment=pl.col("sentiment").last(),
                   pre_last_text=pl.col("text").last()))
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
    vader = (pl.when(~pl.col("answered")).then(pl.lit("unanswered"))
             .when(pl.col("last_tweet_id").is_null()).then(pl.lit("no_follow_up"))
             .when(open_neg & ~last_neg).then(pl.lit("recovered"))
             .when(open_neg & last_neg).then(pl.lit("stayed_negative"))
             .when(~open_neg & last_neg).then(pl.lit("deteriorated"))
             .otherwise(pl.lit("stable_non_negative")))
    return (df.with_columns(vader_label=vader, vader_recovered=vader == "recovered")
            .sort("thread_id").collect())


def trajectory_label() -> pl.Expr:
    """The label of an opening from its measured ``opening_state`` and ``end_state``."""
    unhappy = pl.col("opening_state") == "unhappy"
    end = pl.col("end_state")
    return (pl.when(~pl.col("answered")).then(pl.lit("unanswered"))
            .when(pl.col("last_tweet_id").is_null()).then(pl.lit("silent"))
            .when(unhappy & (end == "satisfied")).then(pl.lit("recovered"))
            .when(unhappy & (end == "still_unhappy")).then(pl.lit("still_unhappy"))
            .when(unhappy).then(pl.lit("procedural"))
            .when(end == "still_unhappy").then(pl.lit("deteriorated"))
            .otherwise(pl.lit("stable_not_unhappy")))


def build_outcome(tweets: pl.DataFrame, openings: pl.DataFrame, threads: pl.DataFrame,
                  settings: OutcomeSettings, measure: Measure) -> pl.DataFrame:
    """Trajectories, measured states and labels, and first-reply predictors (template-ness against
    all first replies, leave-one-out)."""
    conv = conversation_frame(tweets, openings, threads, settings)
    return outcome_table(conv, measure, settings)


def outcome_table(conv: pl.DataFrame, measure: Measure, settings: OutcomeSettings) -> pl.DataFrame:
    """:func:`conversation_frame` rows + the measure's states, the label and the reply predictors."""
    states = measure.assign(conv)
    labelled = states.with_columns(label=trajectory_label()).with_columns(
        recovered=pl.col("label") == "recovered", silent=pl.col("label") == "silent")
    feats = reply_features(labelled.filter(pl.col("answered")), settings).with_columns(
        reply_norm=normalise_for_template("reply_text", settings.signoff_patterns))
    feats = add_template_features(feats, feats, settings)
    keep = [c for c in feats.columns if c not in labelled.columns]
    return labelled.join(feats.select("thread_id", *keep), on="thread_id", how="left",
                         maintain_order="left")


def answered_unhappy(outcome: pl.DataFrame) -> pl.DataFrame:
    """Answered openings the measure calls unhappy: the population of every recovery question.
    Silence is one of its outcomes, not a reason to drop a thread."""
    return outcome.filter(pl.col("answered") & (pl.col("opening_state") == "unhappy"))


def followed_up(outcome: pl.DataFrame) -> pl.DataFrame:
    """Answered unhappy openings in which the customer spoke again after the first reply."""
    return answered_unhappy(outcome).filter(pl.col("label") != "silent")
