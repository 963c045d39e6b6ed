"""Classifier benchmark: splits that cannot leak, a zoo that grows by params, deterministic metrics.

The frame used here is the real sample's customer openings with labels from simple keyword rules
written in this file (stand-ins for the weak labels of ``scrm complaints``, and for a dev and a
sealed test set; only the benchmark's mechanics are under test, not the rules).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrm.complaints.benchmark import evaluate, select, splits, stage, zoo
from scrm.config import (BenchmarkSettings, ConfigError, Paths, ZooEntry, load_params,
                         settings_from_dict)
from scrm.errors import DataError, ScrmError
from scrm.io import write_parquet
from scrm.text import clean_for_topics

# keyword stand-ins for the weak labels (test only); first matching rule wins
RULES = [
    ("billing_refunds", r"(?i)refund|charg|\bbill|payment|money|paid"),
    ("order_delivery", r"(?i)\border|deliver|package|shipping|arriv"),
    ("account_login", r"(?i)account|login|password|sign in|log in"),
    ("network_outage", r"(?i)internet|wifi|outage|signal|connection"),
    ("app_software_device", r"(?i)\bapp\b|update|iphone|\bios\b|crash|battery|phone"),
    ("travel_disruption", r"(?i)flight|delay|cancel|\bbags?\b|train"),
    ("staff_service", r"(?i)rude|staff|manager|customer service|\bwait"),
    ("product_quality", r"(?i)food|burrito|quality|broken"),
    ("praise_thanks", r"(?i)thank|love|great|awesome"),
]
FAST_HGB = {"max_iter": 10, "max_leaf_nodes": 7, "early_stopping": False}
SPLITS = ("stratified", "time", "brand")


def complaints_frame(threads: Path) -> pl.DataFrame:
    """The complaints.parquet contract built from the sample's openings with keyword labels.

    A pseudo dev set (every third opening) and a pseudo sealed test (the next third) carry the
    keyword label (abstentions read as other_unclear); the rest is the training pool.
    """
    label = pl.lit(None, pl.Utf8)
    for name, rx in reversed(RULES):
        label = pl.when(pl.col("text").str.contains(rx)).then(pl.lit(name)).otherwise(label)
    hand = pl.col("weak_label").fill_null("other_unclear")
    return (
        pl.scan_parquet(threads).filter("is_opening")
        .select(pl.col("opening_tweet_id").alias("tweet_id"), "thread_id", "brand", "customer_id",
                pl.col("opening_at").alias("created_at"), pl.col("opening_text").alias("text"))
        .with_columns(clean_for_topics("text").alias("text_clean"), label.alias("weak_label"))
        .with_columns(pl.col("weak_label").is_not_null().cast(pl.Int32).alias("n_lfs_fired"),
                      pl.col("weak_label").alias("label"),
                      pl.col("weak_label").alias("lm_label"),
                      pl.when(pl.col("tweet_id") % 3 == 0).then(hand).otherwise(None)
                      .alias("gold_label"),
                      pl.when(pl.col("tweet_id") % 3 == 1).then(hand).otherwise(None)
                      .alias("test_label"))
        .sort("tweet_id").collect()
    )


@pytest.fixture(autouse=True)
def _own_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's run root gets its own store: mlflow.set_tracking_uri exports
    MLFLOW_TRACKING_URI, which scrm.tracking.tracking_uri would otherwise reuse for every root."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def frame(prepared_root: Paths) -> pl.DataFrame:
    return complaints_frame(prepared_root.threads)


def fast_params(**bench: Any) -> dict[str, Any]:
    """The project's params with small models and few resamples (the test budget is seconds)."""
    params = copy.deepcopy(load_params())
    b = params["benchmark"]
    b["zoo"]["hgb_svd"]["kwargs"] = dict(FAST_HGB)
    b["features"]["svd_components"] = 20
    b["cv_folds"] = 3
    b["cv_repeats"] = 2
    b["inner_folds"] = 2
    b["n_boot"] = 200
    b["workers"] = 1  # cells in this process (worker start-up would dominate); pools: below
    b.update(bench)
    return params


def settings_of(params: dict[str, Any]) -> BenchmarkSettings:
    """The validated benchmark settings of a params dict."""
    return settings_from_dict(params).benchmark


