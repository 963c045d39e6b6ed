"""Silence is an outcome: bounds on the recovery rate, and a model of the competing outcomes.

Why: a customer who never writes again after the brand's first reply may have been helped in a DM,
have given up, or have been satisfied without saying so. Dropping those threads (as the former
models did) conditions on something the reply itself changes (33 % follow up publicly after a move
to DM/phone/email, 55 % without), so any comparison among the threads that remain is biased in an
unknown direction. Here every answered unhappy opening stays in, with one of four outcomes
(:data:`~.trajectories.COMPETING`): ``silent``, ``recovered``, ``still_unhappy``, ``procedural``.

* :func:`silence_bounds` the recovery rate when silence counts as not recovered (worst case), as
  recovered (best case), and when silent threads are assumed to recover like the others (the rate
  among follow-ups); the truth lies between the two bounds whatever the silent customers felt.
* :func:`competing_outcomes` a multinomial logit of the four outcomes on the reply predictors chosen
  under the events-per-predictor rule (:func:`.effects.chosen_predictors`), with ``silent`` as base.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ..stats.intervals import rate_with_interval
from ..stats.regression import multinomial_effects
from .effects import chosen_predictors, design
from .trajectories import COMPETING, answered_unhappy

if TYPE_CHECKING:
    from ..config import OutcomeSettings


def silence_bounds(outcome: pl.DataFrame, settings: OutcomeSettings) -> dict[str, Any]:
    """Recovery rate of answered unhappy openings with silence counted each way."""
    level = settings.ci_level
    pop = answered_unhappy(outcome)
    n = pop.height
    counts = {o: int((pop["label"] == o).sum()) for o in COMPETING}
    silent, rec = counts["silent"], counts["recovered"]
    worst = rate_with_interval(rec, n, level)
    best = rate_with_interval(rec + silent, n, level)
    return {
        "n_answered_unhappy": n, "outcome_counts": counts,
        "silent_share": rate_with_interval(silent, n, level),
        "worst_case": {**worst, "assumes": "no silent customer recovered"},
        "best_case": {**best, "assumes": "every silent customer recovered"},
        "among_follow_ups": {**rate_with_interval(rec, n - silent, level),
                             "assumes": "silent customers recover at the follow-up rate"},
        "bounds_with_sampling": [worst["ci_low"], best["ci_high"]],
    }


def competing_outcomes(outcome: pl.DataFrame, settings: OutcomeSettings) -> dict[str, Any]:
    """Multinomial logit of the four outcomes of answered unhappy openings (base: silent), on the
    predictors the rarest outcome can support (one per ``events_per_predictor`` of its threads);
    standard errors clustered by customer."""
    pop = answered_unhappy(outcome)
    counts = {o: int((pop["label"] == o).sum()) for o in COMPETING}
    choice = chosen_predictors(min(counts.values()), settings)
    out: dict[str, Any] = {"selection": choice}
    if not choice["kept"]:
        out["skipped"] = (f"the rarest outcome has {min(counts.values())} threads: too few for one "
                          f"predictor at {settings.effects.events_per_predictor:g} per predictor")
        out["outcome_counts"] = counts
        return out
    X, names = design(pop, choice["kept"])
    out.update(multinomial_effects(X, pop["label"].to_list(), names, list(COMPETING),
                                   groups=pop["customer_id"].to_numpy(), level=settings.ci_level))
    return out
