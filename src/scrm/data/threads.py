"""Reconstruct conversations from the reply graph.

A thread is a connected conversation rooted at a tweet with no usable parent in the file. Roots are
found for all tweets at once by *pointer doubling* on row positions: every tweet keeps the row position
of the highest ancestor found so far and the distance to it, and each round replaces the pointer by the
pointer's pointer (one ``gather`` over the whole column), so a chain of any length resolves in
``log2(depth)`` vectorised rounds, with no per-row Python and no self-joins.

Anomalies are handled and counted, never crashed on:
* dangling references (parent not in the file): the tweet becomes a root, flagged ``parent_dangling``;
* self-replies: the link is ignored;
* cycles (A replies to B replies to A): pointers in a cycle never reach a root; the few tweets left
  unresolved after the doubling rounds are inspected, and in each cycle the link of the smallest
  tweet id is cut, which makes it the root;
* branches (several replies to one tweet): kept; the thread is flagged ``has_branch``.

``response_tweet_id`` lists the same links from the parent's side; the two are cross-checked and the
mismatches counted.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl


def _resolve_positions(ppos: pl.Series) -> tuple[pl.Series, pl.Series]:
    """ppos: row position of each row's parent (null = root) -> (top position, distance)."""
    n = len(ppos)
    me = pl.Series(range(n), dtype=pl.UInt32) if n < 2**32 else pl.int_range(n, eager=True)
    top = ppos.fill_null(me)
    dist = ppos.is_not_null().cast(pl.Int32)
    for _ in range(max(1, math.ceil(math.log2(max(n, 2)))) + 2):
        nxt = top.gather(top)
        if (nxt == top).all():
            break
        dist = dist + dist.gather(top)
        top = nxt
    return top, dist


def _cycle_cuts(parent_of: dict[int, int]) -> list[int]:
    """Tweets whose parent link must be cut to break every cycle (smallest id per cycle).

    Runs only over the handful of tweets that pointer doubling could not resolve.
    """
    cuts: list[int] = []
    state: dict[int, int] = {}  # 0 unvisited, 1 on current path, 2 done
    for start in sorted(parent_of):
        if state.get(start):
            continue
        path: list[int] = []
        node: int | None = start
        while node is not None and node in parent_of and not state.get(node):
            state[node] = 1
            path.append(node)
            node = parent_of[node]
        if node is not None and state.get(node) == 1:  # closed a new cycle
            cycle = path[path.index(node):]
            cuts.append(min(cycle))
        for n in path:
            state[n] = 2
    return cuts


