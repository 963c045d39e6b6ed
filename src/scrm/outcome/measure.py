"""The customer's state read from text, as the outcome guidelines define it, fitted on the dev part of
the hand-labelled outcome set only.

Why a fitted measure: the former label read "recovered" off VADER thresholds, and on the labelled
threads most of those "recoveries" are short procedural follow-ups ("DM sent", an email address)
that VADER scores 0, or complaints it misreads. The guidelines (``references/outcome_guidelines.md``)
define two fields a person judges, and this module learns them from the dev labels:

``opening_state``  ``unhappy`` | ``not_unhappy``, from the opening tweet;
``end_state``      ``satisfied`` | ``still_unhappy`` | ``procedural``, from the customer's last tweet
                   after the first reply (``unclear``, the guidelines' last resort, has 2 dev threads:
                   too few to learn, so it is never predicted and is scored as an error on test).

Features of a tweet (cleaned of @handles and URLs, :func:`scrm.text.clean_for_sentiment`): its
all-MiniLM-L6-v2 sentence embedding (``outcome.measure.embedding: minilm``, loaded by the embed
stage's loader, :mod:`scrm.complaints.embeddings`; ``none`` leaves it out), the sentiment stage's
score of the tweet, and lexical cues (thanks, a persisting problem, a process step, question and
exclamation marks, digits, length) whose patterns are in params. One multinomial L2 logistic
regression per field; its ``C`` is chosen from ``C_grid`` by customer-grouped cross-validation on dev
(macro-F1), then it is refitted on all of dev. Dev threads get *cross-fitted* states (predicted by
the fold model that did not see them), so no thread's state comes from a model fitted on its own
label. The sealed test part is never read here: :func:`fit_measure` takes the dev rows only.

The baseline (and the fallback when no labelled set is available, which the metrics record) is the
sentiment stage's scorer with the outcome thresholds: an opening at or below
``negative_threshold`` is unhappy; a last tweet at or above ``positive_threshold`` is satisfied, at
or below ``negative_threshold`` still unhappy, in between procedural.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..errors import DataError
from ..text import clean_for_sentiment
from .reply_features import any_of

if TYPE_CHECKING:
    from ..config import EmbedSettings, OutcomeMeasureSettings, OutcomeSettings

OPENING_STATES: tuple[str, ...] = ("unhappy", "not_unhappy")
END_STATES: tuple[str, ...] = ("satisfied", "still_unhappy", "procedural", "unclear")
MEASURED_END_STATES: tuple[str, ...] = ("satisfied", "still_unhappy", "procedural")
# field -> (text column, sentiment column, states the measure predicts, all label values)
FIELDS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "opening_state": ("opening_text", "opening_sentiment", OPENING_STATES, OPENING_STATES),
    "end_state": ("last_text", "last_sentiment", MEASURED_END_STATES, END_STATES),
}
# the placebo's "end": the customer's last tweet before any reply, read by the end-state model
PLACEBO = ("placebo_state", "pre_last_text", "pre_last_sentiment")
LEXICAL: tuple[str, ...] = ("sentiment", "thanks", "persist", "procedural", "question", "exclaim",
                            "digits", "log_len")

Embedder = Callable[[Sequence[str]], np.ndarray]


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
def read_labels(path: Path) -> pl.DataFrame:
    """The adjudicated outcome labels (thread_id, part, opening_state, end_state), checked."""
    if not path.exists():
        raise DataError("outcome labels not found (params outcome.measure.labels_file).", path)
    df = pl.read_csv(path, schema_overrides={"thread_id": pl.Int64})
    need = {"thread_id", "part", "opening_state", "end_state"}
    if not need <= set(df.columns):
        raise DataError(f"outcome labels need the columns {sorted(need)}.", path)
    allowed = {"part": ("dev", "test"), "opening_state": OPENING_STATES, "end_state": END_STATES}
    for col, values in allowed.items():
        bad = df.filter(~pl.col(col).is_in(list(values)))
        if bad.height:
            raise DataError(f"{col} {bad[col][0]!r} (thread {bad['thread_id'][0]}) is not one of "
                            f"{list(values)}.", path)
    if not df["thread_id"].is_unique().all():
        raise DataError("a thread is labelled twice.", path)
    return df.select("thread_id", "part", "opening_state", "end_state").sort("thread_id")


def dev_part(labels: pl.DataFrame) -> pl.DataFrame:
    """The rows a measure may be fitted on; the test part never leaves this filter."""
    return labels.filter(pl.col("part") == "dev")


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------
def lexical_exprs(text: str, sentiment: str, settings: OutcomeMeasureSettings) -> list[pl.Expr]:
    """Lexical features of a cleaned text column, in :data:`LEXICAL` order (floats)."""
    t = pl.col(text).fill_null("")
    lex = settings.lexicon
    return [
        pl.col(sentiment).fill_null(0.0).cast(pl.Float64).alias("sentiment"),
        *[t.str.contains(any_of(getattr(lex, name))).cast(pl.Float64).alias(name)
          for name in ("thanks", "persist", "procedural")],
        t.str.contains("?", literal=True).cast(pl.Float64).alias("question"),
        t.str.contains("!", literal=True).cast(pl.Float64).alias("exclaim"),
        t.str.contains(r"\d").cast(pl.Float64).alias("digits"),
        t.str.len_chars().cast(pl.Float64).log1p().alias("log_len"),
    ]


def feature_matrix(frame: pl.DataFrame, text: str, sentiment: str,
                   settings: OutcomeMeasureSettings, embed: Embedder | None) -> np.ndarray:
    """[embedding | lexical] rows of ``frame``'s ``text`` (raw tweets; cleaned here)."""
    clean = frame.select(clean_for_sentiment(pl.col(text).fill_null("")).alias("_t"),
                         pl.col(sentiment))
    lex = clean.select(lexical_exprs("_t", sentiment, settings)).to_numpy().astype(np.float64)
    if embed is None:
        return lex
    return np.hstack([np.asarray(embed(clean["_t"].to_list()), dtype=np.float64), lex])


