"""Conversation outcome: the fixed outcome split, a measure that never sees the sealed test part,
labels of hand-made trajectories, no leakage from later turns, template-ness, and the stage on the
real sample (validity on the sealed test, silence bounds, placebo, outputs, MLflow, determinism).

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
from scrm.labelsets import draw_outcome_set, followup_threads
from scrm.outcome import effects, measure, models, stage, trajectories
from scrm.outcome.findings import label_counts, transition_table
from scrm.outcome.reply_features import (PREDICTORS, TemplateReference, normalise_for_template,
                                         reply_features)
from scrm.paths import REFERENCES
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


def _conv(paths: Paths, settings: OutcomeSettings | None = None) -> pl.DataFrame:
    """The conversation frame of a scored root, exactly as the stage builds it."""
    settings = settings or _settings(paths.root)
    data = stage.read_inputs(paths, settings)
    return trajectories.conversation_frame(data.tweets, data.openings, data.threads, settings)


def _outcome(paths: Paths, settings: OutcomeSettings | None = None,
             state_measure: measure.Measure | None = None) -> pl.DataFrame:
    """Trajectories, states (the threshold measure unless one is given) and first-reply predictors."""
    settings = settings or _settings(paths.root)
    state_measure = state_measure or measure.thresholds_measure(settings)
    return trajectories.outcome_table(_conv(paths, settings), state_measure, settings)


@pytest.fixture(scope="module")
def scored_root(prepared_root, tmp_path_factory) -> Paths:
    """A copy of the prepared real sample in which the sentiment stage has run."""
    root = tmp_path_factory.mktemp("outcome_scored")
    shutil.copy(prepared_root.root / "params.yaml", root / "params.yaml")
    shutil.copytree(prepared_root.root / "data", root / "data")
    return _scored(Paths(root))


@pytest.fixture(scope="module")
def sample_outcome(scored_root) -> pl.DataFrame:
    """Trajectories (threshold states) + predictors of the real sample (computed once)."""
    return _outcome(scored_root)


@pytest.fixture(scope="module")
def sample_measure(scored_root) -> measure.Measure:
    """The state measure fitted on the dev part of the outcome set, as the stage fits it."""
    full = load_settings(scored_root.root)
    settings = full.outcome
    labels = measure.read_labels(REFERENCES / "outcome_labels.csv")
    return measure.fit_measure(_conv(scored_root, settings), measure.dev_part(labels), settings,
                               measure.make_embedder(settings.measure, full.embed), settings.seed)


# thread root id -> (tweets, expected label under the fitted measure, under the thresholds)
OPEN_BAD = "@AcmeHelp My order never arrived and nobody answers the phone. Worst service ever!"
OPEN_GOOD = "@AcmeHelp Love the new app, great job!"
SATISFIED = "@AcmeHelp Thank you so much, that fixed it, all sorted now!"
UNHAPPY = "@AcmeHelp Still not working. I have already tried that twice, this is ridiculous"
DM_SENT = "@AcmeHelp DM sent"
TRAJECTORIES = {
    1: ([tweet(1, "101", 0, OPEN_BAD), tweet(2, BRAND, 30, "@101 Sorry to hear that, please DM us ^AB", 1),
         tweet(3, "101", 40, SATISFIED, 2)], "recovered", "recovered"),
    10: ([tweet(10, "102", 0, OPEN_BAD), tweet(11, BRAND, 90, "@102 We are on it.", 10),
          tweet(12, "102", 100, UNHAPPY, 11)], "still_unhappy", "still_unhappy"),
    15: ([tweet(15, "113", 0, OPEN_BAD), tweet(16, BRAND, 3, "@113 Please DM us your order number.", 15),
          tweet(17, "113", 9, DM_SENT, 16)], "procedural", "procedural"),
    20: ([tweet(20, "103", 0, OPEN_GOOD), tweet(21, BRAND, 5, "@103 Thanks!", 20),
          tweet(22, "103", 9, "@AcmeHelp Now it crashes every time. Useless and horrible.", 21)],
         "deteriorated", "deteriorated"),
    30: ([tweet(30, "104", 0, OPEN_GOOD), tweet(31, BRAND, 5, "@104 Thanks for the kind words", 30),
          tweet(32, "104", 9, "@AcmeHelp You are great, thank you :)", 31)],
         "stable_not_unhappy", "stable_not_unhappy"),
    40: ([tweet(40, "105", 0, OPEN_BAD), tweet(41, BRAND, 5, "@105 Sorry!", 40)], "silent", "silent"),
    50: ([tweet(50, "106", 0, OPEN_BAD)], "unanswered", "unanswered"),
    55: ([tweet(55, "112", 0, "worst service ever, terrible")], "unanswered", "unanswered"),  # no brand
    # the LAST turn decides, not the first follow-up
    60: ([tweet(60, "107", 0, OPEN_BAD), tweet(61, BRAND, 5, "@107 Sorry!", 60),
          tweet(62, "107", 9, UNHAPPY, 61), tweet(63, BRAND, 12, "@107 Let us check.", 62),
          tweet(64, "107", 15, SATISFIED, 63)], "recovered", "recovered"),
    70: ([tweet(70, "111", 0, OPEN_BAD), tweet(71, BRAND, 5, "@111 Sorry!", 70),
          tweet(72, "111", 9, SATISFIED, 71), tweet(73, BRAND, 12, "@111 Great.", 72),
          tweet(74, "111", 15, UNHAPPY, 73)], "still_unhappy", "still_unhappy"),
    # a happy turn BEFORE the first reply is silence after it (and the placebo's "end")
    80: ([tweet(80, "108", 0, OPEN_BAD), tweet(81, "108", 2, SATISFIED, 80),
          tweet(82, BRAND, 5, "@108 Thanks!", 81)], "silent", "silent"),
    # another customer chiming in is not the opener's follow-up
    90: ([tweet(90, "109", 0, OPEN_BAD), tweet(91, BRAND, 5, "@109 Sorry!", 90),
          tweet(92, "110", 9, SATISFIED, 91)], "silent", "silent"),
}
# a brand-rooted thread: not an opening, counted as excluded
BRAND_ROOT = [tweet(100, BRAND, 1, "We are live! Ask us anything.")]


def _rows() -> list[dict]:
    return [t for rows, _, _ in TRAJECTORIES.values() for t in rows] + BRAND_ROOT


def test_hand_made_threads_with_known_end_states_get_the_right_labels(tiny_root, sample_measure):
    """The measure fitted on the sample's dev labels reads hand-made threads whose states a person
    reads at once; the threshold measure and the former VADER label are given the same threads."""
    paths = _scored(tiny_root(_rows()))
    assert sample_measure.kind == "classifier"
    o = _outcome(paths, state_measure=sample_measure).sort("thread_id")
    got = dict(zip(o["thread_id"].to_list(), o["label"].to_list()))
    assert got == {tid: lab for tid, (_, lab, _) in TRAJECTORIES.items()}
    state = {r["thread_id"]: r for r in o.iter_rows(named=True)}
    assert state[15]["end_state"] == "procedural" and state[1]["end_state"] == "satisfied"
    assert state[80]["end_state"] is None and state[80]["placebo_state"] == "satisfied"
    assert state[80]["n_customer_turns_before_reply"] == 1 and state[80]["n_followups"] == 0
    assert state[60]["last_tweet_id"] == 64 and state[60]["n_followups"] == 2
    assert state[60]["reply_tweet_id"] == 61 and state[60]["latency_min"] == pytest.approx(5.0)
    assert state[50]["answered"] is False and state[40]["silent"] is True
    assert state[1]["recovered"] and not state[10]["recovered"]
    thresholds = _outcome(paths).sort("thread_id")
    assert dict(zip(thresholds["thread_id"].to_list(), thresholds["label"].to_list())) == {
        tid: lab for tid, (_, _, lab) in TRAJECTORIES.items()}
    # the former label: a neutral "DM sent" after a negative opening counted as recovered
    vader = dict(zip(o["thread_id"].to_list(), o["vader_label"].to_list()))
    assert vader[15] == "recovered" and vader[40] == "no_follow_up"
    counts = label_counts(o)
    assert sum(counts.values()) == len(TRAJECTORIES) and counts["unanswered"] == 2
    brand = dict(zip(o["thread_id"].to_list(), o["brand_source"].to_list()))
    assert brand[1] == "first_reply" and brand[50] == "mention" and brand[55] == "none"


def test_transitions_cover_every_thread(tiny_root):
    o = _outcome(_scored(tiny_root(_rows())))
    tr = transition_table(o)
    assert tr["n"].sum() == o.height
    assert tr.height == 2 * 5  # unhappy/not_unhappy x (satisfied, still_unhappy, procedural, silent, unanswered)
    assert tr.filter((pl.col("source") == "unhappy") & (pl.col("target") == "unanswered"))["n"].item() == 2
    assert tr.filter((pl.col("source") == "unhappy") & (pl.col("target") == "satisfied"))["n"].item() == 2


def test_stage_on_a_tiny_root_counts_everything_and_skips_models(tiny_root):
    """Too few threads for a model and no labelled thread in the run: the thresholds are the measure
    (recorded), models are skipped (recorded); unanswered and excluded threads are counted."""
    paths = _scored(tiny_root(_rows()))
    settings = load_settings(paths.root)
    res = oc.compute(paths, settings.outcome, settings.sentiment, settings.embed)
    m = res.metrics
    assert m["threads"]["threads"] == len(TRAJECTORIES) + 1
    assert m["threads"]["excluded_not_opening"] == 1
    assert m["threads"]["unanswered"] == 2
    assert sum(m["labels"].values()) == m["threads"]["openings"]
    assert m["measure"]["kind"] == "thresholds" and "0 found in this run" in m["measure"]["reason"]
    assert "skipped" in m["sealed_test"]
    assert "skipped" in m["model"] and "need at least 5 of each" in m["model"]["skipped"]
    # unanswered openings are counted per brand they mention, or under "(none)"
    assert m["labels_by_brand"]["(none)"] == {lab: int(lab == "unanswered") for lab in oc.LABELS}
    assert m["labels_by_brand"][BRAND]["unanswered"] == 1
    assert "skipped" in m["odds_ratios"] and "skipped" in m["competing_outcomes"]
    assert m["silence"]["outcome_counts"]["silent"] == 3
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
            "template_dups", "template_reply", "fast_reply", "opening_state", *PREDICTORS]
    a = base.select(cols).sort("thread_id")
    b = pert.filter(pl.col("thread_id").is_in(a["thread_id"].implode())).select(cols).sort("thread_id")
    assert b.height == a.height
    assert_frame_equal(a, b)
    changed = base.select("thread_id", "label", "vader_label").join(
        pert.select("thread_id", "label", "vader_label"), on="thread_id", suffix="_p")
    assert (changed["label"] != changed["label_p"]).sum() > 50
    assert (changed["vader_label"] != changed["vader_label_p"]).sum() > 50


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


def test_models_are_skipped_not_crashed_when_a_class_is_missing(scored_root, sample_outcome):
    settings = _settings(scored_root.root)
    unhappy = pl.col("answered") & (pl.col("opening_state") == "unhappy")
    all_recovered = sample_outcome.with_columns(recovered=pl.when(unhappy).then(True)
                                                .otherwise(pl.col("recovered")))
    cv = models.cross_validate(all_recovered, settings, 0)
    assert cv["n_negative"] == 0 and "need at least" in cv["skipped"] and cv["models"] == {}
    ors = effects.odds_ratios(all_recovered, settings)
    assert "skipped" in ors and ors["selection"]["kept"] == []


def test_cross_validation_never_splits_a_customer(scored_root, sample_outcome, monkeypatch):
    """Every fold's test customers are absent from its training rows and from its template reference."""
    settings = _settings(scored_root.root)
    o = sample_outcome
    # give two threads the same customer so that the grouping matters
    pop_ids = trajectories.answered_unhappy(o)["thread_id"].to_list()
    o = o.with_columns(customer_id=pl.when(pl.col("thread_id").is_in(pop_ids[:40]))
                       .then(pl.lit("shared")).otherwise(pl.col("customer_id")))
    seen: list[tuple[set, set]] = []
    real = models.add_template_features

    def spy(df, reference, s, *counts):
        seen.append((set(df["customer_id"].to_list()), set(reference["customer_id"].to_list())))
        return real(df, reference, s, *counts)

    monkeypatch.setattr(models, "add_template_features", spy)
    from sklearn.model_selection import StratifiedGroupKFold

    pop = trajectories.answered_unhappy(o)
    y = pop["recovered"].to_numpy()
    g = pop["customer_id"].to_numpy()
    cv = models.cross_validate(o, settings, 42)
    folds = list(StratifiedGroupKFold(cv["folds"], shuffle=True, random_state=42).split(y, y, g))
    assert len(seen) == len(folds)
    for (tr, te), (_, ref_customers) in zip(folds, seen):
        assert not set(g[tr]) & set(g[te])
        assert not set(g[te]) & ref_customers
    assert sum("shared" in set(g[te]) for _, te in folds) == 1


