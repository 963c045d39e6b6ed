"""Power laws of counts: Heaps' type-token law, the Zipf tail of word frequencies, and the discrete
power-law exponent estimate both rest on.

Why these: how fast the number of distinct words grows with the number of texts is what makes text
stages (TF-IDF, c-TF-IDF, topic models) cost what they cost, so a synthetic corpus that stands in for
the real one must grow like it. Two numbers summarise that growth:

* **Heaps' law** ``V = K * N**beta``: ``V`` distinct words among the first ``N`` texts, fitted by
  least squares on ``log V = log K + beta log N`` over a grid of prefix sizes (:func:`heaps_fit`).
* **Zipf's law** of the frequency spectrum ``P(a word occurs k times) ~ k**-alpha``: ``alpha`` is the
  discrete power-law MLE (:func:`discrete_alpha`). Its rank-frequency form is ``f(r) ~ r**-s`` with
  ``s = 1 / (alpha - 1)``, and a vocabulary drawn independently from it grows with ``beta = 1 / s``
  (Karlin 1967), so the two fits check each other.

A *word* is a lower-cased run of ``[a-z']`` of at least two characters (:data:`TOKEN_PATTERN`): no
digits, no single letters, and @handles, hashtags and link codes count with the letters they contain,
exactly as a bag-of-words vectoriser on the raw text would see them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

TOKEN_PATTERN = r"[a-z']{2,}"


def word_tokens(texts: pl.Series) -> pl.Series:
    """The words of each text (a list per text; see :data:`TOKEN_PATTERN`)."""
    return texts.fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)


def prefix_sizes(n_max: int, start: int = 100) -> list[int]:
    """A 1-2-5 grid of prefix sizes from ``start`` up to ``n_max``, ending with ``n_max`` itself."""
    sizes: list[int] = []
    decade = start
    while decade < n_max:
        sizes += [m * decade for m in (1, 2, 5) if m * decade < n_max]
        decade *= 10
    return [*sizes, n_max]


def type_token_curve(texts: pl.Series, sizes: Sequence[int]) -> pl.DataFrame:
    """Distinct words (``types``) and words (``tokens``) among the first ``n`` texts, per ``n``.

    Texts count in the order given (file order for a CSV); every size must be at most ``len(texts)``.
    """
    n = len(texts)
    if not sizes or max(sizes) > n or min(sizes) < 1:
        raise ValueError(f"prefix sizes must lie in 1..{n}, got {list(sizes)}")
    tok = word_tokens(texts)
    per_text = tok.list.len().to_numpy()
    first = (pl.DataFrame({"i": np.arange(n), "w": tok}).explode("w").drop_nulls()
             .group_by("w").agg(pl.col("i").min())["i"].sort().to_numpy())
    ns = np.asarray(sizes, dtype=np.int64)
    return pl.DataFrame({"n": ns, "tokens": np.cumsum(per_text)[ns - 1],
                         "types": np.searchsorted(first, ns, side="left")})


def heaps_fit(n: Sequence[float], types: Sequence[float]) -> dict[str, float]:
    """Heaps' law ``types = K * n**beta`` by least squares on the logs: ``{"K", "beta"}``."""
    x, y = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(types, dtype=float))
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError("Heaps' law needs at least two distinct prefix sizes")
    beta = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return {"K": float(np.exp(y.mean() - beta * x.mean())), "beta": beta}


def discrete_alpha(counts: Sequence[float] | np.ndarray, k_min: int = 1) -> float:
    """Exponent of a discrete power law ``P(k) ~ k**-alpha`` (k >= ``k_min``) by the approximate MLE
    of Clauset, Shalizi & Newman (2009, eq. 3.7): ``1 + n / sum(log(k / (k_min - 1/2)))``."""
    k = np.asarray(counts, dtype=float)
    k = k[k >= k_min]
    if not k.size:
        raise ValueError(f"no counts at or above k_min={k_min}")
    return 1.0 + k.size / float(np.log(k / (k_min - 0.5)).sum())


def word_counts(texts: pl.Series) -> np.ndarray:
    """How often each distinct word occurs in ``texts`` (the frequency spectrum's raw counts)."""
    words = word_tokens(texts).explode().drop_nulls()
    return words.value_counts()["count"].to_numpy()
