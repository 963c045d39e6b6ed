"""The five sections of the report, one builder each: what a stage wrote, laid out for a reader.

Each builder reads only files a stage wrote (named by :class:`scrm.paths.Paths`), turns them into
figures with :mod:`scrm.report.figures` and into tables with :mod:`scrm.report.html`, and adds our
own prose. Nothing shown is typed in here: numbers come from the metrics JSON or from the views of
:mod:`scrm.report.views`. A stage that failed, has not run, had no data or was skipped gets a
visible note saying which and why (:mod:`scrm.report.state`) instead of a crash or empty figures.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from ..config import ReportSettings
from ..paths import Paths
from . import brands
from . import figures as F
from .html import Section, fmt, html_table, kpis, metrics_details, para
from .state import StageState, stage_state
from .views import (brand_order, brand_threads, brand_topic_shares, category_shares,
                    confusion_shares, conversation_points, daily_volume, date_range,
                    label_share_table, latest_openings, need, odds_ratio_table, outcome_models,
                    per_class_f1, pool_topics, read_json, read_table, topic_names, topic_table,
                    transitions_from_matrix)

# (section id, title): the order of the page and of its table of contents
SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Dataset overview"),
    ("brands", "Brand comparison: who answers, and how fast"),
    ("outcomes", "Conversation outcomes"),
    ("complaints", "Complaint categories and topics"),
    ("benchmark", "Classifier leaderboard"),
)


def _section(sid: str, paths: Paths, stage: str, files: Sequence[Path]
             ) -> tuple[Section, StageState]:
    """A new section and the state of its stage (``files``: the outputs it reads). Unless the
    stage is ``ok`` the section holds the note that says why (failed, not run, no data, skipped;
    check ``.missing``) and, when the stage ran, its metrics; builders stop there."""
    s = Section(sid, dict(SECTIONS)[sid])
    state = stage_state(paths, stage, files)
    _note(s, paths, state)
    return s, state


def _note(s: Section, paths: Paths, state: StageState) -> None:
    """The note of a stage whose results are not shown, and the metrics it wrote if it ran."""
    if state.note:
        s.missing.append(state.note)
        if state.ran:
            s.html(metrics_details(paths, state.stage, read_json(paths.metric(state.stage))))


def overview_section(paths: Paths, settings: ReportSettings) -> Section:
    """Dataset overview from prepare's outputs: counts, tweets per day, brands, openings."""
    prep_json = paths.metric("prepare")
    s, state = _section("overview", paths, "prepare",
                        [paths.tweets, paths.threads, paths.openings, prep_json])
    if not state.ran:
        return s
    m = read_json(prep_json)
    definition = m.get("answered_definition")
    tweets = pl.scan_parquet(paths.tweets).select("created_at", "role")
    threads = pl.read_parquet(paths.threads)
    openings = pl.read_parquet(paths.openings)
    lo, hi = date_range(tweets)
    s.html(para(
        "The raw file <code>twcs.csv</code> is parsed, validated and threaded by <code>scrm prepare"
        "</code>. A <em>conversation</em> (thread) is everything hanging off one root tweet; an "
        "<em>opening</em> is a customer tweet that starts a conversation. Its brand and whether it "
        "was <em>answered</em> come from the one opening table (definition "
        f"<code>{fmt(definition)}</code> of <code>openings.answered_definition</code>, defined in "
        "<code>scrm.data.openings</code>), as in every section below."))
    s.html(kpis([("tweets", m.get("tweets")), ("brands", m.get("brands")),
                 ("customers", m.get("customers")), ("conversations", m.get("threads")),
                 ("openings", m.get("openings")), ("answered openings", m.get("answered_openings")),
                 ("rows quarantined", m.get("rows_quarantined")),
                 ("first tweet", lo), ("last tweet", hi)]))
    if m.get("tweets"):
        s.figure("fig-volume", F.volume_over_time(daily_volume(tweets)),
                 "Each bar is one UTC day, split into customer and brand tweets. The view opens on "
                 "the days that hold 99% of the tweets; zoom out (double-click) to see the few "
                 "older tweets that customers replied to (first and last tweet above).")
    if not state.ok:  # no opening: nothing below has data
        return s
    s.figure("fig-brand-volume", F.brand_volume(brand_threads(threads, openings),
                                                  top=settings.top_brands),
             f"The {settings.top_brands} brands with the most conversations (a conversation counts "
             "for the brand that wrote most of its replies).")
    s.figure("fig-conversations",
             F.conversations_scatter(conversation_points(openings, threads, settings.max_points,
                                                         settings.seed)),
             "One dot per customer opening: when it was written and how many tweets the "
             "conversation grew to (log scale). Hover a dot to read the opening tweet. "
             f"At most {settings.max_points:,} openings are drawn (a seeded sample).")
    s.html("<h3>Latest openings</h3>")
    s.html(html_table(latest_openings(openings, threads, settings.n_examples),
                      {"opening_at": "written", "brand": "brand", "n_tweets": "tweets",
                       "answered": "answered", "opening_text": "opening tweet"},
                      css="examples"))
    return s


