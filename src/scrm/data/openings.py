"""A customer opening, its brand and whether it was answered: defined here and nowhere else.

Every research question starts from the same table (``data/processed/openings.parquet``, written by
``prepare``): one row per customer opening. Before this module existed, response time, outcome and
complaints each built their own openings with different brand and "answered" rules, so the same
sample had 131 unanswered openings in one stage and 0 in another.

Definitions
    *Opening*: a thread root written by a customer (inbound) that references no parent at all
    (``threads.is_opening``). Roots whose parent is missing from the file are threads, not openings.

    *Brand* of an opening: the author of the **first brand tweet in the thread** (by time, then id):
    the account that took the conversation up, known at that moment (a rule based on "the brand with
    most tweets" would depend on later turns). An opening no brand tweeted in gets the first @handle of
    its text that is a known brand account (Twitter ignores case; a handle seen in several casings maps
    to its smallest spelling). Else null. ``brand_source`` says which: ``first_reply``, ``mention``,
    ``none``.

    *Answered*, three definitions kept side by side (each has ``answered_<d>``, ``first_<d>_id``,
    ``first_<d>_at`` and ``first_<d>_author``):

    ``direct``    a brand tweet that replies directly to the opening;
    ``customer``  the first brand tweet in the thread that replies to any tweet of the opening's
                  customer (the opening or a later tweet of the same person);
    ``thread``    the first brand tweet anywhere in the thread (even a reply to a third party).

    ``answered``, ``first_response_id``, ``first_response_at``, ``responder`` and ``latency_s`` follow
    the definition chosen in params (``openings.answered_definition``). Latency is clipped at 0 (a
    reply stamped before its opening is a clock artefact, counted in ``negative_latency``).
"""

from __future__ import annotations

from typing import Final

import polars as pl

DEFINITIONS: Final = ("direct", "customer", "thread")
BRAND_SOURCES: Final = ("first_reply", "mention", "none")
HANDLE_RE: Final = r"@(\w+)"

OPENING_COLUMNS: dict[str, str] = {
    "opening_tweet_id": "tweet_id of the opening (= thread_id)",
    "thread_id": "thread the opening starts",
    "customer_id": "author of the opening",
    "opening_at": "created_at of the opening (UTC)",
    "opening_text": "text of the opening, unchanged",
    "brand": "brand of the opening (see module docstring); null when none can be told",
    "brand_source": "first_reply | mention | none",
    "multi_brand": "several brand accounts tweet in the thread",
    **{name.format(d=d): text.format(d=d) for d in DEFINITIONS for name, text in (
        ("answered_{d}", "answered under definition {d}"),
        ("first_{d}_id", "tweet_id of the first brand tweet under definition {d}"),
        ("first_{d}_at", "created_at of that tweet"),
        ("first_{d}_author", "brand account that wrote it"))},
    "answered": "answered under the chosen definition",
    "first_response_id": "first brand response under the chosen definition",
    "first_response_at": "its created_at",
    "responder": "its author",
    "latency_s": "seconds from the opening to the first response (clipped at 0; null if unanswered)",
}


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def known_brands(tweets: pl.LazyFrame) -> pl.LazyFrame:
    """(handle lower case, mention_brand): brand accounts seen as authors, smallest spelling per key."""
    return (tweets.filter(pl.col("role") == "brand")
            .select(pl.col("author_id").alias("mention_brand")).unique()
            .group_by(handle=pl.col("mention_brand").str.to_lowercase())
            .agg(pl.col("mention_brand").min()))


def mentioned_brand(openings: pl.LazyFrame, brands: pl.LazyFrame) -> pl.LazyFrame:
    """(opening_tweet_id, mention_brand): the first @handle of the opening that is a known brand."""
    return (openings.select("opening_tweet_id", handle=pl.col("opening_text").str.extract_all(HANDLE_RE))
            .explode("handle").drop_nulls("handle")
            .with_columns(pos=pl.int_range(pl.len()).over("opening_tweet_id"),
                          handle=pl.col("handle").str.strip_prefix("@").str.to_lowercase())
            .join(brands, on="handle", how="inner")
            .group_by("opening_tweet_id")
            .agg(pl.col("mention_brand").sort_by("pos").first()))


