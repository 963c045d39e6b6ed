"""The benchmark's written results: leaderboard (CSV and markdown), metrics JSON, DVC plot rows.

The metrics JSON holds no timings and rounds floats to 6 decimals, so it is byte-identical across
runs; fit and predict seconds go to the leaderboard (and MLflow) only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from ...config import BenchmarkSettings
from ...stats.intervals import finite
from .evaluate import Result, best_of, group_results

SPLIT_HELP = {
    "stratified": "random split keeping class proportions (weak: one hold-out of `test_size`; "
                  "gold: stratified K-fold)",
    "time": "train on the earliest openings by `created_at`, test on strictly later ones (weak: "
            "last `test_size` of the timeline; gold: forward-chaining K-fold, so the earliest "
            "block is never tested)",
    "brand": "grouped by brand: test brands never appear in training (weak: GroupShuffleSplit with "
             "`test_size` of the brands; gold: StratifiedGroupKFold); openings no brand answered "
             "form one group",
}
LABEL_HELP = {
    "weak": "rows with a `label` (a user labels file when given, else the weak labels); trained "
            "and tested on those labels, so the score is agreement with the labelling rules",
    "gold": "hand-labelled gold set only (`gold_label`), K-fold cross-validated; agreement with "
            "people",
}


def leaderboard(results: Sequence[Result], settings: BenchmarkSettings) -> pl.DataFrame:
    """One row per run, sorted by macro-F1 within (label source, split); timings included."""
    classes = sorted({c for r in results for c in r.classes})
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "labels": r.labels, "split": r.split, "model": r.model,
            "macro_f1": finite(r.scores["macro_f1"]), "accuracy": finite(r.scores["accuracy"]),
            "macro_f1_fold_std": finite(np.std(r.fold_f1)) if r.n_folds > 1 else None,
            "n_train": r.n_train, "n_test": r.n_test, "n_folds": r.n_folds,
            "n_classes": len(r.classes),
            "fit_s": round(r.fit_s, 4), "predict_s": round(r.predict_s, 4),
        }
        for c in classes:
            v = r.scores["per_class_f1"].get(c)
            row[f"f1.{c}"] = None if v is None else finite(v)
        rows.append(row)
    schema_overrides = {f"f1.{c}": pl.Float64 for c in classes}
    schema_overrides["macro_f1_fold_std"] = pl.Float64
    lb = pl.DataFrame(rows, schema_overrides=schema_overrides, infer_schema_length=None)
    if lb.height == 0:
        return lb
    lab_order = {s: i for i, s in enumerate(settings.labels)}
    split_order = {s: i for i, s in enumerate(settings.splits)}
    lb = (lb.with_columns(pl.col("labels").replace_strict(lab_order).alias("_l"),
                          pl.col("split").replace_strict(split_order).alias("_s"))
          .sort(["_l", "_s", "macro_f1", "accuracy", "model"],
                descending=[False, False, True, True, False])
          .drop("_l", "_s"))
    rank = pl.int_range(1, pl.len() + 1).over(["labels", "split"]).alias("rank")
    return lb.select(pl.col("labels", "split"), rank, pl.exclude("labels", "split"))


def metrics_json(results: Sequence[Result], classes: Mapping[str, Any],
                 skipped: Mapping[str, str], settings: BenchmarkSettings,
                 plot_key: str | None) -> dict[str, Any]:
    """Deterministic summary: no timings, floats rounded to 6 decimals."""
    s = settings
    res: dict[str, Any] = {}
    for r in results:
        res.setdefault(r.labels, {}).setdefault(r.split, {})[r.model] = {
            "macro_f1": finite(r.scores["macro_f1"]), "accuracy": finite(r.scores["accuracy"]),
            "n_train": r.n_train, "n_test": r.n_test, "n_folds": r.n_folds,
        }
    best: dict[str, Any] = {}
    for (src, split), group in group_results(results).items():
        b = best_of(group)
        best.setdefault(src, {})[split] = {"model": b.model,
                                           "macro_f1": finite(b.scores["macro_f1"])}
    return {
        "runs": len(results),
        "models": list(dict.fromkeys(r.model for r in results)),
        "splits": list(s.splits), "labels": list(s.labels),
        "results": res, "best": best, "classes": dict(classes), "skipped": dict(skipped),
        "confusion_plot": plot_key,
        "config": {"seed": s.seed, "test_size": s.test_size, "cv_folds": s.cv_folds,
                   "min_class_count": s.min_class_count, "rare_classes": s.rare_classes,
                   "text_col": s.text_col},
    }


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_markdown(lb: pl.DataFrame, classes: Mapping[str, Any], skipped: Mapping[str, str],
                    settings: BenchmarkSettings) -> str:
    """The leaderboard as markdown, one table per (label source, split), with how to read it."""
    s = settings
    lines = ["# Classifier benchmark: complaint categories", "",
             "Every model is an sklearn Pipeline (params.yaml `benchmark.zoo`) fitted on training "
             "rows only; macro-F1 is the ranking metric (classes are imbalanced). Fit/predict "
             "times are wall-clock seconds on this machine "
             f"({s.n_threads} thread(s)), summed over folds.", "",
             "**Splits**", ""]
    lines += [f"- `{split}`: {SPLIT_HELP[split]}" for split in s.splits]
    lines += ["", "**Label sources**", ""]
    lines += [f"- `{src}`: {LABEL_HELP[src]}" for src in s.labels]
    lines += ["", f"Classes with fewer than `min_class_count`={s.min_class_count} rows "
              f"(gold: nor fewer than `cv_folds`={s.cv_folds}) are "
              + (f"merged into `{s.merge_into}`" if s.rare_classes == "merge"
                 else "dropped") + "; counts below.", ""]
    for src, info in classes.items():
        extra = ""
        if info.get("merged"):
            extra += f"; merged: {info['merged']}"
        if info.get("dropped"):
            extra += f"; dropped: {info['dropped']}"
        if info.get("origin"):
            extra += f"; labels from: {', '.join(info['origin'])}"
        lines.append(f"- `{src}`: {info['n_rows']} rows, {len(info['counts'])} classes{extra}")
    if skipped:
        lines += ["", "**Skipped**", ""]
        lines += [f"- `{k}`: {v}" for k, v in skipped.items()]
    cols = ["rank", "model", "macro_f1", "accuracy", "macro_f1_fold_std", "n_train", "n_test",
            "n_folds", "fit_s", "predict_s"]
    for (src, split), part in lb.group_by(["labels", "split"], maintain_order=True):
        lines += ["", f"## labels = `{src}`, split = `{split}`", "",
                  "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in part.select(cols).iter_rows(named=True):
            lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def confusion_rows(r: Result) -> pl.DataFrame:
    """Per-row (actual, predicted) pairs for DVC's confusion template."""
    return pl.DataFrame({"tweet_id": r.tweet_id.astype(np.int64),
                         "actual": r.y_true.astype(str), "predicted": r.y_pred.astype(str)})
