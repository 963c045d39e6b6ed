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
from .evaluate import SECTION_TITLE, SELECTED, Section, System

SPLIT_HELP = {
    "stratified": "random K-fold keeping class proportions (weak → weak: one hold-out of "
                  "`test_size`)",
    "time": "train on the earliest openings by `created_at`, test on strictly later ones "
            "(forward-chaining K-fold, so the earliest block is never tested; no repetitions: "
            "it has no randomness)",
    "brand": "grouped by brand: test brands never appear in training (StratifiedGroupKFold; "
             "weak → weak: GroupShuffleSplit of `test_size` of the brands); openings no brand "
             "answered form one group",
}
PROTOCOL_HELP = {
    "weak_to_gold": "models learn from the weak labels (`← weak`) or the label model's labels "
                    "(`← label_model`) of every opening outside dev and the sealed test, and are "
                    "scored on the sealed test (hand labels, two independent passes, never tuned "
                    "on): the standard weak-supervision measure. The rules and the label model are "
                    "rows too.",
    "gold_cv": "repeated K-fold cross-validation on dev (hand labels); the rules and label model "
               "rows are optimistic here (the rules were written with dev in view); `selected on "
               "validation` is the nested estimate of picking, in each fold, the model with the "
               "best validation score.",
    "weak_on_weak": "trained and tested on weak labels: agreement with the rules (a reproduction "
                    "score), not correctness.",
}


def _chosen(system: System) -> str:
    points = sorted({", ".join(f"{k}={v}" for k, v in p.items()) for p in system.chosen})
    return "; ".join(p for p in points if p)


def _selected(system: System, sec: Section) -> str:
    if system.kind == "selected":
        return "(nested)"
    if system.kind != "learned":
        return ""
    if sec.repeats * sec.n_folds <= 1:
        return "yes" if system.n_selected else ""
    return f"{system.n_selected}/{system.n_fits}"


LEADERBOARD_SCHEMA: dict[str, pl.DataType] = {
    **dict.fromkeys(("protocol", "variant"), pl.String()), "rank": pl.Int64(),
    **dict.fromkeys(("system", "kind", "model", "train_labels"), pl.String()),
    **dict.fromkeys(("macro_f1", "macro_f1_low", "macro_f1_high", "diff_from_best", "diff_low",
                     "diff_high", "p_value", "p_holm"), pl.Float64()),
    "indistinguishable_from_best": pl.Boolean(),
    **dict.fromkeys(("accuracy", "accuracy_low", "accuracy_high"), pl.Float64()),
    "selected": pl.String(), "val_macro_f1": pl.Float64(), "chosen": pl.String(),
    **dict.fromkeys(("n_train", "n_test", "n_folds", "repeats"), pl.Int64()),
    "error": pl.String(), **dict.fromkeys(("fit_s", "predict_s"), pl.Float64())}


def _failed_row(sec: Section, name: str, error: str) -> dict[str, Any]:
    """A model that failed (after its retries): named with its error, unscored, unranked."""
    model, _, source = name.partition(" ← ")
    row: dict[str, Any] = dict.fromkeys(LEADERBOARD_SCHEMA)
    row.update(protocol=sec.protocol, variant=sec.variant, system=name, kind="failed",
               model=model, train_labels=source or None, n_train=sec.n_train, n_test=sec.n_test,
               n_folds=sec.n_folds, repeats=sec.repeats, error=error)
    return row


def leaderboard(sections: Sequence[Section], classes: Sequence[str] = ()) -> pl.DataFrame:
    """One row per (section, system), best first within each section; timings included. With no
    section it has the columns and types of a full one (``classes``: its per-class F1 columns)."""
    if not sections:
        return pl.DataFrame(schema={**LEADERBOARD_SCHEMA,
                                    **{f"f1.{c}": pl.Float64() for c in sorted(classes)}})
    classes = sorted({c for sec in sections for c in sec.classes})
    rows = []
    for sec in sections:
        for rank, s in enumerate(sec.systems, start=1):
            sc = s.scores
            lo, hi = sc["macro_f1_ci"]
            dlo, dhi = sc["diff_ci"] or (None, None)
            alo, ahi = sc["accuracy_ci"]
            row: dict[str, Any] = {
                "protocol": sec.protocol, "variant": sec.variant, "rank": rank, "system": s.name,
                "kind": s.kind, "model": s.model, "train_labels": s.train_labels,
                "macro_f1": sc["macro_f1"], "macro_f1_low": lo, "macro_f1_high": hi,
                "diff_from_best": sc["diff"], "diff_low": dlo, "diff_high": dhi,
                "p_value": sc["p_value"], "p_holm": sc["p_holm"],
                "indistinguishable_from_best": sc["indistinguishable"],
                "accuracy": sc["accuracy"], "accuracy_low": alo, "accuracy_high": ahi,
                "selected": _selected(s, sec),
                "val_macro_f1": finite(s.val_score), "chosen": _chosen(s),
                "n_train": sec.n_train, "n_test": sec.n_test, "n_folds": sec.n_folds,
                "repeats": sec.repeats, "error": None, "fit_s": round(s.fit_s, 4),
                "predict_s": round(s.predict_s, 4),
            }
            for c in classes:
                row[f"f1.{c}"] = finite(sc["per_class_f1"].get(c))
            rows.append(row)
        for name, error in sec.failed_models.items():
            rows.append({**_failed_row(sec, name, error), **{f"f1.{c}": None for c in classes}})
    overrides = {f"f1.{c}": pl.Float64 for c in classes}
    overrides.update({k: pl.Float64 for k in ("diff_low", "diff_high", "p_value", "p_holm",
                                              "val_macro_f1")})
    overrides.update({"model": pl.Utf8, "train_labels": pl.Utf8, "error": pl.Utf8})
    return pl.DataFrame(rows, schema_overrides=overrides, infer_schema_length=None)