_ENCODERS: dict[EmbedSettings, Any] = {}
_VECTORS: dict[tuple[EmbedSettings, str], np.ndarray] = {}


def minilm_embedder(embed: EmbedSettings) -> Embedder:
    """all-MiniLM-L6-v2 on the CPU through the embed stage's encoder (:mod:`scrm.complaints.backend`,
    with ``embed``'s threads, batch size and sequence length); each distinct text is embedded once
    per process (the stage, its tests and a notebook ask for the same tweets again)."""
    settings = embed.replace(progress=False)

    def encode(texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (settings, t) not in _VECTORS]
        if missing:
            from ..complaints.backend import MiniLMEncoder, embed_texts

            if settings not in _ENCODERS:
                _ENCODERS[settings] = MiniLMEncoder("cpu", settings)
            for t, v in zip(missing, embed_texts(missing, _ENCODERS[settings]), strict=True):
                _VECTORS[(settings, t)] = v
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([_VECTORS[(settings, t)] for t in texts])

    return encode


def make_embedder(settings: OutcomeMeasureSettings, embed: EmbedSettings) -> Embedder | None:
    """The measure's sentence encoder (None when ``outcome.measure.embedding`` is ``none``)."""
    return minilm_embedder(embed) if settings.embedding == "minilm" else None


# ---------------------------------------------------------------------------------------------
# the baseline
# ---------------------------------------------------------------------------------------------
def threshold_state(field_name: str, sentiment: pl.Expr, negative: float, positive: float) -> pl.Expr:
    """The sentiment-threshold reading of a field (the baseline); null sentiment stays null."""
    if field_name == "opening_state":
        return (pl.when(sentiment.is_null()).then(None).when(sentiment <= negative)
                .then(pl.lit("unhappy")).otherwise(pl.lit("not_unhappy")))
    return (pl.when(sentiment.is_null()).then(None)
            .when(sentiment >= positive).then(pl.lit("satisfied"))
            .when(sentiment <= negative).then(pl.lit("still_unhappy"))
            .otherwise(pl.lit("procedural")))


