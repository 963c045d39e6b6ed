"""Conversation outcome: labels of hand-made trajectories, no leakage from later turns, template-ness,
interval maths, and the stage on the real sample (outputs, metrics, MLflow, determinism).

The stage reads the ``sentiment`` stage's table, so every root here runs that stage first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import make_root, tweet, write_twcs
from scrm import outcome as oc
from scrm import sentiment, tracking
from scrm.config import OutcomeSettings, Paths, load_settings
from scrm.outcome import models, stage, trajectories
from scrm.outcome.findings import label_counts, transition_table
from scrm.outcome.reply_features import (PREDICTORS, TemplateReference, normalise_for_template,
                                         reply_features)
from scrm.stats.intervals import newcombe_interval, wilson_interval

BRAND = "AcmeHelp"
NEG = "@AcmeHelp This is terrible, the worst service ever!"
GOOD = "@AcmeHelp ok thanks, all good now"
BAD = "@AcmeHelp Still bad, terrible"


def _settings(root: Path | None = None) -> OutcomeSettings:
    return load_settings(root).outcome


def _scored(paths: Paths) -> Paths:
    """Run the sentiment stage in a prepared root (the outcome stage reads its table)."""
    sentiment.run(paths, load_settings(paths.root).sentiment)
    return paths


def _outcome(paths: Paths, settings: OutcomeSettings | None = None) -> pl.DataFrame:
    """Trajectories + first-reply predictors of a scored root, exactly as the stage builds them."""
    settings = settings or _settings(paths.root)
    data = stage.read_inputs(paths)
    return trajectories.build_outcome(data.tweets, data.openings, data.threads, settings)


@pytest.fixture(scope="module")
def scored_root(prepared_root, tmp_path_factory) -> Paths:
    """A copy of the prepared real sample in which the sentiment stage has run."""
    root = tmp_path_factory.mktemp("outcome_scored")
    shutil.copy(prepared_root.root / "params.yaml", root / "params.yaml")
    shutil.copytree(prepared_root.root / "data", root / "data")
    return _scored(Paths(root))


@pytest.fixture(scope="module")
def sample_outcome(scored_root) -> pl.DataFrame:
    """Trajectories + predictors of the real sample (computed once for the module)."""
    return _outcome(scored_root)


# thread root id -> (tweets, expected label)
TRAJECTORIES = {
    1: ([tweet(1, "101", 0, NEG), tweet(2, BRAND, 30, "@101 Sorry to hear that, please DM us ^AB", 1),
         tweet(3, "101", 40, "@AcmeHelp Thanks, that fixed it, great!", 2)], "recovered"),
    10: ([tweet(10, "102", 0, NEG), tweet(11, BRAND, 90, "@102 We are on it.", 10),
          tweet(12, "102", 100, "@AcmeHelp Still broken. Awful.", 11)], "stayed_negative"),
    20: ([tweet(20, "103", 0, "@AcmeHelp where is my parcel"), tweet(21, BRAND, 5, "@103 Checking.", 20),
          tweet(22, "103", 9, "@AcmeHelp This is useless and horrible.", 21)], "deteriorated"),
    30: ([tweet(30, "104", 0, "@AcmeHelp Love the new app!"),
          tweet(31, BRAND, 5, "@104 Thanks for the kind words", 30),
          tweet(32, "104", 9, "@AcmeHelp You are great :)", 31)], "stable_non_negative"),
    40: ([tweet(40, "105", 0, NEG), tweet(41, BRAND, 5, "@105 Sorry!", 40)], "no_follow_up"),
    50: ([tweet(50, "106", 0, NEG)], "unanswered"),
    55: ([tweet(55, "112", 0, "worst service ever, terrible")], "unanswered"),  # mentions no brand
    # the LAST turn decides, not the first follow-up
    60: ([tweet(60, "107", 0, NEG), tweet(61, BRAND, 5, "@107 Sorry!", 60), tweet(62, "107", 9, BAD, 61),
          tweet(63, BRAND, 12, "@107 Let us check.", 62), tweet(64, "107", 15, GOOD, 63)], "recovered"),
    70: ([tweet(70, "111", 0, NEG), tweet(71, BRAND, 5, "@111 Sorry!", 70), tweet(72, "111", 9, GOOD, 71),
          tweet(73, BRAND, 12, "@111 Great.", 72), tweet(74, "111", 15, BAD, 73)], "stayed_negative"),
    # a happy turn BEFORE the first reply is no follow-up
    80: ([tweet(80, "108", 0, NEG),
          tweet(81, "108", 2, "@AcmeHelp I am also very happy with the staff", 80),
          tweet(82, BRAND, 5, "@108 Thanks!", 81)], "no_follow_up"),
    # another customer chiming in is not the opener's follow-up
    90: ([tweet(90, "109", 0, NEG), tweet(91, BRAND, 5, "@109 Sorry!", 90),
          tweet(92, "110", 9, GOOD, 91)], "no_follow_up"),
}
# a brand-rooted thread: not an opening, counted as excluded
BRAND_ROOT = [tweet(100, BRAND, 1, "We are live! Ask us anything.")]


def _rows() -> list[dict]:
    return [t for rows, _ in TRAJECTORIES.values() for t in rows] + BRAND_ROOT


def test_hand_made_trajectories_get_the_right_labels(tiny_root):
    paths = _scored(tiny_root(_rows()))
    o = _outcome(paths).sort("thread_id")
    got = dict(zip(o["thread_id"].to_list(), o["label"].to_list()))
    assert got == {tid: lab for tid, (_, lab) in TRAJECTORIES.items()}
    # the texts carry the sentiment the labels rely on
    cls = dict(zip(o["thread_id"].to_list(), o["opening_class"].to_list()))
    assert cls[1] == cls[10] == cls[60] == "negative" and cls[30] == "positive"
    row = o.filter(pl.col("thread_id") == 80).row(0, named=True)
    assert row["n_customer_turns_before_reply"] == 1 and row["n_followups"] == 0
    row = o.filter(pl.col("thread_id") == 60).row(0, named=True)
    assert row["last_tweet_id"] == 64 and row["n_followups"] == 2 and row["reply_tweet_id"] == 61
    assert row["latency_min"] == pytest.approx(5.0)
    assert o.filter(pl.col("thread_id") == 50)["answered"].item() is False
    counts = label_counts(o)
    assert sum(counts.values()) == len(TRAJECTORIES) and counts["unanswered"] == 2
    brand = dict(zip(o["thread_id"].to_list(), o["brand_source"].to_list()))
    assert brand[1] == "first_reply" and brand[50] == "mention" and brand[55] == "none"


def test_transitions_cover_every_thread(tiny_root):
    o = _outcome(_scored(tiny_root(_rows())))
    tr = transition_table(o)
    assert tr["n"].sum() == o.height
    assert tr.height == 3 * 5  # neg/neu/pos x (neg, neu, pos, no_follow_up, unanswered)
    assert tr.filter((pl.col("source") == "negative") & (pl.col("target") == "unanswered"))["n"].item() == 2
    # 1 and 60 end positive/neutral from a negative opening
    recovered_edges = tr.filter((pl.col("source") == "negative")
                                & pl.col("target").is_in(["neutral", "positive"]))["n"].sum()
    assert recovered_edges == 2


def test_stage_on_a_tiny_root_counts_everything_and_skips_models(tiny_root):
    """Too few threads for a model: recorded in the metrics, no crash; unanswered + excluded counted."""
    paths = _scored(tiny_root(_rows()))
    settings = load_settings(paths.root)
    res = oc.compute(paths, settings.outcome, settings.sentiment)
    m = res.metrics
    assert m["threads"]["threads"] == len(TRAJECTORIES) + 1
    assert m["threads"]["excluded_not_opening"] == 1
    assert m["threads"]["unanswered"] == 2
    assert sum(m["labels"].values()) == m["threads"]["openings"]
    assert "skipped" in m["model"] and "need at least 5 of each" in m["model"]["skipped"]
    # unanswered openings are counted per brand they mention, or under "(none)"
    assert m["labels_by_brand"]["(none)"] == {lab: int(lab == "unanswered") for lab in oc.LABELS}
    assert m["labels_by_brand"][BRAND]["unanswered"] == 1
    assert "skipped" in m["odds_ratios"]
    assert res.outcome.height == m["threads"]["openings"]


def test_reply_markers_on_hand_made_replies():
    settings = _settings()
    base = {"opening_at": [None] * 5, "reply_at": [None] * 5}
    texts = [
        "@123 Hi Sarah, so sorry about that, I understand! Could you DM us your order? ^AB https://t.co/x",
        "@123 Hey there, thanks for reaching out. Check our status page.",
        "@123 We apologise for the delay. Please give us a call. -Becky",
        "@123 That's great to hear, Tracey. Enjoy!",
        "@123 Here to help. Send us a note at https://t.co/ab so our team can connect. 1/2",
    ]
    from datetime import datetime, timezone

    t0 = datetime(2017, 10, 31, 10, tzinfo=timezone.utc)
    df = pl.DataFrame({"reply_text": texts, **base}).with_columns(
        opening_at=pl.lit(t0), reply_at=pl.lit(t0) + pl.duration(minutes=pl.Series([5, 59, 61, 0, 600])))
    f = reply_features(df, settings)
    col = {c: f[c].to_list() for c in f.columns}
    assert col["apology"] == [True, False, True, False, False]
    assert col["empathy"] == [True, False, False, False, False]
    assert col["thanks"] == [False, True, False, False, False]
    assert col["off_social"] == [True, False, True, False, True]
    assert col["addresses_name"] == [True, False, False, True, False]  # "Hey there" is no name
    assert col["agent_signoff"] == [True, False, True, False, False]
    assert col["has_link"] == [True, False, False, False, True]
    assert col["question_back"] == [True, False, False, False, False]
    assert col["fast_reply"] == [True, True, False, True, False]
    assert col["opening_hour"] == [10] * 5


def test_later_customer_turns_do_not_change_any_predictor(scored_root, sample_outcome, tmp_path):
    """Rewrite half of the customer turns that follow a thread's first brand reply (the opening's
    first response in openings.parquet) on the real sample, delete the other half, re-prepare: every
    predictor of every answered opening is the same (while labels do change, so the perturbation is
    real)."""
    settings = _settings(scored_root.root)
    base = sample_outcome.filter(pl.col("answered"))

    tweets = pl.read_parquet(scored_root.tweets)
    first = (pl.read_parquet(scored_root.openings).filter(pl.col("answered"))
             .join(tweets.select(first_response_id="tweet_id", first_brand_turn="turn"),
                   on="first_response_id")
             .select("thread_id", "first_brand_turn"))
    later = (tweets.join(first, on="thread_id").filter(
        (pl.col("role") == "customer") & (pl.col("turn") > pl.col("first_brand_turn")))["tweet_id"])
    later_ids = set(later.to_list())
    delete = {t for t in later_ids if t % 2 == 0}
    assert len(later_ids) > 300 and len(delete) > 100

    raw = pl.read_csv(scored_root.raw_csv, infer_schema=False)
    ids = raw["tweet_id"].cast(pl.Int64)
    raw = raw.filter(~ids.is_in(list(delete))).with_columns(
        text=pl.when(pl.col("tweet_id").cast(pl.Int64).is_in(list(later_ids - delete)))
        .then(pl.lit("@brand This is the worst, I hate you all!!! 😡")).otherwise(pl.col("text")))
    paths = make_root(tmp_path)
    write_twcs(paths.raw_csv, raw.to_dicts())
    from scrm.data import prepare

    root_settings = load_settings(paths.root)
    prepare.run(paths, root_settings.prepare, root_settings.openings)
    pert = _outcome(_scored(paths), settings)

    cols = ["thread_id", "reply_tweet_id", "reply_author", "reply_at", "latency_min",
            "template_dups", "template_reply", *PREDICTORS]
    a = base.select(cols).sort("thread_id")
    b = pert.filter(pl.col("thread_id").is_in(a["thread_id"].implode())).select(cols).sort("thread_id")
    assert b.height == a.height
    assert_frame_equal(a, b)
    changed = base.select("thread_id", "label").join(pert.select("thread_id", "label"),
                                                     on="thread_id", suffix="_p")
    assert (changed["label"] != changed["label_p"]).sum() > 50


def test_template_similarity_is_leave_one_out_cosine_to_the_brand_centroid(scored_root,
                                                                          sample_outcome):
    """The closed form equals a brute-force centroid built without the reply itself."""
    o = sample_outcome.filter(pl.col("answered"))
    settings = _settings(scored_root.root)
    o = o.with_columns(reply_norm=normalise_for_template("reply_text", settings.signoff_patterns))
    tp = settings.template
    ref = TemplateReference(tp.max_features, tp.ngram_max, tp.min_df).fit(
        o["reply_tweet_id"].to_list(), o["reply_author"].to_list(), o["reply_norm"].to_list())
    brand = o.group_by("reply_author").len().sort("len", descending=True)["reply_author"][0]
    sub = o.filter(pl.col("reply_author") == brand)
    got = ref.score(sub["reply_tweet_id"].to_list(), sub["reply_author"].to_list(),
                    sub["reply_norm"].to_list())
    V = ref.vectorizer_.transform(sub["reply_norm"].to_list()).toarray()
    total = V.sum(axis=0)
    for i in range(0, sub.height, 3):
        if not V[i].any():  # no known word: nothing to be similar with
            assert got["template_sim"][i] is None
            continue
        c = (total - V[i]) / (sub.height - 1)
        expected = V[i] @ c / np.linalg.norm(c)
        assert got["template_sim"][i] == pytest.approx(expected, abs=1e-6)
    # a reply outside the reference is compared with the whole centroid; its duplicates all count
    text = sub["reply_norm"][0]
    new = ref.score([-1], [brand], [text])
    v = ref.vectorizer_.transform([text]).toarray()[0]
    assert new["template_sim"][0] == pytest.approx(v @ total / np.linalg.norm(total), abs=1e-6)
    assert new["template_dups"][0] == (sub["reply_norm"] == text).sum()
    assert got["template_dups"][0] == (sub["reply_norm"] == text).sum() - 1
    # an unknown brand has no repertoire
    assert ref.score([-2], ["NoSuchBrand"], [text])["template_sim"][0] is None


def test_wilson_and_newcombe_match_published_values():
    lo, hi = wilson_interval(np.array([0, 10]), np.array([10, 20]), 1.959964)
    assert lo[0] == pytest.approx(0.0, abs=1e-4) and hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert lo[1] == pytest.approx(0.2993, abs=1e-4) and hi[1] == pytest.approx(0.7007, abs=1e-4)
    # Newcombe (1998), example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339
    dl, dh = newcombe_interval(np.array([56]), np.array([70]), np.array([48]), np.array([80]),
                                  1.959964)
    assert dl[0] == pytest.approx(0.0524, abs=1e-4) and dh[0] == pytest.approx(0.3339, abs=1e-4)


def test_rank_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300) + 0.3 * y, 1)  # coarse scores: many ties
    assert models.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert models.auc(np.ones(5), np.arange(5)) is None


def test_models_are_skipped_not_crashed_when_a_class_is_missing(scored_root, sample_outcome):
    settings = _settings(scored_root.root)
    o = sample_outcome
    only_recovered = o.with_columns(label=pl.when(pl.col("label") == "stayed_negative")
                                    .then(pl.lit("recovered")).otherwise(pl.col("label")))
    only_recovered = only_recovered.with_columns(recovered=pl.col("label") == "recovered")
    cv = models.cross_validate(only_recovered, settings, 0)
    assert cv["n_negative"] == 0 and "need at least" in cv["skipped"] and cv["models"] == {}
    ors = models.odds_ratios(trajectories.model_population(only_recovered), settings, 0)
    assert "skipped" in ors


def test_cross_validation_never_splits_a_customer(scored_root, sample_outcome, monkeypatch):
    """Every fold's test customers are absent from its training rows and from its template reference."""
    settings = _settings(scored_root.root)
    o = sample_outcome
    # give two threads the same customer so that the grouping matters
    pop_ids = trajectories.model_population(o)["thread_id"].to_list()
    o = o.with_columns(customer_id=pl.when(pl.col("thread_id").is_in(pop_ids[:40]))
                       .then(pl.lit("shared")).otherwise(pl.col("customer_id")))
    seen: list[tuple[set, set]] = []
    real = models.add_template_features

    def spy(df, reference, s):
        seen.append((set(df["customer_id"].to_list()), set(reference["customer_id"].to_list())))
        return real(df, reference, s)

    monkeypatch.setattr(models, "add_template_features", spy)
    from sklearn.model_selection import StratifiedGroupKFold

    pop = trajectories.model_population(o)
    y = pop["recovered"].to_numpy()
    g = pop["customer_id"].to_numpy()
    cv = models.cross_validate(o, settings, 42)
    folds = list(StratifiedGroupKFold(cv["folds"], shuffle=True, random_state=42).split(y, y, g))
    assert len(seen) == len(folds)
    for (tr, te), (_, ref_customers) in zip(folds, seen):
        assert not set(g[tr]) & set(g[te])
        assert not set(g[te]) & ref_customers
    assert sum("shared" in set(g[te]) for _, te in folds) == 1


