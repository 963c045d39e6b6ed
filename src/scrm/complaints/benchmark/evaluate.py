"""The three protocols, each a leaderboard section of systems scored on the same rows.

* ``weak_to_gold`` (one section): every zoo model trained on the weak labels, and again on the label
  model's labels, of every opening outside dev and the sealed test; the rules (majority vote) and
  the label model themselves as rows; all scored on the sealed test.
* ``gold_cv`` (one section per split): repeated K-fold cross-validation on dev; every row's
  out-of-fold prediction per repetition; the rules and label model as rows (optimistic: the rules
  were written with dev in view); plus ``selected (validation)``, the nested estimate of "pick the
  model with the best validation score in each fold".
* ``weak_on_weak`` (one section per split): train and test on weak labels (a hold-out): how well a
  model reproduces the rules, not how right it is.

Every score is macro-F1 over the run's one label set (:func:`.splits.label_space`, zero_division=0)
with a paired bootstrap interval over the scored rows; each system's difference from the section's
best has an interval, a paired bootstrap p-value and a Holm adjustment (:mod:`scrm.stats.paired`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ...config import BenchmarkSettings
from ...stats.paired import accuracy, compare, encode, macro_f1
from .select import Fitted, Spec, fit_models, selected_model
from .splits import (DEV_COLUMN, TEST_COLUMN, LabelSet, SplitError, make_folds, outside_gold,
                     rows, training_label)
from .zoo import build_zoo, grid_points

RULES, LABEL_MODEL, SELECTED = "rules (majority vote)", "label model (Snorkel)", \
    "selected on validation"
SECTION_TITLE = {"weak_to_gold": "weak → gold (sealed test)",
                 "gold_cv": "gold cross-validation on dev",
                 "weak_on_weak": "weak → weak (reproduces the rules)"}


@dataclass
class System:
    """One row of a section: a learned model, the rules, the label model or the nested choice."""

    name: str
    kind: str                       # learned | rules | label_model | selected
    pred: np.ndarray                # (repetitions, n) labels; None = abstain (a wrong answer)
    model: str | None = None
    train_labels: str | None = None
    chosen: list[dict[str, Any]] = field(default_factory=list)  # grid point of each fit
    val_score: float | None = None  # mean validation macro-F1 over its fits
    n_selected: int = 0             # fits in which it was the validation choice
    n_fits: int = 0
    fit_s: float = 0.0
    predict_s: float = 0.0
    pipeline: Any = None            # fitted on the whole training set (single-fit protocols)
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    """One leaderboard section: systems scored on the same rows."""

    protocol: str
    variant: str                    # split name, or "sealed_test"
    classes: list[str]
    tweet_id: np.ndarray
    y_true: np.ndarray
    systems: list[System]
    n_train: int
    n_folds: int
    repeats: int
    train_rows: dict[str, int] = field(default_factory=dict)
    skipped_models: dict[str, str] = field(default_factory=dict)
    reference: str | None = None    # the best system on these rows (differences are from it)

    @property
    def key(self) -> str:
        return f"{self.protocol}/{self.variant}"

    @property
    def n_test(self) -> int:
        return int(len(self.y_true))


# --------------------------------------------------------------------------------------------------
# scoring a section
# --------------------------------------------------------------------------------------------------
def per_class(y_true: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Per-class F1 (mean over repetitions) and the confusion matrix (summed over them)."""
    from sklearn.metrics import confusion_matrix, f1_score

    preds = [np.array([p if p is not None else "(abstain)" for p in row], dtype=object)
             for row in pred]
    f1 = np.mean([f1_score(y_true, p, labels=classes, average=None, zero_division=0)
                  for p in preds], axis=0)
    conf = sum(confusion_matrix(y_true, p, labels=classes) for p in preds)
    return {"per_class_f1": {c: float(v) for c, v in zip(classes, f1, strict=True)},
            "confusion": np.asarray(conf).tolist()}


def score_section(sec: Section, settings: BenchmarkSettings) -> Section:
    """Intervals for every system and paired differences from the best one (Holm-adjusted)."""
    k = len(sec.classes)
    y = encode(sec.y_true.tolist(), sec.classes)
    codes = {s.name: np.vstack([encode(row.tolist(), sec.classes) for row in s.pred])
             for s in sec.systems}
    point = {n: (float(np.mean([macro_f1(y, row, k) for row in c])),
                 float(np.mean([accuracy(y, row) for row in c]))) for n, c in codes.items()}
    ranked = sorted(sec.systems, key=lambda s: (-round(point[s.name][0], 6),
                                                -round(point[s.name][1], 6), s.name))
    sec.reference = ranked[0].name
    res = compare(y, codes, k, sec.reference, n_boot=settings.n_boot, seed=settings.seed,
                  level=settings.ci_level)
    for s in sec.systems:
        s.scores = {**res[s.name], **per_class(sec.y_true, s.pred, sec.classes)}
    sec.systems = ranked
    return sec


