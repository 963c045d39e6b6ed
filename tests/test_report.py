"""The HTML report (scrm.report) and the figure builders (scrm.report.figures), without a browser.

Fast tests build the report from the prepared real sample (only the dataset overview has data; every
other section must say its stage has not run) and from hand-made tweets with known answers. The slow
test reads the session's shared `dvc repro` of the sample (conftest ``pipeline_root``, whose input
holds an XSS attempt) and checks that each section renders from the real outputs.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import T0, XSS, XSS_TEXT, make_root, tweet, twitter_date
from scrm import report as R
from scrm.config import Paths, ReportSettings, load_settings
from scrm.data.schema import DATE_FORMAT
from scrm.errors import DataError
from scrm.report import figbase as FB
from scrm.report import figures as F
from scrm.report import html as H
from scrm.report import views as V

SECTION_IDS = [sid for sid, _ in R.SECTIONS]


# --------------------------------------------------------------------------------------------------
# run roots
# --------------------------------------------------------------------------------------------------
def copy_run(src: Paths, dest: Path) -> Paths:
    """A writable copy of a run root (the session's prepared root is read-only for tests)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.root / "params.yaml", dest / "params.yaml")
    for sub in ("data", "reports"):
        if (src.root / sub).exists():
            shutil.copytree(src.root / sub, dest / sub, dirs_exist_ok=True)
    return Paths(dest).ensure()


@pytest.fixture
def overview_root(prepared_root: Paths, tmp_path: Path) -> Paths:
    return copy_run(prepared_root, tmp_path / "run")


# Stages after prepare whose outputs the report reads, in DVC order (metrics file names).
STAGES = ("sentiment", "response_time", "outcome", "complaints", "embed", "topics", "benchmark",
          "detect")


def report_settings(paths: Paths) -> ReportSettings:
    """The report section of a run root's params.yaml."""
    return load_settings(paths.root).report


# --------------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------------
def test_page_has_every_section_a_toc_and_plotly_once(overview_root: Paths) -> None:
    index = R.run(overview_root, report_settings(overview_root))
    page = index.read_text(encoding="utf-8")
    report = R.build(overview_root, report_settings(overview_root))
    toc = re.search(r'<nav id="toc">(.*?)</nav>', page, re.S)
    assert toc, "no table of contents"
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page, sid
        assert f'href="#{sid}"' in toc.group(1), sid
    assert page.count("plotly.js v") == 1, "plotly.js must be embedded exactly once"
    assert "<script src" not in page, "the page must not load scripts from anywhere"
    assert page.count("<script") == 1 + len(report.figures)
    assert page.count("Plotly.newPlot(") == len(report.figures) >= 3
    # only prepare has run: every other section says so instead of crashing
    for sid in ("brands", "outcomes", "complaints", "benchmark"):
        sec = next(s for s in report.sections if s.id == sid)
        assert sec.missing and "has not run" in sec.missing[0] and not sec.figures, sid


def test_overview_numbers_come_from_the_outputs(overview_root: Paths,
                                                sample_rows: list[dict[str, str]]) -> None:
    page = R.render(R.build(overview_root, report_settings(overview_root)))
    prep = json.loads(overview_root.metric("prepare").read_text())
    cards = dict((k, v) for v, k in re.findall(
        r'<span class="v">([^<]*)</span><span class="k">([^<]*)</span>', page))
    assert cards["tweets"] == f"{prep['tweets']:,}"
    assert cards["brands"] == str(prep["brands"])
    assert cards["conversations"] == f"{prep['threads']:,}"
    assert cards["answered openings"] == f"{prep['answered_openings']:,}"
    # date range, independently from the raw sample rows
    stamps = [datetime.strptime(r["created_at"], DATE_FORMAT) for r in sample_rows]
    assert cards["first tweet"] == min(stamps).strftime("%Y-%m-%d %H:%M UTC")
    assert cards["last tweet"] == max(stamps).strftime("%Y-%m-%d %H:%M UTC")
    assert prep["tweets"] == len(sample_rows)


def test_daily_volume_matches_an_independent_count(prepared_root: Paths,
                                                   sample_rows: list[dict[str, str]]) -> None:
    daily = V.daily_volume(pl.scan_parquet(prepared_root.tweets))
    expected = Counter((datetime.strptime(r["created_at"], DATE_FORMAT).date().isoformat(),
                        "customer" if r["inbound"] == "True" else "brand") for r in sample_rows)
    got = {(d.isoformat(), role): n for d, role, n in daily.iter_rows()}
    assert got == dict(expected)
    fig = F.volume_over_time(daily)
    assert sum(sum(t.y) for t in fig.data) == len(sample_rows)


def test_brand_view_on_hand_made_threads(tiny_root) -> None:
    paths = tiny_root([
        tweet(1, "101", 0, "@AcmeHelp my order is late"),               # answered directly
        tweet(2, "AcmeHelp", 5, "@101 sorry, DM us", parent=1),
        tweet(3, "102", 10, "@AcmeHelp hello?"),                        # brand answers a follow-up
        tweet(4, "102", 20, "@AcmeHelp anyone there?", parent=3),
        tweet(5, "AcmeHelp", 30, "@102 here now", parent=4),
        tweet(6, "103", 40, "@OtherCo nobody answers me"),              # no brand: no row
    ])
    threads, openings = pl.read_parquet(paths.threads), pl.read_parquet(paths.openings)
    # answered as the opening table says: the reply to the follow-up counts unless only direct
    # replies to the opening do
    definition = load_settings(paths.root).openings.answered_definition
    answered = {"direct": 1, "customer": 2, "thread": 2}[definition]
    got = V.brand_threads(threads, openings).to_dicts()
    assert got == [{"brand": "AcmeHelp", "threads": 2, "openings": 2, "answered_openings": answered,
                    "answered_share": answered / 2}]
    latest = V.latest_openings(openings, threads, 2)
    assert latest["opening_text"].to_list() == ["@OtherCo nobody answers me", "@AcmeHelp hello?"]


def test_tweet_text_is_escaped_in_tables_and_hover(tiny_root) -> None:
    paths = tiny_root([tweet(1, "101", 0, XSS_TEXT), tweet(2, "AppleSupport", 3, "@101 hi", 1)])
    report = R.build(paths, report_settings(paths))
    page = R.render(report)
    assert XSS not in page and "<img src=x" not in page
    assert html.escape(XSS, quote=True) in page  # the table cell, as text
    scatter = next(f.figure for f in report.figures if f.id == "fig-conversations")
    hover = " ".join(h for t in scatter.data for h in (t.hovertext or ()))
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in hover
    assert "<script" not in hover and "<img" not in hover
    # the figure JSON embedded in the page carries no raw tag either
    assert not re.search(r"<(script|img)[^>]*pwned", page)


def test_missing_stages_give_notes_not_crashes(tmp_path: Path) -> None:
    paths = make_root(tmp_path)
    index = R.run(paths, report_settings(paths))
    page = index.read_text(encoding="utf-8")
    assert page.count("has not run") == len(SECTION_IDS)
    assert "scrm prepare" in page and "scrm response-time" in page
    assert "Plotly.newPlot(" not in page


def test_corrupt_metrics_file_is_a_clear_error(overview_root: Paths) -> None:
    bad = overview_root.metric("prepare")
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"prepare\.json.*not valid JSON"):
        R.build(overview_root, report_settings(overview_root))