# ---------------------------------------------------------------------------------------------
# the outcome set: a fixed split, a sealed test part
# ---------------------------------------------------------------------------------------------
def test_outcome_split_is_fixed(prepared_root):
    """The draw file is exactly what the seeded draw gives on the sample's prepared tables; the
    labels and both passes cover exactly the drawn threads, with the draw's dev/test part."""
    tweets = pl.read_parquet(prepared_root.tweets)
    threads = pl.read_parquet(prepared_root.threads)
    drawn = draw_outcome_set(tweets, threads)
    shipped = pl.read_csv(REFERENCES / "outcome_draw.csv", schema_overrides={"thread_id": pl.Int64})
    assert_frame_equal(drawn.select("thread_id", "part").cast({"thread_id": pl.Int64}), shipped)
    parts = dict(zip(*shipped.group_by("part").len().sort("part").to_dict(as_series=False).values()))
    assert parts["dev"] >= 200 and parts["test"] >= 200
    labels = measure.read_labels(REFERENCES / "outcome_labels.csv")
    assert_frame_equal(labels.select("thread_id", "part"), shipped)
    for name in ("outcome_labels_pass_a.csv", "outcome_labels_pass_b.csv"):
        ids = pl.read_csv(REFERENCES / name)["thread_id"].sort().to_list()
        assert ids == shipped["thread_id"].to_list()
    # drawn from the threads in which the customer wrote after the brand's first tweet (~517)
    pool = followup_threads(tweets, threads)["thread_id"].to_list()
    assert set(shipped["thread_id"].to_list()) <= set(pool) and len(pool) > 500


