"""Response time: definitions checked against an independent computation, hand-made threads with
known answers, and the stage end to end (outputs, MLflow runs, determinism)."""

from __future__ import annotations

import copy
import json
import shutil
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from scrm import response_time as rt
from scrm import sentiment
from scrm.config import (PROJECT_ROOT, OpeningsSettings, Paths, ResponseTimeSettings,
                         load_params, load_settings, settings_from_dict)
from scrm.data.openings import build_openings
from scrm.errors import ScrmError
from scrm.response_time import models, service, stage

from conftest import make_root, tweet

DATE = "%a %b %d %H:%M:%S %z %Y"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _openings_settings(root: Path) -> OpeningsSettings:
    return load_settings(root).openings


def _settings(root: Path, **overrides: Any) -> ResponseTimeSettings:
    """The run root's response_time settings with some keys changed (validated like params.yaml)."""
    params = copy.deepcopy(load_params(root))
    params["response_time"].update(overrides)
    return settings_from_dict(params).response_time


def _score(paths: Paths) -> Paths:
    """Run the sentiment stage (the stage reads its scores) on a prepared root."""
    sentiment.run(paths, load_settings(paths.root).sentiment)
    return paths


def _frame(paths: Paths, openings: pl.DataFrame | None = None,
           **overrides: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The stage's per-opening frame from the root's tables (or from the given opening table)."""
    return rt.opening_frame(pl.read_parquet(paths.openings) if openings is None else openings,
                            pl.read_parquet(paths.tweets), pl.read_parquet(paths.threads),
                            pl.read_parquet(paths.sentiment), _settings(paths.root, **overrides))


def _copy_prepared(src: Paths, tmp: Path) -> Paths:
    """A fresh run root holding the prepared sample (so MLflow writes land in tmp only)."""
    paths = make_root(tmp)
    for p in (src.tweets, src.threads, src.openings):
        dst = paths.root / p.relative_to(src.root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    return paths


@pytest.fixture(scope="module")
def scored_root(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """The prepared sample plus its sentiment scores, in a root of its own (read-only for tests)."""
    return _score(_copy_prepared(prepared_root, tmp_path_factory.mktemp("rt_scored")))


@pytest.fixture(scope="module")
def _mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('rt_mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _shared_mlflow(monkeypatch: pytest.MonkeyPatch, _mlflow_db: str) -> None:
    """One temp tracking store for this module (as a team's shared server would be): the stage
    tests never touch prepared_root's store, and the database is created once, not per test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _mlflow_db)


def _runs_of(paths: Paths) -> Any:
    """This root's runs in the shared store (matched by the content hash of its inputs)."""
    from scrm import tracking

    runs = tracking.list_runs(rt.EXPERIMENT, paths.root)
    return runs[runs["tags.scrm.data_sha256"] == tracking.data_hash(stage.inputs(paths))]


# --------------------------------------------------------------------------------------------------
# (a) the real sample against an independent computation over the CSV
# --------------------------------------------------------------------------------------------------
def _independent_latencies(rows: list[dict[str, str]]) -> tuple[int, dict[int, float]]:
    """Plain Python, the ``customer`` definition of "answered": opening = inbound tweet with no
    in_response_to_tweet_id; its thread = the tweets whose in_response_to_tweet_id chain leads to
    it; first response = earliest (time, id) non-inbound tweet of the thread that replies to a tweet
    written by the opening's author."""
    by_id = {int(r["tweet_id"]): r for r in rows}
    parent = {i: int(float(r["in_response_to_tweet_id"])) for i, r in by_id.items()
              if r["in_response_to_tweet_id"]}

    def root(i: int) -> int:
        seen = set()
        while parent.get(i) in by_id and i not in seen:
            seen.add(i)
            i = parent[i]
        return i

    at = {i: datetime.strptime(r["created_at"], DATE) for i, r in by_id.items()}
    opened = {i for i, r in by_id.items()
              if r["inbound"] == "True" and r["in_response_to_tweet_id"] == ""}
    first: dict[int, tuple[datetime, int]] = {}
    for i, r in by_id.items():
        p = parent.get(i)
        if r["inbound"] == "False" and p in by_id:
            o = root(i)
            if o in opened and by_id[p]["author_id"] == by_id[o]["author_id"]:
                first[o] = min(first.get(o, (at[i], i)), (at[i], i))
    return len(opened), {o: max((t - at[o]).total_seconds(), 0.0) for o, (t, _) in first.items()}


def test_sample_matches_independent_computation(scored_root: Paths,
                                                sample_rows: list[dict[str, str]]) -> None:
    assert load_settings(scored_root.root).openings.answered_definition == "customer"
    n_open, latency = _independent_latencies(sample_rows)
    op, info = _frame(scored_root)
    tweets = pl.read_parquet(scored_root.tweets)
    replies = service.reply_latencies(tweets, op["opening_tweet_id"])
    overall = service.overall_summary(op, replies, _settings(scored_root.root), info)

    assert n_open > 1000 and 0.5 < len(latency) / n_open < 1.0  # the sample is what we think
    assert overall["n_openings"] == op.height == n_open
    assert overall["n_answered"] == len(latency)
    assert overall["answered_share"] == round(len(latency) / n_open, 6)
    assert overall["median_latency_min"] == round(statistics.median(latency.values()) / 60.0, 6)
    # not only the summary: every opening's latency agrees
    mine = dict(op.filter(pl.col("answered")).select("opening_tweet_id", "latency_s").iter_rows())
    assert mine == latency
    # censoring: unanswered openings are followed to the end of the data or for the horizon
    # (params: 7 days), whichever comes first; nothing is dropped
    end = max(datetime.strptime(r["created_at"], DATE) for r in sample_rows)
    horizon = timedelta(hours=_settings(scored_root.root).horizon_hours)
    un = op.filter(~pl.col("answered"))
    assert un.height == n_open - len(latency) and not un["event"].any()
    assert un["censor_at"].to_list() == [min(end, t + horizon) for t in un["opening_at"]]
    assert overall["km_median_min"] >= overall["median_latency_min"]  # censored = slower


def test_sample_time_split_has_no_future_leak(scored_root: Paths) -> None:
    op, _ = _frame(scored_root)
    train, test = op.filter(pl.col("split") == "train"), op.filter(pl.col("split") == "test")
    assert train["opening_at"].max() < test["opening_at"].min()
    assert abs(train.height / op.height - 0.7) < 0.02


# --------------------------------------------------------------------------------------------------
# (b) hand-made threads with known answers
# --------------------------------------------------------------------------------------------------
HAND_MADE = [
    tweet(1, "101", 0, "@BrandA help?"),
    tweet(2, "BrandA", 10, "@101 hi", parent=1),            # first response: 600 s
    tweet(3, "BrandA", 12, "@101 DM us", parent=1),         # a second reply, not the first
    tweet(4, "101", 30, "@BrandA still broken", parent=2),
    tweet(5, "BrandA", 50, "@101 sorry", parent=4),         # later turn: 1200 s
    tweet(6, "102", 20, "@BrandA hi"),
    tweet(7, "BrandA", 140, "@102 hello", parent=6),        # 7200 s: answered, not within 1 h
    tweet(8, "101", 90, "@BrandA again!"),                  # customer 101 opens a second time
    tweet(9, "BrandA", 95, "@101 on it", parent=8),         # 300 s
    tweet(10, "103", 100, "@brandb anyone?"),               # never answered: brand from mention
    tweet(11, "101", 105, "@BrandB hello"),                 # 101's third opening, other brand
    tweet(12, "BrandB", 200, "@101 hey", parent=11),        # 5700 s
    tweet(15, "106", 100, "@someone @BrandA ?"),
    tweet(16, "BrandA", 135, "@106 yes", parent=15),        # 2100 s
    tweet(17, "107", 130, "@BrandA waiting"),               # never answered
    tweet(13, "104", 300, "@BrandA last one"),              # never answered
    tweet(14, "105", 400, "@nobody hi"),                    # no known brand; the last tweet
]

EXPECTED = {  # opening -> brand, source, latency_s, within_1h, known, duration_s, event
    1: ("BrandA", "first_reply", 600.0, True, True, 600.0, True),
    6: ("BrandA", "first_reply", 7200.0, False, True, 7200.0, True),
    8: ("BrandA", "first_reply", 300.0, True, True, 300.0, True),
    10: ("BrandB", "mention", None, False, True, 300 * 60.0, False),
    11: ("BrandB", "first_reply", 5700.0, False, True, 5700.0, True),
    13: ("BrandA", "mention", None, False, True, 100 * 60.0, False),
    14: (rt.UNKNOWN_BRAND, "none", None, False, False, 0.0, False),
    15: ("BrandA", "first_reply", 2100.0, True, True, 2100.0, True),
    17: ("BrandA", "mention", None, False, True, 270 * 60.0, False),
}
FEATURES = {  # opening -> prior_any, prior_brand, inbound_load (60 min), backlog (24 h)
    1: (0, 0, 0, 0),
    6: (0, 0, 1, 0),    # load: tweet 1 at t-20
    8: (1, 1, 1, 1),    # load: tweet 4 exactly 60 min before (window is [t-60, t)); 6 pending
    10: (0, 0, 0, 0),
    11: (2, 0, 1, 1),   # 101's third opening, first to BrandB; 10 pending at BrandB
    13: (0, 0, 0, 1),   # 17 still pending (opened 170 min before, inside 24 h)
    14: (0, 0, 0, 0),
    15: (0, 0, 1, 1),   # 8 answered at 95 before 100; 6 still pending
    17: (0, 0, 2, 2),   # load: 8 and 15; pending: 6 (answered at 140) and 15 (at 135)
}


@pytest.fixture
def hand_made(tiny_root: Any) -> Paths:
    return _score(tiny_root(HAND_MADE))


def test_hand_made_targets_and_features(hand_made: Paths) -> None:
    op, info = _frame(hand_made)
    assert sorted(op["opening_tweet_id"].to_list()) == sorted(EXPECTED)
    rows = {r["opening_tweet_id"]: r for r in op.to_dicts()}
    for oid, (brand, source, lat, w1h, known, dur, event) in EXPECTED.items():
        r = rows[oid]
        got = (r["brand"], r["brand_source"], r["latency_s"], r["answered_within_1h"],
               r["within_1h_known"], r["duration_s"], r["event"])
        assert got == (brand, source, lat, w1h, known, dur, event), oid
        assert r["answered"] is (lat is not None)
    for oid, want in FEATURES.items():
        r = rows[oid]
        got = (r["prior_openings_any"], r["prior_openings_brand"], r["inbound_load"],
               r["backlog"])
        assert got == want, oid
    assert rows[1]["first_response_id"] == 2 and rows[1]["responder"] == "BrandA"
    assert (rows[1]["hour_utc"], rows[1]["weekday_utc"]) == (12, 2)  # Tue 31 Oct 2017 12:00 UTC
    assert rows[13]["hour_utc"] == 17
    assert (rows[15]["n_mentions"], rows[15]["n_questions"], rows[15]["len_chars"]) == (2, 1, 18)
    assert all(-1.0 <= r["sentiment"] <= 1.0 for r in rows.values())
    assert info["negative_latency_clipped"] == 0


def test_hand_made_windows_and_horizon(hand_made: Paths) -> None:
    short, _ = _frame(hand_made, backlog_window_hours=2)
    backlog = dict(short.select("opening_tweet_id", "backlog").iter_rows())
    assert backlog[13] == 0       # 17 was opened 170 min before: outside a 2 h backlog window
    assert backlog[17] == 2 and backlog[11] == 1
    wide, _ = _frame(hand_made, load_window_minutes=120)
    load = dict(wide.select("opening_tweet_id", "inbound_load").iter_rows())
    assert load[17] == 4          # tweets 1 at 0 is outside [10, 130); 4, 6, 8, 15 inside
    capped, _ = _frame(hand_made, horizon_hours=1, rmst_hours=1)
    r = {x["opening_tweet_id"]: x for x in capped.to_dicts()}
    assert (r[6]["event"], r[6]["duration_s"], r[6]["answered"]) == (False, 3600.0, True)
    assert (r[10]["event"], r[10]["duration_s"]) == (False, 3600.0)
    assert (r[1]["event"], r[1]["duration_s"]) == (True, 600.0)
    assert r[14]["duration_s"] == 0.0


def test_hand_made_service_table_and_replies(hand_made: Paths) -> None:
    op, info = _frame(hand_made)
    tweets = pl.read_parquet(hand_made.tweets)
    replies = service.reply_latencies(tweets, op["opening_tweet_id"])
    assert dict(replies.select("reply_id", "latency_s").iter_rows()) == {
        2: 600.0, 3: 720.0, 5: 1200.0, 7: 7200.0, 9: 300.0, 12: 5700.0, 16: 2100.0}
    assert replies.filter(~pl.col("to_opening"))["reply_id"].to_list() == [5]
    settings = _settings(hand_made.root)
    table = {r["brand"]: r for r in service.service_table(op, replies, settings).to_dicts()}
    a = table["BrandA"]
    assert (a["n_openings"], a["n_answered"]) == (6, 4)
    assert a["answered_share"] == pytest.approx(4 / 6)
    assert a["median_latency_min"] == 22.5          # median of 5, 10, 35, 120 minutes
    # 13 and 17 are unanswered and followed 100 and 270 min: not served within 15 min or 1 h,
    # unknown at 24 h (left out of that denominator)
    assert (a["n_known_15m"], a["n_known_1h"], a["n_known_24h"]) == (6, 6, 4)
    assert (a["share_within_15m"], a["share_within_1h"], a["share_within_24h"]) == \
        pytest.approx((2 / 6, 3 / 6, 1.0), abs=1e-6)
    assert (a["n_replies"], a["n_later_replies"], a["later_median_min"]) == (6, 1, 20.0)
    assert a["answered_share_ci_low"] < 4 / 6 < a["answered_share_ci_high"]
    overall = service.overall_summary(op, replies, settings, info)
    assert (overall["n_later_replies"], overall["later_median_min"]) == (1, 20.0)
    assert overall["end_of_data"] == "2017-10-31T18:40:00+00:00"


def test_stage_on_tiny_data_skips_models_with_reasons(hand_made: Paths) -> None:
    m = rt.run(hand_made, _settings(hand_made.root, log_models=False),
               _openings_settings(hand_made.root))
    assert m["overall"]["n_openings"] == 9
    for task in ("within_1h", "log_latency"):
        for v in m["models"][task].values():
            assert v["status"] == "skipped" and "min_train_rows" in v["reason"]
    assert m["models"]["cox"]["status"] == "skipped"
    assert hand_made.response_time.exists()
    assert hand_made.importance_png.exists()  # says why it is empty
    runs = _runs_of(hand_made)
    assert list(runs["tags.mlflow.runName"]) == ["service_levels"]  # no model was fitted
    assert runs["metrics.n_openings"].iloc[0] == 9


def test_answered_follows_the_opening_table(tiny_root: Any) -> None:
    """A brand answering only the customer's follow-up answers the opening under ``customer`` (the
    params default) and not under ``direct``: the stage takes "answered" from the opening table."""
    paths = _score(tiny_root([
        tweet(1, "201", 0, "@BrandA help"),
        tweet(2, "201", 5, "@BrandA hello??", parent=1),   # the customer follows up
        tweet(3, "BrandA", 20, "@201 hi", parent=2),        # the brand answers the follow-up
        tweet(4, "202", 30, "@BrandA hi"),                  # the last tweet: end of data
    ]))
    op, _ = _frame(paths)
    r = {x["opening_tweet_id"]: x for x in op.to_dicts()}
    assert (r[1]["answered"], r[1]["first_response_id"], r[1]["latency_s"]) == (True, 3, 1200.0)
    assert (r[1]["brand"], r[1]["brand_source"], r[1]["event"]) == ("BrandA", "first_reply", True)
    params = copy.deepcopy(load_params(paths.root))
    params["openings"]["answered_definition"] = "direct"
    direct = build_openings(pl.read_parquet(paths.tweets), pl.read_parquet(paths.threads),
                            settings_from_dict(params).openings)
    op, _ = _frame(paths, direct)
    r = {x["opening_tweet_id"]: x for x in op.to_dicts()}
    assert (r[1]["answered"], r[1]["event"], r[1]["duration_s"]) == (False, False, 30 * 60.0)


def test_missing_inputs_name_the_command(tiny_root: Any) -> None:
    paths = tiny_root(HAND_MADE)  # prepared, but never scored
    with pytest.raises(ScrmError, match="scrm sentiment"):
        rt.run(paths, _settings(paths.root, log_models=False), _openings_settings(paths.root))


def test_bad_params_are_named() -> None:
    def with_rt(**changes: Any) -> dict[str, Any]:
        params = copy.deepcopy(load_params(PROJECT_ROOT))
        params["response_time"].update(changes)
        return params

    with pytest.raises(ScrmError, match="unknown key.*horizon_hour\\b"):
        settings_from_dict(with_rt(horizon_hour=3))
    with pytest.raises(ScrmError, match="train_fraction"):
        settings_from_dict(with_rt(train_fraction=1.5))
    with pytest.raises(ScrmError, match="rmst_hours"):
        settings_from_dict(with_rt(rmst_hours=200, horizon_hours=168))


# --------------------------------------------------------------------------------------------------
# (c) the stage end to end on the real sample
# --------------------------------------------------------------------------------------------------
def test_stage_writes_outputs_and_mlflow_runs(prepared_root: Paths, tmp_path: Path,
                                              sample_rows: list[dict[str, str]]) -> None:
    paths = _score(_copy_prepared(prepared_root, tmp_path))
    m = rt.run(paths, _settings(paths.root, log_models=False), _openings_settings(paths.root))
    metrics_file = paths.metric("response_time")
    first_bytes = metrics_file.read_bytes()
    assert json.loads(first_bytes) == json.loads(json.dumps(m))

    n_open, latency = _independent_latencies(sample_rows)
    assert (m["openings"]["openings"], m["openings"]["answered"]) == (n_open, len(latency))
    n_req = m["openings"]["requests"]
    assert m["population"] == "requests" and m["overall"]["n_openings"] == n_req
    assert n_req + sum(m["openings"]["non_requests"].values()) == n_open
    assert len(m["brands"]) == 10 and "AmazonHelp" in m["brands"]
    assert m["logrank"]["df"] == 4 and 0 < m["logrank"]["p_value"] < 1e-6
    cls, reg = m["models"]["within_1h"], m["models"]["log_latency"]
    assert set(cls) == {"dummy", "brand_rate", "logistic", "hgb"}
    assert set(reg) == {"brand_median", "ridge", "hgb"}
    assert cls["dummy"]["auc"] == 0.5 and cls["logistic"]["auc"] > 0.6
    assert all(0 <= v["brier"] <= 1 for v in cls.values())
    assert set(m["importance"]) == {"within_1h", "log_latency"}

    op = pl.read_parquet(paths.response_time)
    assert op.height == n_req and set(rt.FEATURES) <= set(op.columns)
    table = pl.read_parquet(paths.service_table)
    assert table["n_openings"].sum() == n_req
    km = pl.read_csv(paths.km_plot)
    assert {"brand", "minutes", "still_waiting", "at_risk"} <= set(km.columns)
    assert km.group_by("brand").agg(pl.col("still_waiting").diff().max())["still_waiting"] \
        .max() <= 0  # survival curves never go up
    lat = pl.read_csv(paths.latency_plot)
    assert (lat["p25_min"] <= lat["median_min"]).all() and (lat["median_min"]
                                                           <= lat["p75_min"]).all()
    assert paths.importance_png.stat().st_size > 10_000

    runs = _runs_of(paths)
    names = set(runs["tags.mlflow.runName"])
    assert {"service_levels", "within_1h/logistic", "log_latency/hgb", "cox/phreg"} <= names
    logistic = runs[runs["tags.mlflow.runName"] == "within_1h/logistic"].iloc[0]
    assert logistic["metrics.auc"] == cls["logistic"]["auc"]
    assert logistic["params.seed"] == "42" and len(logistic["tags.scrm.data_sha256"]) == 64

    # deterministic, wherever the work runs: params.yaml's n_jobs (> 1: Cox in a second process,
    # importance over processes) and everything in this process give the same bytes
    assert _settings(paths.root).n_jobs > 1
    rt.run(paths, _settings(paths.root, log_models=False, n_jobs=1),
           _openings_settings(paths.root))
    assert metrics_file.read_bytes() == first_bytes


@pytest.mark.slow
def test_stage_registers_models(prepared_root: Paths, tmp_path: Path) -> None:
    from scrm import tracking

    paths = _score(_copy_prepared(prepared_root, tmp_path))
    rt.run(paths, _settings(paths.root, log_models=["logistic"], cox=False, importance_repeats=1),
           _openings_settings(paths.root))
    mlflow = tracking.setup(paths.root)
    client = mlflow.MlflowClient()
    model = client.get_registered_model("scrm-response-time-within1h-logistic")
    assert model.latest_versions
    loaded = mlflow.sklearn.load_model(f"models:/{model.name}/{model.latest_versions[0].version}")
    X = models.model_frame(pl.read_parquet(paths.response_time).head(5))
    p = loaded.predict_proba(X)[:, 1]
    assert ((0 <= p) & (p <= 1)).all()
