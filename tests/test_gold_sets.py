"""The hand-labelled complaint sets: dev, the sealed test, their passes, version note and guards."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score

from scrm import labelsets
from scrm.complaints import gold as gold_mod
from scrm.complaints.taxonomy import load_taxonomy
from scrm.paths import (AGREEMENT_JSON, GOLD_CSV, GOLD_TEST_CSV, GOLD_TEST_DRAW, GOLD_TEST_PASSES,
                        GOLD_TEST_VERSION, REFERENCES, SAMPLE_CSV)
from scrm.stats.agreement import cohen_kappa, kappa_with_interval
from scrm.text import clean_for_topics

TAX = load_taxonomy()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def test_tweets() -> pl.DataFrame:
    """The sealed test's tweets from the shipped sample: raw text and the text the rules see."""
    ids = pl.read_csv(GOLD_TEST_DRAW)["tweet_id"]
    raw = pl.read_csv(SAMPLE_CSV, infer_schema=False).select(
        pl.col("tweet_id").cast(pl.Int64), "text")
    return (raw.filter(pl.col("tweet_id").is_in(ids.implode()))
            .with_columns(clean_for_topics("text").alias("text_clean")))


# --------------------------------------------------------------------------------------------------
# the guard: no rule text copies a sealed-test tweet

def test_word_runs_on_a_hand_example() -> None:
    frame = pl.DataFrame({"tweet_id": [1, 2],
                          "text": ["I can’t LOG into my Account, ok? día", "too short"]})
    runs = labelsets.word_runs(frame, "text", 6)
    assert runs["run"].to_list() == ["i can't log into my account", "can't log into my account ok",
                                     "log into my account ok día"]
    assert runs["tweet_id"].to_list() == [1, 1, 1]
    rules = pl.DataFrame({"rule": ["lf_a", "lf_b", "lf_c"],
                          "text": ["Can't log into my ACCOUNT ok!!",        # copied: 6 words
                                   "can't log into my account",             # 5 words: allowed
                                   "log into my account ok fine"]})         # 5 shared: allowed
    hits = labelsets.shared_word_runs(rules, frame, ["text"], 6)
    assert hits.select("rule", "tweet_id").rows() == [("lf_a", 1)]


def test_no_rule_example_shares_six_words_with_a_sealed_test_tweet(test_tweets) -> None:
    assert test_tweets.height == 420
    rule_texts = pl.DataFrame(
        [{"rule": lf.name, "text": t} for lf in TAX.lfs
         for t in (*lf.examples, *lf.counter_examples)])
    assert rule_texts.height > 100
    hits = labelsets.shared_word_runs(rule_texts, test_tweets, ["text", "text_clean"], 6)
    assert hits.height == 0, (
        "rule examples copy sealed-test tweets (write examples from dev or invent them):\n"
        + "\n".join(f"{r['rule']}: {r['text']!r} ~ tweet {r['tweet_id']} ({r['run']!r})"
                    for r in hits.iter_rows(named=True)))


# --------------------------------------------------------------------------------------------------
# the files and the version note

def _version_note() -> tuple[str, dict[str, str]]:
    text = GOLD_TEST_VERSION.read_text(encoding="utf-8")
    versions = re.findall(r"^\| (\d+) \|.*\| ([0-9a-f]{64}) \|$", text, flags=re.M)
    files = dict(re.findall(r"^\| (gold_test_\w+\.csv) \| ([0-9a-f]{64}) \|$", text, flags=re.M))
    assert versions, "no version row in the note"
    return versions[-1][1], files


def test_sealed_test_files_match_the_last_version_note() -> None:
    last_labels_sha, files = _version_note()
    assert _sha(GOLD_TEST_CSV) == last_labels_sha, (
        "gold_test_labels.csv changed without a new version line in gold_test_VERSION.md")
    expected = {p.name for p in (GOLD_TEST_DRAW, *GOLD_TEST_PASSES, GOLD_TEST_CSV)}
    assert set(files) == expected
    for name, sha in files.items():
        assert _sha(REFERENCES / name) == sha, f"{name} changed without a version note"


def test_version_check_catches_a_changed_file(tmp_path: Path) -> None:
    changed = tmp_path / GOLD_TEST_CSV.name
    text = GOLD_TEST_CSV.read_text(encoding="utf-8")
    changed.write_text(text.replace(",no\n", ",yes\n", 1), encoding="utf-8")
    assert _sha(changed) != _version_note()[0]