# --------------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------------
def _fixed(name: str, kind: str, labels: pl.Series, abstain_as: str | None) -> System:
    """A system whose predictions exist already (the rules, the label model)."""
    vals = labels.fill_null(abstain_as) if abstain_as is not None else labels
    return System(name=name, kind=kind, pred=np.array([vals.to_list()], dtype=object))


def _learned(name: str, model: str, source: str | None, fits: list[Fitted],
             chosen_in: list[bool], preds: np.ndarray) -> System:
    vals = [f.val_score for f in fits if f.val_score is not None]
    return System(name=name, kind="learned", pred=preds, model=model, train_labels=source,
                  chosen=[f.params for f in fits], val_score=float(np.mean(vals)) if vals else None,
                  n_selected=int(sum(chosen_in)), n_fits=len(fits),
                  fit_s=sum(f.fit_s for f in fits), predict_s=sum(f.predict_s for f in fits),
                  pipeline=fits[0].pipeline if len(fits) == 1 else None)


def _scored_rows(df: pl.DataFrame, where: pl.Expr, truth: str, s: BenchmarkSettings,
                 emb: Any) -> LabelSet | str:
    return rows(df, where, pl.col(truth).cast(pl.Utf8), truth, s.text_col, emb)


def weak_to_gold(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
                 s: BenchmarkSettings, emb: Any) -> Section | str:
    """Train on weak / label-model labels outside dev and test; score on the sealed test."""
    test = _scored_rows(df, pl.col(TEST_COLUMN).is_not_null(), TEST_COLUMN, s, emb)
    if isinstance(test, str):
        return f"no sealed-test rows (`{TEST_COLUMN}`): {test}"
    truth = df.filter(pl.col(TEST_COLUMN).is_not_null()).sort("tweet_id")
    systems = [_fixed(RULES, "rules", truth["weak_label"], s.abstain_as),
               _fixed(LABEL_MODEL, "label_model", truth["lm_label"], s.abstain_as)]
    train_rows: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for source in s.train_labels:
        train = rows(df, outside_gold(), training_label(source, s.abstain_as), source, s.text_col,
                     emb, max_rows=s.max_rows, seed=s.seed)
        if isinstance(train, str) or len(set(train.y.tolist())) < 2:
            skipped[source] = "fewer than two classes to train on"
            continue
        train_rows[source] = len(train.y)
        fits = fit_models(specs, train, test, classes, "stratified", s.inner_folds, s.seed,
                          keep_pipeline=True)
        pick = selected_model(fits)
        for name, f in fits.items():
            systems.append(_learned(f"{name} ← {source}", name, source, [f], [name == pick],
                                    np.array([f.pred], dtype=object)))
        skipped.update({f"{m} ← {source}": "no cached embedding for every row"
                        for m in specs if m not in fits})
    sec = Section("weak_to_gold", "sealed_test", classes, test.tweet_id, test.y, systems,
                  n_train=max(train_rows.values(), default=0), n_folds=1, repeats=1,
                  train_rows=train_rows, skipped_models=skipped)
    return score_section(sec, s)


def gold_cv(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
            s: BenchmarkSettings, emb: Any, split: str) -> Section | str:
    """Repeated K-fold on dev (split kind ``split``), choices on inner folds of each training part."""
    dev = _scored_rows(df, pl.col(DEV_COLUMN).is_not_null(), DEV_COLUMN, s, emb)
    if isinstance(dev, str):
        return f"no dev rows (`{DEV_COLUMN}`): {dev}"
    repeats = 1 if split == "time" else s.cv_repeats   # forward chaining has no randomness
    n = len(dev.y)
    preds = {m: np.full((repeats, n), None, dtype=object) for m in specs}
    chosen = np.full((repeats, n), None, dtype=object)
    fits: dict[str, list[Fitted]] = {m: [] for m in specs}
    picked: dict[str, list[bool]] = {m: [] for m in specs}
    covered = np.zeros(n, dtype=bool)
    n_train: list[int] = []
    n_folds = 0
    for r in range(repeats):
        folds = make_folds(split, dev, s.cv_folds, s.test_size, s.seed + r)
        n_folds = len(folds)
        for f in folds:
            train, scored = dev.take(f.train), dev.take(f.test)
            out = fit_models(specs, train, scored, classes, split, s.inner_folds, s.seed + r)
            pick = selected_model(out)
            for m, fit in out.items():
                preds[m][r, f.test] = fit.pred
                fits[m].append(fit)
                picked[m].append(m == pick)
            if pick is not None:
                chosen[r, f.test] = out[pick].pred
            covered[f.test] = True
            n_train.append(len(f.train))
    keep = covered  # time: the earliest block is never tested
    truth = df.filter(pl.col(DEV_COLUMN).is_not_null()).sort("tweet_id").filter(pl.Series(keep))
    systems = [_fixed(RULES, "rules", truth["weak_label"], s.abstain_as),
               _fixed(LABEL_MODEL, "label_model", truth["lm_label"], s.abstain_as)]
    for m in specs:
        if fits[m]:
            systems.append(_learned(m, m, None, fits[m], picked[m], preds[m][:, keep]))
    if all(v is not None for v in chosen[:, keep].ravel()):
        systems.append(System(name=SELECTED, kind="selected", pred=chosen[:, keep],
                              n_fits=len(n_train)))
    sec = Section("gold_cv", split, classes, dev.tweet_id[keep], dev.y[keep], systems,
                  n_train=int(round(float(np.mean(n_train)))), n_folds=n_folds, repeats=repeats,
                  skipped_models={m: "no cached embedding for every row" for m in specs
                                  if not fits[m]})
    return score_section(sec, s)