def test_render_is_deterministic(overview_root: Paths) -> None:
    settings = report_settings(overview_root)
    assert R.render(R.build(overview_root, settings)) == R.render(R.build(overview_root, settings))


def test_standalone_figures_open_offline(overview_root: Paths) -> None:
    settings = report_settings(overview_root)
    R.run(overview_root, settings)
    folder = overview_root.report_figures
    ids = {f.id for f in R.build(overview_root, settings).figures}
    assert {p.stem for p in folder.glob("*.html")} == ids
    assert (folder / "plotly.min.js").read_text(encoding="utf-8").count("plotly.js v") == 1
    for p in folder.glob("*.html"):
        text = p.read_text(encoding="utf-8")
        assert '<script charset="utf-8" src="plotly.min.js">' in text, p.name
        assert "cdn.plot.ly" not in text, p.name
    # a stale figure from an earlier run is removed
    (folder / "fig-gone.html").write_text("old", encoding="utf-8")
    R.run(overview_root, settings)
    assert not (folder / "fig-gone.html").exists()


def test_overview_figures_have_data(overview_root: Paths) -> None:
    report = R.build(overview_root, report_settings(overview_root))
    ids = [f.id for f in report.figures]
    assert ids == ["fig-volume", "fig-brand-volume", "fig-conversations"]
    for f in report.figures:
        assert f.figure.data and all(len(t.x) > 0 for t in f.figure.data), f.id
    brand_fig = report.figures[1].figure
    assert len(brand_fig.data[0].y) == report_settings(overview_root).top_brands


