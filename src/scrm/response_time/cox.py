"""Cox model of the time to first response, reported with its checks.

Design: hour of day and day of week as cyclic terms (sin and cos of 2·pi·hour/24 and of
2·pi·(weekday-1)/7: 23:00 is next to 00:00, which a linear hour term denies), the count features
log1p-transformed (they are heavily skewed), and the opening's sentiment; every column standardised
on the training rows, so a hazard ratio is per standard deviation. Brand is a stratum (each brand
its own baseline hazard; brands with fewer than ``min_brand_openings`` training openings pooled),
standard errors are clustered (``cox_cluster``: customer by default, since repeat openings of one
customer are not independent). A hazard ratio above 1 means a faster reply.

Reported with it: the proportional-hazards test per covariate (:func:`scrm.stats.cox.ph_test`),
joint Wald tests of the two hour terms and of the two weekday terms (robust covariance, 2 df), and
the C-index on the test period with a bootstrap interval; ``better_than_chance`` is false when that
interval includes 0.5.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats.cox import concordance_interval, cox_fit
from ..stats.intervals import chi2_test
from .features import COUNT_FEATURES
from .service import largest_brands

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings

CYCLIC = {"hour": ("hour_sin", "hour_cos"), "weekday": ("weekday_sin", "weekday_cos")}
COX_FEATURES = [*CYCLIC["hour"], *CYCLIC["weekday"], *COUNT_FEATURES, "sentiment"]
OTHER_STRATUM = "(other)"


def cox_columns(df: pl.DataFrame) -> pl.DataFrame:
    """The Cox design columns (:data:`COX_FEATURES`), before standardisation."""
    hour = 2.0 * math.pi * pl.col("hour_utc").cast(pl.Float64) / 24.0
    day = 2.0 * math.pi * (pl.col("weekday_utc").cast(pl.Float64) - 1.0) / 7.0
    return df.select(hour_sin=hour.sin(), hour_cos=hour.cos(), weekday_sin=day.sin(),
                     weekday_cos=day.cos(),
                     **{c: pl.col(c).cast(pl.Float64).log1p() for c in COUNT_FEATURES},
                     sentiment=pl.col("sentiment").cast(pl.Float64))


def _wald(params: np.ndarray, cov: np.ndarray, idx: list[int]) -> dict[str, Any]:
    b = params[idx]
    v = cov[np.ix_(idx, idx)]
    try:
        stat = float(b @ np.linalg.solve(v, b))
    except np.linalg.LinAlgError:
        stat = math.nan
    return chi2_test(stat, len(idx))


def cox_model(op: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, Any]:
    """Fit on the train split (a seeded sample of ``cox_max_rows`` at most), score on the test split.

    Skipped with the reason when there are too few training rows or no observed replies.
    """
    tr, te = op.filter(pl.col("split") == "train"), op.filter(pl.col("split") == "test")
    if tr.height > settings.cox_max_rows:
        tr = tr.sample(settings.cox_max_rows, seed=settings.seed).sort("opening_at",
                                                                      "opening_tweet_id")
    if tr.height < settings.min_train_rows or tr["event"].sum() == 0:
        return {"status": "skipped", "reason": "too few training rows or no observed replies"}
    X_tr = cox_columns(tr).to_numpy()
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    keep = sd > 0
    names = [n for n, k in zip(COX_FEATURES, keep, strict=True) if k]
    frequent = sorted(largest_brands(tr, 10**9, settings.min_brand_openings))

    def strata(df: pl.DataFrame) -> np.ndarray:
        brand = pl.col("brand")
        return df.select(pl.when(brand.is_in(frequent)).then(brand)
                         .otherwise(pl.lit(OTHER_STRATUM)))["brand"].to_numpy()

    def design(df: pl.DataFrame) -> np.ndarray:
        return ((cox_columns(df).to_numpy() - mu) / np.where(sd > 0, sd, 1.0))[:, keep]

    clusters = None if settings.cox_cluster == "none" else \
        tr[{"customer": "customer_id", "brand": "brand"}[settings.cox_cluster]].to_numpy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = cox_fit(tr["duration_s"].to_numpy() / 60.0, tr["event"].cast(pl.Int64).to_numpy(),
                          design(tr), names, level=settings.ci_level, strata=strata(tr),
                          groups=clusters)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return {"status": "skipped", "reason": f"Cox fit failed: {exc}"}
    out: dict[str, Any] = {
        "status": "ok", "n_train": tr.height, "n_test": te.height, "n_events": fit["n_events"],
        "n_strata": len(set(strata(tr).tolist())), "cluster": settings.cox_cluster,
        "se_type": fit["se_type"], "n_clusters": fit["n_clusters"], "optimizer": fit["optimizer"],
        "coefficients": fit["coefficients"], "log_likelihood": fit["log_likelihood"],
        "joint_wald": {term: _wald(fit["params"], fit["cov"],
                                   [names.index(c) for c in cols if c in names])
                       for term, cols in CYCLIC.items() if all(c in names for c in cols)},
        "c_index": None, "c_index_ci_low": None, "c_index_ci_high": None,
        "better_than_chance": None}
    if te.height and np.all(np.isfinite(fit["params"])):
        c = concordance_interval(te["duration_s"].to_numpy(), te["event"].cast(pl.Int64).to_numpy(),
                                 design(te) @ fit["params"], strata=strata(te),
                                 max_rows=settings.cox_concordance_max_rows, seed=settings.seed,
                                 n_boot=settings.n_boot, level=settings.ci_level)
        out.update(c_index=c["c_index"], c_index_ci_low=c["c_index_ci_low"],
                   c_index_ci_high=c["c_index_ci_high"], c_index_n=c["n"],
                   better_than_chance=(None if c["c_index_ci_low"] is None
                                       else bool(c["c_index_ci_low"] > 0.5)))
    return out
