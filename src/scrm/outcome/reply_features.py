"""Features of a brand's *first* reply to a customer opening, computed from that reply alone.

Everything here reads only the opening, the tweets before the first brand reply and the reply itself,
so no later customer turn can leak into a predictor of how the conversation ends (a test deletes and
rewrites later turns and checks that nothing here moves).

Marker lexicons (apology, empathy, thanks, off-social move) and the name / sign-off patterns live in
``params.yaml`` (``outcome.markers`` ...), never in code: a researcher tunes them and DVC reruns.
Every function takes the stage's :class:`~scrm.config.OutcomeSettings`.
Patterns use Rust-regex syntax (polars): no look-around.

Template-ness is measured against a *reference* set of first replies (:class:`TemplateReference`):
TF-IDF cosine of a reply to its brand's centroid, and the number of the brand's other first replies
with the same normalised text. A reply never counts towards its own reference (leave-one-out), so a
reply scored inside the reference and one scored outside it are on the same footing. The modelling
code fits the reference on training customers only, so no test reply shapes a centroid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..text import MENTION_RE, URL_RE
from .template_counts import TemplateCounts, template_vectorizer

if TYPE_CHECKING:
    from ..config import OutcomeSettings

# boolean marker families, one field each of outcome.markers
MARKER_FAMILIES: tuple[str, ...] = ("apology", "empathy", "thanks", "off_social")

# Every predictor a model may see; all are known when the first reply is sent.
NUMERIC_PREDICTORS: tuple[str, ...] = (
    "opening_sentiment", "log_latency_min", "reply_len_chars", "template_sim", "log_template_dups",
    "n_customer_turns_before_reply", "hour_sin", "hour_cos",
)
BINARY_PREDICTORS: tuple[str, ...] = (
    "apology", "empathy", "thanks", "addresses_name", "agent_signoff", "off_social", "has_link",
    "question_back",
)
CATEGORICAL_PREDICTORS: tuple[str, ...] = ("brand",)
PREDICTORS: tuple[str, ...] = NUMERIC_PREDICTORS + BINARY_PREDICTORS + CATEGORICAL_PREDICTORS
# raw columns the predictors derive from (kept in outcome.parquet for inspection); ``fast_reply`` is
# a cut of ``log_latency_min`` used by the findings table only, never beside it in a model
RAW_REPLY_COLUMNS: tuple[str, ...] = ("latency_min", "template_dups", "opening_hour", "fast_reply")

# thread-part markers such as "1/2", "(2/3)", "...1/2" at the end of a tweet
_PART_RE = r"\s*[.…]*\(?\d/\d\)?\s*$"


def any_of(patterns: Sequence[str], case_insensitive: bool = True) -> str:
    """One regex matching any of ``patterns``."""
    if not patterns:
        return r"[^\s\S]"  # matches nothing
    body = "|".join(f"(?:{p})" for p in patterns)
    return f"(?i){body}" if case_insensitive else body


def reply_body(col: str | pl.Expr = "reply_text") -> pl.Expr:
    """Reply without @handles, URLs and part markers: what the customer reads as the message."""
    e = pl.col(col) if isinstance(col, str) else col
    return (e.fill_null("").str.replace_all(URL_RE, " ").str.replace_all(MENTION_RE, " ")
            .str.replace_all(r"&amp;", "&").str.replace_all(r"&gt;", ">").str.replace_all(r"&lt;", "<")
            .str.replace_all(r"\s+", " ").str.strip_chars().str.replace(_PART_RE, "")
            .str.strip_chars())


def normalise_for_template(col: str | pl.Expr, signoff_patterns: Sequence[str]) -> pl.Expr:
    """Lower-cased reply body without sign-off, digits and punctuation: two agents sending the same
    canned line with different initials or order numbers give the same string."""
    e = reply_body(col)
    for p in signoff_patterns:
        e = e.str.replace_all(p, " ")
    return (e.str.to_lowercase().str.replace_all(r"\d+", "0")
            .str.replace_all(r"[^\w\s]", " ").str.replace_all(r"\s+", " ").str.strip_chars())


def marker_exprs(col: str, settings: OutcomeSettings) -> list[pl.Expr]:
    """Boolean markers of a reply text, patterns from ``settings.markers`` and the name / sign-off
    patterns."""
    body = reply_body(col)
    out = [body.str.contains(any_of(getattr(settings.markers, m))).alias(m) for m in MARKER_FAMILIES]
    # a first name right after a greeting or before the final stop: "Hi Thomas.", "..., Tracey."
    stop = [s.lower() for s in settings.name_stopwords]
    names = [body.str.extract(p, 1) for p in settings.name_patterns]
    named = [n.is_not_null() & ~n.str.to_lowercase().is_in(stop) for n in names]
    out.append((pl.any_horizontal(named) if named else pl.lit(False)).fill_null(False)
               .alias("addresses_name"))
    sign = settings.signoff_patterns
    out.append(body.str.contains(any_of(sign, case_insensitive=False)).alias("agent_signoff"))
    raw = pl.col(col).fill_null("")
    out.append(raw.str.contains(URL_RE).alias("has_link"))
    out.append(body.str.contains("?", literal=True).alias("question_back"))
    out.append(body.str.len_chars().cast(pl.Int32).alias("reply_len_chars"))
    return out


def reply_features(first: pl.DataFrame, settings: OutcomeSettings) -> pl.DataFrame:
    """Add text, timing and context predictors to one row per thread holding its first reply.

    ``first`` needs ``reply_text``, ``opening_at``, ``reply_at``; template columns are added
    separately (:func:`add_template_features`) because their reference depends on the split.
    """
    fast = settings.fast_reply_minutes
    latency = ((pl.col("reply_at") - pl.col("opening_at")).dt.total_milliseconds() / 60000.0)
    hour = pl.col("opening_at").dt.hour().cast(pl.Int32)
    return first.with_columns(
        *marker_exprs("reply_text", settings),
        latency_min=latency.clip(lower_bound=0.0),
        latency_negative=latency < 0,
        opening_hour=hour,
    ).with_columns(
        log_latency_min=pl.col("latency_min").log1p(),
        fast_reply=pl.col("latency_min") < fast,
        hour_sin=(hour * (2 * np.pi / 24)).sin(),
        hour_cos=(hour * (2 * np.pi / 24)).cos(),
    )


class TemplateReference:
    """Per-brand TF-IDF centroid and duplicate counts of a reference set of replies.

    ``fit`` takes (id, brand, normalised text) of the reference replies; ``score`` gives, for any
    reply, the cosine to its brand's centroid and the count of the brand's reference replies with the
    same normalised text, both leaving the reply itself out when it is part of the reference.
    The centroid is the mean of L2-normalised TF-IDF vectors; with ``S`` their sum and ``v`` the
    (unit or zero) vector of the reply, the leave-one-out cosine is
    ``(v.S - v.v) / |S - v|`` and ``|S - v|^2 = |S|^2 - 2 v.S + v.v``, so no centroid is ever
    rebuilt per reply.
    """

    def __init__(self, max_features: int, ngram_max: int, min_df: int,
                 counts: TemplateCounts | None = None) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.counts = counts  # texts tokenised once (same vectors; see .template_counts)

    def _docs(self, texts: list[str]) -> Any:
        docs = self.counts.docs(texts) if self.counts is not None else None
        return texts if docs is None else docs

    def fit(self, ids: Sequence[int], brands: Sequence[str], texts: Sequence[str]) -> TemplateReference:
        texts = [t or "" for t in texts]
        self.vectorizer_ = template_vectorizer(self.max_features, self.ngram_max, self.min_df,
                                               self.counts)
        try:
            V = self.vectorizer_.fit_transform(self._docs(texts))
        except ValueError:  # empty vocabulary (no text at all)
            self.vectorizer_ = None
            V = None
        brands = np.asarray(list(brands), dtype=object)
        self.brands_ = sorted(set(brands.tolist()))
        index = {b: i for i, b in enumerate(self.brands_)}
        bidx = np.array([index[b] for b in brands], dtype=np.int64)
        self.count_ = np.bincount(bidx, minlength=len(self.brands_)).astype(np.float64)
        if V is not None:
            from scipy import sparse

            onehot = sparse.csr_matrix((np.ones(len(bidx)), (bidx, np.arange(len(bidx)))),
                                       shape=(len(self.brands_), len(bidx)))
            self.sum_ = np.asarray((onehot @ V).todense())
            self.sq_ = (self.sum_ ** 2).sum(axis=1)
        self.ids_ = pl.Series("id", list(ids), dtype=pl.Int64)
        # typed: with no reference reply (no answered opening) the lists are empty, and an untyped
        # (Null) brand column would break the join in score()
        self.dups_ = (pl.DataFrame({"brand": brands.tolist(), "norm": texts},
                                   schema={"brand": pl.String, "norm": pl.String})
                      .group_by("brand", "norm").agg(n_ref=pl.len()))
        return self

    def score(self, ids: Sequence[int], brands: Sequence[str], texts: Sequence[str]) -> pl.DataFrame:
        """``template_sim`` (null when the brand has no other reference reply) and ``template_dups``."""
        texts = [t or "" for t in texts]
        q = pl.DataFrame({"id": pl.Series(list(ids), dtype=pl.Int64),
                          "brand": pl.Series(list(brands), dtype=pl.String),
                          "norm": pl.Series(texts, dtype=pl.String)})
        q = q.with_columns(in_ref=pl.col("id").is_in(self.ids_.implode()))
        index = {b: i for i, b in enumerate(self.brands_)}
        sims = np.full(q.height, np.nan)
        if getattr(self, "vectorizer_", None) is not None and q.height:
            V = self.vectorizer_.transform(self._docs(texts))
            vv = np.asarray(V.multiply(V).sum(axis=1)).ravel()
            bidx = (q["brand"].replace_strict(index, default=-1, return_dtype=pl.Int64)
                    .fill_null(-1).to_numpy())
            in_ref = q["in_ref"].to_numpy()
            vs = np.zeros(q.height)
            for b in np.unique(bidx[bidx >= 0]):  # one sparse-dense product per brand
                rows = np.flatnonzero(bidx == b)
                vs[rows] = V[rows] @ self.sum_[b]
            known = bidx >= 0
            sq = np.where(known, self.sq_[np.maximum(bidx, 0)], 0.0)
            n = np.where(known, self.count_[np.maximum(bidx, 0)], 0.0)
            own = np.where(in_ref, 1.0, 0.0)
            num = vs - own * vv
            den2 = sq - own * (2 * vs - vv)
            others = n - own
            ok = known & (others > 0) & (den2 > 1e-12) & (vv > 0)
            sims[ok] = num[ok] / np.sqrt(den2[ok])
            sims = np.clip(sims, -1.0, 1.0)
        out = (q.join(self.dups_, on=["brand", "norm"], how="left", maintain_order="left")
               .with_columns(template_dups=(pl.col("n_ref").fill_null(0)
                                            - pl.col("in_ref").cast(pl.Int64)).cast(pl.Int32)))
        return out.select("id", template_sim=pl.Series(sims).fill_nan(None).round(6),
                          template_dups="template_dups")


def template_counts(texts: pl.Series, settings: OutcomeSettings) -> TemplateCounts:
    """The reply texts (``reply_norm``) tokenised once, for every reference fitted on them."""
    return TemplateCounts(texts.to_list(), settings.template.ngram_max)


def add_template_features(df: pl.DataFrame, reference: pl.DataFrame, settings: OutcomeSettings,
                          counts: TemplateCounts | None = None) -> pl.DataFrame:
    """Add ``template_sim``, ``template_dups``, ``log_template_dups`` and ``template_reply`` to ``df``
    (rows keyed by ``reply_tweet_id``) using ``reference`` (same columns) as the brand repertoire.

    A reply is template-like when its similarity reaches ``settings.template_threshold``.
    ``counts`` (:func:`template_counts` of texts covering both frames) saves re-tokenising them when
    several references are fitted on the same replies; without it they are counted once here."""
    tp = settings.template
    if counts is None:
        counts = template_counts(pl.concat([reference["reply_norm"], df["reply_norm"]]), settings)
    ref = TemplateReference(tp.max_features, tp.ngram_max, tp.min_df, counts)
    ref.fit(reference["reply_tweet_id"].to_list(), reference["reply_author"].to_list(),
            reference["reply_norm"].to_list())
    scored = ref.score(df["reply_tweet_id"].to_list(), df["reply_author"].to_list(),
                       df["reply_norm"].to_list()).rename({"id": "reply_tweet_id"})
    thr = settings.template_threshold
    drop = [c for c in ("template_sim", "template_dups", "log_template_dups", "template_reply")
            if c in df.columns]
    return (df.drop(drop).join(scored, on="reply_tweet_id", how="left", maintain_order="left")
            .with_columns(log_template_dups=pl.col("template_dups").cast(pl.Float64).log1p(),
                          template_reply=pl.col("template_sim") >= thr))
