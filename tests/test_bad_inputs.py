"""The bad-input corpus (tests/data/bad/, described in its README.md): every malformed file gives a
clear error naming the file, the physical line and the reason, or is prepared with the bad records
quarantined (line, reason, detail); the row accounting always holds; the CLI never shows a traceback.

Physical lines of good.csv: 1 header, 2 tweet 1, 3 tweet 2, 4-5 tweet 3 (quoted newline), 6 tweet 4,
7 tweet 5. Most cases change the record on line 6, after the two-line record, so that a line count
that ignores quoted newlines gives the wrong answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import fetch_settings, make_root
from scrm.config import SAMPLE_CSV, load_params, load_settings
from scrm.data import fetch, prepare
from scrm.errors import DataError, FetchError

BAD = Path(__file__).parent / "data" / "bad"
GOOD_LINES = {1: 2, 2: 3, 3: 4, 4: 6, 5: 7}  # tweet_id -> first physical line in good.csv
TEXT4 = "@115713 We can help."
UNCLOSED_6 = ("a quoted field opened on line 6 never closes: line 6 is the broken record, parsing "
              "resumes on line 7 (a valid record)")

# case -> expected outcome. "error": (line, words in the message). Otherwise: rows_in, clean tweets
# {tweet_id: line_no}, quarantine [(line_no, reason, detail)], extra metric values.
ERRORS: dict[str, tuple[int, list[str]]] = {
    "empty.csv": (1, ["empty", "0 bytes"]),
    "header_only.csv": (2, ["header but no data rows"]),
    "missing_column.csv": (1, ["missing column(s) created_at"]),
    "gzip.csv": (1, ["gzip-compressed", "gunzip"]),
    "duplicate_header.csv": (1, ["repeats column(s) text"]),
    "mac_cr.csv": (1, ["bare carriage return"]),
}

QUARANTINED: dict[str, dict[str, Any]] = {
    "invalid_utf8.csv": dict(
        rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
        quarantine=[(6, "invalid_utf8", "invalid UTF-8 byte(s) 0xff on line 6")]),
    "truncated_last_line.csv": dict(
        rows_in=5, clean={1: 2, 2: 3, 3: 4, 4: 6},
        quarantine=[(7, "wrong_column_count",
                     "4 fields, expected 7; the file ends inside this record (truncated?)")]),
    "unbalanced_quotes.csv": dict(
        rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
        quarantine=[(6, "unclosed_quote", UNCLOSED_6)], metrics={"careful_read": True}),
    "swallowed_record.csv": dict(  # polars alone reads 4 records: tweet 5 inside tweet 4's text
        rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
        quarantine=[(6, "unclosed_quote", UNCLOSED_6)], metrics={"careful_read": True}),
    "bad_date.csv": dict(rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
                         quarantine=[(6, "bad_created_at", "created_at=31/10/2017 22:12")]),
    "bad_inbound.csv": dict(rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
                            quarantine=[(6, "bad_inbound", "inbound=maybe")]),
    "non_numeric_id.csv": dict(rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
                               quarantine=[(6, "bad_tweet_id", "tweet_id=4a")]),
    "duplicate_id.csv": dict(rows_in=6, clean=GOOD_LINES,
                             quarantine=[(8, "duplicate_tweet_id",
                                          "tweet_id=2 first seen on line 3")]),
    "too_many_fields.csv": dict(rows_in=5, clean={1: 2, 2: 3, 3: 4, 5: 7},
                                quarantine=[(6, "wrong_column_count", "8 fields, expected 7")]),
    "bare_cr.csv": dict(rows_in=6, clean=GOOD_LINES,
                        quarantine=[(8, "wrong_column_count", "2 fields, expected 7")],
                        metrics={"careful_read": True}),
}

CLEAN: dict[str, dict[str, Any]] = {
    "good.csv": dict(clean=GOOD_LINES),
    "extra_column.csv": dict(clean=GOOD_LINES, metrics={"extra_columns_ignored": ["lang"]}),
    "reordered_columns.csv": dict(clean=GOOD_LINES),
    "crlf.csv": dict(clean=GOOD_LINES),
    "bom.csv": dict(clean=GOOD_LINES),
    "blank_lines.csv": dict(clean={1: 2, 2: 4, 3: 5, 4: 7, 5: 8}),
    "stray_quote.csv": dict(clean=GOOD_LINES),
    "dangling_reply.csv": dict(clean=GOOD_LINES, metrics={"dangling_references": 1,
                                                          "dangling_root_threads": 1}),
    "reply_cycle.csv": dict(clean=GOOD_LINES, metrics={"cycles_broken": 1}),
    "self_reply.csv": dict(clean=GOOD_LINES, metrics={"self_replies": 1}),
    "long_text.csv": dict(clean={1: 2, 2: 3, 3: 4, 4: 6, 5: 8}),
}


def run_prepare(tmp_path: Path, case: str) -> tuple[Any, dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = make_root(tmp_path)
    shutil.copy(BAD / case, paths.raw_csv)
    return paths, prepare.run(paths, load_settings(paths.root).prepare, load_settings(paths.root).openings)


def read_outputs(paths: Any) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    tweets = pl.read_parquet(paths.tweets)
    q = pl.read_csv(paths.quarantine, infer_schema=False)
    m = json.loads((paths.metrics / "prepare.json").read_text())
    return tweets, q, m


def test_corpus_is_complete_and_documented():
    """Every file is covered by a test case and described in the README, and vice versa."""
    files = {p.name for p in BAD.glob("*.csv")}
    cases = set(ERRORS) | set(QUARANTINED) | set(CLEAN)
    assert files == cases
    readme = (BAD / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in files)


def test_corpus_is_reproducible():
    """The files are exactly what the generator writes (nothing edited by hand, no stray bytes)."""
    sys.path.insert(0, str(BAD))
    try:
        from _make_corpus import corpus
    finally:
        sys.path.remove(str(BAD))
    for name, data in corpus().items():
        assert (BAD / name).read_bytes() == data, name


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_unusable_file_is_a_clear_error(tmp_path, case):
    line, words = ERRORS[case]
    paths = make_root(tmp_path)
    shutil.copy(BAD / case, paths.raw_csv)
    with pytest.raises(DataError) as e:
        prepare.run(paths, load_settings(paths.root).prepare, load_settings(paths.root).openings)
    msg = str(e.value)
    assert e.value.path == paths.raw_csv and e.value.line == line
    assert msg.startswith(f"{paths.raw_csv}, line {line}: ")
    for w in words:
        assert w in msg
    # nothing half-made is left behind for the next stage
    assert not paths.tweets.exists() and not paths.threads.exists()
    assert not (paths.metrics / "prepare.json").exists()


@pytest.mark.parametrize("case", sorted(QUARANTINED))
def test_bad_records_are_quarantined_with_line_and_reason(tmp_path, case):
    exp = QUARANTINED[case]
    paths, metrics = run_prepare(tmp_path, case)
    tweets, q, m = read_outputs(paths)
    assert m == json.loads(json.dumps(metrics))
    assert m["rows_in"] == exp["rows_in"] == m["rows_clean"] + m["rows_quarantined"]
    assert dict(zip(tweets["tweet_id"], tweets["line_no"])) == exp["clean"]
    got = [(int(r["line_no"]), r["reason"], r["detail"]) for r in q.iter_rows(named=True)]
    assert got == exp["quarantine"]
    assert m["quarantine_by_reason"] == {exp["quarantine"][0][1]: len(exp["quarantine"])}
    for k, v in exp.get("metrics", {}).items():
        assert m[k] == v, k


@pytest.mark.parametrize("case", sorted(CLEAN))
def test_odd_but_valid_files_prepare_cleanly(tmp_path, case):
    exp = CLEAN[case]
    paths, _ = run_prepare(tmp_path, case)
    tweets, q, m = read_outputs(paths)
    assert q.height == 0 and m["rows_quarantined"] == 0
    assert m["rows_in"] == m["rows_clean"] == len(exp["clean"])
    assert dict(zip(tweets["tweet_id"], tweets["line_no"])) == exp["clean"]
    for k, v in exp.get("metrics", {}).items():
        assert m[k] == v, k


def _good_tweets(tmp_path: Path) -> pl.DataFrame:
    paths, _ = run_prepare(tmp_path / "good", "good.csv")
    return pl.read_parquet(paths.tweets)


@pytest.mark.parametrize("case", ["reordered_columns.csv", "bom.csv", "extra_column.csv",
                                  "stray_quote.csv", "crlf.csv"])
def test_format_variants_give_the_same_tweets(tmp_path, case):
    """Column order, a BOM, an extra column or Windows line endings change nothing downstream."""
    good = _good_tweets(tmp_path)
    paths, _ = run_prepare(tmp_path / "variant", case)
    tweets = pl.read_parquet(paths.tweets)
    if case == "stray_quote.csv":  # the only change is the literal quote inside tweet 4's text
        assert tweets.filter(pl.col("tweet_id") == 4)["text"][0] == \
            '@115713 We can help with your 5" screen.'
        tweets = tweets.with_columns(text=pl.when(pl.col("tweet_id") == 4).then(pl.lit(TEXT4))
                                     .otherwise(pl.col("text")))
    if case == "crlf.csv":  # the quoted newline inside tweet 3 is kept as written (\r\n)
        assert "\r\n" in tweets.filter(pl.col("tweet_id") == 3)["text"][0]
        assert not tweets["text"].str.ends_with("\r").any()
        assert not tweets["author_id"].str.contains("\r").any()
        tweets = tweets.with_columns(pl.col("text").str.replace_all("\r\n", "\n", literal=True))
    assert tweets.equals(good)


def test_graph_anomalies_are_threaded_not_dropped(tmp_path):
    """Dangling parent -> own thread, not an opening; cycle -> cut at the smallest id; self-reply
    -> link ignored. Every tweet is kept and in exactly one thread."""
    def threads_of(case: str) -> tuple[dict[int, tuple[Any, ...]], pl.DataFrame]:
        paths, _ = run_prepare(tmp_path / case, case)
        t = pl.read_parquet(paths.tweets)
        rows = {r["tweet_id"]: (r["parent_id"], r["thread_id"], r["depth"])
                for r in t.iter_rows(named=True)}
        return rows, pl.read_parquet(paths.threads)

    rows, th = threads_of("dangling_reply.csv")
    assert rows[2] == (None, 2, 0) and rows[1] == (3, 3, 1)
    t2 = th.filter(pl.col("thread_id") == 2).row(0, named=True)
    assert t2["root_dangling"] and not t2["is_opening"]
    rows, th = threads_of("reply_cycle.csv")
    assert rows[4] == (None, 4, 0) and rows[5] == (4, 4, 1)
    assert th["n_tweets"].sum() == 5
    rows, th = threads_of("self_reply.csv")
    assert rows[5] == (None, 5, 0) and rows[4] == (5, 5, 1)
    assert not th.filter(pl.col("thread_id") == 5)["is_opening"][0]  # it references a parent


def test_long_text_survives_byte_exact(tmp_path):
    paths, m = run_prepare(tmp_path, "long_text.csv")
    text = pl.read_parquet(paths.tweets).filter(pl.col("tweet_id") == 4)["text"][0]
    expect = ("x" * 99 + ",") * 1000 + '"quoted" and\na newline'
    assert text == expect and len(text.encode()) > 100_000
    assert m["careful_read"] is False  # the fast path handled it


def test_invalid_utf8_record_is_kept_in_quarantine_not_altered_in_tweets(tmp_path):
    paths, _ = run_prepare(tmp_path, "invalid_utf8.csv")
    tweets, q, _ = read_outputs(paths)
    assert not tweets["text"].str.contains("\ufffd").any()
    assert q["text"][0] == "@115713 We can \ufffd\ufffd help."  # the bytes are shown, not lost


def test_bare_cr_is_text_on_both_read_paths(tmp_path):
    """A lone CR inside a tweet is text for polars (fast path); the careful path must agree."""
    fast = tmp_path / "fast.csv"
    fast.write_bytes((BAD / "bare_cr.csv").read_bytes().replace(b"6,oops\n", b""))
    a = prepare.read_raw(fast)
    b = prepare.read_raw(BAD / "bare_cr.csv")
    assert not a.careful_path and b.careful_path
    assert a.frame["text"][3] == "@115713 We\rcan help." == b.frame["text"][3]
    empty_is_null = [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
                     for c in a.frame.columns if a.frame[c].dtype == pl.String]
    assert a.frame.with_columns(empty_is_null).equals(
        b.frame.head(5).with_columns(empty_is_null))


def test_fast_and_careful_readers_agree_on_the_real_sample():
    """Both readers give the same records and physical lines on the real 5,000-row sample, which
    has tweets with quoted newlines (so line numbers and record numbers differ)."""
    header = prepare._check_file(SAMPLE_CSV)
    fast, bad = prepare._fast_read(SAMPLE_CSV, header)
    careful = prepare._careful_read(SAMPLE_CSV, header)
    assert fast is not None and bad is None
    cols = [*header, "line_no", "line_end", "n_fields"]
    # polars reads an empty field as null, the csv module as "": the same to validate()
    empty_is_null = [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
                     for c in header]
    assert fast.select(cols).with_columns(empty_is_null).equals(
        careful.select(cols).with_columns(empty_is_null))
    assert (fast["line_end"] > fast["line_no"]).sum() > 0  # multi-line records are present
    physical = SAMPLE_CSV.read_bytes().count(b"\n")
    assert fast["line_end"].max() == physical


# --------------------------------------------------------------------------------------------------
# an unclosed quote among real records: only its own line(s) are lost
# --------------------------------------------------------------------------------------------------
N_REAL = 300  # records of the real sample used below (they include multi-line tweets)


def _real_head(n: int) -> tuple[list[str], pl.DataFrame]:
    """The first ``n`` records of the real sample, as physical lines, and what prepare reads."""
    lines = SAMPLE_CSV.read_text(encoding="utf-8").split("\n")
    raw = prepare.read_raw(SAMPLE_CSV).frame.head(n)
    return lines[:int(raw["line_end"][-1])], raw


def _break_quote(lines: list[str], raw: pl.DataFrame, nth: int, multi_line: bool) -> int:
    """Delete the quote that closes the text of the ``nth`` quoted-text record from the middle of
    the file (its text on one line or on several); returns the record's first physical line."""
    rows = raw.filter(pl.col("text").str.contains('[,"\\n]') & (pl.col("line_no") > 40)
                      & ~pl.col("response_tweet_id").fill_null("").str.contains(",")
                      & ((pl.col("line_end") > pl.col("line_no")) == multi_line))
    row = rows.row(nth, named=True)
    last = row["line_end"] - 1
    suffix = f'",{row["response_tweet_id"] or ""},{row["in_response_to_tweet_id"] or ""}'
    assert lines[last].endswith(suffix)
    lines[last] = lines[last][:-len(suffix)] + suffix[1:]
    return row["line_no"]