def brands_section(paths: Paths, settings: ReportSettings) -> Section:
    """Brand comparison from response_time's outputs (content in :mod:`scrm.report.brands`)."""
    s, state = _section("brands", paths, "response_time",
                        [paths.metric("response_time"), paths.service_table, paths.rt_sensitivity,
                         paths.rt_pairwise, paths.latency_plot, paths.km_plot,
                         paths.calibration_plot])
    return brands.fill(s, paths, settings) if state.ok else s


FINDINGS_COLUMNS = {
    "brand": "scope", "feature": "reply feature", "n_with": "n with", "rate_with": "recovered with",
    "n_without": "n without", "rate_without": "recovered without", "diff": "difference",
    "diff_ci_low": "CI low", "diff_ci_high": "CI high", "verdict": "verdict",
}


def outcomes_section(paths: Paths, settings: ReportSettings) -> Section:
    """Conversation outcomes from outcome's outputs: labels, sentiment flow, findings, models."""
    js = paths.metric("outcome")
    findings_path = paths.outcome_findings
    s, state = _section("outcomes", paths, "outcome", [js, findings_path])
    if not state.ok:
        return s
    m = read_json(js)
    th = m.get("threads") or {}
    s.html(para(
        "Does an unhappy customer end up happy, and what in the brand's first reply goes with it? "
        "Every customer tweet gets a sentiment score; an answered opening is labelled by comparing "
        "the opening's sentiment with the customer's <em>last</em> tweet after the brand's first "
        "reply: <em>recovered</em> (opened negative, ended neutral or positive), <em>stayed "
        "negative</em>, <em>deteriorated</em>, <em>stable non-negative</em>, or <em>no follow-up</em> "
        "(the customer never wrote again). These are associations, not causal effects: brands "
        "choose how to reply knowing the complaint."))
    s.html(metrics_details(paths, "outcome", m, skip=("labels_by_brand", "findings_overall")))
    s.html(kpis([("openings", th.get("openings")), ("answered", th.get("answered")),
                 ("opened negative, answered", th.get("opened_negative_answered")),
                 ("eligible for recovery", th.get("model_population")),
                 ("recovery rate", m.get("recovery_rate"), "pct")]))
    shares, order = label_share_table(m.get("labels_by_brand") or {}, m.get("labels"),
                                      top=settings.top_brands)
    s.figure("fig-outcome-labels",
             F.label_shares(shares, group_order=order, colors=F.OUTCOME_COLORS, n_col="n"),
             f"Share of each outcome among the openings of the {settings.top_brands} brands "
             "with most openings (top row: all brands). Green is good; red and orange are "
             "conversations that ended negative.")
    s.figure("fig-sentiment-sankey",
             F.sentiment_sankey(transitions_from_matrix(m.get("transition_matrix") or {})),
             "Left: the sentiment of the customer's opening. Right: where the conversation ended "
             "(sentiment of the customer's last tweet after the brand replied, or no follow-up, or "
             "never answered). The width of a band is the number of conversations.")
    findings = pl.read_parquet(findings_path)
    if "scope" in findings.columns:
        overall = findings.filter(pl.col("scope") == "overall")
        s.figure("fig-findings",
                 F.findings_forest(overall, group_col=None),
                 "Among conversations that opened negative and got a follow-up: recovery rate when "
                 "the first reply has the feature minus the rate when it does not, with its "
                 "confidence interval. An interval crossing the dashed zero line cannot be told "
                 "apart from no difference.")
    s.html("<h3>Findings</h3>")
    s.html(html_table(findings, {c: h for c, h in FINDINGS_COLUMNS.items()
                                 if c in findings.columns},
                      pct=["rate_with", "rate_without", "diff", "diff_ci_low", "diff_ci_high"]))
    models = outcome_models(m)
    if models.height:
        s.html("<h3>Can the first reply predict recovery?</h3>")
        s.html(para("Out-of-fold ROC AUC (0.5 = coin flip) of models that predict "
                    "<em>recovered</em> from what is known when the first reply is sent; folds "
                    "are grouped by customer. Baselines first: if the reply models do not beat "
                    "<em>brand_prior</em>, the brand alone explains what they find."))
        s.html(html_table(models, {"model": "model", "oof_auc": "out-of-fold AUC",
                                   "fold_auc_mean": "mean fold AUC", "fold_auc_sd": "fold AUC sd",
                                   "folds_scored": "folds"}))
    if (m.get("model") or {}).get("skipped"):
        s.html(f'<p class="note">Models skipped: {html.escape(str(m["model"]["skipped"]))}</p>')
    ors = odds_ratio_table(m)
    if ors.height:
        s.html("<h3>Odds ratios (logistic regression, customer bootstrap)</h3>")
        s.html(html_table(ors, {c: h for c, h in
                                {"predictor": "predictor", "odds_ratio": "odds ratio",
                                 "ci_low": "CI low", "ci_high": "CI high", "scale": "scale"
                                 }.items() if c in ors.columns}))
    return s


