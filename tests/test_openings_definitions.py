"""The opening table's three "answered" definitions and its non-request rules: hand-made threads with
known answers, and sample tweets that were read one by one."""

from __future__ import annotations

import copy
from typing import Any

import polars as pl
import pytest

from scrm.config import PROJECT_ROOT, Paths, load_params, settings_from_dict
from scrm.data.openings import (NON_REQUEST_RULES, answered_counts, brand_names, build_openings,
                                known_brands, service_population)

from conftest import tweet


def _inbound(t: dict[str, Any]) -> dict[str, Any]:
    """A hand-made tweet whose (brand) author posts inbound, like a customer."""
    return {**t, "inbound": "True"}


THREADS = [
    # (a) the brand answers the customer's later tweet, never the opening itself
    tweet(1, "301", 0, "@BrandA my order is late"),
    tweet(2, "301", 5, "@BrandA hello??", parent=1),
    tweet(3, "BrandA", 20, "@301 sorry, DM us", parent=2),
    # (b) a third party joins; the brand answers them first, the customer later
    tweet(4, "302", 0, "@BrandA is the app down?"),
    tweet(5, "303", 10, "@302 @BrandA same here", parent=4),
    tweet(6, "BrandA", 30, "@303 we're on it", parent=5),
    tweet(7, "BrandA", 90, "@302 back up now", parent=4),
    # (b') the brand only ever answers the third party
    tweet(8, "304", 40, "@BrandA where is my refund"),
    tweet(9, "305", 45, "@304 mine too", parent=8),
    tweet(10, "BrandA", 50, "@305 DM us", parent=9),
    # (c) a promotional opening: a customer asks under it, the brand answers that customer
    tweet(11, "306", 60, "Win a free phone! Enter our #contest https://t.co/abc"),
    tweet(12, "307", 65, "@306 @BrandA is this real?", parent=11),
    tweet(13, "BrandA", 70, "@307 not ours, sorry", parent=12),
    # a plain request, answered directly
    tweet(14, "320", 100, "@AcmeHelp parcel missing"),
    tweet(15, "AcmeHelp", 101, "@320 on it", parent=14),
    tweet(16, "UPSHelp", 102, "@320 we will check too", parent=14),
    # an account three others address (a brand's marketing account): its own opening is not a request
    tweet(20, "309", 110, "@308 @BrandA love it"),
    tweet(21, "310", 111, "@308 nice"),
    tweet(22, "311", 112, "hey @308"),
    tweet(23, "308", 113, "Big news today, stay with us"),
    # a brand account writing inbound, a retweet-like broadcast
    _inbound(tweet(24, "BrandB", 114, "@BrandA hello neighbour")),
    tweet(25, "BrandB", 114.5, "@320 hi", parent=14),  # BrandB also writes outbound: a brand
    tweet(26, "312", 115, "RT @BrandA: our new store is open"),
    # no @handle: with a link and no brand named -> not a request; naming a brand -> a request
    tweet(27, "313", 116, "Lovely sunset tonight https://t.co/xyz"),
    tweet(28, "314", 117, "My Kindle is broken"),                         # no link: a request
    tweet(29, "315", 118, "acme lost my parcel https://t.co/a"),          # AcmeHelp -> acme
    tweet(30, "316", 119, "waiting for UPS all day https://t.co/u"),      # ups: a whole word
    tweet(31, "317", 120, "joined two groups today https://t.co/g"),      # 'ups' inside a word
]

# opening -> (non_request, (answered, latency_s) under direct, customer, thread)
EXPECTED = {
    1: (None, (False, None), (True, 1200.0), (True, 1200.0)),
    4: (None, (True, 5400.0), (True, 5400.0), (True, 1800.0)),
    8: (None, (False, None), (False, None), (True, 600.0)),
    11: ("promotional", (False, None), (False, None), (True, 600.0)),
    14: (None, (True, 60.0), (True, 60.0), (True, 60.0)),
    20: (None, (False, None), (False, None), (False, None)),
    21: (None, (False, None), (False, None), (False, None)),
    22: (None, (False, None), (False, None), (False, None)),
    23: ("brand_alias", (False, None), (False, None), (False, None)),
    24: ("brand_account", (False, None), (False, None), (False, None)),
    26: ("broadcast", (False, None), (False, None), (False, None)),
    27: ("no_brand_mention", (False, None), (False, None), (False, None)),
    28: (None, (False, None), (False, None), (False, None)),
    29: (None, (False, None), (False, None), (False, None)),
    30: (None, (False, None), (False, None), (False, None)),
    31: ("no_brand_mention", (False, None), (False, None), (False, None)),
}


def _openings(paths: Paths, **changes: Any) -> pl.DataFrame:
    params = copy.deepcopy(load_params(paths.root))
    params["openings"].update(changes)
    return build_openings(pl.read_parquet(paths.tweets), pl.read_parquet(paths.threads),
                          settings_from_dict(params).openings)


@pytest.fixture
def hand_made(tiny_root: Any) -> Paths:
    return tiny_root(THREADS)