# --------------------------------------------------------------------------------------------------
# figure builders and helpers (known answers)
# --------------------------------------------------------------------------------------------------
def test_escape_expr_escapes_like_html_and_wraps() -> None:
    texts = [XSS, "a & b \"c\" 'd' &amp;", None]
    got = pl.DataFrame({"t": texts}).select(FB.escape_expr("t", max_chars=None, wrap=None))["t"]
    assert got.to_list() == [FB.escape_text(t) for t in texts]
    assert got[1] == "a &amp; b &#34;c&#34; &#39;d&#39; &amp;amp;"
    for raw, esc in zip(texts[:2], got.to_list()[:2]):
        assert html.unescape(esc) == raw and not re.search(r"[<>\"']", esc)
    wrapped = pl.DataFrame({"t": ["word " * 40]}).select(FB.escape_expr("t", wrap=30))["t"][0]
    lines = wrapped.split("<br>")
    assert len(lines) > 3 and all(len(x) <= 36 for x in lines)
    cut = pl.DataFrame({"t": ["x" * 400]}).select(FB.escape_expr("t", max_chars=280))["t"][0]
    assert cut == "x" * 280 + "…"


def test_html_table_escapes_every_cell_and_header() -> None:
    df = pl.DataFrame({"<b>h</b>": ["<i>x</i>"], "n": [1234567], "share": [0.25]})
    out = H.html_table(df, pct=["share"])
    assert "<b>h</b>" not in out and "&lt;b&gt;h&lt;/b&gt;" in out
    assert "&lt;i&gt;x&lt;/i&gt;" in out and "1,234,567" in out and "25.0%" in out


def test_focus_range_holds_the_central_mass() -> None:
    days = [T0.date() - timedelta(days=2000)] + [T0.date() + timedelta(days=i) for i in range(10)]
    lo, hi = FB.focus_range(days, [1] + [100] * 10, share=0.99)
    assert lo == T0.date() - timedelta(days=1) and hi == T0.date() + timedelta(days=10)


def test_label_shares_orders_groups_and_labels() -> None:
    shares = pl.DataFrame({"brand": ["A", "A", "B", "B"], "label": ["recovered", "unanswered"] * 2,
                           "share": [0.25, 0.75, 1.0, 0.0], "n": [1, 3, 2, 0]})
    fig = F.label_shares(shares, group_order=["B", "A"], colors=F.OUTCOME_COLORS, n_col="n")
    assert [t.name for t in fig.data] == ["recovered", "unanswered"]
    assert list(fig.data[0].y) == ["A", "B"]  # bottom to top: B is drawn on top
    assert list(fig.data[0].x) == [0.25, 1.0] and list(fig.data[1].customdata) == [3, 0]


def test_sankey_links_sources_to_targets() -> None:
    tr = V.transitions_from_matrix({"negative": {"positive": 3, "negative": 0},
                                    "neutral": {"no_follow_up": 5}})
    fig = F.sentiment_sankey(tr)
    node = list(fig.data[0].node.label)
    link = fig.data[0].link
    pairs = {(node[s], node[t]): v for s, t, v in zip(link.source, link.target, link.value)}
    assert pairs == {("negative (start)", "positive (end)"): 3,
                     ("neutral (start)", "no_follow_up (end)"): 5}


