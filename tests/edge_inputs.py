"""Real files a little unlike the shipped sample, derived from it: the inputs on which every stage
must finish with a reason instead of a crash (tests/test_edge_inputs.py and the slow pipeline test).

Run it to write them: ``python tests/edge_inputs.py OUT_DIR`` (one CSV per case).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

from scrm.config import SAMPLE_CSV, load_settings
from scrm.data import prepare
from scrm.data.threads import summarise_threads


def _raw() -> pl.DataFrame:
    return pl.read_csv(SAMPLE_CSV, infer_schema=False)


def brand_tweets_only() -> pl.DataFrame:
    """Only the brands' tweets (their customers' parents are not in the file): no opening at all."""
    return _raw().filter(pl.col("inbound") == "False")


def never_answered() -> pl.DataFrame:
    """Every tweet, but no brand tweet replies to anything (parent references of brand tweets and
    the brand ids in the customers' reply lists removed): openings exist, none is answered, and the
    brands stay known (openings get theirs from the @handle)."""
    raw = _raw()
    brand_ids = raw.filter(pl.col("inbound") == "False")["tweet_id"].implode()
    return raw.with_columns(
        in_response_to_tweet_id=pl.when(pl.col("inbound") == "False").then(None)
        .otherwise(pl.col("in_response_to_tweet_id")),
        response_tweet_id=pl.col("response_tweet_id").str.split(",")
        .list.eval(pl.element().filter(~pl.element().is_in(brand_ids.first())))
        .list.join(",").replace("", None),
    )


def one_brand() -> pl.DataFrame:
    """The threads of the brand with most threads, nothing else: one brand everywhere."""
    tweets = prepare.threaded_tweets(SAMPLE_CSV, load_settings().prepare)
    threads = summarise_threads(tweets)
    top = threads.drop_nulls("brand").group_by("brand").len().sort(["len", "brand"],
                                                                    descending=[True, False])
    keep = tweets.join(threads.filter(pl.col("brand") == top["brand"][0]).select("thread_id"),
                       on="thread_id", how="semi")["tweet_id"].cast(pl.String).implode()
    return _raw().filter(pl.col("tweet_id").is_in(keep.first()))


CASES: dict[str, Callable[[], pl.DataFrame]] = {
    "brand_tweets_only": brand_tweets_only,
    "never_answered": never_answered,
    "one_brand": one_brand,
}


def write(case: str, path: Path) -> Path:
    """Write the derived file of ``case`` as a twcs.csv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    CASES[case]().write_csv(path)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for name in CASES:
        print(write(name, out / f"{name}.csv"))
