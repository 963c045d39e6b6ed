"""Parse, validate and quarantine the raw CSV into typed tweets (polars, whole-column expressions).

Reading has a fast path and a careful path. The fast path is one ``polars.read_csv`` of every column as
text, followed by a file-level integrity check: the number of field-separating commas and of line
breaks in the file must equal what the parsed records imply, and no field may hold a line break
followed by a Twitter date (a sign of records swallowed by an unclosed quote). Only when polars
refuses the file, or the check finds a record with a wrong field count (a short row, a truncated last
line, an unbalanced quote) or such a field, the careful path (:mod:`scrm.data.records`) re-reads it
line by line to locate each bad record and to recover the good records after a runaway quote.
Bytes that are not valid UTF-8 are located by line in one extra pass (only when polars reports them)
and the records holding them are quarantined, never silently altered.
Either way every record ends up clean or in the quarantine file with its line number and reason, and
``rows_in == rows_clean + rows_quarantined`` is asserted. The outputs are replaced as one group
(:func:`scrm.io.atomic_paths`): a killed run leaves the previous outputs or none, never a mix.
"""

from __future__ import annotations

import codecs
import csv
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..errors import DataError
from .records import SWALLOWED_RECORD_HINT
from .records import careful_read as _careful_read
from .schema import (DATE_FORMAT, EXPECTED_COLUMNS, ID_PATTERN, QUARANTINE_COLUMNS,
                     TWEET_COLUMNS)

if TYPE_CHECKING:
    from ..config import OpeningsSettings, PrepareSettings

_UTF8_BLOCK = 1 << 24
_COMMA, _NEWLINE = ord(","), ord("\n")
# parquet codec of the outputs, chosen by measurement on the full-size outputs: zstd level 1 writes
# them with 3/4 of the CPU time of polars' default zstd level for 6-9% more bytes (lz4 is no faster
# and 1.8x the bytes); the codec changes the files' bytes, never their content
PARQUET_CODEC: dict[str, Any] = {"compression": "zstd", "compression_level": 1}
# polars errors (and panics, which are BaseException) that mean "let the careful path look at it"
_POLARS_REFUSED = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


@dataclass
class RawRead:
    """Raw records as text, one column per expected field plus ``line_no`` (first physical line),
    ``line_end`` (last physical line), ``n_fields``, ``expected_fields``, ``parse_error`` (why the
    lines are a broken record, e.g. an unclosed quote, else null) and ``utf8_error`` (why the
    record's bytes are not UTF-8, else null)."""

    frame: pl.DataFrame
    path: Path
    extra_columns: list[str] = field(default_factory=list)
    careful_path: bool = False
    ends_with_newline: bool = True


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def _check_file(path: Path) -> list[str]:
    """Fail early with a clear message on a missing/empty/compressed file or a bad header."""
    if not path.exists():
        raise DataError("file not found. Run `scrm fetch` first (or pass --path).", path)
    if not path.is_file():
        raise DataError("not a regular file (a folder?): expected twcs.csv.", path)
    if path.stat().st_size == 0:
        raise DataError("the file is empty (0 bytes): expected a twcs.csv header and rows.", path, 1)
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if head[:2] == b"\x1f\x8b":
        raise DataError("this is a gzip-compressed file, not a CSV. Decompress it first "
                        "(gunzip FILE) and pass the .csv.", path, 1)
    if head[:4] == b"PK\x03\x04":
        raise DataError("this is a zip archive, not a CSV. Unzip it and pass twcs.csv.", path, 1)
    if b"\x00" in head:
        raise DataError("this looks like a binary file (NUL bytes), not a CSV.", path, 1)
    first_raw = head.split(b"\n", 1)[0]
    if first_raw.endswith(b"\r"):
        first_raw = first_raw[:-1]
    if b"\r" in first_raw:
        raise DataError("lines end in a bare carriage return (classic Mac line endings), so the file "
                        "reads as one line. Convert them to \\n first (e.g. `tr '\\r' '\\n'`).",
                        path, 1)
    first = first_raw.decode("utf-8-sig", errors="replace")
    try:
        header = [h.strip() for h in next(csv.reader([first], strict=True), [])]
    except csv.Error as exc:
        raise DataError(f"the header line is not valid CSV ({exc}).", path, 1) from None
    missing = [c for c in EXPECTED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"header is missing column(s) {', '.join(missing)}; expected "
            f"{','.join(EXPECTED_COLUMNS)} (found {','.join(header) or 'nothing'}).", path, 1)
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"header repeats column(s) {', '.join(repeated)}: each column must appear "
                        "once, or it is ambiguous which one to read.", path, 1)
    return header


