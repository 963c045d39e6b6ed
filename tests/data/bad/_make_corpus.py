"""Regenerate the bad-input corpus (byte-exact; run from anywhere): python tests/data/bad/_make_corpus.py

Every file is a small variation of BASE (5 tweets, two threads, one record whose quoted text spans two
physical lines) so that tests can assert exact physical line numbers. README.md in this folder lists
each case and its expected outcome; tests/test_bad_inputs.py checks them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id"
# physical lines: 1 header, 2, 3, 4-5 (quoted newline), 6, 7
ROWS = [
    '1,sprintcare,False,Tue Oct 31 22:10:47 +0000 2017,@115712 I understand. Please DM us.,2,3',
    '2,115712,True,Tue Oct 31 22:11:45 +0000 2017,@sprintcare and how do you propose we do that,,1',
    '3,115712,True,Tue Oct 31 22:08:27 +0000 2017,"@sprintcare I sent ""several"" messages,\nno one answers",1,',
    '4,AppleSupport,False,Tue Oct 31 22:12:00 +0000 2017,@115713 We can help.,,5',
    '5,115713,True,Tue Oct 31 22:01:00 +0000 2017,@AppleSupport my phone died,4,',
]


def lines(rows: list[str], header: str = HEADER, nl: str = "\n", final_nl: bool = True) -> bytes:
    text = nl.join([header, *rows]) + (nl if final_nl else "")
    return text.encode("utf-8")


def swap(rows: list[str], i: int, new: str) -> list[str]:
    out = list(rows)
    out[i] = new
    return out


def reorder(row_or_header: str, order: list[int]) -> str:
    import csv
    import io

    fields = next(csv.reader(io.StringIO(row_or_header, newline="")))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([fields[i] for i in order])
    return buf.getvalue()


def corpus() -> dict[str, bytes]:
    order = [4, 0, 6, 2, 1, 5, 3]  # text first, ids scattered
    big = ("x" * 99 + ",") * 1000 + '""quoted"" and\na newline'  # commas, quotes, newline
    files = {
        "good.csv": lines(ROWS),
        "empty.csv": b"",
        "header_only.csv": (HEADER + "\n").encode(),
        "missing_column.csv": lines([reorder(r, [0, 1, 2, 4, 5, 6]) for r in ROWS],
                                    header=reorder(HEADER, [0, 1, 2, 4, 5, 6])),
        "extra_column.csv": lines([r + ",en" for r in ROWS], header=HEADER + ",lang"),
        "reordered_columns.csv": lines([reorder(r, order) for r in ROWS],
                                       header=reorder(HEADER, order)),
        "crlf.csv": lines(ROWS, nl="\r\n").replace(b"messages,\nno", b"messages,\r\nno"),
        "bom.csv": b"\xef\xbb\xbf" + lines(ROWS),
        "invalid_utf8.csv": lines(ROWS).replace(b"We can help.", b"We can \xff\xfe help."),
        "truncated_last_line.csv": lines(ROWS[:4] + ["5,115713,True,Tue Oct 31 22:01"],
                                         final_nl=False),
        "unbalanced_quotes.csv": lines(swap(ROWS, 3, '4,AppleSupport,False,Tue Oct 31 22:12:00 '
                                            '+0000 2017,"@115713 We can help.,,5')),
        "bad_date.csv": lines(swap(ROWS, 3, ROWS[3].replace("Tue Oct 31 22:12:00 +0000 2017",
                                                            "31/10/2017 22:12"))),
        "bad_inbound.csv": lines(swap(ROWS, 3, ROWS[3].replace(",False,", ",maybe,"))),
        "non_numeric_id.csv": lines(swap(ROWS, 3, ROWS[3].replace("4,", "4a,", 1))),
        "duplicate_id.csv": lines([*ROWS, "2,115712,True,Tue Oct 31 22:13:00 +0000 2017,"
                                          "@sprintcare a different text,,1"]),
        "dangling_reply.csv": lines(swap(ROWS, 1, ROWS[1].replace(",,1", ",,999"))),
        "reply_cycle.csv": lines(swap(ROWS, 4, ROWS[4].replace(",4,", ",4,4"))),
        "self_reply.csv": lines(swap(ROWS, 4, ROWS[4].replace(",4,", ",,5"))),
        "long_text.csv": lines(swap(ROWS, 3, '4,AppleSupport,False,Tue Oct 31 22:12:00 +0000 2017,"'
                                    + big + '",,5')),
        "gzip.csv": gzip.compress(lines(ROWS), mtime=0),
        # extra cases
        "blank_lines.csv": lines([ROWS[0], "", *ROWS[1:], ""]),
        "too_many_fields.csv": lines(swap(ROWS, 3, ROWS[3] + ",surplus")),
        "stray_quote.csv": lines(swap(ROWS, 3, ROWS[3].replace("We can help.",
                                                               'We can help with your 5" screen.'))),
        "duplicate_header.csv": lines([r + ",dup" for r in ROWS], header=HEADER + ",text"),
        "mac_cr.csv": lines(ROWS, nl="\r"),
        # tweet 4 opens a quote that the quote at the end of tweet 5's text closes: the fields add up,
        # so polars reads both tweets as one record; only the swallowed date gives it away
        "swallowed_record.csv": lines(swap(swap(ROWS, 3, '4,AppleSupport,False,Tue Oct 31 22:12:00 '
                                                '+0000 2017,"@115713 We can help.,,5'),
                                           4, ROWS[4].replace("phone died", 'phone died at 5"'))),
        # a lone CR inside a tweet, plus a short last row that sends the file down the careful path
        "bare_cr.csv": lines([*swap(ROWS, 3, ROWS[3].replace("We can", "We\rcan")), "6,oops"]),
    }
    return files


if __name__ == "__main__":
    for name, data in corpus().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(corpus())} files to {HERE}")