def test_test_threads_never_enter_fitting(scored_root, sample_measure, tmp_path):
    """The measure takes dev rows only: a test row is refused, the fitted threads are the dev ones,
    and a stage run whose test labels are scrambled fits the very same measure (only the sealed-test
    scores move)."""
    settings = _settings(scored_root.root)
    labels = measure.read_labels(REFERENCES / "outcome_labels.csv")
    with pytest.raises(ValueError, match="sealed"):
        measure.fit_measure(_conv(scored_root, settings), labels, settings, None, 0)
    dev = set(measure.dev_part(labels)["thread_id"].to_list())
    for name, fm in sample_measure.fields.items():
        assert set(fm.dev_states) <= dev and fm.n_dev == len(fm.dev_states) > 200, name

    root = tmp_path / "scrambled"
    root.mkdir()
    shutil.copy(scored_root.root / "params.yaml", root / "params.yaml")
    shutil.copytree(scored_root.root / "data", root / "data")
    rng = np.random.default_rng(0)
    test_rows = labels["part"] == "test"
    scrambled = labels.with_columns(
        end_state=pl.when(test_rows).then(pl.Series(rng.permutation(labels["end_state"].to_numpy())))
        .otherwise(pl.col("end_state")),
        opening_state=pl.when(test_rows).then(pl.lit("not_unhappy")).otherwise(pl.col("opening_state")))
    scrambled.write_csv(root / "labels.csv")
    full = load_settings(root)
    # fewer bootstrap draws (intervals only: the fitted measure and the point scores are the same)
    mine = full.outcome.replace(
        measure=full.outcome.measure.replace(labels_file=str(root / "labels.csv"), n_boot=200),
        model=full.outcome.model.replace(n_boot=20))
    res = oc.compute(Paths(root), mine, full.sentiment, full.embed)
    assert res.metrics["measure"] == sample_measure.summary()
    for name, fm in res.measure.fields.items():
        ref = sample_measure.fields[name]
        assert fm.dev_states == ref.dev_states
        np.testing.assert_array_equal(fm.pipeline.named_steps["clf"].coef_,
                                      ref.pipeline.named_steps["clf"].coef_)
    assert res.metrics["sealed_test"]["opening_state"]["macro_f1"]["a"] < 0.6