def _system_json(s: System, sec: Section) -> dict[str, Any]:
    sc = s.scores
    out: dict[str, Any] = {
        "kind": s.kind, "model": s.model, "train_labels": s.train_labels,
        "macro_f1": sc["macro_f1"], "macro_f1_ci": sc["macro_f1_ci"],
        "accuracy": sc["accuracy"], "accuracy_ci": sc["accuracy_ci"],
        "diff_from_best": sc["diff"], "diff_ci": sc["diff_ci"],
        "p_value": sc["p_value"], "p_holm": sc["p_holm"],
        "indistinguishable_from_best": sc["indistinguishable"],
        "per_class_f1": {c: finite(v) for c, v in sc["per_class_f1"].items()},
    }
    if s.kind == "learned":
        out.update(validation_macro_f1=finite(s.val_score), selected=_selected(s, sec),
                   chosen=_chosen(s))
    return out


def metrics_json(sections: Sequence[Section], skipped: Mapping[str, str],
                 settings: BenchmarkSettings, info: Mapping[str, Any]) -> dict[str, Any]:
    """Deterministic summary: no timings, floats rounded to 6 decimals."""
    s = settings
    out_sections: dict[str, Any] = {}
    for sec in sections:
        learned = [x for x in sec.systems if x.kind == "learned" and x.n_selected]
        out_sections[sec.key] = {
            "protocol": sec.protocol, "variant": sec.variant, "n_test": sec.n_test,
            "n_train": sec.n_train, "train_rows": dict(sec.train_rows), "n_folds": sec.n_folds,
            "repeats": sec.repeats, "best": sec.reference,
            "indistinguishable_from_best": [x.name for x in sec.systems
                                            if x.scores["indistinguishable"]],
            "selected_on_validation": (SELECTED if sec.protocol == "gold_cv"
                                       else [x.name for x in learned]),
            "skipped_models": dict(sec.skipped_models),
            "failed_models": dict(sec.failed_models),
            "systems": {x.name: _system_json(x, sec) for x in sec.systems},
        }
    return {
        "sections": out_sections, "skipped": dict(skipped),
        "classes": info.get("classes"), "embeddings": info.get("embeddings"),
        "comparison": {"metric": "macro-F1 over `classes` (zero_division=0: a class with no true "
                                 "and no predicted row scores 0)",
                       "interval": f"{round(s.ci_level * 100)}% percentile bootstrap over the "
                                   "scored rows, shared by every system of a section (paired)",
                       "test": "two-sided paired bootstrap of the macro-F1 difference from the "
                               "section's best, Holm-adjusted within the section",
                       "indistinguishable": f"Holm-adjusted p >= {finite(1 - s.ci_level)}",
                       "n_boot": s.n_boot, "ci_level": s.ci_level},
        "config": {"seed": s.seed, "protocols": list(s.protocols),
                   "train_labels": list(s.train_labels), "abstain_as": s.abstain_as,
                   "splits": list(s.splits), "test_size": s.test_size, "cv_folds": s.cv_folds,
                   "cv_repeats": s.cv_repeats, "inner_folds": s.inner_folds,
                   "text_col": s.text_col},
    }


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "≈ best" if v else ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _ci(v: Any, lo: Any, hi: Any) -> str:
    if v is None:
        return ""
    if lo is None:
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _p(v: Any) -> str:
    return "" if v is None else (f"{v:.3f}" if v >= 0.001 else f"{v:.1e}")