def complaints_section(paths: Paths, settings: ReportSettings) -> Section:
    """Complaint categories (complaints stage) and, when the topics stage ran, BERTopic topics."""
    cpath, cjs = paths.complaints, paths.metric("complaints")
    lf_path = paths.lf_summary
    s, state = _section("complaints", paths, "complaints", [cpath, cjs, lf_path])
    if not state.ok:
        return s
    top = settings.top_brands
    comp = pl.read_parquet(cpath)
    need(comp, ["tweet_id", "brand", "created_at", "label"], cpath)
    cm = read_json(cjs)
    gold = cm.get("gold") or {}
    s.html(para(
        "What do customers complain about, and does it differ between brands? Every customer "
        "opening gets a complaint category from <em>labelling rules</em> (keyword and pattern "
        "rules of a taxonomy, combined by vote; an opening no rule fires on has no label). A "
        "hand-labelled gold set says how often the rules agree with people. Independently, "
        "BERTopic groups the openings into <em>topics</em> by meaning, with no predefined "
        "category: where topics and categories agree, the taxonomy captures something real; a "
        "large topic that no category covers is a candidate for a new category."))
    s.html(kpis([("openings", cm.get("openings")), ("labelled by the rules", cm.get("coverage"), "pct"),
                 ("rules disagree", cm.get("conflict_rate"), "pct"),
                 ("gold set size", gold.get("n")),
                 ("gold macro-F1 (labelled)", gold.get("macro_f1_covered")),
                 ("gold accuracy (labelled)", gold.get("accuracy_covered"), "pct")]))
    s.html(metrics_details(paths, "complaints", cm, skip=("gold_confusion", "lfs")))
    order = brand_order(comp, top)
    s.figure("fig-category-brand", F.category_heatmap(category_shares(comp, top=top),
                                                      group_order=order),
             f"Each row is one of the {top} brands with most openings; each cell the share of that "
             "brand's openings in a category (hover for counts). Read a column to compare brands, "
             "a row to see a brand's complaint mix.")
    overall = category_shares(comp.with_columns(brand=pl.lit("(all brands)")))
    s.figure("fig-category-overall",
             F.label_shares(overall, title="Complaint categories, all openings", n_col="n"),
             "Share of all openings per category; “(no label)” is an opening no rule fired on.")
    confusion = confusion_shares(cm.get("gold_confusion") or {})
    if confusion.height:
        s.figure("fig-gold-confusion",
                 F.category_heatmap(confusion, group_col="gold", category_col="rules",
                                    title="Rules vs people on the gold set (share of each gold "
                                          "category)"),
                 "Rows: the category a person gave; columns: what the rules said (“(abstain)”: no "
                 "rule fired). A strong diagonal means the rules agree with people.")
    per_class = cm.get("gold_per_class") or {}
    if per_class:
        s.html("<h3>Rule quality per category (gold set)</h3>")
        s.html(html_table(pl.DataFrame([{"category": k, **v} for k, v in sorted(per_class.items())],
                                       infer_schema_length=None),
                          {"category": "category", "precision": "precision", "recall": "recall",
                           "f1": "F1", "support": "gold openings"}))
    lfs = pl.read_csv(lf_path)
    s.html("<details><summary>Labelling functions: coverage, overlaps, conflicts and precision on "
           "the gold set</summary>" + html_table(lfs, pct=[c for c in ("coverage", "overlaps",
                                                                          "conflicts")
                                                             if c in lfs.columns]) + "</details>")

    tjs = paths.metric("topics")
    tfiles = [paths.topic_info, paths.topic_share_time, paths.topic_share_brand]
    topics = stage_state(paths, "topics", [*tfiles, tjs])
    s.html("<h3>Topics</h3>")
    if topics.note:
        s.html(f'<p class="missing">{topics.note}</p>')
        _note(s, paths, topics)
        return s
    tm = read_json(tjs)
    info = pl.read_parquet(tfiles[0])
    need(info, ["topic", "size"], tfiles[0])
    names = topic_names(info)
    s.html(kpis([(k.replace("_", " "), tm.get(k)) for k in
                 ("n_topics", "outlier_share", "diversity", "coherence_npmi") if k in tm]))
    s.html(metrics_details(paths, "topics", tm))
    by_time = pl.read_parquet(tfiles[1])
    need(by_time, ["period", "topic", "n"], tfiles[1])
    s.figure("fig-topics-time",
             F.topics_over_time(pool_topics(by_time, names, "period", settings.top_topics),
                                n_col="n"),
             f"Openings per period in the {settings.top_topics} largest topics (named by their "
             "most distinctive words); smaller topics are pooled as “other topics”.")
    by_brand = pl.read_parquet(tfiles[2])
    need(by_brand, ["brand", "topic", "n"], tfiles[2])
    tb = brand_topic_shares(by_brand, names, order, settings.top_topics)
    s.figure("fig-topics-brand",
             F.category_heatmap(tb, category_col="topic", group_order=order,
                                title="Topics by brand (share of each brand's openings)"),
             "Like the category heatmap above, but with the data-driven topics.")
    s.figure("fig-topic-sizes",
             F.topic_sizes(topic_table(info, names), name_col="name", n_col="size",
                           docs_col="example", top=settings.top_topics * 2),
             "The largest topics; hover a bar to read a representative opening.")
    s.html("<h3>Topics and the taxonomy</h3>")
    s.html(para("For each topic: its most distinctive words, the taxonomy category most of its "
                "labelled openings have (<em>purity</em>: the share that do) and one "
                "representative opening."))
    tt = topic_table(info, names)
    s.html(html_table(tt, {c: h for c, h in
                           {"topic": "topic", "size": "openings", "words": "top words",
                            "label": "majority category", "purity": "purity",
                            "coherence_npmi": "coherence (NPMI)", "example": "representative opening"
                            }.items() if c in tt.columns},
                      pct=["purity"], css="examples"))
    return s


