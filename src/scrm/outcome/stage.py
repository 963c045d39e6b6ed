"""Stage ``outcome``: read the prepared tables, label, describe and model, write, track.

Inputs: ``tweets.parquet``, ``threads.parquet``, ``openings.parquet`` (prepare) and
``sentiment.parquet`` (the ``sentiment`` stage; nothing is scored here). Outputs, written atomically
as one set: ``outcome.parquet``, ``outcome_findings.parquet``, ``outcome_transitions.parquet`` and
``reports/metrics/outcome.json``; runs go to the MLflow experiment ``outcome``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import DataError, ScrmError
from ..stats.intervals import finite
from .findings import findings_table, label_counts, transition_table
from .models import MODEL_NAMES, cross_validate, feature_matrix, fit_final_models, odds_ratios
from .reply_features import PREDICTORS
from .trajectories import LABELS, TWEET_COLUMNS, build_outcome, model_population, with_sentiment

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import OutcomeSettings, Paths, SentimentSettings

EXPERIMENT = "outcome"

OUTCOME_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys((
    "thread_id", "customer_id", "brand", "brand_source", "thread_brand", "multi_brand",
    "opening_tweet_id", "opening_at",
    "opening_sentiment", "opening_class", "answered", "reply_tweet_id", "reply_author", "reply_at",
    "n_followups", "last_tweet_id", "last_at", "last_sentiment", "last_class", "label", "recovered",
    "latency_min", "latency_negative", "opening_hour", "template_dups", "template_reply",
    *PREDICTORS,
)))


@dataclass(frozen=True)
class Inputs:
    """The tables the stage reads (``tweets`` carries each tweet's ``sentiment``)."""

    tweets: pl.DataFrame
    threads: pl.DataFrame
    openings: pl.DataFrame
    n_scored: int


def input_paths(paths: Paths) -> list[Path]:
    """The stage's input files, in the order their content hash is taken for MLflow."""
    return [paths.tweets, paths.threads, paths.openings, paths.sentiment]


def read_inputs(paths: Paths) -> Inputs:
    """Read the four inputs; a missing one names the command that writes it."""
    for p in (paths.tweets, paths.threads, paths.openings):
        if not p.exists():
            raise DataError("input missing; run `scrm prepare` first.", p)
    if not paths.sentiment.exists():
        raise DataError("input missing; run `scrm sentiment` first.", paths.sentiment)
    sentiment = pl.read_parquet(paths.sentiment, columns=["tweet_id", "sentiment"])
    tweets = with_sentiment(pl.read_parquet(paths.tweets, columns=list(TWEET_COLUMNS)), sentiment)
    return Inputs(tweets, pl.read_parquet(paths.threads), pl.read_parquet(paths.openings),
                  sentiment.height)


def summarise(outcome: pl.DataFrame, threads: pl.DataFrame, transitions: pl.DataFrame,
              findings: pl.DataFrame, cv: dict[str, Any], ors: dict[str, Any],
              settings: OutcomeSettings, n_scored: int, scorer: str) -> dict[str, Any]:
    """The metrics file: counts, label distribution, transitions, model AUCs, odds ratios."""
    pop = model_population(outcome)
    counts = label_counts(outcome)
    answered = int(outcome["answered"].sum())
    n_open = outcome.height
    matrix: dict[str, dict[str, int]] = {}
    for s, t, n in transitions.select("source", "target", "n").iter_rows():
        matrix.setdefault(s, {})[t] = int(n)
    overall = findings.filter(pl.col("scope") == "overall").select(
        "feature", "n_with", "rate_with", "n_without", "rate_without", "diff", "diff_ci_low",
        "diff_ci_high")
    rec = outcome.filter(pl.col("label") == "recovered")
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
            "opened_negative_answered": int(outcome.filter(
                pl.col("answered") & (pl.col("opening_class") == "negative")).height),
            "model_population": pop.height,
            "latency_negative_clipped": int(outcome["latency_negative"].fill_null(False).sum()),
        },
        "labels": counts,
        "label_share_of_answered": {lab: finite(counts[lab] / answered) if answered else None
                                    for lab in LABELS if lab != "unanswered"},
        "recovery_rate": finite(counts["recovered"] / pop.height) if pop.height else None,
        "recovered_ending_positive": int((rec["last_class"] == "positive").sum()),
        "labels_by_brand": label_counts(outcome, "brand"),
        "transition_matrix": matrix,
        "template": {"threshold": settings.template_threshold,
                     "share_template_replies": finite(outcome["template_reply"].drop_nulls().mean()),
                     "median_template_sim": finite(outcome["template_sim"].drop_nulls().median())},
        "model": cv,
        "odds_ratios": ors,
        "findings_overall": overall.to_dicts(),
    }


