"""Sentiment scorers behind one small interface, selected by name in params.yaml.

Stage ``sentiment`` scores every tweet of the chosen roles **once** and writes
``data/processed/sentiment.parquet`` (tweet_id, thread_id, role, sentiment); response time and
outcome read that table instead of scoring again.

A scorer maps texts to a compound score in [-1, 1]. ``vader`` (default) is VADER, made for social
media; its lexicon ships with ``vaderSentiment`` so it works offline. A researcher plugs in another
scorer (for example a local transformer model) by registering a class or by giving a dotted path
``package.module:ClassName`` as ``sentiment.scorer``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from .text import clean_for_sentiment

if TYPE_CHECKING:
    from .config import Paths, SentimentSettings

SENTIMENT_COLUMNS = ("tweet_id", "thread_id", "role", "sentiment")


class SentimentScorer(Protocol):
    name: str

    def score(self, texts: Sequence[str]) -> list[float]:
        """Compound sentiment in [-1, 1] per text (already cleaned)."""
        ...


class VaderScorer:
    """VADER compound score (Hutto & Gilbert 2014)."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._a = SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> list[float]:
        f = self._a.polarity_scores
        return [float(f(t or "")["compound"]) for t in texts]


SCORERS: dict[str, type] = {"vader": VaderScorer}


def get_scorer(name: str = "vader") -> SentimentScorer:
    if name in SCORERS:
        return SCORERS[name]()
    if ":" in name:
        mod, cls = name.split(":", 1)
        return getattr(importlib.import_module(mod), cls)()
    raise ValueError(f"unknown sentiment scorer {name!r}; use one of {sorted(SCORERS)} or "
                     "'package.module:ClassName'")


def score_frame(df: pl.DataFrame, text_col: str = "text", scorer: SentimentScorer | None = None,
                out_col: str = "sentiment") -> pl.DataFrame:
    """Add ``out_col`` with the scorer's compound score of the cleaned text.

    Texts are de-duplicated before scoring (brand templates repeat a lot), which keeps VADER's
    per-text Python cost proportional to distinct texts.
    """
    scorer = scorer or get_scorer()
    cleaned = df.select(clean_for_sentiment(text_col).alias("_clean"))["_clean"]
    uniq = cleaned.unique(maintain_order=True)
    scores = pl.DataFrame({"_clean": uniq,
                           out_col: pl.Series(scorer.score(uniq.fill_null("").to_list()),
                                              dtype=pl.Float64)})
    return df.with_columns(_clean=cleaned).join(scores, on="_clean", how="left",
                                                maintain_order="left").drop("_clean")


def score_tweets(tweets: pl.DataFrame, scorer: SentimentScorer,
                 roles: Sequence[str] = ("customer", "brand")) -> pl.DataFrame:
    """(tweet_id, thread_id, role, sentiment) for the tweets of the given roles, by tweet_id."""
    sub = tweets.filter(pl.col("role").is_in(list(roles))).select("tweet_id", "thread_id", "role",
                                                                   "text")
    return score_frame(sub, "text", scorer, "sentiment").select(SENTIMENT_COLUMNS).sort("tweet_id")


def run(paths: Paths, settings: SentimentSettings) -> dict[str, Any]:
    """DVC stage ``sentiment``: score the tweets once for every later stage."""
    from . import status
    from .io import write_json, write_parquet

    if not paths.tweets.exists():
        raise status.missing_input(paths, "prepare", paths.tweets)
    tweets = pl.read_parquet(paths.tweets, columns=["tweet_id", "thread_id", "role", "text"])
    scored = score_tweets(tweets, get_scorer(settings.scorer), settings.roles)
    state = status.ok()
    if scored.height == 0:
        state = status.no_data(
            status.because(paths, "the input has no tweet to score") if tweets.height == 0 else
            f"none of the {tweets.height:,} tweets is of the roles scored "
            f"({', '.join(settings.roles)}; params sentiment.roles)")
    metrics = {**state, "scorer": settings.scorer, "roles": list(settings.roles),
               "tweets_scored": scored.height,
               "by_role": {r: int(n) for r, n in scored.group_by("role").len().sort("role").iter_rows()}}
    write_parquet(scored, paths.sentiment)
    write_json(paths.metric("sentiment"), metrics)
    return metrics
