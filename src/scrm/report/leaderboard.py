"""The report's parts on how far complaint labels can be trusted: the rules and the label model on
the hand-labelled sets (complaints section) and the classifier benchmark (benchmark section).

Kept apart from :mod:`scrm.report.sections` (which builds every section and calls these) so each
module stays readable. As everywhere in the report, every number comes from a stage's output:
``reports/metrics/complaints.json``, ``reports/benchmark.csv`` and ``reports/metrics/benchmark.json``.
"""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from ..config import ReportSettings
from ..paths import Paths
from . import figures as F
from .html import Section, html_table, kpis, metrics_details, para, slug
from .views import labeller_scores, per_class_f1, read_json, read_table

TITLES = {"weak_to_gold": "weak → gold: trained on weak labels, scored on the sealed test",
          "gold_cv": "gold cross-validation on dev",
          "weak_on_weak": "weak → weak: how well a model reproduces the rules"}


def _ci(v: Any, lo: Any, hi: Any, pct: bool = False) -> str:
    if v is None:
        return ""
    f = (lambda x: f"{x * 100:.1f} %") if pct else (lambda x: f"{x:.3f}")
    return f"{f(v)} [{f(lo)}–{f(hi)}]" if lo is not None else f(v)


def weak_supervision_html(metrics: dict[str, Any]) -> str:
    """Rules and label model on the sealed test and on dev, with intervals, and the annotators'
    agreement; empty when the stage scored neither set."""
    scores = labeller_scores(metrics)
    if scores.is_empty():
        return ""
    shown = (("coverage", True), ("accuracy_covered", True), ("macro_f1", False),
             ("macro_f1_abstain_as_other", False))
    table = pl.DataFrame([{"set": r["set"], "labeller": r["labeller"], "n": r["n"],
                           **{k: _ci(r[k], r[f"{k}_low"], r[f"{k}_high"], pct) for k, pct in shown}}
                          for r in scores.iter_rows(named=True)])
    out = ["<h3>Can the rules be trusted? Rules and label model on the hand-labelled sets</h3>",
           para("The <em>sealed test</em> is 420 openings drawn at random (stratified by brand) "
                "from the openings outside dev, labelled twice independently without looking at "
                "the rules, and never used to change a rule: its numbers carry the claims. Dev "
                "numbers are optimistic, because the rules were written with dev in view. Macro-F1 "
                "averages over all categories; an abstention counts as wrong, or as "
                "<code>other_unclear</code>. Brackets: 95 % intervals (Wilson; paired bootstrap "
                "for macro-F1)."),
           html_table(table, {"set": "set", "labeller": "labeller", "n": "openings",
                              "coverage": "coverage", "accuracy_covered": "accuracy on covered",
                              "macro_f1": "macro-F1 (abstain wrong)",
                              "macro_f1_abstain_as_other": "macro-F1 (abstain = other)"})]
    cmp_ = (((metrics.get("sealed_test") or {}).get("label_model") or {})
            .get("vs_majority_vote") or {}).get("macro_f1")
    if cmp_:
        lo, hi = cmp_["diff_ci"]
        out.append(para(f"Label model minus majority vote on the sealed test: "
                        f"{cmp_['diff']:+.3f} macro-F1 [{lo:+.3f}, {hi:+.3f}] (two-sided paired "
                        f"bootstrap, p = {cmp_['p_value']:.3f})."))
    agreement = metrics.get("agreement") or {}
    rows = [{"set": k.replace("_", " "), "kappa": _ci(v.get("kappa"), v.get("ci_low"),
                                                       v.get("ci_high")),
             "agreement": v.get("agreement"), "n": v.get("n")}
            for k, v in sorted(agreement.items()) if isinstance(v, dict)]
    if rows:
        out += [para("Agreement between the two independent labelling passes (Cohen's κ, 95 % "
                     "bootstrap interval). <strong>The annotators were independent instances of "
                     "an AI assistant, not people</strong>: κ shows how consistently the "
                     "guidelines can be applied and is likely higher than two people would "
                     "reach."),
                html_table(pl.DataFrame(rows), {"set": "labelled set", "kappa": "κ [95 % CI]",
                                                "agreement": "raw agreement", "n": "items"},
                           pct=["agreement"])]
    return "".join(out)


