"""Property-based tests of thread reconstruction (scrm.data.threads) against an independent oracle.

Hypothesis builds random reply graphs: forests, replies to tweets not in the file (dangling),
self-replies and reply cycles, in a random row order. ``assign_threads`` must give the same threads
for every row order, put every tweet in exactly one thread rooted at a tweet without parent, keep
depth(child) = depth(parent) + 1, and agree tweet by tweet with a plain-Python reference
implementation of the documented rules (schema.py: parent_id, cycle cut at the smallest id).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrm.data.schema import THREAD_COLUMNS
from scrm.data.threads import assign_threads, summarise_threads

T0 = datetime(2017, 10, 31, 12, 0, tzinfo=timezone.utc)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------------
# building frames
# --------------------------------------------------------------------------------------------------
def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Clean tweets as ``prepare.validate`` returns them."""
    return pl.DataFrame(
        {
            "tweet_id": [r["tweet_id"] for r in rows],
            "author_id": [r["author_id"] for r in rows],
            "inbound": [r["inbound"] for r in rows],
            "created_at": [T0 + timedelta(minutes=r["minutes"]) for r in rows],
            "text": [f"tweet {r['tweet_id']}" for r in rows],
            "response_tweet_ids": [r.get("replies", []) for r in rows],
            "in_response_to_tweet_id": [r["parent"] for r in rows],
            "line_no": [r.get("line_no", i + 2) for i, r in enumerate(rows)],
        },
        schema={"tweet_id": pl.Int64, "author_id": pl.String, "inbound": pl.Boolean,
                "created_at": pl.Datetime("us", "UTC"), "text": pl.String,
                "response_tweet_ids": pl.List(pl.Int64), "in_response_to_tweet_id": pl.Int64,
                "line_no": pl.Int64},
    )


@st.composite
def reply_graphs(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, Any]]:
    """Tweets with random parents: none, an earlier tweet (forest), any tweet (may close a cycle),
    itself, or an id that is not in the file."""
    ids = draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=max_size, unique=True))
    n = len(ids)
    kinds = st.sampled_from(["none", "earlier", "earlier", "earlier", "any", "self", "dangling"])
    rows = []
    id_set = set(ids)
    for i, tid in enumerate(ids):
        kind = draw(kinds)
        parent: int | None
        if kind == "earlier" and i > 0:
            parent = ids[draw(st.integers(0, i - 1))]
        elif kind == "any":
            parent = ids[draw(st.integers(0, n - 1))]
        elif kind == "self":
            parent = tid
        elif kind == "dangling":
            parent = draw(st.integers(10_001, 20_000).filter(lambda x: x not in id_set))
        else:
            parent = None
        inbound = draw(st.booleans())
        rows.append({"tweet_id": tid, "author_id": str(draw(st.integers(1, 5))) if inbound
                     else draw(st.sampled_from(["BrandA", "BrandB"])), "inbound": inbound,
                     "minutes": draw(st.integers(0, 20)), "parent": parent})
    for i, r in enumerate(rows):  # the parent's side of the link, as the raw file lists it
        r["replies"] = [c["tweet_id"] for c in rows if c["parent"] == r["tweet_id"]]
        r["line_no"] = i + 2  # a row keeps its line whatever the order it is handed over in
    return rows


