"""A fair text-classifier benchmark on complaint labels: every model x split x label source.

Why three splits: a random stratified split flatters models that memorise a brand's vocabulary or
a week's news; the *time* split (train on the earliest openings, test on later ones) asks whether a
model survives drift, and the *brand* split (test brands never seen in training) asks whether it
transfers to a new client. Why two label sources: ``weak`` trains and tests on the rule-based labels
(the ``label`` column: a user's own labels file when given, else the weak labels), so it measures
how well a model *reproduces the rules*, not how right it is; ``gold`` uses only the hand-labelled
gold set, evaluated by K-fold cross-validation, and measures agreement with people.

Everything that decides a number is in params.yaml (``benchmark:``); fit and predict times go to the
leaderboard and MLflow only, so ``reports/metrics/benchmark.json`` is byte-identical across runs.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..config import Paths, section
from ..errors import DataError, ScrmError
from ..io import write_csv, write_json, write_text
from . import zoo as zoo_mod

SPLITS: tuple[str, ...] = ("stratified", "time", "brand")
LABEL_SOURCES: tuple[str, ...] = ("weak", "gold")
LABEL_COLUMN = {"weak": "label", "gold": "gold_label"}
NO_BRAND = "(no brand)"
EXPERIMENT = "benchmark"
log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------------
# configuration


def config(params: Mapping[str, Any], *, models: Sequence[str] | None = None,
           splits: Sequence[str] | None = None, labels: Sequence[str] | None = None,
           log_models: str | bool | None = None) -> dict[str, Any]:
    """The ``benchmark`` section with defaults and command-line overrides, values checked."""
    sec = section(dict(params), "benchmark")
    cfg: dict[str, Any] = {
        "seed": int(sec["seed"]),
        "text_col": sec.get("text_col", "text_clean"),
        "splits": list(splits or sec.get("splits") or SPLITS),
        "labels": list(labels or sec.get("labels") or LABEL_SOURCES),
        "models": list(models) if models else (list(sec["models"]) if sec.get("models") else None),
        "test_size": float(sec.get("test_size", 0.25)),
        "cv_folds": int(sec.get("cv_folds", 5)),
        "min_class_count": int(sec.get("min_class_count", 10)),
        "rare_classes": sec.get("rare_classes", "merge"),
        "merge_into": sec.get("merge_into", "other_unclear"),
        "max_rows": sec.get("max_rows"),
        "n_threads": int(sec.get("n_threads", 1)),
        "features": zoo_mod.feature_params(sec.get("features")),
        "zoo": dict(sec.get("zoo") or {}),
        "mlflow": {"enabled": True, "log_models": "all", "register": "best",
                   **dict(sec.get("mlflow") or {})},
    }
    if log_models is not None:
        cfg["mlflow"]["log_models"] = log_models
    lm = cfg["mlflow"]["log_models"]
    if isinstance(lm, bool) or lm is None:  # YAML true/false
        lm = "all" if lm else "none"
    cfg["mlflow"]["log_models"] = str(lm)
    if cfg["mlflow"]["log_models"] not in ("all", "best", "none"):
        raise ScrmError(f"benchmark.mlflow.log_models must be all, best or none, got {lm!r}")
    if cfg["models"]:
        unknown = [m for m in cfg["models"] if m not in cfg["zoo"]]
        if unknown:
            raise ScrmError(f"benchmark: unknown model(s) {unknown}; the zoo in params.yaml has "
                            f"{list(cfg['zoo'])}")
    bad = [s for s in cfg["splits"] if s not in SPLITS]
    if bad:
        raise ScrmError(f"benchmark.splits: unknown split(s) {bad}; choose from {list(SPLITS)}")
    bad = [s for s in cfg["labels"] if s not in LABEL_SOURCES]
    if bad:
        raise ScrmError(f"benchmark.labels: unknown label source(s) {bad}; choose from "
                        f"{list(LABEL_SOURCES)}")
    if not 0.0 < cfg["test_size"] < 1.0:
        raise ScrmError(f"benchmark.test_size must be in (0, 1), got {cfg['test_size']}")
    if cfg["cv_folds"] < 2:
        raise ScrmError(f"benchmark.cv_folds must be >= 2, got {cfg['cv_folds']}")
    if cfg["min_class_count"] < 2:
        raise ScrmError("benchmark.min_class_count must be >= 2 (a stratified split needs two "
                        "examples of every class)")
    if cfg["rare_classes"] not in ("merge", "drop"):
        raise ScrmError(f"benchmark.rare_classes must be 'merge' or 'drop', got "
                        f"{cfg['rare_classes']!r}")
    if cfg["mlflow"]["register"] not in ("best", "all", "none"):
        raise ScrmError("benchmark.mlflow.register must be best, all or none")
    if cfg["max_rows"] is not None:
        cfg["max_rows"] = int(cfg["max_rows"])
    return cfg


# --------------------------------------------------------------------------------------------------
# input


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


@dataclass
class LabelSet:
    """One label source's rows after rare-class handling (everything a split needs, as arrays)."""

    source: str
    tweet_id: np.ndarray
    text: np.ndarray
    y: np.ndarray
    created_at: np.ndarray  # int64 microseconds, for the time split
    brand: np.ndarray
    counts: dict[str, int]
    merged: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    subsampled_from: int | None = None
    origin: list[str] = field(default_factory=list)  # complaints' label_source (weak / user file)

    @property
    def classes(self) -> list[str]:
        return sorted(self.counts)


