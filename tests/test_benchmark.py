"""Classifier benchmark: splits that cannot leak, a zoo that grows by params, deterministic metrics.

The frame used here is the real sample's customer openings with labels from simple keyword rules
written in this file (stand-ins for the weak labels of ``scrm complaints``; only the benchmark's
mechanics are under test, not the rules).
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

from scrm.complaints.benchmark import evaluate, splits, stage, zoo
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
    """The complaints.parquet contract built from the sample's openings with keyword labels."""
    label = pl.lit(None, pl.Utf8)
    for name, rx in reversed(RULES):
        label = pl.when(pl.col("text").str.contains(rx)).then(pl.lit(name)).otherwise(label)
    return (
        pl.scan_parquet(threads).filter("is_opening")
        .select(pl.col("opening_tweet_id").alias("tweet_id"), "thread_id", "brand", "customer_id",
                pl.col("opening_at").alias("created_at"), pl.col("opening_text").alias("text"))
        .with_columns(clean_for_topics("text").alias("text_clean"), label.alias("weak_label"))
        .with_columns(pl.col("weak_label").is_not_null().cast(pl.Int32).alias("n_lfs_fired"),
                      pl.col("weak_label").alias("label"),
                      # a pseudo gold set: every third opening, abstentions read as other_unclear
                      pl.when(pl.col("tweet_id") % 3 == 0)
                      .then(pl.col("weak_label").fill_null("other_unclear"))
                      .otherwise(None).alias("gold_label"))
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
    """The project's params with a small gradient-boosting model (the test budget is seconds)."""
    params = copy.deepcopy(load_params())
    b = params["benchmark"]
    b["zoo"]["hgb_svd"]["kwargs"] = dict(FAST_HGB)
    b["features"]["svd_components"] = 20
    b["cv_folds"] = 3
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


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 2024])
def test_brand_split_never_shares_a_brand(frame: pl.DataFrame, seed: int) -> None:
    cfg = fast_settings(seed=seed)
    for source in ("weak", "gold"):
        ls = splits.label_set(frame, source, cfg)
        assert not isinstance(ls, str)
        folds = splits.make_folds("brand", ls, cfg)
        tested = np.concatenate([f.test for f in folds])
        for f in folds:
            train_brands, test_brands = set(ls.brand[f.train]), set(ls.brand[f.test])
            assert train_brands and test_brands
            assert not train_brands & test_brands
        if source == "gold":  # grouped K-fold: every row is tested exactly once
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
    for source in ("weak", "gold"):
        ls = splits.label_set(frame, source, cfg)
        folds = splits.make_folds("time", ls, cfg)
        for f in folds:
            assert ls.created_at[f.train].max() < ls.created_at[f.test].min()
        if source == "weak":
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
    ls = splits.label_set(frame, "weak", cfg)
    (f,) = splits.make_folds("stratified", ls, cfg)
    all_counts, test_counts = Counter(ls.y.tolist()), Counter(ls.y[f.test].tolist())
    assert set(test_counts) == set(all_counts)
    for c, n in all_counts.items():  # each class within one row of its expected test share
        assert abs(test_counts[c] - n * len(f.test) / len(ls.y)) <= 1.0
    assert not set(f.train.tolist()) & set(f.test.tolist())


# ----------------------------------------------------------------------------------------- classes


def test_rare_classes_are_merged_or_dropped_and_counted() -> None:
    y = np.array(["a"] * 12 + ["b"] * 11 + ["c"] * 3 + ["d"] * 2 + ["other_unclear"] * 6,
                 dtype=object)
    merged_y, merged, dropped = splits.handle_rare(y, 10, "merge", "other_unclear")
    assert merged == {"c": 3, "d": 2} and dropped == {}
    assert Counter(merged_y.tolist()) == {"a": 12, "b": 11, "other_unclear": 11}
    dropped_y, merged, dropped = splits.handle_rare(y, 10, "drop", "other_unclear")
    assert merged == {} and dropped == {"c": 3, "d": 2, "other_unclear": 6}
    assert Counter(v for v in dropped_y.tolist() if v is not None) == {"a": 12, "b": 11}
    # the catch-all is itself too rare after merging: dropped, with its count
    y2 = np.array(["a"] * 12 + ["b"] * 12 + ["c"] * 3, dtype=object)
    out, merged, dropped = splits.handle_rare(y2, 10, "merge", "other_unclear")
    assert merged == {"c": 3} and dropped == {"other_unclear": 3}
    assert None in out.tolist()


def test_a_source_without_enough_classes_is_skipped_not_crashed(frame: pl.DataFrame) -> None:
    df = frame.with_columns(pl.lit(None, pl.Utf8).alias("gold_label"),
                            pl.when(pl.col("label").is_not_null())
                            .then(pl.lit("order_delivery")).alias("label"))
    cfg = fast_settings(models=["dummy", "complement_nb"])
    results, classes, skipped = evaluate.run_benchmark(df, cfg)
    assert results == [] and classes == {}
    assert "gold_label" in skipped["gold"] and "fewer than two classes" in skipped["weak"]


