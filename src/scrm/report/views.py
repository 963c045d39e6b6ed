"""What the report and the notebooks read: stage outputs, and small views (group-bys) of them.

Nothing here is a new measurement: each view counts, filters, reshapes or renames what a stage wrote
(per-day tweet counts, per-brand shares, a metrics dict as a long table), so the report and the
notebooks draw exactly the same frames. Figures are drawn from these in :mod:`scrm.report.figures`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import DataError


# --------------------------------------------------------------------------------------------------
# reading stage outputs
# --------------------------------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A stage's metrics JSON; invalid JSON is a :class:`DataError` naming the file."""
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


def need(df: pl.DataFrame, cols: Sequence[str], path: Path) -> None:
    """Fail with the missing column names (and the file) before a view uses them."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} needed by the report (has {df.columns}); "
                        "rerun the stage that writes it.", path)


# --------------------------------------------------------------------------------------------------
# views: group-bys of stage outputs (shared with the notebooks)
# --------------------------------------------------------------------------------------------------
def daily_volume(tweets: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Tweets per UTC day and role (columns: date, role, tweets)."""
    return (tweets.lazy().group_by(date=pl.col("created_at").dt.date(), role=pl.col("role"))
            .agg(tweets=pl.len()).sort(["date", "role"]).collect())


