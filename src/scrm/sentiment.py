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


_WORKER: dict[str, SentimentScorer] = {}


def _init_worker(name: str) -> None:
    _WORKER["scorer"] = get_scorer(name)


def _score_chunk(texts: list[str]) -> list[float]:
    return _WORKER["scorer"].score(texts)


def score_parallel(texts: list[str], name: str, n_jobs: int) -> list[float]:
    """Scores of ``texts`` by the scorer named ``name`` in ``n_jobs`` worker processes.

    Why: VADER is pure Python, one core per process. The texts go out in ``4 * n_jobs`` contiguous
    chunks and come back in the same order, and each text's score depends on that text alone, so
    the result equals ``get_scorer(name).score(texts)`` whatever the number of workers.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from scrm.parallel import Profiled

    size = -(-len(texts) // (4 * n_jobs))
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(name,)) as pool:
        return [x for part in pool.map(Profiled(_score_chunk), chunks) for x in part]


def score_frame(df: pl.DataFrame, text_col: str = "text", scorer: SentimentScorer | None = None,
                out_col: str = "sentiment", parallel: tuple[str, int, int] | None = None,
                ) -> pl.DataFrame:
    """Add ``out_col`` with the scorer's compound score of the cleaned text.

    Texts are de-duplicated before scoring (brand templates repeat a lot), which keeps VADER's
    per-text Python cost proportional to distinct texts. ``parallel`` = (scorer name, n_jobs,
    min texts): with at least that many distinct texts and n_jobs > 1 they are scored by
    :func:`score_parallel` (the same scores).
    """
    scorer = scorer or get_scorer()
    cleaned = df.select(clean_for_sentiment(text_col).alias("_clean"))["_clean"]
    uniq = cleaned.unique(maintain_order=True)
    texts = uniq.fill_null("").to_list()
    if parallel is not None and parallel[1] > 1 and len(texts) >= parallel[2]:
        values = score_parallel(texts, parallel[0], parallel[1])
    else:
        values = scorer.score(texts)
    scores = pl.DataFrame({"_clean": uniq, out_col: pl.Series(values, dtype=pl.Float64)})
    return df.with_columns(_clean=cleaned).join(scores, on="_clean", how="left",
                                                maintain_order="left").drop("_clean")


def score_tweets(tweets: pl.DataFrame, scorer: SentimentScorer,
                 roles: Sequence[str] = ("customer", "brand"),
                 parallel: tuple[str, int, int] | None = None) -> pl.DataFrame:
    """(tweet_id, thread_id, role, sentiment) for the tweets of the given roles, by tweet_id."""
    sub = tweets.filter(pl.col("role").is_in(list(roles))).select("tweet_id", "thread_id", "role",
                                                                   "text")
    return (score_frame(sub, "text", scorer, "sentiment", parallel).select(SENTIMENT_COLUMNS)
            .sort("tweet_id"))


def run(paths: Paths, settings: SentimentSettings) -> dict[str, Any]:
    """DVC stage ``sentiment``: score the tweets once for every later stage."""
    from . import status
    from .io import write_json, write_parquet

    if not paths.tweets.exists():
        raise status.missing_input(paths, "prepare", paths.tweets)
    tweets = pl.read_parquet(paths.tweets, columns=["tweet_id", "thread_id", "role", "text"])
    scored = score_tweets(tweets, get_scorer(settings.scorer), settings.roles,
                          (settings.scorer, settings.n_jobs, settings.parallel_min_texts))
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
