"""Fitting and scoring: every zoo model on the same folds, test predictions pooled and scored.

Models are fitted on training rows only; the shared TF-IDF block is fitted once per fold and reused
by every model that starts with it (:func:`fit_predict`). Macro-F1 is the ranking metric (classes are
imbalanced); fit and predict seconds are measured but never decide a number.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ...config import BenchmarkSettings
from ...errors import ScrmError
from .splits import Fold, LabelSet, SplitError, label_set, make_folds
from .zoo import build_zoo, text_frame


@dataclass
class Result:
    """One (model, split, label source): pooled out-of-fold predictions and their scores."""

    model: str
    split: str
    labels: str
    classes: list[str]
    tweet_id: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    fold_f1: list[float]
    n_train: int
    n_folds: int
    fit_s: float
    predict_s: float
    pipeline: Any = None  # the fitted pipeline of a hold-out (None for CV: refit when logged)
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def n_test(self) -> int:
        return int(len(self.y_true))


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Macro-F1 over the classes present in truth or prediction (absent classes are not scored
    as zeros), accuracy, per-class F1 and the confusion matrix over all of the source's classes."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    per_class = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro",
                                   zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class_f1": {c: float(v) for c, v in zip(present, per_class, strict=True)},
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


@dataclass
class _Fitted:
    """A fitted step shared by every model whose pipeline starts with the same (unfitted) steps."""

    step: Any
    x_train: Any
    x_test: Any
    fit_s: float
    transform_s: float


def _split_pipeline(pipe: Any) -> tuple[list[tuple[str, Any]], tuple[str, Any]]:
    from sklearn.pipeline import Pipeline

    if isinstance(pipe, Pipeline) and len(pipe.steps) > 1:
        return list(pipe.steps[:-1]), pipe.steps[-1]
    return [], ("clf", pipe)


def fit_predict(pipe: Any, x_train: Any, y_train: np.ndarray, x_test: Any,
                cache: dict[str, _Fitted]) -> tuple[Any, np.ndarray, float, float]:
    """Fit ``pipe`` on the training rows and predict the test rows, reusing transformer steps.

    Why the cache: every class-path model starts with the same TF-IDF block, and refitting it per
    model would dominate the benchmark. A step prefix with identical (unfitted) parameters on the
    same fold gives identical output, so it is fitted once per fold (on training rows only) and its
    fit/transform times are charged to every model that uses it: reported times stay those of the
    whole pipeline. Returns the fitted pipeline, predictions, fit and predict seconds.
    """
    import joblib
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    prefix, (last_name, last) = _split_pipeline(pipe)
    xtr, xte = x_train, x_test
    fitted_steps: list[tuple[str, Any]] = []
    fit_s = predict_s = 0.0
    for i, (name, step) in enumerate(prefix):
        if step is None or step == "passthrough":
            fitted_steps.append((name, step))
            continue
        key = joblib.hash(prefix[: i + 1])
        if key not in cache:
            est = clone(step)
            t0 = time.perf_counter()
            out_train = est.fit_transform(xtr, y_train)
            t1 = time.perf_counter()
            out_test = est.transform(xte)
            cache[key] = _Fitted(est, out_train, out_test, t1 - t0, time.perf_counter() - t1)
        hit = cache[key]
        xtr, xte = hit.x_train, hit.x_test
        fit_s += hit.fit_s
        predict_s += hit.transform_s
        fitted_steps.append((name, hit.step))
    clf = clone(last)
    t0 = time.perf_counter()
    clf.fit(xtr, y_train)
    t1 = time.perf_counter()
    pred = np.asarray(clf.predict(xte), dtype=object)
    predict_s += time.perf_counter() - t1
    fit_s += t1 - t0
    fitted = Pipeline([*fitted_steps, (last_name, clf)]) if fitted_steps else clf
    return fitted, pred, fit_s, predict_s


def evaluate_group(pipes: Mapping[str, Any], ls: LabelSet, split: str,
                   folds: list[Fold]) -> list[Result]:
    """Every model on the same folds, fitted on the training rows only; test predictions pooled."""
    from sklearn.metrics import f1_score

    acc: dict[str, dict[str, Any]] = {
        n: {"pred": [], "fold_f1": [], "fit_s": 0.0, "predict_s": 0.0, "fitted": None}
        for n in pipes}
    for f in folds:
        cache: dict[str, _Fitted] = {}  # one fold's shared steps; dropped after the fold
        x_train, x_test = text_frame(ls.text[f.train]), text_frame(ls.text[f.test])
        y_train, y_test = ls.y[f.train], ls.y[f.test]
        for name, pipe in pipes.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter; scores speak instead
                    fitted, pred, fit_s, predict_s = fit_predict(pipe, x_train, y_train, x_test,
                                                                 cache)
            except Exception as exc:  # noqa: BLE001 - name the model and the split, then stop
                raise ScrmError(f"benchmark model {name!r} failed on labels={ls.source} "
                                f"split={split}: {type(exc).__name__}: {exc}") from exc
            a = acc[name]
            a["pred"].append(pred)
            a["fit_s"] += fit_s
            a["predict_s"] += predict_s
            a["fitted"] = fitted if len(folds) == 1 else None
            present = sorted(set(y_test.tolist()) | set(pred.tolist()))
            a["fold_f1"].append(float(f1_score(y_test, pred, labels=present, average="macro",
                                               zero_division=0)))
    tid = np.concatenate([ls.tweet_id[f.test] for f in folds])
    y_true = np.concatenate([ls.y[f.test] for f in folds])
    order = np.argsort(tid, kind="stable")
    n_train = int(round(float(np.mean([len(f.train) for f in folds]))))
    results = []
    for name, a in acc.items():
        res = Result(model=name, split=split, labels=ls.source, classes=ls.classes,
                     tweet_id=tid[order], y_true=y_true[order],
                     y_pred=np.concatenate(a["pred"])[order], fold_f1=a["fold_f1"],
                     n_train=n_train, n_folds=len(folds), fit_s=a["fit_s"],
                     predict_s=a["predict_s"], pipeline=a["fitted"])
        res.scores = score(res.y_true, res.y_pred, res.classes)
        results.append(res)
    return results


def best_of(results: Sequence[Result]) -> Result:
    """Highest macro-F1, ties to higher accuracy, then to the model name (deterministic)."""
    return sorted(results, key=lambda r: (-round(r.scores["macro_f1"], 6),
                                          -round(r.scores["accuracy"], 6), r.model))[0]


def run_benchmark(df: pl.DataFrame, settings: BenchmarkSettings,
                  on_group: Any = None) -> tuple[list[Result], dict[str, Any], dict[str, Any]]:
    """Every selected model on every selected split and label source (pure: no files written).

    ``on_group(label_set, split, results)`` is called after each (label source, split) so the
    caller can log and then drop the fitted pipelines (memory stays at one group's worth).
    Returns the results, the per-source class report and the skipped (source or split) reasons.
    """
    from threadpoolctl import threadpool_limits

    s = settings
    pipes = build_zoo(s.zoo, s.models, s.features, s.seed)
    results: list[Result] = []
    classes: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with threadpool_limits(limits=s.n_threads):
        for source in s.labels:
            ls = label_set(df, source, s)
            if isinstance(ls, str):
                skipped[source] = ls
                continue
            classes[source] = {"n_rows": int(len(ls.y)), "counts": ls.counts,
                               "merged": ls.merged, "dropped": ls.dropped}
            if ls.subsampled_from is not None:
                classes[source]["subsampled_from"] = ls.subsampled_from
            if ls.origin:
                classes[source]["origin"] = ls.origin
            for split in s.splits:
                try:
                    folds = make_folds(split, ls, s)
                except SplitError as exc:
                    skipped[f"{source}/{split}"] = str(exc)
                    continue
                group = evaluate_group(pipes, ls, split, folds)
                if on_group is not None:
                    on_group(ls, split, group)
                for r in group:
                    r.pipeline = None
                results.extend(group)
    return results, classes, skipped


def group_results(results: Sequence[Result]) -> dict[tuple[str, str], list[Result]]:
    """Results by (label source, split), in run order."""
    out: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        out.setdefault((r.labels, r.split), []).append(r)
    return out
