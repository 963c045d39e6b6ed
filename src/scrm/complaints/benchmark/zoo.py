"""The benchmark's model zoo: every model is an sklearn Pipeline built from a params.yaml entry.

A zoo entry names an estimator by dotted path, so a researcher adds a model by editing params, not
code::

    benchmark:
      zoo:
        logreg:                                   # an sklearn class: put after the shared features
          estimator: sklearn.linear_model.LogisticRegression
          features: tfidf
          kwargs: {C: 4.0, max_iter: 2000}
        mine:                                     # a factory: returns a whole Pipeline
          estimator: mypkg.models:make_model
          features: none
          kwargs: {alpha: 0.1}

Every text model reads the same input: a one-column pandas frame ``text`` (see :func:`text_frame`),
which is also what a logged model receives when MLflow serves it. A ``features: embeddings`` model
reads the sentence vectors ``scrm embed`` cached for the same openings (``embeddings.npz``; MiniLM
by default) as a float matrix, so text-vector models are compared with TF-IDF ones on equal rows.

An entry's ``grid`` lists values of the estimator's parameters; :func:`grid_points` expands it and
:func:`with_params` sets one point on a fresh copy. Which point is used is chosen on validation
folds inside the training rows (:mod:`.select`).

Why a shared feature block: the comparison is about classifiers, so every class-path model sees the
same TF-IDF features (word and char_wb n-grams of ``benchmark.features``), built fresh (unfitted) for
each model. An entry's ``features`` picks the block: ``tfidf`` (usual for classes), ``tfidf_svd``
(dense SVD components, for models that want dense input such as gradient boosting), ``embeddings``
(the cached sentence vectors, no block) or ``none`` (the estimator reads the frame itself, as a
factory's Pipeline does). A factory whose signature has a
``features`` argument gets the shared block (unfitted) to build on. Seeds (``random_state``/``seed``) and ``n_jobs=1`` are injected
where accepted and not set in the entry, so the same params give the same models.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from ...config import FeatureSettings, ZooEntry
from ...errors import ScrmError

TEXT = "text"  # the one column of the frame every model reads


def text_frame(texts: Any) -> Any:
    """Texts -> the one-column pandas frame ``text`` every zoo model reads.

    Why a frame and not a list of strings: it is what MLflow's pyfunc passes when a logged model is
    served, and the feature block selects the column with a ColumnTransformer, so the logged
    pipeline holds only sklearn types (MLflow saves sklearn models with skops, which refuses custom
    functions). Null texts become "".
    """
    import numpy as np
    import pandas as pd

    s = pd.Series(np.asarray(texts, dtype=object).reshape(-1), dtype=object)
    return pd.DataFrame({TEXT: s.where(s.notna(), "").astype(str)})


def resolve(dotted: str) -> Any:
    """Import ``pkg.mod:attr`` or ``pkg.mod.attr`` (the last dot splits module from attribute)."""
    if not isinstance(dotted, str) or not dotted.strip():
        raise ScrmError(f"model path must be a dotted path string, got {dotted!r}")
    if ":" in dotted:
        module_name, _, attr = dotted.partition(":")
    else:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise ScrmError(f"model path {dotted!r} is not of the form 'package.module:name' "
                        "or 'package.module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScrmError(f"cannot import module {module_name!r} of model path {dotted!r}: {exc}") \
            from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ScrmError(f"module {module_name!r} has no attribute {attr!r} "
                            f"(model path {dotted!r})") from exc
    return obj


def tfidf_features(features: FeatureSettings) -> ColumnTransformer:
    """Word + char_wb n-gram TF-IDF of the ``text`` column, stacked (a feature union): words carry
    the topic, char n-grams survive typos and hashtags. Output stays sparse."""
    f = features
    common = {"min_df": f.min_df, "max_df": f.max_df, "max_features": f.max_features,
              "sublinear_tf": f.sublinear_tf, "lowercase": f.lowercase}
    return ColumnTransformer([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=tuple(f.word_ngram),
                                 token_pattern=r"(?u)\b\w\w+\b", **common), TEXT),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(f.char_ngram), **common),
         TEXT),
    ], sparse_threshold=1.0, n_jobs=1)


def _inject(accepts: set[str], kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Add the seed and a single thread where accepted and not set by the user."""
    out = dict(kwargs)
    if "random_state" in accepts and "random_state" not in out:
        out["random_state"] = seed
    if "seed" in accepts and "seed" not in out and "random_state" not in out:
        out["seed"] = seed
    if "n_jobs" in accepts and "n_jobs" not in out:
        out["n_jobs"] = 1
    return out