@dataclass(frozen=True)
class OutcomeResult:
    """Everything the stage computes, before anything is written or tracked."""

    outcome: pl.DataFrame
    findings: pl.DataFrame
    transitions: pl.DataFrame
    population: pl.DataFrame
    metrics: dict[str, Any]


def compute(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings) -> OutcomeResult:
    """Label, describe and model; pure apart from reading the inputs.

    ``sentiment`` is the settings the sentiment table was scored with (recorded in the metrics).
    """
    if "customer" not in sentiment.roles:
        raise ScrmError("params.yaml sentiment.roles must include customer: the outcome labels "
                        "compare customer turns.")
    data = read_inputs(paths)
    outcome = build_outcome(data.tweets, data.openings, data.threads, settings)
    pop = model_population(outcome)
    findings = findings_table(pop, settings)
    transitions = transition_table(outcome)
    cv = cross_validate(outcome, settings, settings.seed)
    ors = odds_ratios(pop, settings, settings.seed)
    metrics = summarise(outcome, data.threads, transitions, findings, cv, ors, settings,
                        data.n_scored, sentiment.scorer)
    return OutcomeResult(outcome.select(list(OUTCOME_COLUMNS)), findings, transitions, pop, metrics)


def run(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings) -> dict[str, Any]:
    """Stage ``outcome``: write outcome.parquet, outcome_findings.parquet, outcome_transitions.parquet
    and reports/metrics/outcome.json as one set; log the runs to MLflow (experiment outcome)."""
    from ..io import atomic_paths, json_text

    paths.ensure()
    res = compute(paths, settings, sentiment)
    frames = ((res.outcome, paths.outcome), (res.findings, paths.outcome_findings),
              (res.transitions, paths.outcome_transitions))
    with atomic_paths(*(p for _, p in frames), paths.metric("outcome")) as tmp:
        for (frame, _), t in zip(frames, tmp):
            frame.write_parquet(t)
        tmp[-1].write_text(json_text(res.metrics), encoding="utf-8")
    track(paths, settings, sentiment, res.metrics, res.population)
    return res.metrics


def track(paths: Paths, settings: OutcomeSettings, sentiment: SentimentSettings,
          metrics: dict[str, Any], pop: pl.DataFrame) -> None:
    """One run for the trajectories, one per model (final logreg/hgb registered)."""
    from .. import tracking

    inputs = input_paths(paths)
    seed = settings.seed
    logged = {"sentiment": asdict(sentiment), "outcome": asdict(settings)}
    with tracking.start_run(EXPERIMENT, "trajectories", params=logged, seed=seed, inputs=inputs,
                            root=paths.root):
        tracking.log_metrics({f"labels.{k}": v for k, v in metrics["labels"].items()})
        tracking.log_metrics({f"threads.{k}": v for k, v in metrics["threads"].items()})
        tracking.log_metrics({"recovery_rate": metrics["recovery_rate"]})
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
            if name == "logreg":
                tracking.log_dict(metrics["odds_ratios"], "odds_ratios.json")
            if name in finals and settings.model.log_models:
                tracking.log_sklearn_model(finals[name], feature_matrix(pop),
                                           registered_name=f"scrm-outcome-{name}")
