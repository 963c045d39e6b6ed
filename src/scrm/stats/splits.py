"""The time split: train on the past, test on the future (no look-ahead).

Why one function: "earlier openings train, later ones test" must cut at the same place in every
stage that claims it, with ties at the cut kept on one side.
"""

from __future__ import annotations

import math

import polars as pl


def time_split(frame: pl.DataFrame, train_fraction: float, column: str = "opening_at") -> pl.Expr:
    """'train' for rows before the cut time, 'test' from it on (ties stay on one side).

    The cut is the value of ``column`` at position ``floor(n * train_fraction)`` in sorted order.
    """
    n = frame.height
    if n == 0:
        return pl.lit("train")
    times = frame[column].sort()
    cut = times[min(int(math.floor(n * train_fraction)), n - 1)]
    return pl.when(pl.col(column) < pl.lit(cut)).then(pl.lit("train")).otherwise(pl.lit("test"))