LEADERBOARD_COLUMNS = {
    "labels": "labels", "split": "split", "rank": "rank", "model": "model", "macro_f1": "macro-F1",
    "accuracy": "accuracy", "macro_f1_fold_std": "macro-F1 fold std", "n_train": "train rows",
    "n_test": "test rows", "n_folds": "folds", "fit_s": "fit s", "predict_s": "predict s",
}


def benchmark_section(paths: Paths, settings: ReportSettings) -> Section:
    """Classifier leaderboard from benchmark's outputs: best models, per-class F1, all runs."""
    csv, js = paths.benchmark_csv, paths.metric("benchmark")
    s, state = _section("benchmark", paths, "benchmark", [csv, js])
    if not state.ok:
        return s
    m = read_json(js)
    lb = read_table(csv)
    s.html(para(
        "Which text classifier best predicts the complaint category of an opening? Every model is a "
        "scikit-learn pipeline fitted on training rows only and ranked by <em>macro-F1</em> (the mean "
        "of per-category F1, so rare categories count as much as common ones). The <em>stratified</em> "
        "split is a random split; the <em>time</em> split trains on earlier openings and tests on "
        "later ones (drift); the <em>brand</em> split tests on brands never seen in training "
        "(a new client). <em>weak</em> labels come from the labelling rules (a model scoring high "
        "there reproduces the rules), <em>gold</em> labels from people."))
    best = [{"labels": src, "split": split, "model": b.get("model"), "macro_f1": b.get("macro_f1")}
            for src, by_split in sorted((m.get("best") or {}).items())
            for split, b in sorted(by_split.items())]
    s.html(metrics_details(paths, "benchmark", m))
    s.html(kpis([("runs", m.get("runs")), ("models", len(m.get("models") or [])),
                 ("splits", len(m.get("splits") or [])),
                 ("label sources", len(m.get("labels") or []))]))
    if best:
        s.html("<h3>Best model per label source and split</h3>")
        s.html(html_table(pl.DataFrame(best), {"labels": "labels", "split": "split",
                                               "model": "best model", "macro_f1": "macro-F1"}))
    if "labels" in lb.columns:
        for src in [x for x in (m.get("labels") or sorted(lb["labels"].unique().to_list()))
                    if x in set(lb["labels"].to_list())]:
            part = lb.filter(pl.col("labels") == src)
            s.figure(f"fig-leaderboard-{_slug(src)}",
                     F.leaderboard(part, title=f"Leaderboard on {src} labels (macro-F1)"),
                     "One bar per model and split; the longer the bar, the better. A model that "
                     "drops sharply from the stratified to the time or brand split has learnt "
                     "vocabulary that does not carry over.")
    pcf = [(src, split) for src in ("gold", "weak") for split in (m.get("splits") or [])
           if per_class_f1(lb, src, split).height]
    if pcf:
        src, split = pcf[0]
        s.figure("fig-per-class-f1",
                 F.category_heatmap(per_class_f1(lb, src, split), group_col="model",
                                    category_col="class", share_col="f1", n_col=None,
                                    percent=False, zmax=1.0,
                                    title=f"F1 per category ({src} labels, {split} split)"),
                 "Which categories each model gets right (F1 from 0 to 1; darker is better). "
                 "Categories every model misses need better labels or more examples.")
    s.html("<h3>All runs</h3>")
    s.html(html_table(lb, {c: h for c, h in LEADERBOARD_COLUMNS.items() if c in lb.columns}))
    skipped = m.get("skipped") or {}
    if skipped:
        s.html("<h3>Skipped</h3><ul>" + "".join(
            f"<li><code>{html.escape(str(k))}</code>: {html.escape(str(v))}</li>"
            for k, v in sorted(skipped.items())) + "</ul>")
    return s


def _slug(text: str) -> str:
    """Text as an HTML-id fragment (lower case, runs of other characters -> "-")."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


SectionBuilder = Callable[[Paths, ReportSettings], Section]
BUILDERS: dict[str, SectionBuilder] = {"overview": overview_section,
                                        "brands": brands_section,
                                        "outcomes": outcomes_section,
                                        "complaints": complaints_section,
                                        "benchmark": benchmark_section}
