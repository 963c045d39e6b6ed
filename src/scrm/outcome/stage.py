"""Stage ``outcome``: read the prepared tables and the outcome labels, fit the state measure on dev,
label, validate, describe and model, write, track.

Inputs: ``tweets.parquet``, ``threads.parquet``, ``openings.parquet`` (prepare), ``sentiment.parquet``
(the ``sentiment`` stage; nothing is scored here) and the hand-labelled outcome set
(``outcome.measure.labels_file``, with ``agreement.json`` beside it). Outputs, written atomically as
one set: ``outcome.parquet``, ``outcome_findings.parquet``, ``outcome_transitions.parquet`` and
``reports/metrics/outcome.json``; runs go to the MLflow experiment ``outcome``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from .. import status
from ..data.schema import untyped_columns
from ..errors import ScrmError
from ..parallel import beside
from ..stats.intervals import finite
from .effects import odds_ratios
from .findings import findings_table, label_counts, overall_findings, transition_table
from .measure import Measure, dev_part, fit_measure, make_embedder, read_labels, thresholds_measure
from .models import MODEL_NAMES, cross_validate, feature_matrix, fit_final_models
from .reply_features import PREDICTORS, RAW_REPLY_COLUMNS
from .silence import competing_outcomes, silence_bounds
from .trajectories import (LABELS, TWEET_COLUMNS, VADER_LABELS, answered_unhappy,
                           conversation_frame, outcome_table, with_sentiment)
from .validity import former_label_check, placebo, recovery_rates, sealed_test

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import EmbedSettings, OutcomeSettings, Paths, SentimentSettings

EXPERIMENT = "outcome"

OUTCOME_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys((
    "thread_id", "customer_id", "brand", "brand_source", "thread_brand", "multi_brand",
    "opening_tweet_id", "opening_at", "opening_sentiment", "opening_class", "answered",
    "reply_tweet_id", "reply_author", "reply_at", "n_followups", "last_tweet_id", "last_at",
    "last_sentiment", "last_class", "pre_last_tweet_id", "pre_last_sentiment",
    "opening_state", "end_state", "placebo_state", "baseline_opening_state", "baseline_end_state",
    "baseline_placebo_state", "label", "recovered", "silent", "vader_label", "vader_recovered",
    "latency_negative", "template_reply", *RAW_REPLY_COLUMNS, *PREDICTORS,
)))


@dataclass(frozen=True)
class Inputs:
    """The tables the stage reads (``tweets`` carries each tweet's ``sentiment``)."""

    tweets: pl.DataFrame
    threads: pl.DataFrame
    openings: pl.DataFrame
    n_scored: int
    labels: pl.DataFrame | None
    agreement: dict[str, Any] | None


def labels_path(paths: Paths, settings: OutcomeSettings) -> Path | None:
    """The outcome labels file of the run (relative paths: run root first, then the project)."""
    from ..complaints.weak_labels import resolve

    return resolve(paths, settings.measure.labels_file)


def input_paths(paths: Paths, settings: OutcomeSettings) -> list[Path]:
    """The stage's input files, in the order their content hash is taken for MLflow."""
    lab = labels_path(paths, settings)
    return [paths.tweets, paths.threads, paths.openings, paths.sentiment, *([lab] if lab else [])]


def read_inputs(paths: Paths, settings: OutcomeSettings) -> Inputs:
    """Read the inputs; a missing one names the command that writes it."""
    for p in (paths.tweets, paths.threads, paths.openings):
        if not p.exists():
            raise status.missing_input(paths, "prepare", p)
    if not paths.sentiment.exists():
        raise status.missing_input(paths, "sentiment", paths.sentiment)
    sentiment = pl.read_parquet(paths.sentiment, columns=["tweet_id", "sentiment"])
    tweets = with_sentiment(pl.read_parquet(paths.tweets, columns=list(TWEET_COLUMNS)), sentiment)
    lab_path = labels_path(paths, settings)
    labels = read_labels(lab_path) if lab_path else None
    agreement = None
    if lab_path and (lab_path.parent / "agreement.json").exists():
        agreement = json.loads((lab_path.parent / "agreement.json").read_text(encoding="utf-8"))
    return Inputs(tweets, pl.read_parquet(paths.threads), pl.read_parquet(paths.openings),
                  sentiment.height, labels, agreement)


def labelling_agreement(agreement: dict[str, Any] | None) -> dict[str, Any] | None:
    """Cohen's kappa of the two labelling passes (from ``agreement.json``), with who labelled."""
    if not agreement:
        return None
    return {"opening_state": agreement.get("outcome_opening_state"),
            "end_state": agreement.get("outcome_end_state"),
            "annotators": "two independent AI-assistant instances, not people: kappa measures how "
                          "consistently the guidelines can be applied, likely higher than two "
                          "human annotators would reach"}


def summarise(outcome: pl.DataFrame, threads: pl.DataFrame, measure: Measure, parts: dict[str, Any],
              settings: OutcomeSettings, n_scored: int, scorer: str) -> dict[str, Any]:
    """The metrics file (deterministic: no timings)."""
    counts = label_counts(outcome)
    answered = int(outcome["answered"].sum())
    n_open = outcome.height
    matrix: dict[str, dict[str, int]] = {}
    for s, t, n in parts["transitions"].select("source", "target", "n").iter_rows():
        matrix.setdefault(s, {})[t] = int(n)
    au = answered_unhappy(outcome)
    return {
        "sentiment": {"scorer": scorer, "tweets_scored": n_scored,
                      "negative_threshold": settings.negative_threshold,
                      "positive_threshold": settings.positive_threshold},
        "threads": {
            "threads": threads.height,
            "openings": n_open,
            "excluded_not_opening": threads.height - n_open,
            "answered": answered,
            "unanswered": n_open - answered,
            "with_follow_up": int((outcome["n_followups"] > 0).sum()),
            "answered_unhappy": au.height,
            "answered_unhappy_with_follow_up": int((au["label"] != "silent").sum()),
            "latency_negative_clipped": int(outcome["latency_negative"].fill_null(False).sum()),
        },
        "measure": measure.summary(),
        "labelling_agreement": parts["agreement"],
        "sealed_test": parts["sealed_test"],
        "former_label_check": parts["former_label_check"],
        "recovery_rate": parts["rates"],
        "placebo": parts["placebo"],
        "silence": parts["silence"],
        "labels": counts,
        "label_share_of_answered": {lab: finite(counts[lab] / answered) if answered else None
                                    for lab in LABELS if lab != "unanswered"},
        "labels_by_brand": label_counts(outcome, "brand"),
        "former_vader_labels": label_counts(outcome, labels=VADER_LABELS, column="vader_label"),
        "transition_matrix": matrix,
        "template": {"threshold": settings.template_threshold,
                     "share_template_replies": finite(outcome["template_reply"].drop_nulls().mean()),
                     "median_template_sim": finite(outcome["template_sim"].drop_nulls().median())},
        "model": parts["cv"],
        "odds_ratios": parts["odds_ratios"],
        "competing_outcomes": parts["competing"],
        "findings_overall": overall_findings(parts["findings"]),
        "findings_multiplicity": {
            "rows_tested": int(parts["findings"]["p_value"].is_not_null().sum()),
            "adjustment": "Holm (p_holm, family-wise) and Benjamini-Hochberg (p_bh, false "
                          "discovery rate) across every row of outcome_findings.parquet; verdicts "
                          "use Holm"},
    }


def stage_status(paths: Paths, outcome: pl.DataFrame) -> dict[str, Any]:
    """``no_data`` without an opening (prepare's reason) or without an answered one (no brand reply
    whose outcome could be read); else ``ok`` (no follow-up at all is a result: silence)."""
    if outcome.height == 0:
        return status.no_data(status.because(paths, "the opening table is empty"))
    if not outcome["answered"].any():
        return status.no_data(f"none of the {outcome.height:,} openings was answered (under "
                              "openings.answered_definition): there is no brand reply whose "
                              "outcome could be read")
    return status.ok()


@dataclass(frozen=True)
class OutcomeResult:
    """Everything the stage computes, before anything is written or tracked."""

    outcome: pl.DataFrame
    findings: pl.DataFrame
    transitions: pl.DataFrame
    measure: Measure
    metrics: dict[str, Any]


def _parts(outcome: pl.DataFrame, data: Inputs, settings: OutcomeSettings,
           measure: Measure) -> dict[str, Any]:
    """Every described and modelled part of the outcome metrics; ``cv`` left for the caller."""
    validated = data.labels is not None and measure.kind == "classifier"
    why = {"skipped": measure.reason or "no labelled set"}
    return {
        "agreement": labelling_agreement(data.agreement),
        "sealed_test": (sealed_test(outcome, data.labels, settings, settings.seed) if validated
                        else why),
        "former_label_check": (former_label_check(outcome, data.labels, settings)
                               if data.labels is not None else why),
        "rates": recovery_rates(outcome, data.labels, settings),
        "placebo": placebo(outcome, settings),
        "silence": silence_bounds(outcome, settings),
        "findings": findings_table(outcome, settings),
        "transitions": transition_table(outcome),
        "cv": None,
        "odds_ratios": odds_ratios(outcome, settings),
        "competing": competing_outcomes(outcome, settings),
    }


def compute(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings,
            embed: EmbedSettings) -> OutcomeResult:
    """Fit the measure on dev, label, validate on the sealed test, describe and model; pure apart
    from reading the inputs.

    ``sentiment`` is the settings the sentiment table was scored with (recorded in the metrics);
    ``embed`` gives the sentence encoder's threads, batch size and sequence length.
    """
    if "customer" not in sentiment.roles:
        raise ScrmError("params.yaml sentiment.roles must include customer: the outcome labels "
                        "compare customer turns.")
    data = read_inputs(paths, settings)
    conv = conversation_frame(data.tweets, data.openings, data.threads, settings)
    # the tweets and openings tables are in ``conv`` now: at full scale they are 0.6 GiB that the
    # template features and the second process's models would otherwise sit on top of
    data = replace(data, tweets=data.tweets.clear(), openings=data.openings.clear())
    if data.labels is None:
        measure = thresholds_measure(settings, "outcome.measure.labels_file is null: no labelled set")
    else:
        measure = fit_measure(conv, dev_part(data.labels), settings,
                              make_embedder(settings.measure, embed), settings.seed)
    outcome = outcome_table(conv, measure, settings)
    del conv
    # the cross-validated models share nothing with the other parts: with n_jobs > 1 they run in
    # a second process meanwhile (seeded folds and models: the same numbers wherever they run)
    with beside(settings.n_jobs, cross_validate, outcome, settings, settings.seed) as cv:
        parts = _parts(outcome, data, settings, measure)
        parts["cv"] = cv()  # the key is in place already: the order of the parts is unchanged
    metrics = {**stage_status(paths, outcome),
               **summarise(outcome, data.threads, measure, parts, settings, data.n_scored,
                           sentiment.scorer)}
    return OutcomeResult(outcome.select(list(OUTCOME_COLUMNS)), parts["findings"],
                         parts["transitions"], measure, metrics)


def run(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings,
        embed: EmbedSettings) -> dict[str, Any]:
    """Stage ``outcome``: write outcome.parquet, outcome_findings.parquet, outcome_transitions.parquet
    and reports/metrics/outcome.json as one set; log the runs to MLflow (experiment outcome)."""
    from ..io import atomic_paths, json_text

    paths.ensure()
    res = compute(paths, settings, sentiment, embed)
    frames = ((res.outcome, paths.outcome), (res.findings, paths.outcome_findings),
              (res.transitions, paths.outcome_transitions))
    untyped = {p.name: untyped_columns(f) for f, p in frames if untyped_columns(f)}
    if untyped:
        raise TypeError(f"outcome outputs with untyped (Null) columns: {untyped}")
    with atomic_paths(*(p for _, p in frames), paths.metric("outcome")) as tmp:
        for (frame, _), t in zip(frames, tmp):
            frame.write_parquet(t)
        tmp[-1].write_text(json_text(res.metrics), encoding="utf-8")
    track(paths, settings, sentiment, res.metrics, answered_unhappy(res.outcome))
    return res.metrics


def track(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings,
          metrics: dict[str, Any], pop: pl.DataFrame) -> None:
    """One run for the trajectories and the measure, one per model (final logreg/hgb registered)."""
    from .. import tracking

    inputs = input_paths(paths, settings)
    seed = settings.seed
    logged = {"sentiment": asdict(sentiment), "outcome": asdict(settings)}
    state = {"scrm.status": metrics["status"],
             **({"scrm.reason": metrics["reason"]} if metrics["reason"] else {})}
    with tracking.start_run(EXPERIMENT, "trajectories", params=logged, seed=seed, inputs=inputs,
                            tags=state, root=paths.root):
        tracking.log_metrics({f"labels.{k}": v for k, v in metrics["labels"].items()})
        tracking.log_metrics({f"threads.{k}": v for k, v in metrics["threads"].items()})
        rate = metrics["recovery_rate"]["measure"]["rate"]
        if rate is not None:
            tracking.log_metrics({"recovery_rate": rate})
        test = metrics.get("sealed_test") or {}
        for name in ("opening_state", "end_state"):
            for metric in ("macro_f1", "kappa"):
                if name in test:
                    tracking.log_metrics({f"test.{name}.{metric}.measure": test[name][metric]["a"],
                                          f"test.{name}.{metric}.baseline": test[name][metric]["b"]})
        tracking.log_dict(metrics["odds_ratios"], "odds_ratios.json")
        tracking.log_dict(metrics["competing_outcomes"], "competing_outcomes.json")
        tracking.log_artifact(paths.outcome_findings)
        tracking.log_artifact(paths.outcome_transitions)
    cv = metrics["model"]
    skipped = "skipped" in cv
    finals = {} if skipped else fit_final_models(pop, settings.model, seed)
    scores = {} if skipped else cv["models"]
    for name in MODEL_NAMES:
        tags = {"scrm.model": name}
        if skipped:
            tags["scrm.skipped"] = cv["skipped"][:250]
        with tracking.start_run(EXPERIMENT, name, params=logged, seed=seed, inputs=inputs,
                                tags=tags, root=paths.root):
            tracking.log_metrics({"n": cv["n"], "n_positive": cv["n_positive"],
                                  **{k: scores[name][k] for k in ("oof_auc", "fold_auc_mean",
                                                                  "fold_auc_sd") if name in scores}})
            if name in finals and settings.model.log_models:
                tracking.log_sklearn_model(finals[name], feature_matrix(pop),
                                           registered_name=f"scrm-outcome-{name}")