@pytest.fixture(scope="module")
def sample_run(scored_root, tmp_path_factory):
    """The stage on a copy of the prepared and scored real sample."""
    root = tmp_path_factory.mktemp("outcome_stage")
    shutil.copy(scored_root.root / "params.yaml", root / "params.yaml")
    shutil.copytree(scored_root.root / "data", root / "data")
    paths = Paths(root)
    settings = load_settings(root)
    metrics = oc.run(paths, settings.outcome, settings.sentiment, settings.embed)
    return paths, metrics


def test_the_measure_beats_the_baseline_on_the_sealed_test(sample_run):
    """Scored once on the 210 test threads: macro-F1 and kappa of the measure above the sentiment
    thresholds' for both fields, the paired differences' intervals above zero, and the measure's
    `recovered` threads far more often satisfied in the labels than the former label's."""
    _, m = sample_run
    test = m["sealed_test"]
    assert test["n_scored"] == test["n_test_labels"] == 210
    for name in ("opening_state", "end_state"):
        for metric in ("macro_f1", "kappa"):
            r = test[name][metric]
            assert r["a"] > r["b"] and r["diff_ci"][0] > 0, (name, metric)
            assert r["a_ci"][0] <= r["a"] <= r["a_ci"][1]
        mc = test[name]["mcnemar"]
        assert mc["chi2"]["df"] == 1 and mc["p_value"] < 0.05 and mc["only_a_correct"] > mc["only_b_correct"]
        cm = np.array(test[name]["confusion_measure"])
        assert cm.sum() == 210 and np.trace(cm) / 210 == pytest.approx(test[name]["accuracy"]["a"], abs=1e-6)
    rec = test["recovered"]
    assert rec["precision_measure"]["rate"] > rec["precision_baseline"]["rate"]
    # what the former label calls recovered, people mostly do not (the issue read ~9 in 40)
    former = m["former_label_check"]
    assert former["n_vader_recovered_labelled"] > 100
    assert former["share_satisfied"]["rate"] < 0.35
    assert sum(former["labelled_end_state"].values()) == former["n_vader_recovered_labelled"]
    agree = m["labelling_agreement"]
    assert agree["end_state"]["kappa"] > 0.8 and "not people" in agree["annotators"]
    assert m["measure"]["kind"] == "classifier"


