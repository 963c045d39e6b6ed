"""The report's outcome section: the validated recovery rate, how good the measure is, silence, and
the corrected findings, all read from the outcome stage's outputs.

Kept apart from :mod:`scrm.report.sections` because this section carries the most evidence (a
sealed-test validation, a sensitivity table of definitions, bounds, a placebo, three models): every
number is read from ``reports/metrics/outcome.json`` or ``outcome_findings.parquet``.
"""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from ..config import ReportSettings
from ..paths import Paths
from . import figures as F
from .html import Section, fmt, html_table, kpis, metrics_details, para, percent
from .views import (competing_table, label_share_table, odds_ratio_table, outcome_models,
                    read_json, recovery_estimates, sealed_test_table, transitions_from_matrix)

FINDINGS_COLUMNS = {
    "brand": "scope", "feature": "reply feature", "outcome": "outcome", "n_with": "n with",
    "rate_with": "rate with", "n_without": "n without", "rate_without": "rate without",
    "diff": "difference", "diff_ci_low": "CI low", "diff_ci_high": "CI high", "chi2": "chi²",
    "p_value": "p", "p_holm": "p (Holm)", "p_bh": "p (BH)", "verdict": "verdict (Holm)",
}


def _rate(entry: dict[str, Any] | None) -> str:
    """"14.7% (11.4%–18.8%, 51 of 347)" from a rate entry of the metrics file."""
    if not entry or entry.get("rate") is None:
        return "–"
    return (f"{percent(entry['rate'])} ({percent(entry['ci_low'])}–{percent(entry['ci_high'])}, "
            f"{fmt(entry['k'])} of {fmt(entry['n'])})")


def outcomes_section(paths: Paths, settings: ReportSettings) -> Section:
    """Conversation outcomes: validated rate, measure validity, silence bounds, placebo, corrected
    findings and the models."""
    from .sections import _section

    js = paths.metric("outcome")
    s, state = _section("outcomes", paths, "outcome", [js, paths.outcome_findings])
    if not state.ok:
        return s
    m = read_json(js)
    th = m.get("threads") or {}
    rates = m.get("recovery_rate") or {}
    sil = m.get("silence") or {}
    s.html(para(
        "Did an unhappy customer end satisfied? The customer's state is read as the written "
        "guidelines define it (<code>references/outcome_guidelines.md</code>): the opening is "
        "<em>unhappy</em> or not, and the customer's <em>last</em> tweet after the brand's first "
        "reply is <em>satisfied</em>, <em>still unhappy</em> or <em>procedural</em> (handing over "
        "details, moving to DM, waiting). A text measure (sentence embeddings and word cues) "
        "learned these states from the dev half of a hand-labelled set of 420 threads and was "
        "scored once on the sealed other half. A conversation is <em>recovered</em> when it "
        "opened unhappy and ended satisfied; a customer who never wrote again is <em>silent</em>, "
        "an outcome of its own, never dropped. Everything here is an association: brands choose "
        "how to reply knowing the complaint."))
    s.html(kpis([("openings", th.get("openings")), ("answered, opened unhappy", th.get("answered_unhappy")),
                 ("recovered (hand labels)", (rates.get("hand_labels") or {}).get("rate"), "pct"),
                 ("recovered (measure, follow-ups)", (rates.get("measure") or {}).get("rate"), "pct"),
                 ("silent after the first reply", (sil.get("silent_share") or {}).get("rate"), "pct"),
                 ("former VADER 'recovery'", (rates.get("former_vader") or {}).get("rate"), "pct")]))
    s.html(para(
        f"<strong>Validated recovery rate</strong> (hand labels, unhappy openings with a follow-up): "
        f"{_rate(rates.get('hand_labels'))}. The measure on every follow-up thread: "
        f"{_rate(rates.get('measure'))}. Counting silence as not recovered and as recovered bounds "
        f"the rate among all answered unhappy openings between {_rate(sil.get('worst_case'))} and "
        f"{_rate(sil.get('best_case'))}: nothing in public tells which of the silent customers were "
        "helped."))
    _validity(s, m)
    est = recovery_estimates(m)
    if est.height:
        s.figure("fig-recovery-estimates",
                 F.findings_forest(est, label_col="estimate", est_col="rate", low_col="ci_low",
                                   high_col="ci_high", group_col=None, tickformat=".0%",
                                   zero_line=False, x_title="share of conversations",
                                   title="Recovery rate under each definition, bounds and placebo"),
                 "Each row is one estimate with its 95% interval (Wilson). The former VADER label "
                 "calls most negative threads recovered even when the customer wrote again before "
                 "any reply (the placebo); the validated measure hardly does. The two silence rows "
                 "are the worst and best case for all answered unhappy openings.")
    shares, order = label_share_table(m.get("labels_by_brand") or {}, m.get("labels"),
                                      top=settings.top_brands)
    s.figure("fig-outcome-labels",
             F.label_shares(shares, group_order=order, colors=F.OUTCOME_COLORS, n_col="n"),
             f"Share of each outcome among the openings of the {settings.top_brands} brands with "
             "most openings (top row: all brands). Green: recovered; red and orange: ended unhappy; "
             "grey: silent after the first reply, or never answered.")
    s.figure("fig-sentiment-sankey",
             F.sentiment_sankey(transitions_from_matrix(m.get("transition_matrix") or {}),
                                title="From the customer's state at the opening to the end"),
             "Left: the opening's state. Right: the state of the customer's last tweet after the "
             "brand's first reply, or silent, or never answered. Band width = conversations.")
    _findings(s, paths)
    _models(s, m)
    s.html(metrics_details(paths, "outcome", m, skip=("labels_by_brand", "findings_overall")))
    return s


