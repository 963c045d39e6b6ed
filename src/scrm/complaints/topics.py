"""BERTopic topics of customer openings (stage ``topics``), offline and reproducible.

BERTopic = embeddings -> UMAP -> HDBSCAN -> c-TF-IDF. The embeddings come precomputed from the
``embed`` stage (``embeddings.npz``), so changing a clustering setting never re-embeds. Every setting
and seed is in ``params.yaml`` (``topics``); UMAP with a ``random_state`` runs single-threaded, which is
what makes two runs give the same topics. Stop words are removed only in the ``CountVectorizer`` that
builds the topic words: the embedding model still reads whole sentences.

After clustering, HDBSCAN's outliers (topic -1) are re-assigned to the nearest topic
(``reduce_outliers``) and the topic words are recomputed on the final assignment (``update_topics``).

Outputs: ``topics.parquet`` (tweet_id, topic), ``topic_info.parquet`` (size, top words, representative
tweets, coherence, taxonomy label and purity), topic shares per brand and per period, the topic ->
taxonomy mapping, plotly figures in ``reports/figures/topics/``, quality metrics in
``reports/metrics/topics.json`` (diversity and NPMI coherence, so parameter changes can be compared),
and the model (safetensors) in ``models/bertopic`` and MLflow (experiment ``topics``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Paths, section
from ..errors import DataError, ScrmError
from ..io import atomic_path, write_json, write_parquet
from .embeddings import COMPLAINTS_FILE, EMBEDDINGS_FILE, MINILM_NAME, EmbeddingCache, load_embeddings

log = logging.getLogger(__name__)

EXPERIMENT = "topics"
OUTLIER = -1

# Words that are frequent in customer tweets but say nothing about the topic. English stop words
# come from scikit-learn; params.yaml topics.extra_stop_words replaces this list.
TWITTER_NOISE: tuple[str, ...] = (
    "amp", "rt", "dm", "dms", "pls", "plz", "please", "hi", "hey", "hello", "just", "im", "ive",
    "u", "ur", "ya", "yall", "lol", "omg", "smh", "don", "didn", "doesn", "isn", "wasn", "won", "ve",
    "ll", "re", "got", "get", "gets", "getting", "like", "really", "know", "need", "want", "going",
    "gonna", "wanna", "today", "day", "time", "thing", "things", "help", "guys",
)

DEFAULTS: dict[str, Any] = {
    "min_cluster_size": 15,
    "min_samples": 5,
    "cluster_selection_method": "eom",
    "umap_n_neighbors": 15,
    "umap_n_components": 5,
    "umap_min_dist": 0.0,
    "umap_metric": "euclidean",
    "umap_init": "auto",
    "umap_spectral_max_docs": 20000,
    "nr_topics": None,
    "top_n_words": 10,
    "ngram_max": 1,
    "min_df": 1,
    "token_pattern": r"(?u)\b[^\W\d_]{2,}\b",
    "extra_stop_words": list(TWITTER_NOISE),
    "reduce_frequent_words": True,
    "outliers_strategy": "embeddings",
    "outliers_threshold": 0.0,
    "n_representative": 3,
    "time_every": "1w",
    "time_min_docs": 5,
    "barchart_topics": 12,
    "barchart_words": 6,
}


def settings(params: dict[str, Any]) -> dict[str, Any]:
    """The ``topics`` section over the defaults, with the global seed folded in."""
    sec = section(params, "topics")
    cfg = {**DEFAULTS, **sec}
    if cfg["extra_stop_words"] is None:
        cfg["extra_stop_words"] = []
    if cfg["outliers_strategy"] not in ("embeddings", "c-tf-idf", "none"):
        raise ScrmError(f"params.yaml topics.outliers_strategy={cfg['outliers_strategy']!r}: choose "
                        "embeddings, c-tf-idf or none.")
    return cfg


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
def stop_words(extra: Sequence[str] = TWITTER_NOISE) -> list[str]:
    """English stop words plus Twitter noise, sorted (a stable list for the saved model)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(set(ENGLISH_STOP_WORDS) | {w.lower() for w in extra})


def make_vectorizer(cfg: Mapping[str, Any]) -> Any:
    """The CountVectorizer of the topic words: the only place stop words are removed."""
    from sklearn.feature_extraction.text import CountVectorizer

    # BERTopic fits it on one joined document per topic, so min_df counts topics, not tweets
    return CountVectorizer(stop_words=stop_words(cfg["extra_stop_words"]),
                           token_pattern=cfg["token_pattern"], min_df=int(cfg["min_df"]),
                           ngram_range=(1, int(cfg["ngram_max"])))


