"""Stage ``topics``: BERTopic topics of customer openings, offline and reproducible.

BERTopic = embeddings -> UMAP -> HDBSCAN -> c-TF-IDF. The embeddings come precomputed from the
``embed`` stage (``embeddings.npz``), so changing a clustering setting never re-embeds. Every setting
and seed is in ``params.yaml`` (``topics``, :class:`scrm.config.TopicsSettings`); UMAP with a
``random_state`` runs single-threaded, which is what makes two runs give the same topics. Stop words
(English plus ``topics.extra_stop_words``) are removed only in the ``CountVectorizer`` that builds the
topic words: the embedding model still reads whole sentences.

Topic size scales with the input (``topics.size_rule: sqrt``): HDBSCAN's ``min_cluster_size`` is
``max(min_cluster_size, round(size_per_sqrt_doc * sqrt(n)))`` and ``min_samples`` is
``max(min_samples, round(samples_ratio * min_cluster_size))`` for ``n`` documents, so settings that
suit the 1,282 sample openings do not fragment or lump a larger input (:func:`hdbscan_sizes`).

Collapse: a fit whose largest topic holds more than ``topics.collapse_share`` of the documents has
collapsed (on inputs a little unlike the sample, fixed settings once gave 2 topics with 97 % of the
openings in one). It is refitted with leaf cluster selection, then also with halved sizes
(``collapse_retries``); if every attempt collapses, the least collapsed fit is kept and flagged in
the metrics and the report (:func:`fit_topics`).

After clustering, HDBSCAN's outliers (topic -1) are re-assigned to the nearest topic
(``reduce_outliers``) and the topic words are recomputed on the final assignment (``update_topics``);
``outliers_strategy: none`` keeps them apart. The metrics give the raw outlier count and how many
were re-assigned.

Stability: the model is refitted with ``stability_runs`` seeds (seed, seed+1, ...) at the settings
finally used; the metrics give the adjusted Rand index of the document assignments and the overlap
of the topics' top words between every pair of seeds (:func:`stability`).

Coherence: NPMI as in the literature (Bouma 2009), document co-occurrence over the reference corpus
of **all** customer openings, unseen pairs smoothed with ``npmi_epsilon``
(:func:`.topic_tables.npmi_coherence`), with a sensitivity table of two alternatives.

Outputs: ``topics.parquet`` (tweet_id, topic), ``topic_info.parquet`` (size, top words, representative
tweets, coherence, taxonomy label and purity), topic shares per brand and per period, the topic ->
taxonomy mapping (tables and quality numbers: :mod:`.topic_tables`), plotly figures in
``reports/figures/topics/`` (:mod:`.topic_drawing`), quality metrics in ``reports/metrics/topics.json``
(diversity and NPMI coherence, so parameter changes can be compared), and the model (safetensors) in
``models/bertopic`` and MLflow (experiment ``topics``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .. import status
from ..config import TopicsSettings
from ..errors import DataError, TooLittleData
from ..io import write_json, write_parquet
from ..paths import Paths
from .backend import MINILM_NAME
from .embed import EmbeddingCache, load_embeddings
from .topic_drawing import no_figures, write_figures
from .topic_quality import (QUALITY_KEYS, collapse_report, quality, stability,  # noqa: F401
                            top_words)
from .topic_tables import (OUTLIER, npmi_coherence, taxonomy_mapping, topic_diversity,
                           topic_info_frame, topic_shares)

EXPERIMENT = "topics"
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
def stop_words(extra: Sequence[str]) -> list[str]:
    """English stop words plus ``extra`` (params ``topics.extra_stop_words``: Twitter noise), sorted
    (a stable list for the saved model)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(set(ENGLISH_STOP_WORDS) | {w.lower() for w in extra})


def make_vectorizer(settings: TopicsSettings) -> Any:
    """The CountVectorizer of the topic words: the only place stop words are removed."""
    from sklearn.feature_extraction.text import CountVectorizer

    # BERTopic fits it on one joined document per topic, so min_df counts topics, not tweets
    return CountVectorizer(stop_words=stop_words(settings.extra_stop_words),
                           token_pattern=settings.token_pattern, min_df=settings.min_df,
                           ngram_range=(1, settings.ngram_max))


