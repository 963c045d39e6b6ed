"""Seeded draws of the hand-labelled sets (the sealed complaint test set and the outcome set).

Why a module: a draw that decides what is "sealed" must be reproducible by anyone from the shipped
sample, and a test must be able to check that the files in ``references/`` are exactly what the draw
gives. The draw is fixed in a file *before* anything in it is labelled.

* :func:`draw_gold_test`: openings not in the dev gold set, stratified by brand (proportional
  allocation, largest remainder), then a seeded sample within each brand.
* :func:`draw_outcome_set`: threads in which the opening customer wrote again after the brand's first
  reply, a seeded sample, split by the same seed into ``dev`` and ``test`` halves.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .text import clean_for_sentiment

GOLD_TEST_SEED = 2017
GOLD_TEST_SIZE = 420
OUTCOME_SEED = 1031
OUTCOME_SIZE = 420


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Proportional allocation of ``n`` over strata of size ``counts`` (largest remainder)."""
    quota = counts / counts.sum() * n
    base = np.floor(quota).astype(int)
    order = np.lexsort((np.arange(len(counts)), -(quota - base)))
    base[order[: n - base.sum()]] += 1
    return np.minimum(base, counts)


def draw_gold_test(openings: pl.DataFrame, dev_ids: pl.Series, n: int = GOLD_TEST_SIZE,
                   seed: int = GOLD_TEST_SEED) -> pl.DataFrame:
    """(tweet_id, brand) of ``n`` openings outside dev, stratified by brand, sorted by tweet_id.

    ``openings`` needs ``tweet_id`` and ``brand`` (null brands form their own stratum).
    """
    pool = (openings.filter(~pl.col("tweet_id").is_in(dev_ids.implode()))
            .with_columns(pl.col("brand").fill_null("(none)"))
            .sort("brand", "tweet_id"))
    strata = pool.group_by("brand", maintain_order=True).agg(pl.col("tweet_id"))
    sizes = _allocate(strata["tweet_id"].list.len().to_numpy(), n)
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for ids, k in zip(strata["tweet_id"].to_list(), sizes, strict=True):
        picked.extend(rng.choice(np.asarray(ids), size=int(k), replace=False).tolist())
    return (pool.filter(pl.col("tweet_id").is_in(picked)).select("tweet_id", "brand")
            .sort("tweet_id"))


def followup_threads(tweets: pl.DataFrame, threads: pl.DataFrame) -> pl.DataFrame:
    """Openings whose customer wrote again after the brand's first tweet in the thread."""
    op = threads.filter(pl.col("is_opening")).select("thread_id", customer=pl.col("opening_author_id"))
    tw = tweets.join(op, on="thread_id", how="inner")
    first = (tw.filter(pl.col("role") == "brand").group_by("thread_id")
             .agg(reply_turn=pl.col("turn").min()))
    after = (tw.join(first, on="thread_id", how="inner")
             .filter((pl.col("author_id") == pl.col("customer")) & (pl.col("turn") > pl.col("reply_turn")))
             .group_by("thread_id").agg(n_followups=pl.len()))
    return after.sort("thread_id")


def draw_outcome_set(tweets: pl.DataFrame, threads: pl.DataFrame, n: int = OUTCOME_SIZE,
                     seed: int = OUTCOME_SEED) -> pl.DataFrame:
    """(thread_id, part) for ``n`` follow-up threads; ``part`` is dev for one half, test for the other."""
    pool = followup_threads(tweets, threads)["thread_id"].to_numpy()
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=min(n, len(pool)), replace=False)
    part = np.where(np.arange(len(picked)) < len(picked) // 2, "dev", "test")
    return pl.DataFrame({"thread_id": picked, "part": part}).sort("thread_id")


def thread_transcript(tweets: pl.DataFrame, threads: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """(thread_id, transcript): every turn of the thread as ``C:``/``B:`` lines, handles and URLs removed.

    Only the opening customer's tweets and brand tweets are shown (other customers are ignored, as
    the guidelines say).
    """
    op = threads.filter(pl.col("thread_id").is_in(ids.implode())).select(
        "thread_id", customer=pl.col("opening_author_id"))
    tw = (tweets.join(op, on="thread_id", how="inner")
          .filter((pl.col("role") == "brand") | (pl.col("author_id") == pl.col("customer")))
          .sort("thread_id", "turn")
          .with_columns(line=pl.when(pl.col("role") == "brand").then(pl.lit("B: ")).otherwise(pl.lit("C: "))
                        + clean_for_sentiment("text")))
    return tw.group_by("thread_id", maintain_order=True).agg(transcript=pl.col("line").str.join("\n"))