def fast_settings(**bench: Any) -> BenchmarkSettings:
    return settings_of(fast_params(**bench))


def make_model(alpha: float = 1.0, random_state: int | None = None, features: Any = None) -> Any:
    """A researcher's factory, referenced from params by dotted path in a test below."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import Pipeline

    calls = make_model.calls  # type: ignore[attr-defined]
    calls.append({"alpha": alpha, "random_state": random_state})
    return Pipeline([("features", features), ("ridge", RidgeClassifier(alpha=alpha,
                                                                       random_state=random_state))])


make_model.calls = []  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ splits


def _rows(frame: pl.DataFrame, which: str, cfg: BenchmarkSettings) -> splits.LabelSet:
    if which == "dev":
        ls = splits.rows(frame, pl.col("gold_label").is_not_null(), pl.col("gold_label"), "gold",
                         "text_clean", None)
    else:
        ls = splits.rows(frame, pl.col("test_label").is_null(),
                         splits.training_label("weak", cfg.abstain_as), "weak", "text_clean", None)
    assert not isinstance(ls, str)
    return ls


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 2024])
def test_brand_split_never_shares_a_brand(frame: pl.DataFrame, seed: int) -> None:
    cfg = fast_settings(seed=seed)
    for which, k in (("weak", None), ("dev", cfg.cv_folds)):
        ls = _rows(frame, which, cfg)
        folds = splits.make_folds("brand", ls, k, cfg.test_size, seed)
        tested = np.concatenate([f.test for f in folds])
        for f in folds:
            train_brands, test_brands = set(ls.brand[f.train]), set(ls.brand[f.test])
            assert train_brands and test_brands
            assert not train_brands & test_brands
        if k:  # grouped K-fold: every row is tested exactly once
            assert sorted(tested.tolist()) == list(range(len(ls.y)))


@settings(max_examples=40, deadline=None)
@given(groups=st.lists(st.sampled_from("ABCDEFGH"), min_size=12, max_size=60),
       seed=st.integers(0, 10_000))
def test_brand_split_property_on_made_up_groups(groups: list[str], seed: int) -> None:
    g = np.array(groups, dtype=object)
    if len(set(groups)) < 2:
        with pytest.raises(splits.SplitError):
            splits.brand_holdout(g, 0.3, seed)
        return
    (fold,) = splits.brand_holdout(g, 0.3, seed)
    assert not set(g[fold.train]) & set(g[fold.test])
    assert len(fold.train) + len(fold.test) == len(g)
    y = np.array(["a", "b"] * (len(g) // 2) + ["a"] * (len(g) % 2), dtype=object)
    for f in splits.brand_cv(y, g, 3, seed):
        assert not set(g[f.train]) & set(g[f.test])


def test_time_split_trains_strictly_earlier(frame: pl.DataFrame) -> None:
    cfg = fast_settings()
    for which, k in (("weak", None), ("dev", cfg.cv_folds)):
        ls = _rows(frame, which, cfg)
        folds = splits.make_folds("time", ls, k, cfg.test_size, cfg.seed)
        for f in folds:
            assert ls.created_at[f.train].max() < ls.created_at[f.test].min()
        if k is None:
            (f,) = folds
            assert abs(len(f.test) / len(ls.y) - cfg.test_size) < 0.05
        else:  # forward chaining: test blocks are disjoint and move forward in time
            starts = [ls.created_at[f.test].min() for f in folds]
            assert starts == sorted(starts) and len(folds) == cfg.cv_folds
            tested = np.concatenate([f.test for f in folds])
            assert len(tested) == len(set(tested.tolist()))


def test_time_split_puts_boundary_ties_on_the_test_side() -> None:
    t = np.array([30, 10, 20, 20, 20, 40], dtype=np.int64)
    (f,) = splits.time_holdout(t, 0.5)           # row cut at position 3 -> timestamp 20
    assert sorted(t[f.train].tolist()) == [10]
    assert sorted(t[f.test].tolist()) == [20, 20, 20, 30, 40]
    with pytest.raises(splits.SplitError):
        splits.time_holdout(np.array([5, 5, 5], dtype=np.int64), 0.5)


def test_stratified_split_keeps_class_proportions(frame: pl.DataFrame) -> None:
    cfg = fast_settings()
    ls = _rows(frame, "weak", cfg)
    (f,) = splits.make_folds("stratified", ls, None, cfg.test_size, cfg.seed)
    all_counts, test_counts = Counter(ls.y.tolist()), Counter(ls.y[f.test].tolist())
    assert set(test_counts) == set(all_counts)
    for c, n in all_counts.items():  # each class within one row of its expected test share
        assert abs(test_counts[c] - n * len(f.test) / len(ls.y)) <= 1.0
    assert not set(f.train.tolist()) & set(f.test.tolist())


def test_weak_training_rows_are_outside_dev_and_the_sealed_test(frame: pl.DataFrame) -> None:
    pool = splits.rows(frame, splits.outside_gold(), splits.training_label("weak", "other_unclear"),
                       "weak", "text_clean", None)
    dev_test = set(frame.filter(pl.col("gold_label").is_not_null()
                                | pl.col("test_label").is_not_null())["tweet_id"].to_list())
    assert pool.tweet_id.size > 300 and not set(pool.tweet_id.tolist()) & dev_test
    assert "other_unclear" in set(pool.y.tolist())        # abstentions read as abstain_as
    dropped = splits.rows(frame, splits.outside_gold(), splits.training_label("weak", None),
                          "weak", "text_clean", None)
    assert dropped.tweet_id.size < pool.tweet_id.size
    assert "other_unclear" not in set(dropped.y.tolist())


def test_embedding_lookup_zero_fills_only_empty_texts() -> None:
    cache = (np.array([5, 1, 3]), np.array([[5.0, 5], [1, 1], [3, 3]], dtype=np.float32))
    got = splits.lookup(cache, np.array([1, 3, 4]), np.array([False, False, True]))
    assert got.tolist() == [[1, 1], [3, 3], [0, 0]]
    assert splits.lookup(cache, np.array([1, 4]), np.array([False, False])) is None


# ----------------------------------------------------------------------------- label set and choice


def test_label_set_is_fixed_across_protocols_and_splits(frame: pl.DataFrame) -> None:
    cfg = fast_settings(models=["complement_nb", "linsvc"])
    classes = splits.label_space(frame, cfg.abstain_as)
    assert len(classes) == 10
    sections, skipped = evaluate.run_benchmark(frame, cfg, classes)
    assert not skipped and len(sections) == 1 + 2 * len(SPLITS)
    for sec in sections:
        assert sec.classes == classes
        for system in sec.systems:
            assert list(system.scores["per_class_f1"]) == classes
    # macro-F1 is the mean of per-class F1 over all classes, zero_division=0
    from sklearn.metrics import f1_score

    sec = next(x for x in sections if x.protocol == "weak_on_weak")
    s0 = sec.systems[0]
    assert s0.scores["macro_f1"] == pytest.approx(
        float(np.mean(list(s0.scores["per_class_f1"].values()))), abs=1e-6)
    assert s0.scores["macro_f1"] == pytest.approx(
        f1_score(sec.y_true, s0.pred[0], labels=classes, average="macro", zero_division=0),
        abs=1e-6)


def test_selection_never_reads_the_scored_rows_labels(frame: pl.DataFrame) -> None:
    cfg = fast_settings(models=["complement_nb", "logreg", "linsvc"])
    classes = splits.label_space(frame, cfg.abstain_as)
    dev = _rows(frame, "dev", cfg)
    train, scored = dev.take(np.arange(0, 300)), dev.take(np.arange(300, len(dev.y)))
    specs = evaluate.specs_of(cfg)
    a = select.fit_models(specs, train, scored, classes, "stratified", 2, 0)
    scrambled = scored.take(np.arange(len(scored.y)))
    scrambled.y = np.array(["nonsense"] * len(scored.y), dtype=object)
    b = select.fit_models(specs, train, scrambled, classes, "stratified", 2, 0)
    assert {n: (f.params, f.val_score) for n, f in a.items()} == \
        {n: (f.params, f.val_score) for n, f in b.items()}
    assert all((a[n].pred == b[n].pred).all() for n in a)
    assert select.selected_model(a) == select.selected_model(b)
    assert len(a["logreg"].val_scores) == 2                 # both grid points were validated
    best = max(a["logreg"].val_scores.values())
    assert a["logreg"].val_score == best                    # the chosen point is the best one


def test_weak_to_gold_never_trains_on_dev_or_test_labels(frame: pl.DataFrame) -> None:
    cfg = fast_settings(models=["complement_nb", "linsvc"], protocols=["weak_to_gold"])
    classes = splits.label_space(frame, cfg.abstain_as)
    (a,), _ = evaluate.run_benchmark(frame, cfg, classes)
    in_sets = pl.col("gold_label").is_not_null() | pl.col("test_label").is_not_null()
    poisoned = frame.with_columns(
        pl.when(in_sets).then(pl.lit("billing_refunds")).otherwise(pl.col(c)).alias(c)
        for c in ("label", "lm_label"))
    (b,), _ = evaluate.run_benchmark(poisoned, cfg, classes)
    learned = [s.name for s in a.systems if s.kind == "learned"]
    assert len(learned) == 4
    pa = {s.name: s.pred.tolist() for s in a.systems}
    pb = {s.name: s.pred.tolist() for s in b.systems}
    assert all(pa[n] == pb[n] for n in learned)
    assert {s.name for s in a.systems} >= {evaluate.RULES, evaluate.LABEL_MODEL}


def test_sections_mark_the_best_and_the_indistinguishable(frame: pl.DataFrame) -> None:
    cfg = fast_settings(models=["dummy", "complement_nb", "linsvc"], protocols=["gold_cv"],
                        splits=["stratified"])
    classes = splits.label_space(frame, cfg.abstain_as)
    (sec,), _ = evaluate.run_benchmark(frame, cfg, classes)
    names = [s.name for s in sec.systems]
    assert names[0] == sec.reference and evaluate.SELECTED in names
    f1 = [s.scores["macro_f1"] for s in sec.systems]
    assert f1 == sorted(f1, reverse=True)
    best = sec.systems[0].scores
    assert best["diff"] == 0.0 and best["indistinguishable"] is True
    dummy = next(s for s in sec.systems if s.name == "dummy")
    assert dummy.scores["indistinguishable"] is False and dummy.scores["p_holm"] < 0.05
    assert dummy.scores["diff_ci"][1] < 0
    for s in sec.systems:
        lo, hi = s.scores["macro_f1_ci"]
        assert lo <= s.scores["macro_f1"] <= hi
        assert s.pred.shape == ((cfg.cv_repeats, sec.n_test) if s.kind in ("learned", "selected")
                                else (1, sec.n_test))
    # the rules' row on dev: exactly the keyword labels here (abstain = other_unclear)
    rules = next(s for s in sec.systems if s.name == evaluate.RULES)
    assert rules.scores["macro_f1"] == pytest.approx(1.0)


def test_a_protocol_without_rows_is_skipped_not_crashed(frame: pl.DataFrame) -> None:
    df = frame.with_columns(pl.lit(None, pl.Utf8).alias("test_label"),
                            pl.when(pl.col("label").is_not_null())
                            .then(pl.lit("order_delivery")).alias("label"))
    cfg = fast_settings(models=["dummy", "complement_nb"],
                        protocols=["weak_to_gold", "weak_on_weak"], abstain_as=None)
    sections, skipped = evaluate.run_benchmark(df, cfg, splits.label_space(df, None))
    assert sections == []
    assert "test_label" in skipped["weak_to_gold/sealed_test"]
    assert "fewer than two classes" in skipped["weak_on_weak/stratified"]


def test_missing_column_names_the_file(tmp_path: Path, frame: pl.DataFrame) -> None:
    path = tmp_path / "complaints.parquet"
    write_parquet(frame.drop("gold_label"), path)
    with pytest.raises(DataError, match=r"complaints\.parquet.*gold_label"):
        stage.load_frame(path, "text_clean")
    with pytest.raises(DataError, match="scrm complaints"):
        stage.load_frame(tmp_path / "nope.parquet", "text_clean")


# --------------------------------------------------------------------------------------------- zoo


def _fake_embeddings(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in sentence vectors: a small SVD of word counts (the test never loads MiniLM)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer

    x = CountVectorizer().fit_transform(frame["text_clean"].fill_null("").to_list())
    vec = TruncatedSVD(16, random_state=0).fit_transform(x).astype(np.float32)
    return frame["tweet_id"].to_numpy(), vec


def test_every_default_zoo_model_fits_and_predicts(frame: pl.DataFrame) -> None:
    params = load_params()
    cfg = fast_settings(splits=["stratified"], protocols=["weak_on_weak"])
    classes = splits.label_space(frame, cfg.abstain_as)
    (sec,), skipped = evaluate.run_benchmark(frame, cfg, classes, _fake_embeddings(frame))
    assert not skipped and not sec.skipped_models
    assert sorted(s.model for s in sec.systems) == sorted(params["benchmark"]["zoo"])
    for s in sec.systems:
        assert sec.n_test > 100 and set(s.pred[0].tolist()) <= set(classes)
        assert 0.0 <= s.scores["macro_f1"] <= 1.0
    by = {s.model: s.scores["macro_f1"] for s in sec.systems}
    # most-frequent predicts one class; every text model must beat it by a wide margin (macro-F1
    # over all ten categories; the fast hgb_svd here has 10 trees on 20 SVD components)
    assert all(by[m] > by["dummy"] + 0.25 for m in by if m not in ("dummy", "minilm_logreg")), \
        sorted(by.items())
    assert by["minilm_logreg"] > by["dummy"]
    # without a vector for every row the embedding model is not run, and says why
    (sec,), _ = evaluate.run_benchmark(frame, cfg, classes, (np.array([1]), np.ones((1, 16))))
    assert "minilm_logreg" in sec.skipped_models


def test_model_added_by_dotted_path_is_picked_up(frame: pl.DataFrame) -> None:
    params = fast_params(splits=["brand"], protocols=["weak_on_weak"], models=["knn", "mine"])
    params["benchmark"]["zoo"]["knn"] = {"estimator": "sklearn.neighbors.KNeighborsClassifier",
                                         "features": "tfidf", "kwargs": {},
                                         "grid": {"n_neighbors": [3, 9]}}
    params["benchmark"]["zoo"]["mine"] = {"estimator": f"{__name__}:make_model",
                                          "features": "none", "kwargs": {"alpha": 2.5}, "grid": {}}
    make_model.calls.clear()  # type: ignore[attr-defined]
    cfg = settings_of(params)
    (sec,), _ = evaluate.run_benchmark(frame, cfg, splits.label_space(frame, cfg.abstain_as))
    assert sorted(s.model for s in sec.systems) == ["knn", "mine"]
    assert make_model.calls[0] == {"alpha": 2.5, "random_state": 42}  # type: ignore[attr-defined]
    assert all(s.scores["macro_f1"] > 0.2 for s in sec.systems)
    knn = next(s for s in sec.systems if s.model == "knn")
    assert knn.chosen[0]["n_neighbors"] in (3, 9)
    pipe = zoo.build_model("knn", cfg.zoo["knn"], cfg.features, 0)
    assert [name for name, _ in pipe.steps] == ["features", "clf"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"estimator": "sklearn.linear_model.NoSuchModel"}, "no attribute 'NoSuchModel'"),
    ({"estimator": "nosuchpkg.models:make"}, "cannot import module 'nosuchpkg.models'"),
    ({"estimator": "sklearn.svm.LinearSVC", "kwargs": {"bogus": 1}}, "cannot build"),
    ({"estimator": "sklearn.svm.LinearSVC", "features": "bert"}, "x.features = 'bert'"),
    ({"estimator": "math:pi"}, "neither a class nor a factory"),
])
def test_bad_zoo_entries_say_what_is_wrong(spec: dict[str, Any], message: str) -> None:
    features = fast_settings().features
    with pytest.raises(ScrmError, match=message):
        entry = ZooEntry.from_mapping({"features": "tfidf", "kwargs": {}, "grid": {}, **spec}, "x")
        zoo.build_model("x", entry, features, 0)


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"benchmark.models names \['nope'\], not in"):
        fast_settings(models=["nope"])
    with pytest.raises(ConfigError, match=r"benchmark.splits\[0\] = 'random': choose one of"):
        stage.with_overrides(fast_settings(), splits=["random"])
    with pytest.raises(ConfigError, match=r"benchmark.protocols\[0\] = 'silver': choose one of"):
        stage.with_overrides(fast_settings(), protocols=["silver"])
    for kwargs, grid in (({"C": 1}, {"C": [1, 2]}), ({}, {"C": []})):
        entry = ZooEntry.from_mapping({"estimator": "sklearn.svm.LinearSVC", "features": "tfidf",
                                       "kwargs": kwargs, "grid": grid}, "benchmark.zoo.x")
        with pytest.raises(ScrmError, match=r"benchmark.zoo.x.grid: \['C'\]"):
            zoo.grid_points("x", entry)
    assert zoo.grid_points("x", ZooEntry.from_mapping(
        {"estimator": "e", "features": "none", "kwargs": {}, "grid": {"a": [1, 2], "b": [3]}},
        "x")) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    with pytest.raises(ConfigError, match=r"benchmark.models names \['nope'\], not in"):
        stage.with_overrides(fast_settings(), models=["nope"])


# ------------------------------------------------------------------------------------------- stage


def _stage_root(tmp: Path, frame: pl.DataFrame, **bench: Any) -> tuple[Paths, dict[str, Any]]:
    paths = Paths(tmp).ensure()
    write_parquet(frame, paths.complaints)
    return paths, fast_params(**bench)


def test_stage_writes_leaderboard_for_every_protocol_split_and_system(tmp_path: Path,
                                                                      frame: pl.DataFrame) -> None:
    from scrm.complaints.embed import EmbeddingCache, save_embeddings

    models = ["dummy", "complement_nb", "minilm_logreg"]
    paths, params = _stage_root(tmp_path, frame, models=models)
    ids, vec = _fake_embeddings(frame)
    save_embeddings(paths.embeddings, EmbeddingCache(ids, vec, "test", "svd-16"))
    params["benchmark"]["mlflow"]["enabled"] = False
    m = stage.run(paths, settings_of(params))
    lb = pl.read_csv(paths.benchmark_csv)
    assert set(m["sections"]) == {"weak_to_gold/sealed_test"} | {
        f"{p}/{sp}" for p in ("gold_cv", "weak_on_weak") for sp in SPLITS}
    w2g = lb.filter(pl.col("protocol") == "weak_to_gold")
    assert set(w2g["system"]) == {evaluate.RULES, evaluate.LABEL_MODEL} | {
        f"{mo} ← {src}" for mo in models for src in ("weak", "label_model")}
    for _, part in lb.group_by(["protocol", "variant"]):
        assert part["macro_f1"].to_list() == sorted(part["macro_f1"].to_list(), reverse=True)
        assert sorted(part["rank"].to_list()) == list(range(1, part.height + 1))
        assert (part["macro_f1_low"] <= part["macro_f1"]).all()
        assert part.filter(pl.col("rank") == 1)["indistinguishable_from_best"].item()
    assert {"fit_s", "predict_s", "f1.order_delivery", "p_holm", "chosen"} <= set(lb.columns)
    md = paths.benchmark_md.read_text(encoding="utf-8")
    assert md.count("\n## ") == 7 and "weak → gold (sealed test)" in md and "≈ best" in md
    assert "backend `test`" in md
    for key, sec in m["sections"].items():
        top = lb.filter((pl.col("protocol") + "/" + pl.col("variant")) == key).sort("rank")
        assert sec["best"] == top["system"][0]
    text = paths.metric("benchmark").read_text(encoding="utf-8")
    assert "fit_s" not in text and "predict_s" not in text
    conf = pl.read_csv(paths.benchmark_confusion_plot)
    assert conf.columns == ["tweet_id", "actual", "predicted"] and conf.height > 0
    assert m["confusion_plot"].startswith("weak_to_gold/sealed_test/")
    assert paths.benchmark_confusion_html.stat().st_size > 10_000


def test_one_mlflow_run_per_section_and_system(tmp_path: Path, frame: pl.DataFrame) -> None:
    from scrm import tracking

    paths, params = _stage_root(tmp_path, frame, models=["dummy", "linsvc"],
                                protocols=["weak_to_gold", "gold_cv"], splits=["brand"])
    params["benchmark"]["mlflow"] = {"enabled": True, "log_models": "none", "register": "none"}
    m = stage.run(paths, settings_of(params))
    runs = tracking.list_runs("benchmark", paths.root)
    n_systems = sum(len(sec["systems"]) for sec in m["sections"].values())
    assert len(runs) == n_systems == 6 + 5
    row = runs[runs["tags.mlflow.runName"] == "linsvc ← weak|weak_to_gold/sealed_test"].iloc[0]
    assert row["metrics.macro_f1"] == pytest.approx(
        m["sections"]["weak_to_gold/sealed_test"]["systems"]["linsvc ← weak"]["macro_f1"],
        abs=1e-6)
    assert row["params.estimator"] == "sklearn.svm.LinearSVC"
    assert row["metrics.fit_s"] > 0 and "metrics.f1.order_delivery" in runs.columns


def test_metrics_json_is_identical_across_runs(tmp_path: Path, frame: pl.DataFrame) -> None:
    """Two runs, the first with every cell in this process, the second with cells spread over two
    worker processes: the same bytes (results do not depend on where or when a cell ran)."""
    blobs = []
    for i in range(2):
        paths, params = _stage_root(tmp_path / str(i), frame, models=["linsvc", "sgd", "hgb_svd"],
                                    protocols=["weak_to_gold", "gold_cv"], splits=["brand"],
                                    workers=1 + i)
        params["benchmark"]["mlflow"]["enabled"] = False
        stage.run(paths, settings_of(params))
        blobs.append(paths.metric("benchmark").read_bytes())
    assert blobs[0] == blobs[1]
    m = json.loads(blobs[0])
    assert m["sections"]["gold_cv/brand"]["n_folds"] == 3
    assert m["sections"]["gold_cv/brand"]["repeats"] == 2


def test_cli_overrides_select_models_splits_and_protocols(tmp_path: Path,
                                                          frame: pl.DataFrame) -> None:
    from typer.testing import CliRunner

    from scrm.cli import app

    paths, params = _stage_root(tmp_path, frame)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    res = CliRunner().invoke(app, ["benchmark", "--root", str(tmp_path), "--models",
                                   "dummy,linsvc", "--splits", "brand", "--protocols",
                                   "weak_on_weak", "--no-mlflow"])
    assert res.exit_code == 0, res.output
    lb = pl.read_csv(paths.benchmark_csv)
    assert set(lb.select("protocol", "variant", "system").iter_rows()) == {
        ("weak_on_weak", "brand", "dummy"), ("weak_on_weak", "brand", "linsvc")}
    assert not (tmp_path / "mlflow.db").exists()
    res = CliRunner().invoke(app, ["benchmark", "--root", str(tmp_path), "--splits", "random"])
    assert res.exit_code == 2 and "benchmark.splits[0] = 'random': choose one of" in res.output


def test_progress_is_one_line_per_section(tmp_path: Path, frame: pl.DataFrame,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SCRM_PROGRESS", "lines")
    paths, params = _stage_root(tmp_path, frame, models=["dummy"], protocols=["weak_on_weak"],
                                splits=["stratified", "brand"])
    params["benchmark"]["mlflow"]["enabled"] = False
    stage.run(paths, settings_of(params))
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("benchmark: ")]
    assert [x.split(" (")[0] for x in lines] == ["benchmark: 1/2 section", "benchmark: 2/2 section"]
    assert "weak_on_weak/brand, best: dummy" in lines[-1]


@pytest.mark.slow
def test_selected_model_is_logged_and_registered(tmp_path: Path, frame: pl.DataFrame) -> None:
    """MLflow model logging takes ~25 s per model here (its requirements inference)."""
    from scrm import tracking

    paths, params = _stage_root(tmp_path, frame, models=["dummy", "linsvc"],
                                splits=["stratified"], protocols=["weak_on_weak"])
    params["benchmark"]["mlflow"] = {"enabled": True, "log_models": "best", "register": "best"}
    stage.run(paths, settings_of(params))
    runs = tracking.list_runs("benchmark", paths.root)
    assert len(runs) == 2
    chosen = runs[runs["tags.benchmark.selected_on_validation"] == "true"]
    assert list(chosen["tags.benchmark.system"]) == ["linsvc"]
    mlflow = tracking.setup(paths.root)
    versions = mlflow.search_model_versions(filter_string="name='scrm-benchmark-linsvc'")
    assert len(versions) == 1
    model = mlflow.sklearn.load_model(f"models:/scrm-benchmark-linsvc/{versions[0].version}")
    pred = model.predict(zoo.text_frame(["my package never arrived, where is my order"]))
    assert pred[0] == "order_delivery"