def umap_init(settings: TopicsSettings, n_docs: int) -> str:
    """UMAP's starting layout. ``auto``: spectral (UMAP's default, the better layout) up to
    ``umap_spectral_max_docs`` documents, PCA above: on 100k openings whose neighbour graph falls
    into many components (duplicate and template tweets) the spectral solver ran for over 15 minutes
    on 2 cores, PCA takes seconds."""
    if settings.umap_init == "auto":
        return "spectral" if n_docs <= settings.umap_spectral_max_docs else "pca"
    return settings.umap_init


def build_model(settings: TopicsSettings, n_docs: int) -> Any:
    """A BERTopic with seeded UMAP, HDBSCAN and our vectorizer; no embedding model (precomputed)."""
    from hdbscan import HDBSCAN
    from umap import UMAP

    from ..lean_imports import bertopic
    from ..numba_cache import cache_numba_kernels

    bt = bertopic()  # without PyTorch and transformers: embeddings are precomputed
    cache_numba_kernels()  # UMAP's kernels compiled once per machine (~20 s a process otherwise)
    s = settings
    n_neighbors = max(2, min(s.umap_n_neighbors, n_docs - 1))
    n_components = max(2, min(s.umap_n_components, n_docs - 2))
    umap_model = UMAP(n_neighbors=n_neighbors, n_components=n_components,
                      min_dist=s.umap_min_dist, metric=s.umap_metric,
                      init=umap_init(s, n_docs), random_state=s.seed, n_jobs=1, low_memory=True)
    hdbscan_model = HDBSCAN(min_cluster_size=s.min_cluster_size,
                            min_samples=s.min_samples, metric="euclidean",
                            cluster_selection_method=s.cluster_selection_method,
                            prediction_data=False, core_dist_n_jobs=1)
    return bt.BERTopic(embedding_model=None, umap_model=umap_model, hdbscan_model=hdbscan_model,
                       vectorizer_model=make_vectorizer(s),
                       ctfidf_model=bt.vectorizers.ClassTfidfTransformer(
                           reduce_frequent_words=s.reduce_frequent_words),
                       top_n_words=s.top_n_words, nr_topics=s.nr_topics,
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


def hdbscan_sizes(settings: TopicsSettings, n_docs: int) -> tuple[int, int | None]:
    """(min_cluster_size, min_samples) for ``n_docs`` documents under ``topics.size_rule``: ``fixed``
    keeps the params; ``sqrt`` grows both with the square root of the input, never below them."""
    s = settings
    if s.size_rule == "fixed":
        return s.min_cluster_size, s.min_samples
    mcs = max(s.min_cluster_size, int(round(s.size_per_sqrt_doc * math.sqrt(n_docs))))
    ms = max(s.min_samples or 1, int(round(s.samples_ratio * mcs)))
    return mcs, ms


def retry_ladder(settings: TopicsSettings, n_docs: int) -> list[TopicsSettings]:
    """The settings tried in order: as scaled; then leaf selection; then halved sizes too."""
    mcs, ms = hdbscan_sizes(settings, n_docs)
    base = settings.replace(size_rule="fixed", min_cluster_size=mcs, min_samples=ms)
    ladder = [base, base.replace(cluster_selection_method="leaf"),
              base.replace(cluster_selection_method="leaf", min_cluster_size=max(2, mcs // 2),
                           min_samples=max(1, (ms or mcs) // 2))][:settings.collapse_retries + 1]
    return [s for i, s in enumerate(ladder) if i == 0 or s != ladder[i - 1]]


@dataclass
class TopicFit:
    """A fitted model with the assignment before and after outlier reduction, the settings it was
    fitted with, and every attempt of the collapse ladder."""

    model: Any
    topics_raw: np.ndarray
    topics: np.ndarray
    settings: TopicsSettings | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def largest_share(self) -> float:
        kept = self.topics[self.topics != OUTLIER]
        return float(np.bincount(kept).max() / len(self.topics)) if kept.size else 0.0

    @property
    def collapsed(self) -> bool:
        """The kept fit's largest topic is over ``collapse_share`` (every attempt collapsed)."""
        return any(a["kept"] and a["collapsed"] for a in self.attempts)


def fit_once(docs: list[str], embeddings: np.ndarray, s: TopicsSettings) -> TopicFit:
    """fit_transform on precomputed embeddings with HDBSCAN sizes as given, then reduce_outliers
    and update_topics."""
    model = build_model(s, len(docs))
    with _quiet_bertopic():
        raw, _ = model.fit_transform(docs, embeddings=embeddings)
    raw = np.asarray(raw, dtype=np.int64)
    if (raw == OUTLIER).all():
        raise TooLittleData(f"HDBSCAN found no topic among {len(docs):,} openings with "
                            f"topics.min_cluster_size={s.min_cluster_size}: lower it to find some")
    topics = raw.copy()
    if s.outliers_strategy != "none" and (raw == OUTLIER).any():
        from bertopic.vectorizers import ClassTfidfTransformer

        kwargs: dict[str, Any] = {"embeddings": embeddings} \
            if s.outliers_strategy == "embeddings" else {}
        with _quiet_bertopic():
            topics = np.asarray(model.reduce_outliers(docs, raw.tolist(),
                                                      strategy=s.outliers_strategy,
                                                      threshold=s.outliers_threshold,
                                                      **kwargs), dtype=np.int64)
            model.update_topics(docs, topics=topics.tolist(), top_n_words=s.top_n_words,
                                vectorizer_model=make_vectorizer(s),
                                ctfidf_model=ClassTfidfTransformer(
                                    reduce_frequent_words=s.reduce_frequent_words))
    # centroid topic embeddings of the final assignment (update_topics cannot recompute them
    # without an embedding model); the intertopic map and the saved model use them
    ids = sorted(set(topics.tolist()))
    model.topic_embeddings_ = np.vstack([embeddings[topics == t].mean(axis=0) for t in ids])
    return TopicFit(model=model, topics_raw=raw, topics=topics, settings=s)


def min_docs(settings: TopicsSettings) -> int:
    """Fewest documents a topic fit is tried on: two smallest topics' worth, and at least 10."""
    return max(10, 2 * settings.min_cluster_size)


def fit_topics(docs: Sequence[str], embeddings: np.ndarray, settings: TopicsSettings) -> TopicFit:
    """Fit with HDBSCAN sizes scaled to the input; a collapsed fit is refitted down the
    :func:`retry_ladder`; the first fit that does not collapse is kept (else the least collapsed)."""
    docs = list(docs)
    if len(docs) != len(embeddings):
        raise DataError(f"{len(docs)} documents but {len(embeddings)} embeddings.")
    ladder = retry_ladder(settings, len(docs))
    if len(docs) < min_docs(ladder[0]):
        raise TooLittleData(f"only {len(docs):,} openings with text: too few for topics with "
                            f"topics.min_cluster_size={ladder[0].min_cluster_size} (at least "
                            f"{min_docs(ladder[0]):,} are needed)")
    attempts: list[dict[str, Any]] = []
    fits: list[TopicFit] = []
    for s in ladder:
        try:
            fit = fit_once(docs, embeddings, s)
        except TooLittleData:
            if not fits:
                raise  # the first settings find no topic: the stage says so (skipped)
            break  # a retry finds no topic: keep the fits so far
        fits.append(fit)
        attempts.append({"cluster_selection_method": s.cluster_selection_method,
                         "min_cluster_size": s.min_cluster_size, "min_samples": s.min_samples,
                         "n_topics": len(set(fit.topics.tolist()) - {OUTLIER}),
                         "largest_topic_share": round(fit.largest_share, 6),
                         "collapsed": fit.largest_share > settings.collapse_share})
        if not attempts[-1]["collapsed"]:
            break
    kept = len(fits) - 1 if not attempts[-1]["collapsed"] else \
        int(np.argmin([a["largest_topic_share"] for a in attempts]))
    for i, a in enumerate(attempts):
        a["kept"] = i == kept
    fits[kept].attempts = attempts
    return fits[kept]


def compare_backends(docs: Sequence[str], embeddings: Mapping[str, np.ndarray],
                     settings: TopicsSettings) -> dict[str, dict[str, Any]]:
    """Topic quality of the same documents under each embedding backend, same topic settings."""
    return {name: quality(fit_topics(docs, emb, settings), docs, settings)[0]
            for name, emb in sorted(embeddings.items())}


def topics_over_time(fit: TopicFit, frame: pl.DataFrame, min_docs: int) -> Any:
    """BERTopic's per-period topic words and counts (``frame``: text_clean, topic, period in fit
    order), over the periods holding at least ``min_docs`` openings."""
    sub = (frame.select("text_clean", "topic", "period")
           .filter(pl.len().over("period") >= min_docs))
    if sub.height == 0:
        return None
    with _quiet_bertopic():
        return fit.model.topics_over_time(sub["text_clean"].to_list(),
                                          sub["period"].to_pandas().tolist(),
                                          topics=sub["topic"].to_list())


def clear_model(target: Path) -> Path:
    """No model was fitted: an empty ``target`` folder (DVC's output), no stale model in it."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target


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
def load_inputs(paths: Paths) -> tuple[pl.DataFrame, EmbeddingCache]:
    """Openings of the embedding cache joined to the complaints table, in cache order."""
    src = paths.complaints
    if not paths.embeddings.exists():
        raise status.missing_input(paths, "embed", paths.embeddings)
    cache = load_embeddings(paths.embeddings)
    if not src.exists():
        raise status.missing_input(paths, "complaints", src)
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
                        paths.embeddings)
    return frame.drop("_row"), cache


def reference_corpus(paths: Paths) -> list[str]:
    """The NPMI reference corpus: the cleaned text of every customer opening (not only the modelled
    sample when ``embed.max_docs`` caps it), empty texts left out."""
    return (pl.scan_parquet(paths.complaints).select("text_clean")
            .filter(pl.col("text_clean").str.len_chars() > 0).collect()["text_clean"].to_list())


def _fit_or_reason(paths: Paths, docs: list[str], cache: EmbeddingCache,
                   settings: TopicsSettings) -> tuple[TopicFit | None, dict[str, Any]]:
    """The fit and ``ok``; or no fit and why: ``no_data`` (nothing was embedded, in embed's words)
    or ``skipped`` (too few openings, or HDBSCAN finds no topic)."""
    if not docs:
        return None, status.no_data(status.because(paths, "the embeddings cache is empty",
                                                    "embed"))
    try:
        return fit_topics(docs, cache.vectors, settings), status.ok()
    except TooLittleData as exc:
        return None, status.skipped(str(exc))


def run(paths: Paths, settings: TopicsSettings) -> dict[str, Any]:
    """Fit topics on the cached embeddings and write tables, figures, metrics and the model.

    Without a fit (no openings, too few, no cluster) every table is written empty with its
    columns, the figures and the saved model are removed, and the metrics and the MLflow run say
    why."""
    from .. import tracking
    from ..progress import Phases

    frame, cache = load_inputs(paths)
    docs = frame["text_clean"].to_list()
    phases = Phases("topics", ["fit: UMAP, HDBSCAN, c-TF-IDF, outliers", "stability across seeds",
                               "quality and tables", "figures", "model and MLflow"])
    phases.start("fit: UMAP, HDBSCAN, c-TF-IDF, outliers")
    fit, state = _fit_or_reason(paths, docs, cache, settings)
    phases.start("stability across seeds")
    stable = stability(docs, cache.vectors, fit, settings) if fit else None
    if fit is None:
        frame = frame.head(0)
    assigned = fit.topics if fit else np.zeros(0, dtype=np.int64)
    frame = frame.with_columns(topic=pl.Series(assigned, dtype=pl.Int64),
                               topic_raw=pl.Series(fit.topics_raw if fit else assigned,
                                                   dtype=pl.Int64))
    frame = frame.with_columns(period=pl.col("created_at").dt.truncate(settings.time_every),
                               brand=pl.col("brand").fill_null("(none)"))

    phases.start("quality and tables")
    scores, per_topic = quality(fit, docs, settings, reference_corpus(paths)) if fit else (
        {"docs": len(docs), "n_topics": 0, **dict.fromkeys(QUALITY_KEYS)}, {})
    mapping = taxonomy_mapping(frame)
    vectors = cache.vectors if fit else np.zeros((0, max(cache.vectors.shape[1], 1)))
    info = topic_info_frame(assigned, fit.model.get_topics() if fit else {},
                            frame["text"].to_list(), vectors, mapping, per_topic, settings)
    by_brand = topic_shares(frame, "brand")
    by_time = topic_shares(frame, "period")

    write_parquet(frame.select("tweet_id", "topic", "topic_raw"), paths.topics)
    write_parquet(info, paths.topic_info)
    write_parquet(mapping, paths.topic_taxonomy)
    write_parquet(by_brand, paths.topic_share_brand)
    write_parquet(by_time, paths.topic_share_time)

    phases.start("figures")
    if fit:
        over_time = topics_over_time(fit, frame, settings.time_min_docs)
        figures = write_figures(fit.model, fit.topics, over_time, paths.topic_figures, settings)
    else:
        figures = no_figures(paths.topic_figures, f"no topics: {state['reason']}")

    labelled = mapping.filter(pl.col("topic") != OUTLIER)
    n_lab = int(labelled["n_labelled"].sum())
    majority = (labelled["purity"].fill_null(0) * labelled["n_labelled"]).sum()
    metrics = {
        **state,
        **scores,
        "backend": cache.backend,
        "embedding_model": cache.model,
        "figures": figures,
        "hdbscan": {"size_rule": settings.size_rule,
                    **{k: getattr(fit.settings if fit else settings, k)
                       for k in ("min_cluster_size", "min_samples", "cluster_selection_method")}},
        "collapse": collapse_report(fit, settings) if fit else None,
        "stability": stable or {"note": "off (params topics.stability_runs: 0)" if fit else
                                f"not measured: {state['reason']}"},
        "taxonomy": {
            "labelled_docs": n_lab,
            "weighted_purity": round(float(majority) / n_lab, 6) if n_lab else None,
            "labels_covered": int(labelled["label"].drop_nulls().n_unique()),
        },
    }
    write_json(paths.metric("topics"), metrics)

    phases.start("model and MLflow")
    model_dir = save_model(fit.model, paths.bertopic_model, cache.backend) if fit else \
        clear_model(paths.bertopic_model)
    with tracking.start_run(EXPERIMENT, f"bertopic-{cache.backend}",
                            params={"topics": {k: v for k, v in asdict(settings).items()
                                               if k != "seed"},
                                    "embed_backend": cache.backend,
                                    "embed_model": cache.model},
                            seed=settings.seed,
                            inputs=[paths.complaints, paths.embeddings],
                            tags={"scrm.status": state["status"],
                                  **({"scrm.reason": state["reason"]} if state["reason"] else {})},
                            root=paths.root):
        tracking.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        tracking.log_metrics({"collapsed": (metrics["collapse"] or {}).get("collapsed"),
                              **{f"stability_{k}_mean": v["mean"] for k, v in (stable or {}).items()
                                 if isinstance(v, dict) and "mean" in v}})
        tracking.log_metrics({f"taxonomy_{k}": v for k, v in metrics["taxonomy"].items()})
        for f in sorted(model_dir.iterdir()):
            tracking.log_artifact(f, "bertopic_model")
        tracking.log_dict(metrics, "topics.json")
    phases.finish()
    return metrics