# ---------------------------------------------------------------------------------------------
# the fitted measure
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldModel:
    """One field's classifier: the chosen C, dev cross-validation scores, the fitted pipeline and
    the cross-fitted state of every dev thread."""

    name: str
    C: float
    cv_macro_f1: dict[str, float]
    n_dev: int
    class_counts: dict[str, int]
    pipeline: Any
    dev_states: dict[int, str]


@dataclass(frozen=True)
class Measure:
    """States of every opening: a fitted classifier per field, or the thresholds (``kind``)."""

    kind: str
    negative_threshold: float
    positive_threshold: float
    settings: OutcomeMeasureSettings
    fields: dict[str, FieldModel] = field(default_factory=dict)
    embed: Embedder | None = None
    reason: str | None = None

    def predict(self, frame: pl.DataFrame, name: str, text: str, sentiment: str) -> pl.Series:
        """States of ``frame``'s rows for field ``name`` (null where the text is missing)."""
        neg, pos = self.negative_threshold, self.positive_threshold
        model_field = "end_state" if name == PLACEBO[0] else name
        if self.kind == "thresholds":
            return frame.select(threshold_state(model_field, pl.col(sentiment), neg, pos)
                                .alias(name)).to_series()
        has = frame[text].is_not_null().to_numpy()
        out = np.full(frame.height, None, dtype=object)
        if has.any():
            sub = frame.filter(pl.Series(has))
            X = feature_matrix(sub, text, sentiment, self.settings, self.embed)
            out[has] = self.fields[model_field].pipeline.predict(X)
        return pl.Series(name, out.tolist(), dtype=pl.String)

    def assign(self, conv: pl.DataFrame) -> pl.DataFrame:
        """``conv`` with ``opening_state``, ``end_state`` and ``placebo_state`` (the measure; dev
        threads cross-fitted) and the threshold baseline of each as ``baseline_<field>``."""
        neg, pos = self.negative_threshold, self.positive_threshold
        cols = []
        for name, (text, sentiment, _, _) in FIELDS.items():
            state = self.predict(conv, name, text, sentiment)
            if self.kind == "classifier":
                dev = self.fields[name].dev_states
                crossfit = conv["thread_id"].replace_strict(dev, default=None, return_dtype=pl.String)
                state = pl.Series(name, crossfit).fill_null(state)
            cols.append(state)
            cols.append(conv.select(threshold_state(name, pl.col(sentiment), neg, pos)
                                    .alias(f"baseline_{name}")).to_series())
        name, text, sentiment = PLACEBO
        cols.append(self.predict(conv, name, text, sentiment))
        cols.append(conv.select(threshold_state("end_state", pl.col(sentiment), neg, pos)
                                .alias(f"baseline_{name}")).to_series())
        return conv.with_columns(cols)

    def summary(self) -> dict[str, Any]:
        """What the metrics file records about the measure (no fitted objects)."""
        out: dict[str, Any] = {"kind": self.kind, "embedding": self.settings.embedding,
                               "features": (["minilm_384"] if self.embed else []) + list(LEXICAL)}
        if self.reason:
            out["reason"] = self.reason
        for name, fm in self.fields.items():
            out[name] = {"C": fm.C, "dev_cv_macro_f1_by_C": fm.cv_macro_f1, "n_dev": fm.n_dev,
                         "dev_class_counts": fm.class_counts}
        return out


def thresholds_measure(settings: OutcomeSettings, reason: str | None = None) -> Measure:
    """The sentiment-threshold reading as the measure (the baseline, or the fallback)."""
    return Measure("thresholds", settings.negative_threshold, settings.positive_threshold,
                   settings.measure, reason=reason)