def umap_init(cfg: Mapping[str, Any], n_docs: int) -> str:
    """UMAP's starting layout. ``auto``: spectral (UMAP's default, the better layout) up to
    ``umap_spectral_max_docs`` documents, PCA above: on 100k openings whose neighbour graph falls
    into many components (duplicate and template tweets) the spectral solver ran for over 15 minutes
    on 2 cores, PCA takes seconds."""
    init = str(cfg["umap_init"])
    if init == "auto":
        return "spectral" if n_docs <= int(cfg["umap_spectral_max_docs"]) else "pca"
    return init


def build_model(cfg: Mapping[str, Any], n_docs: int) -> Any:
    """A BERTopic with seeded UMAP, HDBSCAN and our vectorizer; no embedding model (precomputed)."""
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from hdbscan import HDBSCAN
    from umap import UMAP

    seed = int(cfg["seed"])
    init = umap_init(cfg, n_docs)
    n_neighbors = max(2, min(int(cfg["umap_n_neighbors"]), n_docs - 1))
    n_components = max(2, min(int(cfg["umap_n_components"]), n_docs - 2))
    umap_model = UMAP(n_neighbors=n_neighbors, n_components=n_components,
                      min_dist=float(cfg["umap_min_dist"]), metric=cfg["umap_metric"],
                      init=init, random_state=seed, n_jobs=1, low_memory=True)
    hdbscan_model = HDBSCAN(min_cluster_size=int(cfg["min_cluster_size"]),
                            min_samples=cfg["min_samples"], metric="euclidean",
                            cluster_selection_method=cfg["cluster_selection_method"],
                            prediction_data=False, core_dist_n_jobs=1)
    return BERTopic(embedding_model=None, umap_model=umap_model, hdbscan_model=hdbscan_model,
                    vectorizer_model=make_vectorizer(cfg),
                    ctfidf_model=ClassTfidfTransformer(
                        reduce_frequent_words=bool(cfg["reduce_frequent_words"])),
                    top_n_words=int(cfg["top_n_words"]), nr_topics=cfg["nr_topics"],
                    calculate_probabilities=False, low_memory=True, verbose=False)


@contextlib.contextmanager
def _quiet_bertopic() -> Iterator[None]:
    """BERTopic warns on every custom topic list we pass on purpose; keep real errors only."""
    lg = logging.getLogger("BERTopic")
    old = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(old)


@dataclass
class TopicFit:
    """A fitted model with the assignment before and after outlier reduction."""

    model: Any
    topics_raw: np.ndarray
    topics: np.ndarray


def fit_topics(docs: Sequence[str], embeddings: np.ndarray, cfg: Mapping[str, Any]) -> TopicFit:
    """fit_transform on precomputed embeddings, then reduce_outliers and update_topics."""
    docs = list(docs)
    if len(docs) != len(embeddings):
        raise DataError(f"{len(docs)} documents but {len(embeddings)} embeddings.")
    if len(docs) < max(10, 2 * int(cfg["min_cluster_size"])):
        raise DataError(f"only {len(docs)} documents: too few for topics with "
                        f"min_cluster_size={cfg['min_cluster_size']}.")
    model = build_model(cfg, len(docs))
    with _quiet_bertopic():
        raw, _ = model.fit_transform(docs, embeddings=embeddings)
    raw = np.asarray(raw, dtype=np.int64)
    if (raw == OUTLIER).all():
        raise DataError(f"HDBSCAN found no topic among {len(docs)} documents with "
                        f"min_cluster_size={cfg['min_cluster_size']}: lower topics.min_cluster_size.")
    topics = raw.copy()
    if cfg["outliers_strategy"] != "none" and (raw == OUTLIER).any():
        from bertopic.vectorizers import ClassTfidfTransformer

        kwargs: dict[str, Any] = {"embeddings": embeddings} \
            if cfg["outliers_strategy"] == "embeddings" else {}
        with _quiet_bertopic():
            topics = np.asarray(model.reduce_outliers(docs, raw.tolist(),
                                                      strategy=cfg["outliers_strategy"],
                                                      threshold=float(cfg["outliers_threshold"]),
                                                      **kwargs), dtype=np.int64)
            model.update_topics(docs, topics=topics.tolist(), top_n_words=int(cfg["top_n_words"]),
                                vectorizer_model=make_vectorizer(cfg),
                                ctfidf_model=ClassTfidfTransformer(
                                    reduce_frequent_words=bool(cfg["reduce_frequent_words"])))
    # centroid topic embeddings of the final assignment (update_topics cannot recompute them
    # without an embedding model); the intertopic map and the saved model use them
    ids = sorted(set(topics.tolist()))
    model.topic_embeddings_ = np.vstack([embeddings[topics == t].mean(axis=0) for t in ids])
    return TopicFit(model=model, topics_raw=raw, topics=topics)


