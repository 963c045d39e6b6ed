"""Fitting with choices made on validation folds inside the training rows only.

Why: choosing a hyper-parameter or a model by its score on the rows it is then scored on inflates
that score (the winner of many noisy draws looks better than it is). Here every choice, the grid
point of each model and the model a protocol "selects", is made on ``inner_folds`` validation folds
cut from the *training* rows; the scored rows are only ever predicted. :func:`fit_models` never
reads the labels of the rows it predicts (a test passes nonsense labels and gets the same choices).

The shared feature block (TF-IDF) is fitted once per fold and reused by every model and grid point
that starts with it (:func:`fit_predict`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...cluster import error_text
from ...errors import ScrmError
from ...stats.paired import encode, macro_f1
from .splits import LabelSet, SplitError, make_folds
from .zoo import text_frame, with_params


@dataclass(frozen=True)
class Spec:
    """A model to fit: its unfitted pipeline, input kind and grid points (from the zoo entry)."""

    pipe: Any
    features: str
    points: list[dict[str, Any]]


@dataclass
class Fitted:
    """One model fitted on one training set: predictions of the scored rows and how it was chosen."""

    pred: np.ndarray
    params: dict[str, Any]
    val_score: float | None     # mean validation macro-F1 of the chosen point (None: no folds)
    pipeline: Any = None
    fit_s: float = 0.0
    predict_s: float = 0.0
    val_scores: dict[str, float] = field(default_factory=dict)  # every grid point's


@dataclass
class _Cached:
    step: Any
    x_train: Any
    x_test: Any
    fit_s: float
    transform_s: float


def model_input(features: str, ls: LabelSet) -> Any:
    """What a model of this input kind reads: the cached vectors or the one-column text frame."""
    if features == "embeddings":
        if ls.emb is None:
            raise ScrmError("embeddings model without cached vectors for these rows")
        return ls.emb
    return text_frame(ls.text)


def fit_predict(pipe: Any, x_train: Any, y_train: np.ndarray, x_test: Any,
                cache: dict[str, _Cached]) -> tuple[Any, np.ndarray, float, float]:
    """Fit ``pipe`` on the training rows and predict the test rows, reusing transformer steps.

    A step prefix with identical (unfitted) parameters on the same rows gives identical output, so
    it is fitted once (on training rows only) and its fit/transform times are charged to every model
    that uses it: reported times stay those of the whole pipeline. Returns the fitted pipeline,
    predictions, fit and predict seconds.
    """
    import joblib
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    steps = list(pipe.steps) if isinstance(pipe, Pipeline) else [("clf", pipe)]
    prefix, (last_name, last) = steps[:-1], steps[-1]
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
            cache[key] = _Cached(est, out_train, out_test, t1 - t0, time.perf_counter() - t1)
        hit = cache[key]
        xtr, xte = hit.x_train, hit.x_test
        fit_s += hit.fit_s
        predict_s += hit.transform_s
        fitted_steps.append((name, hit.step))
    clf = clone(last)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; scores speak instead
        clf.fit(xtr, y_train)
    t1 = time.perf_counter()
    pred = np.asarray(clf.predict(xte), dtype=object)
    predict_s += time.perf_counter() - t1
    fit_s += t1 - t0
    fitted = Pipeline([*fitted_steps, (last_name, clf)]) if fitted_steps else clf
    return fitted, pred, fit_s, predict_s


# what scikit-learn's text vectorizers say when the training rows leave them no term
EMPTY_VOCABULARY = ("no terms remain", "empty vocabulary")


def too_little_text(exc: BaseException, train: LabelSet) -> None:
    """Raise :class:`SplitError` (the section is skipped with this reason, not the stage failed)
    when ``exc`` is a vectorizer finding no term in the training rows: too few texts for the
    features' ``min_df``, a property of the data, not a bug of the model."""
    if isinstance(exc, ValueError) and any(m in str(exc) for m in EMPTY_VOCABULARY):
        raise SplitError(f"{len(train.y):,} training rows ({train.source}) leave the text "
                         f"features no term ({exc})") from None


