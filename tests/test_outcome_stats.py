"""The statistics behind the outcome claims, each checked against a computation by hand:
Benjamini–Hochberg adjustment, classifier scores and McNemar, the 2x2 chi-square, and unpenalised /
brand-adjusted / multinomial logit (odds ratios recovered on synthetic data with a known effect).
Holm and DeLong are shared with response time and tested in test_stats_inference.py."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from scrm.stats.classification import confusion, f1_per_class, macro_f1, mcnemar, paired_scores
from scrm.stats.intervals import (benjamini_hochberg, chi2_two_proportions,
                                  difference_with_interval, holm, rate_with_interval)
from scrm.stats.regression import epv_select, logit_odds_ratios, multinomial_effects


# ---------------------------------------------------------------------------------------------
# multiplicity
# ---------------------------------------------------------------------------------------------
def test_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    # sorted 0.005, 0.01, 0.03, 0.04: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04, then the
    # running minimum from the largest down
    assert benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(benjamini_hochberg(p)[4])
    assert benjamini_hochberg([0.6, 0.7]) == pytest.approx([0.7, 0.7])
    assert (benjamini_hochberg(p)[:4] <= holm(np.array(p))[:4]).all()  # BH is never stricter
    from statsmodels.stats.multitest import multipletests

    q = np.random.default_rng(3).random(40) ** 3
    assert benjamini_hochberg(q) == pytest.approx(multipletests(q, method="fdr_bh")[1])


# ---------------------------------------------------------------------------------------------
# classifier scores
# ---------------------------------------------------------------------------------------------
CLASSES = ["sat", "unh", "proc", "unclear"]
TRUE = ["sat", "sat", "unh", "unh", "unh", "proc", "proc", "unclear"]
PRED_A = ["sat", "unh", "unh", "unh", "proc", "proc", "proc", "proc"]
PRED_B = ["sat", "sat", "sat", "unh", "sat", "sat", "proc", "sat"]


def test_confusion_f1_and_macro_f1_by_hand():
    cm = confusion(TRUE, PRED_A, CLASSES)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 2, 0], [0, 0, 1, 0]]
    f1 = f1_per_class(TRUE, PRED_A, CLASSES, ["sat", "unh", "proc"])
    # sat: TP 1, FP 0, FN 1 -> 2/3; unh: TP 2, FP 1, FN 1 -> 4/6; proc: TP 2, FP 2 (one unclear), FN 0
    assert f1 == pytest.approx({"sat": 2 / 3, "unh": 4 / 6, "proc": 4 / 6})
    assert macro_f1(TRUE, PRED_A, CLASSES, ["sat", "unh", "proc"]) == pytest.approx(2 / 3)
    from sklearn.metrics import f1_score

    assert macro_f1(TRUE, PRED_B, CLASSES, ["sat", "unh", "proc"]) == pytest.approx(
        f1_score(TRUE, PRED_B, labels=["sat", "unh", "proc"], average="macro", zero_division=0))
    with pytest.raises(ValueError, match="not one of"):
        confusion(["sat"], ["happy"], CLASSES)


def test_mcnemar_exact_by_hand():
    # A right and B wrong on 6 items, the reverse on 1: p = 2 * P(Bin(7, 1/2) <= 1) = 2 * 8 / 128
    a = [True] * 6 + [False] + [True] * 3
    b = [False] * 6 + [True] + [True] * 3
    res = mcnemar(a, b)
    assert res["only_a_correct"] == 6 and res["only_b_correct"] == 1
    assert res["p_value"] == pytest.approx(16 / 128)
    assert res["chi2"]["statistic"] == pytest.approx(25 / 7, abs=1e-6) and res["chi2"]["df"] == 1
    assert mcnemar([True], [True])["p_value"] is None


def test_paired_scores_points_and_intervals():
    from scrm.stats.agreement import cohen_kappa

    res = paired_scores(TRUE * 5, PRED_A * 5, PRED_B * 5, CLASSES, ["sat", "unh", "proc"],
                        n_boot=300, seed=1)
    assert res["macro_f1"]["a"] == pytest.approx(2 / 3, abs=1e-6)
    assert res["kappa"]["a"] == pytest.approx(cohen_kappa(TRUE * 5, PRED_A * 5), abs=1e-6)
    assert res["accuracy"]["b"] == pytest.approx(4 / 8, abs=1e-6)
    for metric in ("macro_f1", "kappa", "accuracy"):
        r = res[metric]
        assert r["a_ci"][0] <= r["a"] <= r["a_ci"][1]
        assert r["diff"] == pytest.approx(r["a"] - r["b"], abs=1e-6)
        assert r["diff_ci"][0] <= r["diff"] <= r["diff_ci"][1]
    # A alone is right on items 3 and 6 of each copy, B alone on item 2
    assert res["mcnemar"]["only_a_correct"] == 5 * 2 and res["mcnemar"]["only_b_correct"] == 5 * 1
    again = paired_scores(TRUE * 5, PRED_A * 5, PRED_B * 5, CLASSES, ["sat", "unh", "proc"],
                          n_boot=300, seed=1)
    assert again == res


# ---------------------------------------------------------------------------------------------
# rates, differences, 2x2 chi-square
# ---------------------------------------------------------------------------------------------
def test_chi2_two_proportions_matches_scipy_and_the_formula():
    from scipy.stats import chi2_contingency

    k1, n1, k2, n2 = np.array([30, 3]), np.array([100, 10]), np.array([20, 1]), np.array([100, 30])
    stat, p, expected = chi2_two_proportions(k1, n1, k2, n2)
    for i in range(2):
        table = [[k1[i], n1[i] - k1[i]], [k2[i], n2[i] - k2[i]]]
        ref = chi2_contingency(table, correction=False)
        assert stat[i] == pytest.approx(ref.statistic) and p[i] == pytest.approx(ref.pvalue)
        assert expected[i] == pytest.approx(ref.expected_freq.min())
    # 30/100 vs 20/100 by hand: 200 * (30*80 - 70*20)^2 / (100 * 100 * 50 * 150)
    assert stat[0] == pytest.approx(200 * (30 * 80 - 70 * 20) ** 2 / (100 * 100 * 50 * 150))
    s, pp, _ = chi2_two_proportions(np.array([0]), np.array([5]), np.array([0]), np.array([7]))
    assert math.isnan(s[0]) and math.isnan(pp[0])


def test_rate_and_difference_entries():
    r = rate_with_interval(10, 20, 0.95)
    assert r["rate"] == 0.5 and r["ci_low"] == pytest.approx(0.2993, abs=1e-4)
    assert rate_with_interval(0, 0, 0.95)["rate"] is None
    d = difference_with_interval(56, 70, 48, 80, 0.95)  # Newcombe (1998), example (a)
    assert d["ci_low"] == pytest.approx(0.0524, abs=1e-4) and d["ci_high"] == pytest.approx(0.3339, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------
def _two_by_two(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """x=1: a events, b non-events; x=0: c events, d non-events."""
    x = np.r_[np.ones(a + b), np.zeros(c + d)]
    y = np.r_[np.ones(a), np.zeros(b), np.ones(c), np.zeros(d)]
    return x[:, None], y


def test_logit_odds_ratio_of_a_2x2_table_is_the_cross_product_with_woolf_se():
    X, y = _two_by_two(30, 70, 20, 80)
    res = logit_odds_ratios(X, y, ["x"])
    r = res["odds_ratios"]["x"]
    assert r["odds_ratio"] == pytest.approx(30 * 80 / (70 * 20), abs=1e-5)
    se = math.sqrt(1 / 30 + 1 / 70 + 1 / 20 + 1 / 80)
    assert r["se"] == pytest.approx(se, abs=1e-5)
    assert r["ci_low"] == pytest.approx(math.exp(math.log(30 * 80 / (70 * 20)) - 1.959964 * se), abs=1e-4)
    assert r["chi2"] == pytest.approx(r["z"] ** 2, abs=1e-4) and r["df"] == 1
    assert res["lr_test"]["df"] == 1


def test_logit_recovers_a_known_effect_and_is_not_shrunk():
    """y depends on a 0/1 marker with odds ratio 3 and a continuous predictor with log-odds 0.5
    per unit: the unpenalised fit lands within 3 standard errors of both (on the log scale), while
    an L2 fit of the same data is pulled towards 1 by more than that."""
    rng = np.random.default_rng(7)
    n = 20000
    marker = rng.integers(0, 2, n).astype(float)
    cont = rng.normal(size=n)
    eta = -1.0 + math.log(3.0) * marker + 0.5 * cont
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([marker, cont])
    res = logit_odds_ratios(X, y, ["marker", "cont"], groups=np.arange(n) // 2)
    m, c = res["odds_ratios"]["marker"], res["odds_ratios"]["cont"]
    assert abs(m["coef"] - math.log(3.0)) < 3 * m["se"]
    assert abs(c["coef"] - 0.5) < 3 * c["se"]
    assert "cluster-robust" in res["method"] and res["events"] == int(y.sum())
    from sklearn.linear_model import LogisticRegression

    l2 = LogisticRegression(C=0.0005).fit(X, y)
    assert math.log(3.0) - l2.coef_[0][0] > 3 * m["se"]


def test_logit_reports_separation_instead_of_infinite_ratios():
    X = np.r_[np.ones(20), np.zeros(20)][:, None]
    y = np.r_[np.ones(20), np.zeros(20)]
    res = logit_odds_ratios(X, y, ["x"])
    assert "odds_ratios" not in res and "separation" in res["skipped"]
    const = logit_odds_ratios(np.ones((40, 1)), np.r_[np.ones(10), np.zeros(30)], ["c"])
    assert const["dropped_no_variation"] == ["c"]


def test_brand_adjustment_removes_a_brand_confounder():
    """Brand B replies with the marker more often and its customers recover more; within each brand
    the marker has odds ratio 1. Pooled, the marker looks helpful; with brand dummies it does not."""
    rng = np.random.default_rng(11)
    rows = []
    for brand, p_marker, base in (("A", 0.2, -2.0), ("B", 0.8, 1.0), ("C", 0.5, -0.5)):
        for _ in range(1500):
            x = float(rng.random() < p_marker)
            y = float(rng.random() < 1 / (1 + math.exp(-base)))
            rows.append((brand, x, y))
    brand = np.array([r[0] for r in rows])
    X = np.array([[r[1]] for r in rows])
    y = np.array([r[2] for r in rows])
    pooled = logit_odds_ratios(X, y, ["marker"])["odds_ratios"]["marker"]
    dummies = np.column_stack([(brand == b).astype(float) for b in ("B", "C")])
    within = logit_odds_ratios(X, y, ["marker"], adjust=dummies, adjust_names=["B", "C"])
    assert pooled["ci_low"] > 1.5
    w = within["odds_ratios"]["marker"]
    assert w["ci_low"] < 1.0 < w["ci_high"]
    assert list(within["odds_ratios"]) == ["marker"] and within["adjusted_for"] == ["B", "C"]


def test_multinomial_saturated_model_matches_group_shares():
    """One 0/1 predictor: the fitted probabilities are the group shares, so the average change is
    the difference in shares with the two-proportion standard error, and each relative-risk ratio
    is a cross-product ratio with the Woolf standard error."""
    rng = np.random.default_rng(1)
    outcomes = ["silent", "recovered", "unhappy"]
    y = np.array(outcomes)[rng.integers(0, 3, 600)]
    x = rng.integers(0, 2, 600).astype(float)
    res = multinomial_effects(x[:, None], y.tolist(), ["x"], outcomes)

    def n(o, v):
        return int(np.sum((y == o) & (x == v)))

    for o in outcomes:
        p1, p0 = np.mean(y[x == 1] == o), np.mean(y[x == 0] == o)
        ch = res["average_changes"]["x"][o]
        assert ch["change"] == pytest.approx(p1 - p0, abs=1e-5)
        se = math.sqrt(p1 * (1 - p1) / np.sum(x == 1) + p0 * (1 - p0) / np.sum(x == 0))
        assert ch["se"] == pytest.approx(se, rel=1e-3)
    for o in outcomes[1:]:
        r = res["relative_risk_ratios"][o]["x"]
        assert r["rrr"] == pytest.approx((n(o, 1) / n("silent", 1)) / (n(o, 0) / n("silent", 0)), rel=1e-4)
        se = math.sqrt(sum(1 / n(a, v) for a, v in product((o, "silent"), (0, 1))))
        assert r["se"] == pytest.approx(se, rel=1e-4)
    assert res["base"] == "silent" and sum(res["outcome_counts"].values()) == 600
    missing = multinomial_effects(x[:, None], ["silent"] * 600, ["x"], outcomes)
    assert "never occurs" in missing["skipped"]


def test_epv_select_keeps_one_predictor_per_ten_events():
    got = epv_select(["a", "b", "c", "d"], 37, 10)
    assert got["kept"] == ["a", "b", "c"] and got["dropped"] == ["d"] and got["max_predictors"] == 3
    assert epv_select(["a"], 9, 10)["kept"] == []
