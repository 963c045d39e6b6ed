"""Service levels: the per-brand service table, overall figures, Kaplan-Meier curves, log-rank and
the plot tables, all from the per-opening frame of :mod:`.features` (censoring respected)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats import survival
from ..stats.intervals import finite
from .features import UNKNOWN_BRAND, seconds

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings

ALL_BRANDS = "(all)"
HEADLINE_COLUMNS = ("n_openings", "n_answered", "answered_share", "median_latency_s",
                    "p90_latency_s", "km_median_latency_s")


def sla_label(minutes: int) -> str:
    """15 -> '15m', 60 -> '1h', 1440 -> '24h' (column-name friendly)."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def metric_value(v: Any) -> Any:
    """A metrics-file scalar: counts stay integers, other numbers are :func:`finite` floats."""
    return v if isinstance(v, int) else finite(v)


def reply_latencies(tweets: pl.DataFrame, opening_ids: pl.Series) -> pl.DataFrame:
    """Every brand reply to a customer tweet (reply_id, brand, parent_id, to_opening, latency_s)."""
    parents = tweets.lazy().filter(pl.col("role") == "customer").select(
        pl.col("tweet_id").alias("parent_id"), pl.col("created_at").alias("_parent_at"))
    return (tweets.lazy().filter((pl.col("role") == "brand") & pl.col("parent_id").is_not_null())
            .join(parents, on="parent_id", how="inner")
            .select(pl.col("tweet_id").alias("reply_id"), pl.col("author_id").alias("brand"),
                    "parent_id",
                    to_opening=pl.col("parent_id").is_in(opening_ids.implode()),
                    raw_latency_s=seconds(pl.col("created_at") - pl.col("_parent_at")))
            .with_columns(latency_s=pl.col("raw_latency_s").clip(lower_bound=0.0))
            .sort("reply_id")
            .collect())


def _latency_stats(prefix: str, col: str = "latency_s") -> list[pl.Expr]:
    c = pl.col(col)
    return [c.median().alias(f"{prefix}median_latency_s"),
            c.quantile(0.9, "linear").alias(f"{prefix}p90_latency_s")]


def _sla_shares(sla_minutes: tuple[int, ...]) -> list[pl.Expr]:
    """Share of openings answered within each limit; unanswered openings count as not served."""
    return [pl.col("latency_s").le(m * 60.0).fill_null(False).mean()
            .alias(f"share_within_{sla_label(m)}") for m in sla_minutes]


def service_table(op: pl.DataFrame, replies: pl.DataFrame,
                  settings: ResponseTimeSettings) -> pl.DataFrame:
    """One row per brand: volume, answered share, latency quantiles, SLA shares, KM median, replies.

    Shares within a limit count unanswered openings in the denominator (a customer who never got
    an answer was not served within the hour either). ``km_median_latency_s`` uses the censored
    survival curve instead, so late openings near the end of the data do not bias it.
    """
    lat = pl.col("latency_s")
    table = op.group_by("brand").agg(
        pl.len().cast(pl.Int64).alias("n_openings"),
        pl.col("answered").sum().cast(pl.Int64).alias("n_answered"),
        pl.col("answered").mean().alias("answered_share"),
        *_latency_stats(""),
        *_sla_shares(settings.sla_minutes),
    )
    km = [{"brand": b, "km_median_latency_s": survival.km_quantile(g["duration_s"], g["event"])}
          for (b,), g in op.group_by("brand")]
    km_df = pl.DataFrame(km, schema={"brand": pl.String, "km_median_latency_s": pl.Float64})
    rep = replies.group_by("brand").agg(
        pl.len().cast(pl.Int64).alias("n_replies"), *_latency_stats("reply_"),
        n_later_replies=(~pl.col("to_opening")).sum().cast(pl.Int64),
        later_median_latency_s=lat.filter(~pl.col("to_opening")).median(),
        later_p90_latency_s=lat.filter(~pl.col("to_opening")).quantile(0.9, "linear"))
    return (table.join(km_df, on="brand", how="left").join(rep, on="brand", how="left")
            .with_columns(pl.col("n_replies", "n_later_replies").fill_null(0))
            .sort(["n_openings", "brand"], descending=[True, False]))


