"""The open vocabulary: words beyond the templates' fixed vocabulary, so that distinct words keep
growing with the number of tweets the way real tweets' do (Heaps' law, :mod:`scrm.stats.powerlaw`).

Why: templates alone give a vocabulary that stops growing after a few thousand tweets, so text stages
(TF-IDF with char n-grams, c-TF-IDF, topic models) do far less work at 2.8 M rows than on the real
file. Real tweets keep bringing new words (names, products, places, slang, misspellings); here they
come from an unbounded Zipf–Mandelbrot distribution over made-up words:

* a word's rank ``r >= 1`` is drawn with ``P(r) ~ (r + q)**-s``: ``s = 1 / (alpha - 1)`` from the
  Zipf exponent ``alpha`` of the sample's word-frequency spectrum, links left out
  (``fitted.vocabulary``), so that the open words keep growing as ``n**(alpha - 1)`` like the sample's
  words; ``q`` is solved so that the generated tweets have as many distinct words as the sample's at
  the sample's size (``calibrated``, :func:`.vocabulary.calibrate_vocabulary`); a larger ``q`` spreads
  draws over more, rarer words;
* a draw belongs to the thread's complaint kind (``kind_share``), to its brand (``brand_share``) or to
  the shared vocabulary, each with its own words: kinds and brands get words of their own, as real
  ones do ("tarmac", "airpods"), without making kinds trivially separable (the words are rare);
* rank and group map to a word by a bijection onto pronounceable letter strings of two or more
  syllables and a closing consonant (:func:`pseudo_words`): frequent words are short, rare ones long;
* each tweet gets as many words as bring it to a length drawn from the sample's words per tweet
  (:func:`open_clauses`), a few of them common function words; some tweets get a one-letter typo in
  an early word (:func:`misspell`), some hashtags are open words.

Everything is whole-array numpy/polars work per chunk; nothing is kept between chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ...errors import ScrmError
from ...stats.powerlaw import TOKEN_PATTERN

ROLES = ("customer", "brand")


@dataclass(frozen=True)
class OpenVocabulary:
    """What the open-vocabulary draws need, prepared once per run from the parameters."""

    syllables: pl.Series        # onset x vowel, then "" (the filler of absent positions)
    codas: pl.Series            # closing consonants
    exponent: np.ndarray        # s per role (customer, brand)
    offset: np.ndarray          # q per role
    length_shift: np.ndarray    # per role: drawn lengths are shifted down by this many words
    max_rank: int
    kind_share: float
    brand_share: float
    n_groups: int               # shared + kinds + brands
    n_kinds: int
    hashtag_share: float
    function_words: pl.Series   # short common words mixed in among the open words ...
    function_cum: np.ndarray    # ... with weights 1/rank (cumulative, normalised)
    function_share: float
    typo_rate: np.ndarray       # per role
    words_pmf: np.ndarray       # (2, k_max + 1): words per tweet, per role, from the sample


def build(p: dict[str, Any], n_kinds: int, n_brands: int) -> OpenVocabulary:
    """The open vocabulary of the parameter file (``text.open_vocabulary``, ``fitted.vocabulary``,
    ``calibrated``)."""
    ov = p["text"]["open_vocabulary"]
    fit = p["fitted"]["vocabulary"]
    cal = p["calibrated"]
    flat = [r for r in ROLES if not fit[r]["zipf_alpha"] > 1]
    if flat:
        raise ScrmError(f"synthetic params: fitted.vocabulary zipf_alpha must exceed 1 (a Zipf tail "
                        f"that can be normalised); not so for {flat}.")
    if not 0 <= ov["kind_share"] + ov["brand_share"] <= 1:
        raise ScrmError("synthetic params: text.open_vocabulary kind_share + brand_share must lie "
                        "in 0..1.")
    syl = [o + v for o in ov["onsets"] for v in ov["vowels"]]
    fw = 1.0 / np.arange(1, len(ov["function_words"]) + 1)
    k_max = max(len(fit[r]["words_pmf"]) for r in ROLES)
    pmf = np.zeros((len(ROLES), k_max))
    for i, r in enumerate(ROLES):
        w = np.asarray(fit[r]["words_pmf"], dtype=float)
        pmf[i, :len(w)] = w / w.sum()
    return OpenVocabulary(
        syllables=pl.Series([*syl, ""], dtype=pl.String),
        codas=pl.Series(list(ov["codas"]), dtype=pl.String),
        exponent=np.array([1.0 / (fit[r]["zipf_alpha"] - 1.0) for r in ROLES]),
        offset=np.array([cal[f"open_offset_{r}"] for r in ROLES], dtype=float),
        length_shift=np.array([cal[f"length_shift_{r}"] for r in ROLES], dtype=float),
        max_rank=int(ov["max_rank"]), kind_share=float(ov["kind_share"]),
        brand_share=float(ov["brand_share"]), n_groups=1 + n_kinds + n_brands, n_kinds=n_kinds,
        hashtag_share=float(ov["hashtag_share"]),
        function_words=pl.Series(list(ov["function_words"]), dtype=pl.String),
        function_cum=np.cumsum(fw) / fw.sum(), function_share=float(ov["function_share"]),
        typo_rate=np.array([ov["typo_rate"][r] for r in ROLES], dtype=float), words_pmf=pmf)


def pseudo_words(index: np.ndarray, syllables: pl.Series, codas: pl.Series) -> pl.Series:
    """Word number ``index`` (0, 1, 2, ...): a bijection onto two-or-more-syllable words with a
    closing consonant; smaller numbers give shorter words. ``syllables`` ends with ``""``."""
    idx = np.asarray(index, dtype=np.int64)
    b = len(syllables) - 1
    coda = idx % len(codas)
    rest = idx // len(codas)
    n_syl = np.full(len(idx), 2, dtype=np.int64)
    top = int(rest.max()) if len(rest) else 0
    k = 2
    while b ** k <= top:                 # words of k syllables take the next b**k numbers
        more = (n_syl == k) & (rest >= b ** k)
        rest = np.where(more, rest - b ** k, rest)
        n_syl = np.where(more, k + 1, n_syl)
        k += 1
    parts = []
    for j in range(int(n_syl.max()) if len(idx) else 2):
        power = np.maximum(n_syl - 1 - j, 0)
        digit = (rest // np.power(b, power)) % b
        parts.append(syllables.gather(np.where(j < n_syl, digit, b)))
    parts.append(codas.gather(coda))
    return pl.DataFrame({f"p{j}": s for j, s in enumerate(parts)}).select(
        pl.concat_str(pl.all()).alias("word")).to_series()


def zipf_mandelbrot_ranks(u: np.ndarray, s: np.ndarray, q: np.ndarray, max_rank: int) -> np.ndarray:
    """Ranks ``r >= 1`` with ``P(r) ~ (r + q)**-s`` (s > 1), from uniforms ``u`` in (0, 1], by the
    inverse of the continuous tail ``P(X > x) = ((x + q) / (1 + q))**(1 - s)``, capped at ``max_rank``."""
    log_x = np.minimum(np.log1p(q) - np.log(u) / (s - 1.0), np.log(max_rank + q + 1.0))
    return np.clip(np.floor(np.exp(log_x) - q), 1, max_rank).astype(np.int64)


def draw_words(ov: OpenVocabulary, rng: np.random.Generator, role: np.ndarray, kind: np.ndarray,
               brand: np.ndarray) -> pl.Series:
    """One open word per entry: role index (0 customer, 1 brand), complaint kind and brand index."""
    m = len(role)
    u = 1.0 - rng.random(m)
    v = rng.random(m)
    rank = zipf_mandelbrot_ranks(u, ov.exponent[role], ov.offset[role], ov.max_rank)
    group = np.where(v < ov.kind_share, 1 + kind,
                     np.where(v < ov.kind_share + ov.brand_share, 1 + ov.n_kinds + brand, 0))
    return pseudo_words((rank - 1) * ov.n_groups + group, ov.syllables, ov.codas)


def open_clauses(ov: OpenVocabulary, rng: np.random.Generator, base_words: np.ndarray,
                 role: np.ndarray, kind: np.ndarray, brand: np.ndarray) -> pl.Series:
    """Per tweet, the words that bring it to a length ``L`` drawn from the sample's words-per-tweet
    distribution of its role, less the role's calibrated ``length_shift`` ``d``: ``max(0, L - d -
    base_words)`` words (rounded up or down at random, so that its mean is exact), each a common
    function word (``function_share``) or an open word, joined by spaces ("" for none)."""
    n = len(role)
    cum = np.cumsum(ov.words_pmf, axis=1)
    target = (rng.random(n)[:, None] > cum[role]).sum(axis=1)
    gap = target - ov.length_shift[role] - base_words
    count = np.maximum(np.floor(gap + rng.random(n)), 0).astype(np.int64)
    owner = np.repeat(np.arange(n), count)
    common = rng.random(len(owner)) < ov.function_share
    pick = np.searchsorted(ov.function_cum, rng.random(len(owner)), side="right")
    words = ov.function_words.gather(np.minimum(pick, len(ov.function_words) - 1))
    fresh = np.flatnonzero(~common)
    words = words.scatter(fresh, draw_words(ov, rng, role[owner[fresh]], kind[owner[fresh]],
                                            brand[owner[fresh]]))
    joined = (pl.DataFrame({"i": owner, "w": words}).group_by("i", maintain_order=True)
              .agg(pl.col("w").str.join(" ")))
    out = pl.repeat("", n, dtype=pl.String, eager=True)
    if joined.height:
        out = out.scatter(joined["i"].to_numpy(), joined["w"])
    return out


_TYPOS = ("${1}${3}${2}", "${1}${3}", "${1}${2}${2}${3}")   # swap, drop, double a letter


def misspell(rng: np.random.Generator, texts: pl.Series, rate: np.ndarray) -> pl.Series:
    """With probability ``rate`` per text, one typo (two letters swapped, one dropped or doubled)
    in its first, second or third word, right after that word's first letter."""
    n = len(texts)
    hit = rng.random(n) < rate
    which = rng.integers(0, 3 * len(_TYPOS), size=n)
    out = texts.clone()
    for c in range(3 * len(_TYPOS)):
        idx = np.flatnonzero(hit & (which == c))
        if not len(idx):
            continue
        word, typo = divmod(c, len(_TYPOS))
        pattern = r"^((?:\S+\s+){" + str(word) + r"}[A-Za-z])([a-z])([a-z])"
        out = out.scatter(idx, out.gather(idx).str.replace(pattern, _TYPOS[typo]))
    return out


def word_count(text: pl.Expr) -> pl.Expr:
    """Words of a text as :mod:`scrm.stats.powerlaw` counts them."""
    return text.str.to_lowercase().str.count_matches(TOKEN_PATTERN)