@pytest.mark.parametrize(("nth", "multi_line"), [(0, False), (7, False), (20, False),
                                                 (0, True), (5, True)])
def test_unclosed_quote_among_real_records_loses_only_that_record(tmp_path, nth, multi_line):
    """N real records, one text's closing quote deleted: N - 1 clean (the same tweets on the same
    lines as without the defect), 1 quarantined with its first line and `unclosed_quote`."""
    lines, raw = _real_head(N_REAL)
    broken = _break_quote(lines, raw, nth, multi_line)
    (tmp_path / "in").mkdir()
    paths = make_root(tmp_path / "in")
    paths.raw_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(paths.root)
    m = prepare.run(paths, settings.prepare, settings.openings)
    tweets, q, _ = read_outputs(paths)
    assert (m["rows_in"], m["rows_clean"], m["rows_quarantined"]) == (N_REAL, N_REAL - 1, 1)
    assert q.select("line_no", "reason").rows() == [(str(broken), "unclosed_quote")]
    assert q["detail"][0].startswith(f"a quoted field opened on line {broken} never closes")
    expect = raw.filter(pl.col("line_no") != broken)
    assert tweets.sort("line_no")["line_no"].to_list() == expect["line_no"].to_list()
    assert tweets.sort("line_no")["tweet_id"].to_list() == expect["tweet_id"].cast(pl.Int64).to_list()