def test_missing_column_names_the_file(tmp_path: Path, frame: pl.DataFrame) -> None:
    path = tmp_path / "complaints.parquet"
    write_parquet(frame.drop("gold_label"), path)
    with pytest.raises(DataError, match=r"complaints\.parquet.*gold_label"):
        stage.load_frame(path, "text_clean")
    with pytest.raises(DataError, match="scrm complaints"):
        stage.load_frame(tmp_path / "nope.parquet", "text_clean")


# --------------------------------------------------------------------------------------------- zoo


def test_every_default_zoo_model_fits_and_predicts(frame: pl.DataFrame) -> None:
    params = load_params()
    cfg = fast_settings(splits=["stratified"], labels=["weak"])
    results, _, skipped = evaluate.run_benchmark(frame, cfg)
    assert not skipped
    assert [r.model for r in results] == list(params["benchmark"]["zoo"])
    for r in results:
        assert r.n_test > 100 and set(r.y_pred.tolist()) <= set(r.classes)
        assert 0.0 <= r.scores["macro_f1"] <= 1.0
    by = {r.model: r.scores["macro_f1"] for r in results}
    # most-frequent predicts one class; every text model must beat it by a wide margin
    assert all(by[m] > by["dummy"] + 0.3 for m in by if m != "dummy"), by


def test_model_added_by_dotted_path_is_picked_up(frame: pl.DataFrame) -> None:
    params = fast_params(splits=["brand"], labels=["weak"], models=["knn", "mine"])
    params["benchmark"]["zoo"]["knn"] = {"estimator": "sklearn.neighbors.KNeighborsClassifier",
                                         "features": "tfidf", "kwargs": {"n_neighbors": 5}}
    params["benchmark"]["zoo"]["mine"] = {"estimator": f"{__name__}:make_model",
                                          "features": "none", "kwargs": {"alpha": 2.5}}
    make_model.calls.clear()  # type: ignore[attr-defined]
    cfg = settings_of(params)
    results, _, _ = evaluate.run_benchmark(frame, cfg)
    assert [r.model for r in results] == ["knn", "mine"]
    assert make_model.calls[0] == {"alpha": 2.5, "random_state": 42}  # type: ignore[attr-defined]
    assert all(r.scores["macro_f1"] > 0.2 for r in results)
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
        entry = ZooEntry.from_mapping({"features": "tfidf", "kwargs": {}, **spec}, "x")
        zoo.build_model("x", entry, features, 0)


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"benchmark.models names \['nope'\], not in"):
        fast_settings(models=["nope"])
    with pytest.raises(ConfigError, match=r"benchmark.splits\[0\] = 'random': choose one of"):
        stage.with_overrides(fast_settings(), splits=["random"])
    with pytest.raises(ConfigError, match=r"benchmark.labels\[0\] = 'silver': choose one of"):
        stage.with_overrides(fast_settings(), labels=["silver"])
    with pytest.raises(ConfigError, match=r"benchmark.models names \['nope'\], not in"):
        stage.with_overrides(fast_settings(), models=["nope"])


# ------------------------------------------------------------------------------------------- stage


def _stage_root(tmp: Path, frame: pl.DataFrame, **bench: Any) -> tuple[Paths, dict[str, Any]]:
    paths = Paths(tmp).ensure()
    write_parquet(frame, paths.complaints)
    return paths, fast_params(**bench)


def test_stage_writes_leaderboard_for_every_model_split_and_source(tmp_path: Path,
                                                                   frame: pl.DataFrame) -> None:
    paths, params = _stage_root(tmp_path, frame)
    params["benchmark"]["mlflow"]["enabled"] = False
    m = stage.run(paths, settings_of(params))
    models = list(params["benchmark"]["zoo"])
    lb = pl.read_csv(paths.benchmark_csv)
    combos = set(lb.select("labels", "split", "model").iter_rows())
    assert combos == {(s, sp, mo) for s in ("weak", "gold") for sp in SPLITS for mo in models}
    assert m["runs"] == lb.height == 36
    # sorted by macro-F1 within each (labels, split), ranked from 1
    for _, part in lb.group_by(["labels", "split"]):
        assert part["macro_f1"].to_list() == sorted(part["macro_f1"].to_list(), reverse=True)
        assert sorted(part["rank"].to_list()) == list(range(1, len(models) + 1))
    assert {"fit_s", "predict_s", "f1.order_delivery"} <= set(lb.columns)
    md = paths.benchmark_md.read_text(encoding="utf-8")
    assert md.count("## labels = ") == 6 and "test brands never appear in training" in md
    # metrics: best per split is the top of the leaderboard; no timings
    for (src, split), part in lb.group_by(["labels", "split"]):
        assert m["best"][src][split]["model"] == part.sort("rank")["model"][0]
    text = paths.metric("benchmark").read_text(encoding="utf-8")
    assert "fit_s" not in text and "predict_s" not in text
    conf = pl.read_csv(paths.benchmark_confusion_plot)
    assert conf.columns == ["tweet_id", "actual", "predicted"] and conf.height > 0
    assert m["confusion_plot"].startswith("gold/stratified/")
    assert paths.benchmark_confusion_html.stat().st_size > 10_000