def top_words(model: Any, n: int | None = None) -> dict[int, list[str]]:
    """Topic id -> its top words (outliers excluded), in c-TF-IDF order."""
    out: dict[int, list[str]] = {}
    for t, words in sorted(model.get_topics().items()):
        if t == OUTLIER:
            continue
        ws = [w for w, _ in words if w]
        out[int(t)] = ws[:n] if n else ws
    return out


# --------------------------------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------------------------------
def topic_diversity(topic_words: Mapping[int, Sequence[str]]) -> float:
    """Share of unique words among all topics' top words (Dieng et al. 2020): 1 = no word shared
    between topics, low = topics repeat each other."""
    words = [w for ws in topic_words.values() for w in ws]
    return len(set(words)) / len(words) if words else 0.0


def npmi_coherence(topic_words: Mapping[int, Sequence[str]], docs: Sequence[str], *,
                   token_pattern: str = DEFAULTS["token_pattern"],
                   ngram_max: int = 1) -> tuple[float, dict[int, float]]:
    """Mean NPMI of each topic's word pairs, from document co-occurrence in ``docs``.

    NPMI(a, b) = log(p(a, b) / (p(a) p(b))) / -log p(a, b), with p the share of documents holding
    the word(s): 1 = the words always appear together, 0 = independent, -1 = never together
    (also used when a pair never co-occurs). Returns (mean over topics, per-topic value).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = sorted({w for ws in topic_words.values() for w in ws})
    if not vocab or not docs:
        return 0.0, {}
    cv = CountVectorizer(vocabulary=vocab, binary=True, token_pattern=token_pattern,
                         ngram_range=(1, int(ngram_max)))
    X = cv.transform(list(docs)).astype(np.float64)
    n_docs = X.shape[0]
    p = np.asarray(X.sum(axis=0)).ravel() / n_docs
    joint = (X.T @ X).toarray() / n_docs
    index = {w: i for i, w in enumerate(vocab)}
    per_topic: dict[int, float] = {}
    for t, ws in topic_words.items():
        idx = [index[w] for w in ws]
        vals = []
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                i, j = idx[a], idx[b]
                pij = joint[i, j]
                if pij <= 0.0:
                    vals.append(-1.0)
                elif pij >= 1.0:
                    vals.append(1.0)
                else:
                    vals.append(math.log(pij / (p[i] * p[j])) / -math.log(pij))
        if vals:
            per_topic[int(t)] = float(np.mean(vals))
    mean = float(np.mean(list(per_topic.values()))) if per_topic else 0.0
    return mean, per_topic


def quality(fit: TopicFit, docs: Sequence[str],
            cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[int, float]]:
    """Comparable numbers for one fit (rounded: identical runs give identical bytes), and the
    NPMI coherence of each topic."""
    words = top_words(fit.model, int(cfg["top_n_words"]))
    coherence, per_topic = npmi_coherence(words, docs, token_pattern=cfg["token_pattern"],
                                  ngram_max=int(cfg["ngram_max"]))
    n = len(fit.topics)
    sizes = np.bincount(fit.topics[fit.topics != OUTLIER]) if (fit.topics != OUTLIER).any() \
        else np.zeros(1)
    return {
        "docs": n,
        "n_topics": len(words),
        "outlier_share_raw": round(float((fit.topics_raw == OUTLIER).mean()), 6),
        "outlier_share": round(float((fit.topics == OUTLIER).mean()), 6),
        "largest_topic_share": round(float(sizes.max() / n), 6),
        "diversity": round(topic_diversity(words), 6),
        "coherence_npmi": round(coherence, 6),
    }, per_topic


def compare_backends(docs: Sequence[str], embeddings: Mapping[str, np.ndarray],
                     cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Topic quality of the same documents under each embedding backend, same topic settings."""
    return {name: quality(fit_topics(docs, emb, cfg), docs, cfg)[0]
            for name, emb in sorted(embeddings.items())}


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


