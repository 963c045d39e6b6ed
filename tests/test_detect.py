"""Stage ``detect``: the complaint rules, the learned detectors (no gold id in training, no brand,
handle or date in the features), sealed-test scores checked against a direct count, the champion
chosen without the test set, and the MLflow registry."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from scrm import tracking
from scrm.complaints import detect as D
from scrm.complaints import detect_rules as R
from scrm.complaints.benchmark.zoo import text_frame
from scrm.config import PROJECT_ROOT, Paths, load_settings
from scrm.errors import DataError
from scrm.paths import REFERENCES
from scrm.text import clean_for_topics

from conftest import make_root

RULES = R.load_rules()


# ---- the rules ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.name)
def test_every_rule_fires_on_its_examples_and_not_on_its_counter_examples(rule: R.ComplaintRule
                                                                           ) -> None:
    df = R.rule_matrix(pl.DataFrame({"text_clean": [*rule.examples, *rule.counter_examples]}),
                       RULES)
    fired = df[rule.name].to_list()
    assert rule.examples and rule.counter_examples
    assert fired[:len(rule.examples)] == [True] * len(rule.examples)
    assert fired[len(rule.examples):] == [False] * len(rule.counter_examples)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def test_no_rule_example_shares_six_words_with_a_sealed_test_tweet(sample_rows) -> None:
    """Guidelines section 8: the rules were written without reading the sealed test set."""
    test_ids = set(pl.read_csv(REFERENCES / "gold_test_labels.csv")["tweet_id"].cast(str))
    grams = set()
    for row in sample_rows:
        if row["tweet_id"] in test_ids:
            w = _words(row["text"])
            grams |= {tuple(w[i:i + 6]) for i in range(len(w) - 5)}
    assert len(test_ids) == 420 and grams
    for rule in RULES.rules:
        for ex in (*rule.examples, *rule.counter_examples):
            w = _words(ex)
            assert not {tuple(w[i:i + 6]) for i in range(len(w) - 5)} & grams, (rule.name, ex)


def test_decision_rule_on_hand_made_texts() -> None:
    texts = ["thanks for ruining my phone, the app keeps crashing",  # sarcasm + fault: C1, C2
             "thank you so much, lovely staff",                       # praise only
             "how do I change my seat?",                              # information question
             "ok",                                                    # nothing fires
             ""]
    df = R.rule_matrix(pl.DataFrame({"text_clean": texts}), RULES)
    assert df["complaint_weak"].to_list() == [R.COMPLAINT, R.NOT_COMPLAINT, R.NOT_COMPLAINT, None,
                                              None]
    assert df["complaint_rules"].to_list() == [True, False, False, False, False]
    assert "cr_fault" in df["rules_fired"][0] and "nr_thanks_praise" in df["rules_fired"][0]
    det = R.RuleDetector.from_rules(RULES).fit(None)
    assert list(det.predict(text_frame(texts))) == [R.COMPLAINT] + [R.NOT_COMPLAINT] * 4
    assert det.predict_proba(text_frame(texts[:2])).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_bad_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("complaint_detection:\n  rules:\n    - {name: cr_x, vote: maybe, keywords: [a]}\n")
    with pytest.raises(DataError, match="vote 'maybe' is not one of complaint, not_complaint"):
        R.load_rules(bad)
    bad.write_text("complaint_detection:\n  rules:\n    - {name: cr_x, vote: complaint, regex: '(?<=a)b'}\n")
    with pytest.raises(DataError, match="invalid regex"):
        R.load_rules(bad)


def test_brand_words_of_handles() -> None:
    assert R.brand_words(["AmazonHelp", "Ask_Spectrum", "comcastcares", "AskeBay", None]) == [
        "amazon", "amazonhelp", "ask_spectrum", "askebay", "comcast", "comcastcares", "ebay",
        "spectrum"]


def test_gold_complaint_file_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "g.csv"
    f.write_text("tweet_id,label,complaint\n1,other_unclear,no\n2,billing_refunds,maybe\n")
    with pytest.raises(DataError, match=r"g.csv, line 3: complaint must be yes or no"):
        D.load_complaint_gold(f)
    f.write_text("tweet_id,label\n1,other_unclear\n")
    with pytest.raises(DataError, match="lacks column"):
        D.load_complaint_gold(f)
    dev = D.load_complaint_gold(REFERENCES / "gold_labels.csv")
    assert dev.height == 450 and dev["complaint"].sum() == 277


# ---- the stage on the sample ----------------------------------------------------------------------
def test_no_gold_id_enters_training(detect_root: Paths) -> None:
    settings = load_settings(detect_root.root).detect
    frame = D.with_splits(R.rule_matrix(D.load_frame(detect_root), RULES),
                          *(D.load_complaint_gold(REFERENCES / f)["tweet_id"]
                            for f in ("gold_labels.csv", "gold_test_labels.csv")))
    train = D.training_rows(frame, settings.train_abstain)
    gold = set(pl.read_csv(REFERENCES / "gold_labels.csv")["tweet_id"]) | \
        set(pl.read_csv(REFERENCES / "gold_test_labels.csv")["tweet_id"])
    assert train.height > 100 and not set(train["tweet_id"]) & gold
    assert set(D.training_rows(frame, "as_not_complaint")["tweet_id"]) & gold == set()
    out = pl.read_parquet(detect_root.complaint_detect)
    m = json.loads(detect_root.metric("detect").read_text())
    assert m["training"]["rows"] == train.height
    assert set(out.filter(pl.col("split") != "train")["tweet_id"]) == gold
    assert m["training"]["gold_ids_excluded"] == len(gold) == 870


def test_features_hold_no_brand_handle_or_date(detect_root: Paths) -> None:
    mlflow = tracking.setup(detect_root.root)
    model = mlflow.sklearn.load_model("models:/scrm-complaint-detector@logreg")
    vocab = set(D.vocabulary(model))
    handles = pl.read_parquet(detect_root.complaints)["brand"].drop_nulls().unique().to_list()
    banned = set(R.brand_words(handles)) | set(RULES.mask_words)
    assert len(vocab) > 200 and not {w for v in vocab for w in v.split()} & banned
    assert not any(ch.isdigit() for v in vocab for ch in v)
    # a brand name swapped for another leaves every probability unchanged
    texts = pl.read_parquet(detect_root.complaints)["text_clean"].head(200).to_list()
    base = ["my amazon order never arrived " + t for t in texts]
    swapped = ["my spotify order never arrived " + t.replace("Amazon", "Uber") for t in texts]
    for name in ("logreg", "complement_nb", "rules"):
        m = mlflow.sklearn.load_model(f"models:/scrm-complaint-detector@{name}")
        assert np.array_equal(m.predict_proba(text_frame(base)),
                              m.predict_proba(text_frame(swapped))), name


def test_sealed_test_scores_match_a_direct_count(detect_root: Paths) -> None:
    m = json.loads(detect_root.metric("detect").read_text())
    out = pl.read_parquet(detect_root.complaint_detect)
    test = pl.read_csv(REFERENCES / "gold_test_labels.csv")
    rows = out.join(test.select("tweet_id", truth=pl.col("complaint")), on="tweet_id")
    assert rows.height == m["test"]["n"] == 420
    truth = (rows["truth"] == "yes").to_list()
    for det in m["detectors"]:
        pred = rows[f"complaint_{det}"].fill_null(False).to_list()
        tp = sum(t and p for t, p in zip(truth, pred))
        fp = sum(p and not t for t, p in zip(truth, pred))
        fn = sum(t and not p for t, p in zip(truth, pred))
        sc = m["test"]["scores"][det]
        assert (sc["tp"], sc["fp"], sc["fn"]) == (tp, fp, fn)
        assert sc["precision"] == round(tp / (tp + fp), 6)
        assert sc["recall"] == round(tp / (tp + fn), 6)
        assert sc["f1"] == round(2 * tp / (2 * tp + fp + fn), 6)
        assert sc["f1_ci"][0] <= sc["f1"] <= sc["f1_ci"][1]
    base = m["test"]["scores"]["always_complaint"]
    assert base["recall"] == 1.0 and base["precision"] == round(sum(truth) / 420, 6)
    comps = m["test"]["comparisons"]
    assert {(c["a"], c["b"]) for c in comps} >= {("logreg", "rules"), ("rules", "always_complaint")}
    for c in comps:
        mc = c["mcnemar"]
        assert mc["p_holm"] >= mc["p_value"] > 0 and mc["chi2"]["df"] == 1
        assert c["f1"]["a"] == m["test"]["scores"][c["a"]]["f1"]
        assert c["f1"]["b"] == m["test"]["scores"][c["b"]]["f1"]
        if c["b"] == "always_complaint":  # only A right: its true negatives; only B: A's misses
            sc = m["test"]["scores"][c["a"]]
            assert (mc["only_a_correct"], mc["only_b_correct"]) == (sc["tn"], sc["fn"])


def test_champion_is_chosen_on_dev_and_not_moved_by_the_test_labels(detect_root: Paths,
                                                                    tmp_path: Path) -> None:
    m = json.loads(detect_root.metric("detect").read_text())
    dev = m["dev"]["scores"]
    assert m["champion"]["detector"] == max(m["detectors"], key=lambda d: dev[d]["f1"])
    # flip every sealed-test label: nothing learned or chosen may change, only the test scores
    other = make_root(tmp_path)
    shutil.copy(detect_root.complaints, other.complaints)
    flipped = tmp_path / "flipped.csv"
    (pl.read_csv(REFERENCES / "gold_test_labels.csv")
     .with_columns(complaint=pl.when(pl.col("complaint") == "yes").then(pl.lit("no"))
                   .otherwise(pl.lit("yes"))).write_csv(flipped))
    settings = load_settings(other.root).detect.replace(test_file=str(flipped), register=False)
    m2 = D.run(other, settings)
    assert m2["champion"]["detector"] == m["champion"]["detector"]
    assert m2["dev"] == m["dev"] and m2["training"] == m["training"]
    cols = [c for c in pl.read_parquet(detect_root.complaint_detect).columns
            if c.startswith(("p_", "complaint_"))]
    assert pl.read_parquet(other.complaint_detect).select(cols).equals(
        pl.read_parquet(detect_root.complaint_detect).select(cols))
    assert m2["test"]["scores"]["rules"]["f1"] != m["test"]["scores"]["rules"]["f1"]


def test_detectors_and_category_champion_are_registered(detect_root: Paths) -> None:
    m = json.loads(detect_root.metric("detect").read_text())
    models = {r["name"]: r for r in tracking.registered_models(detect_root.root)}
    det = models["scrm-complaint-detector"]
    assert set(det["aliases"]) == {"champion", "rules", "logreg", "complement_nb"}
    assert det["aliases"]["champion"] == det["aliases"][m["champion"]["detector"]]
    cat = m["registry"]["category"]
    assert cat["status"] == "registered" and cat["model"] == "logreg"
    assert models["scrm-complaint-category"]["aliases"] == {"champion": "1"}
    model = tracking.load_model("models:/scrm-complaint-category@champion", detect_root.root)
    assert model.predict(text_frame(["my parcel never arrived"]))[0] in set(
        pl.read_csv(REFERENCES / "gold_labels.csv")["label"])
    # every run carries provenance and what the detector was trained on
    runs = tracking.list_runs("detect", detect_root.root)
    assert set(runs["tags.detect.detector"]) == {"rules", "logreg", "complement_nb"}
    assert runs["params.data_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert runs["tags.detect.trained_on"].str.contains("outside the dev and sealed-test").all()


def test_stage_outputs_are_deterministic(detect_root: Paths, tmp_path: Path) -> None:
    other = make_root(tmp_path)
    shutil.copy(detect_root.complaints, other.complaints)
    settings = load_settings(other.root).detect.replace(register=False)
    D.run(other, settings)
    a = json.loads(detect_root.metric("detect").read_text())
    b = json.loads(other.metric("detect").read_text())
    a.pop("registry"), b.pop("registry")
    assert a == b
    assert pl.read_parquet(other.complaint_detect).equals(
        pl.read_parquet(detect_root.complaint_detect))
    rules = pl.read_csv(other.complaint_rules_summary)
    assert rules["rule"].to_list() == RULES.names and rules["gold_precision"].is_not_null().any()


def test_too_few_training_rows_skip_the_learned_detectors(detect_root: Paths,
                                                          tmp_path: Path) -> None:
    other = make_root(tmp_path)
    shutil.copy(detect_root.complaints, other.complaints)
    settings = load_settings(other.root).detect.replace(register=False, min_train_rows=10_000)
    m = D.run(other, settings)
    assert m["detectors"] == ["rules"] and set(m["skipped"]) == {"logreg", "complement_nb"}
    assert "need 10000" in m["skipped"]["logreg"]


def test_cleaning_is_the_pipeline_s(detect_root: Paths) -> None:
    """The stage reads complaints.parquet's text_clean: clean_for_topics, what classify applies."""
    comp = pl.read_parquet(detect_root.complaints).head(50)
    again = comp.select(clean_for_topics("text").alias("t"))["t"]
    assert again.to_list() == comp["text_clean"].to_list()
    assert (PROJECT_ROOT / "src" / "scrm" / "resources" / "taxonomy.yaml") == RULES.source
