"""Agreement between two labelling passes (Cohen's kappa with a bootstrap interval) and between two
clusterings of the same items (adjusted Rand index, top-word overlap of topics).

Why kappa: raw agreement flatters a skewed label set (two annotators who both say "complaint" 70 % of
the time agree 58 % by chance); Cohen's kappa reports agreement beyond chance. The interval resamples
items (tweets or threads) with replacement, the unit that was labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two label sequences over the same items (nan when chance agreement is 1)."""
    a_arr, b_arr = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        raise ValueError("two non-empty label sequences of the same length are needed")
    cats = sorted(set(a_arr.tolist()) | set(b_arr.tolist()), key=str)
    index = {c: i for i, c in enumerate(cats)}
    ia = np.array([index[x] for x in a_arr])
    ib = np.array([index[x] for x in b_arr])
    return _kappa_codes(ia, ib, len(cats))


def _kappa_codes(ia: np.ndarray, ib: np.ndarray, k: int) -> float:
    n = ia.size
    po = float(np.mean(ia == ib))
    pa = np.bincount(ia, minlength=k) / n
    pb = np.bincount(ib, minlength=k) / n
    pe = float(np.dot(pa, pb))
    if pe >= 1.0:
        return float("nan")
    return (po - pe) / (1.0 - pe)


def kappa_with_interval(a: Sequence[Any], b: Sequence[Any], *, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> dict[str, Any]:
    """kappa, percentile bootstrap interval over items, raw agreement and n."""
    a_arr, b_arr = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    cats = sorted(set(a_arr.tolist()) | set(b_arr.tolist()), key=str)
    index = {c: i for i, c in enumerate(cats)}
    ia = np.array([index[x] for x in a_arr])
    ib = np.array([index[x] for x in b_arr])
    kappa = _kappa_codes(ia, ib, len(cats))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, ia.size, size=(n_boot, ia.size))
    boot = np.array([_kappa_codes(ia[d], ib[d], len(cats)) for d in draws])
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]) if boot.size
              else (float("nan"), float("nan")))
    return {"kappa": round(kappa, 4), "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4),
            "agreement": round(float(np.mean(ia == ib)), 4), "n": int(ia.size),
            "n_boot": n_boot, "ci_level": level}


# --------------------------------------------------------------------------------------------------
# agreement between two clusterings (topic-model runs with different seeds)
# --------------------------------------------------------------------------------------------------
def adjusted_rand(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray) -> float:
    """Adjusted Rand index of two assignments of the same items (Hubert & Arabie 1985): 1 = the same
    partition (whatever the cluster ids), about 0 = no more agreement than chance."""
    from sklearn.metrics import adjusted_rand_score

    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        raise ValueError("two non-empty assignments of the same length are needed")
    return float(adjusted_rand_score(a_arr, b_arr))


def topic_word_overlap(a: Mapping[Any, Sequence[str]], b: Mapping[Any, Sequence[str]]) -> float:
    """How far two topic models share their topics' top words: for each topic of one model, the best
    Jaccard overlap with any topic of the other; the mean over topics, averaged over both directions
    (1 = every topic found again word for word, 0 = no top word shared). 0 when either is empty."""
    sa = [set(ws) for ws in a.values() if ws]
    sb = [set(ws) for ws in b.values() if ws]
    if not sa or not sb:
        return 0.0

    def best(x: list[set[str]], y: list[set[str]]) -> float:
        return float(np.mean([max(len(s & t) / len(s | t) for t in y) for s in x]))

    return (best(sa, sb) + best(sb, sa)) / 2
