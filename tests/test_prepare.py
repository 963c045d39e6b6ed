"""prepare + threads on the real sample, checked against an independent plain-Python count."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import polars as pl
import pytest

from conftest import tweet
from scrm.data.schema import THREAD_COLUMNS, TWEET_COLUMNS


def _independent(sample_rows: list[dict[str, str]]) -> dict[str, int]:
    """The prepare.json figures recomputed with dicts and loops, from the CSV text."""
    ids = {int(r["tweet_id"]) for r in sample_rows}
    parent = {}
    for r in sample_rows:
        p = r["in_response_to_tweet_id"]
        parent[int(r["tweet_id"])] = int(p) if p else None
    usable = {t: (p if p is not None and p in ids and p != t else None) for t, p in parent.items()}

    def root(t: int) -> int:
        seen = set()
        while usable[t] is not None and t not in seen:
            seen.add(t)
            t = usable[t]
        return t

    roots = {t: root(t) for t in ids}
    by_id = {int(r["tweet_id"]): r for r in sample_rows}
    children: dict[int, list[int]] = defaultdict(list)
    for t, p in usable.items():
        if p is not None:
            children[p].append(t)
    openings = [t for t in ids if parent[t] is None and by_id[t]["inbound"] == "True"]
    answered_direct = [t for t in openings
                       if any(by_id[c]["inbound"] == "False" for c in children[t])]
    # "customer" definition: a brand tweet in the thread replying to any tweet of the opener
    author = {t: by_id[t]["author_id"] for t in ids}
    opening_set = set(openings)
    answered_customer = {roots[c] for c, p in usable.items()
                         if p is not None and by_id[c]["inbound"] == "False"
                         and roots[c] in opening_set and author[p] == author[roots[c]]}
    branching = {roots[p] for p, cs in children.items() if len(cs) >= 2}
    return {
        "rows_in": len(sample_rows),
        "tweets": len(ids),
        "brands": len({r["author_id"] for r in sample_rows if r["inbound"] == "False"}),
        "customers": len({r["author_id"] for r in sample_rows if r["inbound"] == "True"}),
        "threads": len(set(roots.values())),
        "openings": len(openings),
        "answered_openings_direct": len(answered_direct),
        "answered_openings": len(answered_customer),
        "dangling_references": sum(1 for t, p in parent.items() if p is not None and p not in ids),
        "branching_threads": len(branching),
    }


def test_sample_metrics_match_independent_count(prepared_root, sample_rows):
    metrics = json.loads((prepared_root.metrics / "prepare.json").read_text())
    expected = _independent(sample_rows)
    for key, value in expected.items():
        assert metrics[key] == value, key
    assert metrics["rows_in"] == metrics["rows_clean"] + metrics["rows_quarantined"]
    assert metrics["rows_quarantined"] == 0  # the real sample is clean


def test_tweets_contract_and_types(prepared_root, sample_rows):
    tw = pl.read_parquet(prepared_root.tweets)
    assert tuple(tw.columns) == TWEET_COLUMNS
    assert tw.schema["created_at"] == pl.Datetime("us", "UTC")
    assert tw.schema["response_tweet_ids"] == pl.List(pl.Int64)
    first = tw.filter(pl.col("tweet_id") == 1).row(0, named=True)
    raw = sample_rows[0]
    assert first["author_id"] == raw["author_id"] == "sprintcare"
    assert first["inbound"] is False and first["role"] == "brand"
    assert first["created_at"].isoformat() == "2017-10-31T22:10:47+00:00"
    assert first["response_tweet_ids"] == [2]
    assert first["in_response_to_tweet_id"] == 3
    assert first["text"] == raw["text"]
    # multi-id response lists parsed in full
    multi = [r for r in sample_rows if "," in r["response_tweet_id"]]
    r = multi[0]
    got = tw.filter(pl.col("tweet_id") == int(r["tweet_id"]))["response_tweet_ids"].to_list()[0]
    assert got == [int(x) for x in r["response_tweet_id"].split(",")]
    # line numbers are physical lines: records with newlines in text push later records down
    assert tw["line_no"].min() == 2
    assert tw["line_no"].is_unique().all()


def test_threads_contract_and_consistency(prepared_root):
    tw = pl.read_parquet(prepared_root.tweets)
    th = pl.read_parquet(prepared_root.threads)
    assert list(th.columns) == list(THREAD_COLUMNS)
    assert th["thread_id"].is_unique().all()
    assert set(tw["thread_id"].unique()) == set(th["thread_id"])
    assert th["n_tweets"].sum() == tw.height
    # parent's depth + 1 == child's depth, parent in the same thread
    j = tw.join(tw.select(pl.col("tweet_id").alias("parent_id"), pl.col("depth").alias("pd"),
                          pl.col("thread_id").alias("pt")), on="parent_id", how="inner")
    assert (j["depth"] == j["pd"] + 1).all()
    assert (j["thread_id"] == j["pt"]).all()
    # turn index is 0..n-1 in time order inside each thread
    chk = tw.sort("thread_id", "created_at", "tweet_id").group_by("thread_id", maintain_order=True).agg(
        ok=(pl.col("turn") == pl.int_range(pl.len())).all())
    assert chk["ok"].all()


def test_hand_made_threads(tiny_root):
    rows = [
        tweet(10, "501", 0, "@Brand my order is late", replies=[11]),
        tweet(11, "Brand", 5, "@501 sorry! DM us ^AB", parent=10, replies=[12, 13]),
        tweet(12, "501", 9, "@Brand done", parent=11),
        tweet(13, "502", 7, "@Brand same here", parent=11),          # branch: 11 has two replies
        tweet(20, "503", 30, "@Brand hello?"),                        # unanswered opening
        tweet(30, "504", 40, "@Brand reply to lost tweet", parent=999),  # dangling parent
        tweet(31, "Brand", 41, "@504 hi", parent=30),
        tweet(40, "505", 50, "@Brand talking to myself", parent=40),  # self-reply
    ]
    paths = tiny_root(rows)
    tw = pl.read_parquet(paths.tweets).sort("tweet_id")
    th = pl.read_parquet(paths.threads).sort("thread_id")
    t = {r["tweet_id"]: r for r in tw.iter_rows(named=True)}
    assert [t[i]["thread_id"] for i in (10, 11, 12, 13)] == [10, 10, 10, 10]
    assert [t[i]["depth"] for i in (10, 11, 12, 13)] == [0, 1, 2, 2]
    assert [t[i]["turn"] for i in (10, 11, 13, 12)] == [0, 1, 2, 3]
    assert t[30]["thread_id"] == 30 and t[30]["parent_dangling"] and t[31]["thread_id"] == 30
    assert t[40]["thread_id"] == 40 and t[40]["parent_id"] is None
    rows_th = {r["thread_id"]: r for r in th.iter_rows(named=True)}
    assert rows_th[10]["is_opening"] and rows_th[10]["opening_answered"] and rows_th[10]["has_branch"]
    assert rows_th[10]["brand"] == "Brand" and rows_th[10]["customer_id"] == "501"
    assert (rows_th[10]["n_customer_turns"], rows_th[10]["n_brand_turns"]) == (3, 1)
    assert rows_th[20]["is_opening"] and not rows_th[20]["opening_answered"]
    assert rows_th[20]["brand"] is None
    assert not rows_th[30]["is_opening"] and rows_th[30]["root_dangling"]
    assert not rows_th[40]["is_opening"]  # it references a parent (itself)
    m = json.loads((paths.metrics / "prepare.json").read_text())
    assert m["threads"] == 4 and m["openings"] == 2 and m["answered_openings"] == 1
    assert m["dangling_references"] == 1 and m["self_replies"] == 1 and m["branching_threads"] == 1


def test_cycle_is_broken_and_counted(tiny_root):
    rows = [
        tweet(1, "601", 0, "a", parent=3),
        tweet(2, "Brand", 1, "b", parent=1),
        tweet(3, "601", 2, "c", parent=2),   # 1 -> 3 -> 2 -> 1
        tweet(4, "Brand", 3, "d", parent=3),  # hangs below the cycle
    ]
    paths = tiny_root(rows)
    tw = pl.read_parquet(paths.tweets).sort("tweet_id")
    assert tw["thread_id"].to_list() == [1, 1, 1, 1]  # the cycle's smallest id becomes the root
    assert dict(zip(tw["tweet_id"], tw["depth"])) == {1: 0, 2: 1, 3: 2, 4: 3}
    m = json.loads((paths.metrics / "prepare.json").read_text())
    assert m["cycles_broken"] == 1


def test_multi_brand_thread_is_flagged(tiny_root):
    rows = [
        tweet(1, "700", 0, "@A @B help", replies=[2, 3]),
        tweet(2, "A", 1, "@700 hi from A", parent=1),
        tweet(3, "B", 2, "@700 hi from B", parent=1, replies=[4]),
        tweet(4, "700", 3, "@B thx", parent=3, replies=[5]),
        tweet(5, "B", 4, "@700 np", parent=4),
    ]
    th = pl.read_parquet(tiny_root(rows).threads)
    r = th.row(0, named=True)
    assert r["multi_brand"] and r["n_brands"] == 2 and r["brand"] == "B"  # B replies most


def test_quarantine_reasons_and_accounting(tiny_root):
    rows = [
        tweet(1, "800", 0, "ok"),
        {**tweet(2, "800", 1, "bad date"), "created_at": "yesterday"},
        {**tweet(3, "800", 2, "bad inbound"), "inbound": "maybe"},
        tweet(1, "800", 3, "duplicate id, other text"),
        tweet(4, "800", 4, ""),
    ]
    paths = tiny_root(rows)
    q = pl.read_csv(paths.quarantine, infer_schema=False)
    assert dict(zip(q["line_no"].cast(int), q["reason"])) == {
        3: "bad_created_at", 4: "bad_inbound", 5: "duplicate_tweet_id", 6: "empty_text"}
    assert "first seen on line 2" in q.filter(pl.col("reason") == "duplicate_tweet_id")["detail"][0]
    m = json.loads((paths.metrics / "prepare.json").read_text())
    assert (m["rows_in"], m["rows_clean"], m["rows_quarantined"]) == (5, 1, 4)


@pytest.mark.parametrize("path_fixture", ["kaggle_sample_csv"])
def test_scattered_kaggle_sample_prepares(path_fixture, request, tmp_path):
    """Kaggle's own sample.csv has incomplete threads: everything is counted, nothing crashes."""
    import shutil

    from conftest import make_root
    from scrm.config import load_settings
    from scrm.data import prepare

    paths = make_root(tmp_path)
    shutil.copy(request.getfixturevalue(path_fixture), paths.raw_csv)
    settings = load_settings(paths.root)
    m = prepare.run(paths, settings.prepare, settings.openings)
    assert m["rows_in"] == 93 == m["rows_clean"] + m["rows_quarantined"]
    assert m["dangling_references"] > 0
