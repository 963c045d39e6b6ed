"""Parse, validate and quarantine the raw CSV into typed tweets (polars, whole-column expressions).

Reading has a fast path and a careful path. The fast path is one ``polars.read_csv`` of every column as
text, followed by a file-level integrity check: the number of field-separating commas and of line
breaks in the file must equal what the parsed records imply. Only when polars refuses the file, or the
check finds a record with a wrong field count (a short row, a truncated last line, an unbalanced
quote), the careful path re-reads it with Python's ``csv`` module to locate each bad record by line.
Either way every record ends up clean or in the quarantine file with its line number and reason, and
``rows_in == rows_clean + rows_quarantined`` is asserted.
"""

from __future__ import annotations

import csv
import io
import mmap
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import DataError
from .schema import DATE_FORMAT, EXPECTED_COLUMNS, QUARANTINE_COLUMNS, TWEET_COLUMNS

_ID_RE = r"^\d+(\.0+)?$"  # ids are integers; pandas-written copies of the file have "3.0"


@dataclass
class RawRead:
    """Raw records as text, one column per expected field plus ``line_no`` and ``n_fields``."""

    frame: pl.DataFrame
    path: Path
    extra_columns: list[str] = field(default_factory=list)
    careful_path: bool = False


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def _check_file(path: Path) -> list[str]:
    """Fail early with a clear message on a missing/empty/compressed file or a bad header."""
    if not path.exists():
        raise DataError("file not found. Run `scrm fetch` first (or pass --path).", path)
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
    first = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    header = [h.strip() for h in next(csv.reader([first]), [])]
    missing = [c for c in EXPECTED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"header is missing column(s) {', '.join(missing)}; expected "
            f"{','.join(EXPECTED_COLUMNS)} (found {','.join(header) or 'nothing'}).", path, 1)
    return header


def _line_numbers(frame: pl.DataFrame, columns: list[str]) -> pl.Expr:
    """Physical start line of each record: header is line 1, records advance by 1 + inner newlines."""
    inner = pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches("\n", literal=True)
                               for c in columns])
    return (2 + (1 + inner).cum_sum().shift(1, fill_value=0)).cast(pl.Int64)


