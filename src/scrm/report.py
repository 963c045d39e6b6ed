"""DVC stage ``report``: assemble ``reports/index.html`` from the pipeline's outputs.

The page is one self-contained HTML file: plotly.js is embedded once, inline, so it opens offline from
disk (no CDN). It has a table of contents and one section per research question; each section reads only
files a stage wrote (metrics JSON, parquet, CSV) and turns them into figures with :mod:`scrm.figures` and
into tables. Nothing shown is typed in here: the small views below (per-day counts, per-brand shares)
are group-bys of those files. A stage whose outputs are missing gets a visible "has not run" note
instead of a crash, so the report can be built from a partial run while developing.

Every piece of text that comes from the data is HTML-escaped: table cells with :func:`html.escape`,
plot labels and hover text inside the figure builders.

Each figure is also written as a standalone HTML file under ``reports/figures/report/`` next to one
shared ``plotly.min.js`` (again no CDN). No PNGs: plotly's static export needs kaleido, which is not
part of this environment (kaleido 1.x would drive a browser; we add no such dependency).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from . import figures as F
from . import io as sio
from .config import Paths, section
from .errors import DataError

STANDALONE_DIR = "report"  # reports/figures/report/: one HTML per figure + plotly.min.js

# (section id, title): the order of the page and of its table of contents
SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Dataset overview"),
    ("brands", "Brand comparison: who answers, and how fast"),
    ("outcomes", "Conversation outcomes"),
    ("complaints", "Complaint categories and topics"),
    ("benchmark", "Classifier leaderboard"),
)


# --------------------------------------------------------------------------------------------------
# the report as data (built first, rendered second, so tests can inspect what was built)
# --------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    id: str
    figure: go.Figure
    caption: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list[str | Figure] = field(default_factory=list)  # HTML fragments and figures, in order
    missing: list[str] = field(default_factory=list)  # notes about stages that have not run

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]

    def html(self, text: str) -> None:
        self.blocks.append(text)

    def figure(self, fid: str, fig: go.Figure, caption: str = "") -> None:
        self.blocks.append(Figure(fid, fig, caption))


@dataclass
class Report:
    title: str
    sections: list[Section]
    subtitle: str = ""

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


# --------------------------------------------------------------------------------------------------
# reading stage outputs
# --------------------------------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg}); rerun the stage that writes it.", path,
                        exc.lineno) from None


def read_table(path: Path) -> pl.DataFrame:
    """A parquet or CSV output of a stage."""
    if path.suffix == ".csv":
        return pl.read_csv(path, try_parse_dates=True)
    return pl.read_parquet(path)


def missing_note(stage: str, files: Sequence[Path], root: Path) -> str | None:
    """``None`` when every file exists, else the note shown in place of the section."""
    gone = [f for f in files if not f.exists()]
    if not gone:
        return None
    rel = ", ".join(_rel(f, root) for f in gone)
    return (f"Stage <code>{html.escape(stage)}</code> has not run: missing {html.escape(rel)}. "
            f"Run <code>dvc repro</code> (or <code>scrm {html.escape(stage.replace('_', '-'))}"
            "</code>) and rebuild the report.")


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------------------
# views: group-bys of stage outputs (shared with the notebooks)
# --------------------------------------------------------------------------------------------------
def daily_volume(tweets: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Tweets per UTC day and role (columns: date, role, tweets)."""
    return (tweets.lazy().group_by(date=pl.col("created_at").dt.date(), role=pl.col("role"))
            .agg(tweets=pl.len()).sort(["date", "role"]).collect())