def taxonomy_mapping(frame: Any) -> Any:
    """Topic -> majority taxonomy ``label`` among its labelled openings, with the purity (share of
    labelled openings holding that label); ties go to the alphabetically first label."""
    import polars as pl

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


def topic_shares(frame: Any, by: str) -> Any:
    """Share of each topic within each value of ``by`` (brand or period)."""
    import polars as pl

    return (frame.group_by(by, "topic").len("n")
            .with_columns(share=(pl.col("n") / pl.col("n").sum().over(by)).round(6))
            .sort([by, "topic"]))


def topic_info_frame(fit: TopicFit, texts: Sequence[str], embeddings: np.ndarray,
                     mapping: Any, per_topic_npmi: Mapping[int, float],
                     cfg: Mapping[str, Any]) -> Any:
    import polars as pl

    topics = fit.topics
    reps = representative_docs(texts, embeddings, topics, int(cfg["n_representative"]))
    rep_all = fit.model.get_topics()
    ids = sorted(set(topics.tolist()))
    sizes = {t: int((topics == t).sum()) for t in ids}
    n_words = int(cfg["top_n_words"])
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
    info = pl.DataFrame(rows, schema_overrides={"topic": pl.Int64, "size": pl.Int64,
                                                "coherence_npmi": pl.Float64})
    return info.join(mapping.select("topic", "label", "purity", "n_labelled"), on="topic",
                     how="left").sort("topic")


# --------------------------------------------------------------------------------------------------
# figures and model
# --------------------------------------------------------------------------------------------------
def _write_html(fig: Any, target: Path) -> None:
    """Standalone HTML (plotly.js inline): opens offline, like the rest of the report."""
    with atomic_path(target) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)


def write_figures(fit: TopicFit, over_time: Any, out_dir: Path,
                  cfg: Mapping[str, Any]) -> dict[str, str]:
    """Intertopic map, barchart and topics over time; a figure that cannot be drawn (the
    intertopic map needs several topics) is recorded with the reason instead of failing the stage."""
    out_dir.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    model = fit.model
    n_topics = len([t for t in set(fit.topics.tolist()) if t != OUTLIER])
    jobs = {
        "intertopic_map": lambda: model.visualize_topics(),
        "barchart": lambda: model.visualize_barchart(top_n_topics=int(cfg["barchart_topics"]),
                                                     n_words=int(cfg["barchart_words"])),
        "topics_over_time": lambda: model.visualize_topics_over_time(
            over_time, top_n_topics=int(cfg["barchart_topics"])),
    }
    for name, make in jobs.items():
        target = out_dir / f"{name}.html"
        try:
            if name == "intertopic_map" and n_topics < 3:
                raise ValueError(f"needs at least 3 topics, found {n_topics}")
            if name == "topics_over_time" and (over_time is None or len(over_time) == 0):
                raise ValueError(f"no period holds {cfg['time_min_docs']} or more openings")
            _write_html(make(), target)
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a missing figure must not lose the topics
            target.unlink(missing_ok=True)
            status[name] = f"skipped: {type(exc).__name__}: {str(exc)[:200]}"
            log.warning("topics figure %s skipped: %s", name, exc)
    return status


def topics_over_time(fit: TopicFit, frame: Any, min_docs: int) -> Any:
    """BERTopic's per-period topic words and counts (``frame``: text_clean, topic, period in fit
    order), over the periods holding at least ``min_docs`` openings."""
    import polars as pl

    sub = (frame.select("text_clean", "topic", "period")
           .filter(pl.len().over("period") >= int(min_docs)))
    if sub.height == 0:
        return None
    with _quiet_bertopic():
        return fit.model.topics_over_time(sub["text_clean"].to_list(),
                                          sub["period"].to_pandas().tolist(),
                                          topics=sub["topic"].to_list())