def test_dev_and_sealed_test_are_disjoint_openings_with_both_fields(sample_rows) -> None:
    dev = gold_mod.load_gold_fields(GOLD_CSV, TAX.names)
    test = gold_mod.load_gold_fields(GOLD_TEST_CSV, TAX.names)
    openings = {int(r["tweet_id"]) for r in sample_rows
                if r["inbound"] == "True" and not r["in_response_to_tweet_id"].strip()}
    assert dev.height == 450 and test.height == 420
    assert set(dev["tweet_id"]) <= openings and set(test["tweet_id"]) <= openings
    assert not set(dev["tweet_id"]) & set(test["tweet_id"])
    assert max(dev["tweet_id"]) < min(test["tweet_id"])       # test drawn from openings 451+
    for df in (dev, test):
        assert set(df["complaint"]) == {"yes", "no"} and set(df["label"]) == set(TAX.names)
    draw = pl.read_csv(GOLD_TEST_DRAW)
    assert draw["tweet_id"].to_list() == test["tweet_id"].to_list()
    for p in GOLD_TEST_PASSES:
        assert pl.read_csv(p)["tweet_id"].to_list() == test["tweet_id"].to_list()


def test_draw_is_stratified_by_brand(prepared_root) -> None:
    """Every brand's share of the draw is its share of the non-dev openings, to within one row."""
    openings = pl.read_parquet(prepared_root.openings).select(
        pl.col("opening_tweet_id").alias("tweet_id"), pl.col("brand").fill_null("(none)"))
    dev = pl.read_csv(GOLD_CSV)["tweet_id"]
    pool = openings.filter(~pl.col("tweet_id").is_in(dev.implode()))
    draw = pl.read_csv(GOLD_TEST_DRAW)
    assert set(draw["tweet_id"]) <= set(pool["tweet_id"])
    expected = pool.group_by("brand").agg(n=pl.len() * 420 / pool.height)
    got = draw.group_by("brand").agg(k=pl.len())
    both = expected.join(got, on="brand", how="left").with_columns(pl.col("k").fill_null(0))
    assert ((both["n"] - both["k"]).abs() <= 1.0).all(), both


def test_adjudicated_files_and_kappa_rebuild_from_the_passes(tmp_path: Path) -> None:
    """``python -m scrm.labelsets`` on a copy of references/ rewrites the same bytes."""
    ref = tmp_path / "references"
    shutil.copytree(REFERENCES, ref)
    labelsets.build_references(ref)
    for name in (GOLD_TEST_CSV.name, GOLD_CSV.name, AGREEMENT_JSON.name):
        assert (ref / name).read_bytes() == (REFERENCES / name).read_bytes(), name


def test_adjudication_rule_by_hand() -> None:
    df = pl.DataFrame({"a": ["billing_refunds", "other_unclear", "staff_service", "praise_thanks"],
                       "b": ["billing_refunds", "order_delivery", "travel_disruption",
                             "staff_service"],
                       "ca": ["yes", "no", "yes", "no"], "cb": ["yes", "yes", "no", "yes"]})
    out = df.select(label=labelsets.adjudicate_category(pl.col("a"), pl.col("b")),
                    complaint=labelsets.adjudicate_complaint(pl.col("ca"), pl.col("cb"),
                                                             pl.col("a"), pl.col("b")))
    # agree; other_unclear loses; R15 order (travel before staff); praise in one pass -> "no"
    assert out["label"].to_list() == ["billing_refunds", "order_delivery", "travel_disruption",
                                      "staff_service"]
    assert out["complaint"].to_list() == ["yes", "no", "yes", "no"]


def test_kappa_matches_a_direct_computation() -> None:
    a = ["x", "x", "y", "y", "z", "x", "y", "z"]
    b = ["x", "y", "y", "y", "z", "x", "x", "z"]
    # by hand: 6 of 8 agree; both passes use x, y, z 3, 3, 2 times -> pe = (9 + 9 + 4) / 64
    po, pe = 6 / 8, (3 * 3 + 3 * 3 + 2 * 2) / 64
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    k = kappa_with_interval(a, b, n_boot=200, seed=3)
    assert k["ci_low"] <= k["kappa"] <= k["ci_high"] and k["n"] == 8


def test_agreement_file_reports_kappa_of_the_passes() -> None:
    import json

    agreement = json.loads(AGREEMENT_JSON.read_text(encoding="utf-8"))
    a = pl.read_csv(GOLD_TEST_PASSES[0]).sort("tweet_id")
    b = pl.read_csv(GOLD_TEST_PASSES[1]).sort("tweet_id")
    direct = cohen_kappa_score(a["label"].to_list(), b["label"].to_list())
    assert agreement["gold_test_label"]["kappa"] == pytest.approx(direct, abs=5e-5)
    assert agreement["gold_test_label"]["agreement"] == pytest.approx(
        float(np.mean(a["label"].to_numpy() == b["label"].to_numpy())), abs=5e-5)