def test_runaway_quote_over_several_lines_is_one_record(tmp_path):
    """The broken text itself has a line break: both lines are the one quarantined record."""
    text = (BAD / "good.csv").read_text().replace("@115713 We can help.", '"@115713 We can\nhelp.')
    p = tmp_path / "x.csv"
    p.write_text(text)
    clean, q = prepare.validate(prepare.read_raw(p), require_text=True)
    assert dict(zip(clean["tweet_id"], clean["line_no"])) == {1: 2, 2: 3, 3: 4, 5: 8}
    assert q.select("line_no", "reason").rows() == [(6, "unclosed_quote")]
    assert "lines 6-7 are the broken record, parsing resumes on line 8" in q["detail"][0]


def test_invalid_utf8_lines_handles_block_boundaries(tmp_path, monkeypatch):
    """Invalid bytes are located by line even when a multi-byte character straddles two blocks."""
    monkeypatch.setattr(prepare, "_UTF8_BLOCK", 7)
    p = tmp_path / "x.csv"
    p.write_bytes(b"ab\n" + "\u20ac\u20ac\u20ac".encode() + b"\ncd\xff\n\xe2\x82\n")
    bad = prepare.invalid_utf8_lines(p)
    assert bad.rows() == [(3, "0xff"), (4, "0xe2 0x82")]


