"""Service levels with intervals: the figures of one group of openings (:func:`service_stats`), the
per-brand service table, the overall summary, Kaplan-Meier curves with bands, log-rank tests (global
and pairwise with Holm) and the plot tables, all from the per-opening frame of :mod:`.features`.

Every figure of a group carries an interval at ``response_time.ci_level``:

* shares (answered; answered within 15 min / 1 h / 24 h): Wilson;
* Kaplan-Meier median time to first response: Brookmeyer-Crowley (statsmodels, cloglog);
* restricted mean time to first response within ``rmst_hours`` (RMST): Greenwood-type standard
  error, interval on the log scale (it stays positive);
* median and 90th percentile latency of the answered openings, and of replies: order statistics.

"Answered within X" counts an opening as served when a response came within X, as not served when
it was followed at least X without one, and leaves it out of the denominator when it was followed
less than X and is still unanswered (its status at X is unknown): ``n_known_X`` is the denominator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..data.schema import typed_frame
from ..stats import survival
from ..stats.intervals import (finite, log_normal_interval, newcombe_interval, quantile_interval,
                               wilson_interval, z_value)
from .features import UNKNOWN_BRAND, seconds

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings

ALL_BRANDS = "(all)"
LABEL_COLUMNS = ("brand", "a", "b", "definition", "population", "scope")
PAIRWISE_COLUMNS = ("a", "b", "n_a", "n_b", "logrank_chi2", "logrank_df", "logrank_p",
                    "logrank_log10_p", "rmst_a", "rmst_b", "rmst_diff", "rmst_diff_ci_low",
                    "rmst_diff_ci_high", "rmst_diff_z", "rmst_diff_p", "logrank_p_holm",
                    "logrank_log10_p_holm", "within_1h_diff", "within_1h_diff_ci_low",
                    "within_1h_diff_ci_high")


def stat_dtype(column: str) -> pl.DataType:
    """Column types of the service, sensitivity and pairwise tables, declared so that a figure no
    group has (no answered opening: no median) is a null Float64, never an untyped column: labels
    are text, counts (``n_*``, ``*_df``) integers, every other figure a float."""
    if column in LABEL_COLUMNS:
        return pl.String()
    if column.startswith("n_") or column.endswith("_df"):
        return pl.Int64()
    return pl.Float64()


def sla_label(minutes: int) -> str:
    """15 -> '15m', 60 -> '1h', 1440 -> '24h' (column-name friendly)."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def metric_value(v: Any) -> Any:
    """A metrics-file scalar: counts stay integers, other numbers are :func:`finite` floats."""
    return v if isinstance(v, int | np.integer) and not isinstance(v, bool) else finite(v)


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


def share_fields(prefix: str, k: int, n: int, z: float) -> dict[str, Any]:
    """``prefix`` = k / n with its Wilson interval (``prefix_ci_low``, ``prefix_ci_high``)."""
    lo, hi = wilson_interval(np.array([k]), np.array([n]), z)
    return {prefix: finite(k / n) if n else None,
            f"{prefix}_ci_low": finite(lo[0]), f"{prefix}_ci_high": finite(hi[0])}


def _quantile(prefix: str, minutes: np.ndarray, q: float, level: float) -> dict[str, Any]:
    """Sample quantile (linear interpolation, like polars) with its order-statistic interval."""
    if minutes.size == 0:
        return {prefix: None, f"{prefix}_ci_low": None, f"{prefix}_ci_high": None}
    lo, hi = quantile_interval(minutes, q, level)
    return {prefix: finite(np.quantile(minutes, q)), f"{prefix}_ci_low": finite(lo),
            f"{prefix}_ci_high": finite(hi)}


def service_stats(df: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, Any]:
    """The service figures of one group of openings, each with its interval (module docstring).

    ``df`` holds ``answered``, ``latency_s``, ``follow_s``, ``duration_s`` and ``event``.
    """
    level = settings.ci_level
    z = z_value(level)
    n = df.height
    k = int(df["answered"].sum())
    out: dict[str, Any] = {"n_openings": n, "n_answered": k, **share_fields("answered_share", k, n, z)}
    for m in settings.sla_minutes:
        limit = m * 60.0
        row = df.select(
            within=(pl.col("latency_s") <= limit).fill_null(False).sum(),
            known=((pl.col("latency_s") <= limit).fill_null(False)
                   | (pl.col("follow_s") >= limit)).sum()).row(0, named=True)
        label = sla_label(m)
        out[f"n_known_{label}"] = int(row["known"])
        out.update(share_fields(f"share_within_{label}", int(row["within"]), int(row["known"]), z))
    minutes = df["duration_s"].to_numpy().astype(float) / 60.0
    event = df["event"].cast(pl.Float64).to_numpy()
    est, lo, hi = survival.km_quantile_ci(minutes, event, 0.5, level)
    out.update(km_median_min=finite(est), km_median_min_ci_low=lo, km_median_min_ci_high=hi)
    area, se = survival.rmst(minutes, event, settings.rmst_hours * 60.0) if n else (
        float("nan"), float("nan"))
    lo, hi = log_normal_interval(area, se, z)
    out.update(rmst_min=finite(area), rmst_min_ci_low=finite(lo), rmst_min_ci_high=finite(hi))
    answered = df.filter(pl.col("answered"))["latency_s"].to_numpy().astype(float) / 60.0
    out.update(_quantile("median_latency_min", answered, 0.5, level))
    out.update(_quantile("p90_latency_min", answered, 0.9, level))
    return out