def render_markdown(lb: pl.DataFrame, sections: Sequence[Section], skipped: Mapping[str, str],
                    settings: BenchmarkSettings, info: Mapping[str, Any]) -> str:
    """The leaderboard as markdown, one table per section, with how to read it."""
    s = settings
    level = round(s.ci_level * 100)
    abstain = (f"An opening no rule labels counts as `{s.abstain_as}` (in the training labels and "
               "in the rules' and label model's rows)." if s.abstain_as else
               "An opening no rule labels is left out of training and counts as wrong in the "
               "rules' and label model's rows.")
    lines = ["# Classifier benchmark: complaint categories", "",
             f"Every score is **macro-F1 over the same {len(info.get('classes') or [])} "
             "categories** (a category with no true and no predicted row scores 0), with a "
             f"{level} % paired bootstrap interval over the scored tweets ({s.n_boot} resamples). "
             "`Δ best` is the difference from the section's best row with its interval; `p (Holm)` "
             "is a two-sided paired bootstrap test of that difference, Holm-adjusted within the "
             "section; **≈ best** marks rows the data cannot tell apart from the best "
             f"(Holm p ≥ {1 - s.ci_level:.2f}). Hyper-parameters (`chosen`) and the selected model "
             f"are chosen on {s.inner_folds} validation folds inside the training rows only "
             "(`val`: validation macro-F1); the scored rows are never used to choose. " + abstain,
             ""]
    lines += ["**Protocols**", ""]
    lines += [f"- `{p}` ({SECTION_TITLE[p]}): {PROTOCOL_HELP[p]}" for p in s.protocols]
    lines += ["", "**Splits** (gold_cv, weak_on_weak)", ""]
    lines += [f"- `{split}`: {SPLIT_HELP[split]}" for split in s.splits]
    emb = info.get("embeddings") or {}
    if emb:
        lines += ["", f"Embedding models read `{emb.get('file')}` (backend `{emb.get('backend')}`, "
                  f"{emb.get('model')})."]
    if skipped:
        lines += ["", "**Skipped**", ""]
        lines += [f"- `{k}`: {v}" for k, v in skipped.items()]
    cols = ["rank", "system", f"macro-F1 [{level} % CI]", "Δ best [CI]", "p (Holm)", "≈ best",
            "accuracy", "selected", "val", "chosen", "fit_s"]
    for sec in sections:
        part = lb.filter((pl.col("protocol") == sec.protocol) & (pl.col("variant") == sec.variant))
        head = f"## {SECTION_TITLE[sec.protocol]}" + (f", split = `{sec.variant}`"
                                                      if sec.protocol != "weak_to_gold" else "")
        train = ", ".join(f"{k}: {v}" for k, v in sec.train_rows.items())
        lines += ["", head, "",
                  f"{sec.n_test} scored tweets; training rows {train or sec.n_train}; "
                  f"{sec.n_folds} fold(s) × {sec.repeats} repetition(s).", ""]
        if sec.skipped_models:
            lines += [f"Not run: {', '.join(f'{k} ({v})' for k, v in sec.skipped_models.items())}.",
                      ""]
        if sec.failed_models:
            lines += [f"Failed: {'; '.join(f'{k} ({v})' for k, v in sec.failed_models.items())}.",
                      ""]
        part = part.filter(pl.col("kind") != "failed")
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in part.iter_rows(named=True):
            vals = [str(r["rank"]), r["system"],
                    _ci(r["macro_f1"], r["macro_f1_low"], r["macro_f1_high"]),
                    _ci(r["diff_from_best"], r["diff_low"], r["diff_high"])
                    if r["diff_low"] is not None else "(best)",
                    _p(r["p_holm"]), _fmt(r["indistinguishable_from_best"]),
                    _fmt(r["accuracy"]), r["selected"] or "", _fmt(r["val_macro_f1"]),
                    r["chosen"] or "", _fmt(r["fit_s"])]
            lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


CONFUSION_SCHEMA = {"tweet_id": pl.Int64(), "actual": pl.String(), "predicted": pl.String()}


def confusion_rows(sec: Section | None, system: System | None) -> pl.DataFrame:
    """Per-row (actual, predicted) pairs of one system's first repetition (DVC's confusion plot);
    empty, with its columns, when no section was scored."""
    if sec is None or system is None:
        return pl.DataFrame(schema=CONFUSION_SCHEMA)
    pred = [p if p is not None else "(abstain)" for p in system.pred[0].tolist()]
    return pl.DataFrame({"tweet_id": np.asarray(sec.tweet_id).astype(np.int64),
                         "actual": sec.y_true.astype(str).tolist(), "predicted": pred})
