"""Odds ratios of public recovery that mean what they say.

Population: every answered opening the measure calls unhappy (silent threads included, counted as
not recovered publicly: nothing is conditioned on whether the customer wrote again). Outcome:
``recovered`` (the customer's last public tweet is satisfied).

* Unpenalised maximum-likelihood logistic regression (:func:`scrm.stats.regression.logit_odds_ratios`),
  standard errors clustered by customer, Wald intervals: the ratios are not pulled towards 1.
* Predictors: the candidates of ``outcome.effects.predictors`` in their priority order, as many as the
  rarer outcome supports at ``events_per_predictor`` events each; the count and the dropped
  candidates are reported. ``fast_reply`` is never beside ``log_latency_min`` (it is a cut of it).
  0/1 markers are with vs without; continuous predictors are per standard deviation (the SD is
  reported in the predictor's own unit).
* Brand is not a parameter of the main model (the events cannot pay for one per brand). As a
  sensitivity, the same predictors are refitted with a dummy for every brand that has at least
  ``outcome.model.brand_min_frequency`` threads and both outcomes (the rest pooled as the
  reference): within-brand ratios, reported with the events per parameter they leave.

These are associations: brands choose how to reply knowing the complaint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..configbase import ConfigError
from ..stats.intervals import finite
from ..stats.regression import epv_select, logit_odds_ratios
from .reply_features import BINARY_PREDICTORS, NUMERIC_PREDICTORS
from .trajectories import answered_unhappy

if TYPE_CHECKING:
    from ..config import OutcomeSettings


def chosen_predictors(events: int, settings: OutcomeSettings) -> dict[str, Any]:
    """The candidates the events allow, in priority order (unknown names are a config error)."""
    known = set(NUMERIC_PREDICTORS) | set(BINARY_PREDICTORS)
    bad = [p for p in settings.effects.predictors if p not in known]
    if bad:
        raise ConfigError(f"params.yaml outcome.effects.predictors: unknown {bad}; choose from "
                          f"{sorted(known)}")
    return epv_select(list(settings.effects.predictors), events,
                      settings.effects.events_per_predictor)


def design(pop: pl.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Model matrix: 0/1 markers as they are, continuous predictors standardised (a missing template
    similarity is 0, as in the prediction models)."""
    cols = []
    for name in names:
        if name in BINARY_PREDICTORS:
            cols.append(pop[name].fill_null(False).cast(pl.Float64).to_numpy())
        else:
            v = pop[name].cast(pl.Float64).fill_null(0.0).to_numpy()
            sd = v.std()
            cols.append((v - v.mean()) / sd if sd > 0 else v - v.mean())
    X = np.column_stack(cols) if cols else np.zeros((pop.height, 0))
    return X, list(names)


def scales(pop: pl.DataFrame, names: Sequence[str]) -> dict[str, str]:
    """How to read each ratio: "with vs without", or "per SD (= x units)"."""
    out = {}
    for name in names:
        if name in BINARY_PREDICTORS:
            out[name] = "with vs without"
        else:
            sd = pop[name].cast(pl.Float64).fill_null(0.0).std()
            out[name] = f"per SD ({finite(sd, 3)} {name})"
    return out


def odds_ratios(outcome: pl.DataFrame, settings: OutcomeSettings) -> dict[str, Any]:
    """Unpenalised logistic odds ratios of public recovery, and the within-brand sensitivity."""
    pop = answered_unhappy(outcome)
    y = pop["recovered"].cast(pl.Int32).to_numpy()
    events = int(min(y.sum(), len(y) - y.sum()))
    choice = chosen_predictors(events, settings)
    out: dict[str, Any] = {"population": "answered openings the measure calls unhappy (silent "
                                         "threads included as not recovered)",
                           "n": int(len(y)), "recovered": int(y.sum()), "selection": choice}
    if not choice["kept"]:
        out["skipped"] = (f"{events} threads in the rarer outcome: too few for one predictor at "
                          f"{settings.effects.events_per_predictor:g} events per predictor")
        return out
    X, names = design(pop, choice["kept"])
    out["scale"] = scales(pop, names)
    out["logistic"] = logit_odds_ratios(X, y, names, groups=pop["customer_id"].to_numpy(),
                                        level=settings.ci_level)
    dummies, brands = brand_dummies(pop, settings.model.brand_min_frequency)
    within = logit_odds_ratios(X, y, names, groups=pop["customer_id"].to_numpy(),
                               level=settings.ci_level, adjust=dummies, adjust_names=brands)
    within["events_per_parameter"] = finite(events / (len(names) + len(brands)), 2)
    out["within_brand"] = within
    return out


def brand_dummies(pop: pl.DataFrame, min_rows: int) -> tuple[np.ndarray, list[str]]:
    """0/1 columns for brands with at least ``min_rows`` threads and both outcomes (a brand without
    one of them would separate); every other brand is the pooled reference."""
    per = (pop.group_by("brand").agg(n=pl.len(), k=pl.col("recovered").sum())
           .filter((pl.col("n") >= min_rows) & (pl.col("k") > 0) & (pl.col("k") < pl.col("n")))
           .drop_nulls("brand").sort("n", "brand", descending=[True, False]))
    brands = per["brand"].to_list()[1:]  # the largest brand joins the reference (no collinearity)
    brand = pop["brand"].fill_null("(none)").to_numpy()
    cols = [(brand == b).astype(float) for b in brands]
    return (np.column_stack(cols) if cols else np.zeros((pop.height, 0))), brands
