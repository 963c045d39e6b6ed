"""The careful reader: record by record, with physical line numbers and runaway-quote recovery.

The fast path (:mod:`scrm.data.prepare`) hands a file here when polars refuses it or its integrity
check finds something odd. This reader splits the text at ``\\n`` only, so line numbers are the
physical lines an editor shows, and feeds the lines to Python's ``csv`` module one at a time.

A quote that opens a field and never closes where it should is the one malformation that can hide
good records: the parser keeps reading the following lines as text of the open field, so several
real tweets would end up inside one broken record (or, when the field count happens to come out
right, inside one "clean" record with a monstrous text). The rule, stated in the data contract
(:mod:`scrm.data.schema`): a record that runs over several physical lines is checked line by line;
when one of its later lines starts a valid record (the expected number of fields, an integer
``tweet_id``, ``inbound`` True/False and a Twitter date in ``created_at``), the line(s) before it are
one broken record (reason ``unclosed_quote``), and parsing resumes at that line. A tweet's own
quoted line breaks never start such a line, so legitimate multi-line tweets are left alone.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl

from ..errors import DataError
from .schema import DATE_FORMAT, ID_PATTERN

_BARE_CR = re.compile(r"\r(?!\n)")
_ID = re.compile(ID_PATTERN)
# A restart candidate must end within this many physical lines (a tweet has at most 280 characters,
# so even one made of line breaks fits): bounds the work spent on lines that open a quote.
RESTART_LOOKAHEAD_LINES = 1000
# A Twitter date after a line break inside a field: how the fast path spots a field that may have
# swallowed whole records (then this reader decides). Order-independent: any column layout.
SWALLOWED_RECORD_HINT = r"\n[^\n]*[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} [+-]\d{4} \d{4}"


def _absent_char(text: str) -> str:
    """A private-use code point that does not occur in ``text`` (a placeholder for bare CRs)."""
    for cp in range(0xE000, 0xF900):
        ch = chr(cp)
        if ch not in text:
            return ch
    raise DataError("the file uses every private-use code point; cannot parse it safely.")


class _Lines:
    """Physical lines fed to a csv reader from a movable position (the reader buffers nothing
    between records, so moving the position between two records restarts parsing there)."""

    def __init__(self, lines: list[str], ends_with_newline: bool) -> None:
        self.lines = lines
        self.pos = 0
        self._last_nl = ends_with_newline

    def line(self, i: int) -> str:
        last = i == len(self.lines) - 1
        return self.lines[i] + ("\n" if not last or self._last_nl else "")

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:  # not a generator: it can go on after a restart past the end
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.line(self.pos - 1)


def _one_record(lines: _Lines, first: int, stop: int) -> list[str] | None:
    """The first record parsed from physical line index ``first`` using lines up to ``stop``."""
    chunk = (lines.line(i) for i in range(first, min(stop, len(lines.lines))))
    return next(csv.reader(chunk, strict=False), None)


def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value.strip(), DATE_FORMAT)
    except ValueError:
        return False
    return True


def _starts_record(lines: _Lines, i: int, header: list[str]) -> bool:
    """Line index ``i`` starts a valid record: the expected field count and a well-formed
    ``tweet_id``, ``inbound`` and ``created_at``."""
    rec = _one_record(lines, i, i + RESTART_LOOKAHEAD_LINES)
    if rec is None or len(rec) != len(header):
        return False
    field = dict(zip(header, rec))
    return (bool(_ID.match(field["tweet_id"].strip()))
            and field["inbound"].strip().lower() in ("true", "false")
            and _is_date(field["created_at"]))


def careful_read(path: Path, header: list[str]) -> pl.DataFrame:
    """Record-by-record read keeping line numbers, field counts and parse errors.

    Columns: one text column per header field, ``line_no``/``line_end`` (first and last physical
    line), ``n_fields`` and ``parse_error`` (why the record could not be parsed, else null).
    Python's csv module would end a record at a bare ``\\r`` inside a field, which polars (the fast
    path) keeps as text: bare CRs hide behind a placeholder while parsing.
    """
    csv.field_size_limit(sys.maxsize)
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    placeholder = None
    if "\r" in text and _BARE_CR.search(text):
        placeholder = _absent_char(text)
        text = _BARE_CR.sub(placeholder, text)
    ends_nl = text.endswith("\n")
    lines = _Lines((text[:-1] if ends_nl else text).split("\n"), ends_nl)
    width = len(header)
    records: list[list[str | None]] = []
    line_no: list[int] = []
    line_end: list[int] = []
    n_fields: list[int] = []
    errors: list[str | None] = []
    reader = csv.reader(lines, strict=False)
    lines.pos = 1  # the header, checked by the caller, is line 1
    while True:
        start = lines.pos
        rec = next(reader, None)
        if rec is None:
            break
        if not rec:  # a blank line is no record
            continue
        end = lines.pos - 1  # 0-based index of the record's last line
        error = None
        if end > start:  # spans lines: does a later one start a record the open quote swallowed?
            resume = next((k for k in range(start + 1, end + 1) if _starts_record(lines, k, header)),
                          None)
            if resume is not None:
                rec = _one_record(lines, start, resume) or []
                end = resume - 1
                lines.pos = resume
                span = (f"line {start + 1} is" if resume == start + 1
                        else f"lines {start + 1}-{resume} are")
                error = (f"a quoted field opened on line {start + 1} never closes: {span} the "
                         f"broken record, parsing resumes on line {resume + 1} (a valid record)")
        line_no.append(start + 1)
        line_end.append(end + 1)
        n_fields.append(len(rec))
        errors.append(error)
        records.append((rec + [None] * width)[:width])
    cols = {h: [r[i] for r in records] for i, h in enumerate(header)}
    df = pl.DataFrame(cols, schema={h: pl.String for h in header})
    if placeholder is not None:
        df = df.with_columns(pl.col(h).str.replace_all(placeholder, "\r", literal=True)
                             for h in header)
    return df.with_columns(line_no=pl.Series(line_no, dtype=pl.Int64),
                           line_end=pl.Series(line_end, dtype=pl.Int64),
                           n_fields=pl.Series(n_fields, dtype=pl.Int32),
                           parse_error=pl.Series(errors, dtype=pl.String))