@pytest.fixture(scope="module")
def sample_run(scored_root, tmp_path_factory):
    """The stage on a copy of the prepared and scored real sample."""
    root = tmp_path_factory.mktemp("outcome_stage")
    shutil.copy(scored_root.root / "params.yaml", root / "params.yaml")
    shutil.copytree(scored_root.root / "data", root / "data")
    paths = Paths(root)
    settings = load_settings(root)
    metrics = oc.run(paths, settings.outcome, settings.sentiment)
    return paths, metrics


def test_stage_on_the_sample_writes_outputs_and_metrics(sample_run):
    paths, m = sample_run
    saved = json.loads(paths.metric("outcome").read_text())
    assert saved == json.loads(json.dumps(m))
    threads = pl.read_parquet(paths.threads)
    assert m["threads"]["threads"] == threads.height
    assert m["threads"]["openings"] == int(threads["is_opening"].sum())
    assert sum(m["labels"].values()) == m["threads"]["openings"]
    assert m["labels"]["recovered"] > 50 and m["labels"]["no_follow_up"] > 100
    assert sum(sum(v.values()) for v in m["transition_matrix"].values()) == m["threads"]["openings"]
    model = m["model"]
    assert model["n"] == m["labels"]["recovered"] + m["labels"]["stayed_negative"] > 100
    assert "n=" in model["note"]
    for name in oc.MODEL_NAMES:
        auc = model["models"][name]["oof_auc"]
        lo, hi = model["models"][name]["oof_auc_ci"]
        assert auc is not None and 0.0 <= lo <= auc <= hi <= 1.0
    assert model["models"]["dummy_prior"]["fold_auc_mean"] == 0.5
    ors = m["odds_ratios"]["odds_ratios"]
    assert ors["apology"]["ci_low"] <= ors["apology"]["odds_ratio"] <= ors["apology"]["ci_high"]
    assert m["odds_ratios"]["n_boot_used"] == load_settings(paths.root).outcome.model.n_boot

    out = pl.read_parquet(paths.outcome)
    assert out.height == m["threads"]["openings"] and out["thread_id"].is_unique().all()
    assert set(PREDICTORS) <= set(out.columns)
    # the stage reads the sentiment stage's table: every tweet, scored once
    sent = pl.read_parquet(paths.sentiment)
    assert sent.height == pl.read_parquet(paths.tweets).height == m["sentiment"]["tweets_scored"]
    assert sent["sentiment"].is_between(-1, 1).all()
    f = pl.read_parquet(paths.outcome_findings)
    overall = f.filter(pl.col("scope") == "overall")
    assert sorted(overall["feature"].to_list()) == sorted(
        ["off_social", "template_reply", "apology", "fast_reply"])
    assert (overall["n_with"] + overall["n_without"] + overall["n_unknown"] == model["n"]).all()
    comparable = f["verdict"] != "not comparable"
    assert f.filter(comparable)["statement"].str.contains("association, not a causal").all()
    assert f.filter(~comparable)["statement"].str.contains("no comparison").all()
    assert f.filter(pl.col("scope") == "brand")["brand"].n_unique() == 8
    tr = pl.read_parquet(paths.outcome_transitions)
    assert tr["n"].sum() == m["threads"]["openings"]


