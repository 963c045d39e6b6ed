"""The binary scores of scrm.stats.classification and the clustering agreement of
scrm.stats.agreement, each against a hand computation or an independent implementation."""

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


def test_paired_scores_of_the_positive_class_is_its_f1() -> None:
    """Two binary detectors compared with paired_scores scoring only the positive class: its
    macro-F1 is the F1 of that class (what detect stores for every comparison)."""
    a = np.where(PRED, "yes", "no")
    b = np.where(np.ones(10, dtype=bool), "yes", "no")
    t = np.where(TRUTH, "yes", "no")
    res = C.paired_scores(t, a, b, ["yes", "no"], ["yes"], n_boot=200, seed=1)
    assert res["macro_f1"]["a"] == round(2 / 3, 6)                 # 2*4 / (2*4 + 2 + 2)
    assert res["macro_f1"]["b"] == round(2 * 6 / (2 * 6 + 4), 6)  # always yes: tp 6, fp 4
    # only A right: its true negatives (items 4, 6); only B right: A's false negatives (1, 9)
    assert res["mcnemar"]["only_a_correct"] == 2 and res["mcnemar"]["only_b_correct"] == 2


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