def link_parents(tweets: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add ``parent_id`` (usable in-file parent) and ``parent_dangling``; count anomalies."""
    ids = tweets.select("tweet_id")
    df = tweets.with_columns(
        _self=(pl.col("in_response_to_tweet_id") == pl.col("tweet_id")).fill_null(False),
        _in_file=pl.col("in_response_to_tweet_id").is_in(ids["tweet_id"].implode()).fill_null(False),
    ).with_columns(
        parent_id=pl.when(pl.col("_in_file") & ~pl.col("_self"))
        .then(pl.col("in_response_to_tweet_id")).otherwise(None),
        parent_dangling=pl.col("in_response_to_tweet_id").is_not_null() & ~pl.col("_in_file"),
    )
    stats = df.select(self_replies=pl.col("_self").sum(),
                      dangling_references=pl.col("parent_dangling").sum()).row(0, named=True)
    return df.drop("_self", "_in_file"), {k: int(v) for k, v in stats.items()}


def assign_threads(tweets: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Per tweet: parent_id, parent_dangling, role, thread_id, depth, turn. Returns (tweets, stats)."""
    df, stats = link_parents(tweets)
    pos = df.select(pl.col("tweet_id").alias("parent_id")).with_row_index("_ppos")
    ppos = df.select("parent_id").join(pos, on="parent_id", how="left",
                                       maintain_order="left")["_ppos"]
    top, dist = _resolve_positions(ppos)
    cycles = 0
    unresolved = ppos.gather(top).is_not_null()          # the top still has a parent: a cycle
    if unresolved.any():
        sub = df.filter(unresolved).select("tweet_id", "parent_id")
        cuts = _cycle_cuts(dict(zip(sub["tweet_id"].to_list(), sub["parent_id"].to_list())))
        cycles = len(cuts)
        cut = df["tweet_id"].is_in(pl.Series(cuts, dtype=pl.Int64).implode())
        df = df.with_columns(parent_id=pl.when(cut).then(None).otherwise(pl.col("parent_id")))
        ppos = pl.select(pl.when(cut).then(None).otherwise(ppos)).to_series()
        top, dist = _resolve_positions(ppos)
    stats["cycles_broken"] = cycles
    df = (
        df.with_columns(thread_id=df["tweet_id"].gather(top), depth=dist,
                        role=pl.when(pl.col("inbound")).then(pl.lit("customer"))
                        .otherwise(pl.lit("brand")))
        .sort(["thread_id", "created_at", "tweet_id"])
        .with_row_index("_i")
        .with_columns(turn=(pl.col("_i") - pl.col("_i").first().over("thread_id")).cast(pl.Int32))
        .drop("_i")
    )
    # cross-check: one join of the listed (parent, child) pairs with the children's written parent
    listed = (df.select(pl.col("tweet_id").alias("_p"), pl.col("response_tweet_ids").alias("_c"))
              .explode("_c").drop_nulls("_c"))
    both = listed.join(df.select(pl.col("tweet_id").alias("_c"),
                                 pl.col("in_response_to_tweet_id").alias("_wp"),
                                 pl.col("parent_id").alias("_up")), on="_c", how="inner")
    confirmed = both.filter(pl.col("_wp") == pl.col("_p"))
    stats["response_links_not_confirmed"] = both.height - confirmed.height
    n_links = df.select(pl.col("parent_id").is_not_null().sum()).item()
    listed_links = confirmed.filter(pl.col("_up") == pl.col("_p")).select("_p", "_c").n_unique()
    stats["parent_links_not_listed"] = int(n_links - listed_links)
    return df, stats


def summarise_threads(tweets: pl.DataFrame) -> pl.DataFrame:
    """One row per thread (see ``schema.THREAD_COLUMNS``)."""
    children = (tweets.filter(pl.col("parent_id").is_not_null())
                .group_by("parent_id").agg(n_children=pl.len(),
                                           brand_child=(pl.col("role") == "brand").any()))
    t = tweets.join(children, left_on="tweet_id", right_on="parent_id", how="left").with_columns(
        pl.col("n_children").fill_null(0), pl.col("brand_child").fill_null(False))
    brand_rank = (
        t.filter(pl.col("role") == "brand")
        .group_by("thread_id", "author_id")
        .agg(n=pl.len(), first_turn=pl.col("turn").min())
        .sort(["thread_id", "n", "first_turn"], descending=[False, True, False])
        .group_by("thread_id", maintain_order=True)
        .agg(brand=pl.col("author_id").first(), n_brands=pl.len())
    )
    root = t.filter(pl.col("depth") == 0).select(
        "thread_id",
        opening_tweet_id=pl.col("tweet_id"),
        opening_author_id=pl.col("author_id"),
        opening_text=pl.col("text"),
        opening_at=pl.col("created_at"),
        root_inbound=pl.col("inbound"),
        root_dangling=pl.col("parent_dangling") | pl.col("in_response_to_tweet_id").is_not_null(),
        opening_answered=pl.col("brand_child"),
    )
    agg = t.group_by("thread_id").agg(
        customer_id=pl.col("author_id").filter(pl.col("role") == "customer").sort_by(
            pl.col("turn").filter(pl.col("role") == "customer")).first(),
        first_at=pl.col("created_at").min(),
        last_at=pl.col("created_at").max(),
        n_tweets=pl.len().cast(pl.Int32),
        n_customer_turns=(pl.col("role") == "customer").sum().cast(pl.Int32),
        n_brand_turns=(pl.col("role") == "brand").sum().cast(pl.Int32),
        max_depth=pl.col("depth").max(),
        has_branch=(pl.col("n_children") >= 2).any(),
    )
    out = (
        root.join(agg, on="thread_id", how="left")
        .join(brand_rank, on="thread_id", how="left")
        .with_columns(
            n_brands=pl.col("n_brands").fill_null(0).cast(pl.Int32),
            multi_brand=pl.col("n_brands").fill_null(0) > 1,
            is_opening=pl.col("root_inbound") & ~pl.col("root_dangling"),
        )
        .with_columns(opening_answered=pl.col("opening_answered") & pl.col("is_opening"))
        .sort("thread_id")
    )
    from .schema import THREAD_COLUMNS

    return out.select(list(THREAD_COLUMNS))


def thread_metrics(tweets: pl.DataFrame, threads: pl.DataFrame) -> dict[str, Any]:
    m = tweets.select(
        tweets=pl.len(),
        brands=pl.col("author_id").filter(~pl.col("inbound")).n_unique(),
        customers=pl.col("author_id").filter(pl.col("inbound")).n_unique(),
    ).row(0, named=True)
    t = threads.select(
        threads=pl.len(),
        openings=pl.col("is_opening").sum(),
        answered_openings_direct=pl.col("opening_answered").sum(),
        branching_threads=pl.col("has_branch").sum(),
        multi_brand_threads=pl.col("multi_brand").sum(),
        dangling_root_threads=pl.col("root_dangling").sum(),
    ).row(0, named=True)
    return {k: int(v) for k, v in {**m, **t}.items()}