def _with_length(openings: pl.DataFrame | pl.LazyFrame,
                 threads: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """The opening table with the length of each opening's conversation (``n_tweets``)."""
    return openings.lazy().join(threads.lazy().select("thread_id", "n_tweets"), on="thread_id",
                                how="left")


def brand_threads(threads: pl.DataFrame | pl.LazyFrame,
                  openings: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Conversations per brand (the brand that wrote most of a thread's replies, as threads.parquet
    says) next to customer openings per brand and how many were answered (brand and answered as the
    opening table says). Columns: brand, threads, openings, answered_openings, answered_share."""
    conv = (threads.lazy().filter(pl.col("brand").is_not_null()).group_by("brand")
            .agg(threads=pl.len()))
    opened = (openings.lazy().filter(pl.col("brand").is_not_null()).group_by("brand")
              .agg(openings=pl.len(), answered_openings=pl.col("answered").sum()))
    return (conv.join(opened, on="brand", how="full", coalesce=True)
            .with_columns(pl.col("threads", "openings", "answered_openings").fill_null(0))
            .with_columns(answered_share=pl.when(pl.col("openings") > 0)
                          .then(pl.col("answered_openings") / pl.col("openings")))
            .sort(["threads", "brand"], descending=[True, False]).collect())


def conversation_points(openings: pl.DataFrame | pl.LazyFrame,
                        threads: pl.DataFrame | pl.LazyFrame, max_points: int,
                        seed: int) -> pl.DataFrame:
    """Openings for the conversation scatter, a seeded sample when there are more than
    ``max_points`` (a browser draws a few thousand points, not 800k)."""
    df = (_with_length(openings, threads)
          .select("thread_id", "opening_at", "n_tweets", "brand", "answered", "opening_text")
          .sort("thread_id").collect())
    if df.height > max_points:
        df = df.sample(n=max_points, seed=seed)
    return df.sort("thread_id")


def latest_openings(openings: pl.DataFrame | pl.LazyFrame, threads: pl.DataFrame | pl.LazyFrame,
                    n: int) -> pl.DataFrame:
    """The ``n`` most recent customer openings: what customers actually write."""
    return (_with_length(openings, threads)
            .sort(["opening_at", "thread_id"], descending=[True, True]).head(n)
            .select("opening_at", "brand", "n_tweets", "answered", "opening_text").collect())


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
    """Out-of-fold AUCs of the outcome models with their interval, and DeLong's paired comparison
    with the brand baseline (Holm-adjusted), from outcome.json."""
    model = metrics.get("model") or {}
    vs = model.get("vs_baseline") or {}
    rows = []
    for name, v in (model.get("models") or {}).items():
        ci = v.get("oof_auc_ci") or [None, None]
        d = vs.get(name) or {}
        rows.append({"model": name, "oof_auc": v.get("oof_auc"), "ci_low": ci[0], "ci_high": ci[1],
                     "diff_vs_baseline": d.get("auc_diff"), "p_value": d.get("p_value"),
                     "p_holm": d.get("p_holm")})
    return pl.DataFrame(rows, schema={"model": pl.String, "oof_auc": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64,
                                      "diff_vs_baseline": pl.Float64, "p_value": pl.Float64,
                                      "p_holm": pl.Float64})


def odds_ratio_table(metrics: dict[str, Any]) -> pl.DataFrame:
    """Unpenalised odds ratios (all brands pooled, and within brand) per predictor, from
    outcome.json; empty when the model was skipped."""
    ors = metrics.get("odds_ratios") or {}
    pooled = (ors.get("logistic") or {}).get("odds_ratios") or {}
    within = (ors.get("within_brand") or {}).get("odds_ratios") or {}
    scale = ors.get("scale") or {}
    rows = [{"predictor": k, "scale": scale.get(k), "odds_ratio": v.get("odds_ratio"),
             "ci_low": v.get("ci_low"), "ci_high": v.get("ci_high"), "p_value": v.get("p_value"),
             "within_brand": (within.get(k) or {}).get("odds_ratio"),
             "within_ci_low": (within.get(k) or {}).get("ci_low"),
             "within_ci_high": (within.get(k) or {}).get("ci_high")} for k, v in pooled.items()]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def competing_table(metrics: dict[str, Any]) -> pl.DataFrame:
    """Average change in each competing outcome's share per predictor (multinomial model)."""
    changes = (metrics.get("competing_outcomes") or {}).get("average_changes") or {}
    rows = [{"predictor": k, "outcome": o, "change": v.get("change"), "ci_low": v.get("ci_low"),
             "ci_high": v.get("ci_high"), "p_value": v.get("p_value")}
            for k, per in changes.items() for o, v in per.items()]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def sealed_test_table(metrics: dict[str, Any]) -> pl.DataFrame:
    """Measure vs baseline on the sealed test part: one row per field and score, with intervals."""
    test = metrics.get("sealed_test") or {}
    rows = []
    for name in ("opening_state", "end_state", "recovered"):
        field = test.get(name) or {}
        for metric in ("macro_f1", "kappa", "accuracy"):
            r = field.get(metric)
            if not r:
                continue
            rows.append({"field": name, "score": metric, "measure": r["a"],
                         "measure_ci": _interval(r["a_ci"]), "baseline": r["b"],
                         "baseline_ci": _interval(r["b_ci"]), "difference": r["diff"],
                         "difference_ci": _interval(r["diff_ci"]),
                         "mcnemar_p": (field.get("mcnemar") or {}).get("p_value")})
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _interval(ci: Sequence[Any] | None) -> str:
    return "–" if not ci or ci[0] is None else f"{ci[0]:.3f} to {ci[1]:.3f}"


def recovery_estimates(metrics: dict[str, Any]) -> pl.DataFrame:
    """Every recovery rate the stage estimated, with its interval: the definitions side by side,
    the silence bounds, and the placebo (no reply at all)."""
    rates = metrics.get("recovery_rate") or {}
    sil = metrics.get("silence") or {}
    plc = metrics.get("placebo") or {}
    items = [("hand labels: opened unhappy, ended satisfied (validated)", rates.get("hand_labels")),
             ("measure: among unhappy openings with a follow-up", rates.get("measure")),
             ("former VADER label (not valid)", rates.get("former_vader")),
             ("silence counted as not recovered (worst case)", sil.get("worst_case")),
             ("silence counted as recovered (best case)", sil.get("best_case")),
             ("placebo, measure: follow-up before any reply", (plc.get("measure") or {}).get("no_reply")),
             ("placebo, former label: follow-up before any reply",
              (plc.get("former_vader") or {}).get("no_reply"))]
    rows = [{"estimate": name, "rate": v.get("rate"), "ci_low": v.get("ci_low"),
             "ci_high": v.get("ci_high"), "k": v.get("k"), "n": v.get("n")}
            for name, v in items if v and v.get("rate") is not None]
    return pl.DataFrame(rows, schema={"estimate": pl.String, "rate": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64,
                                      "k": pl.Int64, "n": pl.Int64})


def per_class_f1(leaderboard: pl.DataFrame, protocol: str, variant: str) -> pl.DataFrame:
    """Per-category F1 of every system of one benchmark section (long: system, class, f1), from
    the benchmark's ``f1.<class>`` columns."""
    cols = [c for c in leaderboard.columns if c.startswith("f1.")]
    if not cols or not {"protocol", "variant", "system"} <= set(leaderboard.columns):
        return pl.DataFrame(schema={"system": pl.String, "class": pl.String, "f1": pl.Float64})
    part = leaderboard.filter((pl.col("protocol") == protocol) & (pl.col("variant") == variant))
    return (part.select("system", *cols).unpivot(index="system", variable_name="class",
                                                 value_name="f1")
            .with_columns(pl.col("class").str.strip_prefix("f1.")).drop_nulls("f1"))


def labeller_scores(metrics: dict[str, Any]) -> pl.DataFrame:
    """complaints.json -> one row per (set, labeller): coverage, accuracy on covered and macro-F1
    (both readings of an abstention), each with its interval bounds."""
    rows = []
    for part, name in (("sealed_test", "sealed test"), ("dev", "dev (optimistic)")):
        block = metrics.get(part) or {}
        for labeller, title in (("majority_vote", "rules (majority vote)"),
                                ("label_model", "label model (Snorkel)")):
            r = block.get(labeller)
            if not r:
                continue
            row: dict[str, Any] = {"set": name, "labeller": title, "n": block.get("n")}
            for key in ("coverage", "accuracy_covered", "macro_f1", "macro_f1_abstain_as_other"):
                lo, hi = r.get(f"{key}_ci") or (None, None)
                row.update({key: r.get(key), f"{key}_low": lo, f"{key}_high": hi})
            rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


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
    """First and last ``created_at`` of the tweets."""
    row = tweets.lazy().select(lo=pl.col("created_at").min(), hi=pl.col("created_at").max()).collect()
    return row["lo"][0], row["hi"][0]


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
    """A list holding no dict or list (shown joined)."""
    return isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)