def _signature_params(obj: Any) -> set[str]:
    try:
        return set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return set()


def _check_estimator(est: Any, name: str, path: str) -> None:
    if not (hasattr(est, "fit") and hasattr(est, "predict")):
        raise ScrmError(f"benchmark.zoo.{name}: {path!r} gave a {type(est).__name__}, which has "
                        "no fit/predict; a zoo entry must name an sklearn classifier class or a "
                        "factory returning one")


def build_model(name: str, spec: ZooEntry, features: FeatureSettings, seed: int) -> Pipeline:
    """One zoo entry (keys and the ``features`` choice checked by :class:`scrm.config.ZooEntry`)
    -> an unfitted Pipeline mapping a `text` frame to labels."""
    path = spec.estimator
    kwargs = dict(spec.kwargs)
    target = resolve(path)
    is_class = inspect.isclass(target)
    if not is_class and not callable(target):
        raise ScrmError(f"benchmark.zoo.{name}: {path!r} is neither a class nor a factory function")
    kind = spec.features

    accepts = _signature_params(target)
    if is_class and issubclass(target, BaseEstimator):
        accepts |= set(target._get_param_names())
    call_kwargs = _inject(accepts, kwargs, seed)
    if not is_class and "features" in accepts and "features" not in call_kwargs:
        # a factory may reuse the shared (unfitted) feature block for a like-for-like comparison
        call_kwargs["features"] = tfidf_features(features)
    try:
        est = target(**call_kwargs)
    except TypeError as exc:
        raise ScrmError(f"benchmark.zoo.{name}: cannot build {path!r} with kwargs "
                        f"{sorted(call_kwargs)}: {exc}") from exc
    _check_estimator(est, name, path)

    steps: list[tuple[str, Any]] = []
    if kind in ("tfidf", "tfidf_svd"):
        steps.append(("features", tfidf_features(features)))
    if kind == "tfidf_svd":
        steps.append(("svd", TruncatedSVD(n_components=features.svd_components,
                                          random_state=seed)))
    if not steps and isinstance(est, Pipeline):
        return est
    steps.append(("clf", est))
    return Pipeline(steps)


def build_zoo(zoo: Mapping[str, ZooEntry], names: Sequence[str] | None, features: FeatureSettings,
              seed: int) -> dict[str, Pipeline]:
    """The selected zoo entries (all, in params order, when ``names`` is None), unfitted."""
    if not zoo:
        raise ScrmError("benchmark.zoo is empty: list at least one model (name -> estimator path)")
    selected = list(zoo) if not names else list(names)
    missing = [n for n in selected if n not in zoo]
    if missing:
        raise ScrmError(f"benchmark: unknown model(s) {missing}; the zoo in params.yaml has "
                        f"{list(zoo)}")
    return {n: build_model(n, zoo[n], features, seed) for n in selected}


def grid_points(name: str, spec: ZooEntry) -> list[dict[str, Any]]:
    """Every combination of the entry's grid values, in params order ([{}] for an empty grid); a
    grid key without values, or also set in kwargs, is an error naming the entry."""
    import itertools

    grid = spec.grid
    bad = sorted(set(grid) & set(spec.kwargs)) + [k for k, v in grid.items() if not v]
    if bad:
        raise ScrmError(f"benchmark.zoo.{name}.grid: {bad} listed with no value, or in both "
                        "kwargs and grid (give each parameter once)")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(list(grid[k]) for k in keys))] or [{}]


def with_params(pipe: Pipeline, params: Mapping[str, Any]) -> Pipeline:
    """An unfitted copy of ``pipe`` with ``params`` set on its final estimator."""
    from sklearn.base import clone

    out = clone(pipe)
    if params:
        last = out.steps[-1][0]
        out.set_params(**{f"{last}__{k}": v for k, v in params.items()})
    return out