def _inner_newlines(columns: list[str]) -> pl.Expr:
    """Line breaks inside a record's (quoted) fields."""
    return pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches("\n", literal=True)
                              for c in columns]).cast(pl.Int64)


def _line_numbers(inner: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """First and last physical line of each record from its inner newlines: the header is line 1,
    a record spans 1 + inner lines (the fast path only accepts files without blank lines)."""
    start = 2 + (1 + inner).cum_sum().shift(1, fill_value=0)
    return start.cast(pl.Int64), (start + inner).cast(pl.Int64)


def _count_bytes(path: Path) -> tuple[int, int, bool]:
    """Commas and newlines in the whole file, and whether it ends in \\n: numpy compares over 16 MB
    views of the memory-mapped file (no copy; a quarter of the CPU time of ``bytes.count`` twice)."""
    commas = 0
    newlines = 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        data = block = np.frombuffer(mm, dtype=np.uint8)
        for off in range(0, len(data), _UTF8_BLOCK):
            block = data[off:off + _UTF8_BLOCK]
            commas += int(np.count_nonzero(block == _COMMA))
            newlines += int(np.count_nonzero(block == _NEWLINE))
        ends_nl = len(data) > 0 and int(data[-1]) == _NEWLINE
        del data, block  # the mmap cannot close while numpy views of it exist
    return commas, newlines, ends_nl


_utf8_errors: list[tuple[int, int]] = []


def _record_utf8_error(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    _utf8_errors.append((exc.start, exc.end))
    return "\ufffd", exc.end


codecs.register_error("scrm-locate-utf8", _record_utf8_error)


def invalid_utf8_lines(path: Path) -> pl.DataFrame:
    """Physical lines holding bytes that are not valid UTF-8: ``line`` and the first bad ``bytes``.

    Runs only when the file is known not to be UTF-8: one C-speed decode pass over 16 MB blocks of
    the memory-mapped file; an error handler records where each invalid sequence starts.
    """
    found: list[tuple[int, bytes]] = []
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        n = len(mm)
        pos = 0
        while pos < n:
            end = min(pos + _UTF8_BLOCK, n)
            block = mm[pos:end]
            _utf8_errors.clear()
            _, used = codecs.utf_8_decode(block, "scrm-locate-utf8", end == n)
            found.extend((pos + s, block[s:e]) for s, e in _utf8_errors)
            # a multi-byte character cut by the block end is decoded with the next block
            pos = end if end == n or used == 0 else pos + used
        _utf8_errors.clear()
        lines: list[int] = []
        line = 1
        prev = 0
        for off, _bad in found:
            line += mm[prev:off].count(b"\n")
            prev = off
            lines.append(line)
    return (pl.DataFrame({"line": lines,
                          "bytes": [" ".join(f"0x{b:02x}" for b in bad) for _, bad in found]},
                         schema={"line": pl.Int64, "bytes": pl.String})
            .unique("line", keep="first", maintain_order=True))


def _mark_invalid_utf8(df: pl.DataFrame, bad_lines: pl.DataFrame | None) -> pl.DataFrame:
    """Add ``utf8_error``: the first invalid byte(s) and their line, for records spanning them."""
    if bad_lines is None or bad_lines.height == 0:
        return df.with_columns(utf8_error=pl.lit(None, dtype=pl.String))
    spans = df.select("line_no", "line_end").sort("line_no")
    hits = (
        bad_lines.sort("line")
        .join_asof(spans, left_on="line", right_on="line_no", strategy="backward")
        .filter(pl.col("line_no").is_not_null() & (pl.col("line") <= pl.col("line_end")))
        .group_by("line_no").agg(pl.col("bytes").first(), pl.col("line").first())
        .select("line_no", utf8_error=pl.format("invalid UTF-8 byte(s) {} on line {}",
                                                pl.col("bytes"), pl.col("line")))
    )
    return df.join(hits, on="line_no", how="left")


def _fast_read(path: Path, header: list[str]) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """polars read + integrity check -> (records or ``None`` when the careful path is needed,
    invalid-UTF-8 lines or ``None`` when the file is valid UTF-8)."""
    bad_lines: pl.DataFrame | None = None
    kwargs: dict[str, Any] = dict(infer_schema=False, has_header=True, quote_char='"',
                                  raise_if_empty=False, truncate_ragged_lines=False)
    try:
        df = pl.read_csv(path, encoding="utf8", **kwargs)
    except _POLARS_REFUSED as exc:
        if "utf-8" not in str(exc).lower() and "utf8" not in str(exc).lower():
            return None, None
        bad_lines = invalid_utf8_lines(path)
        try:
            df = pl.read_csv(path, encoding="utf8-lossy", **kwargs)
        except _POLARS_REFUSED:
            return None, bad_lines
    df = df.rename({c: c.strip().lstrip("\ufeff") for c in df.columns})
    if df.width != len(header):
        return None, bad_lines
    cols = df.columns
    df = df.with_columns(_nl=_inner_newlines(cols))  # counted once: integrity check + line numbers
    inner = df.select(
        commas=pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches(",", literal=True)
                                  for c in cols]).sum(),
        newlines=pl.col("_nl").sum(),
    ).row(0)
    inner_commas = int(inner[0] or 0)
    inner_newlines = int(inner[1] or 0)
    header_commas = len(header) - 1  # a header with quoted commas would be odd; _check_file parsed it
    commas, newlines, ends_nl = _count_bytes(path)
    n = df.height
    if commas != header_commas + n * (len(header) - 1) + inner_commas:
        return None, bad_lines
    expected_newlines = 1 + n + inner_newlines - (0 if ends_nl else 1)
    if n and newlines != expected_newlines:
        return None, bad_lines
    # a field holding a line break followed by a Twitter date may have swallowed whole records
    # behind an unclosed quote even though every count above is right: the careful reader decides
    multi = df.filter(pl.col("_nl") > 0)
    if multi.height and multi.select(pl.any_horizontal(
            pl.col(c).fill_null("").str.contains(SWALLOWED_RECORD_HINT) for c in cols).any()).item():
        return None, bad_lines
    start, end = _line_numbers(pl.col("_nl"))
    return df.with_columns(line_no=start, line_end=end,
                           n_fields=pl.lit(len(header), dtype=pl.Int32),
                           parse_error=pl.lit(None, dtype=pl.String)).drop("_nl"), bad_lines


