"""The report's response-time section: definitions, the sensitivity table, service levels with
intervals, brand comparisons with Holm-adjusted tests, and every model against its baseline.

Everything shown is read from the ``response_time`` stage's outputs (metrics JSON, service table,
sensitivity and pairwise tables, plot CSVs); the prose around it is ours, and every sentence that
states a result is built from those numbers (a model "no better than chance" is said because its
interval includes 0.5, not because we typed it).
"""

from __future__ import annotations

import html
import re
from typing import Any

import polars as pl

from ..config import ReportSettings
from ..paths import Paths
from . import figures as F
from .html import Section, fmt, html_table, kpis, metrics_details, para
from .views import importance_table, latency_boxes, need, read_json, top_by

DEFINITION_NAMES = {"direct": "(a) direct reply to the opening",
                    "customer": "(b) first brand reply to the opening customer",
                    "thread": "(c) any brand tweet in the thread"}
RULE_NAMES = {"brand_account": "a brand account posting inbound",
              "brand_alias": "an account other customers address (a brand's own account)",
              "broadcast": "a retweet-like broadcast", "promotional": "a promotion with a link",
              "no_brand_mention": "addressed to nobody, naming no brand, with a link"}
SHARES = ("answered_share", "share_within_15m", "share_within_1h", "share_within_24h")


def ci_text(row: dict[str, Any], key: str, pct: bool = False) -> str:
    """"73.4% (70.9–75.8)" or "13.2 (11.9–15.4)"; "–" for a missing value or limit."""
    def one(v: Any) -> str:
        if v is None:
            return "–"
        return f"{100 * float(v):.1f}" if pct else f"{float(v):,.1f}"

    v = row.get(key)
    if v is None:
        return "–"
    unit = "%" if pct else ""
    lo, hi = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    sep = " to " if any(x is not None and float(x) < 0 for x in (v, lo, hi)) else "–"
    return f"{one(v)}{unit} ({one(lo)}{sep}{one(hi)})"


def p_text(p: Any, log10_p: Any = None) -> str:
    """A p-value as stored (significant digits); one that underflowed is given by its log10."""
    if p is not None:
        return f"{float(p):.3g}"
    return "–" if log10_p is None else f"10^{float(log10_p):.1f}"


def _hours(h: Any) -> str:
    return "–" if h is None else html.escape(f"{float(h):g} hours")