def fill_benchmark(s: Section, paths: Paths, settings: ReportSettings) -> Section:
    """The benchmark section: one interval leaderboard per protocol section, per-class F1 of the
    headline section, and every row in a table."""
    m = read_json(paths.metric("benchmark"))
    lb = read_table(paths.benchmark_csv)
    s.html(para(
        "Which text classifier predicts the complaint category of an opening, and can the ranking "
        "be trusted? Every score is <em>macro-F1</em> over the same categories, with a 95 % paired "
        "bootstrap interval; filled dots cannot be told apart from the best row of their "
        "section (Holm-adjusted paired bootstrap test). The headline is <em>weak → gold</em>: "
        "models trained only on the rules' (or the label model's) labels of openings outside "
        "both hand-labelled sets, scored on the sealed test, next to the rules and the label "
        "model themselves. <em>Gold cross-validation</em> uses the dev set's hand labels; "
        "<em>weak → weak</em> only measures how well a model reproduces the rules. "
        "Hyper-parameters and the selected model are chosen on validation folds of the training "
        "rows, never on the scored rows."))
    failed = lb.filter(pl.col("kind") == "failed").height if "kind" in lb.columns else 0
    order = list(TITLES)
    sections = dict(sorted((m.get("sections") or {}).items(), key=lambda kv: (
        order.index(kv[1]["protocol"]) if kv[1]["protocol"] in order else len(order), kv[0])))
    s.html(kpis([("sections", len(sections)),
                 ("systems scored", lb.height - failed),
                 ("systems failed (see the leaderboard's error column)", failed),
                 ("categories", len(m.get("classes") or []))]))
    s.html(metrics_details(paths, "benchmark", m, skip=("sections",)))
    needed = {"protocol", "variant", "system", "macro_f1", "macro_f1_low", "macro_f1_high",
              "indistinguishable_from_best"}
    if not needed <= set(lb.columns):
        return s
    for key, sec in sections.items():
        part = lb.filter((pl.col("protocol") == sec["protocol"])
                         & (pl.col("variant") == sec["variant"]))
        title = TITLES.get(sec["protocol"], sec["protocol"])
        if sec["protocol"] != "weak_to_gold":
            title += f" (split: {sec['variant']})"
        s.figure(f"fig-leaderboard-{slug(key)}", F.leaderboard(part, title=title),
                 f"{sec['n_test']} scored openings; best: {html.escape(str(sec['best']))}. "
                 "Whiskers are 95 % intervals; a hollow dot is worse than the best beyond chance.")
    head = next(iter(sections.values()), None)
    if head is not None:
        pcf = per_class_f1(lb, head["protocol"], head["variant"])
        if pcf.height:
            s.figure("fig-per-class-f1",
                     F.category_heatmap(pcf, group_col="system", category_col="class",
                                        share_col="f1", n_col=None, percent=False, zmax=1.0,
                                        title=f"F1 per category ({TITLES[head['protocol']]})"),
                     "Which categories each system gets right (F1 from 0 to 1; darker is better).")
    s.html("<h3>All rows</h3>")
    cols = {"protocol": "protocol", "variant": "split / set", "rank": "rank", "system": "system",
            "macro_f1": "macro-F1", "macro_f1_low": "CI low", "macro_f1_high": "CI high",
            "diff_from_best": "Δ best", "p_holm": "p (Holm)",
            "indistinguishable_from_best": "≈ best", "selected": "selected on validation",
            "chosen": "hyper-parameters", "n_train": "train rows", "n_test": "scored rows"}
    s.html(html_table(lb, {c: h for c, h in cols.items() if c in lb.columns}))
    skipped = m.get("skipped") or {}
    if skipped:
        s.html("<h3>Skipped</h3><ul>" + "".join(
            f"<li><code>{html.escape(str(k))}</code>: {html.escape(str(v))}</li>"
            for k, v in sorted(skipped.items())) + "</ul>")
    return s