def handle_rare(y: np.ndarray, min_count: int, policy: str,
                merge_into: str) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Classes with fewer than ``min_count`` rows are merged into ``merge_into`` or dropped.

    A class that rare cannot be stratified or cross-validated and its F1 is noise. With ``merge``
    the catch-all class absorbs them; if the catch-all is still too rare it is dropped too. Returns
    the new labels (None = row dropped) and the merged / dropped class counts, so nothing vanishes
    silently.
    """
    y = np.asarray(y, dtype=object).copy()
    counts = Counter(y.tolist())
    rare = {c: n for c, n in counts.items() if n < min_count}
    merged: dict[str, int] = {}
    dropped: dict[str, int] = {}
    if policy == "merge":
        merged = {c: n for c, n in rare.items() if c != merge_into}
        if merged:
            y[np.isin(y, list(merged))] = merge_into
        n_target = int((y == merge_into).sum())
        if 0 < n_target < min_count:
            dropped[merge_into] = n_target
    else:
        dropped = dict(rare)
    if dropped:
        y[np.isin(y, list(dropped))] = None
    return y, dict(sorted(merged.items())), dict(sorted(dropped.items()))


def label_set(df: pl.DataFrame, source: str, cfg: Mapping[str, Any]) -> LabelSet | str:
    """The rows of one label source, or the reason it cannot be benchmarked."""
    col = LABEL_COLUMN[source]
    value = pl.col(col).cast(pl.Utf8).str.strip_chars()
    rows = df.filter(value.is_not_null() & (value != ""))
    if rows.height == 0:
        return f"no rows with a non-null `{col}`"
    subsampled_from = None
    if source == "weak" and cfg["max_rows"] and rows.height > cfg["max_rows"]:
        # a seeded sample for large runs; the gold set is never subsampled
        subsampled_from = rows.height
        rows = rows.sample(n=cfg["max_rows"], seed=cfg["seed"], shuffle=False).sort("tweet_id")
    min_count = cfg["min_class_count"]
    if source == "gold":
        min_count = max(min_count, cfg["cv_folds"])
    y, merged, dropped = handle_rare(rows[col].cast(pl.Utf8).str.strip_chars().to_numpy(),
                                     min_count, cfg["rare_classes"], cfg["merge_into"])
    keep = pl.Series(col, y, dtype=pl.Utf8).is_not_null()
    rows = rows.filter(keep)
    y = y[keep.to_numpy()]
    counts = dict(sorted(Counter(y.tolist()).items()))
    if len(counts) < 2:
        return (f"fewer than two classes with >= {min_count} rows in `{col}` "
                f"(dropped: {dropped or 'none'})")
    return LabelSet(
        source=source,
        tweet_id=rows["tweet_id"].to_numpy(),
        text=rows[cfg["text_col"]].fill_null("").cast(pl.Utf8).to_numpy().astype(object),
        y=y.astype(object),
        created_at=rows["created_at"].dt.epoch("us").to_numpy(),
        brand=rows["brand"].cast(pl.Utf8).fill_null(NO_BRAND).to_numpy().astype(object),
        counts=counts, merged=merged, dropped=dropped, subsampled_from=subsampled_from,
        origin=(sorted(rows["label_source"].drop_nulls().cast(pl.Utf8).unique().to_list())
                if source == "weak" and "label_source" in rows.columns else []),
    )


# --------------------------------------------------------------------------------------------------
# splits: lists of (train, test) positional index arrays


@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    test: np.ndarray


class SplitError(ScrmError):
    """A split cannot be made on these rows (recorded as a skipped split, not a crash)."""


def stratified_holdout(y: np.ndarray, test_size: float, seed: int) -> list[Fold]:
    """One stratified hold-out: both sides keep the class proportions."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise SplitError(f"stratified split impossible: {exc}") from exc
    return [Fold(np.sort(tr), np.sort(te))]