@pytest.mark.parametrize("definition", ["direct", "customer", "thread"])
def test_each_definition_on_hand_made_threads(hand_made: Paths, definition: str) -> None:
    op = _openings(hand_made, answered_definition=definition)
    assert sorted(op["opening_tweet_id"]) == sorted(EXPECTED)
    col = ("direct", "customer", "thread").index(definition) + 1
    rows = {r["opening_tweet_id"]: r for r in op.to_dicts()}
    for oid, expected in EXPECTED.items():
        answered, latency = expected[col]
        r = rows[oid]
        assert (r["answered"], r["latency_s"]) == (answered, latency), (definition, oid)
        assert r[f"answered_{definition}"] is answered
    # the first response under each definition is the tweet the docstring names
    assert rows[1]["first_response_id"] == (None, 3, 3)[col - 1]
    assert rows[4]["first_response_id"] == (7, 7, 6)[col - 1]
    assert rows[4]["responder"] == "BrandA"


def test_non_request_rules_on_hand_made_tweets(hand_made: Paths) -> None:
    op = _openings(hand_made)
    got = dict(op.select("opening_tweet_id", "non_request").iter_rows())
    assert got == {oid: e[0] for oid, e in EXPECTED.items()}
    assert (op["is_request"] == op["non_request"].is_null()).all()
    assert set(got.values()) - {None} == set(NON_REQUEST_RULES)  # every rule fires once at least


def test_each_rule_can_be_switched_off(hand_made: Paths) -> None:
    base = load_params(hand_made.root)["openings"]["non_request"]
    off = {**base, "brand_account": False, "alias_min_mentioners": None, "broadcast_patterns": [],
           "promo_patterns": [], "no_brand_mention": False}
    assert _openings(hand_made, non_request=off)["non_request"].null_count() == len(EXPECTED)
    # without the link condition, "My Kindle is broken" (no brand named, no link) is flagged too
    no_link = _openings(hand_made, non_request={**base, "no_brand_requires_link": False})
    assert dict(no_link.select("opening_tweet_id", "non_request").iter_rows())[28] == \
        "no_brand_mention"
    # a stricter alias rule: 308 is addressed by three others, not by four
    strict = _openings(hand_made, non_request={**base, "alias_min_mentioners": 4})
    assert dict(strict.select("opening_tweet_id", "non_request").iter_rows())[23] is None


def test_service_population_follows_the_switch(hand_made: Paths) -> None:
    op = _openings(hand_made)
    params = copy.deepcopy(load_params(hand_made.root))
    keep = settings_from_dict(params).openings
    assert service_population(op, keep)["is_request"].all()
    assert service_population(op, keep).height == op.height - 6
    params["openings"]["exclude_non_requests"] = False
    assert service_population(op, settings_from_dict(params).openings).height == op.height
    assert answered_counts(op) == {"openings": 16, "answered": int(op["answered"].sum()),
                                   "unanswered": 16 - int(op["answered"].sum())}


def test_brand_names_strip_support_affixes() -> None:
    pattern = load_params(PROJECT_ROOT)["openings"]["non_request"]["brand_name_pattern"]
    handles = ["AmazonHelp", "Ask_WellsFargo", "AskPapaJohns", "comcastcares", "Delta",
               "TMobileHelp", "UPSHelp", "ChipotleTweets", "BofA_Help", "hulu_support"]
    tweets = pl.LazyFrame({"author_id": handles, "role": ["brand"] * len(handles)})
    assert brand_names(known_brands(tweets), pattern) == sorted(
        ["amazon", "wellsfargo", "papajohns", "comcast", "delta", "tmobile", "ups", "chipotle",
         "bofa", "hulu"])


# sample openings read one by one (data/sample/twcs_head5000.csv): id -> expected non_request
SAMPLE_READ = {
    1072: "brand_alias",        # "Join our iPhone upgrade program": T-Mobile's own (numbered) account
    4312: "brand_alias",        # a Sprint sweepstakes from the account customers address as Sprint
    2812: "brand_alias",        # "3 months of Premium for ₱9" from Spotify's account
    630: "promotional",         # "now available for preorder on Xbox One" + link
    5877: "promotional",        # "tickets still available on StubHub" + link
    2040: "promotional",        # a customer's #Contest entry, not a request
    5099: "no_brand_mention",   # "Visit us at participating Xfinity Stores" + link, no @ at all
    4840: "no_brand_mention",   # a Japanese Cyber Monday announcement + link
    1745: None,                 # "My Kindle not working properly": a request (no link)
    2298: None,                 # "I don't recommend upgrading to the Windows 10 ...": no link
    1163: None,                 # "T-Mobile So Bs My Internet Stop Working" + link: names T-Mobile
    5664: None,                 # "fees again from #bankofamerica": no link
    18: None,                   # "@115714 y'all lie about your connection": addresses an account
}


def test_non_request_rules_on_read_sample_tweets(prepared_root: Paths) -> None:
    op = pl.read_parquet(prepared_root.openings)
    got = dict(op.filter(pl.col("opening_tweet_id").is_in(list(SAMPLE_READ)))
               .select("opening_tweet_id", "non_request").iter_rows())
    assert got == SAMPLE_READ
    counts = op["non_request"].value_counts()
    assert dict(counts.iter_rows()) == {None: 1244, "brand_alias": 22, "promotional": 9,
                                        "no_brand_mention": 10}
    # no rule looks at the answer: the flagged openings' answered shares are whatever they are,
    # and definition (c) leaves no opening of the sample unanswered
    assert op["answered_thread"].all()
    assert (op.filter(pl.col("non_request") == "brand_alias")["answered_customer"].sum()) == 0