def test_leaderboard_puts_the_best_system_on_top_with_its_interval() -> None:
    lb = pl.DataFrame({"system": ["dummy", "logreg", "rules"], "macro_f1": [0.1, 0.6, 0.8],
                       "macro_f1_low": [0.05, 0.5, 0.7], "macro_f1_high": [0.15, 0.7, 0.9],
                       "indistinguishable_from_best": [False, True, True]})
    (trace,) = F.leaderboard(lb).data
    assert list(trace.y) == ["dummy", "logreg", "rules"]      # ascending: the best is on top
    assert list(trace.marker.symbol) == ["circle-open", "circle", "circle"]
    assert list(trace.error_x.array) == pytest.approx([0.05, 0.1, 0.1])
    assert list(trace.error_x.arrayminus) == pytest.approx([0.05, 0.1, 0.1])


def test_km_curves_highlight_pool_and_drop_zero_on_log_axis() -> None:
    km = pl.DataFrame({"brand": ["(all)"] * 3 + ["B"] * 3, "minutes": [0.0, 1.0, 10.0] * 2,
                       "still_waiting": [1.0, 0.5, 0.2, 1.0, 0.9, 0.1]})
    fig = F.km_curves(km)
    assert [t.name for t in fig.data] == ["(all)", "B"]
    assert fig.data[0].line.width > fig.data[1].line.width
    assert list(fig.data[1].x) == [1.0, 10.0] and fig.layout.xaxis.type == "log"


def test_category_heatmap_cells() -> None:
    cats = V.category_shares(pl.DataFrame({"brand": ["A", "A", "A", "B"],
                                           "label": ["x", "x", None, "y"]}))
    assert cats.sort(["brand", "label"]).to_dicts() == [
        {"brand": "A", "label": "(no label)", "n": 1, "share": 1 / 3},
        {"brand": "A", "label": "x", "n": 2, "share": 2 / 3},
        {"brand": "B", "label": "y", "n": 1, "share": 1.0}]
    fig = F.category_heatmap(cats)
    hm = fig.data[0]
    assert list(hm.x) == ["(no label)", "x", "y"] and list(hm.y) == ["B", "A"]
    assert [list(r) for r in hm.z] == [[0.0, 0.0, 1.0], [1 / 3, 2 / 3, 0.0]]


def test_per_class_f1_reads_the_leaderboard_columns() -> None:
    lb = pl.DataFrame({"protocol": ["gold_cv", "gold_cv", "weak_on_weak"], "variant": ["time"] * 3,
                       "system": ["a", "b", "a"], "f1.billing": [0.5, None, 0.9],
                       "f1.login": [0.25, 1.0, 0.1]})
    got = V.per_class_f1(lb, "gold_cv", "time").sort(["system", "class"]).rows()
    assert got == [("a", "billing", 0.5), ("a", "login", 0.25), ("b", "login", 1.0)]
    assert V.per_class_f1(lb.drop("f1.billing", "f1.login"), "gold_cv", "time").is_empty()


def test_labeller_scores_read_both_sets_with_intervals() -> None:
    rec = {"coverage": 0.6, "coverage_ci": [0.5, 0.7], "accuracy_covered": 0.7,
           "accuracy_covered_ci": [0.6, 0.8], "macro_f1": 0.5, "macro_f1_ci": [0.4, 0.6],
           "macro_f1_abstain_as_other": 0.55, "macro_f1_abstain_as_other_ci": [0.45, 0.65]}
    m = {"sealed_test": {"n": 420, "majority_vote": rec, "label_model": rec},
         "dev": {"n": 450, "majority_vote": rec}}
    got = V.labeller_scores(m)
    assert got.select("set", "labeller", "n").rows() == [
        ("sealed test", "rules (majority vote)", 420), ("sealed test", "label model (Snorkel)", 420),
        ("dev (optimistic)", "rules (majority vote)", 450)]
    assert got.row(0, named=True)["macro_f1_low"] == 0.4
    assert V.labeller_scores({}).is_empty()