def _interval_frame(rows: list[dict[str, Any]], columns: dict[str, tuple[str, bool]],
                    keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """Rows as text cells "value (low–high)" for the ``columns`` (key -> (header, is share))."""
    return pl.DataFrame([{**{k: r.get(k) for k in keep},
                          **{h: ci_text(r, k, pct) for k, (h, pct) in columns.items()}}
                         for r in rows], infer_schema_length=None)


FIGURE_COLUMNS = {"answered_share": ("answered", True), "km_median_min": ("KM median (min)", False),
                  "rmst_min": ("RMST 24 h (min)", False),
                  "share_within_15m": ("within 15 min", True),
                  "share_within_1h": ("within 1 h", True), "share_within_24h": ("within 24 h", True)}


def _definitions(s: Section, m: dict[str, Any]) -> None:
    ob = m.get("openings") or {}
    ov = m.get("overall") or {}
    reasons = ", ".join(f"{fmt(n)} {html.escape(RULE_NAMES.get(r, r))}"
                        for r, n in (ob.get("non_requests") or {}).items() if n)
    excluded = ob.get("exclude_non_requests")
    s.html(para(
        "For every customer <em>opening</em> the <em>latency</em> is the time from the opening to "
        "the brand's first response. <em>Answered</em> follows the opening table's definition "
        f"<strong>{html.escape(DEFINITION_NAMES.get(str(ob.get('answered_definition')), '?'))}"
        "</strong>: a brand's reply to the customer's own later tweet is a response to that "
        "customer, a reply to someone else in the thread is not. The table below shows how far "
        "the figures move under the other two definitions. Openings without a response are "
        f"<em>censored</em> after {_hours(ov.get('horizon_hours'))} or at the end of the data; "
        "Kaplan–Meier medians and the RMST (the mean wait within the first "
        f"{_hours(ov.get('rmst_hours'))}) account for that. Brackets: 95% intervals."))
    s.html(para(
        f"Of {fmt(ob.get('openings'))} openings, {fmt(ob.get('requests'))} are customer requests; "
        f"the others are flagged by the rules in <code>params.yaml</code> ({reasons or 'none'}) "
        + ("and left out of every figure below." if excluded else
           "and kept in the figures below (<code>exclude_non_requests: false</code>).")))


def _sensitivity(s: Section, paths: Paths) -> None:
    table = pl.read_parquet(paths.rt_sensitivity)
    need(table, ["definition", "population", "scope", "n_openings", "n_answered"],
         paths.rt_sensitivity)
    pooled = table.filter(pl.col("scope") == "(all)").sort("population", "definition",
                                                           descending=[True, False])
    s.html("<h3>Sensitivity to the definitions</h3>")
    rows = [{**r, "definition": DEFINITION_NAMES.get(r["definition"], r["definition"]),
             "unanswered": r["n_openings"] - r["n_answered"]} for r in pooled.to_dicts()]
    s.html(html_table(_interval_frame(rows, FIGURE_COLUMNS,
                                      keep=("definition", "population", "n_openings",
                                            "unanswered"))))
    brands = table.filter((pl.col("scope") != "(all)") & (pl.col("population") == "requests"))
    if brands.height:
        s.html(para("The same for the largest brands (requests only):"))
        s.html(html_table(_interval_frame(
            [{**r, "definition": DEFINITION_NAMES.get(r["definition"], r["definition"])}
             for r in brands.sort("scope", "definition").to_dicts()],
            {k: FIGURE_COLUMNS[k] for k in ("answered_share", "share_within_1h",
                                            "km_median_min")},
            keep=("scope", "definition", "n_openings", "n_answered"))))


def _comparisons(s: Section, paths: Paths, m: dict[str, Any]) -> None:
    lr = m.get("logrank") or {}
    if lr.get("statistic") is not None:
        s.html(para(
            f"Log-rank test that the {len(lr.get('groups') or [])} largest brands share one "
            f"curve: χ² = {fmt(lr.get('statistic'))} with {fmt(lr.get('df'))} degrees of freedom, "
            f"p = {html.escape(p_text(lr.get('p_value'), lr.get('log10_p')))} "
            f"({fmt(lr.get('n'))} openings)."))
    pairs = pl.read_parquet(paths.rt_pairwise)
    if not pairs.height:
        return
    n_sig = int((pairs["logrank_p_holm"].fill_null(1.0) < 0.05).sum())
    s.html(para(
        f"Pairwise log-rank tests between them, Holm-adjusted over the {pairs.height} pairs: "
        f"{n_sig} of {pairs.height} differ at the 5% level. The effect sizes: the difference in "
        "RMST (how many minutes longer the first brand's customers wait on average within the "
        "first day) and in the share answered within 1 h, with 95% intervals."))
    rows = [{"pair": f"{r['a']} − {r['b']}", "χ²": r["logrank_chi2"],
             "p": p_text(r["logrank_p"], r["logrank_log10_p"]),
             "p (Holm)": p_text(r["logrank_p_holm"], r["logrank_log10_p_holm"]),
             "RMST difference (min)": ci_text(r, "rmst_diff"),
             "within 1 h difference": ci_text(r, "within_1h_diff", pct=True)}
            for r in pairs.to_dicts()]
    s.html(html_table(pl.DataFrame(rows)))


def _service(s: Section, paths: Paths, top: int) -> pl.DataFrame:
    table = pl.read_parquet(paths.service_table)
    need(table, ["brand", "n_openings", *SHARES, "km_median_min"], paths.service_table)
    big = top_by(table, "n_openings", top)
    keep = big["brand"].to_list()
    s.figure("fig-answered-share",
             F.answered_share(big, n_col="n_openings", low_col="answered_share_ci_low",
                              high_col="answered_share_ci_high",
                              title=f"Share of requests answered, {top} largest brands"),
             "The share of each brand's requests that got a response, with its Wilson 95% "
             "interval (hover for the number of requests).")
    s.figure("fig-within-1h",
             F.answered_share(big, share_col="share_within_1h", n_col="n_known_1h",
                              low_col="share_within_1h_ci_low", high_col="share_within_1h_ci_high",
                              title=f"Share answered within 1 hour, {top} largest brands"),
             "Requests answered within an hour, with Wilson 95% intervals: a small brand's bar can "
             "be far off its true value, and its whisker says how far.")
    lat = pl.read_csv(paths.latency_plot)
    need(lat, ["brand", "p10_min", "p25_min", "median_min", "p75_min", "p90_min"],
         paths.latency_plot)
    s.figure("fig-latency",
             F.latency_quantiles(latency_boxes(lat, keep if lat.height > top else None),
                                 title="Time to first brand reply (answered requests)"),
             "The spread of waiting times (not an estimate, so no interval): box = middle half of "
             "the answered requests (25th–75th percentile) with the median; whiskers: 10th–90th "
             "percentile. Log scale. Fastest median on top.")
    km = pl.read_csv(paths.km_plot)
    need(km, ["brand", "minutes", "still_waiting", "still_waiting_low", "still_waiting_high"],
         paths.km_plot)
    s.figure("fig-km", F.km_curves(km, lower_col="still_waiting_low",
                                   upper_col="still_waiting_high"),
             "Share of requests still waiting for a first reply after a given time, counting the "
             "unanswered ones (censored). Shaded: pointwise 95% Greenwood bands (log-log). The "
             "thick black curve pools all brands; where a curve flattens, the remaining requests "
             "were never answered.")
    return big


def _service_table(s: Section, big: pl.DataFrame) -> None:
    s.html("<h3>Service table</h3>")
    cols = {**FIGURE_COLUMNS, "median_latency_min": ("median latency, answered (min)", False),
            "p90_latency_min": ("90th pct (min)", False),
            "later_median_min": ("later turns median (min)", False)}
    s.html(html_table(_interval_frame(big.to_dicts(), cols, keep=("brand", "n_openings",
                                                                  "n_answered"))))


def _models(s: Section, paths: Paths, m: dict[str, Any]) -> None:
    models = m.get("models") or {}
    cls, reg = models.get("within_1h") or {}, models.get("log_latency") or {}
    s.html("<h3>Models, against their baselines (test period)</h3>")
    ok = {k: v for k, v in cls.items() if v.get("status") == "ok"}
    if ok:
        rows = [{"model": k, "AUC": ci_text(v, "auc"), "Brier": ci_text(v, "brier"),
                 "Δ AUC vs brand rate": ci_text(v, "auc_diff"),
                 "DeLong p": p_text(v.get("delong_p_value"), v.get("delong_log10_p")),
                 "calibration error": v.get("calibration_error"),
                 "verdict": v.get("vs_baseline", "(the baseline)")} for k, v in ok.items()]
        s.html(para(
            "<em>Answered within 1 h</em>: 95% bootstrap intervals over the test requests; Δ is "
            "the paired difference to the brand-rate baseline on the same draws, DeLong's test "
            "compares the two AUCs. " + _verdict_sentence(ok, "brand-rate baseline")))
        s.html(html_table(pl.DataFrame(rows, infer_schema_length=None)))
    cal = pl.read_csv(paths.calibration_plot)
    if cal.height:
        s.figure("fig-calibration", F.calibration_curve(cal),
                 "Observed share answered within 1 h per bin of predicted probability (test "
                 "period), with Wilson 95% intervals; the dashed diagonal is perfect calibration.")
    ok = {k: v for k, v in reg.items() if v.get("status") == "ok"}
    if ok:
        negative = [k for k, v in ok.items() if (v.get("r2_log") or 0) < 0]
        s.html(para(
            "<em>Log latency</em> of answered requests: MAE in minutes, R² on the log scale. "
            + _verdict_sentence(ok, "per-brand median")
            + (f" R² is negative for {len(negative)} of {len(ok)} models "
               f"({html.escape(', '.join(negative))}): they predict worse than the test "
               "period's mean." if negative else "")))
        s.html(html_table(pl.DataFrame(
            [{"model": k, "MAE (min)": ci_text(v, "mae_minutes"), "R² (log)": ci_text(v, "r2_log"),
              "Δ MAE vs brand median": ci_text(v, "mae_minutes_diff"),
              "verdict": v.get("vs_baseline", "(the baseline)")} for k, v in ok.items()])))


def _verdict_sentence(models: dict[str, Any], baseline: str) -> str:
    verdicts = {k: v["vs_baseline"] for k, v in models.items() if "vs_baseline" in v
                and k not in ("dummy",)}
    if not verdicts:
        return ""
    better = [k for k, v in verdicts.items() if v == "better"]
    worse = [k for k, v in verdicts.items() if v == "worse"]
    parts = []
    if better:
        parts.append(f"better than the {baseline}: {', '.join(better)}")
    if worse:
        parts.append(f"worse than the {baseline}: {', '.join(worse)}")
    same = [k for k in verdicts if k not in better and k not in worse]
    if same:
        parts.append(f"not distinguishable from the {baseline}: {', '.join(same)}")
    return html.escape("Feature models " + "; ".join(parts) + ".")


def _cox(s: Section, m: dict[str, Any]) -> None:
    cox = (m.get("models") or {}).get("cox") or {}
    coefs = cox.get("coefficients") or {}
    if cox.get("status") != "ok" or not coefs:
        return
    chance = cox.get("better_than_chance")
    verdict = ("better than chance" if chance else
               "<strong>no better than chance</strong> (its interval includes 0.5)"
               if chance is False else "not assessed")
    failing = sorted(k for k, v in coefs.items()
                     if (v.get("ph_test") or {}).get("p_value") is not None
                     and v["ph_test"]["p_value"] < 0.05)
    wald = cox.get("joint_wald") or {}
    s.html(para(
        "Cox model of the time to first response (the event is the brand's reply; a hazard ratio "
        "above 1 means a faster reply, per standard deviation), brands as strata, hour and "
        "weekday as sin/cos terms, standard errors clustered by "
        f"{html.escape(str(cox.get('cluster')))} ({fmt(cox.get('n_clusters'))} clusters). Test "
        f"C-index {html.escape(ci_text(cox, 'c_index'))}: {verdict}. "
        + "".join(f"Joint Wald test of the {html.escape(t)} terms: χ² = {fmt(w.get('statistic'))}"
                  f", {fmt(w.get('df'))} df, p = {html.escape(p_text(w.get('p_value'), w.get('log10_p')))}. "
                  for t, w in wald.items())
        + ("Proportional hazards fail (Schoenfeld test, p &lt; 0.05) for "
           f"{html.escape(', '.join(failing))}: their ratios average an effect that changes "
           "with waiting time." if failing else
           "No covariate fails the proportional-hazards test at the 5% level.")))
    rows = [{"feature": k, "hazard ratio": ci_text(v, "hazard_ratio"),
             "p": p_text(v.get("p_value"), v.get("log10_p")),
             "PH test p": p_text((v.get("ph_test") or {}).get("p_value"),
                                 (v.get("ph_test") or {}).get("log10_p"))}
            for k, v in sorted(coefs.items())]
    s.html(html_table(pl.DataFrame(rows)))


def _shift(s: Section, m: dict[str, Any]) -> None:
    split = m.get("split") or {}
    tr, te = split.get("train") or {}, split.get("test") or {}
    if tr and te:
        s.html(para(
            f"Train/test shift: answered within 1 h {html.escape(ci_text(tr, 'within_1h_share', True))}"
            f" in the training period (to {fmt(str(tr.get('to'))[:10])}) against "
            f"{html.escape(ci_text(te, 'within_1h_share', True))} in the test period "
            f"({fmt(str(te.get('from'))[:10])} to {fmt(str(te.get('to'))[:10])}); KM median "
            f"{html.escape(ci_text(tr, 'km_median_min'))} against "
            f"{html.escape(ci_text(te, 'km_median_min'))} minutes."))


def fill(s: Section, paths: Paths, settings: ReportSettings) -> Section:
    """The section's content (the caller checked that the stage's outputs exist)."""
    m = read_json(paths.metric("response_time"))
    ov = m.get("overall") or {}
    _definitions(s, m)
    s.html(kpis([("requests", ov.get("n_openings")),
                 ("answered share", ci_text(ov, "answered_share", pct=True)),
                 ("KM median (min)", ci_text(ov, "km_median_min")),
                 ("RMST 24 h (min)", ci_text(ov, "rmst_min")),
                 *[(k.replace("share_within_", "answered within "), ci_text(ov, k, pct=True))
                   for k in SHARES[1:]],
                 (f"censored: no reply within {_hours(ov.get('horizon_hours'))}",
                  ov.get("n_censored"))]))
    _sensitivity(s, paths)
    big = _service(s, paths, settings.top_brands)
    _comparisons(s, paths, m)
    _service_table(s, big)
    _models(s, paths, m)
    _cox(s, m)
    _shift(s, m)
    imp = importance_table(m.get("importance") or {})
    for task in imp["task"].unique(maintain_order=True).to_list() if imp.height else []:
        s.figure(f"fig-importance-{re.sub(r'[^a-z0-9]+', '-', task.lower())}",
                 F.importance_bars(imp.filter(pl.col("task") == task),
                                   title=f"What the {task} model relies on (permutation "
                                         "importance)"),
                 "How much the test score drops when one feature's values are shuffled (± one "
                 "standard deviation over repeats); features are known at the time of the "
                 "opening.")
    s.html(metrics_details(paths, "response_time", m, skip=("models", "importance", "sensitivity",
                                                            "pairwise", "brands")))
    return s
