"""The response-time results as published: the sensitivity table, intervals on every per-brand
figure, pairwise tests with Holm, models against their baselines, the Cox model's checks, and the
same default numbers in the response-time and outcome metrics (the stage once on the real sample)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from scrm import response_time as rt
from scrm import sentiment
from scrm.config import Paths, load_params, load_settings, settings_from_dict
from scrm.data.openings import DEFINITIONS
from scrm.response_time.evaluation import _verdict
from scrm.stats.intervals import holm, quantile_interval

from conftest import make_root

# the figures of the service table that must each carry an interval (``<name>_ci_low/_high``)
FIGURES = ("answered_share", "share_within_15m", "share_within_1h", "share_within_24h",
           "km_median_min", "rmst_min", "median_latency_min", "p90_latency_min",
           "reply_median_min", "later_median_min")


@pytest.fixture(scope="module")
def run_root(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """The prepared sample, scored, with the response-time stage run once (no model logging;
    MLflow in a temp store)."""
    paths = make_root(tmp_path_factory.mktemp("rt_results"))
    for p in (prepared_root.tweets, prepared_root.threads, prepared_root.openings):
        dst = paths.root / p.relative_to(prepared_root.root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    settings = load_settings(paths.root)
    sentiment.run(paths, settings.sentiment)
    params = copy.deepcopy(load_params(paths.root))
    params["response_time"].update(log_models=False, n_boot=300)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{paths.root / 'mlflow.db'}")
        rt.run(paths, settings_from_dict(params).response_time, settings.openings)
    yield paths


@pytest.fixture(scope="module")
def metrics(run_root: Paths) -> dict[str, Any]:
    return json.loads(run_root.metric("response_time").read_text())


def test_sensitivity_table_shows_each_definition(run_root: Paths, metrics: dict[str, Any]) -> None:
    table = pl.read_parquet(run_root.rt_sensitivity)
    pooled = table.filter(pl.col("scope") == "(all)")
    assert sorted(pooled["definition"].unique()) == sorted(DEFINITIONS)
    assert set(pooled["population"]) == {"requests", "all"}
    by = {(r["definition"], r["population"]): r for r in pooled.to_dicts()}
    for population in ("requests", "all"):
        # definition (c) leaves no opening unanswered; (a) answers fewest, (b) in between
        c = by[("thread", population)]
        assert c["n_answered"] == c["n_openings"] and c["answered_share"] == 1.0
        assert by[("direct", population)]["n_answered"] < by[("customer", population)]["n_answered"]
        assert by[("customer", population)]["n_answered"] <= c["n_answered"]
    assert by[("direct", "all")]["n_openings"] - by[("direct", "all")]["n_answered"] == 131
    # the default row of the table is the stage's own headline
    default = by[("customer", "requests")]
    overall = metrics["overall"]
    for key in ("n_openings", "n_answered", "answered_share", "km_median_min", "rmst_min",
                "share_within_1h", "share_within_1h_ci_low", "median_latency_min"):
        assert default[key] == pytest.approx(overall[key], abs=1e-6), key
    assert set(metrics["sensitivity"]) == set(DEFINITIONS)
    assert metrics["sensitivity"]["thread"]["(all) all"]["answered_share"] == 1.0
    brands = table.filter(pl.col("scope") != "(all)")["scope"].unique().to_list()
    assert len(brands) == 5 and set(brands) <= set(metrics["brands"])


# a sample quantile's order-statistic interval needs enough values (6 for a 95% median interval):
# figure -> (the count it is computed from, the quantile)
QUANTILES = {"median_latency_min": ("n_answered", 0.5), "p90_latency_min": ("n_answered", 0.9),
             "reply_median_min": ("n_replies", 0.5), "later_median_min": ("n_later_replies", 0.5)}


def _assert_intervals(row: dict[str, Any], where: str) -> None:
    for f in FIGURES:
        est, lo, hi = row[f], row[f"{f}_ci_low"], row[f"{f}_ci_high"]
        if est is None:
            continue
        if f in QUANTILES:
            count, q = QUANTILES[f]
            possible = quantile_interval(np.arange(float(row[count])), q, 0.95)
            if None in possible:  # too few values for any interval at this level: none is given
                assert (lo, hi) == (None, None) or None in (lo, hi), (where, f)
                continue
        assert lo is not None, (where, f)
        assert lo <= est + 1e-9, (where, f)
        assert hi is None or est <= hi + 1e-9, (where, f)  # a KM upper limit can be unbounded


def test_every_per_brand_figure_has_an_interval(run_root: Paths, metrics: dict[str, Any]) -> None:
    table = pl.read_parquet(run_root.service_table)
    for f in FIGURES:
        assert {f"{f}_ci_low", f"{f}_ci_high"} <= set(table.columns), f
    big = table.filter(pl.col("n_openings") >= 20)
    assert big.height >= 10
    for r in big.to_dicts():
        _assert_intervals(r, r["brand"])
        # the Wilson interval of the 1-hour share, recomputed
        from scrm.stats.intervals import wilson_interval, z_value

        lo, hi = wilson_interval(np.array([round(r["share_within_1h"] * r["n_known_1h"])]),
                                 np.array([r["n_known_1h"]]), z_value(0.95))
        assert (r["share_within_1h_ci_low"], r["share_within_1h_ci_high"]) == pytest.approx(
            (lo[0], hi[0]), abs=1e-6)
    for brand, row in metrics["brands"].items():
        _assert_intervals(row, brand)
    _assert_intervals(metrics["overall"], "overall")


def test_km_curves_carry_bands(run_root: Paths) -> None:
    km = pl.read_csv(run_root.km_plot)
    assert {"still_waiting_low", "still_waiting_high"} <= set(km.columns)
    assert (km["still_waiting_low"] <= km["still_waiting"] + 1e-9).all()
    assert (km["still_waiting"] <= km["still_waiting_high"] + 1e-9).all()
    moving = km.filter((pl.col("still_waiting") > 0) & (pl.col("still_waiting") < 1))
    assert (moving["still_waiting_high"] > moving["still_waiting_low"]).all()


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def test_pairwise_tests_with_holm_and_no_bare_zero_p(run_root: Paths,
                                                     metrics: dict[str, Any]) -> None:
    pairs = metrics["pairwise"]
    assert len(pairs) == 10  # the 5 largest brands, every pair once
    raw = np.array([p["logrank_p"] for p in pairs])
    assert [p["logrank_p_holm"] for p in pairs] == pytest.approx(list(holm(raw)), rel=1e-4)
    for p in pairs:
        assert p["logrank_p_holm"] >= p["logrank_p"] and p["logrank_df"] == 1
        assert p["logrank_chi2"] is not None and p["logrank_log10_p"] is not None
        assert p["rmst_diff_ci_low"] <= p["rmst_diff"] <= p["rmst_diff_ci_high"]
        assert p["within_1h_diff_ci_low"] <= p["within_1h_diff"] <= p["within_1h_diff_ci_high"]
    assert pl.read_parquet(run_root.rt_pairwise).height == 10
    for path, value in _walk(metrics):
        leaf = path.rsplit(".", 1)[-1]
        if "log10" not in leaf and leaf.endswith(("_p", "_p_holm", "p_value")):
            assert value is None or value > 0.0, path   # never a bare 0.0
    lr = metrics["logrank"]
    assert lr["statistic"] > 0 and lr["df"] == 4 and 0 < lr["p_value"] < 1e-6


def test_models_against_their_baselines(run_root: Paths, metrics: dict[str, Any]) -> None:
    cls, reg = metrics["models"]["within_1h"], metrics["models"]["log_latency"]
    for name, m in cls.items():
        assert m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"], name
        assert m["brier_ci_low"] <= m["brier"] <= m["brier_ci_high"], name
        assert m["calibration_error"] is not None
        if name != "brand_rate":
            assert m["baseline"] == "brand_rate" and "auc_diff_ci_low" in m
            assert m["vs_baseline"] == _verdict(m, "auc", True)
            assert m["delong_p_value"] is None or m["delong_p_value"] > 0
    for name, m in reg.items():
        assert m["mae_minutes_ci_low"] <= m["mae_minutes"] <= m["mae_minutes_ci_high"], name
        assert m["r2_log_ci_low"] <= m["r2_log"] <= m["r2_log_ci_high"], name
        if name != "brand_median":
            assert m["vs_baseline"] == _verdict(m, "mae_minutes", False)
    # on the sample every log-latency model is worse than predicting the test mean (R^2 < 0), and
    # the metrics say so rather than leave it out
    assert all(m["r2_log"] < 0 for m in reg.values())
    calib = pl.read_csv(run_root.calibration_plot)
    sums = dict(calib.group_by("model").agg(pl.col("n").sum()).iter_rows())
    assert sums == {name: m["n_test"] for name, m in cls.items()}
    split = metrics["split"]
    assert set(split) == {"train_fraction", "train", "test"}
    for part in ("train", "test"):
        s = split[part]
        assert s["within_1h_share_ci_low"] <= s["within_1h_share"] <= s["within_1h_share_ci_high"]
    assert split["train"]["to"] < split["test"]["from"]


def test_verdict_reads_the_paired_interval() -> None:
    row = {"auc_diff_ci_low": 0.01, "auc_diff_ci_high": 0.05}
    assert _verdict(row, "auc", True) == "better"
    assert _verdict({"mae_minutes_diff_ci_low": 3.0, "mae_minutes_diff_ci_high": 9.0},
                    "mae_minutes", False) == "worse"
    assert _verdict({"auc_diff_ci_low": -0.01, "auc_diff_ci_high": 0.05}, "auc",
                    True) == "no difference shown"
    assert _verdict({}, "auc", True) == "not compared"


def test_cox_model_is_reported_with_its_checks(metrics: dict[str, Any]) -> None:
    cox = metrics["models"]["cox"]
    assert cox["status"] == "ok" and cox["se_type"] == "cluster_robust"
    assert cox["n_clusters"] > 100 and cox["n_strata"] >= 2
    coefs = cox["coefficients"]
    assert {"hour_sin", "hour_cos", "weekday_sin", "weekday_cos"} <= set(coefs)
    assert "hour_utc" not in coefs
    for name, c in coefs.items():
        assert c["hazard_ratio_ci_low"] <= c["hazard_ratio"] <= c["hazard_ratio_ci_high"], name
        assert c["ph_test"]["df"] == 1 and c["ph_test"]["statistic"] is not None, name
    assert cox["joint_wald"]["hour"]["df"] == 2
    assert cox["c_index_ci_low"] <= cox["c_index"] <= cox["c_index_ci_high"]
    assert cox["better_than_chance"] == (cox["c_index_ci_low"] > 0.5)


def test_default_numbers_match_the_outcome_stage(run_root: Paths, metrics: dict[str, Any]) -> None:
    """Both stages read the one opening table: under the default answered definition they count the
    same openings, answered and unanswered."""
    from scrm.outcome.stage import compute

    settings = load_settings(run_root.root)
    lexical = settings.outcome.replace(measure=settings.outcome.measure.replace(embedding="none"))
    outcome = compute(run_root, lexical, settings.sentiment, settings.embed).metrics["threads"]
    block = metrics["openings"]
    assert block["answered_definition"] == settings.openings.answered_definition == "customer"
    assert (block["openings"], block["answered"], block["unanswered"]) == (
        outcome["openings"], outcome["answered"], outcome["unanswered"])
    assert block["requests"] + sum(block["non_requests"].values()) == block["openings"]


def test_metrics_are_deterministic(run_root: Paths, metrics: dict[str, Any],
                                   tmp_path: Path) -> None:
    """Same params, same bytes (bootstrap draws and subsamples are seeded; no timings)."""
    params = copy.deepcopy(load_params(run_root.root))
    params["response_time"].update(log_models=False, n_boot=300)
    settings = settings_from_dict(params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        again = rt.run(run_root, settings.response_time, settings.openings)
    assert json.loads(json.dumps(again)) == metrics


def test_report_section_shows_intervals_bands_and_tests(run_root: Paths,
                                                        metrics: dict[str, Any]) -> None:
    import re

    from scrm.report import Report, render
    from scrm.report.sections import brands_section

    section = brands_section(run_root, load_settings(run_root.root).report)
    assert not section.missing
    figs = {f.id: f.figure for f in section.figures}
    assert {"fig-answered-share", "fig-within-1h", "fig-latency", "fig-km",
            "fig-calibration"} <= set(figs)
    assert any(getattr(t, "fill", None) == "tonexty" for t in figs["fig-km"].data)  # bands
    for fid in ("fig-answered-share", "fig-within-1h"):
        bar = figs[fid].data[0]
        assert bar.error_x.array is not None and len(bar.error_x.array) == len(bar.x)
    assert all(t.error_y.array is not None for t in figs["fig-calibration"].data[1:])
    page = render(Report("t", [section]))
    for text in ("Sensitivity to the definitions", "Holm", "(a) direct reply to the opening",
                 "Service table", "DeLong", "Proportional hazards fail"):
        assert text in page, text
    cox = metrics["models"]["cox"]
    assert ("no better than chance" in page) == (cox["better_than_chance"] is False)
    assert "R² is negative for 3 of 3 models" in page  # every latency model, as on the sample
    # the service table: every figure cell of the ten largest brands carries "(low–high)"
    table = re.search(r"<h3>Service table</h3>(.*?)</table>", page, re.S).group(1)
    cells = re.findall(r'<td class="txt">([^<]*)</td>', table)
    with_interval = [c for c in cells if re.fullmatch(r"[\d.,]+%? \([^)]*\)", c)]
    assert len(with_interval) >= 10 * 7


# --------------------------------------------------------------------------------------------------
# independent checks on the sample: the stage's KM median, log-rank statistic and within-X shares
# against a direct computation written here, and the README's numbers pinned to the metrics
# --------------------------------------------------------------------------------------------------
def _km_median_by_hand(t: np.ndarray, e: np.ndarray) -> float:
    """Product-limit estimate, one distinct event time at a time; the median is the first time at
    which the survival curve reaches 0.5 or below."""
    s = 1.0
    for u in np.unique(t[e == 1]):
        s *= 1.0 - np.sum((t == u) & (e == 1)) / np.sum(t >= u)
        if s <= 0.5:
            return float(u)
    return float("nan")


def _logrank_by_hand(t: np.ndarray, e: np.ndarray, g: np.ndarray) -> float:
    """K-sample log-rank chi-square: (O - E) of the first K-1 groups against their hypergeometric
    covariance, summed over distinct event times."""
    groups = sorted(set(g.tolist()))
    k = len(groups)
    o_minus_e = np.zeros(k)
    v = np.zeros((k, k))
    for u in np.unique(t[e == 1]):
        at = t >= u
        n = at.sum()
        d = ((t == u) & (e == 1)).sum()
        n_g = np.array([(at & (g == x)).sum() for x in groups], dtype=float)
        d_g = np.array([((t == u) & (e == 1) & (g == x)).sum() for x in groups], dtype=float)
        o_minus_e += d_g - d * n_g / n
        if n > 1:
            f = d * (n - d) / (n * n * (n - 1))
            v += f * (np.diag(n_g * n) - np.outer(n_g, n_g))
    x = o_minus_e[:-1]
    return float(x @ np.linalg.solve(v[:-1, :-1], x))


def test_km_median_logrank_and_shares_against_a_direct_computation(run_root: Paths,
                                                                 metrics: dict[str, Any]) -> None:
    op = pl.read_parquet(run_root.response_time)
    overall = metrics["overall"]
    assert op.height == overall["n_openings"] == 1244  # the requests of the default definition
    t = op["duration_s"].to_numpy() / 60.0
    e = op["event"].cast(pl.Int64).to_numpy()
    assert overall["km_median_min"] == pytest.approx(_km_median_by_hand(t, e), abs=1e-5)
    for minutes, label in ((15, "15m"), (60, "1h"), (24 * 60, "24h")):
        lat = op["latency_s"].to_numpy().astype(float)
        within = np.nan_to_num(lat, nan=np.inf) <= minutes * 60
        known = within | (op["follow_s"].to_numpy() >= minutes * 60)
        assert overall[f"share_within_{label}"] == pytest.approx(within.sum() / known.sum(),
                                                                 abs=1e-6), label
        assert overall[f"n_known_{label}"] == known.sum()
    # the five largest brands by openings (ties by name), as the README's log-rank row says
    top = (op.group_by("brand").len().sort(["len", "brand"], descending=[True, False])
           ["brand"].head(5).to_list())
    lr = metrics["logrank"]
    assert sorted(lr["groups"]) == sorted(top)
    sub = op.filter(pl.col("brand").is_in(top))
    chi2 = _logrank_by_hand(sub["duration_s"].to_numpy() / 60.0,
                            sub["event"].cast(pl.Int64).to_numpy(), sub["brand"].to_numpy())
    assert lr["statistic"] == pytest.approx(chi2, rel=1e-6)
    assert lr["df"] == 4 and lr["n"] == sub.height and lr["events"] == int(sub["event"].sum())
    from scipy.stats import chi2 as chi2_dist

    assert lr["p_value"] == pytest.approx(chi2_dist.sf(chi2, 4), rel=1e-4) and lr["p_value"] > 0


def test_readme_response_time_numbers_are_the_stages(run_root: Paths,
                                                     metrics: dict[str, Any]) -> None:
    """The README's service-level sentence and log-rank line, rebuilt from the metrics of
    `scrm response-time` on the sample (this test's run), must appear in it verbatim."""
    from scrm.config import PROJECT_ROOT

    readme = " ".join((PROJECT_ROOT / "README.md").read_text(encoding="utf-8").split())
    o, lr = metrics["overall"], metrics["logrank"]

    def pct(key: str) -> str:
        return (f"{100 * o[key]:.1f}% ({100 * o[key + '_ci_low']:.1f}–"
                f"{100 * o[key + '_ci_high']:.1f})")

    def mins(key: str) -> str:
        return f"{o[key]:.1f} min ({o[key + '_ci_low']:.1f}–{o[key + '_ci_high']:.1f})"

    answered = pct("answered_share").replace("% (", "% answered (", 1)
    sentence = (f"{o['n_openings']:,} requests: {answered}; KM median "
                f"{mins('km_median_min')}; RMST within 24 h {mins('rmst_min')}; within 1 h "
                f"{pct('share_within_1h')}, within 24 h {pct('share_within_24h')}")
    assert sentence in readme, sentence
    p = f"{lr['p_value']:.1e}".replace("e-0", "e-")
    logrank = f"χ² = {lr['statistic']:.2f}, {lr['df']} df, p = {p}"
    assert logrank in readme, logrank
    shares = (f"| **{pct('share_within_15m')}** | **{pct('share_within_1h')}** | "
              f"**{pct('share_within_24h')}** |")
    assert shares in readme, shares