def test_builders_name_missing_columns() -> None:
    with pytest.raises(ValueError, match="brand_volume: missing column.*threads"):
        F.brand_volume(pl.DataFrame({"brand": ["a"]}))


def test_empty_inputs_give_a_labelled_empty_figure() -> None:
    fig = F.volume_over_time(pl.DataFrame(schema={"date": pl.Date, "role": pl.String,
                                                  "tweets": pl.Int64}))
    assert fig.data[0].mode == "text" and fig.data[0].text == ("no tweets",)


def n_points(trace: Any) -> int:
    """How many data points a trace draws, whatever its type."""
    if trace.type == "sankey":
        return len(trace.link.value or ())
    if trace.type == "heatmap":
        return sum(len(r) for r in (trace.z or ()))
    return max(len(trace.x or ()), len(trace.y or ()))


# --------------------------------------------------------------------------------------------------
# every section from real stage outputs
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_section_renders_from_the_stage_outputs(pipeline_root: Paths) -> None:
    """Every stage ran (the shared `dvc repro`): each section renders from its outputs, none says a
    stage is missing, every figure has points, the injected tweet is text."""
    report_root = pipeline_root
    missing = [s for s in STAGES if not report_root.metric(s).exists()]
    assert not missing, f"the shared run wrote no metrics for {missing}"
    report = R.build(report_root, report_settings(report_root))
    built = {s.id: s for s in report.sections}
    for sid in ("brands", "outcomes", "complaints", "benchmark"):
        assert not built[sid].missing, (sid, built[sid].missing)
    for f in report.figures:
        assert f.figure.data and any(n_points(t) > 0 for t in f.figure.data), f.id
    page = R.render(report)
    assert XSS not in page and html.escape(XSS, quote=True) in page
    dvc_page = report_root.report_html.read_text(encoding="utf-8")  # what `dvc repro` wrote
    assert XSS not in dvc_page and html.escape(XSS, quote=True) in dvc_page
    rt = json.loads(report_root.metric("response_time").read_text())
    cards = dict((k, v) for v, k in re.findall(
        r'<span class="v">([^<]*)</span><span class="k">([^<]*)</span>', page))
    ov = rt["overall"]
    assert cards["answered share"] == (f"{ov['answered_share']:.1%} ("
                                       f"{100 * ov['answered_share_ci_low']:.1f}–"
                                       f"{100 * ov['answered_share_ci_high']:.1f})")
    bm = json.loads(report_root.metric("benchmark").read_text())
    ids = {f.id for f in report.figures}
    for key in bm["sections"]:
        assert f"fig-leaderboard-{re.sub(r'[^a-z0-9]+', '-', key)}" in ids, key
    sealed = bm["sections"]["weak_to_gold/sealed_test"]["systems"]["rules (majority vote)"]
    assert f"{sealed['macro_f1']:.3f}" in page


@pytest.mark.slow
def test_console_gives_each_duration_in_one_unit(pipeline_root: Paths) -> None:
    """Durations the stages print are minutes (``*_min``, ``mae_minutes``), never seconds or hours
    beside them, and they are the metrics' own numbers."""
    from conftest import PIPELINE_CONSOLE

    text = PIPELINE_CONSOLE["repro"]
    keys = set(re.findall(r'"?([a-z_0-9]+)"?:', text))
    timed = {k for k in keys if re.search(r"(latency|median|rmst|silence|time|wait)", k)
             and re.search(r"_(s|sec|seconds|h|hours|min|minutes)$", k)}
    assert timed, "no duration in the console output: the check would pass vacuously"
    assert {k for k in timed if not k.endswith(("_min", "_minutes"))} == set(), timed
    overall = json.loads(pipeline_root.metric("response_time").read_text())["overall"]
    for key in ("km_median_min", "median_latency_min"):
        assert f"{key}: {overall[key]}" in text, key
