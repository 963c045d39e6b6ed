"""Conversation outcome: does an unhappy customer end up happy, and what in the brand's reply goes with it?

A public thread in which an unhappy customer ends up satisfied is a quality signal to everyone who
reads it. This package makes that outcome measurable.

Definitions
    *Opening, brand, answered, first reply*: one row of the shared openings table
    (:mod:`scrm.data.openings`, ``data/processed/openings.parquet``). The first reply is the opening's
    ``first_response_id`` under ``openings.answered_definition`` (default ``customer``: the first
    brand tweet that replies to a tweet of the opening's customer). Non-opening threads (brand roots,
    roots whose parent is missing) are counted, not labelled.

    *Sentiment*: each tweet's compound score from the ``sentiment`` stage (``sentiment.parquet``);
    ``negative`` at or below ``outcome.negative_threshold``, ``positive`` at or above
    ``outcome.positive_threshold``, else ``neutral``.

    *Label* of an opening, comparing the opening's sentiment with the customer's **last** turn after
    the first reply (other customers chiming in are ignored; order is the thread's turn order):
    ``recovered`` (opened negative, ended neutral/positive), ``stayed_negative``, ``deteriorated``
    (opened non-negative, ended negative), ``stable_non_negative``, ``no_follow_up`` (the customer
    never spoke after the first reply) and ``unanswered`` (no first reply).

    *Predictors*: features of the first reply known when it is sent (:mod:`.reply_features`).

    *Model population*: threads that opened negative and have a follow-up (``recovered`` or
    ``stayed_negative``); models predict ``recovered`` with a customer-grouped, stratified k-fold
    (:mod:`.models`).

    *Findings*: recovery rates with vs without a reply feature, with Wilson intervals for each rate
    and Newcombe intervals for their difference (:mod:`.findings`). These are associations: brands
    choose how to reply knowing the complaint, so none of it is a causal effect.

Modules: :mod:`.trajectories` (one row per opening, labels), :mod:`.reply_features` (predictors,
template-ness), :mod:`.findings` (label counts, transitions, findings), :mod:`.models` (models, CV,
odds ratios, final fits), :mod:`.stage` (reading, writing, MLflow).
"""

from __future__ import annotations

from .models import MODEL_NAMES
from .stage import EXPERIMENT, OUTCOME_COLUMNS, OutcomeResult, compute, run
from .trajectories import CLASSES, LABELS

__all__ = ["CLASSES", "EXPERIMENT", "LABELS", "MODEL_NAMES", "OUTCOME_COLUMNS", "OutcomeResult",
           "compute", "run"]