def save_model(model: Any, target: Path, backend: str) -> Path:
    """BERTopic's safetensors format (no pickle) into ``target``, replaced as a whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-" + target.name + ".", dir=target.parent))
    try:
        with _quiet_bertopic():
            # a model name, not the weights: reload with embedding_model=load_minilm() (offline)
            model.save(str(tmp), serialization="safetensors", save_ctfidf=True,
                       save_embedding_model=MINILM_NAME if backend == "minilm" else False)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def load_inputs(paths: Paths) -> tuple[Any, EmbeddingCache]:
    """Openings of the embedding cache joined to the complaints table, in cache order."""
    import polars as pl

    src = paths.processed / COMPLAINTS_FILE
    cache = load_embeddings(paths.processed / EMBEDDINGS_FILE)
    if not src.exists():
        raise DataError("complaints table not found: run `scrm complaints` first.", src)
    need = ["tweet_id", "brand", "created_at", "text", "text_clean", "label"]
    have = pl.read_parquet_schema(src)
    missing = [c for c in need if c not in have]
    if missing:
        raise DataError(f"missing column(s) {missing} (complaints contract).", src)
    ids = pl.DataFrame({"tweet_id": cache.ids.astype(np.int64), "_row": np.arange(len(cache.ids))})
    frame = (ids.lazy().join(pl.scan_parquet(src).select(need), on="tweet_id", how="left")
             .sort("_row").collect())
    lost = frame.filter(pl.col("text_clean").is_null())
    if lost.height:
        raise DataError(f"{lost.height} embedded opening(s) are not in the complaints table (first "
                        f"tweet_id {lost['tweet_id'][0]}): the cache is stale, rerun `scrm embed`.",
                        paths.processed / EMBEDDINGS_FILE)
    return frame.drop("_row"), cache


def run(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Fit topics on the cached embeddings and write tables, figures, metrics and the model."""
    import polars as pl

    from .. import tracking

    cfg = settings(params)
    frame, cache = load_inputs(paths)
    docs = frame["text_clean"].to_list()
    fit = fit_topics(docs, cache.vectors, cfg)
    frame = frame.with_columns(topic=pl.Series(fit.topics), topic_raw=pl.Series(fit.topics_raw))
    frame = frame.with_columns(period=pl.col("created_at").dt.truncate(cfg["time_every"]),
                               brand=pl.col("brand").fill_null("(none)"))

    scores, per_topic = quality(fit, docs, cfg)
    mapping = taxonomy_mapping(frame)
    info = topic_info_frame(fit, frame["text"].to_list(), cache.vectors, mapping, per_topic, cfg)
    by_brand = topic_shares(frame, "brand")
    by_time = topic_shares(frame, "period")

    out = paths.processed
    write_parquet(frame.select("tweet_id", "topic", "topic_raw"), out / "topics.parquet")
    write_parquet(info, out / "topic_info.parquet")
    write_parquet(mapping, out / "topic_taxonomy.parquet")
    write_parquet(by_brand, out / "topic_share_brand.parquet")
    write_parquet(by_time, out / "topic_share_time.parquet")

    over_time = topics_over_time(fit, frame, int(cfg["time_min_docs"]))
    figures = write_figures(fit, over_time, paths.figures / "topics", cfg)

    labelled = mapping.filter(pl.col("topic") != OUTLIER)
    n_lab = int(labelled["n_labelled"].sum())
    majority = (labelled["purity"].fill_null(0) * labelled["n_labelled"]).sum()
    metrics = {
        **scores,
        "backend": cache.backend,
        "embedding_model": cache.model,
        "figures": figures,
        "taxonomy": {
            "labelled_docs": n_lab,
            "weighted_purity": round(float(majority) / n_lab, 6) if n_lab else None,
            "labels_covered": int(labelled["label"].drop_nulls().n_unique()),
        },
    }
    write_json(paths.metrics / "topics.json", metrics)

    model_dir = save_model(fit.model, paths.models / "bertopic", cache.backend)
    with tracking.start_run(EXPERIMENT, f"bertopic-{cache.backend}",
                            params={"topics": {k: v for k, v in cfg.items() if k != "seed"},
                                    "embed_backend": cache.backend,
                                    "embed_model": cache.model},
                            seed=int(cfg["seed"]),
                            inputs=[paths.processed / COMPLAINTS_FILE,
                                    paths.processed / EMBEDDINGS_FILE],
                            root=paths.root):
        tracking.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        tracking.log_metrics({f"taxonomy_{k}": v for k, v in metrics["taxonomy"].items()})
        for f in sorted(model_dir.iterdir()):
            tracking.log_artifact(f, "bertopic_model")
        tracking.log_dict(metrics, "topics.json")
    return metrics