def overall_summary(op: pl.DataFrame, replies: pl.DataFrame, settings: ResponseTimeSettings,
                    info: dict[str, Any]) -> dict[str, Any]:
    """Headline figures over all openings (same definitions as the service table)."""
    lat = pl.col("latency_s")
    row = op.select(
        n_openings=pl.len(), n_answered=pl.col("answered").sum(),
        answered_share=pl.col("answered").mean(), median_latency_s=lat.median(),
        p90_latency_s=lat.quantile(0.9, "linear"),
        n_censored=(~pl.col("event")).sum(),
        n_brands=pl.col("brand").n_unique(),
        n_brand_from_mention=(pl.col("brand_source") == "mention").sum(),
        n_brand_unknown=(pl.col("brand_source") == "none").sum(),
        *_sla_shares(settings.sla_minutes),
    ).row(0, named=True)
    out = {k: metric_value(v) for k, v in row.items()}
    out["median_latency_min"] = finite(None if row["median_latency_s"] is None
                                       else row["median_latency_s"] / 60.0)
    out["km_median_latency_s"] = finite(survival.km_quantile(op["duration_s"], op["event"]))
    out["end_of_data"] = info["end_of_data"].isoformat() if info.get("end_of_data") else None
    out["horizon_hours"] = settings.horizon_hours
    out["negative_latency_clipped"] = info.get("negative_latency_clipped", 0)

    def reply_block(df: pl.DataFrame) -> dict[str, Any]:
        r = df.select(n=pl.len(), median_latency_s=lat.median(),
                      p90_latency_s=lat.quantile(0.9, "linear")).row(0, named=True)
        return {k: metric_value(v) for k, v in r.items()}

    out["replies"] = reply_block(replies)
    out["later_turns"] = reply_block(replies.filter(~pl.col("to_opening")))
    out["replies"]["negative_latency_clipped"] = int(
        replies.select((pl.col("raw_latency_s") < 0).sum()).item() or 0)
    return out


def brand_rows(table: pl.DataFrame, brands: list[str]) -> dict[str, dict[str, Any]]:
    """The headline columns of the service table for the given brands (metrics-file values)."""
    keep = [*HEADLINE_COLUMNS, *[c for c in table.columns if c.startswith("share_within_")],
            "reply_median_latency_s", "later_median_latency_s"]
    rows = table.filter(pl.col("brand").is_in(brands)).to_dicts()
    return {r["brand"]: {k: metric_value(r[k]) for k in keep} for r in rows}


def largest_brands(op: pl.DataFrame, k: int, min_openings: int) -> list[str]:
    """Top-k known brands by openings (ties by name), each with at least ``min_openings``."""
    counts = (op.filter(pl.col("brand") != UNKNOWN_BRAND).group_by("brand").len()
              .filter(pl.col("len") >= min_openings)
              .sort(["len", "brand"], descending=[True, False]))
    return counts["brand"].head(k).to_list()


def brand_logrank(op: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, Any]:
    """Log-rank test that the ``logrank_brands`` largest brands share one waiting-time curve."""
    brands = largest_brands(op, settings.logrank_brands, settings.min_brand_openings)
    data = op.filter(pl.col("brand").is_in(brands))
    return survival.logrank(data["duration_s"].to_numpy() / 60.0,
                            data["event"].cast(pl.Int64).to_numpy(), data["brand"].to_numpy())


def km_grid(settings: ResponseTimeSettings) -> np.ndarray:
    """Minutes: 0 plus a log-spaced grid up to ``km_max_hours`` (readable on a log axis)."""
    top = settings.km_max_hours * 60.0
    return np.unique(np.round(np.r_[0.0, np.geomspace(0.5, top, settings.km_grid_points - 1)], 3))


def km_curves(op: pl.DataFrame, settings: ResponseTimeSettings) -> pl.DataFrame:
    """KM curves (probability of still waiting for a first response) of all openings and of the
    ``km_plot_brands`` largest brands, in minutes."""
    brands = largest_brands(op, settings.km_plot_brands, settings.min_brand_openings)
    frame = op.select("brand", duration=pl.col("duration_s") / 60.0, event="event")
    t = survival.km_table(frame, "brand", brands, km_grid(settings), all_label=ALL_BRANDS)
    return t.rename({"t": "minutes", "survival": "still_waiting", "event_prob": "answered_prob"})


def latency_plot_table(op: pl.DataFrame, settings: ResponseTimeSettings) -> pl.DataFrame:
    """Latency quantiles (minutes) per brand with enough openings: the DVC 'distribution' plot."""
    keep = set(largest_brands(op, 10**9, settings.min_brand_openings))
    lat = pl.col("latency_s") / 60.0
    return (op.filter(pl.col("brand").is_in(sorted(keep)) & pl.col("answered"))
            .group_by("brand")
            .agg(n_answered=pl.len(),
                 **{f"{n}_min": lat.quantile(q, "linear").round(3)
                    for n, q in (("p10", .1), ("p25", .25), ("median", .5), ("p75", .75),
                                 ("p90", .9))})
            .join(op.group_by("brand").agg(n_openings=pl.len(),
                                           answered_share=pl.col("answered").mean().round(4)),
                  on="brand", how="left")
            .sort(["median_min", "brand"]))