def _pipeline(n_embed: int, n_lex: int, C: float, class_weight: str | None, seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    parts: list[Any] = [("lex", StandardScaler(), list(range(n_embed, n_embed + n_lex)))]
    if n_embed:  # unit-length sentence vectors are used as they are
        parts.insert(0, ("emb", "passthrough", list(range(n_embed))))
    return Pipeline([("pre", ColumnTransformer(parts)),
                     ("clf", LogisticRegression(C=C, class_weight=class_weight, max_iter=5000,
                                                random_state=seed))])


def _fit_field(X: np.ndarray, y: np.ndarray, groups: np.ndarray, classes: tuple[str, ...],
               settings: OutcomeMeasureSettings, seed: int) -> tuple[float, dict[str, float], Any,
                                                                     np.ndarray]:
    """Choose C by grouped stratified CV (macro-F1 of the pooled fold predictions; ties go to the
    smaller C), refit on all rows; return C, the CV scores, the model and the cross-fitted states."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold

    from ..stats.classification import macro_f1

    n_lex = len(LEXICAL)
    n_embed = X.shape[1] - n_lex
    folds = list(StratifiedGroupKFold(settings.cv_folds, shuffle=True, random_state=seed)
                 .split(X, y, groups))
    scores: dict[str, float] = {}
    preds: dict[float, np.ndarray] = {}
    for C in sorted(settings.C_grid):
        base = _pipeline(n_embed, n_lex, C, settings.class_weight, seed)
        pred = np.empty(len(y), dtype=object)
        for tr, te in folds:
            pred[te] = clone(base).fit(X[tr], y[tr]).predict(X[te])
        preds[C] = pred
        scores[f"{C:g}"] = round(macro_f1(y.tolist(), pred.tolist(), list(classes)), 6)
    best = max(sorted(settings.C_grid), key=lambda c: (scores[f"{c:g}"], -c))
    model = _pipeline(n_embed, n_lex, best, settings.class_weight, seed).fit(X, y)
    return best, scores, model, preds[best]


def fit_measure(conv: pl.DataFrame, dev_labels: pl.DataFrame, settings: OutcomeSettings,
                embed: Embedder | None, seed: int) -> Measure:
    """Fit one classifier per field on the dev-labelled threads of ``conv``.

    ``dev_labels`` must hold dev rows only (:func:`dev_part`); a test row is an error, so the sealed
    part cannot enter a fit by mistake. Too few dev threads in some state (fewer than
    ``measure.min_per_class``) gives the threshold measure with the reason recorded.
    """
    from threadpoolctl import threadpool_limits

    ms = settings.measure
    if dev_labels.height and (dev_labels["part"] != "dev").any():
        raise ValueError("fit_measure takes dev labels only; the test part is sealed")
    rows = dev_labels.join(conv, on="thread_id", how="inner").sort("thread_id")
    fields: dict[str, FieldModel] = {}
    for name, (text, sentiment, classes, _) in FIELDS.items():
        sub = rows.filter(pl.col(name).is_in(list(classes)) & pl.col(text).is_not_null())
        counts = {c: int((sub[name] == c).sum()) for c in classes}
        if min(counts.values()) < ms.min_per_class:
            return thresholds_measure(
                settings, f"{name}: dev threads per state {counts} (need >= {ms.min_per_class} "
                          f"each, {dev_labels.height} dev labels, {rows.height} found in this run)")
        X = feature_matrix(sub, text, sentiment, ms, embed)
        y = sub[name].to_numpy().astype(object)
        with threadpool_limits(1):
            C, scores, model, crossfit = _fit_field(X, y, sub["customer_id"].to_numpy(), classes,
                                                    ms, seed)
        fields[name] = FieldModel(name, C, scores, sub.height, counts, model,
                                  dict(zip(sub["thread_id"].to_list(), crossfit.tolist())))
    return Measure("classifier", settings.negative_threshold, settings.positive_threshold, ms,
                   fields, embed)