def _count_bytes(path: Path) -> tuple[int, int, bool]:
    """Commas and newlines in the whole file (memory-mapped, no copy), and whether it ends in \\n."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        commas = 0
        newlines = 0
        step = 1 << 26
        for off in range(0, len(mm), step):
            block = mm[off:off + step]
            commas += block.count(b",")
            newlines += block.count(b"\n")
        ends_nl = len(mm) > 0 and mm[len(mm) - 1:len(mm)] == b"\n"
    return commas, newlines, ends_nl


def _fast_read(path: Path, header: list[str]) -> pl.DataFrame | None:
    """polars read + integrity check; ``None`` when the careful path is needed."""
    try:
        df = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", has_header=True,
                         quote_char='"', raise_if_empty=False, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
        return None
    df = df.rename({c: c.strip().lstrip("\ufeff") for c in df.columns})
    if df.width != len(header):
        return None
    cols = df.columns
    inner = df.select(
        commas=pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches(",", literal=True)
                                  for c in cols]).sum(),
        newlines=pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches("\n", literal=True)
                                    for c in cols]).sum(),
    ).row(0)
    inner_commas = int(inner[0] or 0)
    inner_newlines = int(inner[1] or 0)
    header_commas = len(header) - 1  # a header with quoted commas would be odd; _check_file parsed it
    commas, newlines, ends_nl = _count_bytes(path)
    n = df.height
    if commas != header_commas + n * (len(header) - 1) + inner_commas:
        return None
    expected_newlines = 1 + n + inner_newlines - (0 if ends_nl else 1)
    if n and newlines != expected_newlines:
        return None
    return df.with_columns(line_no=_line_numbers(df, cols),
                           n_fields=pl.lit(len(header), dtype=pl.Int32))


def _careful_read(path: Path, header: list[str]) -> pl.DataFrame:
    """Record-by-record read that keeps line numbers and field counts of malformed records."""
    csv.field_size_limit(sys.maxsize)
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    next(reader, None)
    width = len(header)
    records: list[list[str | None]] = []
    line_no: list[int] = []
    n_fields: list[int] = []
    start = reader.line_num + 1
    for rec in reader:
        if not rec:  # a blank line is no record
            start = reader.line_num + 1
            continue
        line_no.append(start)
        n_fields.append(len(rec))
        records.append((rec + [None] * width)[:width])
        start = reader.line_num + 1
    cols = {h: [r[i] for r in records] for i, h in enumerate(header)}
    df = pl.DataFrame(cols, schema={h: pl.String for h in header})
    return df.with_columns(line_no=pl.Series(line_no, dtype=pl.Int64),
                           n_fields=pl.Series(n_fields, dtype=pl.Int32))


def read_raw(path: Path | str) -> RawRead:
    """Read every record of the raw CSV as text, with its physical line number and field count."""
    path = Path(path)
    header = _check_file(path)
    df = _fast_read(path, header)
    careful = df is None
    if df is None:
        df = _careful_read(path, header)
    if df.height == 0:
        raise DataError("the file has a header but no data rows.", path, 2)
    extra = [c for c in header if c not in EXPECTED_COLUMNS]
    df = df.select([*EXPECTED_COLUMNS, "line_no", "n_fields"])
    if "n_fields" in df.columns:
        df = df.with_columns(expected_fields=pl.lit(len(header), dtype=pl.Int32))
    return RawRead(frame=df, path=path, extra_columns=extra, careful_path=careful)


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _id(col: str) -> pl.Expr:
    s = pl.col(col).str.strip_chars()
    return pl.when(s.str.contains(_ID_RE)).then(
        s.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)).otherwise(None)


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def validate(raw: RawRead, require_text: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw records into (clean typed tweets, quarantined records with reason and detail)."""
    df = raw.frame.lazy()
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
            pl.when(pl.element().str.contains(_ID_RE))
            .then(pl.element().str.replace(r"\.0+$", "").cast(pl.Int64, strict=False))
            .otherwise(None)),
    )
    reason = (
        pl.when(pl.col("n_fields") != pl.col("expected_fields")).then(pl.lit("wrong_column_count"))
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
        .then(pl.format("{} fields, expected {}", pl.col("n_fields"), pl.col("expected_fields")))
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
    checked = parsed.with_columns(_reason=reason)
    # duplicates: among otherwise valid rows, every occurrence after the first (file order)
    first_valid = pl.col("line_no").filter(pl.col("_reason").is_null()).min().over("_tweet_id")
    checked = checked.with_columns(_first_valid=first_valid).with_columns(
        _reason=pl.when(pl.col("_reason").is_null() & (pl.col("line_no") != pl.col("_first_valid")))
        .then(pl.lit("duplicate_tweet_id")).otherwise(pl.col("_reason")),
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


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def run(paths: Any, params: dict[str, Any]) -> dict[str, Any]:
    """DVC stage ``prepare``: raw CSV -> tweets.parquet (+threads), threads.parquet, quarantine.csv."""
    from .. import io as sio
    from .threads import assign_threads, summarise_threads, thread_metrics

    sec = params.get("prepare") or {}
    paths.ensure()
    for folder in (paths.interim, paths.processed):
        sio.cleanup_stale_tmp(folder)
    raw = read_raw(paths.raw_csv)
    clean, quarantine = validate(raw, require_text=bool(sec.get("require_text", True)))
    rows_in = raw.frame.height
    check_counts(rows_in, clean.height, quarantine.height, paths.raw_csv)
    tweets, graph_stats = assign_threads(clean)
    threads = summarise_threads(tweets)
    tweets = tweets.select(TWEET_COLUMNS).sort("tweet_id")
    sio.write_csv(quarantine, paths.quarantine)
    sio.write_parquet(tweets, paths.tweets)
    sio.write_parquet(threads, paths.threads)
    metrics: dict[str, Any] = {
        "rows_in": rows_in,
        "rows_clean": clean.height,
        "rows_quarantined": quarantine.height,
        "quarantine_by_reason": quarantine_summary(quarantine),
        "extra_columns_ignored": raw.extra_columns,
        "careful_read": raw.careful_path,
        **graph_stats,
        **thread_metrics(tweets, threads),
    }
    sio.write_json(paths.metrics / "prepare.json", metrics)
    return metrics