def read_raw(path: Path | str) -> RawRead:
    """Every record of the raw CSV as text, with its physical lines, field count and encoding."""
    path = Path(path)
    header = _check_file(path)
    df, bad_lines = _fast_read(path, header)
    careful = df is None
    if df is None:
        df = _careful_read(path, header)
        if bad_lines is None:  # polars may have refused the file before checking its encoding
            bad_lines = invalid_utf8_lines(path)
    if df.height == 0:
        raise DataError("the file has a header but no data rows.", path, 2)
    extra = [c for c in header if c not in EXPECTED_COLUMNS]
    df = df.select([*EXPECTED_COLUMNS, "line_no", "line_end", "n_fields", "parse_error"]).with_columns(
        expected_fields=pl.lit(len(header), dtype=pl.Int32))
    df = _mark_invalid_utf8(df, bad_lines)
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        ends_nl = fh.read(1) == b"\n"
    return RawRead(frame=df, path=path, extra_columns=extra, careful_path=careful,
                   ends_with_newline=ends_nl)


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _id(col: str) -> pl.Expr:
    s = pl.col(col).str.strip_chars()
    return pl.when(s.str.contains(ID_PATTERN)).then(
        s.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)).otherwise(None)


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def validate(raw: RawRead, require_text: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw records into (clean typed tweets, quarantined records with reason and detail)."""
    frame = raw.frame
    if "line_end" not in frame.columns:
        frame = frame.with_columns(line_end=pl.col("line_no"))
    for col in ("utf8_error", "parse_error"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    if not frame["line_no"].is_sorted():
        frame = frame.sort("line_no")
    last_line = frame["line_no"].max()
    df = frame.lazy()
    inbound_s = pl.col("inbound").str.strip_chars().str.to_lowercase()
    resp_items = (pl.col("response_tweet_id").fill_null("").str.strip_chars()
                  .str.split(",").list.eval(pl.element().str.strip_chars())
                  .list.eval(pl.element().filter(pl.element() != "")))
    parsed = df.with_columns(
        _tweet_id=_id("tweet_id"),
        _inbound=pl.when(inbound_s == "true").then(True)
        .when(inbound_s == "false").then(False).otherwise(None),
        _created=pl.col("created_at").str.strip_chars()
        .str.strptime(pl.Datetime("us", "UTC"), DATE_FORMAT, strict=False),
        _resp_items=resp_items,
        _parent=_id("in_response_to_tweet_id"),
    ).with_columns(
        _resp=pl.col("_resp_items").list.eval(
            pl.when(pl.element().str.contains(ID_PATTERN))
            .then(pl.element().str.replace(r"\.0+$", "").cast(pl.Int64, strict=False))
            .otherwise(None)),
    )
    reason = (
        pl.when(pl.col("parse_error").is_not_null()).then(pl.lit("unclosed_quote"))
        .when(pl.col("n_fields") != pl.col("expected_fields")).then(pl.lit("wrong_column_count"))
        .when(pl.col("utf8_error").is_not_null()).then(pl.lit("invalid_utf8"))
        .when(pl.col("_tweet_id").is_null()).then(pl.lit("bad_tweet_id"))
        .when(_blank("author_id")).then(pl.lit("bad_author_id"))
        .when(pl.col("_inbound").is_null()).then(pl.lit("bad_inbound"))
        .when(pl.col("_created").is_null()).then(pl.lit("bad_created_at"))
        .when(_blank("text") if require_text else pl.lit(False)).then(pl.lit("empty_text"))
        .when(pl.col("_resp").list.eval(pl.element().is_null()).list.any())
        .then(pl.lit("bad_response_tweet_id"))
        .when(~_blank("in_response_to_tweet_id") & pl.col("_parent").is_null())
        .then(pl.lit("bad_in_response_to_tweet_id"))
        .otherwise(None)
    )
    detail = (
        pl.when(pl.col("_reason") == "wrong_column_count")
        .then(pl.concat_str(
            pl.format("{} fields, expected {}", pl.col("n_fields"), pl.col("expected_fields")),
            pl.when(pl.col("line_end") > pl.col("line_no"))
            .then(pl.format("; the record runs over lines {}-{} (an unclosed quote?)",
                            pl.col("line_no"), pl.col("line_end"))).otherwise(pl.lit("")),
            pl.when(pl.lit(not raw.ends_with_newline) & (pl.col("line_no") == last_line))
            .then(pl.lit("; the file ends inside this record (truncated?)")).otherwise(pl.lit("")),
        ))
        .when(pl.col("_reason") == "unclosed_quote").then(pl.col("parse_error"))
        .when(pl.col("_reason") == "invalid_utf8").then(pl.col("utf8_error"))
        .when(pl.col("_reason") == "bad_tweet_id").then(pl.format("tweet_id={}", pl.col("tweet_id")))
        .when(pl.col("_reason") == "bad_inbound").then(pl.format("inbound={}", pl.col("inbound")))
        .when(pl.col("_reason") == "bad_created_at")
        .then(pl.format("created_at={}", pl.col("created_at")))
        .when(pl.col("_reason") == "bad_response_tweet_id")
        .then(pl.format("response_tweet_id={}", pl.col("response_tweet_id")))
        .when(pl.col("_reason") == "bad_in_response_to_tweet_id")
        .then(pl.format("in_response_to_tweet_id={}", pl.col("in_response_to_tweet_id")))
        .otherwise(pl.lit(""))
    )
    # duplicates: among otherwise valid rows, every occurrence after the first (file order: the
    # frame is in line order, so "after the first" is "not the first distinct" of the valid ids)
    valid_id = pl.when(pl.col("_reason").is_null()).then(pl.col("_tweet_id"))
    checked = parsed.with_columns(_reason=reason).with_columns(
        _dup=pl.col("_reason").is_null() & ~valid_id.is_first_distinct()).collect()
    # the line each repeated id was first seen on, for the detail: a window over every id, so only
    # computed when there is a duplicate
    first_valid = (pl.col("line_no").filter(pl.col("_reason").is_null()).min().over("_tweet_id")
                   if checked["_dup"].any() else pl.lit(None, dtype=pl.Int64))
    checked = checked.lazy().with_columns(_first_valid=first_valid).with_columns(
        _reason=pl.when(pl.col("_dup")).then(pl.lit("duplicate_tweet_id"))
        .otherwise(pl.col("_reason")),
    ).with_columns(
        _detail=pl.when(pl.col("_reason") == "duplicate_tweet_id")
        .then(pl.format("tweet_id={} first seen on line {}", pl.col("_tweet_id"),
                        pl.col("_first_valid")))
        .otherwise(detail))
    checked = checked.collect()
    bad = checked.filter(pl.col("_reason").is_not_null())
    quarantine = bad.select(
        pl.col("line_no"), pl.col("_reason").alias("reason"), pl.col("_detail").alias("detail"),
        *[pl.col(c) for c in EXPECTED_COLUMNS],
    ).sort("line_no")
    assert tuple(quarantine.columns) == QUARANTINE_COLUMNS
    clean = checked.filter(pl.col("_reason").is_null()).select(
        tweet_id=pl.col("_tweet_id"),
        author_id=pl.col("author_id").str.strip_chars(),
        inbound=pl.col("_inbound"),
        created_at=pl.col("_created"),
        text=pl.col("text").fill_null(""),
        response_tweet_ids=pl.col("_resp"),
        in_response_to_tweet_id=pl.col("_parent"),
        line_no=pl.col("line_no"),
    ).sort("line_no")
    return clean, quarantine


def check_counts(rows_in: int, rows_clean: int, rows_quarantined: int, path: Path | str) -> None:
    """The accounting identity every run must satisfy; a violation is a bug, reported loudly."""
    if rows_in != rows_clean + rows_quarantined:
        raise DataError(f"row accounting failed: rows_in={rows_in} != rows_clean={rows_clean} + "
                        f"rows_quarantined={rows_quarantined}. This is a bug; please report it.",
                        path)


def quarantine_summary(quarantine: pl.DataFrame) -> dict[str, Any]:
    if quarantine.height == 0:
        return {}
    counts = quarantine.group_by("reason").len().sort("reason")
    return {r: int(n) for r, n in counts.iter_rows()}


def threaded_tweets(path: Path | str, settings: PrepareSettings) -> pl.DataFrame:
    """The clean, threaded tweets of a raw CSV, as ``tweets.parquet`` holds them; nothing is written
    and quarantined rows are dropped (the synthetic generator's derivation reads the sample so)."""
    from .threads import assign_threads

    clean, _ = validate(read_raw(path), require_text=settings.require_text)
    tweets, _ = assign_threads(clean)
    return tweets.select(TWEET_COLUMNS).sort("tweet_id")


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def run(paths: Any, settings: PrepareSettings, opening_settings: OpeningsSettings) -> dict[str, Any]:
    """DVC stage ``prepare``: raw CSV -> tweets.parquet, threads.parquet, openings.parquet,
    quarantine.csv."""
    from .. import io as sio
    from .. import status
    from .openings import build_openings, why_no_openings
    from .openings import summary as openings_summary
    from .schema import untyped_columns
    from .threads import assign_threads, summarise_threads, thread_metrics

    paths.ensure()
    for folder in (paths.interim, paths.processed):
        sio.cleanup_stale_tmp(folder)
    sio.cleanup_stale_tmp(paths.metrics, paths.metric("prepare").name)
    raw = read_raw(paths.raw_csv)
    clean, quarantine = validate(raw, require_text=settings.require_text)
    rows_in = raw.frame.height
    check_counts(rows_in, clean.height, quarantine.height, paths.raw_csv)
    tweets, graph_stats = assign_threads(clean)
    threads = summarise_threads(tweets)
    tweets = tweets.select(TWEET_COLUMNS).sort("tweet_id")
    openings = build_openings(tweets, threads, opening_settings)
    metrics: dict[str, Any] = {
        **(status.ok() if openings.height else status.no_data(why_no_openings(tweets, rows_in))),
        "rows_in": rows_in,
        "rows_clean": clean.height,
        "rows_quarantined": quarantine.height,
        "quarantine_by_reason": quarantine_summary(quarantine),
        "extra_columns_ignored": raw.extra_columns,
        "careful_read": raw.careful_path,
        **graph_stats,
        **thread_metrics(tweets, threads),
        "answered_definition": opening_settings.answered_definition,
        "opening_counts": openings_summary(openings),
    }
    # "answered" means the chosen definition everywhere; the direct-reply count stays beside it
    metrics["answered_openings"] = int(openings["answered"].sum())
    untyped = {name: untyped_columns(frame) for name, frame in
               (("tweets", tweets), ("threads", threads), ("openings", openings))}
    assert not any(untyped.values()), f"typed outputs only: {untyped}"
    # one group: a killed run leaves the old outputs or none, never a mix; metrics are renamed last
    with sio.atomic_paths(paths.quarantine, paths.tweets, paths.threads, paths.openings,
                          paths.metric("prepare")) as (t_quarantine, t_tweets, t_threads,
                                                       t_openings, t_metrics):
        quarantine.write_csv(t_quarantine)
        # one chunk each: the row groups then depend on the row count alone, not on how the
        # parallel engine happened to split the frame, so the same run writes the same bytes
        tweets.rechunk().write_parquet(t_tweets, **PARQUET_CODEC)
        threads.rechunk().write_parquet(t_threads, **PARQUET_CODEC)
        openings.drop("raw_latency_s").rechunk().write_parquet(t_openings, **PARQUET_CODEC)
        t_metrics.write_text(sio.json_text(metrics), encoding="utf-8")
    return metrics
