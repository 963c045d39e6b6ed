"""Quality of a topic fit: NPMI coherence, diversity, outliers, collapse and stability across seeds.

Numbers only (no fitting policy): :mod:`.topics` fits and calls these; every figure is rounded so
identical runs give identical bytes. Definitions are in :mod:`.topics`' docstring and the README.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import TopicsSettings
from ..errors import TooLittleData
from ..stats.agreement import adjusted_rand, topic_word_overlap
from .topic_tables import OUTLIER, npmi_coherence, topic_diversity

if TYPE_CHECKING:
    from .topics import TopicFit

log = logging.getLogger(__name__)


def stability(docs: Sequence[str], embeddings: np.ndarray, fit: TopicFit,
              settings: TopicsSettings) -> dict[str, Any] | None:
    """The whole fitting procedure (size rule and collapse ladder included, as the stage runs it)
    repeated with seeds seed+1 .. seed+runs-1 (``topics.stability_runs``), and all fits compared
    pairwise: adjusted Rand index of the final and of the raw assignments (outliers as one group)
    and the overlap of top words (:func:`scrm.stats.agreement.topic_word_overlap`)."""
    from .topics import fit_topics  # the stage's own procedure, repeated per seed

    runs = settings.stability_runs
    if runs < 3:
        return None
    seeds = [settings.seed + i for i in range(runs)]
    try:
        fits = [fit] + [fit_topics(docs, embeddings, settings.replace(seed=sd))
                        for sd in seeds[1:]]
    except TooLittleData as exc:
        return {"seeds": seeds, "note": f"not measured: another seed found no topic ({exc})"}
    words = [top_words(f.model, settings.top_n_words) for f in fits]
    pairs = [{"seeds": [seeds[i], seeds[j]],
              "ari": round(adjusted_rand(fits[i].topics, fits[j].topics), 6),
              "ari_raw": round(adjusted_rand(fits[i].topics_raw, fits[j].topics_raw), 6),
              "word_overlap": round(topic_word_overlap(words[i], words[j]), 6)}
             for i in range(runs) for j in range(i + 1, runs)]

    def summary(key: str) -> dict[str, float]:
        vals = [p[key] for p in pairs]
        return {"mean": round(float(np.mean(vals)), 6), "min": round(float(np.min(vals)), 6)}

    return {"seeds": seeds, "n_topics": [len(w) for w in words],
            "largest_topic_share": [round(f.largest_share, 6) for f in fits],
            "retried": [len(f.attempts) > 1 for f in fits],
            "collapsed": [f.collapsed for f in fits],
            "ari": summary("ari"), "ari_raw": summary("ari_raw"),
            "word_overlap": summary("word_overlap"), "pairs": pairs,
            "note": "each seed runs the whole procedure (size rule, collapse retries); adjusted "
                    "Rand index of the document assignments (1 = identical, 0 = chance); "
                    "word_overlap: mean best-match Jaccard of the topics' top words, both ways"}


def top_words(model: Any, n: int | None = None) -> dict[int, list[str]]:
    """Topic id -> its top words (outliers excluded), in c-TF-IDF order."""
    out: dict[int, list[str]] = {}
    for t, words in sorted(model.get_topics().items()):
        if t == OUTLIER:
            continue
        ws = [w for w, _ in words if w]
        out[int(t)] = ws[:n] if n else ws
    return out


QUALITY_KEYS = ("outlier_share_raw", "outlier_share", "outliers", "largest_topic_share", "diversity",
                "coherence_npmi", "coherence_npmi_reference_docs",
                "coherence_npmi_sensitivity")  # null without a fit


def quality(fit: TopicFit, docs: Sequence[str], settings: TopicsSettings,
            reference: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[int, float]]:
    """Comparable numbers for one fit (rounded: identical runs give identical bytes), and the
    NPMI coherence of each topic over ``reference`` (the stage: every customer opening; None: the
    modelled ``docs``), with a sensitivity table of two alternatives."""
    words = top_words(fit.model, settings.top_n_words)
    ref = list(docs) if reference is None else list(reference)
    kw: dict[str, Any] = {"token_pattern": settings.token_pattern,
                          "ngram_max": settings.ngram_max, "epsilon": settings.npmi_epsilon}
    coherence, per_topic = npmi_coherence(words, ref, **kw)
    raw_out, out = fit.topics_raw == OUTLIER, fit.topics == OUTLIER
    return {
        "docs": len(fit.topics),
        "n_topics": len(words),
        "outlier_share_raw": round(float(raw_out.mean()), 6),
        "outlier_share": round(float(out.mean()), 6),
        "outliers": {"strategy": settings.outliers_strategy, "raw": int(raw_out.sum()),
                     "reassigned": int((raw_out & ~out).sum()), "kept_apart": int(out.sum())},
        "largest_topic_share": round(fit.largest_share, 6),
        "diversity": round(topic_diversity(words), 6),
        "coherence_npmi": round(coherence, 6),
        "coherence_npmi_reference_docs": len(ref),
        "coherence_npmi_sensitivity": {
            "unseen_pairs_as_minus_one": round(npmi_coherence(words, ref, unseen="minus_one",
                                                              **kw)[0], 6),
            "reference_modelled_docs_only": round(npmi_coherence(words, list(docs), **kw)[0], 6),
        },
    }, per_topic


def collapse_report(fit: TopicFit, settings: TopicsSettings) -> dict[str, Any]:
    """The collapse check of the kept fit, every attempt, and a warning when all collapsed."""
    warning = None
    if fit.collapsed:
        warning = (f"every attempt left more than {settings.collapse_share:.0%} of the documents in "
                   f"one topic (kept: {fit.largest_share:.1%}): the topics say little; try other "
                   "embeddings or lower topics.min_cluster_size")
        log.warning("topics collapsed: %s", warning)
    return {"threshold": settings.collapse_share, "collapsed": fit.collapsed,
            "retried": len(fit.attempts) > 1, "attempts": fit.attempts, "warning": warning}
