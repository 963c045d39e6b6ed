"""The data contract, written down once.

Raw file (``data/raw/twcs.csv``)
    CSV with header ``tweet_id,author_id,inbound,created_at,text,response_tweet_id,
    in_response_to_tweet_id`` (any column order; extra columns are ignored and reported), and at
    least one record: a header-only file is an error, not an empty run (see ``prepare`` in the
    README). Line numbers are physical lines (the header is line 1); blank lines are no records.

Records and the unclosed-quote rule
    A record is what a CSV parser reads from one physical line, or from several when a quoted field
    holds line breaks. A quote that opens a field and never closes where it should makes the parser
    read the following lines as text of that field. So a record that runs over several lines is
    checked line by line: when a later line *starts a valid record* (one field per header column,
    an integer ``tweet_id``, ``inbound`` True/False, a ``created_at`` in the date format below,
    read within :data:`scrm.data.records.RESTART_LOOKAHEAD_LINES` lines), the lines before it are
    one broken record, quarantined as ``unclosed_quote`` with its first line, and parsing resumes
    at that line. Every physical record is clean or quarantined, and ``rows_in`` counts records
    (``rows_in = rows_clean + rows_quarantined``). A tweet's own quoted line breaks never start a
    valid record, so multi-line tweets are read whole.

Clean tweets (``data/interim/tweets.parquet``), one row per usable tweet:

=========================  =====================  =================================================
column                     dtype                  meaning
=========================  =====================  =================================================
tweet_id                   Int64                  unique id
author_id                  Utf8                   brand handle (brand tweets) or anonymised number
inbound                    Boolean                True = written by a customer (to a brand)
created_at                 Datetime(us, UTC)      parsed from ``Tue Oct 31 22:10:47 +0000 2017``
text                       Utf8                   non-empty tweet text, unchanged
response_tweet_ids         List(Int64)            ids listed in ``response_tweet_id`` (may be [])
in_response_to_tweet_id    Int64 (nullable)       parent id as written in the file
line_no                    Int64                  physical line of the record's start in the raw file
role                       Utf8                   ``customer`` (inbound) or ``brand``
parent_id                  Int64 (nullable)       parent used for threading: the written parent if it
                                                  is in the file, not the tweet itself and not a link
                                                  cut to break a cycle; else null
parent_dangling            Boolean                the written parent is not in the file
thread_id                  Int64                  tweet_id of the thread's root (tweet with no parent)
depth                      Int32                  0 for the root, parent's depth + 1 otherwise
turn                       Int32                  0-based position in the thread by (created_at, id)
=========================  =====================  =================================================

Threads (``data/processed/threads.parquet``), one row per connected conversation: see
:data:`THREAD_COLUMNS`.

Definitions used by every research question
    *Opening*: a thread root written by a customer (inbound) that references no parent at all: the
    customer starting a conversation. Roots whose written parent is missing from the file
    (``root_dangling``) are threads but not openings: their start is not observed.
    *Answered opening*, *brand of an opening*: defined once in :mod:`scrm.data.openings` (three
    definitions of "answered" side by side; ``openings.parquet`` carries them all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import polars as pl

EXPECTED_COLUMNS: tuple[str, ...] = (
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "response_tweet_id",
    "in_response_to_tweet_id",
)

DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"
ID_PATTERN = r"^\d+(\.0+)?$"  # ids are integers; pandas-written copies of the file have "3.0"

# Quarantine reasons, checked in this order (a row gets the first rule it breaks).
QUARANTINE_REASONS: dict[str, str] = {
    "unclosed_quote": "a quoted field never closes and the record runs into the next valid record: "
                      "only its own line(s) are quarantined, parsing resumes at that record",
    "wrong_column_count": "the record does not have exactly one field per header column",
    "invalid_utf8": "the record holds bytes that are not valid UTF-8 (shown as U+FFFD in the quarantine file)",
    "bad_tweet_id": "tweet_id is empty or not a non-negative integer",
    "bad_author_id": "author_id is empty",
    "bad_inbound": "inbound is neither True nor False",
    "bad_created_at": "created_at does not parse as 'Tue Oct 31 22:10:47 +0000 2017'",
    "empty_text": "text is empty",
    "bad_response_tweet_id": "response_tweet_id is not a comma-separated list of integers",
    "bad_in_response_to_tweet_id": "in_response_to_tweet_id is not an integer",
    "duplicate_tweet_id": "tweet_id already seen on an earlier line (the first one is kept)",
}

QUARANTINE_COLUMNS: tuple[str, ...] = ("line_no", "reason", "detail", *EXPECTED_COLUMNS)

TWEET_COLUMNS: tuple[str, ...] = (
    "tweet_id", "author_id", "inbound", "created_at", "text", "response_tweet_ids",
    "in_response_to_tweet_id", "line_no", "role", "parent_id", "parent_dangling", "thread_id",
    "depth", "turn",
)

THREAD_COLUMNS: dict[str, str] = {
    "thread_id": "tweet_id of the root",
    "brand": "brand account replying in the thread (most tweets; ties -> first to reply); null if none",
    "n_brands": "number of distinct brand accounts in the thread",
    "multi_brand": "several brands reply in the thread (kept, flagged)",
    "customer_id": "author of the thread's first customer tweet (null if none)",
    "opening_tweet_id": "root tweet id (= thread_id)",
    "opening_author_id": "author of the root",
    "opening_text": "text of the root",
    "opening_at": "created_at of the root",
    "root_inbound": "root written by a customer",
    "root_dangling": "root references a parent that is not in the file",
    "is_opening": "root is a customer opening (inbound, no parent reference)",
    "opening_answered": "a brand tweet replies directly to the root (meaningful when is_opening)",
    "first_at": "earliest created_at in the thread",
    "last_at": "latest created_at in the thread",
    "n_tweets": "tweets in the thread",
    "n_customer_turns": "customer tweets in the thread",
    "n_brand_turns": "brand tweets in the thread",
    "max_depth": "deepest reply level",
    "has_branch": "some tweet in the thread has two or more replies in the file",
}


# --------------------------------------------------------------------------------------------------
# typed frames: an empty result has the same columns and types as a full one
# --------------------------------------------------------------------------------------------------
def typed_frame(rows: Iterable[Mapping[str, Any]],
                schema: Mapping[str, pl.DataType] | Callable[[str], pl.DataType],
                columns: Iterable[str] | None = None) -> pl.DataFrame:
    """Rows (dicts) as a frame whose columns have the declared types, with or without rows.

    A frame built from Python rows takes its types from the values: no rows gives no columns, a
    column of ``None`` gets dtype Null, and a later join on it fails ("datatypes of join keys don't
    match"). ``schema`` is a column -> dtype mapping, or a function of the column name when the
    columns are generated (then ``columns`` lists them, used when there are no rows). A key that
    the schema does not know is an error, never a silently dropped column.
    """
    rows = list(rows)
    names = list(dict.fromkeys(k for r in rows for k in r)) or list(columns or [])
    if isinstance(schema, Mapping):
        unknown = [k for k in names if k not in schema]
        if unknown:
            raise ValueError(f"column(s) {unknown} are not in the declared schema")
        full = dict(schema)
    else:
        full = {k: schema(k) for k in names}
    return pl.DataFrame(rows, schema=full) if rows else pl.DataFrame(schema=full)


def _has_null_type(dtype: pl.DataType) -> bool:
    if dtype == pl.Null:
        return True
    inner = getattr(dtype, "inner", None)
    if inner is not None and _has_null_type(inner):
        return True
    return any(_has_null_type(f.dtype) for f in getattr(dtype, "fields", None) or [])


def untyped_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Columns whose dtype is (or holds) Null: no type at all, the mark of an empty result built
    from Python values. Outputs must never have one (:func:`scrm.io.write_parquet` refuses them)."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    return [name for name, dtype in schema.items() if _has_null_type(dtype)]
