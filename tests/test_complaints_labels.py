"""Complaint taxonomy, labelling functions, combination rule, gold set and the `complaints` stage."""

from __future__ import annotations

import csv
import functools
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from scrm.complaints import gold as gold_mod
from scrm.complaints import weak_labels
from scrm.complaints.taxonomy import (
    apply_lfs,
    keyword_regex,
    label_texts,
    lf_summary,
    load_taxonomy,
)
from scrm.config import ComplaintsSettings, Paths, load_settings
from scrm.data.openings import known_brands, mentioned_brand
from scrm.errors import DataError
from scrm.paths import GOLD_CSV, GOLD_GUIDELINES

from conftest import tweet

TAX = load_taxonomy()
MIN_VOTES = load_settings().complaints.min_votes   # params.yaml: 1 (one LF vote is enough)
CATEGORIES = ["billing_refunds", "order_delivery", "account_login", "network_outage",
              "app_software_device", "travel_disruption", "staff_service", "product_quality",
              "praise_thanks", "other_unclear"]


# --------------------------------------------------------------------------------------------------
# taxonomy and labelling functions

def _lf_cases() -> list[tuple[str, str, bool]]:
    return ([(lf.name, t, True) for lf in TAX.lfs for t in lf.examples]
            + [(lf.name, t, False) for lf in TAX.lfs for t in lf.counter_examples])


@pytest.mark.parametrize(("lf_name", "text", "fires"), _lf_cases(),
                         ids=[f"{n}-{'ex' if f else 'counter'}-{i}"
                              for i, (n, _, f) in enumerate(_lf_cases())])
def test_each_lf_fires_on_its_examples_and_abstains_on_counter_examples(lf_name, text, fires):
    out = _example_matrix()
    row = out.row(out["text_clean"].to_list().index(text), named=True)
    assert row[lf_name] is fires, f"{lf_name} on {text!r}"


@functools.cache
def _example_matrix() -> pl.DataFrame:
    """All LFs over all example texts in one vectorised pass (as the stage applies them)."""
    return label_texts(sorted({t for _, t, _ in _lf_cases()}), TAX, MIN_VOTES)


def test_taxonomy_has_the_guideline_categories_and_every_lf_is_tested():
    assert TAX.names == CATEGORIES
    assert all(c.definition.strip() for c in TAX.categories)
    assert len(set(TAX.lf_names)) == len(TAX.lfs) >= 30
    for lf in TAX.lfs:
        assert lf.name.startswith("lf_")
        assert lf.examples and lf.counter_examples, lf.name
    # every category but the abstain one has rules; nothing votes for other_unclear
    labelled = {lf.label for lf in TAX.lfs}
    assert labelled == set(CATEGORIES) - {"other_unclear"}
    assert TAX.abstain == "other_unclear"


def test_lfs_are_case_insensitive_and_fold_curly_apostrophes():
    out = label_texts(["MY ORDER HASN’T ARRIVED", "my order hasn't arrived", "REFUND ME"], TAX,
                      MIN_VOTES)
    assert out["lf_not_arrived"].to_list() == [True, True, False]
    assert out["lf_refund"].to_list() == [False, False, True]


def test_keyword_regex_whole_words_and_star():
    pat = "(?i)" + keyword_regex(["refund*", "money back", "c++"])
    s = pl.Series(["Refunded?", "prefund", "my money  back", "I code c++ daily", "moneyback"])
    assert s.str.contains(pat).to_list() == [True, False, True, False, False]