def brand_threads(threads: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Conversations and customer openings per replying brand (columns: brand, threads, openings,
    answered_openings, answered_share)."""
    return (threads.lazy().filter(pl.col("brand").is_not_null()).group_by("brand")
            .agg(threads=pl.len(), openings=pl.col("is_opening").sum(),
                 answered_openings=pl.col("opening_answered").sum())
            .with_columns(answered_share=pl.when(pl.col("openings") > 0)
                          .then(pl.col("answered_openings") / pl.col("openings")))
            .sort(["threads", "brand"], descending=[True, False]).collect())


def conversation_points(threads: pl.DataFrame | pl.LazyFrame, max_points: int,
                        seed: int) -> pl.DataFrame:
    """Openings for the conversation scatter, a seeded sample when there are more than
    ``max_points`` (a browser draws a few thousand points, not 800k)."""
    df = (threads.lazy().filter(pl.col("is_opening"))
          .select("thread_id", "opening_at", "n_tweets", "brand",
                  answered=pl.col("opening_answered"), opening_text=pl.col("opening_text"))
          .collect())
    if df.height > max_points:
        df = df.sample(n=max_points, seed=seed)
    return df.sort("thread_id")


def latest_openings(threads: pl.DataFrame | pl.LazyFrame, n: int) -> pl.DataFrame:
    """The ``n`` most recent customer openings: what customers actually write."""
    return (threads.lazy().filter(pl.col("is_opening"))
            .sort(["opening_at", "thread_id"], descending=[True, True]).head(n)
            .select("opening_at", "brand", "n_tweets", "opening_answered", "opening_text")
            .collect())


def thread_length_counts(threads: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Conversations per length in tweets (columns: n_tweets, threads)."""
    return (threads.lazy().group_by("n_tweets").agg(threads=pl.len()).sort("n_tweets").collect())


def conversation(tweets: pl.DataFrame | pl.LazyFrame, thread_id: int) -> pl.DataFrame:
    """The tweets of one thread in turn order (who said what, when)."""
    return (tweets.lazy().filter(pl.col("thread_id") == thread_id)
            .select("turn", "depth", "created_at", "role", "author_id", "tweet_id", "parent_id",
                    "text").sort("turn").collect())


def label_share_table(labels_by_brand: dict[str, dict[str, int]],
                      overall: dict[str, int] | None = None, top: int | None = None,
                      overall_name: str = "(all brands)") -> tuple[pl.DataFrame, list[str]]:
    """Per-brand label counts (a stage's JSON) as long shares, plus the brand order (largest first,
    the overall row on top). Shares are count / brand total: a normalisation for the plot."""
    rows = [(b, lab, int(n)) for b, d in labels_by_brand.items() for lab, n in d.items()]
    if overall:
        rows += [(overall_name, lab, int(n)) for lab, n in overall.items()]
    if not rows:
        return pl.DataFrame(schema={"brand": pl.String, "label": pl.String, "n": pl.Int64,
                                    "share": pl.Float64}), []
    df = pl.DataFrame(rows, schema={"brand": pl.String, "label": pl.String, "n": pl.Int64},
                      orient="row")
    totals = (df.filter(pl.col("brand") != overall_name).group_by("brand").agg(t=pl.col("n").sum())
              .sort(["t", "brand"], descending=[True, False]))
    order = ([overall_name] if overall else []) + totals["brand"].head(top).to_list()
    df = (df.filter(pl.col("brand").is_in(order))
          .with_columns(share=pl.col("n") / pl.col("n").sum().over("brand"))
          .with_columns(pl.col("share").fill_nan(0.0)))
    return df, order


def transitions_from_matrix(matrix: dict[str, dict[str, int]]) -> pl.DataFrame:
    """``{source: {target: n}}`` (as a stage's metrics JSON holds it) -> edge list for a sankey."""
    rows = [(s, t, int(n)) for s, d in matrix.items() for t, n in d.items()]
    return pl.DataFrame(rows, schema={"source": pl.String, "target": pl.String,
                                      "threads": pl.Int64}, orient="row")


def category_shares(frame: pl.DataFrame | pl.LazyFrame, label_col: str = "label",
                    group_col: str = "brand", top: int | None = None,
                    unlabelled: str = "(no label)") -> pl.DataFrame:
    """Share of each category among a group's rows (columns: brand, label, n, share), for the
    ``top`` largest groups; rows without a label count as ``unlabelled``."""
    lf = frame.lazy().filter(pl.col(group_col).is_not_null()).with_columns(
        pl.col(label_col).cast(pl.String).fill_null(unlabelled))
    counts = lf.group_by(group_col, label_col).agg(n=pl.len())
    keep = (lf.group_by(group_col).agg(t=pl.len())
            .sort(["t", group_col], descending=[True, False]).head(top or 10**9)
            .select(group_col))
    return (counts.join(keep, on=group_col, how="semi")
            .with_columns(share=pl.col("n") / pl.col("n").sum().over(group_col))
            .sort([group_col, label_col]).collect())


def topic_names(info: pl.DataFrame) -> pl.DataFrame:
    """(topic, topic_name) from a topic_info table, whatever its naming column is called."""
    name_col = next((c for c in ("name", "Name", "label", "topic_name", "representation")
                     if c in info.columns), None)
    id_col = "topic" if "topic" in info.columns else "Topic"
    if name_col is None:
        return info.select(pl.col(id_col).alias("topic"),
                           topic_name=pl.col(id_col).cast(pl.String))
    name = pl.col(name_col)
    if info.schema[name_col] == pl.List(pl.String):
        name = name.list.head(4).list.join(", ")
    return info.select(pl.col(id_col).alias("topic"), topic_name=name.cast(pl.String))


def seconds_to_minutes(df: pl.DataFrame) -> pl.DataFrame:
    """Every ``*_latency_s`` column also as ``*_latency_min`` (a unit change for reading)."""
    return df.with_columns([(pl.col(c) / 60.0).alias(c[:-2] + "_min")
                            for c in df.columns if c.endswith("_latency_s")])


def top_by(df: pl.DataFrame, col: str, n: int, key: str = "brand") -> pl.DataFrame:
    """The ``n`` rows with the largest ``col`` (ties by ``key``), in that order."""
    return df.sort([col, key], descending=[True, False]).head(n)


def latency_boxes(lat: pl.DataFrame, brands: Sequence[str] | None = None) -> pl.DataFrame:
    """The response-time stage's latency quantiles (minutes) as box inputs: the box spans the
    25th-75th percentile, the whiskers the 10th-90th."""
    if brands is not None:
        lat = lat.filter(pl.col("brand").is_in(list(brands)))
    return lat.select("brand", q1="p25_min", median="median_min", q3="p75_min", lower="p10_min",
                      upper="p90_min")


def brand_order(frame: pl.DataFrame | pl.LazyFrame, top: int) -> list[str]:
    """The ``top`` brands with most rows (openings), largest first."""
    counts = (frame.lazy().filter(pl.col("brand").is_not_null()).group_by("brand")
              .agg(n=pl.len()).collect())
    return top_by(counts, "n", top)["brand"].to_list()


def outcome_models(metrics: dict[str, Any]) -> pl.DataFrame:
    """Out-of-fold AUCs of the outcome models (from outcome.json)."""
    models = (metrics.get("model") or {}).get("models") or {}
    return pl.DataFrame(
        [{"model": k, **{c: v.get(c) for c in ("oof_auc", "fold_auc_mean", "fold_auc_sd",
                                               "folds_scored")}} for k, v in models.items()],
        schema={"model": pl.String, "oof_auc": pl.Float64, "fold_auc_mean": pl.Float64,
                "fold_auc_sd": pl.Float64, "folds_scored": pl.Int64})


def odds_ratio_table(metrics: dict[str, Any]) -> pl.DataFrame:
    """Odds ratios with bootstrap intervals (from outcome.json), one row per predictor."""
    ors = (metrics.get("odds_ratios") or {}).get("odds_ratios") or {}
    return pl.DataFrame([{"predictor": k, **v} for k, v in ors.items()],
                        infer_schema_length=None) if ors else pl.DataFrame()


def per_class_f1(leaderboard: pl.DataFrame, labels: str, split: str) -> pl.DataFrame:
    """Per-category F1 of every model for one label source and split (long: model, class, f1),
    from the benchmark's ``f1.<class>`` columns."""
    cols = [c for c in leaderboard.columns if c.startswith("f1.")]
    if not cols or not {"labels", "split", "model"} <= set(leaderboard.columns):
        return pl.DataFrame(schema={"model": pl.String, "class": pl.String, "f1": pl.Float64})
    part = leaderboard.filter((pl.col("labels") == labels) & (pl.col("split") == split))
    return (part.select("model", *cols).unpivot(index="model", variable_name="class",
                                                value_name="f1")
            .with_columns(pl.col("class").str.strip_prefix("f1.")).drop_nulls("f1"))


def importance_table(importance: dict[str, Any]) -> pl.DataFrame:
    """``{task: {feature: {mean, std}}}`` (a stage's JSON) -> long (task, feature, mean, std)."""
    rows = [(t, f, v.get("mean"), v.get("std")) for t, feats in importance.items()
            if isinstance(feats, dict) for f, v in feats.items() if isinstance(v, dict)]
    return pl.DataFrame(rows, schema={"task": pl.String, "feature": pl.String,
                                      "mean": pl.Float64, "std": pl.Float64}, orient="row")


def model_table(models: dict[str, Any]) -> pl.DataFrame:
    """``{task: {model: {metric: value}}}`` -> one row per (task, model), scalar metrics only."""
    rows = []
    for task, by_model in models.items():
        if not isinstance(by_model, dict):
            continue
        if "status" in by_model:  # a task with a single model (e.g. cox)
            by_model = {task: by_model}
        for name, met in by_model.items():
            if isinstance(met, dict):
                rows.append({"task": task, "model": name,
                             **{k: v for k, v in met.items()
                                if isinstance(v, (int, float, str)) and k != "reason"}})
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def date_range(tweets: pl.DataFrame | pl.LazyFrame) -> tuple[Any, Any]:
    row = tweets.lazy().select(lo=pl.col("created_at").min(), hi=pl.col("created_at").max()).collect()
    return row["lo"][0], row["hi"][0]


# --------------------------------------------------------------------------------------------------
# HTML helpers (every value escaped)
# --------------------------------------------------------------------------------------------------
def display(v: Any) -> str:
    """One value as display text (not escaped): thousands separators, 3 decimals, ISO dates."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:,.3f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M UTC" if v.tzinfo else "%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def fmt(v: Any) -> str:
    """:func:`display`, HTML-escaped: the only way a data value enters the page outside plotly."""
    return html.escape(display(v), quote=True)


def percent(v: Any) -> str:
    """A share in [0, 1] as escaped percent text ("–" when missing)."""
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return html.escape(f"{float(v):.1%}")


def html_table(df: pl.DataFrame, headers: dict[str, str] | None = None, css: str = "",
               max_rows: int | None = None, pct: Sequence[str] = ()) -> str:
    """A plain HTML table of a frame; every header and cell is escaped (:func:`fmt`), columns named
    in ``pct`` are shares shown as percentages."""
    cols = list(headers) if headers else df.columns
    names = [(headers or {}).get(c, c) for c in cols]
    rows = df.select(cols).head(max_rows) if max_rows else df.select(cols)
    as_pct = [c in set(pct) for c in cols]
    head = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    body = "\n".join("<tr>" + "".join(
        f'<td class="{_cell_class(v)}">{percent(v) if p else fmt(v)}</td>'
        for v, p in zip(r, as_pct)) + "</tr>" for r in rows.iter_rows())
    more = ""
    if max_rows and df.height > max_rows:
        more = f'<p class="note">Showing {max_rows:,} of {df.height:,} rows.</p>'
    return (f'<div class="table-wrap"><table class="{html.escape(css)}"><thead><tr>{head}</tr>'
            f"</thead><tbody>\n{body}\n</tbody></table></div>{more}")


def _cell_class(v: Any) -> str:
    return "num" if isinstance(v, (int, float)) and not isinstance(v, bool) else "txt"


def kpis(items: Sequence[tuple[str, Any] | tuple[str, Any, str]]) -> str:
    """Headline cards; a third element ``"pct"`` shows a share as a percentage, ``"1f"`` one
    decimal."""
    cards = []
    for item in items:
        k, v = item[0], item[1]
        kind = item[2] if len(item) > 2 else ""
        text = (percent(v) if kind == "pct" else
                html.escape(f"{float(v):,.1f}") if kind == "1f" and v is not None else fmt(v))
        cards.append(f'<div class="kpi"><span class="v">{text}</span>'
                     f'<span class="k">{html.escape(k)}</span></div>')
    return f'<div class="kpis">{"".join(cards)}</div>'


def para(text: str) -> str:
    """A paragraph of *our own* prose (may hold markup); never pass data through here."""
    return f"<p>{text}</p>"


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------
def overview_section(paths: Paths, sec: dict[str, Any]) -> Section:
    s = Section("overview", dict(SECTIONS)["overview"])
    prep_json = paths.metrics / "prepare.json"
    note = missing_note("prepare", [paths.tweets, paths.threads, prep_json], paths.root)
    if note:
        s.missing.append(note)
        return s
    m = read_json(prep_json)
    tweets = pl.scan_parquet(paths.tweets).select("created_at", "role")
    threads = pl.read_parquet(paths.threads)
    lo, hi = date_range(tweets)
    s.html(para(
        "The raw file <code>twcs.csv</code> is parsed, validated and threaded by <code>scrm prepare"
        "</code>. A <em>conversation</em> (thread) is everything hanging off one root tweet; an "
        "<em>opening</em> is a customer tweet that starts a conversation; it is <em>answered</em> when "
        "a brand replies to it directly."))
    s.html(kpis([("tweets", m.get("tweets")), ("brands", m.get("brands")),
                 ("customers", m.get("customers")), ("conversations", m.get("threads")),
                 ("openings", m.get("openings")), ("answered openings", m.get("answered_openings")),
                 ("rows quarantined", m.get("rows_quarantined")),
                 ("first tweet", lo), ("last tweet", hi)]))
    s.figure("fig-volume", F.volume_over_time(daily_volume(tweets)),
             "Each bar is one UTC day, split into customer and brand tweets. The view opens on "
             "the days that hold 99% of the tweets; zoom out (double-click) to see the few older "
             "tweets that customers replied to (first and last tweet above).")
    s.figure("fig-brand-volume", F.brand_volume(brand_threads(threads), top=int(sec["top_brands"])),
             f"The {int(sec['top_brands'])} brands with the most conversations (a conversation counts "
             "for the brand that wrote most of its replies).")
    s.figure("fig-conversations",
             F.conversations_scatter(conversation_points(threads, int(sec["max_points"]),
                                                         int(sec["seed"]))),
             "One dot per customer opening: when it was written and how many tweets the "
             "conversation grew to (log scale). Hover a dot to read the opening tweet. "
             f"At most {int(sec['max_points']):,} openings are drawn (a seeded sample).")
    s.html("<h3>Latest openings</h3>")
    s.html(html_table(latest_openings(threads, int(sec["n_examples"])),
                      {"opening_at": "written", "brand": "brand", "n_tweets": "tweets",
                       "opening_answered": "answered", "opening_text": "opening tweet"},
                      css="examples"))
    return s


def brands_section(paths: Paths, sec: dict[str, Any]) -> Section:
    s = Section("brands", dict(SECTIONS)["brands"])
    js = paths.metrics / "response_time.json"
    table_path = paths.processed / "service_table.parquet"
    lat_path, km_path = paths.plots / "latency_by_brand.csv", paths.plots / "km_curves.csv"
    note = missing_note("response_time", [js, table_path, lat_path, km_path], paths.root)
    if note:
        s.missing.append(note)
        return s
    m = read_json(js)
    top = int(sec["top_brands"])
    ov = m.get("overall") or {}
    s.html(para(
        "Customers expect an answer within the hour. For every customer <em>opening</em> the "
        "<em>latency</em> is the time from the opening to the brand's first direct reply. Openings "
        "that never got a reply are not dropped: they are <em>censored</em> at the end of the "
        "observed data, which is what the Kaplan–Meier curves account for. Shares within a limit "
        "count unanswered openings as not served."))
    sla = sorted((k for k in ov if k.startswith("share_within_")), key=_sla_minutes)
    s.html(kpis([("openings", ov.get("n_openings")),
                 ("answered share", ov.get("answered_share"), "pct"),
                 ("median latency (min)", ov.get("median_latency_min"), "1f"),
                 ("90th percentile (min)", _div(ov.get("p90_latency_s"), 60.0), "1f"),
                 *[(k.replace("share_within_", "answered within "), ov.get(k), "pct")
                   for k in sla],
                 ("unanswered (censored)", ov.get("n_censored"))]))
    s.html(metrics_details("response_time", m, skip=("models", "importance")))
    table = seconds_to_minutes(pl.read_parquet(table_path))
    _need(table, ["brand", "n_openings", "answered_share"], table_path)
    big = top_by(table, "n_openings", top)
    s.figure("fig-answered-share",
             F.answered_share(big, n_col="n_openings",
                              title=f"Share of openings answered, {top} largest brands"),
             "The share of each brand's customer openings that got a direct brand reply "
             "(hover for the number of openings).")
    lat = pl.read_csv(lat_path)
    _need(lat, ["brand", "p10_min", "p25_min", "median_min", "p75_min", "p90_min"], lat_path)
    keep = big["brand"].to_list()
    s.figure("fig-latency",
             F.latency_quantiles(latency_boxes(lat, keep if lat.height > top else None),
                                 title="Time to first brand reply (answered openings)"),
             "Box: middle half of the answered openings (25th–75th percentile) with the median; "
             "whiskers: 10th–90th percentile. Log scale: each grid step is ten times longer. "
             "Only brands with enough openings are shown; fastest median on top.")
    km = pl.read_csv(km_path)
    _need(km, ["brand", "minutes", "still_waiting"], km_path)
    s.figure("fig-km", F.km_curves(km),
             "Share of openings still waiting for a first reply after a given time, counting the "
             "unanswered ones (censored at the end of the data). A curve that drops fast and low "
             "belongs to a brand that answers quickly and almost always; the thick black curve "
             "pools all brands. Where a curve flattens, the remaining openings were never answered.")
    lr = m.get("logrank") or {}
    if lr.get("chi2") is not None:
        s.html(para(
            f"Log-rank test that the {len(lr.get('groups') or [])} largest brands share one curve: "
            f"χ² = {fmt(lr.get('chi2'))} with {fmt(lr.get('df'))} degrees of freedom, p "
            f"{p_text(lr.get('p_value'))} ({fmt(lr.get('n'))} openings). A small p means the brands "
            "really differ in how fast they answer."))
    s.html("<h3>Service table</h3>")
    cols = {"brand": "brand", "n_openings": "openings", "n_answered": "answered",
            "answered_share": "answered share", "median_latency_min": "median (min)",
            "p90_latency_min": "90th pct (min)", "km_median_latency_min": "KM median (min)",
            **{k: k.replace("share_within_", "within ") for k in
               sorted((c for c in table.columns if c.startswith("share_within_")),
                      key=_sla_minutes)},
            "n_replies": "brand replies", "later_median_latency_min": "later turns median (min)"}
    s.html(html_table(big, {c: h for c, h in cols.items() if c in big.columns},
                      pct=["answered_share", *[c for c in cols if c.startswith("share_within_")]]))
    models = model_table(m.get("models") or {})
    if models.height:
        s.html("<h3>What drives latency? Models on a time split</h3>")
        s.html(para(
            "Models trained on the earlier openings and tested on later ones: <em>within_1h</em> "
            "classifies whether an opening is answered within the hour (AUC: 0.5 is a coin flip), "
            "<em>log_latency</em> predicts how long the answer takes (MAE in minutes). The "
            "baselines (dummy, per-brand) show how much is just the brand."))
        show = [c for c in ("task", "model", "status", "auc", "average_precision", "brier",
                            "mae_minutes", "median_ae_minutes", "r2_log", "c_index", "n_train",
                            "n_test") if c in models.columns]
        s.html(html_table(models.select(show)))
    coefs = ((m.get("models") or {}).get("cox") or {}).get("coefficients") or {}
    if coefs:
        s.html(para("Cox proportional-hazards model (the event is the brand's reply): a hazard ratio "
                    "above 1 means a faster reply, per standard deviation of the feature."))
        s.html(html_table(pl.DataFrame([{"feature": k, **v} for k, v in sorted(coefs.items())],
                                       infer_schema_length=None),
                          {"feature": "feature", "hazard_ratio": "hazard ratio", "se": "se (log)",
                           "p_value": "p"}))
    imp = importance_table(m.get("importance") or {})
    for task in imp["task"].unique(maintain_order=True).to_list() if imp.height else []:
        s.figure(f"fig-importance-{_slug(task)}",
                 F.importance_bars(imp.filter(pl.col("task") == task),
                                   title=f"What the {task} model relies on (permutation "
                                         "importance)"),
                 "How much the test score drops when one feature's values are shuffled; longer "
                 "bars matter more. Features are known at the time of the opening.")
    return s


def _sla_minutes(key: str) -> float:
    """'share_within_15m' -> 15, '..._1h' -> 60, '..._24h' -> 1440 (for ordering only)."""
    mt = re.search(r"(\d+(?:\.\d+)?)([mhd])$", key)
    if not mt:
        return float("inf")
    return float(mt.group(1)) * {"m": 1, "h": 60, "d": 1440}[mt.group(2)]


def p_text(p: Any) -> str:
    """"= 0.031" or "< 1e-06" (metrics files round to 6 decimals, so 0.0 means below that)."""
    if p is None:
        return "= –"
    return "&lt; 1e-06" if float(p) == 0.0 else f"= {fmt(float(p))}"


def _div(v: Any, d: float) -> float | None:
    return None if v is None else float(v) / d


FINDINGS_COLUMNS = {
    "brand": "scope", "feature": "reply feature", "n_with": "n with", "rate_with": "recovered with",
    "n_without": "n without", "rate_without": "recovered without", "diff": "difference",
    "diff_ci_low": "CI low", "diff_ci_high": "CI high", "verdict": "verdict",
}


def outcomes_section(paths: Paths, sec: dict[str, Any]) -> Section:
    s = Section("outcomes", dict(SECTIONS)["outcomes"])
    js = paths.metrics / "outcome.json"
    findings_path = paths.processed / "outcome_findings.parquet"
    note = missing_note("outcome", [js, findings_path], paths.root)
    if note:
        s.missing.append(note)
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
    s.html(metrics_details("outcome", m, skip=("labels_by_brand", "findings_overall")))
    s.html(kpis([("openings", th.get("openings")), ("answered", th.get("answered")),
                 ("opened negative, answered", th.get("opened_negative_answered")),
                 ("eligible for recovery", th.get("model_population")),
                 ("recovery rate", m.get("recovery_rate"), "pct")]))
    shares, order = label_share_table(m.get("labels_by_brand") or {}, m.get("labels"),
                                      top=int(sec["top_brands"]))
    s.figure("fig-outcome-labels",
             F.label_shares(shares, group_order=order, colors=F.OUTCOME_COLORS, n_col="n"),
             f"Share of each outcome among the openings of the {int(sec['top_brands'])} brands "
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


TOPIC_FILES = ("topic_info.parquet", "topic_share_time.parquet", "topic_share_brand.parquet")


def complaints_section(paths: Paths, sec: dict[str, Any]) -> Section:
    s = Section("complaints", dict(SECTIONS)["complaints"])
    cpath, cjs = paths.processed / "complaints.parquet", paths.metrics / "complaints.json"
    lf_path = paths.processed / "lf_summary.csv"
    note = missing_note("complaints", [cpath, cjs, lf_path], paths.root)
    if note:
        s.missing.append(note)
        return s
    top = int(sec["top_brands"])
    comp = pl.read_parquet(cpath)
    _need(comp, ["tweet_id", "brand", "created_at", "label"], cpath)
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
    s.html(metrics_details("complaints", cm, skip=("gold_confusion", "lfs")))
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

    tjs = paths.metrics / "topics.json"
    tfiles = [paths.processed / f for f in TOPIC_FILES]
    note = missing_note("topics", [*tfiles, tjs], paths.root)
    s.html("<h3>Topics</h3>")
    if note:
        s.missing.append(note)
        s.html(f'<p class="missing">{note}</p>')
        return s
    tm = read_json(tjs)
    info = pl.read_parquet(tfiles[0])
    _need(info, ["topic", "size"], tfiles[0])
    names = topic_names(info)
    s.html(kpis([(k.replace("_", " "), tm.get(k)) for k in
                 ("n_topics", "outlier_share", "diversity", "coherence_npmi") if k in tm]))
    s.html(metrics_details("topics", tm))
    by_time = pl.read_parquet(tfiles[1])
    _need(by_time, ["period", "topic", "n"], tfiles[1])
    s.figure("fig-topics-time",
             F.topics_over_time(pool_topics(by_time, names, "period", int(sec["top_topics"])),
                                n_col="n"),
             f"Openings per period in the {int(sec['top_topics'])} largest topics (named by their "
             "most distinctive words); smaller topics are pooled as “other topics”.")
    by_brand = pl.read_parquet(tfiles[2])
    _need(by_brand, ["brand", "topic", "n"], tfiles[2])
    tb = brand_topic_shares(by_brand, names, order, int(sec["top_topics"]))
    s.figure("fig-topics-brand",
             F.category_heatmap(tb, category_col="topic", group_order=order,
                                title="Topics by brand (share of each brand's openings)"),
             "Like the category heatmap above, but with the data-driven topics.")
    s.figure("fig-topic-sizes",
             F.topic_sizes(topic_table(info, names), name_col="name", n_col="size",
                           docs_col="example", top=int(sec["top_topics"]) * 2),
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


def confusion_shares(confusion: dict[str, dict[str, int]]) -> pl.DataFrame:
    """``{gold: {rules: n}}`` -> (gold, rules, n, share of the gold row)."""
    rows = [(g, r, int(n)) for g, d in confusion.items() for r, n in d.items()]
    df = pl.DataFrame(rows, schema={"gold": pl.String, "rules": pl.String, "n": pl.Int64},
                      orient="row")
    return df.with_columns(share=pl.col("n") / pl.col("n").sum().over("gold"))


def pool_topics(shares: pl.DataFrame, names: pl.DataFrame, by: str, top: int,
                outlier: int = -1) -> pl.DataFrame:
    """Counts per (``by``, topic) with topics named, the ``top`` largest kept and the rest summed
    into "other topics" (outliers, if any, as "outliers")."""
    sizes = (shares.filter(pl.col("topic") != outlier).group_by("topic").agg(t=pl.col("n").sum())
             .sort(["t", "topic"], descending=[True, False]).head(top).select("topic"))
    named = (shares.join(names, on="topic", how="left")
             .join(sizes.with_columns(_top=pl.lit(True)), on="topic", how="left")
             .with_columns(topic=pl.when(pl.col("topic") == outlier).then(pl.lit("outliers"))
                           .when(pl.col("_top")).then(pl.col("topic_name"))
                           .otherwise(pl.lit("other topics"))))
    return named.group_by(by, "topic").agg(n=pl.col("n").sum()).sort([by, "topic"])


def brand_topic_shares(by_brand: pl.DataFrame, names: pl.DataFrame, brands: Sequence[str],
                       top: int) -> pl.DataFrame:
    """Topic shares of the given brands with the ``top`` topics named and the rest pooled."""
    return (pool_topics(by_brand.filter(pl.col("brand").is_in(list(brands))), names, "brand", top)
            .with_columns(share=pl.col("n") / pl.col("n").sum().over("brand")))


def topic_table(info: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """One row per topic for display: name, size, words, majority category, one example."""
    df = info.join(names, on="topic", how="left").with_columns(name=pl.col("topic_name"))
    if "top_words" in df.columns and isinstance(df.schema["top_words"], pl.List):
        df = df.with_columns(words=pl.col("top_words").list.head(8).list.join(", "))
    ex = next((c for c in ("representative_tweets", "representative_docs", "Representative_Docs")
               if c in df.columns), None)
    if ex:
        e = pl.col(ex)
        df = df.with_columns(example=e.list.first() if isinstance(df.schema[ex], pl.List) else e)
    return df.filter(pl.col("topic") != -1).sort(["size", "topic"], descending=[True, False])


def metrics_details(stage: str, metrics: dict[str, Any], skip: Sequence[str] = ()) -> str:
    """A stage's metrics JSON as a collapsible key/value table (numbers as the stage wrote them)."""
    rows = flatten({k: v for k, v in metrics.items() if k not in skip})
    if not rows:
        return ""
    df = pl.DataFrame({"metric": [k for k, _ in rows], "value": [display(v) for _, v in rows]},
                      schema={"metric": pl.String, "value": pl.String})
    return (f"<details><summary>All metrics of <code>{html.escape(stage)}</code> "
            f"(reports/metrics/{html.escape(stage)}.json)</summary>"
            + html_table(df) + "</details>")


def flatten(obj: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    """Nested dict -> (dotted key, scalar) pairs; lists of scalars are joined, deeper lists skipped."""
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k in sorted(obj):
            key = f"{prefix}.{k}" if prefix else str(k)
            v = obj[k]
            if isinstance(v, dict) and depth > 0:
                out += flatten(v, key, depth - 1)
            elif isinstance(v, (dict, list)) and not _scalar_list(v):
                continue
            else:
                out.append((key, v))
    return out


def _scalar_list(v: Any) -> bool:
    return isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)


def _need(df: pl.DataFrame, cols: Sequence[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} needed by the report (has {df.columns}); "
                        "rerun the stage that writes it.", path)


LEADERBOARD_COLUMNS = {
    "labels": "labels", "split": "split", "rank": "rank", "model": "model", "macro_f1": "macro-F1",
    "accuracy": "accuracy", "macro_f1_fold_std": "macro-F1 fold std", "n_train": "train rows",
    "n_test": "test rows", "n_folds": "folds", "fit_s": "fit s", "predict_s": "predict s",
}


def benchmark_section(paths: Paths, sec: dict[str, Any]) -> Section:
    s = Section("benchmark", dict(SECTIONS)["benchmark"])
    csv, js = paths.reports / "benchmark.csv", paths.metrics / "benchmark.json"
    note = missing_note("benchmark", [csv, js], paths.root)
    if note:
        s.missing.append(note)
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
    s.html(metrics_details("benchmark", m))
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
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


SectionBuilder = Callable[[Paths, dict[str, Any]], Section]
BUILDERS: dict[str, SectionBuilder] = {"overview": overview_section,
                                        "brands": brands_section,
                                        "outcomes": outcomes_section,
                                        "complaints": complaints_section,
                                        "benchmark": benchmark_section}


def build(paths: Paths, params: dict[str, Any]) -> Report:
    """Read every stage's outputs and lay out the report (no HTML rendering yet)."""
    sec = {**DEFAULTS, **section(params, "report")}
    sections = [BUILDERS[sid](paths, sec) for sid, _ in SECTIONS]
    fetch_json = paths.metrics / "fetch.json"
    fm = read_json(fetch_json) if fetch_json.exists() else {}
    subtitle = (f"Data: {fm.get('source', '?')} ({display(fm.get('rows'))} rows, twcs.csv sha256 "
                f"{str(fm.get('sha256', ''))[:12]}…)" if fm else "Data: fetch metrics missing")
    return Report(str(sec["title"]), sections, subtitle)


DEFAULTS: dict[str, Any] = {
    "title": "Social CRM workbench",
    "top_brands": 20,
    "max_points": 3000,
    "n_examples": 10,
    "top_topics": 12,
}


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------
CSS = """
:root { --fg:#1d2330; --muted:#5b6577; --line:#e3e7ee; --accent:#1f77b4; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:24px 32px 12px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
.layout { display:flex; gap:24px; max-width:1400px; margin:0 auto; padding:16px 24px; }
nav#toc { flex:0 0 230px; position:sticky; top:12px; align-self:flex-start; background:#fff;
          border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
nav#toc h2 { font-size:14px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted);
             margin:0 0 8px; }
nav#toc ol { margin:0; padding-left:20px; }
nav#toc a { color:var(--accent); text-decoration:none; }
main { flex:1; min-width:0; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 24px 20px;
          margin-bottom:20px; }
section h2 { border-bottom:1px solid var(--line); padding-bottom:6px; }
figure.fig { margin:16px 0 24px; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.kpis { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0; }
.kpi { border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:120px; }
.kpi .v { display:block; font-size:20px; font-weight:600; }
.kpi .k { color:var(--muted); font-size:12px; }
.note { color:var(--muted); font-size:13px; }
.missing { background:#fff7e6; border:1px solid #f0c36d; border-radius:6px; padding:10px 14px; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; width:100%; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.examples td.txt:last-child { white-space:pre-wrap; word-break:break-word; }
@media (max-width: 900px) { .layout { flex-direction:column; } nav#toc { position:static; } }
"""


def figure_html(f: Figure) -> str:
    div = pio.to_html(f.figure, full_html=False, include_plotlyjs=False, div_id=f.id,
                      config=F.PLOTLY_CONFIG, validate=True)
    cap = f"<figcaption>{f.caption}</figcaption>" if f.caption else ""
    return f'<figure class="fig" id="{html.escape(f.id)}-box">{div}{cap}</figure>'


def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly package (embedded, never fetched)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def render(report: Report) -> str:
    """The whole page: one inline plotly.js, a table of contents, then the sections."""
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in report.sections)
    parts = []
    for i, s in enumerate(report.sections, 1):
        body = [f'<p class="missing">{n}</p>' for n in s.missing]
        for b in s.blocks:
            body.append(figure_html(b) if isinstance(b, Figure) else b)
        parts.append(f'<section id="{s.id}"><h2>{i}. {html.escape(s.title)}</h2>\n'
                     + "\n".join(body) + "\n</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(report.title)}</title>\n<style>{CSS}</style>\n"
        f"<script type=\"text/javascript\">{plotly_js()}</script>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(report.title)}</h1><p>{html.escape(report.subtitle)}</p></header>\n"
        f"<div class=\"layout\">\n<nav id=\"toc\"><h2>Contents</h2><ol>{toc}</ol></nav>\n<main>\n"
        + "\n".join(parts) + "\n</main>\n</div>\n</body>\n</html>\n")


def write_standalone(report: Report, folder: Path) -> list[Path]:
    """Each figure as its own HTML page beside one shared plotly.min.js (opens offline)."""
    folder.mkdir(parents=True, exist_ok=True)
    sio.write_text(folder / "plotly.min.js", plotly_js())
    written = []
    for f in report.figures:
        page = pio.to_html(f.figure, full_html=True, include_plotlyjs="directory", div_id=f.id,
                           config=F.PLOTLY_CONFIG)
        written.append(sio.write_text(folder / f"{f.id}.html", page))
    keep = {p.name for p in written}
    for stale in folder.glob("*.html"):
        if stale.name not in keep:
            stale.unlink()
    return written


def run(paths: Paths, params: dict[str, Any]) -> Path:
    """DVC stage ``report``: index.html + one standalone HTML per figure. Returns index.html."""
    paths.ensure()
    report = build(paths, params)
    index = sio.write_text(paths.reports / "index.html", render(report))
    write_standalone(report, paths.figures / STANDALONE_DIR)
    return index