def _point_key(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(defaults)"


def validation_scores(specs: Mapping[str, Spec], train: LabelSet, classes: list[str], split: str,
                      inner_folds: int, seed: int, failed: dict[str, str] | None = None,
                      ) -> dict[str, dict[str, float]]:
    """Mean validation macro-F1 of every grid point of every model, on folds of the training rows.

    Empty when the training rows cannot be split (then the first grid point is used). A model that
    raises is left out of the rest and its error put in ``failed`` (when given; else it raises)."""
    try:
        folds = make_folds(split, train, inner_folds, 0.0, seed)
    except SplitError:
        return {}
    sums: dict[str, dict[str, list[float]]] = {n: {} for n in specs}
    for f in folds:
        tr, va = train.take(f.train), train.take(f.test)
        y_va = encode(va.y.tolist(), classes)
        cache: dict[str, _Cached] = {}
        for name, spec in specs.items():
            if (spec.features == "embeddings" and train.emb is None) or \
                    (failed is not None and name in failed):
                continue
            x_tr, x_va = model_input(spec.features, tr), model_input(spec.features, va)
            for point in spec.points:
                try:
                    _, pred, _, _ = fit_predict(with_params(spec.pipe, point), x_tr, tr.y, x_va,
                                                cache)
                except Exception as exc:  # noqa: BLE001 - too little text skips; else recorded
                    too_little_text(exc, tr)
                    if failed is None:
                        raise
                    failed[name] = f"validation fit: {error_text(exc)}"
                    break
                score = macro_f1(y_va, encode(pred.tolist(), classes), len(classes))
                sums[name].setdefault(_point_key(point), []).append(score)
    return {n: {k: float(np.mean(v)) for k, v in pts.items()} for n, pts in sums.items()
            if pts and not (failed and n in failed)}


def fit_each(specs: Mapping[str, Spec], train: LabelSet, scored: LabelSet, classes: list[str],
             split: str, inner_folds: int, seed: int, keep_pipeline: bool = False,
             ) -> tuple[dict[str, Fitted], dict[str, str]]:
    """Choose each model's grid point on validation folds of ``train``, refit it on all of
    ``train`` and predict ``scored`` (whose labels are never read).

    Returns the fitted models and, apart, the models that raised with their error text: one
    broken model is a recorded result, not the end of the benchmark. Too little text for the
    features is a :class:`SplitError` (the whole section is skipped with that reason)."""
    failed: dict[str, str] = {}
    val = validation_scores(specs, train, classes, split, inner_folds, seed, failed)
    out: dict[str, Fitted] = {}
    cache: dict[str, _Cached] = {}
    for name, spec in specs.items():
        if name in failed or (spec.features == "embeddings"
                              and (train.emb is None or scored.emb is None)):
            continue
        scores = val.get(name, {})
        best = max(spec.points, key=lambda p: scores.get(_point_key(p), -1.0))  # first on ties
        try:
            fitted, pred, fit_s, predict_s = fit_predict(
                with_params(spec.pipe, best), model_input(spec.features, train), train.y,
                model_input(spec.features, scored), cache)
        except Exception as exc:  # noqa: BLE001 - name the model, record, go on
            too_little_text(exc, train)
            failed[name] = error_text(exc)
            continue
        out[name] = Fitted(pred=pred, params=best, val_score=scores.get(_point_key(best)),
                           pipeline=fitted if keep_pipeline else None, fit_s=fit_s,
                           predict_s=predict_s, val_scores=scores)
    return out, failed


def fit_models(specs: Mapping[str, Spec], train: LabelSet, scored: LabelSet, classes: list[str],
               split: str, inner_folds: int, seed: int, keep_pipeline: bool = False,
               ) -> dict[str, Fitted]:
    """:func:`fit_each`, raising :class:`ScrmError` naming the first model that failed."""
    out, failed = fit_each(specs, train, scored, classes, split, inner_folds, seed, keep_pipeline)
    for name, why in failed.items():
        raise ScrmError(f"benchmark model {name!r} failed ({train.source}): {why}")
    return out


def selected_model(fitted: Mapping[str, Fitted]) -> str | None:
    """The model with the best validation score (ties: the first in zoo order); None without one."""
    scored = [(f.val_score, i, n) for i, (n, f) in enumerate(fitted.items())
              if f.val_score is not None]
    if not scored:
        return None
    return max(scored, key=lambda t: (t[0], -t[1]))[2]