# --------------------------------------------------------------------------------------------------
# the oracle: the documented rules in plain Python
# --------------------------------------------------------------------------------------------------
def oracle(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ids = {r["tweet_id"] for r in rows}
    written = {r["tweet_id"]: r["parent"] for r in rows}
    parent = {t: (p if p is not None and p in ids and p != t else None) for t, p in written.items()}
    # cycles in the functional graph tweet -> parent: cut the smallest id of each
    cuts: set[int] = set()
    colour: dict[int, int] = {}
    for start in sorted(parent):
        path: list[int] = []
        node: int | None = start
        while node is not None and node not in colour:
            colour[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and colour[node] == 1:
            cuts.add(min(path[path.index(node):]))
        for x in path:
            colour[x] = 2
    for c in cuts:
        parent[c] = None
    root: dict[int, int] = {}
    depth: dict[int, int] = {}
    for t in parent:
        chain = [t]
        while parent[chain[-1]] is not None:
            chain.append(parent[chain[-1]])
            assert len(chain) <= len(parent)  # a cycle survived: the oracle itself is wrong
        root[t] = chain[-1]
        depth[t] = len(chain) - 1
    by_thread: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_thread.setdefault(root[r["tweet_id"]], []).append(r)
    turn = {}
    for members in by_thread.values():
        for k, r in enumerate(sorted(members, key=lambda r: (r["minutes"], r["tweet_id"]))):
            turn[r["tweet_id"]] = k
    return {"parent": parent, "root": root, "depth": depth, "turn": turn, "cycles": len(cuts),
            "self": sum(written[t] == t for t in written),
            "dangling": sum(p is not None and p not in ids for p in written.values()),
            "by_thread": by_thread}


def check_invariants(tweets: pl.DataFrame, n: int) -> None:
    """Structure every output must have, whatever the input."""
    assert tweets.height == n and tweets["tweet_id"].n_unique() == n
    assert tweets["thread_id"].null_count() == 0 and tweets["depth"].null_count() == 0
    roots = tweets.filter(pl.col("parent_id").is_null())
    # thread ids are exactly the tweets without a usable parent, at depth 0, in their own thread
    assert set(tweets["thread_id"]) == set(roots["tweet_id"])
    assert (roots["depth"] == 0).all() and (roots["thread_id"] == roots["tweet_id"]).all()
    assert (tweets.filter(pl.col("depth") == 0)["parent_id"].is_null()).all()
    # each child: one level below its parent, in its parent's thread
    pairs = tweets.filter(pl.col("parent_id").is_not_null()).join(
        tweets.select(pl.col("tweet_id").alias("parent_id"), pl.col("depth").alias("p_depth"),
                      pl.col("thread_id").alias("p_thread")), on="parent_id", how="left")
    assert pairs["p_depth"].null_count() == 0  # every parent_id is a tweet of the file
    assert (pairs["depth"] == pairs["p_depth"] + 1).all()
    assert (pairs["thread_id"] == pairs["p_thread"]).all()
    # turns: 0..k-1 within each thread
    turns = tweets.group_by("thread_id").agg(pl.col("turn").sort(), pl.len())
    for t, k in zip(turns["turn"].to_list(), turns["len"].to_list()):
        assert t == list(range(k))


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------
@SETTINGS
@given(rows=reply_graphs(), order=st.randoms(use_true_random=False))
def test_threads_match_oracle_in_any_row_order(rows, order):
    shuffled = list(rows)
    order.shuffle(shuffled)
    expect = oracle(rows)
    got, stats = assign_threads(frame(shuffled))
    check_invariants(got, len(rows))
    by_id = {r["tweet_id"]: r for r in got.iter_rows(named=True)}
    for t in expect["root"]:
        r = by_id[t]
        assert r["parent_id"] == expect["parent"][t], t
        assert r["thread_id"] == expect["root"][t], t
        assert r["depth"] == expect["depth"][t], t
        assert r["turn"] == expect["turn"][t], t
        assert r["parent_dangling"] == (r["in_response_to_tweet_id"] is not None
                                        and r["in_response_to_tweet_id"] not in by_id)
        assert r["role"] == ("customer" if r["inbound"] else "brand")
    assert stats["cycles_broken"] == expect["cycles"]
    assert stats["self_replies"] == expect["self"]
    assert stats["dangling_references"] == expect["dangling"]
    # the file's own child lists agree with the parents written, so nothing is unconfirmed
    assert stats["response_links_not_confirmed"] == 0


@SETTINGS
@given(rows=reply_graphs(max_size=25), seed=st.integers(0, 2**32 - 1))
def test_row_order_never_changes_threads_or_summary(rows, seed):
    import random

    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    a, sa = assign_threads(frame(rows))
    b, sb = assign_threads(frame(shuffled))
    assert sa == sb
    key = ["tweet_id"]
    assert a.sort(key).equals(b.sort(key))
    ta, tb = summarise_threads(a), summarise_threads(b)
    assert ta.equals(tb)


@SETTINGS
@given(rows=reply_graphs())
def test_summary_has_one_row_per_thread_and_adds_up(rows):
    tweets, _ = assign_threads(frame(rows))
    threads = summarise_threads(tweets)
    expect = oracle(rows)
    assert tuple(threads.columns) == tuple(THREAD_COLUMNS)
    assert threads["thread_id"].is_unique().all()
    assert set(threads["thread_id"]) == set(expect["by_thread"])
    assert threads["n_tweets"].sum() == len(rows)
    by_id = {r["tweet_id"]: r for r in rows}
    for th in threads.iter_rows(named=True):
        members = expect["by_thread"][th["thread_id"]]
        root = by_id[th["thread_id"]]
        assert th["opening_tweet_id"] == th["thread_id"]
        assert th["n_tweets"] == len(members)
        assert th["n_customer_turns"] == sum(m["inbound"] for m in members)
        assert th["n_brand_turns"] == sum(not m["inbound"] for m in members)
        assert th["max_depth"] == max(expect["depth"][m["tweet_id"]] for m in members)
        assert th["root_dangling"] == (root["parent"] is not None)
        assert th["is_opening"] == (root["inbound"] and root["parent"] is None)
        brand_reply_to_root = any(expect["parent"][m["tweet_id"]] == root["tweet_id"]
                                  and not m["inbound"] for m in members)
        assert th["opening_answered"] == (th["is_opening"] and brand_reply_to_root)
        brands = {m["author_id"] for m in members if not m["inbound"]}
        assert th["n_brands"] == len(brands) and th["multi_brand"] == (len(brands) > 1)
        assert (th["brand"] is None) == (not brands)


# --------------------------------------------------------------------------------------------------
# worst cases pointer doubling must survive (bounded rounds: these finish, and correctly)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cycle_len", [2, 3, 64, 1024, 1000])
def test_long_cycle_with_long_tail(cycle_len):
    """A cycle of ``cycle_len`` tweets (power-of-two lengths make pointer doubling settle on a
    non-root), a 3,000-tweet chain hanging off it, and a separate 5,000-tweet chain."""
    rows = []
    cyc = list(range(1, cycle_len + 1))
    for i, t in enumerate(cyc):
        rows.append({"tweet_id": t, "author_id": "1", "inbound": True, "minutes": 0,
                     "parent": cyc[i - 1]})  # 1 -> last, k -> k-1
    tail = list(range(20_000, 23_000))
    for i, t in enumerate(tail):
        rows.append({"tweet_id": t, "author_id": "B", "inbound": False, "minutes": i,
                     "parent": cyc[-1] if i == 0 else tail[i - 1]})
    chain = list(range(50_000, 55_000))
    for i, t in enumerate(chain):
        rows.append({"tweet_id": t, "author_id": "2", "inbound": True, "minutes": i,
                     "parent": None if i == 0 else chain[i - 1]})
    tweets, stats = assign_threads(frame(rows))
    check_invariants(tweets, len(rows))
    assert stats["cycles_broken"] == 1
    d = dict(zip(tweets["tweet_id"].to_list(), tweets["depth"].to_list()))
    th = dict(zip(tweets["tweet_id"].to_list(), tweets["thread_id"].to_list()))
    # the smallest id of the cycle (1) loses its link and becomes the root: k is at depth k-1
    assert all(th[t] == 1 and d[t] == t - 1 for t in cyc)
    assert d[tail[-1]] == cycle_len - 1 + len(tail) and th[tail[-1]] == 1
    assert d[chain[-1]] == len(chain) - 1 and th[chain[-1]] == chain[0]


def test_many_small_cycles_and_self_replies():
    rows = []
    for k in range(500):  # 500 two-cycles (a, b): a -> b -> a, and 500 self-replies
        a, b, s = 3 * k + 1, 3 * k + 2, 3 * k + 3
        rows += [{"tweet_id": a, "author_id": "1", "inbound": True, "minutes": 0, "parent": b},
                 {"tweet_id": b, "author_id": "B", "inbound": False, "minutes": 1, "parent": a},
                 {"tweet_id": s, "author_id": "2", "inbound": True, "minutes": 0, "parent": s}]
    tweets, stats = assign_threads(frame(rows))
    check_invariants(tweets, len(rows))
    assert stats["cycles_broken"] == 500 and stats["self_replies"] == 500
    assert tweets["thread_id"].n_unique() == 1000
    assert tweets.filter(pl.col("tweet_id") % 3 == 2)["depth"].to_list() == [1] * 500
