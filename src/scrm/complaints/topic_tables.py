"""Tables and quality numbers of a topic assignment: pure numpy/polars, no BERTopic.

:mod:`scrm.complaints.topics` fits the model; this module turns its assignment into what the stage
writes and compares: representative tweets, the topic -> taxonomy mapping, topic shares per brand and
period, the ``topic_info`` table, topic diversity and NPMI coherence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from ..config import TopicsSettings
from ..data.schema import typed_frame

OUTLIER = -1  # HDBSCAN's topic id of documents in no cluster
TOPIC_INFO_SCHEMA: dict[str, pl.DataType] = {
    "topic": pl.Int64(), "size": pl.Int64(), "share": pl.Float64(), "name": pl.String(),
    "top_words": pl.List(pl.String()), "word_scores": pl.List(pl.Float64()),
    "representative_tweets": pl.List(pl.String()), "coherence_npmi": pl.Float64()}


# --------------------------------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------------------------------
def topic_diversity(topic_words: Mapping[int, Sequence[str]]) -> float:
    """Share of unique words among all topics' top words (Dieng et al. 2020): 1 = no word shared
    between topics, low = topics repeat each other."""
    words = [w for ws in topic_words.values() for w in ws]
    return len(set(words)) / len(words) if words else 0.0


def npmi_coherence(topic_words: Mapping[int, Sequence[str]], reference: Sequence[str], *,
                   token_pattern: str, ngram_max: int, epsilon: float,
                   unseen: str = "smooth") -> tuple[float, dict[int, float]]:
    """Mean NPMI of each topic's word pairs (Bouma 2009), from co-occurrence in the ``reference``
    corpus (the stage passes every customer opening; one opening is one context).

    p(w) and p(a, b) are the shares of reference documents holding the word(s);
    NPMI(a, b) = log((p(a, b) + eps) / (p(a) p(b))) / -log(p(a, b) + eps), the smoothed form of
    gensim's / OCTIS's ``c_npmi`` that the BERTopic literature reports: 1 = always together,
    0 = independent, below 0 = less often than chance. A pair never seen together scores
    log(eps / (p(a) p(b))) / -log(eps), close to -1 but higher for rare words; ``unseen="minus_one"``
    scores it exactly -1 instead (a sensitivity check, the old convention). A pair present in every
    document scores 1; a pair with a word absent from the reference is left out. Documents are
    prepared and tokenised like the topic words: BERTopic keeps only ``[A-Za-z0-9 ]`` before its
    vectorizer ("don't" becomes the topic word "dont"), then ``token_pattern`` and ``ngram_max``.
    Returns (mean over topics, per-topic value).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = sorted({w for ws in topic_words.values() for w in ws})
    if not vocab or not reference:
        return 0.0, {}
    cv = CountVectorizer(vocabulary=vocab, binary=True, token_pattern=token_pattern,
                         ngram_range=(1, int(ngram_max)))
    prepared = (pl.Series(list(reference), dtype=pl.String).str.replace_all(r"[\n\t]", " ")
                .str.replace_all(r"[^A-Za-z0-9 ]+", ""))
    X = cv.transform(prepared.to_list()).astype(np.float64)
    n_docs = X.shape[0]
    p = np.asarray(X.sum(axis=0)).ravel() / n_docs
    joint = (X.T @ X).toarray() / n_docs
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.log((joint + epsilon) / np.outer(p, p)) / -np.log(joint + epsilon)
    npmi[joint >= 1.0] = 1.0
    if unseen == "minus_one":
        npmi[joint <= 0.0] = -1.0
    npmi[(p[:, None] <= 0) | (p[None, :] <= 0)] = np.nan
    index = {w: i for i, w in enumerate(vocab)}
    per_topic: dict[int, float] = {}
    for t, ws in topic_words.items():
        idx = np.array([index[w] for w in ws])
        a, b = np.triu_indices(len(idx), k=1)
        vals = npmi[idx[a], idx[b]]
        vals = vals[np.isfinite(vals)]
        if vals.size:
            per_topic[int(t)] = float(vals.mean())
    mean = float(np.mean(list(per_topic.values()))) if per_topic else 0.0
    return mean, per_topic


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def representative_docs(texts: Sequence[str], embeddings: np.ndarray, topics: np.ndarray,
                        n: int) -> dict[int, list[str]]:
    """The ``n`` distinct texts closest (cosine) to each topic's centroid: the tweets a reader
    should see to understand the topic."""
    texts_arr = np.asarray(list(texts), dtype=object)
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    out: dict[int, list[str]] = {}
    for t in sorted(set(topics.tolist())):
        rows = np.flatnonzero(topics == t)
        centroid = unit[rows].mean(axis=0)
        sims = unit[rows] @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))
        order = rows[np.lexsort((rows, -np.round(sims, 6)))]  # ties -> lower row first
        picked: list[str] = []
        for r in order:
            txt = str(texts_arr[r])
            if txt not in picked:
                picked.append(txt)
            if len(picked) == n:
                break
        out[int(t)] = picked
    return out


