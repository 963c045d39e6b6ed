"""scrm.stats.classification and the clustering agreement of scrm.stats.agreement, each against a
hand computation or an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scrm.stats import agreement as A
from scrm.stats import classification as C

TRUTH = np.array([1, 1, 1, 0, 0, 1, 0, 0, 1, 1], dtype=bool)
PRED = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)  # tp 4, fp 2, fn 2, tn 2


def test_binary_scores_by_hand() -> None:
    from sklearn.metrics import f1_score
    from statsmodels.stats.proportion import proportion_confint

    s = C.binary_scores(TRUTH, PRED, level=0.95, n_boot=500, seed=3)
    assert (s["tp"], s["fp"], s["fn"], s["tn"], s["n"], s["positives"]) == (4, 2, 2, 2, 10, 6)
    assert s["precision"] == s["recall"] == round(4 / 6, 6)
    assert s["f1"] == round(2 / 3, 6) and s["accuracy"] == 0.6
    lo, hi = proportion_confint(4, 6, alpha=0.05, method="wilson")
    assert s["precision_ci"] == pytest.approx([lo, hi], abs=1e-6)
    lo, hi = proportion_confint(6, 10, alpha=0.05, method="wilson")
    assert s["accuracy_ci"] == pytest.approx([lo, hi], abs=1e-6)
    # the bootstrap: the same draws, F1 by scikit-learn one resample at a time
    draws = np.random.default_rng(3).integers(0, 10, size=(500, 10))
    boot = [f1_score(TRUTH[d], PRED[d], zero_division=np.nan) for d in draws]
    boot = np.array([b for b in boot if np.isfinite(b)])
    assert s["f1_ci"] == pytest.approx(list(np.quantile(boot, [0.025, 0.975])), abs=1e-6)
    assert C.binary_scores(TRUTH, PRED, n_boot=500, seed=3) == s  # seeded: same numbers


def test_binary_scores_without_predicted_positives() -> None:
    s = C.binary_scores(TRUTH, np.zeros(10, dtype=bool), n_boot=100)
    assert s["precision"] is None and s["recall"] == 0.0 and s["f1"] == 0.0
    with pytest.raises(ValueError, match="Boolean"):
        C.binary_scores([1, 0], [1, 0])


def test_mcnemar_exact_by_hand() -> None:
    truth = np.ones(10, dtype=bool)
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)   # right on 8
    b = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)   # right on 3
    r = C.paired_comparison(truth, a, b, n_boot=200, seed=0)
    # discordant: only A right on 6 items, only B right on 1 -> two-sided binomial(7, 1/2)
    assert (r["a_only_right"], r["b_only_right"]) == (6, 1)
    assert r["p_value"] == pytest.approx(2 * (1 + 7) / 2 ** 7)   # 0.125
    assert r["statistic"] == 1.0 and r["df"] is None
    f1 = lambda p: 2 * p.sum() / (2 * p.sum() + (~p).sum())  # noqa: E731 - all items positive
    assert r["f1_diff"] == round(f1(a) - f1(b), 6)
    assert r["f1_diff_ci"][0] <= r["f1_diff"] <= r["f1_diff_ci"][1]


def test_holm_by_hand_and_p_values_never_zero() -> None:
    assert C.holm([0.01, 0.04, 0.03, None]) == [0.03, 0.06, 0.06, None]
    assert C.p_value(0.0) > 0 and C.p_value(1e-320) > 0
    assert C.p_value(0.000123456) == 0.0001235 and C.p_value(float("nan")) is None


def test_adjusted_rand_by_hand() -> None:
    # contingency {2, 1, 1}: index 1, expected 2 * 1 / 6, max (2 + 1) / 2 -> (2/3) / (7/6) = 4/7
    assert A.adjusted_rand([0, 0, 1, 1], [5, 5, 7, 9]) == pytest.approx(4 / 7)
    assert A.adjusted_rand([0, 0, 1, 2], [3, 3, 9, 1]) == pytest.approx(1.0)  # ids do not matter
    with pytest.raises(ValueError):
        A.adjusted_rand([0, 1], [0])


def test_topic_word_overlap_by_hand() -> None:
    a = {0: ["x", "y"], 1: ["z", "w"]}
    b = {7: ["x", "y", "z"]}
    # a -> b: (2/3 + 1/4) / 2 = 11/24; b -> a: 2/3; mean 27/48
    assert A.topic_word_overlap(a, b) == pytest.approx(27 / 48)
    assert A.topic_word_overlap(a, a) == 1.0 and A.topic_word_overlap(a, {}) == 0.0
    assert math.isclose(A.topic_word_overlap(a, b), A.topic_word_overlap(b, a))
