"""Every statistic of scrm.stats used by the response-time results, against a direct computation or a
textbook value: Wilson, order-statistic quantile intervals, p-values and Holm, Kaplan–Meier with
Greenwood variance and bands, KM median interval, RMST, log-rank (global and pairwise), DeLong,
weighted test metrics, the paired bootstrap, calibration bins, and the Cox model's checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from scrm.stats import compare, cox, survival
from scrm.stats.intervals import (chi2_test, holm, holm_log10, p_value, quantile_interval,
                                  wilson_interval, z_test, z_value)

Z95 = z_value(0.95)

# Freireich et al. (1963) leukaemia remission times: 6-MP arm (0 = censored) and placebo arm, the
# textbook example of Kaplan–Meier and the log-rank test (Klein & Moeschberger, Example 4.1)
SIX_MP_T = np.array([6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35.])
SIX_MP_E = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0.])
PLACEBO_T = np.array([1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23.])


# --------------------------------------------------------------------------------------------------
# rates, quantiles, p-values
# --------------------------------------------------------------------------------------------------
def test_wilson_on_7_of_10() -> None:
    lo, hi = wilson_interval(np.array([7]), np.array([10]), Z95)
    p, n, z = 0.7, 10, Z95
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo[0], hi[0]) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (lo[0], hi[0]) == pytest.approx((0.3968, 0.8922), abs=1e-4)  # published value


def _binom_cdf(k: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize(("n", "q"), [(10, 0.5), (50, 0.9), (37, 0.5), (200, 0.9)])
def test_quantile_interval_is_the_narrowest_order_statistic_pair(n: int, q: float) -> None:
    x = np.arange(1.0, n + 1.0)  # x(i) = i: the interval names the ranks
    lo, hi = quantile_interval(x[::-1], q, 0.95)  # input order does not matter
    # direct: the largest l with P(K <= l-1) <= 2.5% and the smallest u with P(K >= u) <= 2.5%
    l_rank = max((rank for rank in range(1, n + 1) if _binom_cdf(rank - 1, n, q) <= 0.025),
                 default=None)
    u_rank = min((rank for rank in range(1, n + 1) if 1 - _binom_cdf(rank - 1, n, q) <= 0.025),
                 default=None)
    assert (lo, hi) == (l_rank, u_rank)
    if lo is not None and hi is not None:
        coverage = _binom_cdf(int(hi) - 1, n, q) - _binom_cdf(int(lo) - 1, n, q)
        assert coverage >= 0.95
    if (n, q) == (10, 0.5):
        assert (lo, hi) == (2.0, 9.0)  # the textbook interval of a median of 10


def test_p_values_keep_significant_digits_and_log10() -> None:
    assert p_value(3.2e-12) == 3.2e-12 and p_value(0.0) is None and p_value(float("nan")) is None
    from scipy.stats import chi2

    t = chi2_test(65.36, 4)
    assert t["p_value"] == pytest.approx(chi2.sf(65.36, 4), rel=1e-5) and t["p_value"] > 0
    assert t["log10_p"] == pytest.approx(math.log10(chi2.sf(65.36, 4)), abs=1e-4)
    # far tail: for 2 df the chi-square tail is exactly exp(-x/2); p underflows, log10 p does not
    far = chi2_test(2000.0, 2)
    assert far["p_value"] is None and far["statistic"] == 2000.0 and far["df"] == 2
    assert far["log10_p"] == pytest.approx(-1000.0 / math.log(10.0), abs=1e-3)
    z = z_test(-2.5)
    assert z["p_value"] == pytest.approx(2 * norm.sf(2.5), rel=1e-5)


def test_holm_against_a_direct_computation() -> None:
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5, 0.002])
    ok = [i for i in range(p.size) if np.isfinite(p[i])]
    order = sorted(ok, key=lambda i: p[i])
    m, running, direct = len(ok), 0.0, {}
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        direct[i] = running
    got = holm(p)
    assert np.isnan(got[3])
    assert [got[i] for i in ok] == pytest.approx([direct[i] for i in ok])
    assert holm_log10(np.log10(p))[ok] == pytest.approx(np.log10([direct[i] for i in ok]))


# --------------------------------------------------------------------------------------------------
# Kaplan–Meier, RMST, log-rank
# --------------------------------------------------------------------------------------------------
def _km_direct(t: np.ndarray, e: np.ndarray) -> list[tuple[float, float, float]]:
    """(time, S, Greenwood SE) at each event time, by the product-limit and Greenwood formulas."""
    s, acc, out = 1.0, 0.0, []
    for u in sorted(set(t[e == 1])):
        n = int((t >= u).sum())
        d = int(((t == u) & (e == 1)).sum())
        s *= 1 - d / n
        acc += d / (n * (n - d)) if n > d else 0.0
        out.append((u, s, s * math.sqrt(acc)))
    return out


def test_km_greenwood_on_the_textbook_example() -> None:
    c = survival.km_curve(SIX_MP_T, SIX_MP_E)
    direct = _km_direct(SIX_MP_T, SIX_MP_E)
    assert c.times.tolist() == [d[0] for d in direct]
    assert c.surv == pytest.approx([d[1] for d in direct])
    assert c.se == pytest.approx([d[2] for d in direct])
    # Klein & Moeschberger Table 4.1A (3 decimals of S, 4 of the standard error)
    assert np.round(c.surv, 3).tolist() == [0.857, 0.807, 0.753, 0.690, 0.627, 0.538, 0.448]
    assert np.round(c.se, 4).tolist() == [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346]


def test_loglog_band_matches_its_formula_and_stays_in_0_1() -> None:
    c = survival.km_curve(SIX_MP_T, SIX_MP_E)
    lo, hi = survival.loglog_band(c.surv, c.se, Z95)
    s, se = c.surv[0], c.se[0]
    w = Z95 * se / (s * abs(math.log(s)))
    assert (lo[0], hi[0]) == pytest.approx((s ** math.exp(w), s ** math.exp(-w)))
    assert (lo[0], hi[0]) == pytest.approx((0.620, 0.952), abs=1e-3)  # published at t = 6
    assert ((0 <= lo) & (lo <= c.surv) & (c.surv <= hi) & (hi <= 1)).all()
    flat_lo, flat_hi = survival.loglog_band(np.array([1.0, 0.0]), np.array([0.0, 0.0]), Z95)
    assert flat_lo.tolist() == [1.0, 0.0] and flat_hi.tolist() == [1.0, 0.0]


def test_km_median_and_its_interval() -> None:
    est, lo, hi = survival.km_quantile_ci(SIX_MP_T, SIX_MP_E, 0.5, 0.95)
    assert (est, lo, hi) == (23.0, 13.0, None)  # the upper limit is not reached in the data
    est, lo, hi = survival.km_quantile_ci(PLACEBO_T, np.ones(21), 0.5, 0.95)
    assert est == 8.0 and lo is not None and hi is not None and lo <= est <= hi


def test_rmst_against_direct_integration_and_variance_formula() -> None:
    tau = 23.0
    area, se = survival.rmst(SIX_MP_T, SIX_MP_E, tau)
    grid = np.linspace(0, tau, 230_001)
    c = survival.km_curve(SIX_MP_T, SIX_MP_E)
    assert area == pytest.approx(float(np.trapezoid(c.at(grid), grid)), abs=1e-3)
    assert area == pytest.approx(6 + 0.857143 + 3 * 0.806723 + 3 * 0.752941 + 3 * 0.690196
                                 + 6 * 0.627451 + 0.537815, abs=1e-5)  # steps of the KM curve
    var = 0.0
    for u, _, _ in _km_direct(SIX_MP_T, SIX_MP_E):
        n = (SIX_MP_T >= u).sum()
        d = ((SIX_MP_T == u) & (SIX_MP_E == 1)).sum()
        a = float(np.trapezoid(c.at(grid[grid >= u]), grid[grid >= u]))
        var += a * a * d / (n * (n - d))
    assert se == pytest.approx(math.sqrt(var), rel=1e-3)
    # nobody answered: everyone waits tau; all answered at once at 2: area 2, no variance
    assert survival.rmst([5.0, 9.0], [0, 0], 4.0) == (4.0, 0.0)
    assert survival.rmst([2.0, 2.0], [1, 1], 4.0) == (2.0, 0.0)


def test_logrank_on_the_textbook_example_and_pairwise_holm() -> None:
    t = np.r_[SIX_MP_T, PLACEBO_T]
    e = np.r_[SIX_MP_E, np.ones(21)]
    g = np.array(["6-MP"] * 21 + ["placebo"] * 21)
    lr = survival.logrank(t, e, g)
    assert lr["statistic"] == pytest.approx(16.793, abs=1e-3) and lr["df"] == 1
    assert lr["p_value"] == pytest.approx(4.169e-5, rel=1e-3)
    rng = np.random.default_rng(0)
    t3 = np.r_[t, rng.exponential(10, 21).round(1) + 0.1]
    e3 = np.r_[e, (rng.random(21) < 0.8).astype(float)]
    g3 = np.r_[g, ["third"] * 21]
    rows = survival.pairwise_comparisons(t3, e3, g3, ["6-MP", "placebo", "third"], 23.0, Z95)
    assert [(r["a"], r["b"]) for r in rows] == list(itertools.combinations(
        ["6-MP", "placebo", "third"], 2))
    raw = []
    for r in rows:
        m = (g3 == r["a"]) | (g3 == r["b"])
        one = survival.logrank(t3[m], e3[m], g3[m])
        assert (r["logrank_chi2"], r["logrank_df"]) == (one["statistic"], 1)
        raw.append(one["p_value"])
        ra, sa = survival.rmst(t3[g3 == r["a"]], e3[g3 == r["a"]], 23.0)
        rb, sb = survival.rmst(t3[g3 == r["b"]], e3[g3 == r["b"]], 23.0)
        assert r["rmst_diff"] == pytest.approx(ra - rb, abs=1e-6)
        half = Z95 * math.sqrt(sa ** 2 + sb ** 2)
        assert (r["rmst_diff_ci_low"], r["rmst_diff_ci_high"]) == pytest.approx(
            (ra - rb - half, ra - rb + half), abs=1e-5)
    assert [r["logrank_p_holm"] for r in rows] == pytest.approx(list(holm(np.array(raw))),
                                                                rel=1e-4)


# --------------------------------------------------------------------------------------------------
# test metrics, paired comparisons, calibration
# --------------------------------------------------------------------------------------------------
def _psi(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


def test_delong_against_structural_components() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(12), np.zeros(15)].astype(int)
    p1 = np.round(rng.random(27) + 0.3 * y, 1)       # rounded: ties on purpose
    p2 = np.round(rng.random(27) + 0.1 * y, 1)
    out = compare.delong(y, p1, p2)
    pos, neg = y == 1, y == 0
    v10, v01, aucs = [], [], []
    for p in (p1, p2):
        v10.append([np.mean([_psi(x, z) for z in p[neg]]) for x in p[pos]])
        v01.append([np.mean([_psi(x, z) for x in p[pos]]) for z in p[neg]])
        aucs.append(np.mean(v10[-1]))
    s = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    se = math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    assert (out["auc_1"], out["auc_2"]) == pytest.approx(tuple(aucs), abs=1e-6)
    assert out["se"] == pytest.approx(se, abs=1e-6)
    assert out["z"] == pytest.approx((aucs[0] - aucs[1]) / se, abs=1e-5)
    assert out["p_value"] == pytest.approx(2 * norm.sf(abs((aucs[0] - aucs[1]) / se)), rel=1e-4)


def test_weighted_metrics_equal_replicated_rows_and_sklearn() -> None:
    from sklearn.metrics import brier_score_loss, mean_absolute_error, r2_score, roc_auc_score

    rng = np.random.default_rng(2)
    y = (rng.random(40) < 0.4).astype(float)
    p = np.round(rng.random(40), 1)
    w = rng.integers(0, 4, 40).astype(float)
    rep = np.repeat(np.arange(40), w.astype(int))
    assert compare.weighted_auc(y, compare.auc_ranks(p), w) == pytest.approx(
        roc_auc_score(y[rep], p[rep]))
    assert compare.weighted_auc(y, compare.auc_ranks(p), np.ones(40)) == pytest.approx(
        roc_auc_score(y, p))
    assert compare.weighted_brier(y, p, w) == pytest.approx(brier_score_loss(y[rep], p[rep]))
    assert compare.weighted_mae(y, p, w) == pytest.approx(mean_absolute_error(y[rep], p[rep]))
    assert compare.weighted_r2(y, p, w) == pytest.approx(r2_score(y[rep], p[rep]))


def test_paired_bootstrap_draws_are_shared_and_reproducible() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=60)
    a, b = y + rng.normal(0, 0.5, 60), y + rng.normal(0, 1.0, 60)

    def stat(w: np.ndarray) -> dict[str, dict[str, float]]:
        return {"base": {"mae": compare.weighted_mae(y, b, w)},
                "model": {"mae": compare.weighted_mae(y, a, w)},
                "same": {"mae": compare.weighted_mae(y, b, w)}}

    out = compare.bootstrap(60, stat, baseline="base", n_boot=400, seed=7, level=0.9)
    again = compare.bootstrap(60, stat, baseline="base", n_boot=400, seed=7, level=0.9)
    assert out == again
    assert (out["same"]["mae_diff"], out["same"]["mae_diff_ci_low"],
            out["same"]["mae_diff_ci_high"]) == (0.0, 0.0, 0.0)  # paired: identical models
    # direct: the same multinomial draws, differences per draw, percentiles
    draw = np.random.default_rng(7)
    diffs = []
    for _ in range(400):
        w = np.bincount(draw.integers(0, 60, 60), minlength=60).astype(float)
        diffs.append(compare.weighted_mae(y, a, w) - compare.weighted_mae(y, b, w))
    assert (out["model"]["mae_diff_ci_low"], out["model"]["mae_diff_ci_high"]) == pytest.approx(
        tuple(np.quantile(diffs, [0.05, 0.95])), abs=1e-6)
    assert out["model"]["mae_diff"] == pytest.approx(np.mean(np.abs(y - a)) - np.mean(np.abs(y - b)),
                                                     abs=1e-6)


def test_calibration_bins_against_a_direct_count() -> None:
    p = np.array([0.1, 0.1, 0.2, 0.3, 0.5, 0.5, 0.6, 0.8, 0.9, 0.9])
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1, 1, 1])
    bins = compare.calibration_bins(y, p, 2, Z95)
    # the median edge (0.5) starts the upper bin: {.1,.1,.2,.3} and {.5,.5,.6,.8,.9,.9}
    assert bins["n"].tolist() == [4, 6]
    assert bins["observed"].tolist() == pytest.approx([1 / 4, 5 / 6])
    assert bins["mean_predicted"].tolist() == pytest.approx([0.175, 4.2 / 6])
    lo, hi = wilson_interval(np.array([1, 5]), np.array([4, 6]), Z95)
    assert bins["observed_ci_low"].tolist() == pytest.approx(lo.tolist())
    assert compare.expected_calibration_error(bins) == pytest.approx(
        (4 * abs(0.25 - 0.175) + 6 * abs(5 / 6 - 0.7)) / 10)


# --------------------------------------------------------------------------------------------------
# Cox: proportional-hazards test, clustered standard errors, C-index
# --------------------------------------------------------------------------------------------------
def _simulate(n: int, seed: int, crossing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponential times with a covariate x; ``crossing``: x speeds up early and slows down late."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.exponential(1.0, n) / np.exp(0.7 * x)
    if crossing:
        t = np.where(x > 0, rng.uniform(0.4, 0.6, n), rng.exponential(0.3, n))
    c = rng.exponential(3.0, n)
    return np.minimum(t, c), (t <= c).astype(float), x[:, None]


def test_ph_test_matches_a_direct_schoenfeld_computation() -> None:
    d, e, X = _simulate(120, 4, crossing=False)
    fit = cox.cox_fit(d, e, X, ["x"], level=0.95)
    beta = fit["params"][0]
    # Schoenfeld residual of each event: x_i minus the risk set's exp(beta x)-weighted mean of x
    rows, res = np.flatnonzero(e == 1), []
    for i in rows:
        risk = d >= d[i]
        wts = np.exp(beta * X[risk, 0])
        res.append(X[i, 0] - np.sum(wts * X[risk, 0]) / wts.sum())
    res = np.array(res)
    from scipy.stats import rankdata
    from statsmodels.duration.hazard_regression import PHReg

    v = np.linalg.inv(-PHReg(d, X, status=e, ties="efron").hessian(np.array([beta])))[0, 0]
    g = rankdata(d[rows])
    g = g - g.mean()
    scaled = rows.size * v * res
    stat = (g @ scaled) ** 2 / (rows.size * v * (g ** 2).sum())
    assert fit["coefficients"]["x"]["ph_test"]["statistic"] == pytest.approx(stat, rel=1e-4)
    assert fit["coefficients"]["x"]["ph_test"]["p_value"] > 0.05       # proportional by design
    dc, ec, Xc = _simulate(300, 5, crossing=True)
    crossed = cox.cox_fit(dc, ec, Xc, ["x"], level=0.95)
    assert crossed["coefficients"]["x"]["ph_test"]["p_value"] < 1e-3   # effect reverses over time


def test_clustered_standard_errors_see_through_duplicated_rows() -> None:
    d, e, X = _simulate(150, 6, crossing=False)
    ids = np.arange(150)
    single = cox.cox_fit(d, e, X, ["x"], level=0.95, groups=ids)
    naive = cox.cox_fit(d, e, X, ["x"], level=0.95)
    dd, ed, Xd = np.r_[d, d], np.r_[e, e], np.r_[X, X]
    twice_naive = cox.cox_fit(dd, ed, Xd, ["x"], level=0.95)
    twice_clustered = cox.cox_fit(dd, ed, Xd, ["x"], level=0.95, groups=np.r_[ids, ids])
    se = {k: v["coefficients"]["x"]["se"] for k, v in
          {"single": single, "naive": naive, "twice_naive": twice_naive,
           "twice_clustered": twice_clustered}.items()}
    # a copy of every row looks like twice the data to the model-based SE ...
    assert se["twice_naive"] == pytest.approx(se["naive"] / math.sqrt(2), rel=0.05)
    # ... but clustering by the original row recovers the original (robust) uncertainty
    assert se["twice_clustered"] == pytest.approx(se["single"], rel=0.05)
    assert twice_clustered["se_type"] == "cluster_robust" and twice_clustered["n_clusters"] == 150
    hr = single["coefficients"]["x"]
    assert hr["hazard_ratio_ci_low"] < hr["hazard_ratio"] < hr["hazard_ratio_ci_high"]
    assert hr["hazard_ratio"] == pytest.approx(math.exp(0.7), rel=0.3)


def test_concordance_against_direct_pairs_and_its_interval() -> None:
    d = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    e = np.array([1, 1, 0, 1, 1, 0, 1, 0])
    r = np.array([0.9, 0.5, 0.7, 0.6, 0.1, 0.2, 0.3, 0.3])
    strata = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    num = den = 0.0
    for i, j in itertools.permutations(range(8), 2):
        if strata[i] == strata[j] and e[i] == 1 and d[i] < d[j]:
            den += 1
            num += _psi(r[i], r[j])
    out = cox.concordance_interval(d, e, r, strata, max_rows=100, seed=0, n_boot=200)
    assert out["c_index"] == pytest.approx(num / den, abs=1e-6)
    assert cox.concordance(d, e, r, strata) == out["c_index"]
    assert out["c_index_ci_low"] <= out["c_index"] <= out["c_index_ci_high"]


def test_log_normal_interval_of_a_positive_estimate() -> None:
    from scrm.stats.intervals import log_normal_interval

    lo, hi = log_normal_interval(30.0, 20.0, Z95)
    assert (lo, hi) == pytest.approx((30.0 / math.exp(Z95 * 20 / 30), 30.0 * math.exp(Z95 * 20 / 30)))
    assert lo > 0 and 30.0 - Z95 * 20.0 < 0  # where the normal interval would go below zero
    assert math.log(hi) - math.log(30.0) == pytest.approx(math.log(30.0) - math.log(lo))
    assert log_normal_interval(0.0, 1.0, Z95) == (None, None)
