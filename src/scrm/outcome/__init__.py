"""Conversation outcome: does an unhappy customer end up satisfied, and what in the brand's reply
goes with it? Measured as people would judge it.

A public thread in which an unhappy customer ends up satisfied is a quality signal to everyone who
reads it. This package makes that outcome measurable, and says how well the measure agrees with
people.

Definitions
    *Opening, brand, answered, first reply*: one row of the shared openings table
    (:mod:`scrm.data.openings`, ``data/processed/openings.parquet``). The first reply is the opening's
    ``first_response_id`` under ``openings.answered_definition`` (default ``customer``: the first
    brand tweet that replies to a tweet of the opening's customer). Non-opening threads (brand roots,
    roots whose parent is missing) are counted, not labelled.

    *The customer's state* (guidelines: ``references/outcome_guidelines.md``): ``opening_state``
    (unhappy / not unhappy) of the opening, and ``end_state`` (satisfied / still unhappy /
    procedural) of the customer's **last** tweet after the first reply, read by the text measure
    of :mod:`.measure` (MiniLM sentence embedding + lexical cues, logistic regression), fitted on
    the dev part of the hand-labelled outcome set only and scored once on its sealed test part
    beside the sentiment-threshold baseline (:mod:`.validity`).

    *Label* of an opening: ``recovered`` (opened unhappy, ended satisfied), ``still_unhappy``,
    ``procedural`` (opened unhappy, ended handing over details, moving to DM or waiting: the
    conversation continues out of public view), ``deteriorated`` (opened not unhappy, ended
    unhappy), ``stable_not_unhappy``, ``silent`` (the customer never wrote again after the first
    reply) and ``unanswered`` (no first reply). The former VADER label is kept as ``vader_label``.

    *Population* of every recovery question: answered openings the measure calls unhappy. Silence
    is one of their outcomes (:mod:`.silence`: bounds on the recovery rate, a multinomial model of
    the competing outcomes), never a reason to drop a thread.

    *Predictors*: features of the first reply known when it is sent (:mod:`.reply_features`).

    *Effects*: unpenalised logistic odds ratios with at most one predictor per ten events
    (:mod:`.effects`); prediction models compared with the brand baseline by DeLong's paired test
    (:mod:`.models`); the findings table with Holm and Benjamini–Hochberg adjustment
    (:mod:`.findings`). These are associations: brands choose how to reply knowing the complaint,
    so none of it is a causal effect.

Modules: :mod:`.trajectories` (one row per opening, labels), :mod:`.measure` (the state measure),
:mod:`.validity` (sealed-test scores, rates, placebo), :mod:`.silence`, :mod:`.effects`,
:mod:`.reply_features` (predictors, template-ness), :mod:`.findings` (label counts, transitions,
findings), :mod:`.models` (prediction models, CV), :mod:`.stage` (reading, writing, MLflow).
"""

from __future__ import annotations

from .models import MODEL_NAMES
from .stage import EXPERIMENT, OUTCOME_COLUMNS, OutcomeResult, compute, run
from .trajectories import CLASSES, COMPETING, LABELS

__all__ = ["CLASSES", "COMPETING", "EXPERIMENT", "LABELS", "MODEL_NAMES", "OUTCOME_COLUMNS", "OutcomeResult",
           "compute", "run"]
