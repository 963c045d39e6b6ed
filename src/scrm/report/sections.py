"""The five sections of the report, one builder each: what a stage wrote, laid out for a reader.

Each builder reads only files a stage wrote (named by :class:`scrm.paths.Paths`), turns them into
figures with :mod:`scrm.report.figures` and into tables with :mod:`scrm.report.html`, and adds our
own prose. Nothing shown is typed in here: numbers come from the metrics JSON or from the views of
:mod:`scrm.report.views`. A stage that failed, has not run, had no data or was skipped gets a
visible note saying which and why (:mod:`scrm.report.state`) instead of a crash or empty figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from ..config import ReportSettings
from ..paths import Paths
from . import brands
from . import figures as F
from .detection import detection_blocks
from .html import Section, fmt, html_table, kpis, metrics_details, para
from .leaderboard import fill_benchmark, weak_supervision_html
from .outcome import outcomes_section
from .state import StageState, stage_state
from .views import (brand_order, brand_threads, brand_topic_shares, category_shares,
                    confusion_shares, conversation_points, daily_volume, date_range,
                    latest_openings, need, pool_topics, read_json, topic_names, topic_table)

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
        "rules of a taxonomy, combined by vote; an opening no rule fires on has no label). Two "
        "hand-labelled sets say how far the rules can be trusted: dev, which the rules were "
        "written with in view, and a sealed test set, which they were not. Independently, "
        "BERTopic groups the openings into <em>topics</em> by meaning, with no predefined "
        "category: where topics and categories agree, the taxonomy captures something real; a "
        "large topic that no category covers is a candidate for a new category."))
    sealed = (cm.get("sealed_test") or {}).get("majority_vote") or {}
    s.html(kpis([("openings", cm.get("openings")), ("labelled by the rules", cm.get("coverage"), "pct"),
                 ("rules disagree", cm.get("conflict_rate"), "pct"),
                 ("sealed test: rules' macro-F1", sealed.get("macro_f1_abstain_as_other")),
                 ("sealed test: accuracy (labelled)", sealed.get("accuracy_covered"), "pct"),
                 ("dev macro-F1 (optimistic)", gold.get("macro_f1_abstain_as_other"))]))
    s.html(metrics_details(paths, "complaints", cm, skip=("gold_confusion", "lfs", "dev",
                                                          "sealed_test")))
    s.html(weak_supervision_html(cm))
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
                                    title="Rules vs people on dev (share of each dev category)"),
                 "Rows: the category a person gave; columns: what the rules said (“(abstain)”: no "
                 "rule fired). A strong diagonal means the rules agree with people.")
    per_class = cm.get("gold_per_class") or {}
    if per_class:
        s.html("<h3>Rule quality per category (dev, optimistic)</h3>")
        s.html(html_table(pl.DataFrame([{"category": k, **v} for k, v in sorted(per_class.items())],
                                       infer_schema_length=None),
                          {"category": "category", "precision": "precision", "recall": "recall",
                           "f1": "F1", "support": "gold openings"}))
    lfs = pl.read_csv(lf_path)
    s.html("<details><summary>Labelling functions: coverage, overlaps, conflicts, precision on dev "
           "(gold_*) and the label model's weight</summary>" + html_table(lfs, pct=[c for c in ("coverage", "overlaps",
                                                                          "conflicts")
                                                             if c in lfs.columns]) + "</details>")
    s.blocks.extend(detection_blocks(paths))

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
    stab, coll = tm.get("stability") or {}, tm.get("collapse") or {}
    s.html(kpis([(k.replace("_", " "), tm.get(k)) for k in
                 ("n_topics", "outlier_share_raw", "diversity", "coherence_npmi") if k in tm]
                + [("largest topic", tm.get("largest_topic_share"), "pct"),
                   ("stability: ARI across seeds", (stab.get("ari") or {}).get("mean")),
                   ("stability: top-word overlap", (stab.get("word_overlap") or {}).get("mean"))]))
    if coll.get("warning"):
        s.html(f'<p class="missing">Topics collapsed: {fmt(coll["warning"])}</p>')
    s.html(para("Coherence is NPMI over all customer openings (1: a topic's top words always "
                "appear together, 0: independently); stability compares fits with different seeds "
                "(adjusted Rand index of the assignments: 1 identical, 0 chance)."))
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


def benchmark_section(paths: Paths, settings: ReportSettings) -> Section:
    """Classifier benchmark: interval leaderboards per protocol (:mod:`.leaderboard`)."""
    s, state = _section("benchmark", paths, "benchmark",
                        [paths.benchmark_csv, paths.metric("benchmark")])
    if not state.ok:
        return s
    return fill_benchmark(s, paths, settings)


SectionBuilder = Callable[[Paths, ReportSettings], Section]
BUILDERS: dict[str, SectionBuilder] = {"overview": overview_section,
                                        "brands": brands_section,
                                        "outcomes": outcomes_section,
                                        "complaints": complaints_section,
                                        "benchmark": benchmark_section}
