"""Scoring the distinct texts in worker processes gives the very scores of one process, in order."""

from __future__ import annotations

import csv

import polars as pl
from polars.testing import assert_frame_equal

from scrm.config import SAMPLE_CSV
from scrm.sentiment import get_scorer, score_frame, score_parallel


def test_parallel_scores_equal_serial_ones_in_order():
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][:1500]
    serial = get_scorer("vader").score(texts)
    assert score_parallel(texts, "vader", 2) == serial
    assert len(set(serial)) > 100  # real, varied scores
    df = pl.DataFrame({"text": texts + texts[:50]})
    assert_frame_equal(score_frame(df, scorer=get_scorer("vader")),
                       score_frame(df, scorer=get_scorer("vader"), parallel=("vader", 2, 1)))