def test_stage_logs_runs_to_mlflow(sample_run):
    paths, _ = sample_run
    runs = tracking.list_runs("outcome", paths.root)
    names = set(runs["tags.mlflow.runName"])
    assert {"trajectories", *oc.MODEL_NAMES} <= names
    assert runs["params.seed"].notna().all()
    assert runs["params.data_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    logreg = runs[runs["tags.mlflow.runName"] == "logreg"].iloc[0]
    assert 0.0 <= logreg["metrics.oof_auc"] <= 1.0
    client = tracking.setup(paths.root).MlflowClient()
    assert [m.name for m in client.search_registered_models()
            if m.name == "scrm-outcome-logreg"]


def test_same_params_give_identical_metrics(sample_run):
    paths, m = sample_run
    settings = load_settings(paths.root)
    again = oc.compute(paths, settings.outcome, settings.sentiment)
    assert json.dumps(again.metrics, sort_keys=True) == json.dumps(m, sort_keys=True)
    assert_frame_equal(again.outcome, pl.read_parquet(paths.outcome))


def test_tracking_records_skipped_models(sample_run):
    """A run whose models were skipped still logs one run per model, tagged with the reason."""
    paths, m = sample_run
    settings = load_settings(paths.root)
    skipped = {**m, "model": {"n": 3, "n_positive": 3, "skipped": "not enough threads (test)"}}
    empty = trajectories.model_population(pl.read_parquet(paths.outcome)).head(0)
    stage.track(paths, settings.outcome.replace(seed=42), settings.sentiment, skipped, empty)
    runs = tracking.list_runs("outcome", paths.root)
    tagged = runs[runs["tags.scrm.skipped"].fillna("").str.contains("test")]
    assert set(tagged["tags.mlflow.runName"]) == set(oc.MODEL_NAMES)