def test_silence_bounds_placebo_and_rates_are_consistent(sample_run):
    paths, m = sample_run
    out = pl.read_parquet(paths.outcome)
    sil = m["silence"]
    au = out.filter(pl.col("answered") & (pl.col("opening_state") == "unhappy"))
    assert sil["n_answered_unhappy"] == au.height == sum(sil["outcome_counts"].values())
    assert sil["outcome_counts"]["silent"] == int(au["silent"].sum()) > 0
    worst, best = sil["worst_case"]["rate"], sil["best_case"]["rate"]
    assert worst <= sil["among_follow_ups"]["rate"] <= best
    assert worst == pytest.approx(sil["outcome_counts"]["recovered"] / au.height, abs=1e-6)
    assert best - worst == pytest.approx(sil["silent_share"]["rate"], abs=2e-6)  # each rounded
    rates = m["recovery_rate"]
    assert rates["measure"]["k"] == sil["outcome_counts"]["recovered"]
    assert rates["former_vader"]["rate"] > 0.7 > rates["hand_labels"]["rate"]
    assert rates["hand_labels"]["n"] > 300
    pl_m, pl_v = m["placebo"]["measure"], m["placebo"]["former_vader"]
    # without any reply, the former label "recovers" most negative threads; the measure hardly any
    assert pl_v["no_reply"]["rate"] > 0.5 > pl_m["no_reply"]["rate"]
    assert pl_m["net"]["diff"] == pytest.approx(pl_m["after_reply"]["rate"] - pl_m["no_reply"]["rate"],
                                                abs=1e-6)
    no_reply = out.filter((pl.col("opening_state") == "unhappy") & pl.col("pre_last_tweet_id").is_not_null())
    assert pl_m["no_reply"]["n"] == no_reply.height