def taxonomy_mapping(frame: pl.DataFrame) -> pl.DataFrame:
    """Topic -> majority taxonomy ``label`` among its labelled openings, with the purity (share of
    labelled openings holding that label); ties go to the alphabetically first label."""
    counts = (frame.filter(pl.col("label").is_not_null())
              .group_by("topic", "label").len("n")
              .sort(["topic", "n", "label"], descending=[False, True, False]))
    labelled = counts.group_by("topic").agg(pl.col("n").sum().alias("n_labelled"))
    top = counts.group_by("topic", maintain_order=True).first()
    sizes = frame.group_by("topic").len("n_docs")
    return (sizes.join(labelled, on="topic", how="left").join(top, on="topic", how="left")
            .with_columns(pl.col("n_labelled").fill_null(0),
                          purity=(pl.col("n") / pl.col("n_labelled")).round(6))
            .drop("n").sort("topic"))


def topic_shares(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    """Share of each topic within each value of ``by`` (brand or period)."""
    return (frame.group_by(by, "topic").len("n")
            .with_columns(share=(pl.col("n") / pl.col("n").sum().over(by)).round(6))
            .sort([by, "topic"]))


def topic_info_frame(topics: np.ndarray, topic_words: Mapping[int, Sequence[tuple[str, float]]],
                     texts: Sequence[str], embeddings: np.ndarray, mapping: pl.DataFrame,
                     per_topic_npmi: Mapping[int, float], settings: TopicsSettings) -> pl.DataFrame:
    """One row per topic: size, share, name, top words with their c-TF-IDF scores, representative
    tweets, NPMI coherence and the taxonomy label with its purity.

    ``topic_words`` is BERTopic's ``get_topics()`` (topic -> (word, score) pairs, best first).
    """
    reps = representative_docs(texts, embeddings, topics, settings.n_representative)
    rep_all = topic_words
    ids = sorted(set(topics.tolist()))
    sizes = {t: int((topics == t).sum()) for t in ids}
    n_words = settings.top_n_words
    rows = []
    for t in ids:
        pairs = [(w, s) for w, s in rep_all.get(t, []) if w][:n_words]
        rows.append({
            "topic": t,
            "size": sizes[t],
            "share": round(sizes[t] / len(topics), 6),
            "name": f"{t}_" + "_".join(w for w, _ in pairs[:4]),
            "top_words": [w for w, _ in pairs],
            "word_scores": [round(float(s), 6) for _, s in pairs],
            "representative_tweets": reps.get(t, []),
            "coherence_npmi": round(per_topic_npmi[t], 6) if t in per_topic_npmi else None,
        })
    info = typed_frame(rows, TOPIC_INFO_SCHEMA)
    return info.join(mapping.select("topic", "label", "purity", "n_labelled"), on="topic",
                     how="left").sort("topic")
