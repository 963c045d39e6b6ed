"""Every plotly figure of the project: pure builders, shared by the report and the notebooks.

Each builder takes a small, already-aggregated frame (polars or pandas) or a dict that a pipeline stage
wrote, and returns a ``plotly.graph_objects.Figure``. Builders compute no metric: they only lay out what
the stages measured, so a number in the report or a notebook is always one a stage wrote down.

Text from the data is escaped with :mod:`scrm.report.figbase` (``escape_expr`` /
``escape_text``), so a tweet reading ``<script>...`` is drawn as those characters, never run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import polars as pl

from .figbase import (empty_figure, escape_expr, escape_text, escaped, focus_range, layout,
                      log_ticks, palette, require, rgba, to_polars)

ROLE_COLORS = {"customer": "#1f77b4", "brand": "#ff7f0e"}
# the outcome labels (scrm.outcome.LABELS), good to bad, silence and no answer in greys
OUTCOME_COLORS = {"recovered": "#2ca02c", "stable_not_unhappy": "#9ecae1", "procedural": "#bcbddc",
                  "silent": "#c7c7c7", "deteriorated": "#ff7f0e", "still_unhappy": "#d62728",
                  "unanswered": "#636363"}
SENTIMENT_COLORS = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"}
# the customer's states (scrm.outcome.measure): opening and end of a conversation
STATE_COLORS = {"unhappy": "#d62728", "not_unhappy": "#9ecae1", "satisfied": "#2ca02c"}
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}


def _ranked_bars(df: pl.DataFrame, value_col: str, label_col: str, title: str, color: str,
                 hovertemplate: str, x_axis: dict[str, Any], min_height: int = 300,
                 row_px: int = 22, **bar: Any) -> go.Figure:
    """Horizontal bars, one per row of ``df`` in its order (the last row is drawn on top), labels
    escaped; ``bar`` passes extra trace properties (hover data, error bars)."""
    fig = go.Figure(go.Bar(x=df[value_col].to_list(), y=escaped(df, label_col, wrap=None),
                           orientation="h", marker_color=color, hovertemplate=hovertemplate, **bar))
    fig.update_xaxes(**x_axis)
    return layout(fig, title, height=max(min_height, row_px * df.height + 120))


def _shares(shares: Any, group_col: str, category_col: str, share_col: str,
            what: str) -> pl.DataFrame:
    """A (group, category, share) frame with its columns checked and rows lacking a group or a
    category dropped."""
    df = to_polars(shares)
    require(df, [group_col, category_col, share_col], what)
    return df.drop_nulls([group_col, category_col])


def _bottom_up(df: pl.DataFrame, group_col: str, group_order: Sequence[str] | None) -> list[str]:
    """The groups present, in ``group_order`` (default: alphabetical) read top to bottom, returned
    bottom first: plotly draws the first category of a y axis at the bottom."""
    present = df[group_col].cast(pl.String).unique().to_list()
    top_down = [g for g in group_order if g in present] if group_order else sorted(present)
    return list(reversed(top_down))


# --------------------------------------------------------------------------------------------------
# dataset overview
# --------------------------------------------------------------------------------------------------
def volume_over_time(daily: Any, title: str = "Tweets per day") -> go.Figure:
    """Stacked daily bars of customer and brand tweets (columns: date, role, tweets)."""
    df = to_polars(daily)
    require(df, ["date", "role", "tweets"], "volume_over_time")
    if df.is_empty():
        return empty_figure(title, "no tweets")
    fig = go.Figure()
    for role in sorted(df["role"].unique().to_list()):
        part = df.filter(pl.col("role") == role).sort("date")
        fig.add_trace(go.Bar(x=part["date"].to_list(), y=part["tweets"].to_list(),
                             name=escape_text(role), marker_color=ROLE_COLORS.get(role),
                             hovertemplate="%{x|%Y-%m-%d}: %{y} tweets<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(title="day (UTC)", range=focus_range(df["date"], df["tweets"]))
    fig.update_yaxes(title="tweets")
    return layout(fig, title)


def brand_volume(brands: Any, top: int = 15, title: str = "Conversations per brand") -> go.Figure:
    """Horizontal bars of threads per brand, the largest ``top`` brands (columns: brand, threads)."""
    df = to_polars(brands)
    require(df, ["brand", "threads"], "brand_volume")
    df = df.drop_nulls("brand").sort(["threads", "brand"], descending=[True, False]).head(top)
    if df.is_empty():
        return empty_figure(title, "no brand replied in any thread")
    return _ranked_bars(df.reverse(), "threads", "brand", title, ROLE_COLORS["brand"],
                        "%{y}: %{x} conversations<extra></extra>", row_px=24,
                        x_axis={"title": "conversations (threads)"})


def conversations_scatter(points: Any, title: str = "Conversations: when they start and how long "
                                                       "they run") -> go.Figure:
    """One dot per conversation (columns: opening_at, n_tweets, brand, answered, opening_text).

    The hover shows the opening tweet, escaped, so a reader can see what customers write.
    """
    df = to_polars(points)
    require(df, ["opening_at", "n_tweets", "brand", "answered", "opening_text"],
            "conversations_scatter")
    if df.is_empty():
        return empty_figure(title, "no conversations")
    df = df.with_columns(_hover=pl.concat_str(
        escape_expr(pl.col("brand").fill_null("(no brand reply)"), wrap=None), pl.lit("<br>"),
        escape_expr("opening_text")))
    fig = go.Figure()
    for answered, name, color in ((True, "answered", "#2ca02c"), (False, "not answered", "#d62728")):
        part = df.filter(pl.col("answered") == answered)
        if part.is_empty():
            continue
        fig.add_trace(go.Scatter(
            x=part["opening_at"].to_list(), y=part["n_tweets"].to_list(), mode="markers",
            name=name, marker={"color": color, "size": 6, "opacity": 0.6},
            hovertext=part["_hover"].to_list(),
            hovertemplate="%{hovertext}<br>%{y} tweets<extra>%{fullData.name}</extra>"))
    fig.update_xaxes(title="opening tweet (UTC)", range=focus_range(df["opening_at"]))
    fig.update_yaxes(title="tweets in the conversation", type="log",
                     tickvals=log_ticks(float(df["n_tweets"].max())))
    return layout(fig, title, height=460)


def thread_lengths(counts: Any, title: str = "How long conversations run") -> go.Figure:
    """Bars of the number of conversations per length (columns: n_tweets, threads), log y."""
    df = to_polars(counts)
    require(df, ["n_tweets", "threads"], "thread_lengths")
    if df.is_empty():
        return empty_figure(title, "no conversations")
    df = df.sort("n_tweets")
    fig = go.Figure(go.Bar(x=df["n_tweets"].to_list(), y=df["threads"].to_list(),
                           marker_color="#1f77b4",
                           hovertemplate="%{y} conversations with %{x} tweets<extra></extra>"))
    fig.update_xaxes(title="tweets in the conversation")
    fig.update_yaxes(title="conversations", type="log",
                     tickvals=log_ticks(float(df["threads"].max())))
    return layout(fig, title)


def conversation_timeline(turns: Any, title: str = "One conversation, turn by turn") -> go.Figure:
    """One marker per tweet of a thread (columns: turn, created_at, role, author_id, text): who
    spoke when; the hover shows the escaped tweet."""
    df = to_polars(turns)
    require(df, ["turn", "created_at", "role", "author_id", "text"], "conversation_timeline")
    if df.is_empty():
        return empty_figure(title, "no tweets")
    df = df.sort("turn").with_columns(_hover=pl.concat_str(
        pl.lit("turn "), pl.col("turn").cast(pl.String), pl.lit(" · "),
        escape_expr("author_id", wrap=None), pl.lit("<br>"), escape_expr("text")))
    fig = go.Figure(go.Scatter(x=df["created_at"].to_list(), y=df["turn"].to_list(),
                               mode="lines", line={"color": "#cccccc"}, hoverinfo="skip",
                               showlegend=False))
    for role in ("customer", "brand"):
        part = df.filter(pl.col("role") == role)
        if part.is_empty():
            continue
        fig.add_trace(go.Scatter(x=part["created_at"].to_list(), y=part["turn"].to_list(),
                                 mode="markers", name=role,
                                 marker={"size": 11, "color": ROLE_COLORS.get(role)},
                                 hovertext=part["_hover"].to_list(),
                                 hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>"))
    fig.update_xaxes(title="time (UTC)")
    fig.update_yaxes(title="turn", autorange="reversed")
    return layout(fig, title)


# --------------------------------------------------------------------------------------------------
# brand comparison (response time stage)
# --------------------------------------------------------------------------------------------------
def answered_share(service: Any, share_col: str = "answered_share", n_col: str = "openings",
                   low_col: str | None = None, high_col: str | None = None,
                   title: str = "Share of openings answered by the brand") -> go.Figure:
    """Horizontal bars of a share per brand (columns: brand, share_col, n_col), with the interval
    ``low_col``-``high_col`` as whiskers when given."""
    df = to_polars(service)
    require(df, ["brand", share_col, n_col, *[c for c in (low_col, high_col) if c]],
            "answered_share")
    df = df.drop_nulls(["brand", share_col]).sort([share_col, "brand"])
    if df.is_empty():
        return empty_figure(title, "no brand has an opening")
    err = ({"type": "data", "symmetric": False, "color": "#555",
            "array": (df[high_col] - df[share_col]).fill_null(0).to_list(),
            "arrayminus": (df[share_col] - df[low_col]).fill_null(0).to_list()}
           if low_col and high_col else None)
    return _ranked_bars(df, share_col, "brand", title, "#2ca02c",
                        "%{y}: %{x:.1%} of %{customdata}<extra></extra>", error_x=err,
                        x_axis={"title": share_col.replace("_", " "), "tickformat": ".0%",
                                "range": [0, 1.02]},
                        customdata=df[n_col].to_list())


def calibration_curve(bins: Any, title: str = "Calibration: answered within 1 hour (test period)",
                      model_col: str = "model") -> go.Figure:
    """Observed share against mean predicted probability per bin and model, Wilson whiskers
    (columns: model, mean_predicted, observed, observed_ci_low, observed_ci_high, n)."""
    df = to_polars(bins)
    require(df, [model_col, "mean_predicted", "observed", "observed_ci_low", "observed_ci_high",
                 "n"], "calibration_curve")
    if df.is_empty():
        return empty_figure(title, "no model was scored")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", showlegend=False, hoverinfo="skip",
                             line={"color": "#999", "dash": "dash"}))
    for i, m in enumerate(sorted(df[model_col].unique().to_list())):
        part = df.filter(pl.col(model_col) == m).sort("mean_predicted")
        fig.add_trace(go.Scatter(
            x=part["mean_predicted"].to_list(), y=part["observed"].to_list(), mode="lines+markers",
            name=escape_text(m), line={"color": palette(i)}, customdata=part["n"].to_list(),
            error_y={"type": "data", "symmetric": False, "color": palette(i),
                     "array": (part["observed_ci_high"] - part["observed"]).to_list(),
                     "arrayminus": (part["observed"] - part["observed_ci_low"]).to_list()},
            hovertemplate=f"{escape_text(m)}: predicted %{{x:.1%}}, observed %{{y:.1%}} "
                          "(%{customdata} openings)<extra></extra>"))
    fig.update_xaxes(title="mean predicted probability", tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title="observed share", tickformat=".0%", range=[0, 1.02])
    return layout(fig, title, height=460)


def latency_quantiles(quantiles: Any, title: str = "Time to first brand reply",
                      unit: str = "minutes") -> go.Figure:
    """Box plots drawn from precomputed quantiles (columns: brand, q1, median, q3, lower, upper).

    For stages that export a per-brand summary rather than every latency; fastest brand on top.
    """
    df = to_polars(quantiles)
    require(df, ["brand", "q1", "median", "q3", "lower", "upper"], "latency_quantiles")
    df = df.drop_nulls(["brand", "median"]).sort(["median", "brand"], descending=[True, False])
    if df.is_empty():
        return empty_figure(title, "no answered opening")
    fig = go.Figure(go.Box(
        y=escaped(df, "brand", wrap=None), q1=df["q1"].to_list(), median=df["median"].to_list(),
        q3=df["q3"].to_list(), lowerfence=df["lower"].to_list(), upperfence=df["upper"].to_list(),
        orientation="h", marker_color="#1f77b4", showlegend=False))
    fig.update_xaxes(type="log", title=f"{escape_text(unit)} (log scale)")
    return layout(fig, title, height=max(320, 22 * df.height + 120))


def importance_bars(importance: Any, feature_col: str = "feature", mean_col: str = "mean",
                    std_col: str | None = "std", top: int = 15,
                    title: str = "Permutation importance") -> go.Figure:
    """Horizontal bars of feature importance with ± one standard deviation (most important on top)."""
    df = to_polars(importance)
    require(df, [feature_col, mean_col], "importance_bars")
    df = df.drop_nulls([mean_col]).sort([mean_col, feature_col], descending=[True, False]).head(top)
    if df.is_empty():
        return empty_figure(title, "no importances")
    df = df.reverse()
    err = ({"type": "data", "array": df[std_col].fill_null(0).to_list()}
           if std_col and std_col in df.columns else None)
    return _ranked_bars(df, mean_col, feature_col, title, "#8c564b",
                        "%{y}: %{x:.4f}<extra></extra>", error_x=err,
                        x_axis={"title": "drop in test score when the feature is shuffled"})


def km_curves(km: Any, time_col: str = "minutes", surv_col: str = "still_waiting",
              group_col: str = "brand", lower_col: str | None = None,
              upper_col: str | None = None, log_x: bool = True, highlight: str | None = "(all)",
              title: str = "Kaplan–Meier: share of openings still waiting for a reply") -> go.Figure:
    """Step curves S(t) per group; optional confidence band (columns as named).

    ``highlight`` names a pooled group drawn thick and black so brands read against it. On a log
    time axis t = 0 is dropped (every curve starts at 1 there anyway).
    """
    df = to_polars(km)
    require(df, [group_col, time_col, surv_col], "km_curves")
    if df.is_empty():
        return empty_figure(title, "no curve")
    if log_x:
        df = df.filter(pl.col(time_col) > 0)
    fig = go.Figure()
    groups = sorted(df[group_col].cast(pl.String).unique().to_list(), key=lambda g: (g != highlight, g))
    for i, g in enumerate(groups):
        part = df.filter(pl.col(group_col).cast(pl.String) == g).sort(time_col)
        color = "#000000" if g == highlight else palette(i)
        name = escape_text(g)
        if lower_col and upper_col and {lower_col, upper_col} <= set(part.columns):
            fig.add_trace(go.Scatter(x=part[time_col].to_list(), y=part[upper_col].to_list(),
                                     line={"width": 0, "shape": "hv"}, hoverinfo="skip",
                                     showlegend=False, legendgroup=name))
            fig.add_trace(go.Scatter(x=part[time_col].to_list(), y=part[lower_col].to_list(),
                                     line={"width": 0, "shape": "hv"}, fill="tonexty",
                                     fillcolor=rgba(color, 0.15), hoverinfo="skip",
                                     showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(
            x=part[time_col].to_list(), y=part[surv_col].to_list(), mode="lines", name=name,
            legendgroup=name,
            line={"shape": "hv", "color": color, "width": 3.5 if g == highlight else 1.8},
            hovertemplate=f"{name}<br>%{{x:.3g}} {escape_text(time_col)}: %{{y:.1%}} waiting"
                          "<extra></extra>"))
    fig.update_xaxes(title=escape_text(time_col.replace("_", " ")) + (" (log scale)" if log_x else ""),
                     type="log" if log_x else "linear")
    fig.update_yaxes(title="still unanswered", tickformat=".0%", range=[0, 1.02])
    return layout(fig, title, height=460)


# --------------------------------------------------------------------------------------------------
# conversation outcomes
# --------------------------------------------------------------------------------------------------
def label_shares(shares: Any, category_col: str = "label", share_col: str = "share",
                 group_col: str = "brand", title: str = "Conversation outcome by brand",
                 colors: dict[str, str] | None = None, group_order: Sequence[str] | None = None,
                 label_order: Sequence[str] | None = None, n_col: str | None = None) -> go.Figure:
    """100 % stacked horizontal bars: share of each label within each group.

    ``group_order`` lists groups top to bottom (default: alphabetical); ``label_order`` the stacking
    order left to right (default: the order of ``colors``, then alphabetical).
    """
    df = _shares(shares, group_col, category_col, share_col, "label_shares")
    if df.is_empty():
        return empty_figure(title, "no labelled conversation")
    groups = _bottom_up(df, group_col, group_order)
    labs = df[category_col].cast(pl.String).unique().to_list()
    pref = list(label_order or []) + list(colors or {})
    labs = sorted(labs, key=lambda x: (pref.index(x) if x in pref else len(pref), x))
    counts = {}
    if n_col and n_col in df.columns:
        counts = {(g, c): n for g, c, n in zip(df[group_col].cast(pl.String).to_list(),
                                               df[category_col].cast(pl.String).to_list(),
                                               df[n_col].to_list())}
    fig = go.Figure()
    for i, lab in enumerate(labs):
        part = df.filter(pl.col(category_col).cast(pl.String) == lab)
        lookup = dict(zip(part[group_col].cast(pl.String).to_list(), part[share_col].to_list()))
        fig.add_trace(go.Bar(
            x=[lookup.get(g, 0.0) for g in groups], y=[escape_text(g) for g in groups],
            orientation="h", name=escape_text(lab),
            customdata=[counts.get((g, lab), "") for g in groups],
            marker_color=(colors or {}).get(lab, palette(i)),
            hovertemplate="%{y}: %{x:.1%}" + (" (%{customdata})" if counts else "")
                          + "<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="stack", legend={"orientation": "h", "y": -0.15, "traceorder": "normal"})
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    return layout(fig, title, height=max(240, 24 * len(groups) + 200))


def sentiment_sankey(transitions: Any, source_col: str = "source", target_col: str = "target",
                     value_col: str = "threads",
                     title: str = "How customer sentiment moves from the opening to the last "
                                  "customer turn") -> go.Figure:
    """Sankey of sentiment transitions (columns: source, target, value); nodes named by label.

    Sources and targets are drawn as separate node columns (``first: x`` and ``last: x``) so the
    flow reads left to right even when the label sets are the same.
    """
    df = to_polars(transitions)
    require(df, [source_col, target_col, value_col], "sentiment_sankey")
    df = df.filter(pl.col(value_col) > 0)
    if df.is_empty():
        return empty_figure(title, "no transitions")
    srcs = sorted(df[source_col].cast(pl.String).unique().to_list())
    tgts = sorted(df[target_col].cast(pl.String).unique().to_list())
    labels = [f"{s} (start)" for s in srcs] + [f"{t} (end)" for t in tgts]
    idx_s = {s: i for i, s in enumerate(srcs)}
    idx_t = {t: len(srcs) + i for i, t in enumerate(tgts)}
    known = {**OUTCOME_COLORS, **SENTIMENT_COLORS, **STATE_COLORS}
    node_colors = [known.get(s, palette(i)) for i, s in enumerate(srcs + tgts)]
    link_colors = [rgba(known.get(s, "#7f7f7f"), 0.35)
                   for s in df[source_col].cast(pl.String).to_list()]
    fig = go.Figure(go.Sankey(
        arrangement="fixed",
        node={"label": [escape_text(x) for x in labels], "color": node_colors, "pad": 18},
        link={"source": [idx_s[s] for s in df[source_col].cast(pl.String).to_list()],
              "target": [idx_t[t] for t in df[target_col].cast(pl.String).to_list()],
              "value": df[value_col].to_list(), "color": link_colors,
              "hovertemplate": "%{source.label} → %{target.label}: %{value} conversations"
                               "<extra></extra>"}))
    return layout(fig, title, height=420)


def findings_forest(findings: Any, label_col: str = "feature", est_col: str = "diff",
                    low_col: str = "diff_ci_low", high_col: str = "diff_ci_high",
                    group_col: str | None = "brand",
                    title: str = "Recovery rate with minus without each reply feature",
                    x_title: str = "difference in recovery rate (percentage points)",
                    tickformat: str = "+.0%", zero_line: bool = True) -> go.Figure:
    """Dot-and-whisker plot of estimates with their confidence intervals (one row per finding).

    For differences, a whisker crossing the zero line means the data cannot tell the two rates
    apart; for rates (``zero_line=False``, ``tickformat=".0%"``) the rows are set side by side.
    """
    df = to_polars(findings)
    require(df, [label_col, est_col, low_col, high_col], "findings_forest")
    df = df.drop_nulls([est_col])
    if df.is_empty():
        return empty_figure(title, "no finding has both groups")
    names = (df.select(pl.concat_str(pl.col(group_col).cast(pl.String), pl.lit(" · "),
                                     pl.col(label_col).cast(pl.String)))
             if group_col and group_col in df.columns else df.select(pl.col(label_col)))
    df = df.with_columns(_name=names.to_series()).reverse()
    fig = go.Figure(go.Scatter(
        x=df[est_col].to_list(), y=escaped(df, "_name", wrap=None), mode="markers",
        marker={"size": 9, "color": "#1f77b4"},
        error_x={"type": "data", "symmetric": False,
                 "array": (df[high_col] - df[est_col]).to_list(),
                 "arrayminus": (df[est_col] - df[low_col]).to_list(), "color": "#1f77b4"},
        hovertemplate="%{y}: %{x:" + tickformat.replace("0%", "1%") + "}<extra></extra>"))
    if zero_line:
        fig.add_vline(x=0, line={"color": "#999", "dash": "dash"})
    fig.update_xaxes(title=x_title, tickformat=tickformat)
    return layout(fig, title, height=max(300, 24 * df.height + 120))


# --------------------------------------------------------------------------------------------------
# complaint categories and topics
# --------------------------------------------------------------------------------------------------
def category_heatmap(shares: Any, category_col: str = "label", share_col: str = "share",
                     group_col: str = "brand", n_col: str | None = "n",
                     title: str = "Complaint categories by brand (share of each brand's openings)",
                     group_order: Sequence[str] | None = None, percent: bool = True,
                     zmax: float | None = None) -> go.Figure:
    """Heatmap of category shares per group, so brands can be compared column by column.

    ``group_order`` lists the rows top to bottom (default: alphabetical); ``percent=False`` shows
    the values as plain numbers (e.g. F1 scores, with ``zmax=1``).
    """
    df = _shares(shares, group_col, category_col, share_col, "category_heatmap")
    if df.is_empty():
        return empty_figure(title, "no labelled opening")
    groups = _bottom_up(df, group_col, group_order)
    cats = sorted(df[category_col].cast(pl.String).unique().to_list())
    lookup = {(g, c): v for g, c, v in zip(df[group_col].cast(pl.String).to_list(),
                                           df[category_col].cast(pl.String).to_list(),
                                           df[share_col].to_list())}
    counts = ({(g, c): v for g, c, v in zip(df[group_col].cast(pl.String).to_list(),
                                            df[category_col].cast(pl.String).to_list(),
                                            df[n_col].to_list())}
              if n_col and n_col in df.columns else {})
    z = [[lookup.get((g, c), 0.0) for c in cats] for g in groups]
    custom = [[counts.get((g, c), 0) for c in cats] for g in groups]
    fig = go.Figure(go.Heatmap(
        z=z, x=[escape_text(c) for c in cats], y=[escape_text(g) for g in groups],
        customdata=custom, colorscale="Blues", zmin=0, zmax=zmax,
        colorbar={"tickformat": ".0%" if percent else ".2f"},
        hovertemplate="%{y} · %{x}: " + ("%{z:.1%}" if percent else "%{z:.3f}")
                      + (" (%{customdata})" if counts else "") + "<extra></extra>"))
    fig.update_xaxes(tickangle=-35)
    return layout(fig, title, height=max(360, 22 * len(groups) + 200))


def topics_over_time(counts: Any, period_col: str = "period", topic_col: str = "topic",
                     n_col: str = "openings",
                     title: str = "Topics of customer openings over time") -> go.Figure:
    """Stacked bars of openings per topic and period (columns: period, topic, openings)."""
    df = to_polars(counts)
    require(df, [period_col, topic_col, n_col], "topics_over_time")
    if df.is_empty():
        return empty_figure(title, "no topic assignments")
    fig = go.Figure()
    for i, t in enumerate(sorted(df[topic_col].cast(pl.String).unique().to_list())):
        part = df.filter(pl.col(topic_col).cast(pl.String) == t).sort(period_col)
        fig.add_trace(go.Bar(x=part[period_col].to_list(), y=part[n_col].to_list(),
                             name=escape_text(t), marker_color=palette(i),
                             hovertemplate="%{x}: %{y}<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="stack", legend={"font": {"size": 10}})
    fig.update_xaxes(title=escape_text(period_col), range=focus_range(df[period_col], df[n_col]))
    fig.update_yaxes(title="openings")
    return layout(fig, title, height=460)


def topic_sizes(info: Any, name_col: str = "name", n_col: str = "count",
                docs_col: str | None = None, top: int = 20,
                title: str = "Largest topics") -> go.Figure:
    """Horizontal bars of topic sizes; hover shows an escaped representative opening if given."""
    df = to_polars(info)
    require(df, [name_col, n_col], "topic_sizes")
    df = df.sort([n_col, name_col], descending=[True, False]).head(top).reverse()
    if df.is_empty():
        return empty_figure(title, "no topics")
    hover = (escaped(df, docs_col) if docs_col and docs_col in df.columns
             else [""] * df.height)
    return _ranked_bars(df, n_col, name_col, title, "#9467bd",
                        "%{y}: %{x} openings<br>%{hovertext}<extra></extra>", min_height=320,
                        x_axis={"title": "openings"}, hovertext=hover)


# --------------------------------------------------------------------------------------------------
# classifier leaderboard
# --------------------------------------------------------------------------------------------------
def leaderboard(results: Any, system_col: str = "system", score_col: str = "macro_f1",
                low_col: str = "macro_f1_low", high_col: str = "macro_f1_high",
                mark_col: str = "indistinguishable_from_best",
                title: str = "Classifier leaderboard") -> go.Figure:
    """Each system's score with its 95 % interval, best on top; a filled dot cannot be told apart
    from the best, a hollow one is worse beyond chance."""
    df = to_polars(results)
    require(df, [system_col, score_col, low_col, high_col, mark_col], "leaderboard")
    df = df.drop_nulls([score_col]).sort(score_col)
    if df.is_empty():
        return empty_figure(title, "no benchmark results")
    same = df[mark_col].fill_null(False).to_list()
    fig = go.Figure(go.Scatter(
        x=df[score_col].to_list(), y=escaped(df, system_col, wrap=None), mode="markers",
        marker={"size": 10, "symbol": ["circle" if m else "circle-open" for m in same],
                "color": [palette(0) if m else palette(3) for m in same]},
        error_x={"type": "data", "symmetric": False, "array": (df[high_col] - df[score_col]).to_list(),
                 "arrayminus": (df[score_col] - df[low_col]).to_list()},
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_xaxes(title=escape_text(score_col.replace("_", "-")) + " (95 % interval)", range=[0, 1])
    return layout(fig, title, height=max(300, 26 * df.height + 140))
