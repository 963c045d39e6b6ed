"""Stage ``benchmark``: every zoo model x split x label source on ``complaints.parquet``.

Why two label sources: ``weak`` trains and tests on the rule-based labels (the ``label`` column: a
user's own labels file when given, else the weak labels), so it measures how well a model
*reproduces the rules*, not how right it is; ``gold`` uses only the hand-labelled gold set, evaluated
by K-fold cross-validation, and measures agreement with people. The splits are in :mod:`.splits`,
fitting and scoring in :mod:`.evaluate`, the models in :mod:`.zoo`, the written tables in
:mod:`.outputs` and the confusion figure in :mod:`.drawing`.

Everything that decides a number is in params.yaml (``benchmark:``, :class:`scrm.config.
BenchmarkSettings`); command-line options override a few of them for one run. Fit and predict times
go to the leaderboard and MLflow only, so ``reports/metrics/benchmark.json`` is byte-identical across
runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ...config import BenchmarkSettings, ConfigError
from ...errors import DataError, ScrmError
from ...io import write_csv, write_json, write_text
from ...paths import Paths
from .drawing import confusion_figure
from .evaluate import Result, best_of, group_results, run_benchmark
from .outputs import confusion_rows, leaderboard, metrics_json, render_markdown
from .splits import LabelSet
from .zoo import build_zoo, text_frame

EXPERIMENT = "benchmark"
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# settings and input
# --------------------------------------------------------------------------------------------------
def with_overrides(settings: BenchmarkSettings, *, models: Sequence[str] | None = None,
                   splits: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                   log_models: str | None = None, mlflow: bool | None = None) -> BenchmarkSettings:
    """``settings`` with the command-line overrides that are given (None keeps params.yaml's value),
    validated like params.yaml: an unknown model, split or label source is an error naming it."""
    changes: dict[str, Any] = {}
    if models:
        changes["models"] = tuple(models)
    if splits:
        changes["splits"] = tuple(splits)
    if labels:
        changes["labels"] = tuple(labels)
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


REQUIRED = ("tweet_id", "brand", "created_at", "label", "gold_label")


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


# --------------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------------
def _make_logger(paths: Paths, settings: BenchmarkSettings, data_path: Path) -> Any:
    """A callback logging one MLflow run per (model, split, label source) as each group finishes."""
    from sklearn.base import clone

    from ... import tracking

    s = settings
    refits: dict[str, Any] = {}  # gold CV: the model refitted on all gold rows, shared by splits
    pipes = build_zoo(s.zoo, s.models, s.features, s.seed)

    def fitted_pipeline(r: Result, ls: LabelSet) -> Any:
        if r.pipeline is not None:
            return r.pipeline
        if r.model not in refits or refits[r.model][0] != ls.source:
            est = clone(pipes[r.model])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(text_frame(ls.text), ls.y)
            refits[r.model] = (ls.source, est)
        return refits[r.model][1]

    def log_group(ls: LabelSet, split: str, group: list[Result]) -> None:
        best = best_of(group).model
        for r in group:
            spec = s.zoo[r.model]
            params = {"model": r.model, "estimator": spec.estimator,
                      "features_kind": spec.features, "kwargs": dict(spec.kwargs),
                      "split": split, "labels": ls.source, "test_size": s.test_size,
                      "cv_folds": s.cv_folds, "text_col": s.text_col,
                      "features": asdict(s.features), "n_train": r.n_train, "n_test": r.n_test,
                      "n_folds": r.n_folds, "n_classes": len(r.classes),
                      "rare_classes": s.rare_classes, "min_class_count": s.min_class_count}
            tags = {"scrm.stage": "benchmark", "benchmark.model": r.model,
                    "benchmark.split": split, "benchmark.labels": ls.source,
                    "benchmark.best_in_split": str(r.model == best).lower(),
                    "benchmark.model_fit_on": "train split" if r.n_folds == 1
                    else f"all {ls.source} rows (metrics are {r.n_folds}-fold CV)"}
            with tracking.start_run(EXPERIMENT, f"{r.model}|{split}|{ls.source}", params=params,
                                    seed=s.seed, inputs=[data_path], tags=tags,
                                    root=paths.root):
                m = {"macro_f1": r.scores["macro_f1"], "accuracy": r.scores["accuracy"],
                     "fit_s": r.fit_s, "predict_s": r.predict_s}
                if r.n_folds > 1:
                    m["macro_f1_fold_std"] = float(np.std(r.fold_f1))
                m.update({f"f1.{c}": v for c, v in r.scores["per_class_f1"].items()})
                tracking.log_metrics(m)
                tracking.log_dict({"labels": r.classes, "matrix": r.scores["confusion"]},
                                  "confusion_matrix.json")
                if s.mlflow.log_models == "all" or (s.mlflow.log_models == "best"
                                                    and r.model == best):
                    register = (s.mlflow.register == "all"
                                or (s.mlflow.register == "best" and r.model == best))
                    try:
                        tracking.log_sklearn_model(fitted_pipeline(r, ls),
                                                   text_frame(ls.text[:5]),
                                                   registered_name=f"scrm-benchmark-{r.model}"
                                                   if register else None)
                    except Exception as exc:  # noqa: BLE001 - metrics are logged; say why no model
                        # e.g. MLflow's skops format refuses a researcher's custom class
                        msg = f"{type(exc).__name__}: {exc}"
                        log.warning("benchmark: model %s (%s/%s) not logged to MLflow: %s",
                                    r.model, ls.source, split, msg.splitlines()[0][:400])
                        tracking.log_dict({"error": msg}, "model_not_logged.json")

    return log_group


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def run(paths: Paths, settings: BenchmarkSettings, *, models: Sequence[str] | None = None,
        splits: Sequence[str] | None = None, labels: Sequence[str] | None = None,
        log_models: str | None = None, mlflow: bool | None = None) -> dict[str, Any]:
    """Leaderboard CSV/MD, deterministic metrics JSON, plots and MLflow runs (options as in
    :func:`with_overrides`)."""
    paths.ensure()
    s = with_overrides(settings, models=models, splits=splits, labels=labels,
                       log_models=log_models, mlflow=mlflow)
    df = load_frame(paths.complaints, s.text_col)
    on_group = _make_logger(paths, s, paths.complaints) if s.mlflow.enabled else None
    results, classes, skipped = run_benchmark(df, s, on_group=on_group)
    if not results:
        raise ScrmError("benchmark: nothing could be evaluated: "
                        + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    bests = [best_of(g) for g in group_results(results).values()]
    plot_src = next((src for src in ("gold", "weak") if any(b.labels == src for b in bests)), None)
    plot_best = next((b for split in s.splits for b in bests
                      if b.labels == plot_src and b.split == split), bests[0])
    plot_key = f"{plot_best.labels}/{plot_best.split}/{plot_best.model}"

    lb = leaderboard(results, s)
    write_csv(lb, paths.benchmark_csv)
    write_text(paths.benchmark_md, render_markdown(lb, classes, skipped, s))
    write_csv(confusion_rows(plot_best), paths.benchmark_confusion_plot)
    write_csv(lb.select((pl.col("labels") + "/" + pl.col("split") + "/" + pl.col("model"))
                        .alias("run"), "macro_f1"),
              paths.benchmark_leaderboard_plot)
    fig = confusion_figure(bests)
    write_text(paths.benchmark_confusion_html,
               fig.to_html(include_plotlyjs=True, full_html=True, div_id="benchmark-confusion"))
    metrics = metrics_json(results, classes, skipped, s, plot_key)
    write_json(paths.metric("benchmark"), metrics)
    return metrics