def reply_stats(replies: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, Any]:
    """Brand replies to any customer tweet, and to later turns only: counts and median minutes."""
    lat = replies["latency_s"].to_numpy().astype(float) / 60.0
    later = replies.filter(~pl.col("to_opening"))["latency_s"].to_numpy().astype(float) / 60.0
    return {"n_replies": int(lat.size),
            **_quantile("reply_median_min", lat, 0.5, settings.ci_level),
            "n_later_replies": int(later.size),
            **_quantile("later_median_min", later, 0.5, settings.ci_level)}


def service_table(op: pl.DataFrame, replies: pl.DataFrame,
                  settings: ResponseTimeSettings) -> pl.DataFrame:
    """One row per brand: :func:`service_stats` and :func:`reply_stats`, largest brand first."""
    rows = []
    for (brand,), g in op.group_by("brand"):
        rows.append({"brand": brand, **service_stats(g, settings),
                     **reply_stats(replies.filter(pl.col("brand") == brand), settings)})
    columns = ["brand", *service_stats(op.head(0), settings), *reply_stats(replies.head(0), settings)]
    return (typed_frame(rows, stat_dtype, columns)
            .sort(["n_openings", "brand"], descending=[True, False]))


def overall_summary(op: pl.DataFrame, replies: pl.DataFrame, settings: ResponseTimeSettings,
                    info: dict[str, Any]) -> dict[str, Any]:
    """Headline figures over all openings (same definitions as the service table)."""
    row = op.select(
        n_censored=(~pl.col("event")).sum(),
        n_brands=pl.col("brand").n_unique(),
        n_brand_from_mention=(pl.col("brand_source") == "mention").sum(),
        n_brand_unknown=(pl.col("brand_source") == "none").sum(),
    ).row(0, named=True)
    out = {**service_stats(op, settings), **{k: int(v) for k, v in row.items()},
           **reply_stats(replies, settings)}
    out["end_of_data"] = info["end_of_data"].isoformat() if info.get("end_of_data") else None
    out["horizon_hours"] = settings.horizon_hours
    out["rmst_hours"] = settings.rmst_hours
    out["ci_level"] = settings.ci_level
    out["negative_latency_clipped"] = info.get("negative_latency_clipped", 0)
    out["replies_negative_latency_clipped"] = int(
        replies.select((pl.col("raw_latency_s") < 0).sum()).item() or 0)
    return out


def brand_rows(table: pl.DataFrame, brands: list[str]) -> dict[str, dict[str, Any]]:
    """The service table's rows of the given brands (metrics-file values, intervals included)."""
    rows = table.filter(pl.col("brand").is_in(brands)).to_dicts()
    return {r["brand"]: {k: metric_value(v) for k, v in r.items() if k != "brand"} for r in rows}


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


def brand_pairwise(op: pl.DataFrame, settings: ResponseTimeSettings) -> pl.DataFrame:
    """Every pair of the ``logrank_brands`` largest brands: log-rank with Holm-adjusted p, the RMST
    difference in minutes (a - b: a's customers wait that much longer on average within
    ``rmst_hours``) and the difference in the share answered within 1 h (Newcombe interval)."""
    brands = largest_brands(op, settings.logrank_brands, settings.min_brand_openings)
    data = op.filter(pl.col("brand").is_in(brands))
    z = z_value(settings.ci_level)
    rows = survival.pairwise_comparisons(
        data["duration_s"].to_numpy() / 60.0, data["event"].cast(pl.Int64).to_numpy(),
        data["brand"].to_numpy(), brands, settings.rmst_hours * 60.0, z)
    if not rows:
        return typed_frame([], stat_dtype, PAIRWISE_COLUMNS)
    known = data.filter(pl.col("within_1h_known")).group_by("brand").agg(
        k=pl.col("answered_within_1h").sum(), n=pl.len())
    counts = {r["brand"]: (int(r["k"]), int(r["n"])) for r in known.to_dicts()}
    for r in rows:
        (ka, na), (kb, nb) = counts.get(r["a"], (0, 0)), counts.get(r["b"], (0, 0))
        lo, hi = newcombe_interval(np.array([ka]), np.array([na]), np.array([kb]),
                                   np.array([nb]), z)
        r.update(within_1h_diff=finite(ka / na - kb / nb) if na and nb else None,
                 within_1h_diff_ci_low=finite(lo[0]), within_1h_diff_ci_high=finite(hi[0]))
    return typed_frame(rows, stat_dtype, PAIRWISE_COLUMNS)


def km_grid(settings: ResponseTimeSettings) -> np.ndarray:
    """Minutes: 0 plus a log-spaced grid up to ``km_max_hours`` (readable on a log axis)."""
    top = settings.km_max_hours * 60.0
    return np.unique(np.round(np.r_[0.0, np.geomspace(0.5, top, settings.km_grid_points - 1)], 3))


def km_curves(op: pl.DataFrame, settings: ResponseTimeSettings) -> pl.DataFrame:
    """KM curves (probability of still waiting for a first response) with pointwise Greenwood bands
    (log-log) of all openings and of the ``km_plot_brands`` largest brands, in minutes."""
    brands = largest_brands(op, settings.km_plot_brands, settings.min_brand_openings)
    frame = op.select("brand", duration=pl.col("duration_s") / 60.0, event="event")
    t = survival.km_table(frame, "brand", brands, km_grid(settings), z_value(settings.ci_level),
                          all_label=ALL_BRANDS)
    return t.rename({"t": "minutes", "survival": "still_waiting",
                     "survival_low": "still_waiting_low", "survival_high": "still_waiting_high",
                     "event_prob": "answered_prob"})


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
