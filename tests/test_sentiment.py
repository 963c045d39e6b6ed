"""Sentiment: our VADER path equals vaderSentiment called directly on real tweets; cleaning keeps the
signal VADER reads; the scorer is pluggable by name or dotted path."""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from scrm import outcome as oc
from scrm.sentiment import VaderScorer, get_scorer, score_frame
from scrm.text import clean_for_sentiment

# real tweets of the sample: emoji, a URL, a handle, a negation, shouting, a brand reply
SAMPLE_IDS = ("12", "36", "69", "156", "29", "33", "63", "22")


class ConstantScorer:
    """A plug-in scorer for the test: proves the stage uses whatever params select."""

    name = "constant"

    def score(self, texts: Sequence[str]) -> list[float]:
        return [-0.5 if "!" in t else 0.25 for t in texts]


def _independent_clean(text: str) -> str:
    """Handles and URLs removed with Python's re, independently of the polars expression."""
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"@\w+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def real_tweets(sample_rows) -> pl.DataFrame:
    by_id = {r["tweet_id"]: r for r in sample_rows}
    return pl.DataFrame({"tweet_id": list(SAMPLE_IDS), "text": [by_id[i]["text"] for i in SAMPLE_IDS]})


def test_vader_scores_match_vadersentiment_called_directly(real_tweets):
    analyzer = SentimentIntensityAnalyzer()
    ours = score_frame(real_tweets, "text", get_scorer("vader"), "sentiment")
    expected = [analyzer.polarity_scores(_independent_clean(t))["compound"]
                for t in real_tweets["text"].to_list()]
    assert ours["sentiment"].to_list() == expected
    assert ours["tweet_id"].to_list() == list(SAMPLE_IDS)  # order kept
    # the sample's tweets carry real polarity, not all zeros
    assert min(expected) < -0.5 and max(expected) > 0.3


def test_cleaning_keeps_emoji_and_punctuation_and_drops_handles_and_urls(real_tweets):
    cleaned = real_tweets.select(clean_for_sentiment("text"))["text"].to_list()
    by_id = dict(zip(SAMPLE_IDS, cleaned))
    assert "😩😩😩😩" in by_id["36"] and "@VerizonSupport" not in by_id["36"]
    assert by_id["12"].endswith("? 🤥 💯")
    assert "https://" not in by_id["29"] and by_id["29"].endswith("incorrect information")
    assert cleaned == [_independent_clean(t) for t in real_tweets["text"].to_list()]
    # the emoji is signal: without it VADER reads these real complaints as neutral or positive
    a = SentimentIntensityAnalyzer()
    for tid, emoji in (("36", "😩"), ("12", "🤥 💯")):
        with_emoji = a.polarity_scores(by_id[tid])["compound"]
        without = a.polarity_scores(by_id[tid].replace(emoji, ""))["compound"]
        assert with_emoji < -0.5 and without >= 0.0


def test_duplicate_texts_are_scored_once_and_get_the_same_score():
    calls: list[int] = []

    class Counting(VaderScorer):
        def score(self, texts):
            calls.append(len(texts))
            return super().score(texts)

    df = pl.DataFrame({"text": ["@a I love it!", "@b I love it!", "@c awful :(", "@a I love it!"]})
    out = score_frame(df, "text", Counting(), "s")
    assert calls == [2]  # "I love it!" and "awful :(" after cleaning
    s = out["s"].to_list()
    assert s[0] == s[1] == s[3] > 0 > s[2]


def test_scorer_is_pluggable_by_dotted_path_and_the_stage_uses_it(tiny_root):
    from conftest import tweet

    assert get_scorer("vader").name == "vader"
    scorer = get_scorer("test_sentiment:ConstantScorer")
    assert scorer.score(["fine", "bad!"]) == [0.25, -0.5]
    with pytest.raises(ValueError, match="unknown sentiment scorer"):
        get_scorer("no_such_scorer")

    paths = tiny_root([tweet(1, "101", 0, "@Acme broken!"), tweet(2, "Acme", 5, "@101 sorry", 1),
                       tweet(3, "101", 9, "@Acme fine now!", 2)])
    from scrm import sentiment as stage
    from scrm.config import load_settings

    settings = load_settings(paths.root)
    # the sentiment stage scores with the selected scorer; outcome reads its table
    constant = settings.sentiment.replace(scorer="test_sentiment:ConstantScorer")
    stage.run(paths, constant)
    res = oc.compute(paths, settings.outcome, constant, settings.embed)
    assert res.metrics["sentiment"]["scorer"] == "test_sentiment:ConstantScorer"
    assert pl.read_parquet(paths.sentiment).sort("tweet_id")["sentiment"].to_list() == [-0.5, 0.25,
                                                                                        -0.5]
    assert res.outcome["label"].to_list() == ["still_unhappy"]
    # VADER reads the last turn as positive: the label follows the selected scorer
    vader = settings.sentiment.replace(scorer="vader")
    stage.run(paths, vader)
    res = oc.compute(paths, settings.outcome, vader, settings.embed)
    assert res.metrics["sentiment"]["scorer"] == "vader"
    assert res.outcome["label"].to_list() == ["recovered"]
