"""The DVC stage ``response_time``: read the prepared tables, compute, write every output atomically
and track the runs in MLflow (through :mod:`scrm.tracking`, the only module that imports mlflow)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .. import status
from ..data.openings import NON_REQUEST_RULES, answered_counts, service_population
from ..errors import DataError
from ..parallel import beside
from . import features as ft
from . import models as md
from . import service as sv
from .cox import cox_model
from ..report.figures_static import importance_figure
from .evaluation import evaluate, split_shift
from .sensitivity import SENSITIVITY_INPUT, sensitivity_metrics, sensitivity_table

if TYPE_CHECKING:
    from ..config import OpeningsSettings, ResponseTimeSettings
    from ..paths import Paths

EXPERIMENT = "response_time"


def inputs(paths: Paths) -> list[Path]:
    """The files the stage reads (their content hash tags every MLflow run)."""
    return [paths.tweets, paths.threads, paths.openings, paths.sentiment]


def outputs(paths: Paths) -> dict[str, Path]:
    return {"parquet": paths.response_time, "table": paths.service_table,
            "sensitivity": paths.rt_sensitivity, "pairwise": paths.rt_pairwise,
            "latency": paths.latency_plot, "km": paths.km_plot,
            "calibration": paths.calibration_plot, "figure": paths.importance_png,
            "metrics": paths.metric("response_time")}


def _read(paths: Paths, path: Path, columns: tuple[str, ...], stage: str) -> pl.DataFrame:
    """The given columns of a parquet input; a missing file or column names the command to run
    (or its failure)."""
    command = f"scrm {status.COMMANDS[stage]}"
    if not path.exists():
        raise status.missing_input(paths, stage, path)
    missing = [c for c in columns if c not in pl.read_parquet_schema(path)]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; rerun `{command}` (the data "
                        "contract is in src/scrm/data/schema.py and src/scrm/data/openings.py).",
                        path)
    return pl.read_parquet(path, columns=list(columns))


def _model_entries(results: list[md.ModelResult], evaluation: dict[str, Any],
                   cox: dict[str, Any]) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = {**r.metrics, **evaluation.get(r.task, {}).get(r.name, {}), "status": r.status}
        if r.reason:
            entry["reason"] = r.reason
        models.setdefault(r.task, {})[r.name] = entry
    models["cox"] = {k: v for k, v in cox.items() if k not in ("params", "cov")}
    return models


def opening_block(openings: pl.DataFrame, settings: OpeningsSettings) -> dict[str, Any]:
    """All openings under the chosen definition (the numbers every stage reports identically), and
    how many are requests, with the non-requests by reason."""
    reasons = openings["non_request"].value_counts()
    by_reason = dict(zip(reasons["non_request"].to_list(), reasons["count"].to_list(), strict=True))
    return {"answered_definition": settings.answered_definition,
            **answered_counts(openings),
            "requests": int(openings["is_request"].sum()),
            "requests_answered": int(openings.filter(pl.col("is_request"))["answered"].sum()),
            "non_requests": {r: int(by_reason.get(r, 0)) for r in NON_REQUEST_RULES},
            "exclude_non_requests": settings.exclude_non_requests}


def stage_status(paths: Paths, openings: pl.DataFrame, op: pl.DataFrame) -> dict[str, Any]:
    """``no_data`` when no opening is left to measure (with prepare's reason when the file has
    none), else ``ok``: zero answered openings is a result (0% answered), not missing data."""
    if openings.height == 0:
        return status.no_data(status.because(paths, "the opening table is empty"))
    if op.height == 0:
        return status.no_data(f"all {openings.height:,} openings are non-requests (brand accounts, "
                              "broadcasts, promotions), which openings.exclude_non_requests leaves "
                              "out of every service figure")
    return status.ok()


def _cox(op: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, Any]:
    return (cox_model(op, settings) if settings.cox
            else {"status": "skipped", "reason": "cox: false"})


def run(paths: Paths, settings: ResponseTimeSettings,
        openings_settings: OpeningsSettings) -> dict[str, Any]:
    """Opening frame, service table with intervals, sensitivity table, KM/log-rank, pairwise tests,
    models with intervals, Cox, plots; returns the metrics written."""
    from .. import io as sio

    cols = tuple(dict.fromkeys((*ft.OPENING_INPUT, *SENSITIVITY_INPUT, "non_request")))
    openings = _read(paths, paths.openings, cols, "prepare")
    tweets = _read(paths, paths.tweets, ft.TWEET_INPUT, "prepare")
    threads = _read(paths, paths.threads, ft.THREAD_INPUT, "prepare")
    sentiment = _read(paths, paths.sentiment, ft.SENTIMENT_INPUT, "sentiment")
    paths.ensure()
    targets = outputs(paths)
    for target in targets.values():  # temp files a killed run of this stage left behind
        sio.cleanup_stale_tmp(target.parent, target.name)

    population = "requests" if openings_settings.exclude_non_requests else "all"
    op, info = ft.opening_frame(service_population(openings, openings_settings), tweets, threads,
                                sentiment, settings)
    # Cox is the stage's largest single fit and shares nothing with the other models: with
    # n_jobs > 1 it runs in a second process meanwhile (deterministic: a seeded sample, no draws)
    with beside(settings.n_jobs if settings.cox else 1, _cox, op, settings) as cox_result:
        replies = sv.reply_latencies(tweets, op["opening_tweet_id"])
        table = sv.service_table(op, replies, settings)
        sensitivity = sensitivity_table(openings, info["end_of_data"], settings)
        pairwise = sv.brand_pairwise(op, settings)
        results = md.fit_models(op, settings)
        evaluation, calibration = evaluate(results, settings)
        importances = md.permutation_importances(results, op, settings)
        cox = cox_result()
    metrics: dict[str, Any] = {
        **stage_status(paths, openings, op),
        "openings": opening_block(openings, openings_settings),
        "population": population,
        "overall": sv.overall_summary(op, replies, settings, info),
        "brands": sv.brand_rows(table, sv.largest_brands(op, settings.headline_brands, 1)),
        "sensitivity": sensitivity_metrics(sensitivity, population),
        "logrank": sv.brand_logrank(op, settings),
        "pairwise": pairwise.to_dicts(),  # rounded where computed (p-values to digits)
        "split": {"train_fraction": settings.train_fraction, **split_shift(op, settings)},
        "models": _model_entries(results, evaluation, cox),
        "importance": importances,
    }

    sio.write_parquet(op.drop("opening_text"), targets["parquet"])
    sio.write_parquet(table, targets["table"])
    sio.write_parquet(sensitivity, targets["sensitivity"])
    sio.write_parquet(pairwise, targets["pairwise"])
    sio.write_csv(sv.latency_plot_table(op, settings), targets["latency"])
    sio.write_csv(sv.km_curves(op, settings), targets["km"])
    sio.write_csv(calibration, targets["calibration"])
    skipped = sorted({r.reason for r in results if r.status != "ok"})
    importance_figure(importances, targets["figure"], note="; ".join(skipped))
    sio.write_json(targets["metrics"], metrics)

    _track(paths, settings, metrics, results,
           [targets["latency"], targets["km"], targets["calibration"], targets["figure"]])
    return metrics


def _log_model(r: md.ModelResult, registered_name: str) -> None:
    """Log and register a fitted model; MLflow's refusal to serialise one is recorded, not fatal.

    MLflow saves with skops, which refuses types outside the namespaces ``scrm.tracking`` trusts;
    should a model ever hold one, the run carries ``model_not_logged.json`` with the reason and the
    stage goes on (the metrics are logged either way).
    """
    from .. import tracking

    try:
        tracking.log_sklearn_model(r.model, r.X_train, registered_name=registered_name)
    except Exception as exc:  # noqa: BLE001 - only MLflow's own refusal is tolerated
        if type(exc).__name__ != "MlflowException":
            raise
        tracking.log_dict({"model_not_logged": registered_name,
                           "reason": str(exc).split("\n", 1)[0]}, "model_not_logged.json")


def _track(paths: Paths, settings: ResponseTimeSettings, metrics: dict[str, Any],
           results: list[md.ModelResult], artifacts: list[Path]) -> None:
    """One MLflow run for the service figures and one per model (registered when fitted)."""
    from .. import tracking

    sources = inputs(paths)
    sec = {"response_time": asdict(settings)}
    tags = {"scrm.stage": "response_time", "scrm.status": metrics["status"],
            **({"scrm.reason": metrics["reason"]} if metrics["reason"] else {})}

    def start(name: str, params: dict[str, Any], **extra_tags: str) -> Any:
        return tracking.start_run(EXPERIMENT, name, params=params, seed=settings.seed,
                                  inputs=sources, tags={**tags, **extra_tags}, root=paths.root)

    with start("service_levels", sec):
        tracking.log_metrics(tracking.flatten(metrics["overall"]))
        tracking.log_metrics({f"logrank.{k}": v for k, v in metrics["logrank"].items()
                              if isinstance(v, int | float)})
        tracking.log_dict(metrics, "response_time.json")
        for a in artifacts:
            if Path(a).exists():
                tracking.log_artifact(a)
    slug = {"within_1h": "within1h", "log_latency": "loglatency"}
    for r in results:
        if r.status != "ok":
            continue
        with start(f"{r.task}/{r.name}", {**sec, "task": r.task, "model": r.name},
                   **{"scrm.task": r.task}):
            tracking.log_metrics(metrics["models"][r.task][r.name])
            if settings.logs_model(r.task, r.name):
                _log_model(r, f"scrm-response-time-{slug[r.task]}-{r.name.replace('_', '-')}")
    cox = metrics["models"].get("cox", {})
    if cox.get("status") == "ok":
        with start("cox/phreg", {**sec, "model": "cox"}, **{"scrm.task": "time_to_reply"}):
            tracking.log_metrics({k: cox.get(k) for k in ("c_index", "c_index_ci_low",
                                                          "c_index_ci_high", "log_likelihood")})
            tracking.log_dict(cox, "cox.json")
