"""scrm.stats.powerlaw: word tokens, type-token curves, Heaps' and Zipf's laws, by hand and on the sample."""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest

from scrm.config import SAMPLE_CSV
from scrm.stats.powerlaw import (TOKEN_PATTERN, discrete_alpha, heaps_fit, prefix_sizes,
                                 type_token_curve, word_counts, word_tokens)


def test_words_are_lowercased_letter_runs_of_two_or_more():
    texts = pl.Series(["@AmazonHelp it's DOWN again!! https://t.co/AbC1de", "a 42 I", None])
    assert word_tokens(texts).to_list() == [
        ["amazonhelp", "it's", "down", "again", "https", "co", "abc", "de"], [], []]


def test_prefix_sizes_follow_a_1_2_5_grid_and_end_at_the_size():
    assert prefix_sizes(2778) == [100, 200, 500, 1000, 2000, 2778]
    assert prefix_sizes(1000) == [100, 200, 500, 1000]
    assert prefix_sizes(100) == [100]
    assert prefix_sizes(60, start=10) == [10, 20, 50, 60]


def test_type_token_curve_by_hand():
    texts = pl.Series(["The cat", "the dog's bone", "A cat 42 I", "new"])
    curve = type_token_curve(texts, [1, 2, 3, 4])
    # words: the cat | the dog's bone | cat | new
    assert curve["tokens"].to_list() == [2, 5, 6, 7]
    assert curve["types"].to_list() == [2, 4, 4, 5]
    with pytest.raises(ValueError):
        type_token_curve(texts, [5])


def test_sample_curve_is_the_issue_table_and_a_direct_count():
    """The customer column of the real sample: 500 -> 2,041, 1,000 -> 3,285, 2,778 -> 6,502."""
    df = pl.read_csv(SAMPLE_CSV, infer_schema=False)
    texts = df.filter(pl.col("inbound") == "True")["text"]
    curve = type_token_curve(texts, [500, 1000, len(texts)])
    assert len(texts) == 2778
    assert curve["types"].to_list() == [2041, 3285, 6502]
    seen: set[str] = set()
    for t in texts.to_list():                      # plain Python, the same definition
        seen.update(re.findall(TOKEN_PATTERN, t.lower()))
    assert len(seen) == 6502


def test_heaps_fit_recovers_an_exact_power_law_and_matches_least_squares():
    n = np.array([100, 200, 500, 1000, 2000])
    fit = heaps_fit(n, 3.0 * n ** 0.5)
    assert fit["K"] == pytest.approx(3.0) and fit["beta"] == pytest.approx(0.5)
    v = np.array([642, 1079, 2041, 3285, 5138])
    slope, intercept = np.polyfit(np.log(n), np.log(v), 1)
    fit = heaps_fit(n, v)
    assert fit["beta"] == pytest.approx(slope) and fit["K"] == pytest.approx(math.exp(intercept))
    with pytest.raises(ValueError):
        heaps_fit([10, 10], [5, 6])


def test_discrete_alpha_by_hand_and_on_a_zeta_sample():
    # 1 + n / sum(log(k / (k_min - 1/2)))
    assert discrete_alpha([1, 1, 2, 4]) == pytest.approx(1 + 4 / (2 * math.log(2) + math.log(4)
                                                                   + math.log(8)))
    assert discrete_alpha([1, 2, 4], k_min=2) == pytest.approx(
        1 + 2 / (math.log(2 / 1.5) + math.log(4 / 1.5)))
    x = np.random.default_rng(0).zipf(2.5, 200_000)
    assert discrete_alpha(x, k_min=6) == pytest.approx(2.5, abs=0.05)
    with pytest.raises(ValueError):
        discrete_alpha([1, 2], k_min=3)


def test_word_counts_by_hand():
    assert sorted(word_counts(pl.Series(["to be or not to be", "To"])).tolist()) == [1, 1, 2, 3]
