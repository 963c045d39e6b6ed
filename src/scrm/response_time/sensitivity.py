"""How much the headline service figures depend on the definitions: the sensitivity table.

Rows: each "answered" definition of :mod:`scrm.data.openings` (``direct``, ``customer``,
``thread``) x each population (``requests``: openings no non-request rule flagged; ``all``: every
opening) x each scope (all brands pooled, then the ``sensitivity_brands`` largest brands). Columns:
the figures of :func:`.service.service_stats` with their intervals (answered share, KM median, RMST,
shares within 15 min / 1 h / 24 h, median latency of the answered openings).

Why: the same tweets give 131 unanswered openings under ``direct`` and 0 under ``thread``; a reader
must see how far a conclusion moves with the definition before trusting it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from ..data.openings import DEFINITIONS
from ..data.schema import typed_frame
from .features import UNKNOWN_BRAND, seconds, survival_pair
from .service import ALL_BRANDS, largest_brands, metric_value, service_stats, stat_dtype

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings

POPULATIONS = ("requests", "all")
# the opening table's columns this module reads
SENSITIVITY_INPUT = ("opening_tweet_id", "opening_at", "brand", "is_request",
                     *[f"answered_{d}" for d in DEFINITIONS], *[f"first_{d}_at" for d in DEFINITIONS])


def definition_frame(openings: pl.DataFrame, definition: str, end_of_data: datetime,
                     horizon_hours: float | None) -> pl.DataFrame:
    """Openings with ``answered`` / ``latency_s`` under ``definition`` and the survival pair
    (same clipping at 0 and censoring as the stage's own frame)."""
    op = openings.select(
        "opening_tweet_id", "opening_at", "is_request",
        brand=pl.col("brand").fill_null(UNKNOWN_BRAND),
        answered=pl.col(f"answered_{definition}"),
        latency_s=seconds(pl.col(f"first_{definition}_at") - pl.col("opening_at"))
        .clip(lower_bound=0.0))
    return survival_pair(op, end_of_data, horizon_hours)


def sensitivity_table(openings: pl.DataFrame, end_of_data: datetime,
                      settings: ResponseTimeSettings) -> pl.DataFrame:
    """The long table (module docstring), brands chosen by their number of requests."""
    brands = largest_brands(openings.filter(pl.col("is_request"))
                            .with_columns(pl.col("brand").fill_null(UNKNOWN_BRAND)),
                            settings.sensitivity_brands, settings.min_brand_openings)
    rows: list[dict[str, Any]] = []
    for definition in DEFINITIONS:
        frame = definition_frame(openings, definition, end_of_data, settings.horizon_hours)
        for population in POPULATIONS:
            pop = frame.filter(pl.col("is_request")) if population == "requests" else frame
            for scope in (ALL_BRANDS, *brands):
                sub = pop if scope == ALL_BRANDS else pop.filter(pl.col("brand") == scope)
                rows.append({"definition": definition, "population": population, "scope": scope,
                             **service_stats(sub, settings)})
    return typed_frame(rows, stat_dtype)  # 6 pooled rows at least, even with no opening


def sensitivity_metrics(table: pl.DataFrame, population: str) -> dict[str, Any]:
    """For the metrics file: ``{definition: {scope: figures}}`` of one population, plus the
    pooled figures of the other population (so the effect of the exclusion is visible too)."""
    out: dict[str, Any] = {}
    for r in table.to_dicts():
        if r["population"] == population or r["scope"] == ALL_BRANDS:
            key = r["scope"] if r["population"] == population else f"{r['scope']} {r['population']}"
            out.setdefault(r["definition"], {})[key] = {
                k: metric_value(v) for k, v in r.items()
                if k not in ("definition", "population", "scope")}
    return out
