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

Each protocol function plans its section as cells (:mod:`.cells`: one training set each, run on
``benchmark.engine``) and assembles the cells' predictions into the section here, on the driver.

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
from ...config_ray import RaySettings
from ...stats.paired import accuracy, compare, encode, macro_f1
from .cells import Cell, CellResult, execute
from .select import Fitted, Spec, selected_model
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
    failed_models: dict[str, str] = field(default_factory=dict)  # model -> error (recorded)
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


@dataclass
class Plan:
    """A section to compute: its cells (:mod:`.cells`) and how their results become the section
    (or the reason it is skipped)."""

    key: str
    cells: list[Cell]
    assemble: Callable[[list[CellResult]], Section | str]


def _first_failures(results: list[CellResult]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in results:
        for m, why in r.failed.items():
            out.setdefault(m, why)
    return out


def weak_to_gold(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
                 s: BenchmarkSettings, emb: Any, data: dict[str, LabelSet]) -> Plan | str:
    """Train on weak / label-model labels outside dev and test; score on the sealed test."""
    test = _scored_rows(df, pl.col(TEST_COLUMN).is_not_null(), TEST_COLUMN, s, emb)
    if isinstance(test, str):
        return f"no sealed-test rows (`{TEST_COLUMN}`): {test}"
    key = "weak_to_gold/sealed_test"
    data["sealed_test"] = test
    train_rows: dict[str, int] = {}
    skipped: dict[str, str] = {}
    cells: list[Cell] = []
    for source in s.train_labels:
        train = rows(df, outside_gold(), training_label(source, s.abstain_as), source, s.text_col,
                     emb, max_rows=s.max_rows, seed=s.seed)
        if isinstance(train, str) or len(set(train.y.tolist())) < 2:
            skipped[source] = "fewer than two classes to train on"
            continue
        train_rows[source] = len(train.y)
        data[f"train:{source}"] = train
        cells.append(Cell(key, source, f"train:{source}", "sealed_test", None, None, "stratified",
                          s.seed, True))

    def assemble(results: list[CellResult]) -> Section:
        truth = df.filter(pl.col(TEST_COLUMN).is_not_null()).sort("tweet_id")
        systems = [_fixed(RULES, "rules", truth["weak_label"], s.abstain_as),
                   _fixed(LABEL_MODEL, "label_model", truth["lm_label"], s.abstain_as)]
        failed: dict[str, str] = {}
        for cell, res in zip(cells, results, strict=True):
            source = cell.part
            pick = selected_model(res.fitted)
            for name, f in res.fitted.items():
                systems.append(_learned(f"{name} ← {source}", name, source, [f], [name == pick],
                                        np.array([f.pred], dtype=object)))
            skipped.update({f"{m} ← {source}": "no cached embedding for every row"
                            for m in specs if m not in res.fitted and m not in res.failed})
            failed.update({f"{m} ← {source}": why for m, why in res.failed.items()})
        sec = Section("weak_to_gold", "sealed_test", classes, test.tweet_id, test.y, systems,
                      n_train=max(train_rows.values(), default=0), n_folds=1, repeats=1,
                      train_rows=train_rows, skipped_models=skipped, failed_models=failed)
        return score_section(sec, s)

    return Plan(key, cells, assemble)


def gold_cv(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
            s: BenchmarkSettings, emb: Any, split: str, data: dict[str, LabelSet]) -> Plan | str:
    """Repeated K-fold on dev (split kind ``split``), choices on inner folds of each training part."""
    dev = _scored_rows(df, pl.col(DEV_COLUMN).is_not_null(), DEV_COLUMN, s, emb)
    if isinstance(dev, str):
        return f"no dev rows (`{DEV_COLUMN}`): {dev}"
    data["dev"] = dev
    key = f"gold_cv/{split}"
    repeats = 1 if split == "time" else s.cv_repeats   # forward chaining has no randomness
    cells: list[Cell] = []
    folds: list[tuple[int, Any]] = []
    n_folds = 0
    for r in range(repeats):
        rep = make_folds(split, dev, s.cv_folds, s.test_size, s.seed + r)
        n_folds = len(rep)
        for i, f in enumerate(rep):
            cells.append(Cell(key, f"r{r}/f{i}", "dev", "dev", f.train, f.test, split, s.seed + r,
                              False))
            folds.append((r, f))

    def assemble(results: list[CellResult]) -> Section | str:
        n = len(dev.y)
        failed = _first_failures(results)
        ok = [m for m in specs if m not in failed]
        preds = {m: np.full((repeats, n), None, dtype=object) for m in ok}
        chosen = np.full((repeats, n), None, dtype=object)
        fits: dict[str, list[Fitted]] = {m: [] for m in ok}
        picked: dict[str, list[bool]] = {m: [] for m in ok}
        covered = np.zeros(n, dtype=bool)
        for (r, f), res in zip(folds, results, strict=True):
            out = {m: fit for m, fit in res.fitted.items() if m not in failed}
            pick = selected_model(out)
            for m, fit in out.items():
                preds[m][r, f.test] = fit.pred
                fits[m].append(fit)
                picked[m].append(m == pick)
            if pick is not None:
                chosen[r, f.test] = out[pick].pred
            covered[f.test] = True
        keep = covered  # time: the earliest block is never tested
        truth = df.filter(pl.col(DEV_COLUMN).is_not_null()).sort("tweet_id").filter(pl.Series(keep))
        systems = [_fixed(RULES, "rules", truth["weak_label"], s.abstain_as),
                   _fixed(LABEL_MODEL, "label_model", truth["lm_label"], s.abstain_as)]
        for m in ok:
            if fits[m]:
                systems.append(_learned(m, m, None, fits[m], picked[m], preds[m][:, keep]))
        if all(v is not None for v in chosen[:, keep].ravel()):
            systems.append(System(name=SELECTED, kind="selected", pred=chosen[:, keep],
                                  n_fits=len(folds)))
        sec = Section("gold_cv", split, classes, dev.tweet_id[keep], dev.y[keep], systems,
                      n_train=int(round(float(np.mean([len(f.train) for _, f in folds])))),
                      n_folds=n_folds, repeats=repeats, failed_models=failed,
                      skipped_models={m: "no cached embedding for every row" for m in ok
                                      if not fits[m]})
        return score_section(sec, s)

    return Plan(key, cells, assemble)


def weak_on_weak(df: pl.DataFrame, specs: Mapping[str, Spec], classes: list[str],
                 s: BenchmarkSettings, emb: Any, split: str, data: dict[str, LabelSet],
                 ) -> Plan | str:
    """Train and test on weak labels (one hold-out of ``test_size``), outside the sealed test."""
    ls = rows(df, pl.col(TEST_COLUMN).is_null(), training_label("weak", s.abstain_as), "weak",
              s.text_col, emb, max_rows=s.max_rows, seed=s.seed)
    if isinstance(ls, str) or len(set(ls.y.tolist())) < 2:
        return "fewer than two classes of weak labels"
    (fold,) = make_folds(split, ls, None, s.test_size, s.seed)
    data["weak"] = ls
    key = f"weak_on_weak/{split}"
    cell = Cell(key, "weak", "weak", "weak", fold.train, fold.test, split, s.seed, True)

    def assemble(results: list[CellResult]) -> Section | str:
        (res,) = results
        out, scored = res.fitted, ls.take(fold.test)
        if not out and res.failed:
            return "every model failed: " + "; ".join(f"{m}: {w}" for m, w in res.failed.items())
        pick = selected_model(out)
        systems = [_learned(m, m, "weak", [f], [m == pick], np.array([f.pred], dtype=object))
                   for m, f in out.items()]
        sec = Section("weak_on_weak", split, classes, scored.tweet_id, scored.y, systems,
                      n_train=len(fold.train), n_folds=1, repeats=1,
                      train_rows={"weak": len(fold.train)}, failed_models=dict(res.failed),
                      skipped_models={m: "no cached embedding for every row" for m in specs
                                      if m not in out and m not in res.failed})
        if ls.subsampled_from is not None:
            sec.train_rows["subsampled_from"] = ls.subsampled_from
        return score_section(sec, s)

    return Plan(key, [cell], assemble)


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
                  ray_settings: RaySettings | None = None,
                  ) -> tuple[list[Section], dict[str, str]]:
    """Every protocol (and split) on the complaints table (pure: no files written).

    ``emb``: (ids, vectors) of the embedding cache, or None (embedding models are then skipped).
    The cells of every section run on ``settings.engine`` (:mod:`.cells`; ``ray_settings`` for
    Ray); sections are assembled, scored and reported here in one fixed order on either engine.
    ``on_section(section)`` is called as each section finishes (MLflow logging); fitted pipelines
    are dropped after it. ``on_done(key, note)`` is called after every attempted section, scored or
    skipped (progress). Returns the sections and the skipped ones with reasons.
    """
    from threadpoolctl import threadpool_limits

    s = settings
    df = df.sort("tweet_id")
    specs = specs_of(s)
    data: dict[str, LabelSet] = {}
    plans: list[tuple[str, Plan | str]] = []
    for protocol in s.protocols:
        variants = ["sealed_test"] if protocol == "weak_to_gold" else list(s.splits)
        for variant in variants:
            try:
                plan: Plan | str = (weak_to_gold(df, specs, classes, s, emb, data)
                                    if protocol == "weak_to_gold" else
                                    (gold_cv if protocol == "gold_cv" else weak_on_weak)(
                                        df, specs, classes, s, emb, variant, data))
            except SplitError as exc:
                plan = str(exc)
            plans.append((f"{protocol}/{variant}", plan))
    cells = [c for _, p in plans if isinstance(p, Plan) for c in p.cells]
    sections: list[Section] = []
    skipped: dict[str, str] = {}
    with threadpool_limits(limits=s.n_threads), \
            execute(cells, data, specs, classes, s, ray_settings) as getters:
        pending = iter(getters)
        for key, plan in plans:
            sec: Section | str = plan
            if isinstance(plan, Plan):
                results = [next(pending)() for _ in plan.cells]
                skip = next((r.skip for r in results if r.skip is not None), None)
                sec = skip if skip is not None else plan.assemble(results)
            if isinstance(sec, str):
                skipped[key] = sec
                if on_done is not None:
                    on_done(key, "skipped")
                continue
            if on_section is not None:
                on_section(sec)
            if on_done is not None:
                on_done(sec.key, f"best: {sec.reference}")
            for system in sec.systems:
                system.pipeline = None
            sections.append(sec)
    return sections, skipped
