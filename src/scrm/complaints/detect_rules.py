"""Complaint-detection rules: is a customer opening a complaint at all? (transparent, named, polars)

The rules live in the ``complaint_detection`` section at the end of the taxonomy file
(``src/scrm/resources/taxonomy.yaml``), next to the category labelling functions, in the same
format: a name, keywords and/or a Rust regex (case-insensitive), a description, examples that must
fire and counter-examples that must not. Each rule votes ``complaint`` or ``not_complaint``.

Decision rule (the gold guidelines, section 7), stated once here and in the README
    * **complaint** when at least one complaint rule fires: a complaint signal wins over praise or a
      question (rules C1 "sarcasm is a complaint" and C2 "praise with a complaint is a complaint");
    * **not_complaint** when only not-complaint rules fire;
    * **abstain** when no rule fires. As a detector, an abstention reads as not_complaint (rule C5:
      "when it is unclear whether anything went wrong, no"); as a *weak label* for training the
      learned detectors it is left out (params ``detect.train_abstain``).

The section also lists ``mask_words``: brand and product names (and date words) that the learned
detectors never see, so that nothing they learn depends on a brand name, a handle or a date. Handles
and URLs are already gone from the cleaned text (:func:`scrm.text.clean_for_topics`); the handles of
the brands in the data are added to the mask by :func:`brand_words`.

:class:`RuleDetector` wraps the rules in the scikit-learn estimator API, so the rules are logged,
registered and loaded exactly like a learned model (``scrm classify``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin

from ..errors import DataError
from .taxonomy import (default_taxonomy_path, duplicate_names, match_text, parse_rule,
                       read_taxonomy_file)

SECTION = "complaint_detection"
COMPLAINT = "complaint"
NOT_COMPLAINT = "not_complaint"
CLASSES: tuple[str, str] = (COMPLAINT, NOT_COMPLAINT)  # sorted, as scikit-learn orders classes_
# generic words of a support handle: AmazonHelp -> amazon, Ask_Spectrum -> spectrum
_HANDLE_AFFIXES = re.compile(r"^(?:ask_?)|_?(?:support|helps?|helpers|cares?|service|assist|"
                             r"tweets|team|official|uk|us)$", re.I)


@dataclass(frozen=True)
class ComplaintRule:
    """One named rule voting ``vote`` when ``pattern`` (a full Rust regex) matches the text."""

    name: str
    vote: str
    description: str
    pattern: str
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComplaintRules:
    rules: tuple[ComplaintRule, ...]
    mask_words: tuple[str, ...]
    source: Path

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def voting(self, vote: str) -> list[ComplaintRule]:
        return [r for r in self.rules if r.vote == vote]


def _rule(raw: Any, i: int, path: Path) -> ComplaintRule:
    f = parse_rule(raw, i, path, kind="complaint rule", field="vote", allowed=CLASSES,
                   name_example="cr_refund")
    return ComplaintRule(name=f["name"], vote=f["vote"], description=f["description"],
                         pattern=f["pattern"], examples=f["examples"],
                         counter_examples=f["counter_examples"])


def load_rules(path: Path | str | None = None) -> ComplaintRules:
    """The ``complaint_detection`` section of a taxonomy file (default: the packaged one)."""
    path = Path(path) if path else default_taxonomy_path()
    raw = read_taxonomy_file(path, "complaint rules file (params detect.rules)").get(SECTION)
    if not isinstance(raw, dict) or not raw.get("rules"):
        raise DataError(f"no `{SECTION}` section with `rules`", path)
    rules = tuple(_rule(r, i, path) for i, r in enumerate(raw["rules"]))
    dup = duplicate_names([r.name for r in rules])
    if dup:
        raise DataError(f"duplicate complaint rule names: {dup}", path)
    if not any(r.vote == COMPLAINT for r in rules):
        raise DataError(f"{SECTION}: at least one rule must vote {COMPLAINT}", path)
    mask = tuple(sorted({str(w).strip().lower() for w in raw.get("mask_words") or []
                         if str(w).strip()}))
    return ComplaintRules(rules=rules, mask_words=mask, source=path)


def brand_words(handles: Iterable[str | None]) -> list[str]:
    """Lower-case handles and their names without support affixes (``AmazonHelp`` -> ``amazonhelp``,
    ``amazon``; ``Ask_Spectrum`` -> ``ask_spectrum``, ``spectrum``), sorted and unique."""
    out: set[str] = set()
    for h in handles:
        if not h:
            continue
        h = str(h).lstrip("@")
        out.add(h.lower())
        core = h
        for _ in range(2):  # "AskPlayStation", "hulu_support", "Ask_Spectrum", "comcastcares"
            core = _HANDLE_AFFIXES.sub("", core)
        if len(core) >= 2:
            out.add(core.lower())
            out.update(p.lower() for p in core.split("_") if len(p) >= 3)
    return sorted(out)


# --------------------------------------------------------------------------------------------------
# applying the rules (one vectorised pass over a text column)
# --------------------------------------------------------------------------------------------------
def rule_matrix(df: pl.DataFrame | pl.LazyFrame, rules: ComplaintRules,
                text_col: str = "text_clean") -> pl.DataFrame | pl.LazyFrame:
    """Add one Boolean column per rule (named after it) and the decision columns:
    ``complaint_votes``, ``not_complaint_votes``, ``complaint_weak`` (complaint / not_complaint /
    null = abstain), ``complaint_rules`` (the detector: True iff a complaint rule fired) and
    ``rules_fired`` (names, in file order)."""
    text = match_text(text_col).alias("_cr_text")
    hits = [pl.col("_cr_text").str.contains(r.pattern).fill_null(False).alias(r.name)
            for r in rules.rules]

    def votes(vote: str) -> pl.Expr:
        cols = [pl.col(r.name).cast(pl.Int32) for r in rules.voting(vote)]
        return pl.sum_horizontal(cols).cast(pl.Int32) if cols else pl.lit(0, pl.Int32)

    fired = pl.concat_list([pl.when(pl.col(r.name)).then(pl.lit(r.name)).otherwise(pl.lit(None))
                            for r in rules.rules]).list.drop_nulls()
    return (df.with_columns(text).with_columns(hits).drop("_cr_text")
            .with_columns(complaint_votes=votes(COMPLAINT), not_complaint_votes=votes(NOT_COMPLAINT),
                          rules_fired=fired)
            .with_columns(
                complaint_rules=pl.col("complaint_votes") > 0,
                complaint_weak=pl.when(pl.col("complaint_votes") > 0).then(pl.lit(COMPLAINT))
                .when(pl.col("not_complaint_votes") > 0).then(pl.lit(NOT_COMPLAINT))
                .otherwise(pl.lit(None, pl.Utf8))))


def rule_summary(df: pl.DataFrame, rules: ComplaintRules, truth_col: str | None = None
                 ) -> pl.DataFrame:
    """Per rule: coverage (share of rows it fires on) and, where ``truth_col`` (Boolean: is a
    complaint) is given, how often it fired on those rows and how often its vote was right."""
    n = max(df.height, 1)
    rows = []
    for r in rules.rules:
        f = df[r.name]
        rec: dict[str, Any] = {"rule": r.name, "vote": r.vote, "n_fired": int(f.sum()),
                               "coverage": round(int(f.sum()) / n, 6)}
        if truth_col is not None:
            t = df[truth_col]
            known = f & t.is_not_null()
            right = known & (t == (r.vote == COMPLAINT))
            k, c = int(known.sum()), int(right.fill_null(False).sum())
            rec.update(gold_fired=k, gold_correct=c, gold_precision=round(c / k, 6) if k else None)
        rows.append(rec)
    return pl.DataFrame(rows, infer_schema_length=None)


# --------------------------------------------------------------------------------------------------
# the rules as a scikit-learn classifier (logged and loaded like any model)
# --------------------------------------------------------------------------------------------------
class RuleDetector(ClassifierMixin, BaseEstimator):
    """complaint iff at least one complaint rule fires; reads the one-column frame ``text`` every
    model of this project reads (already cleaned). ``predict_proba`` is 0 or 1: rules have no
    graded confidence; ``decision_function`` is the number of complaint rules that fired."""

    def __init__(self, names: Sequence[str] = (), patterns: Sequence[str] = ()) -> None:
        self.names = names
        self.patterns = patterns

    @classmethod
    def from_rules(cls, rules: ComplaintRules) -> RuleDetector:
        picked = rules.voting(COMPLAINT)
        return cls(names=tuple(r.name for r in picked), patterns=tuple(r.pattern for r in picked))

    def fit(self, X: Any, y: Any = None) -> RuleDetector:
        """Nothing to learn; sets the classes and the input column like a fitted estimator."""
        self.classes_ = np.array(CLASSES, dtype=object)
        self.n_features_in_ = 1
        self.feature_names_in_ = np.array(["text"], dtype=object)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        texts = pl.Series("t", np.asarray(X["text"] if hasattr(X, "columns") else X,
                                          dtype=object).reshape(-1).tolist(), dtype=pl.Utf8)
        frame = pl.DataFrame({"t": texts}).select(match_text("t").alias("t"))
        counts = frame.select(pl.sum_horizontal(
            [pl.col("t").str.contains(p).cast(pl.Int32) for p in self.patterns]
            or [pl.lit(0, pl.Int32)]).alias("n"))
        return counts["n"].to_numpy().astype(float)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = (self.decision_function(X) > 0).astype(float)
        return np.column_stack([p, 1.0 - p])  # in the order of classes_

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.decision_function(X) <= 0).astype(int)]