def test_one_mlflow_run_per_model_split_and_source(tmp_path: Path, frame: pl.DataFrame) -> None:
    from scrm import tracking

    paths, params = _stage_root(tmp_path, frame, models=["dummy", "linsvc"])
    params["benchmark"]["mlflow"] = {"enabled": True, "log_models": "none", "register": "none"}
    m = stage.run(paths, settings_of(params))
    runs = tracking.list_runs("benchmark", paths.root)
    assert len(runs) == m["runs"] == 12
    assert set(runs["tags.mlflow.runName"]) == {f"{mo}|{sp}|{s}" for s in ("weak", "gold")
                                               for sp in SPLITS for mo in ("dummy", "linsvc")}
    row = runs[runs["tags.mlflow.runName"] == "linsvc|brand|gold"].iloc[0]
    assert row["metrics.macro_f1"] == pytest.approx(m["results"]["gold"]["brand"]["linsvc"]
                                                    ["macro_f1"], abs=1e-6)
    assert row["params.split"] == "brand" and row["params.estimator"] == "sklearn.svm.LinearSVC"
    assert row["metrics.fit_s"] > 0 and "metrics.f1.order_delivery" in runs.columns
    assert row["tags.benchmark.best_in_split"] == "true"


def test_metrics_json_is_identical_across_runs(tmp_path: Path, frame: pl.DataFrame) -> None:
    blobs = []
    for i in range(2):
        paths, params = _stage_root(tmp_path / str(i), frame,
                                    models=["linsvc", "sgd", "hgb_svd"])
        params["benchmark"]["mlflow"]["enabled"] = False
        stage.run(paths, settings_of(params))
        blobs.append(paths.metric("benchmark").read_bytes())
        assert paths.benchmark_confusion_plot.exists()
    assert blobs[0] == blobs[1]
    m = json.loads(blobs[0])
    assert m["results"]["gold"]["brand"]["sgd"]["n_folds"] == 3


def test_cli_overrides_select_models_splits_and_labels(tmp_path: Path, frame: pl.DataFrame) -> None:
    from typer.testing import CliRunner

    from scrm.cli import app

    paths, params = _stage_root(tmp_path, frame)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    res = CliRunner().invoke(app, ["benchmark", "--root", str(tmp_path), "--models",
                                   "dummy,linsvc", "--splits", "brand", "--labels", "gold",
                                   "--no-mlflow"])
    assert res.exit_code == 0, res.output
    lb = pl.read_csv(paths.benchmark_csv)
    assert set(lb.select("labels", "split", "model").iter_rows()) == {
        ("gold", "brand", "dummy"), ("gold", "brand", "linsvc")}
    assert not (tmp_path / "mlflow.db").exists()
    res = CliRunner().invoke(app, ["benchmark", "--root", str(tmp_path), "--splits", "random"])
    assert res.exit_code == 2 and "benchmark.splits[0] = 'random': choose one of" in res.output


@pytest.mark.slow
def test_best_model_is_logged_and_registered(tmp_path: Path, frame: pl.DataFrame) -> None:
    """MLflow model logging takes ~25 s per model here (its requirements inference)."""
    from scrm import tracking

    paths, params = _stage_root(tmp_path, frame, models=["dummy", "linsvc"],
                                splits=["stratified"], labels=["weak"])
    params["benchmark"]["mlflow"] = {"enabled": True, "log_models": "best", "register": "best"}
    stage.run(paths, settings_of(params))
    runs = tracking.list_runs("benchmark", paths.root)
    assert len(runs) == 2
    best = runs[runs["tags.benchmark.best_in_split"] == "true"]
    assert list(best["tags.benchmark.model"]) == ["linsvc"]
    mlflow = tracking.setup(paths.root)
    versions = mlflow.search_model_versions(filter_string="name='scrm-benchmark-linsvc'")
    assert len(versions) == 1
    model = mlflow.sklearn.load_model(f"models:/scrm-benchmark-linsvc/{versions[0].version}")
    pred = model.predict(zoo.text_frame(["my package never arrived, where is my order"]))
    assert pred[0] == "order_delivery"
