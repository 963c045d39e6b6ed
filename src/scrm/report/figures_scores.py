"""Score figures with intervals (the complaint detectors on the sealed test set).

A figure builder like those of :mod:`scrm.report.figures` (pure: a frame in, a plotly figure out,
data text escaped), in a module of its own only so that figures.py stays under 500 lines.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from .figbase import empty_figure, escape_text, escaped, layout, palette, require, to_polars


def score_intervals(scores: Any, title: str, group_col: str = "detector", score_col: str = "score",
                    value_col: str = "value", low_col: str = "ci_low",
                    high_col: str = "ci_high") -> go.Figure:
    """Dots with interval whiskers, one colour per score, one row per group (e.g. precision,
    recall and F1 of each complaint detector, with their intervals)."""
    df = to_polars(scores)
    require(df, [group_col, score_col, value_col, low_col, high_col], "score_intervals")
    df = df.drop_nulls([value_col])
    if df.is_empty():
        return empty_figure(title, "no scores")
    groups = list(dict.fromkeys(df[group_col].cast(pl.String).to_list()))[::-1]
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(df[score_col].cast(pl.String).to_list())):
        part = df.filter(pl.col(score_col).cast(pl.String) == name)
        lo, hi = part[low_col].fill_null(part[value_col]), part[high_col].fill_null(part[value_col])
        fig.add_trace(go.Scatter(
            x=part[value_col].to_list(), y=escaped(part, group_col, wrap=None), mode="markers",
            name=escape_text(name), marker={"size": 9, "color": palette(i)},
            error_x={"type": "data", "symmetric": False, "color": palette(i),
                     "array": (hi - part[value_col]).to_list(),
                     "arrayminus": (part[value_col] - lo).to_list()},
            hovertemplate="%{y}: %{x:.3f}<extra>%{fullData.name}</extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=[escape_text(g) for g in groups])
    fig.update_xaxes(range=[0, 1.02], title="score (dot) and its interval (whisker)")
    return layout(fig, title, height=max(280, 40 * len(groups) + 140))