def test_fetch_rejects_unusable_files_by_name(tmp_path):
    """`scrm fetch --source file` refuses what prepare could never read, naming the file."""
    target = tmp_path / "raw" / "twcs.csv"
    for case, words in [("gzip.csv", "gzip"), ("missing_column.csv", "header lacks created_at"),
                        ("empty.csv", "header lacks"), ("mac_cr.csv", "carriage return")]:
        with pytest.raises(FetchError) as e:
            fetch.fetch(target, fetch_settings(source="file", path=str(BAD / case)))
        assert str(BAD / case) in str(e.value) and words in str(e.value), case
    assert not target.exists()


# --------------------------------------------------------------------------------------------------
# the command line: exit code, file and line on stderr, no traceback
# --------------------------------------------------------------------------------------------------
def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SCRM_DEBUG", "SCRM_ROOT")}
    env["COLUMNS"] = "300"
    return subprocess.run([sys.executable, "-m", "scrm", *args, "--root", str(root)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("case", ["empty.csv", "header_only.csv", "gzip.csv", "mac_cr.csv"])
def test_cli_error_names_file_and_line_without_traceback(tmp_path, case):
    line, words = ERRORS[case]
    paths = make_root(tmp_path)
    shutil.copy(BAD / case, paths.raw_csv)
    r = cli(paths.root, "prepare")
    out = r.stdout + r.stderr
    assert r.returncode == DataError.exit_code == 2
    assert f"{paths.raw_csv}, line {line}:" in " ".join(r.stderr.split())
    assert words[0] in r.stderr
    assert "Traceback" not in out and "unexpected error" not in out


def test_cli_quarantine_run_succeeds_and_points_to_the_file(tmp_path):
    paths = make_root(tmp_path)
    shutil.copy(BAD / "unbalanced_quotes.csv", paths.raw_csv)
    r = cli(paths.root, "prepare")
    assert r.returncode == 0, r.stderr
    assert "rows_quarantined: 1" in r.stdout and str(paths.quarantine) in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_cli_error_shows_path_with_brackets_verbatim(tmp_path):
    root = tmp_path / "run[1]" / "x[/bold]y"
    root.mkdir(parents=True)
    paths = make_root(root)
    shutil.copy(BAD / "empty.csv", paths.raw_csv)
    r = cli(paths.root, "prepare")
    assert r.returncode == 2
    assert "Traceback" not in r.stdout + r.stderr
    assert f"{paths.raw_csv}, line 1:" in " ".join(r.stderr.split())