def _first(brand_tweets: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The earliest of the given brand tweets per thread, as first_<name>_{id,at,author}."""
    return (brand_tweets.sort("thread_id", "created_at", "tweet_id")
            .group_by("thread_id", maintain_order=True)
            .agg(pl.col("tweet_id").first().alias(f"first_{name}_id"),
                 pl.col("created_at").first().alias(f"first_{name}_at"),
                 pl.col("author_id").first().alias(f"first_{name}_author")))


def build_openings(tweets: pl.DataFrame | pl.LazyFrame, threads: pl.DataFrame | pl.LazyFrame,
                   answered_definition: str = "customer") -> pl.DataFrame:
    """One row per customer opening (columns :data:`OPENING_COLUMNS`), sorted by opening id."""
    if answered_definition not in DEFINITIONS:
        raise ValueError(f"answered_definition must be one of {DEFINITIONS}, got {answered_definition!r}")
    tw, th = tweets.lazy(), threads.lazy()
    op = th.filter(pl.col("is_opening")).select(
        "opening_tweet_id", "thread_id", customer_id=pl.col("opening_author_id"),
        opening_at="opening_at", opening_text="opening_text", multi_brand="multi_brand")
    brand_tw = (tw.filter(pl.col("role") == "brand")
                .select("tweet_id", "thread_id", "author_id", "created_at", "parent_id")
                .join(op.select("thread_id", "opening_tweet_id", "customer_id"), on="thread_id",
                      how="inner"))
    authors = tw.select(parent_id="tweet_id", parent_author="author_id")
    to_customer = (brand_tw.join(authors, on="parent_id", how="inner")
                   .filter(pl.col("parent_author") == pl.col("customer_id")))
    firsts = {
        "direct": _first(brand_tw.filter(pl.col("parent_id") == pl.col("opening_tweet_id")), "direct"),
        "customer": _first(to_customer, "customer"),
        "thread": _first(brand_tw, "thread"),
    }
    for d in DEFINITIONS:
        op = op.join(firsts[d], on="thread_id", how="left").with_columns(
            pl.col(f"first_{d}_id").is_not_null().alias(f"answered_{d}"))
    d = answered_definition
    out = (op.join(mentioned_brand(op, known_brands(tw)), on="opening_tweet_id", how="left")
           .with_columns(
               brand=pl.coalesce("first_thread_author", "mention_brand"),
               brand_source=pl.when(pl.col("first_thread_author").is_not_null())
               .then(pl.lit("first_reply"))
               .when(pl.col("mention_brand").is_not_null()).then(pl.lit("mention"))
               .otherwise(pl.lit("none")),
               answered=pl.col(f"answered_{d}"),
               first_response_id=pl.col(f"first_{d}_id"),
               first_response_at=pl.col(f"first_{d}_at"),
               responder=pl.col(f"first_{d}_author"),
               raw_latency_s=_seconds(pl.col(f"first_{d}_at") - pl.col("opening_at")))
           .with_columns(latency_s=pl.col("raw_latency_s").clip(lower_bound=0.0)))
    return out.select(*OPENING_COLUMNS, "raw_latency_s").sort("opening_tweet_id").collect()


def summary(openings: pl.DataFrame) -> dict[str, int]:
    """Counts for prepare's metrics: openings, answered under each definition, brand sources."""
    row = openings.select(
        openings=pl.len(),
        **{f"answered_{d}": pl.col(f"answered_{d}").sum() for d in DEFINITIONS},
        **{f"brand_{s}": (pl.col("brand_source") == s).sum() for s in BRAND_SOURCES},
        negative_latency=(pl.col("raw_latency_s") < 0).sum(),
    ).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}
