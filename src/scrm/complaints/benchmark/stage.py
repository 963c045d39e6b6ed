"""Stage ``benchmark``: every zoo model under three protocols, on ``complaints.parquet``.

Why three protocols (:mod:`.evaluate`): ``weak_to_gold`` trains on weak labels and scores on the
sealed test, the measure a weak-supervision claim needs; ``gold_cv`` cross-validates on dev (hand
labels); ``weak_on_weak`` measures how well a model *reproduces the rules*, labelled as such. The
rows are in :mod:`.splits`, the choices on validation folds in :mod:`.select`, the models in
:mod:`.zoo`, the written tables in :mod:`.outputs` and the confusion figure in :mod:`.drawing`.
Embedding models read ``data/processed/embeddings.npz`` (stage ``embed``).

Everything that decides a number is in params.yaml (``benchmark:``, :class:`scrm.config.
BenchmarkSettings`); command-line options override a few of them for one run. Fit and predict times
go to the leaderboard and MLflow only, so ``reports/metrics/benchmark.json`` is byte-identical across
runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ... import status
from ...config import BenchmarkSettings, ConfigError
from ...config_ray import RaySettings
from ...errors import DataError
from ...io import write_csv, write_json, write_text
from ...paths import Paths
from .drawing import confusion_figure
from .evaluate import Section, n_sections, run_benchmark
from .outputs import confusion_rows, leaderboard, metrics_json, render_markdown
from .splits import label_space
from .zoo import text_frame

EXPERIMENT = "benchmark"
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# settings and input
# --------------------------------------------------------------------------------------------------
def with_overrides(settings: BenchmarkSettings, *, models: Sequence[str] | None = None,
                   splits: Sequence[str] | None = None, protocols: Sequence[str] | None = None,
                   log_models: str | None = None, mlflow: bool | None = None) -> BenchmarkSettings:
    """``settings`` with the command-line overrides that are given (None keeps params.yaml's value),
    validated like params.yaml: an unknown model, split or label source is an error naming it."""
    changes: dict[str, Any] = {}
    if models:
        changes["models"] = tuple(models)
    if splits:
        changes["splits"] = tuple(splits)
    if protocols:
        changes["protocols"] = tuple(protocols)
    mlflow_changes: dict[str, Any] = {}
    if log_models is not None:
        mlflow_changes["log_models"] = log_models
    if mlflow is not None:
        mlflow_changes["enabled"] = mlflow
    if mlflow_changes:
        changes["mlflow"] = settings.mlflow.replace(**mlflow_changes)
    if not changes:
        return settings
    try:
        return BenchmarkSettings.from_mapping(asdict(settings.replace(**changes)), "benchmark")
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("params.yaml:", "command-line override:", 1)) from None


REQUIRED = ("tweet_id", "brand", "created_at", "label", "weak_label", "lm_label", "gold_label",
            "test_label")


def load_frame(path: Path, text_col: str) -> pl.DataFrame:
    """The complaints table, sorted by tweet_id so every split sees the rows in one fixed order."""
    if not path.exists():
        raise DataError("not found; run `scrm complaints` (or `dvc repro complaints`) first", path)
    df = pl.read_parquet(path)
    missing = [c for c in (*REQUIRED, text_col) if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} (benchmark.text_col={text_col!r}); "
                        f"columns present: {df.columns}", path)
    dup = df.height - df["tweet_id"].n_unique()
    if dup:
        raise DataError(f"{dup} duplicate tweet_id value(s); one row per opening expected", path)
    return df.sort("tweet_id")


def load_vectors(path: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, Any] | None]:
    """(ids, vectors) of the embedding cache and what it is, or (None, None) when there is none."""
    from ..embed import load_embeddings

    if not path.exists():
        return None, None
    cache = load_embeddings(path)
    return (np.asarray(cache.ids, dtype=np.int64), np.asarray(cache.vectors, dtype=np.float32)), {
        "file": path.name, "backend": cache.backend, "model": cache.model,
        "n": int(len(cache.ids)), "dim": int(cache.vectors.shape[1])}


# --------------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------------
def _make_logger(paths: Paths, settings: BenchmarkSettings, inputs: list[Path]) -> Any:
    """A callback logging one MLflow run per (section, system) as each section finishes.

    Learned models of single-fit protocols (weak_to_gold, weak_on_weak) can log their fitted
    pipeline; ``log_models: best`` logs the one selected on validation (never the one that scored
    best on the scored rows). Cross-validated rows log metrics only (no single fitted model).
    """
    from ... import tracking

    s = settings

    def log_section(sec: Section) -> None:
        for x in sec.systems:
            params = {"system": x.name, "kind": x.kind, "model": x.model,
                      "train_labels": x.train_labels, "protocol": sec.protocol,
                      "variant": sec.variant, "n_train": sec.n_train, "n_test": sec.n_test,
                      "n_folds": sec.n_folds, "repeats": sec.repeats,
                      "n_classes": len(sec.classes), "text_col": s.text_col,
                      "abstain_as": s.abstain_as, "inner_folds": s.inner_folds}
            if x.model is not None:
                spec = s.zoo[x.model]
                params.update(estimator=spec.estimator, features_kind=spec.features,
                              kwargs=dict(spec.kwargs), grid=dict(spec.grid),
                              features=asdict(s.features))
            selected = x.kind == "learned" and x.n_selected > 0
            tags = {"scrm.stage": "benchmark", "benchmark.protocol": sec.protocol,
                    "benchmark.variant": sec.variant, "benchmark.system": x.name,
                    "benchmark.best_in_section": str(x.name == sec.reference).lower(),
                    "benchmark.selected_on_validation": str(selected).lower()}
            with tracking.start_run(EXPERIMENT, f"{x.name}|{sec.key}", params=params, seed=s.seed,
                                    inputs=inputs, tags=tags, root=paths.root):
                sc = x.scores
                m = {"macro_f1": sc["macro_f1"], "macro_f1_ci_low": sc["macro_f1_ci"][0],
                     "macro_f1_ci_high": sc["macro_f1_ci"][1], "accuracy": sc["accuracy"],
                     "fit_s": x.fit_s, "predict_s": x.predict_s}
                if sc["diff_ci"] is not None:
                    m.update(diff_from_best=sc["diff"], p_holm=sc["p_holm"])
                if x.val_score is not None:
                    m["validation_macro_f1"] = x.val_score
                m.update({f"f1.{c}": v for c, v in sc["per_class_f1"].items()})
                tracking.log_metrics({k: v for k, v in m.items() if v is not None})
                tracking.log_dict({"labels": sec.classes, "matrix": sc["confusion"]},
                                  "confusion_matrix.json")
                wanted = s.mlflow.log_models == "all" or (s.mlflow.log_models == "best"
                                                          and selected)
                if x.pipeline is None or not wanted:
                    continue
                register = s.mlflow.register == "all" or (s.mlflow.register == "best" and selected)
                try:
                    tracking.log_sklearn_model(
                        x.pipeline, _input_example(x, s),
                        registered_name=f"scrm-benchmark-{x.model}" if register else None)
                except Exception as exc:  # noqa: BLE001 - metrics are logged; say why no model
                    msg = f"{type(exc).__name__}: {exc}"
                    log.warning("benchmark: model %s (%s) not logged to MLflow: %s", x.name,
                                sec.key, msg.splitlines()[0][:400])
                    tracking.log_dict({"error": msg}, "model_not_logged.json")
        for name, error in sec.failed_models.items():
            tags = {"scrm.stage": "benchmark", "benchmark.protocol": sec.protocol,
                    "benchmark.variant": sec.variant, "benchmark.system": name,
                    "scrm.status": "failed", "scrm.reason": error[:500]}
            with tracking.start_run(EXPERIMENT, f"{name}|{sec.key}", params={
                    "system": name, "kind": "failed", "protocol": sec.protocol,
                    "variant": sec.variant}, seed=s.seed, inputs=inputs, tags=tags,
                    root=paths.root):
                tracking.log_dict({"error": error}, "error.json")

    return log_section


def _input_example(x: Any, s: BenchmarkSettings) -> Any:
    """What the logged model reads: two texts, or two zero vectors for an embedding model."""
    if x.model is not None and s.zoo[x.model].features == "embeddings":
        return np.zeros((2, int(x.pipeline.n_features_in_)), dtype=np.float32)
    return text_frame(["my package never arrived", "thanks for the quick help"])


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def run(paths: Paths, settings: BenchmarkSettings, *, models: Sequence[str] | None = None,
        splits: Sequence[str] | None = None, protocols: Sequence[str] | None = None,
        log_models: str | None = None, mlflow: bool | None = None,
        ray_settings: RaySettings | None = None) -> dict[str, Any]:
    """Leaderboard CSV/MD, deterministic metrics JSON, plots and MLflow runs (options as in
    :func:`with_overrides`); progress, one step per section, on stderr (:mod:`scrm.progress`).
    ``ray_settings`` (params ``ray``) are used when ``benchmark.engine`` is ray."""
    from ... import progress
    paths.ensure()
    s = with_overrides(settings, models=models, splits=splits, protocols=protocols,
                       log_models=log_models, mlflow=mlflow)
    if not paths.complaints.exists():
        raise status.missing_input(paths, "complaints", paths.complaints)
    df = load_frame(paths.complaints, s.text_col)
    emb, emb_info = load_vectors(paths.embeddings)
    classes = label_space(df, s.abstain_as)
    inputs = [paths.complaints] + ([paths.embeddings] if emb is not None else [])
    logger = _make_logger(paths, s, inputs) if s.mlflow.enabled else None

    with progress.bar(n_sections(s), "benchmark", unit="section") as bar:
        sections, skipped = run_benchmark(
            df, s, classes, emb, on_section=logger,
            on_done=lambda key, note: bar.update(note=f"{key}, {note}"), ray_settings=ray_settings)
    info = {"classes": classes, "embeddings": emb_info}
    state = stage_status(paths, df, sections, skipped)
    plot = next((sec for p in ("weak_to_gold", "gold_cv", "weak_on_weak") for sec in sections
                 if sec.protocol == p), sections[0] if sections else None)
    best = next(x for x in plot.systems if x.name == plot.reference) if plot else None

    lb = leaderboard(sections, classes)
    write_csv(lb, paths.benchmark_csv)
    write_text(paths.benchmark_md, render_markdown(lb, sections, skipped, s, info))
    write_csv(confusion_rows(plot, best), paths.benchmark_confusion_plot)
    write_csv(lb.select((pl.col("protocol") + "/" + pl.col("variant") + "/" + pl.col("system"))
                        .alias("run"), "macro_f1"),
              paths.benchmark_leaderboard_plot)
    fig = confusion_figure(sections)
    write_text(paths.benchmark_confusion_html,
               fig.to_html(include_plotlyjs=True, full_html=True, div_id="benchmark-confusion"))
    metrics = {**state, **metrics_json(sections, skipped, s, info)}
    metrics["confusion_plot"] = f"{plot.key}/{best.name}" if plot and best else None
    write_json(paths.metric("benchmark"), metrics)
    if not sections and s.mlflow.enabled:
        _log_nothing_evaluated(paths, s, inputs, metrics)
    return metrics


def stage_status(paths: Paths, df: pl.DataFrame, sections: Sequence[Section],
                 skipped: dict[str, str]) -> dict[str, Any]:
    """``ok`` when a section was scored; else ``no_data`` (no opening, in prepare's words) or
    ``skipped`` with every section's reason."""
    if sections:
        return status.ok()
    if df.height == 0:
        return status.no_data(status.because(paths, "the complaints table has no opening"))
    return status.skipped("nothing could be evaluated: "
                          + "; ".join(f"{k}: {v}" for k, v in skipped.items()))


def _log_nothing_evaluated(paths: Paths, s: BenchmarkSettings, inputs: list[Path],
                           metrics: dict[str, Any]) -> None:
    """One MLflow run that says why no model was scored (tags ``scrm.status``/``scrm.reason``)."""
    from ... import tracking

    with tracking.start_run(EXPERIMENT, "nothing evaluated", params={"protocols": list(s.protocols),
                                                                      "splits": list(s.splits)},
                            seed=s.seed, inputs=inputs, root=paths.root,
                            tags={"scrm.stage": "benchmark", "scrm.status": metrics["status"],
                                  "scrm.reason": metrics["reason"]}):
        tracking.log_dict(metrics, "benchmark.json")
