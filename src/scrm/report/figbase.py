"""What every figure builder shares: input coercion, escaping of data text, layout, colours, axes.

Kept apart from :mod:`scrm.report.figures` (the builders themselves) so that module stays readable;
nothing here draws a figure of its own except the labelled empty one.

Safety: plotly renders labels and hover text as a small subset of HTML. Any text that comes from the data
(tweets, brand handles, topic names, category names) goes through :func:`escape_expr` /
:func:`escape_text`, so a tweet reading ``<script>...`` is drawn as those characters, never run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

TEMPLATE = "plotly_white"


# --------------------------------------------------------------------------------------------------
# input checks, escaping, layout, axes
# --------------------------------------------------------------------------------------------------
def to_polars(df: Any) -> pl.DataFrame:
    """Accept the polars or pandas frames the stages write and the notebooks read."""
    if isinstance(df, pl.DataFrame):
        return df
    if isinstance(df, pl.LazyFrame):
        return df.collect()
    return pl.from_pandas(df)


def require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """Fail with the missing column names rather than a KeyError deep inside plotly."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)} "
                         f"(has {', '.join(df.columns)})")


# Quotes become *numeric* entities: plotly's text renderer decodes &lt; &gt; &amp; and numeric
# entities but shows "&quot;" literally. Both forms are valid HTML escapes.
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"))


def escape_text(text: Any) -> str:
    """HTML-escape one label (brand, topic, model name) for plotly's HTML-ish text rendering."""
    out = "" if text is None else str(text)
    for raw, ent in _ENTITIES:
        out = out.replace(raw, ent)
    return out


def escape_expr(col: str | pl.Expr, max_chars: int | None = 280, wrap: int | None = 60) -> pl.Expr:
    """Whole-column HTML escaping (as :func:`escape_text`) plus wrapping for hover labels.

    Wrapping inserts line breaks *before* escaping so that a break never splits an entity; the breaks
    then become ``<br>``, the only tag we emit.
    """
    e = pl.col(col) if isinstance(col, str) else col
    e = e.cast(pl.String).fill_null("")
    if max_chars:
        e = pl.when(e.str.len_chars() > max_chars).then(e.str.slice(0, max_chars) + "…").otherwise(e)
    e = e.str.replace_all("\r", "", literal=True)
    if wrap:
        e = e.str.replace_all(rf"(.{{{wrap}}}\S*)\s", "${1}\n")  # break at the first space after wrap chars
    for raw, ent in _ENTITIES:
        e = e.str.replace_all(raw, ent, literal=True)
    return e.str.replace_all("\n", "<br>", literal=True)


def escaped(df: pl.DataFrame, col: str, **kw: Any) -> list[str]:
    """One column as escaped labels (:func:`escape_expr`), ready for a trace."""
    return df.select(escape_expr(col, **kw)).to_series().to_list()


def layout(fig: go.Figure, title: str, height: int = 420, **kw: Any) -> go.Figure:
    """The common look: escaped title, white template, fixed margins."""
    fig.update_layout(title={"text": escape_text(title), "x": 0.01}, template=TEMPLATE,
                      height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50}, **kw)
    return fig


def focus_range(dates: Any, weights: Any = None, share: float = 0.99) -> list[Any] | None:
    """Axis range holding the central ``share`` of the weight, padded by a day.

    A display choice, not a metric: the dataset has a few tweets from years before its busy
    weeks, and a full-range time axis would draw those weeks as hairlines. Zooming out still shows
    everything.
    """
    df = pl.DataFrame({"d": pl.Series(list(dates)),
                       "w": pl.Series(list(weights)) if weights is not None else 1})
    if df.is_empty():
        return None
    df = df.sort("d").with_columns(c=pl.col("w").cum_sum() / pl.col("w").sum())
    tail = (1.0 - share) / 2
    lo = df.filter(pl.col("c") >= tail)["d"][0]
    hi = df.filter(pl.col("c") >= 1.0 - tail)["d"][0]
    return [lo - timedelta(days=1), hi + timedelta(days=1)]


def log_ticks(max_value: float) -> list[int]:
    """1-2-5 ticks for a log axis of counts (plotly's default minor labels overlap)."""
    ticks, base = [], 1
    while base <= max(max_value, 1) * 1.01:
        ticks += [t for t in (base, 2 * base, 5 * base) if t <= max_value * 2]
        base *= 10
    return ticks


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure that says why it is empty (a stage produced no rows) rather than a blank frame."""
    fig = go.Figure(go.Scatter(x=[0], y=[0], mode="text", text=[escape_text(message)],
                               hoverinfo="skip", showlegend=False))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return layout(fig, title, height=220)


# --------------------------------------------------------------------------------------------------
# colours
# --------------------------------------------------------------------------------------------------
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
            "#e6550d", "#31a354", "#756bb1", "#636363")


def palette(i: int) -> str:
    """The ``i``-th colour of a fixed 20-colour cycle (same colour for the same position)."""
    return _PALETTE[i % len(_PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` -> ``rgba(r,g,b,alpha)`` (translucent bands and links)."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
