"""How the generator's words grow: fitted on the real sample, calibrated, and compared.

Definitions (one home: :mod:`scrm.stats.powerlaw`): a *word* is a lower-cased ``[a-z']{2,}`` run;
*customer* tweets are the inbound ones, *brand* tweets the others; a role's type-token curve counts
the distinct words among its first ``n`` tweets in file order, for ``n`` on a 1-2-5 grid.

* :func:`fit_vocabulary` measures, per role on the sample, the tweets, words and distinct words,
  Heaps' law ``V = K n**beta``, the Zipf exponent of the word-frequency spectrum and the distribution
  of words per tweet (``fitted.vocabulary``).
* :func:`calibrate_vocabulary` solves the two knobs per role of the open vocabulary
  (:mod:`.lexicon`): the length shift that gives the sample's mean words per tweet, then the offset
  that gives the sample's distinct words at the sample's size (``calibrated``).
* :func:`compare` puts the real and the generated curves side by side and checks them against
  :data:`TOLERANCE` (``bench/vocabulary.py`` and the tests use it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ...errors import ScrmError
from ...text import URL_RE
from ...stats.powerlaw import (discrete_alpha, heaps_fit, prefix_sizes, type_token_curve,
                               word_counts, word_tokens)
from .generate import generate_frame
from .lexicon import ROLES

# how close the generated curve must come to the sample's: distinct words at the sample's size within
# +-20 % of the real count, Heaps' beta (fitted over the sample's range of sizes) within +-0.1
TOLERANCE = {"distinct": 0.20, "beta": 0.10}


def without_links(texts: pl.Series) -> pl.Series:
    """Texts with their links (``https://t.co/...``) blanked out."""
    return texts.str.replace_all(URL_RE, " ")


def role_texts(frame: pl.DataFrame, role: str) -> pl.Series:
    """The texts of one role in frame order; ``inbound`` may be a bool or the CSV's True/False."""
    inbound = pl.col("inbound").cast(pl.String).str.to_lowercase() == "true"
    return frame.filter(inbound if role == "customer" else ~inbound)["text"]


def fit_vocabulary(tweets: pl.DataFrame) -> dict[str, Any]:
    """The ``fitted.vocabulary`` block: per role, in file order (``line_no``), tweets, words and
    distinct words, Heaps' ``K`` and ``beta`` over the 1-2-5 grid, distinct words and the Zipf
    exponent ``alpha`` of the word-frequency spectrum with links left out, and the distribution of
    words per tweet (index = words).

    Links are left out of what the open vocabulary must reproduce: their random codes are words only
    to the tokeniser (and grow in proportion to the tweets), and the generator writes links of its
    own at the sample's rate. On the sample ``alpha - 1`` of the links-free words is close to their
    Heaps beta (0.68 vs 0.67 for customers, 0.62 vs 0.63 for brands), as Zipf's law predicts."""
    tw = tweets.sort("line_no")
    out = {}
    for role in ROLES:
        texts = role_texts(tw, role)
        curve = type_token_curve(texts, prefix_sizes(len(texts)))
        heaps = heaps_fit(curve["n"], curve["types"])
        per_tweet = np.bincount(word_tokens(texts).list.len().to_numpy()) / len(texts)
        words = without_links(texts)
        out[role] = {
            "tweets": len(texts), "words": int(curve["tokens"][-1]),
            "distinct": int(curve["types"][-1]), "heaps_k": round(heaps["K"], 4),
            "heaps_beta": round(heaps["beta"], 4),
            "distinct_without_links": int(type_token_curve(words, [len(words)])["types"][0]),
            "zipf_alpha": round(discrete_alpha(word_counts(words)), 4),
            "words_pmf": [round(float(x), 5) for x in per_tweet],
        }
    return out


def _first(frame: pl.DataFrame, role: str, n: int) -> pl.Series:
    texts = role_texts(frame, role)
    if len(texts) < n:
        raise ScrmError(f"synthetic vocabulary: {len(texts)} {role} tweets generated, {n} needed; "
                        "raise text.open_vocabulary.calibration.rows.")
    return texts.head(n)


def length_shift(base_words: np.ndarray, pmf: np.ndarray, mean_words: float) -> float:
    """The shift ``d`` with ``mean(base + max(0, L - base - d)) = mean_words`` (``L`` drawn from
    ``pmf``, independently of the base): tweets whose template is longer than the drawn length keep
    the template, so the targets are shifted down until the mean comes out right. Bisection; the
    mean falls as ``d`` grows."""
    b = np.asarray(base_words, dtype=float)[:, None]
    lengths = np.arange(len(pmf), dtype=float)[None, :]
    w = np.asarray(pmf, dtype=float)[None, :] / float(np.sum(pmf))

    def mean_len(d: float) -> float:
        return float((b[:, 0] + (w * np.maximum(0.0, lengths - b - d)).sum(axis=1)).mean())

    lo, hi = -float(len(pmf)), float(len(pmf))
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_len(mid) > mean_words else (lo, mid)
    return (lo + hi) / 2


def calibrate_vocabulary(p: dict[str, Any]) -> dict[str, float]:
    """The open vocabulary's calibrated knobs per role (``p`` needs ``fitted`` and the structural
    ``calibrated`` values), on ``calibration.rows`` generated rows with ``calibration.seed``:

    1. ``length_shift_<role>``: a run with no open words gives each tweet's template length;
       :func:`length_shift` then matches the sample's mean words per tweet;
    2. ``open_offset_<role>``: bisection on ``log(1 + q)`` until the first ``n`` generated tweets
       (``n`` = the sample's count) have the sample's number of distinct words, links left out (see
       :func:`fit_vocabulary`). A role's draws do not depend on the other role's knobs, so both roles
       are solved together."""
    fit = p["fitted"]["vocabulary"]
    spec = p["text"]["open_vocabulary"]["calibration"]
    n = {r: fit[r]["tweets"] for r in ROLES}

    def run(cal: dict[str, float], pmf: dict[str, list[float]] | None = None) -> pl.DataFrame:
        voc = {r: {**fit[r], "words_pmf": pmf[r]} for r in ROLES} if pmf else fit
        trial = {**p, "fitted": {**p["fitted"], "vocabulary": voc},
                 "calibrated": {**p["calibrated"], **cal}}
        return generate_frame(spec["rows"], spec["seed"], trial)

    off = {f"{k}_{r}": 0.0 for r in ROLES for k in ("open_offset", "length_shift")}
    base = run(off, pmf={r: [1.0] for r in ROLES})
    shift = {}
    for r in ROLES:
        words = word_tokens(_first(base, r, n[r])).list.len().to_numpy()
        shift[f"length_shift_{r}"] = round(length_shift(words, np.asarray(fit[r]["words_pmf"]),
                                                        fit[r]["words"] / fit[r]["tweets"]), 4)

    def distinct(log_q: dict[str, float]) -> dict[str, int]:
        frame = run({**shift, **{f"open_offset_{r}": float(np.expm1(log_q[r])) for r in ROLES}})
        return {r: int(type_token_curve(without_links(_first(frame, r, n[r])), [n[r]])["types"][0])
                for r in ROLES}

    lo = {r: 0.0 for r in ROLES}
    hi = {r: float(np.log1p(spec["max_offset"])) for r in ROLES}
    top = distinct(hi)
    target = {r: fit[r]["distinct_without_links"] for r in ROLES}
    short = [r for r in ROLES if top[r] < target[r]]
    if short:
        raise ScrmError(f"synthetic vocabulary: even offset {spec['max_offset']} gives fewer "
                        f"distinct words than the sample for {short} ({top}).")
    for _ in range(spec["iterations"]):
        mid = {r: (lo[r] + hi[r]) / 2 for r in ROLES}
        got = distinct(mid)
        for r in ROLES:
            lo[r], hi[r] = (mid[r], hi[r]) if got[r] < target[r] else (lo[r], mid[r])
    return {**shift, **{f"open_offset_{r}": round(float(np.expm1((lo[r] + hi[r]) / 2)), 4)
                        for r in ROLES}}


def compare(real: pl.DataFrame, synthetic: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The real sample's and the generated type-token curves side by side, and their summary.

    ``real`` and ``synthetic`` are raw-CSV frames (``inbound``, ``text``; file order); the synthetic
    one must hold at least as many tweets of each role as the sample. Returns

    * a table ``role, n, real, synthetic, real_heaps``: distinct words among the first ``n`` tweets on
      the 1-2-5 grid of the synthetic size plus the sample's own size (``real`` is null past the
      sample's size) and the real Heaps law ``K n**beta`` (an extrapolation past the sample's size);
    * per role: Heaps' law fitted on both curves over the sample's range of sizes (and the synthetic
      one over all its sizes), distinct words at the sample's size, words and characters per tweet
      (all tweets of each), the Zipf exponent of both (links left out, at the sample's size) and the
      checks of :data:`TOLERANCE` (``distinct_ok``, ``beta_ok``).
    """
    parts, rows = [], []
    for role in ROLES:
        rt, st = role_texts(real, role), role_texts(synthetic, role)
        n = len(rt)
        if len(st) < n:
            raise ScrmError(f"{len(st)} synthetic {role} tweets: at least the sample's {n} are needed.")
        sizes = sorted(set(prefix_sizes(len(st))) | {n})
        curve = type_token_curve(st, sizes).select("n", synthetic="types").join(
            type_token_curve(rt, [x for x in sizes if x <= n]).select("n", real="types"),
            on="n", how="left")
        seen = curve.filter(pl.col("n") <= n)
        real_fit = heaps_fit(seen["n"], seen["real"])
        syn_fit = heaps_fit(seen["n"], seen["synthetic"])
        at = seen.filter(pl.col("n") == n).row(0, named=True)
        ratio = at["synthetic"] / at["real"]
        parts.append(curve.select(
            pl.lit(role).alias("role"), "n", "real", "synthetic",
            real_heaps=(real_fit["K"] * pl.col("n").cast(pl.Float64) ** real_fit["beta"]).round(0)))
        rows.append({
            "role": role, "sample_tweets": n, "real_distinct": at["real"],
            "synthetic_distinct": at["synthetic"], "ratio": round(ratio, 4),
            "real_K": round(real_fit["K"], 3), "real_beta": round(real_fit["beta"], 4),
            "synthetic_K": round(syn_fit["K"], 3), "synthetic_beta": round(syn_fit["beta"], 4),
            "synthetic_beta_all_sizes": round(heaps_fit(curve["n"], curve["synthetic"])["beta"], 4),
            "real_words_per_tweet": round(float(word_tokens(rt).list.len().mean()), 3),
            "synthetic_words_per_tweet": round(float(word_tokens(st).list.len().mean()), 3),
            "real_chars_per_tweet": round(float(rt.str.len_chars().mean()), 2),
            "synthetic_chars_per_tweet": round(float(st.str.len_chars().mean()), 2),
            "real_zipf_alpha": round(discrete_alpha(word_counts(without_links(rt))), 4),
            "synthetic_zipf_alpha": round(discrete_alpha(word_counts(without_links(st.head(n)))), 4),
            "distinct_ok": abs(ratio - 1) <= TOLERANCE["distinct"],
            "beta_ok": abs(syn_fit["beta"] - real_fit["beta"]) <= TOLERANCE["beta"],
        })
    return pl.concat(parts), pl.DataFrame(rows)