def _mini_taxonomy(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "tax.yaml"
    p.write_text(f"""
priority: [b, a, c]
abstain: c
categories:
  a: {{definition: category a}}
  b: {{definition: category b}}
  c: {{definition: nothing fires for it}}
labelling_functions:
  - {{name: lf_a1, label: a, keywords: [apple]}}
  - {{name: lf_a2, label: a, keywords: [avocado]}}
  - {{name: lf_b1, label: b, keywords: [banana]}}
{extra}""", encoding="utf-8")
    return p


def test_combination_rule_majority_priority_and_abstain(tmp_path):
    tax = load_taxonomy(_mini_taxonomy(tmp_path))
    texts = ["apple avocado banana",  # a: 2 votes, b: 1 -> a (majority beats priority)
             "apple banana",          # 1-1 tie -> b (listed first in priority)
             "avocado",               # a
             "cherry",                # nothing fires -> abstain (null), never the abstain category
             ""]
    out = label_texts(texts, tax, min_votes=1)
    assert out["weak_label"].to_list() == ["a", "b", "a", None, None]
    assert out["n_lfs_fired"].to_list() == [3, 2, 1, 0, 0]
    assert out["n_lfs_fired"].dtype == pl.Int32
    assert out["lfs_fired"].to_list()[0] == ["lf_a1", "lf_a2", "lf_b1"]
    # min_votes=2: a single vote is not enough
    strict = label_texts(texts, tax, min_votes=2)
    assert strict["weak_label"].to_list() == ["a", None, None, None, None]
    with pytest.raises(DataError):
        label_texts(texts, tax, min_votes=0)


def test_combination_rule_on_the_real_taxonomy():
    out = label_texts(["Thanks for ruining my phone with the latest update",  # tie -> complaint wins
                       "Thank you so much, great crew on my flight!",         # praise 2 vs travel 1
                       "hello there"], TAX, MIN_VOTES)
    assert out["weak_label"].to_list() == ["app_software_device", "praise_thanks", None]


def test_lf_summary_coverage_overlaps_conflicts_precision(tmp_path):
    tax = load_taxonomy(_mini_taxonomy(tmp_path))
    df = apply_lfs(pl.DataFrame({"text_clean": ["apple avocado", "apple banana", "banana", "kiwi"],
                                 "gold_label": ["a", "b", None, "c"]}), tax)
    s = {r["lf"]: r for r in lf_summary(df, tax).iter_rows(named=True)}
    assert s["lf_a1"]["n_fired"] == 2 and s["lf_a1"]["coverage"] == 0.5
    assert s["lf_a1"]["overlaps"] == 0.5          # both rows have another LF firing
    assert s["lf_a1"]["conflicts"] == 0.25        # only "apple banana" has a different label
    assert s["lf_a2"]["conflicts"] == 0.0         # "apple avocado": same label, overlap only
    assert s["lf_a2"]["overlaps"] == 0.25
    assert s["lf_b1"]["coverage"] == 0.5 and s["lf_b1"]["overlaps"] == 0.25
    # on gold rows: lf_a1 fired on 2 (correct on 1); lf_b1 fired on 1 gold row, correct
    assert (s["lf_a1"]["gold_n_fired"], s["lf_a1"]["gold_precision"]) == (2, 0.5)
    assert (s["lf_b1"]["gold_n_fired"], s["lf_b1"]["gold_precision"]) == (1, 1.0)
    assert s["lf_a2"]["gold_precision"] == 1.0


def test_evaluate_counts_abstentions_as_wrong():
    truth = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", None]
    m = gold_mod.evaluate(pred, truth, abstain_as="c")
    assert m["coverage"] == 0.75 and m["n_covered"] == 3
    assert m["accuracy_covered"] == round(2 / 3, 6)
    assert m["accuracy_overall"] == 0.5
    # per class (abstain wrong): a P=1 R=.5 F=2/3; b P=.5 R=1 F=2/3; c F=0 -> macro 4/9
    assert m["macro_f1"] == round(4 / 9, 6)
    assert m["per_class"]["c"]["f1"] == 0.0
    assert m["accuracy_abstain_as_other"] == 0.75
    assert m["confusion"]["c"] == {gold_mod.ABSTAIN: 1}


# --------------------------------------------------------------------------------------------------
# the gold set

def _sample_openings(sample_rows: list[dict[str, str]]) -> list[int]:
    """Openings read independently of the package: inbound tweets that reply to nothing."""
    return sorted(int(r["tweet_id"]) for r in sample_rows
                  if r["inbound"] == "True" and not r["in_response_to_tweet_id"].strip())


def test_gold_set_loads_with_guideline_categories_only(sample_rows):
    g = gold_mod.load_gold()
    assert g.height >= 400
    assert g["tweet_id"].n_unique() == g.height
    assert set(g["label"]) == set(CATEGORIES)            # every category is represented
    guidelines = GOLD_GUIDELINES.read_text(encoding="utf-8")
    for c in CATEGORIES:
        assert f"`{c}`" in guidelines                    # each label is defined in the guidelines
    # the documented selection: the first 450 openings of the sample by tweet_id
    assert sorted(g["tweet_id"].to_list()) == _sample_openings(sample_rows)[:450]


def test_gold_ids_are_openings_in_the_prepared_sample(prepared_root):
    threads = pl.read_parquet(prepared_root.threads)
    openings = set(threads.filter("is_opening")["thread_id"].to_list())
    assert set(gold_mod.load_gold()["tweet_id"].to_list()) <= openings


def test_gold_file_is_plain_tweet_id_label_complaint_csv():
    with GOLD_CSV.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["tweet_id", "label", "complaint"]
    assert len(rows) == 451
    assert all(len(r) == 3 and r[0].isdigit() and r[2] in ("yes", "no") for r in rows[1:])


def test_gold_fields_errors_name_file_and_line(tmp_path):
    p = _write(tmp_path, "tweet_id,label,complaint\n1,billing_refunds,yes\n2,praise_thanks,maybe\n")
    with pytest.raises(DataError, match=r"line 3: complaint 'maybe' is not yes or no"):
        gold_mod.load_gold_fields(p, CATEGORIES)
    p = _write(tmp_path, "tweet_id,label\n1,billing_refunds\n", "two.csv")
    with pytest.raises(DataError, match=r"two\.csv, line 1: header lacks column complaint"):
        gold_mod.load_gold_fields(p, CATEGORIES)


# --------------------------------------------------------------------------------------------------
# label files: validation with file + line

def _write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(("content", "line", "needle"), [
    ("tweet_id,label\n1,billing_refunds\n2,complaint\n", 3, "unknown label 'complaint'"),
    ("tweet_id,label\n1,billing_refunds\nabc,praise_thanks\n", 3, "not a non-negative integer"),
    ("tweet_id,label\n-4,billing_refunds\n", 2, "not a non-negative integer"),
    ("tweet_id,label\n1,billing_refunds\n2,\n", 3, "label is empty"),
    ("tweet_id,label\n5,billing_refunds\n6,praise_thanks\n5,praise_thanks\n", 4, "more than once"),
    ("id,category\n1,billing_refunds\n", 1, "lacks column(s) tweet_id, label"),
])
def test_labels_file_errors_name_file_and_line(tmp_path, content, line, needle):
    p = _write(tmp_path, content)
    with pytest.raises(DataError) as exc:
        gold_mod.load_labels(p, CATEGORIES)
    msg = str(exc.value)
    assert str(p) in msg and f"line {line}" in msg and needle in msg


def test_labels_file_extra_columns_and_whitespace_are_fine(tmp_path):
    p = _write(tmp_path, "tweet_id , label,note\n 7 , praise_thanks ,nice\n8.0,other_unclear,\n")
    df = gold_mod.load_labels(p, CATEGORIES)
    assert df.to_dicts() == [{"tweet_id": 7, "label": "praise_thanks", "line": 2},
                             {"tweet_id": 8, "label": "other_unclear", "line": 3}]


def test_unknown_id_policy(tmp_path):
    p = _write(tmp_path, "tweet_id,label\n1,billing_refunds\n99,praise_thanks\n")
    df = gold_mod.load_labels(p, CATEGORIES)
    known = pl.Series([1, 2], dtype=pl.Int64)
    with pytest.raises(DataError, match=r"line 3: tweet_id 99 is not a customer opening"):
        gold_mod.check_ids(df, known, p, "error")
    assert gold_mod.check_ids(df, known, p, "ignore")["tweet_id"].to_list() == [1]


# --------------------------------------------------------------------------------------------------
# brand of unanswered openings (the openings table's rule, which this stage takes as it is)

def test_brand_from_mentions_first_known_brand_handle():
    openings = pl.LazyFrame({"opening_tweet_id": [1, 2, 3, 4],
                             "opening_text": ["@friend @amazonhelp @AppleSupport my order",
                                              "@nobody hi", None, "@AppleSupport and @AmazonHelp"]})
    brands = known_brands(pl.LazyFrame({"role": ["brand", "brand", "customer"],
                                        "author_id": ["AmazonHelp", "AppleSupport", "friend"]}))
    got = dict(mentioned_brand(openings, brands).collect().iter_rows())
    out = [got.get(i) for i in (1, 2, 3, 4)]
    assert out == ["AmazonHelp", None, None, "AppleSupport"]


# --------------------------------------------------------------------------------------------------
# the stage

def _tiny_rows() -> list[dict]:
    return [
        tweet(1, "101", 0, "@AmazonHelp my package hasn't arrived, where is my order?"),
        tweet(2, "AmazonHelp", 5, "@101 Sorry! Please DM us.", parent=1),
        tweet(3, "102", 1, "@friend @SpotifyCares the app keeps crashing after the update"),  # unanswered
        tweet(4, "103", 2, "@AmazonHelp hello there"),                                      # abstain
        tweet(5, "AmazonHelp", 8, "@103 Hi!", parent=4),
        tweet(6, "104", 3, "@SpotifyCares thank you, love the new playlists ❤️"),
        tweet(7, "SpotifyCares", 9, "@104 Glad you like it!", parent=6),
        tweet(8, "101", 10, "@AmazonHelp still nothing", parent=2),                         # not an opening
    ]


def _stage_settings(root: Path, **complaints) -> ComplaintsSettings:
    return load_settings(root).complaints.replace(track=False, **complaints)


def test_stage_on_hand_made_threads_writes_the_contract(tiny_root):
    paths = tiny_root(_tiny_rows())
    m = weak_labels.run(paths, _stage_settings(paths.root))
    df = pl.read_parquet(paths.complaints)
    for col, dtype in weak_labels.CONTRACT.items():
        assert df.schema[col] == dtype, col
    assert df["tweet_id"].to_list() == [1, 3, 4, 6]       # openings only, sorted
    assert df["thread_id"].to_list() == [1, 3, 4, 6]
    assert df["customer_id"].to_list() == ["101", "102", "103", "104"]
    assert df["weak_label"].to_list() == ["order_delivery", "app_software_device", None,
                                          "praise_thanks"]
    assert df["label"].to_list() == df["weak_label"].to_list()
    # the unanswered opening gets its brand from the first @handle that is a brand account
    assert df["brand"].to_list() == ["AmazonHelp", "SpotifyCares", "AmazonHelp", "SpotifyCares"]
    assert df["brand_source"].to_list() == ["first_reply", "mention", "first_reply", "first_reply"]
    assert df["text_clean"][0] == "my package hasn't arrived, where is my order?"
    assert df["gold_label"].null_count() == 4             # none of these ids is in the gold set
    assert m["openings"] == 4 and m["abstained"] == 1 and m["coverage"] == 0.75
    assert m["gold"] == {"file": "gold_labels.csv", "n": 0,
                         "note": "no gold tweet is an opening of this run"}
    summary = pl.read_csv(paths.lf_summary)
    assert summary["lf"].to_list() == TAX.lf_names
    assert summary.filter(pl.col("lf") == "lf_package")["n_fired"].item() == 1
    assert json.loads(paths.metric("complaints").read_text())["openings"] == 4


def test_stage_uses_a_users_labels_file(tiny_root, tmp_path):
    paths = tiny_root(_tiny_rows())
    lf = _write(tmp_path, "tweet_id,label\n1,staff_service\n4,other_unclear\n")
    m = weak_labels.run(paths, _stage_settings(paths.root, labels_file=str(lf)))
    df = pl.read_parquet(paths.complaints).sort("tweet_id")
    assert df["label"].to_list() == ["staff_service", None, "other_unclear", None]
    assert df["weak_label"].to_list()[0] == "order_delivery"   # weak labels are kept alongside
    assert set(df["label_source"]) == {"file"}
    assert m["label_source"] == "file" and m["labels_file"]["rows_used"] == 2
    weak_labels.run(paths, _stage_settings(paths.root, labels_file=str(lf), labels_fill="weak"))
    df = pl.read_parquet(paths.complaints).sort("tweet_id")
    assert df["label"].to_list() == ["staff_service", "app_software_device", "other_unclear",
                                     "praise_thanks"]
    # a label outside the taxonomy and an id that is not an opening are errors with file + line
    bad = _write(tmp_path, "tweet_id,label\n1,staff_service\n3,angry\n", "bad.csv")
    with pytest.raises(DataError, match=r"bad\.csv, line 3: unknown label 'angry'"):
        weak_labels.run(paths, _stage_settings(paths.root, labels_file=str(bad)))
    reply = _write(tmp_path, "tweet_id,label\n2,staff_service\n", "reply.csv")
    with pytest.raises(DataError, match=r"reply\.csv, line 2: tweet_id 2 is not a customer opening"):
        weak_labels.run(paths, _stage_settings(paths.root, labels_file=str(reply)))
    with pytest.raises(DataError, match="labels file not found"):
        weak_labels.run(paths, _stage_settings(paths.root, labels_file=str(tmp_path / "nope.csv")))


@pytest.fixture(scope="module")
def sample_stage(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory):
    """The stage on the real sample, in a copy of the prepared root (which stays read-only)."""
    root = tmp_path_factory.mktemp("complaints")
    shutil.copy(prepared_root.root / "params.yaml", root / "params.yaml")
    paths = Paths(root).ensure()
    shutil.copy(prepared_root.openings, paths.openings)
    metrics = weak_labels.run(paths, _stage_settings(root))
    first = paths.metric("complaints").read_bytes()
    weak_labels.run(paths, _stage_settings(root))
    return paths, metrics, first


def test_stage_on_the_real_sample(sample_stage, prepared_root):
    paths, m, first = sample_stage
    df = pl.read_parquet(paths.complaints)
    threads = pl.read_parquet(prepared_root.threads)
    assert df.height == threads["is_opening"].sum() == m["openings"]
    assert df["tweet_id"].is_unique().all() and df["tweet_id"].is_sorted()
    for col, dtype in weak_labels.CONTRACT.items():
        assert df.schema[col] == dtype, col
    assert df["weak_label"].drop_nulls().is_in(CATEGORIES).all()
    assert (df["weak_label"].is_null() == (df["n_lfs_fired"] == 0)).all()   # min_votes = 1
    # gold: every gold id is an opening here, scores recomputed from the parquet agree
    gold = df.filter(pl.col("gold_label").is_not_null())
    assert gold.height == m["gold"]["n"] == gold_mod.load_gold().height
    correct = (gold["weak_label"] == gold["gold_label"]).fill_null(False).sum()
    assert m["gold"]["accuracy_overall"] == round(correct / gold.height, 6)
    assert m["gold"]["coverage"] == round(gold["weak_label"].is_not_null().mean(), 6)
    assert 0 < m["gold"]["macro_f1"] < 1
    # rules should beat chance by far on the rows they cover (10 classes)
    assert m["gold"]["accuracy_covered"] > 0.5
    assert set(m["lfs"]) == set(TAX.lf_names)
    assert all(0 <= r["conflicts"] <= r["overlaps"] <= r["coverage"] for r in m["lfs"].values())
    # deterministic: the second run wrote the same bytes
    assert paths.metric("complaints").read_bytes() == first


def test_cli_complaints_on_a_temp_root(sample_stage):
    from typer.testing import CliRunner

    from scrm.cli import app

    paths, _, first = sample_stage
    params = yaml.safe_load((paths.root / "params.yaml").read_text())
    params["complaints"]["track"] = False
    (paths.root / "params.yaml").write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(app, ["complaints", "--root", str(paths.root)])
    assert res.exit_code == 0, res.output
    assert "gold_macro_f1" in res.output
    assert paths.metric("complaints").read_bytes() == first
    # a broken labels file is a clean user error (exit 2, no traceback)
    params["complaints"]["labels_file"] = str(paths.root / "missing.csv")
    (paths.root / "params.yaml").write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(app, ["complaints", "--root", str(paths.root)])
    assert res.exit_code == 2 and "labels file not found" in res.output
    assert "Traceback" not in res.output
