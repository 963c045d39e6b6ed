"""Topics stage: BERTopic on the real sample (sklearn embeddings), reproducibility, quality metrics
on hand-made cases with known answers, taxonomy mapping and the saved outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from scrm.complaints import embed as E
from scrm.complaints import topic_tables as TT
from scrm.complaints import topics as T
from scrm.complaints.topic_drawing import write_figures
from scrm.config import Paths, TopicsSettings, load_params, load_settings
from scrm.errors import DataError
from scrm.text import clean_for_topics

from conftest import make_root

# crude keyword labels standing in for the weak labels (only their join and majority are tested)
RULES = [("order & delivery", r"(?i)\b(order|deliver\w*|package)\b"),
         ("travel disruption", r"(?i)\b(flight|delay\w*|luggage|bag)\b"),
         ("billing & refunds", r"(?i)\b(refund|bill|charged?)\b")]


def write_complaints(src: Paths, dst: Paths) -> pl.DataFrame:
    """complaints.parquet with the contract's columns, built from the real sample's openings."""
    label = pl.lit(None, dtype=pl.String)
    for name, rx in reversed(RULES):
        label = pl.when(pl.col("opening_text").str.contains(rx)).then(pl.lit(name)).otherwise(label)
    frame = (pl.read_parquet(src.threads).filter(pl.col("is_opening"))
             .select(pl.col("opening_tweet_id").alias("tweet_id"), "thread_id", "brand",
                     "customer_id", pl.col("opening_at").alias("created_at"),
                     pl.col("opening_text").alias("text"),
                     clean_for_topics("opening_text").alias("text_clean"),
                     label.alias("weak_label"))
             .with_columns(label=pl.col("weak_label"), gold_label=pl.lit(None, dtype=pl.String)))
    frame.write_parquet(dst.complaints)
    return frame


@pytest.fixture(scope="module")
def topics_run(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Paths, TopicsSettings, dict[str, Any]]:
    """embed (tfidf_svd) + topics once on the real sample in a fresh root."""
    paths = make_root(tmp_path_factory.mktemp("topics"))
    write_complaints(prepared_root, paths)
    params = load_params(paths.root)
    params["embed"] = {**params["embed"], "backend": "tfidf_svd", "progress": False}
    (paths.root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    settings = load_settings(paths.root)
    E.run(paths, settings.embed)
    metrics = T.run(paths, settings.topics)
    return paths, settings.topics, metrics


# ---- BERTopic on the sample ----------------------------------------------------------------------
def test_same_seed_gives_the_same_topics_twice(topics_run: tuple[Paths, TopicsSettings, dict]
                                               ) -> None:
    paths, cfg, metrics = topics_run
    frame, cache = T.load_inputs(paths)
    again = T.fit_topics(frame["text_clean"].to_list(), cache.vectors, cfg)
    saved = pl.read_parquet(paths.topics)
    assert saved["tweet_id"].to_list() == cache.ids.tolist()
    assert np.array_equal(again.topics, saved["topic"].to_numpy())
    assert np.array_equal(again.topics_raw, saved["topic_raw"].to_numpy())
    info = pl.read_parquet(paths.topic_info)
    assert T.top_words(again.model, cfg.top_n_words) == {
        r["topic"]: r["top_words"] for r in info.iter_rows(named=True) if r["topic"] != -1}
    assert T.quality(again, frame["text_clean"].to_list(), cfg,
                     T.reference_corpus(paths))[0]["coherence_npmi"] == metrics["coherence_npmi"]


def test_topics_stage_outputs(topics_run: tuple[Paths, TopicsSettings, dict]) -> None:
    paths, cfg, m = topics_run
    topics = pl.read_parquet(paths.topics)
    info = pl.read_parquet(paths.topic_info)
    # real structure found on the sample, outliers re-assigned after HDBSCAN
    assert m["docs"] == topics.height > 1200 and m["n_topics"] >= 3
    assert m["outlier_share_raw"] > m["outlier_share"]
    assert set(topics["topic"].unique().to_list()) == set(info["topic"].to_list())
    assert info["size"].sum() == topics.height
    assert info.filter(pl.col("topic") != -1)["top_words"].list.len().min() >= 3
    stops = set(T.stop_words(cfg.extra_stop_words))
    assert not stops & {w for ws in info["top_words"].to_list() for w in ws}
    assert info["representative_tweets"].list.len().min() >= 1
    assert 0 < m["diversity"] <= 1 and -1 <= m["coherence_npmi"] <= 1
    # taxonomy mapping: majority label and purity from complaints.parquet
    tax = pl.read_parquet(paths.topic_taxonomy)
    assert tax.filter(pl.col("purity").is_not_null())["purity"].is_between(0, 1).all()
    assert m["taxonomy"]["labelled_docs"] > 0 and 0 < m["taxonomy"]["weighted_purity"] <= 1
    # shares sum to one per brand and per period
    for path, by in ((paths.topic_share_brand, "brand"), (paths.topic_share_time, "period")):
        share = pl.read_parquet(path)
        sums = share.group_by(by).agg(pl.col("share").sum())["share"]
        assert ((sums - 1).abs() < 1e-5).all()
    # metrics file is the returned dict, deterministic JSON
    assert json.loads(paths.metric("topics").read_text()) == json.loads(json.dumps(m))
    # figures written or their absence recorded with a reason
    for name, status in m["figures"].items():
        html = paths.topic_figures / f"{name}.html"
        assert (status == "ok") == html.exists()
        assert status == "ok" or status.startswith("skipped: ")
    assert m["figures"]["barchart"] == "ok"


def test_model_is_saved_as_safetensors_and_logged(topics_run: tuple[Paths, TopicsSettings, dict]
                                                  ) -> None:
    from bertopic import BERTopic

    from scrm import tracking

    paths, _, m = topics_run
    model_dir = paths.bertopic_model
    assert (model_dir / "topic_embeddings.safetensors").exists()
    assert (model_dir / "ctfidf.safetensors").exists()
    assert not list(model_dir.glob("*.pkl")) and not list(model_dir.glob("*.bin"))
    loaded = BERTopic.load(str(model_dir))
    assert len([t for t in loaded.get_topics() if t != -1]) == m["n_topics"]
    runs = tracking.list_runs("topics", paths.root)
    assert len(runs) == 1 and runs.iloc[0]["metrics.n_topics"] == m["n_topics"]
    assert runs.iloc[0]["params.embed_backend"] == "tfidf_svd"
    art = Path(runs.iloc[0]["artifact_uri"].removeprefix("file://")) / "bertopic_model"
    assert (art / "ctfidf.safetensors").exists()


def test_stale_embeddings_are_refused(topics_run: tuple[Paths, TopicsSettings, dict],
                                      tmp_path: Path) -> None:
    paths, _, _ = topics_run
    other = make_root(tmp_path)
    cache = E.load_embeddings(paths.embeddings)
    pl.read_parquet(paths.complaints).filter(
        pl.col("tweet_id") != int(cache.ids[5])).write_parquet(other.complaints)
    E.save_embeddings(other.embeddings, cache)
    with pytest.raises(DataError, match="stale"):
        T.load_inputs(other)


# ---- quality metrics with known answers ----------------------------------------------------------
def _npmi(topic_words: dict[int, list[str]], docs: list[str], **kw: Any
          ) -> tuple[float, dict[int, float]]:
    cfg = load_settings().topics  # the words are tokenised as the stage does (params.yaml)
    return TT.npmi_coherence(topic_words, docs, token_pattern=cfg.token_pattern,
                             ngram_max=cfg.ngram_max, epsilon=cfg.npmi_epsilon, **kw)


def test_npmi_known_values() -> None:
    """Bouma's NPMI with gensim's smoothing, by hand on an 8-document reference corpus."""
    eps = load_settings().topics.npmi_epsilon
    assert eps == 1e-12
    docs = ["apple banana", "apple banana", "cherry", "date", "egg fig", "egg", "fig", "nothing"]
    mean, per = _npmi({0: ["apple", "banana"], 1: ["cherry", "date"]}, docs)
    # always together: p(a) = p(b) = p(a, b) = 2/8 -> log(4) / log(4) = 1
    assert per[0] == pytest.approx(1.0)
    # never together: p = 1/8 each -> log(eps / (1/64)) / -log(eps) = -1 + log(64) / -log(eps)
    never = math.log(eps * 64) / -math.log(eps)
    assert per[1] == pytest.approx(never) and never == pytest.approx(-0.849485, abs=1e-6)
    assert mean == pytest.approx((1.0 + never) / 2)
    # the old convention as a sensitivity check: an unseen pair is exactly -1
    assert _npmi({1: ["cherry", "date"]}, docs, unseen="minus_one")[1][1] == -1.0
    # independent words: p(e) = p(f) = 1/2 in these 4 docs, p(e, f) = 1/4 -> NPMI 0
    _, per = _npmi({0: ["egg", "fig"]}, ["egg fig", "egg", "fig", "nothing"])
    assert per[0] == pytest.approx(0.0, abs=1e-9)
    # a three-word topic averages its three pairs
    _, per = _npmi({0: ["apple", "banana", "cherry"]}, docs)
    apple_cherry = math.log(eps / (2 / 8 * 1 / 8)) / -math.log(eps)
    assert per[0] == pytest.approx((1 + 2 * apple_cherry) / 3)
    # a word missing from the reference corpus: its pairs are left out
    _, per = _npmi({0: ["apple", "banana", "zebra"], 1: ["zebra", "yak"]}, docs)
    assert per[0] == pytest.approx(1.0) and 1 not in per


def test_hdbscan_sizes_scale_with_the_input() -> None:
    cfg = load_settings().topics
    assert (cfg.size_rule, cfg.min_cluster_size, cfg.min_samples) == ("sqrt", 15, 5)
    assert T.hdbscan_sizes(cfg, 1282) == (15, 5)          # round(0.42 * 35.8) = 15, 0.33 * 15
    assert T.hdbscan_sizes(cfg, 4000) == (27, 9)          # round(0.42 * 63.2) = 27, 0.33 * 27
    assert T.hdbscan_sizes(cfg, 100_000) == (133, 44)
    assert T.hdbscan_sizes(cfg, 50) == (15, 5)            # never below the params
    assert T.hdbscan_sizes(cfg.replace(size_rule="fixed"), 100_000) == (15, 5)


def _fake_fit(shares: dict[tuple[str, int], float]) -> Any:
    """A stand-in for one BERTopic fit: the share of the largest topic depends on the attempt."""
    def fit_once(docs: list[str], embeddings: np.ndarray, s: TopicsSettings) -> T.TopicFit:
        n = len(docs)
        big = int(shares[(s.cluster_selection_method, s.min_cluster_size)] * n)
        topics = np.array([0] * big + [1 + i % 4 for i in range(n - big)])
        return T.TopicFit(model=None, topics_raw=topics.copy(), topics=topics, settings=s)
    return fit_once


def test_a_collapsed_fit_is_retried_down_the_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_settings().topics.replace(size_rule="fixed")
    monkeypatch.setattr(T, "fit_once", _fake_fit({("eom", 15): 0.97, ("leaf", 15): 0.2}))
    fit = T.fit_topics(["doc"] * 200, np.zeros((200, 2)), cfg)
    assert [a["cluster_selection_method"] for a in fit.attempts] == ["eom", "leaf"]
    assert [a["collapsed"] for a in fit.attempts] == [True, False]
    assert [a["kept"] for a in fit.attempts] == [False, True]
    assert not fit.collapsed and fit.largest_share == pytest.approx(0.2)
    report = T.collapse_report(fit, cfg)
    assert report["retried"] and report["warning"] is None


def test_when_every_attempt_collapses_the_least_collapsed_is_kept_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_settings().topics.replace(size_rule="fixed")
    monkeypatch.setattr(T, "fit_once", _fake_fit({("eom", 15): 0.97, ("leaf", 15): 0.9,
                                                  ("leaf", 7): 0.93}))
    fit = T.fit_topics(["doc"] * 200, np.zeros((200, 2)), cfg)
    assert [(a["min_cluster_size"], a["min_samples"]) for a in fit.attempts] == [
        (15, 5), (15, 5), (7, 2)]
    assert [a["kept"] for a in fit.attempts] == [False, True, False] and fit.collapsed
    report = T.collapse_report(fit, cfg)
    assert report["collapsed"] and "more than 50% of the documents in one topic" in report["warning"]
    no_retry = T.fit_topics(["doc"] * 200, np.zeros((200, 2)), cfg.replace(collapse_retries=0))
    assert len(no_retry.attempts) == 1 and no_retry.collapsed


def test_stability_metrics_on_the_sample(topics_run: tuple[Paths, TopicsSettings, dict]) -> None:
    _, cfg, m = topics_run
    st = m["stability"]
    assert st["seeds"] == [cfg.seed, cfg.seed + 1, cfg.seed + 2] and len(st["pairs"]) == 3
    for p in st["pairs"]:
        assert -1 <= p["ari"] <= 1 and 0 <= p["word_overlap"] <= 1
    assert st["ari"]["min"] <= st["ari"]["mean"] == pytest.approx(
        round(float(np.mean([p["ari"] for p in st["pairs"]])), 6))
    assert m["collapse"]["threshold"] == 0.5 and m["collapse"]["attempts"][-1]["kept"] in (True,
                                                                                           False)
    assert m["largest_topic_share"] <= 0.5 or m["collapse"]["collapsed"]
    out = m["outliers"]
    assert out["raw"] == round(m["outlier_share_raw"] * m["docs"])
    assert out["reassigned"] + out["kept_apart"] == out["raw"] and out["kept_apart"] == 0
    assert m["coherence_npmi_reference_docs"] >= m["docs"]
    assert m["coherence_npmi_sensitivity"]["unseen_pairs_as_minus_one"] <= m["coherence_npmi"]


def test_umap_start_layout_switches_to_pca_for_large_inputs() -> None:
    cfg = load_settings().topics.replace(umap_init="auto", umap_spectral_max_docs=100)
    assert T.umap_init(cfg, 100) == "spectral" and T.umap_init(cfg, 101) == "pca"
    assert T.umap_init(cfg.replace(umap_init="random"), 5) == "random"
    assert T.build_model(cfg.replace(seed=3), 500).umap_model.init == "pca"


def test_umaps_numba_kernels_are_cached_on_disk_once_a_model_is_built() -> None:
    """UMAP compiles most kernels without numba's disk cache, so every process recompiled them (26
    of 66 profiled seconds of `scrm topics` on the sample): building the topic model turns it on.
    That the cached kernels give the same topics: the shared run's topics outputs equal the record
    (tests/test_identical_outputs.py), whichever process compiled them."""
    import umap.layouts
    import umap.umap_
    from numba.core.caching import FunctionCache

    T.build_model(load_settings().topics, 500)
    for kernel in (umap.layouts._nb_optimize_layout_euclidean_single_epoch,
                   umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths):
        assert isinstance(kernel._cache, FunctionCache), kernel


def test_diversity_known_values() -> None:
    assert TT.topic_diversity({0: ["a", "b"], 1: ["c", "d"]}) == 1.0
    assert TT.topic_diversity({0: ["a", "b"], 1: ["b", "c"]}) == 0.75
    assert TT.topic_diversity({0: ["a", "b"], 1: ["a", "b"]}) == 0.5
    assert TT.topic_diversity({}) == 0.0


def test_taxonomy_mapping_majority_and_purity() -> None:
    frame = pl.DataFrame({
        "topic": [0, 0, 0, 0, 1, 1, 2, -1],
        "label": ["x", "x", "y", None, "z", "y", None, "x"],
    })
    tax = {r["topic"]: r for r in TT.taxonomy_mapping(frame).iter_rows(named=True)}
    assert tax[0]["label"] == "x" and tax[0]["purity"] == pytest.approx(2 / 3)
    assert tax[0]["n_docs"] == 4 and tax[0]["n_labelled"] == 3
    assert tax[1]["label"] == "y" and tax[1]["purity"] == 0.5  # tie -> alphabetical first
    assert tax[2]["label"] is None and tax[2]["n_labelled"] == 0


def test_representative_docs_are_closest_to_the_centroid() -> None:
    emb = np.array([[1, 0], [0.9, 0.1], [0.6, 0.8], [0, 1], [0.1, 0.9]], dtype=np.float32)
    texts = ["a", "b", "c", "d", "e"]
    reps = TT.representative_docs(texts, emb, np.array([0, 0, 0, 1, 1]), n=2)
    assert reps[0] == ["b", "a"] and set(reps[1]) == {"d", "e"}


def test_a_figure_that_cannot_be_drawn_is_recorded(tmp_path: Path) -> None:
    import plotly.graph_objects as go

    class Model:
        def visualize_topics(self) -> Any:
            raise ValueError("k >= N for N * N square matrix")

        def visualize_barchart(self, **_: Any) -> Any:
            return go.Figure()

        def visualize_topics_over_time(self, *_: Any, **__: Any) -> Any:
            return go.Figure()

    status = write_figures(Model(), np.array([0, 1, 2, 3]), over_time=None, out_dir=tmp_path,
                           settings=load_settings().topics)
    assert status["intertopic_map"].startswith("skipped: ValueError")
    assert status["topics_over_time"].startswith("skipped: ")
    assert status["barchart"] == "ok" and (tmp_path / "barchart.html").exists()
    assert not (tmp_path / "intertopic_map.html").exists()


# ---- a larger input, a little unlike the sample ---------------------------------------------------
def test_a_larger_synthetic_input_finds_topics_and_does_not_collapse(tmp_path: Path) -> None:
    """~3,300 synthetic openings (templates, another brand mix): with sizes scaled to the input
    more than 2 topics are found and no topic holds half of the documents."""
    from scrm.complaints import weak_labels
    from scrm.data import fetch, prepare

    paths = make_root(tmp_path)
    params = load_params(paths.root)
    params["embed"] = {**params["embed"], "backend": "tfidf_svd", "progress": False}
    params["topics"] = {**params["topics"], "stability_runs": 0}
    params["complaints"] = {**params["complaints"], "gold_file": None, "track": False}
    (paths.root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    settings = load_settings(paths.root)
    fetch.run(paths, settings.fetch.replace(source="synthetic", rows=12_000, seed=7))
    prepare.run(paths, settings.prepare, settings.openings)
    weak_labels.run(paths, settings.complaints)
    E.run(paths, settings.embed)
    m = T.run(paths, settings.topics)
    n = m["docs"]
    assert n > 3000
    assert m["hdbscan"]["min_cluster_size"] == T.hdbscan_sizes(settings.topics, n)[0] > 15
    assert m["n_topics"] > 2 and not m["collapse"]["collapsed"]
    sizes = pl.read_parquet(paths.topics).group_by("topic").len()
    assert sizes.filter(pl.col("topic") != -1)["len"].max() / n <= 0.5
    assert m["largest_topic_share"] <= 0.5 and m["stability"]["note"].startswith("off")