def weak_on_weak(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
                 s: BenchmarkSettings, emb: Any, split: str) -> Section | str:
    """Train and test on weak labels (one hold-out of ``test_size``), outside the sealed test."""
    ls = rows(df, pl.col(TEST_COLUMN).is_null(), training_label("weak", s.abstain_as), "weak",
              s.text_col, emb, max_rows=s.max_rows, seed=s.seed)
    if isinstance(ls, str) or len(set(ls.y.tolist())) < 2:
        return "fewer than two classes of weak labels"
    (fold,) = make_folds(split, ls, None, s.test_size, s.seed)
    train, scored = ls.take(fold.train), ls.take(fold.test)
    out = fit_models(specs, train, scored, classes, split, s.inner_folds, s.seed,
                     keep_pipeline=True)
    pick = selected_model(out)
    systems = [_learned(m, m, "weak", [f], [m == pick], np.array([f.pred], dtype=object))
               for m, f in out.items()]
    sec = Section("weak_on_weak", split, classes, scored.tweet_id, scored.y, systems,
                  n_train=len(fold.train), n_folds=1, repeats=1,
                  train_rows={"weak": len(fold.train)},
                  skipped_models={m: "no cached embedding for every row" for m in specs
                                  if m not in out})
    if ls.subsampled_from is not None:
        sec.train_rows["subsampled_from"] = ls.subsampled_from
    return score_section(sec, s)


def specs_of(settings: BenchmarkSettings) -> dict[str, Spec]:
    """The selected zoo entries as unfitted pipelines with their grid points."""
    s = settings
    pipes = build_zoo(s.zoo, s.models, s.features, s.seed)
    return {n: Spec(p, s.zoo[n].features, grid_points(n, s.zoo[n])) for n, p in pipes.items()}


def n_sections(settings: BenchmarkSettings) -> int:
    """How many sections (leaderboard cells) :func:`run_benchmark` will try."""
    return sum(1 if p == "weak_to_gold" else len(settings.splits) for p in settings.protocols)


def run_benchmark(df: pl.DataFrame, settings: BenchmarkSettings, classes: list[str],
                  emb: tuple[np.ndarray, np.ndarray] | None = None,
                  on_section: Callable[[Section], None] | None = None,
                  on_done: Callable[[str, str], None] | None = None,
                  ) -> tuple[list[Section], dict[str, str]]:
    """Every protocol (and split) on the complaints table (pure: no files written).

    ``emb``: (ids, vectors) of the embedding cache, or None (embedding models are then skipped).
    ``on_section(section)`` is called as each section finishes (MLflow logging); fitted pipelines
    are dropped after it. ``on_done(key, note)`` is called after every attempted section, scored or
    skipped (progress). Returns the sections and the skipped ones with reasons.
    """
    from threadpoolctl import threadpool_limits

    s = settings
    df = df.sort("tweet_id")
    specs = specs_of(s)
    sections: list[Section] = []
    skipped: dict[str, str] = {}
    jobs: list[tuple[str, str, Callable[[], Section | str]]] = []
    for protocol in s.protocols:
        if protocol == "weak_to_gold":
            jobs.append((protocol, "sealed_test",
                         lambda: weak_to_gold(df, specs, classes, s, emb)))
        else:
            fn = gold_cv if protocol == "gold_cv" else weak_on_weak
            for split in s.splits:
                jobs.append((protocol, split,
                             lambda fn=fn, split=split: fn(df, specs, classes, s, emb, split)))
    with threadpool_limits(limits=s.n_threads):
        for protocol, variant, job in jobs:
            try:
                sec = job()
            except SplitError as exc:
                sec = str(exc)
            if isinstance(sec, str):
                skipped[f"{protocol}/{variant}"] = sec
                if on_done is not None:
                    on_done(f"{protocol}/{variant}", "skipped")
                continue
            if on_section is not None:
                on_section(sec)
            if on_done is not None:
                on_done(sec.key, f"best: {sec.reference}")
            for system in sec.systems:
                system.pipeline = None
            sections.append(sec)
    return sections, skipped