def test_stage_on_the_sample_writes_outputs_and_metrics(sample_run):
    paths, m = sample_run
    saved = json.loads(paths.metric("outcome").read_text())
    assert saved == json.loads(json.dumps(m))
    threads = pl.read_parquet(paths.threads)
    assert m["threads"]["threads"] == threads.height
    assert m["threads"]["openings"] == int(threads["is_opening"].sum())
    assert sum(m["labels"].values()) == m["threads"]["openings"]
    assert sum(m["former_vader_labels"].values()) == m["threads"]["openings"]
    assert m["labels"]["recovered"] > 30 and m["labels"]["silent"] > 100
    assert sum(sum(v.values()) for v in m["transition_matrix"].values()) == m["threads"]["openings"]
    model = m["model"]
    assert model["n"] == m["threads"]["answered_unhappy"] > 500
    assert model["n_positive"] == m["labels"]["recovered"]
    for name in oc.MODEL_NAMES:
        auc = model["models"][name]["oof_auc"]
        lo, hi = model["models"][name]["oof_auc_ci"]
        assert auc is not None and 0.0 <= lo <= auc <= hi <= 1.0
    assert model["models"]["dummy_prior"]["fold_auc_mean"] == 0.5
    vs = model["vs_baseline"]
    assert set(vs) == set(oc.MODEL_NAMES) - {"brand_prior"}
    for r in vs.values():
        assert r["baseline"] == "brand_prior" and r["p_holm"] >= r["p_value"]
        assert r["auc_diff"] == pytest.approx(r["auc_1"] - r["auc_2"], abs=2e-6)
    ors = m["odds_ratios"]
    sel = ors["selection"]
    assert len(sel["kept"]) == min(len(sel["kept"]) + len(sel["dropped"]), ors["recovered"] // 10)
    assert "fast_reply" not in sel["kept"]
    for r in ors["logistic"]["odds_ratios"].values():
        assert r["ci_low"] <= r["odds_ratio"] <= r["ci_high"] and r["df"] == 1
    assert set(ors["within_brand"]["odds_ratios"]) == set(sel["kept"])
    comp = m["competing_outcomes"]
    assert comp["base"] == "silent" and set(comp["relative_risk_ratios"]) == set(oc.COMPETING) - {"silent"}
    for feat in comp["average_changes"].values():  # the changes of the four shares sum to zero
        assert sum(v["change"] for v in feat.values()) == pytest.approx(0, abs=1e-5)

    out = pl.read_parquet(paths.outcome)
    assert out.height == m["threads"]["openings"] and out["thread_id"].is_unique().all()
    assert set(PREDICTORS) <= set(out.columns) and set(oc.OUTCOME_COLUMNS) == set(out.columns)
    # the stage reads the sentiment stage's table: every tweet, scored once
    sent = pl.read_parquet(paths.sentiment)
    assert sent.height == pl.read_parquet(paths.tweets).height == m["sentiment"]["tweets_scored"]
    assert sent["sentiment"].is_between(-1, 1).all()
    f = pl.read_parquet(paths.outcome_findings)
    overall = f.filter(pl.col("scope") == "overall")
    assert sorted(overall["feature"].unique().to_list()) == sorted(
        ["off_social", "template_reply", "apology", "fast_reply"])
    assert sorted(overall["outcome"].unique().to_list()) == ["recovered", "silent"]
    assert (overall["n_with"] + overall["n_without"] + overall["n_unknown"] == model["n"]).all()
    tested = f.filter(pl.col("p_value").is_not_null())
    assert m["findings_multiplicity"]["rows_tested"] == tested.height > 40
    assert (tested["p_holm"] >= tested["p_bh"]).all() and (tested["p_bh"] >= tested["p_value"]).all()
    assert (tested["df"] == 1).all() and (tested["p_value"] > 0).all()
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
    traj = runs[runs["tags.mlflow.runName"] == "trajectories"].iloc[0]
    assert traj["metrics.test.end_state.macro_f1.measure"] > traj["metrics.test.end_state.macro_f1.baseline"]
    client = tracking.setup(paths.root).MlflowClient()
    assert [m.name for m in client.search_registered_models()
            if m.name == "scrm-outcome-logreg"]


def test_same_params_give_identical_metrics(sample_run):
    """Again, with the cross-validation in this process instead of a second one (the run used
    params.yaml's n_jobs > 1): the same metrics, wherever the work ran."""
    paths, m = sample_run
    settings = load_settings(paths.root)
    assert settings.outcome.n_jobs > 1
    again = oc.compute(paths, settings.outcome.replace(n_jobs=1), settings.sentiment,
                       settings.embed)
    assert json.dumps(again.metrics, sort_keys=True) == json.dumps(m, sort_keys=True)
    assert_frame_equal(again.outcome, pl.read_parquet(paths.outcome))


def test_tracking_records_skipped_models(sample_run):
    """A run whose models were skipped still logs one run per model, tagged with the reason."""
    paths, m = sample_run
    settings = load_settings(paths.root)
    skipped = {**m, "model": {"n": 3, "n_positive": 3, "skipped": "not enough threads (test)"}}
    empty = trajectories.answered_unhappy(pl.read_parquet(paths.outcome)).head(0)
    stage.track(paths, settings.outcome.replace(seed=42), settings.sentiment, skipped, empty)
    runs = tracking.list_runs("outcome", paths.root)
    tagged = runs[runs["tags.scrm.skipped"].fillna("").str.contains("test")]
    assert set(tagged["tags.mlflow.runName"]) == set(oc.MODEL_NAMES)


def test_report_section_shows_validated_rate_bounds_and_corrected_findings(sample_run):
    """The report's outcome section, built from the stage's outputs: the validated rate with its
    interval, the silence bounds, the sealed-test table and the findings table with adjusted p."""
    from scrm.report import figures as F
    from scrm.report.html import percent
    from scrm.report.outcome import outcomes_section

    paths, m = sample_run
    s = outcomes_section(paths, load_settings(paths.root).report)
    assert not s.missing
    page = "".join(b for b in s.blocks if isinstance(b, str))
    hand = m["recovery_rate"]["hand_labels"]
    validated = (f"{percent(hand['rate'])} ({percent(hand['ci_low'])}–{percent(hand['ci_high'])}, "
                 f"{hand['k']} of {hand['n']})")
    assert f"Validated recovery rate</strong> (hand labels, unhappy openings with a follow-up): {validated}" in page
    worst, best = m["silence"]["worst_case"], m["silence"]["best_case"]
    assert f"between {percent(worst['rate'])} ({percent(worst['ci_low'])}" in page
    assert f"and {percent(best['rate'])} ({percent(best['ci_low'])}" in page
    assert "p (Holm)" in page and "p (BH)" in page and "verdict (Holm)" in page
    assert "sealed test" in page and "not people" in page
    ids = [f.id for f in s.figures]
    assert ids == ["fig-recovery-estimates", "fig-outcome-labels", "fig-sentiment-sankey",
                   "fig-findings"]
    est = s.figures[0].figure.data[0]
    assert len(est.x) == 7 and min(est.x) >= 0  # seven rates, each with its whiskers
    assert set(F.OUTCOME_COLORS) == set(oc.LABELS)