def _time_order(created_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(created_at, kind="stable")
    return order, created_at[order]


def time_holdout(created_at: np.ndarray, test_size: float) -> list[Fold]:
    """Train on the earliest ``1 - test_size`` of the timeline, test on strictly later rows.

    The cut is a timestamp, not a row position, so rows sharing the boundary second all go to the
    test side and every training row is strictly earlier than every test row.
    """
    n = len(created_at)
    _, t_sorted = _time_order(created_at)
    pos = int(round(n * (1.0 - test_size)))
    pos = min(max(pos, 1), n - 1) if n > 1 else 0
    cutoff = t_sorted[pos] if n > 1 else None
    if cutoff is None:
        raise SplitError("time split needs at least two rows")
    train = np.flatnonzero(created_at < cutoff)
    test = np.flatnonzero(created_at >= cutoff)
    if len(train) == 0 or len(test) == 0:
        raise SplitError("time split impossible: all rows share one timestamp")
    return [Fold(train, test)]


def time_cv(created_at: np.ndarray, k: int) -> list[Fold]:
    """Forward chaining: K+1 time blocks; fold i trains on blocks 0..i and tests on block i+1."""
    n = len(created_at)
    _, t_sorted = _time_order(created_at)
    cuts = sorted({t_sorted[min(int(round(n * j / (k + 1))), n - 1)] for j in range(1, k + 1)})
    folds = []
    for i, lo in enumerate(cuts):
        hi = cuts[i + 1] if i + 1 < len(cuts) else None
        train = np.flatnonzero(created_at < lo)
        test_mask = created_at >= lo
        if hi is not None:
            test_mask &= created_at < hi
        test = np.flatnonzero(test_mask)
        if len(train) and len(test):
            folds.append(Fold(train, test))
    if not folds:
        raise SplitError("time cross-validation impossible: all rows share one timestamp")
    return folds


def _assert_disjoint_groups(groups: np.ndarray, folds: list[Fold]) -> None:
    for f in folds:
        shared = set(groups[f.train].tolist()) & set(groups[f.test].tolist())
        if shared:  # a grouped split that leaks a brand is not a brand split: never report it
            raise ScrmError(f"brand split leaked brand(s) {sorted(shared)[:5]} into both sides")


def brand_holdout(groups: np.ndarray, test_size: float, seed: int) -> list[Fold]:
    """GroupShuffleSplit on brand: ``test_size`` of the *brands* (not rows) are held out."""
    from sklearn.model_selection import GroupShuffleSplit

    if len(set(groups.tolist())) < 2:
        raise SplitError("brand split needs at least two brands")
    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    tr, te = next(gss.split(np.zeros(len(groups)), groups=groups))
    folds = [Fold(np.sort(tr), np.sort(te))]
    _assert_disjoint_groups(groups, folds)
    return folds


def brand_cv(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[Fold]:
    """StratifiedGroupKFold on brand: each brand is tested exactly once, never trained on then."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise SplitError("brand cross-validation needs at least two brands")
    cv = StratifiedGroupKFold(n_splits=min(k, n_groups), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" is expected here
        folds = [Fold(np.sort(tr), np.sort(te))
                 for tr, te in cv.split(np.zeros(len(y)), y, groups=groups)]
    _assert_disjoint_groups(groups, folds)
    return folds


def stratified_cv(y: np.ndarray, k: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(np.sort(tr), np.sort(te)) for tr, te in cv.split(np.zeros(len(y)), y)]


def make_folds(split: str, ls: LabelSet, cfg: Mapping[str, Any]) -> list[Fold]:
    """Hold-out for weak labels, cross-validation for the (small) gold set; folds whose training
    side has fewer than two classes are left out (no classifier can be fitted on them)."""
    seed, k, ts = cfg["seed"], cfg["cv_folds"], cfg["test_size"]
    cv = ls.source == "gold"
    if split == "stratified":
        folds = stratified_cv(ls.y, k, seed) if cv else stratified_holdout(ls.y, ts, seed)
    elif split == "time":
        folds = time_cv(ls.created_at, k) if cv else time_holdout(ls.created_at, ts)
    elif split == "brand":
        folds = brand_cv(ls.y, ls.brand, k, seed) if cv else brand_holdout(ls.brand, ts, seed)
    else:  # config() rejects unknown splits; keep the error explicit anyway
        raise ScrmError(f"unknown split {split!r}")
    usable = [f for f in folds if len(set(ls.y[f.train].tolist())) >= 2]
    if not usable:
        raise SplitError(f"every {split} fold trains on a single class")
    return usable


# --------------------------------------------------------------------------------------------------
# evaluation


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
        x_train, x_test = zoo_mod.text_frame(ls.text[f.train]), zoo_mod.text_frame(ls.text[f.test])
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


def run_benchmark(df: pl.DataFrame, cfg: Mapping[str, Any],
                  on_group: Any = None) -> tuple[list[Result], dict[str, Any], dict[str, Any]]:
    """Every selected model on every selected split and label source (pure: no files written).

    ``on_group(label_set, split, results)`` is called after each (label source, split) so the
    caller can log and then drop the fitted pipelines (memory stays at one group's worth).
    Returns the results, the per-source class report and the skipped (source or split) reasons.
    """
    from threadpoolctl import threadpool_limits

    pipes = zoo_mod.build_zoo(cfg["zoo"], cfg["models"], cfg["features"], cfg["seed"])
    results: list[Result] = []
    classes: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with threadpool_limits(limits=cfg["n_threads"]):
        for source in cfg["labels"]:
            ls = label_set(df, source, cfg)
            if isinstance(ls, str):
                skipped[source] = ls
                continue
            classes[source] = {"n_rows": int(len(ls.y)), "counts": ls.counts,
                               "merged": ls.merged, "dropped": ls.dropped}
            if ls.subsampled_from is not None:
                classes[source]["subsampled_from"] = ls.subsampled_from
            if ls.origin:
                classes[source]["origin"] = ls.origin
            for split in cfg["splits"]:
                try:
                    folds = make_folds(split, ls, cfg)
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


# --------------------------------------------------------------------------------------------------
# outputs


def _r6(x: float) -> float:
    return round(float(x), 6)


def leaderboard(results: Sequence[Result], cfg: Mapping[str, Any]) -> pl.DataFrame:
    """One row per run, sorted by macro-F1 within (label source, split); timings included."""
    classes = sorted({c for r in results for c in r.classes})
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "labels": r.labels, "split": r.split, "model": r.model,
            "macro_f1": _r6(r.scores["macro_f1"]), "accuracy": _r6(r.scores["accuracy"]),
            "macro_f1_fold_std": _r6(np.std(r.fold_f1)) if r.n_folds > 1 else None,
            "n_train": r.n_train, "n_test": r.n_test, "n_folds": r.n_folds,
            "n_classes": len(r.classes),
            "fit_s": round(r.fit_s, 4), "predict_s": round(r.predict_s, 4),
        }
        for c in classes:
            v = r.scores["per_class_f1"].get(c)
            row[f"f1.{c}"] = None if v is None else _r6(v)
        rows.append(row)
    schema_overrides = {f"f1.{c}": pl.Float64 for c in classes}
    schema_overrides["macro_f1_fold_std"] = pl.Float64
    lb = pl.DataFrame(rows, schema_overrides=schema_overrides, infer_schema_length=None)
    if lb.height == 0:
        return lb
    lab_order = {s: i for i, s in enumerate(cfg["labels"])}
    split_order = {s: i for i, s in enumerate(cfg["splits"])}
    lb = (lb.with_columns(pl.col("labels").replace_strict(lab_order).alias("_l"),
                          pl.col("split").replace_strict(split_order).alias("_s"))
          .sort(["_l", "_s", "macro_f1", "accuracy", "model"],
                descending=[False, False, True, True, False])
          .drop("_l", "_s"))
    rank = pl.int_range(1, pl.len() + 1).over(["labels", "split"]).alias("rank")
    return lb.select(pl.col("labels", "split"), rank, pl.exclude("labels", "split"))


def metrics_json(results: Sequence[Result], classes: Mapping[str, Any],
                 skipped: Mapping[str, str], cfg: Mapping[str, Any],
                 plot_key: str | None) -> dict[str, Any]:
    """Deterministic summary: no timings, floats rounded to 6 decimals."""
    res: dict[str, Any] = {}
    for r in results:
        res.setdefault(r.labels, {}).setdefault(r.split, {})[r.model] = {
            "macro_f1": _r6(r.scores["macro_f1"]), "accuracy": _r6(r.scores["accuracy"]),
            "n_train": r.n_train, "n_test": r.n_test, "n_folds": r.n_folds,
        }
    best: dict[str, Any] = {}
    for (src, split), group in _groups(results).items():
        b = best_of(group)
        best.setdefault(src, {})[split] = {"model": b.model, "macro_f1": _r6(b.scores["macro_f1"])}
    return {
        "runs": len(results),
        "models": list(dict.fromkeys(r.model for r in results)),
        "splits": cfg["splits"], "labels": cfg["labels"],
        "results": res, "best": best, "classes": dict(classes), "skipped": dict(skipped),
        "confusion_plot": plot_key,
        "config": {"seed": cfg["seed"], "test_size": cfg["test_size"], "cv_folds": cfg["cv_folds"],
                   "min_class_count": cfg["min_class_count"], "rare_classes": cfg["rare_classes"],
                   "text_col": cfg["text_col"]},
    }


def _groups(results: Sequence[Result]) -> dict[tuple[str, str], list[Result]]:
    out: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        out.setdefault((r.labels, r.split), []).append(r)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_markdown(lb: pl.DataFrame, classes: Mapping[str, Any], skipped: Mapping[str, str],
                    cfg: Mapping[str, Any]) -> str:
    """The leaderboard as markdown, one table per (label source, split), with how to read it."""
    lines = ["# Classifier benchmark: complaint categories", "",
             "Every model is an sklearn Pipeline (params.yaml `benchmark.zoo`) fitted on training "
             "rows only; macro-F1 is the ranking metric (classes are imbalanced). Fit/predict "
             "times are wall-clock seconds on this machine "
             f"({cfg['n_threads']} thread(s)), summed over folds.", "",
             "**Splits**", ""]
    lines += [f"- `{s}`: {SPLIT_HELP[s]}" for s in cfg["splits"]]
    lines += ["", "**Label sources**", ""]
    lines += [f"- `{s}`: {LABEL_HELP[s]}" for s in cfg["labels"]]
    lines += ["", f"Classes with fewer than `min_class_count`={cfg['min_class_count']} rows "
              f"(gold: nor fewer than `cv_folds`={cfg['cv_folds']}) are "
              + (f"merged into `{cfg['merge_into']}`" if cfg["rare_classes"] == "merge"
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


def confusion_figure(best: Sequence[Result]) -> Any:
    """Row-normalised confusion heatmaps of the best model per (label source, split)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(best)
    cols = min(3, max(n, 1))
    rows = max(1, -(-n // cols))
    titles = [f"{r.labels} / {r.split}: {r.model} (macro-F1 {r.scores['macro_f1']:.3f})"
              for r in best]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.12,
                        vertical_spacing=0.22)
    for i, r in enumerate(best):
        cm = np.asarray(r.scores["confusion"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig.add_trace(go.Heatmap(z=norm, x=r.classes, y=r.classes, zmin=0, zmax=1,
                                 colorscale="Blues", showscale=i == 0, customdata=cm,
                                 text=cm.astype(int), texttemplate="%{text}",
                                 hovertemplate="actual %{y}<br>predicted %{x}<br>"
                                               "n=%{customdata:.0f} (%{z:.0%} of actual)"
                                               "<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(autorange="reversed", title_text="actual", row=i // cols + 1,
                         col=i % cols + 1)
        fig.update_xaxes(title_text="predicted", row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title="Confusion matrices of the best model per label source and split "
                            "(colour: share of the actual class; numbers: counts)",
                      height=480 * rows, width=560 * cols, template="plotly_white")
    return fig


# --------------------------------------------------------------------------------------------------
# MLflow


def _make_logger(paths: Paths, cfg: Mapping[str, Any], data_path: Path) -> Any:
    """A callback logging one MLflow run per (model, split, label source) as each group finishes."""
    from sklearn.base import clone

    from .. import tracking

    mcfg = cfg["mlflow"]
    refits: dict[str, Any] = {}  # gold CV: the model refitted on all gold rows, shared by splits
    pipes = zoo_mod.build_zoo(cfg["zoo"], cfg["models"], cfg["features"], cfg["seed"])

    def fitted_pipeline(r: Result, ls: LabelSet) -> Any:
        if r.pipeline is not None:
            return r.pipeline
        if r.model not in refits or refits[r.model][0] != ls.source:
            est = clone(pipes[r.model])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(zoo_mod.text_frame(ls.text), ls.y)
            refits[r.model] = (ls.source, est)
        return refits[r.model][1]

    def log_group(ls: LabelSet, split: str, group: list[Result]) -> None:
        best = best_of(group).model
        for r in group:
            spec = cfg["zoo"][r.model]
            params = {"model": r.model, "estimator": spec.get("estimator"),
                      "features_kind": spec.get("features", "default"),
                      "kwargs": dict(spec.get("kwargs") or {}), "split": split,
                      "labels": ls.source, "test_size": cfg["test_size"],
                      "cv_folds": cfg["cv_folds"], "text_col": cfg["text_col"],
                      "features": cfg["features"], "n_train": r.n_train, "n_test": r.n_test,
                      "n_folds": r.n_folds, "n_classes": len(r.classes),
                      "rare_classes": cfg["rare_classes"],
                      "min_class_count": cfg["min_class_count"]}
            tags = {"scrm.stage": "benchmark", "benchmark.model": r.model,
                    "benchmark.split": split, "benchmark.labels": ls.source,
                    "benchmark.best_in_split": str(r.model == best).lower(),
                    "benchmark.model_fit_on": "train split" if r.n_folds == 1
                    else f"all {ls.source} rows (metrics are {r.n_folds}-fold CV)"}
            with tracking.start_run(EXPERIMENT, f"{r.model}|{split}|{ls.source}", params=params,
                                    seed=cfg["seed"], inputs=[data_path], tags=tags,
                                    root=paths.root):
                m = {"macro_f1": r.scores["macro_f1"], "accuracy": r.scores["accuracy"],
                     "fit_s": r.fit_s, "predict_s": r.predict_s}
                if r.n_folds > 1:
                    m["macro_f1_fold_std"] = float(np.std(r.fold_f1))
                m.update({f"f1.{c}": v for c, v in r.scores["per_class_f1"].items()})
                tracking.log_metrics(m)
                tracking.log_dict({"labels": r.classes, "matrix": r.scores["confusion"]},
                                  "confusion_matrix.json")
                if mcfg["log_models"] == "all" or (mcfg["log_models"] == "best"
                                                    and r.model == best):
                    register = (mcfg["register"] == "all"
                                or (mcfg["register"] == "best" and r.model == best))
                    try:
                        tracking.log_sklearn_model(fitted_pipeline(r, ls),
                                                   zoo_mod.text_frame(ls.text[:5]),
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


def complaints_path(paths: Paths) -> Path:
    return paths.processed / "complaints.parquet"


def run(paths: Paths, params: Mapping[str, Any], *, models: Sequence[str] | None = None,
        splits: Sequence[str] | None = None, labels: Sequence[str] | None = None,
        log_models: str | bool | None = None, mlflow: bool | None = None) -> dict[str, Any]:
    """Stage ``benchmark``: leaderboard CSV/MD, deterministic metrics JSON, plots, MLflow runs."""
    paths.ensure()
    cfg = config(params, models=models, splits=splits, labels=labels, log_models=log_models)
    if mlflow is not None:
        cfg["mlflow"]["enabled"] = bool(mlflow)
    data_path = complaints_path(paths)
    df = load_frame(data_path, cfg["text_col"])
    on_group = _make_logger(paths, cfg, data_path) if cfg["mlflow"]["enabled"] else None
    results, classes, skipped = run_benchmark(df, cfg, on_group=on_group)
    if not results:
        raise ScrmError("benchmark: nothing could be evaluated: "
                        + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    groups = _groups(results)
    bests = [best_of(g) for g in groups.values()]
    plot_src = next((s for s in ("gold", "weak") if any(b.labels == s for b in bests)), None)
    plot_best = next((b for s in cfg["splits"] for b in bests
                      if b.labels == plot_src and b.split == s), bests[0])
    plot_key = f"{plot_best.labels}/{plot_best.split}/{plot_best.model}"

    lb = leaderboard(results, cfg)
    write_csv(lb, paths.reports / "benchmark.csv")
    write_text(paths.reports / "benchmark.md", render_markdown(lb, classes, skipped, cfg))
    write_csv(confusion_rows(plot_best), paths.plots / "benchmark_confusion.csv")
    write_csv(lb.select((pl.col("labels") + "/" + pl.col("split") + "/" + pl.col("model"))
                        .alias("run"), "macro_f1"),
              paths.plots / "benchmark_leaderboard.csv")
    fig = confusion_figure(bests)
    write_text(paths.figures / "benchmark_confusion.html",
               fig.to_html(include_plotlyjs=True, full_html=True, div_id="benchmark-confusion"))
    metrics = metrics_json(results, classes, skipped, cfg, plot_key)
    write_json(paths.metrics / "benchmark.json", metrics)
    return metrics