def _validity(s: Section, m: dict[str, Any]) -> None:
    """Sealed-test scores, labelling agreement and what the former label caught."""
    test = sealed_test_table(m)
    s.html("<h3>How good is the measure? (sealed test, never used for fitting)</h3>")
    if not test.height:
        reason = (m.get("sealed_test") or {}).get("skipped", "no sealed test")
        s.html(f'<p class="note">Not validated: {html.escape(str(reason))}</p>')
    else:
        s.html(para(
            "Measure vs the baseline (sentiment scores cut at the outcome thresholds) on the same "
            f"{fmt((m.get('sealed_test') or {}).get('n_scored'))} test threads: 95% bootstrap "
            "intervals, the paired difference from the same resamples, and McNemar's test on which "
            "threads each gets right."))
        s.html(html_table(test, {"field": "field", "score": "score", "measure": "measure",
                                 "measure_ci": "95% CI", "baseline": "baseline",
                                 "baseline_ci": "95% CI", "difference": "difference",
                                 "difference_ci": "95% CI", "mcnemar_p": "McNemar p"}))
    agree = m.get("labelling_agreement") or {}
    former = m.get("former_label_check") or {}
    notes = []
    if agree.get("end_state"):
        notes.append(f"Two independent labelling passes agreed with Cohen's kappa "
                     f"{fmt(agree['opening_state']['kappa'])} on the opening and "
                     f"{fmt(agree['end_state']['kappa'])} on the end state ({html.escape(agree['annotators'])}).")
    if former.get("n_vader_recovered_labelled"):
        notes.append(f"Of the labelled threads the former VADER label called recovered, "
                     f"{_rate(former.get('share_satisfied'))} ended satisfied by the hand labels.")
    if notes:
        s.html(para(" ".join(notes)))


def _findings(s: Section, paths: Paths) -> None:
    findings = pl.read_parquet(paths.outcome_findings)
    overall = findings.filter(pl.col("scope") == "overall")
    if overall.height:
        s.figure("fig-findings",
                 F.findings_forest(overall.with_columns(
                     name=pl.concat_str("feature", pl.lit(" → "), "outcome")), label_col="name",
                     group_col=None, title="Rate with minus without each reply feature",
                     x_title="difference (percentage points)"),
                 "Among answered unhappy openings (silent ones included): the share that ended "
                 "satisfied in public, and the share that went silent, when the first reply has "
                 "the feature minus when it does not, with 95% Newcombe intervals. The table "
                 "below gives the p-values adjusted across all its rows.")
    s.html("<h3>Findings (p-values adjusted across every row)</h3>")
    s.html(html_table(findings, {c: h for c, h in FINDINGS_COLUMNS.items() if c in findings.columns},
                      pct=["rate_with", "rate_without", "diff", "diff_ci_low", "diff_ci_high"]))


def _models(s: Section, m: dict[str, Any]) -> None:
    models = outcome_models(m)
    if models.height:
        s.html("<h3>Can the first reply predict public recovery?</h3>")
        s.html(para("Out-of-fold ROC AUC (0.5 = coin flip) among answered unhappy openings, folds "
                    "grouped by customer, each model compared with <em>brand_prior</em> on the "
                    "same threads (DeLong, Holm-adjusted). A model that does not beat it finds "
                    "nothing the brand alone does not explain."))
        s.html(html_table(models, {"model": "model", "oof_auc": "AUC", "ci_low": "CI low",
                                   "ci_high": "CI high", "diff_vs_baseline": "minus brand_prior",
                                   "p_value": "p", "p_holm": "p (Holm)"}))
    if (m.get("model") or {}).get("skipped"):
        s.html(f'<p class="note">Models skipped: {html.escape(str(m["model"]["skipped"]))}</p>')
    ors = odds_ratio_table(m)
    sel = (m.get("odds_ratios") or {}).get("selection") or {}
    if ors.height:
        s.html("<h3>Odds ratios of public recovery (unpenalised logistic regression)</h3>")
        s.html(para(f"{fmt(sel.get('events'))} events in the rarer outcome allow "
                    f"{fmt(sel.get('max_predictors'))} predictors at one per "
                    f"{fmt(sel.get('per_predictor'))} events; left out: "
                    f"{html.escape(', '.join(sel.get('dropped') or []) or 'none')}. Standard "
                    "errors clustered by customer; the within-brand columns add a dummy per large "
                    "brand."))
        s.html(html_table(ors, {"predictor": "predictor", "scale": "scale",
                                "odds_ratio": "odds ratio", "ci_low": "CI low", "ci_high": "CI high",
                                "p_value": "p", "within_brand": "within brand",
                                "within_ci_low": "CI low", "within_ci_high": "CI high"}))
    comp = competing_table(m)
    if comp.height:
        s.html("<h3>Competing outcomes (multinomial logit)</h3>")
        s.html(para("Average change in the share of each outcome when the reply has the feature "
                    "(continuous predictors: per standard deviation); the four changes of a row "
                    "group sum to zero."))
        s.html(html_table(comp, {"predictor": "predictor", "outcome": "outcome",
                                 "change": "change", "ci_low": "CI low", "ci_high": "CI high",
                                 "p_value": "p"}, pct=["change", "ci_low", "ci_high"]))
