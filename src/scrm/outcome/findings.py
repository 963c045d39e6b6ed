"""Summaries of the trajectories: label counts, the sentiment transition table and the findings table.

The findings table compares, among threads that opened negative and have a follow-up, the recovery
rate of threads whose first reply has a feature with the rate of those whose first reply lacks it:
a Wilson interval for each rate and a Newcombe interval for their difference
(:mod:`scrm.stats.intervals`). These are associations, never causal effects: brands choose how to
reply knowing the complaint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ..stats.intervals import newcombe_interval, wilson_interval, z_value
from .trajectories import CLASSES, LABELS

if TYPE_CHECKING:
    from ..config import OutcomeSettings


def label_counts(outcome: pl.DataFrame, by: str | None = None) -> dict[str, Any]:
    """Counts per label (every label present, zeros included), optionally per ``by`` (a null key
    counts as ``(none)``)."""
    labels = pl.DataFrame({"label": list(LABELS)})
    if by is None:
        counts = labels.join(outcome.group_by("label").len(), on="label", how="left",
                             maintain_order="left").with_columns(pl.col("len").fill_null(0))
        return {lab: int(n) for lab, n in counts.iter_rows()}
    g = outcome.with_columns(pl.col(by).fill_null("(none)")).group_by(by, "label").len()
    grid = g.select(pl.col(by).unique().sort()).join(labels, how="cross")
    counts = (grid.join(g, on=[by, "label"], how="left", maintain_order="left")
              .with_columns(pl.col("len").fill_null(0)))
    out: dict[str, Any] = {}
    for key, lab, n in counts.iter_rows():
        out.setdefault(key, {})[lab] = int(n)
    return out


def transition_table(outcome: pl.DataFrame) -> pl.DataFrame:
    """Opening class -> end state (last class, ``no_follow_up`` or ``unanswered``), with counts:
    the edge list of a sankey diagram."""
    target = (pl.when(pl.col("label") == "unanswered").then(pl.lit("unanswered"))
              .when(pl.col("label") == "no_follow_up").then(pl.lit("no_follow_up"))
              .otherwise(pl.col("last_class")))
    targets = [*CLASSES, "no_follow_up", "unanswered"]
    grid = pl.DataFrame({"source": [s for s in CLASSES for _ in targets],
                         "target": [t for _ in CLASSES for t in targets]})
    counts = (outcome.filter(pl.col("opening_class").is_not_null())
              .group_by(source=pl.col("opening_class"), target=target).agg(n=pl.len()))
    return (grid.join(counts, on=["source", "target"], how="left", maintain_order="left")
            .with_columns(pl.col("n").fill_null(0).cast(pl.Int64))
            .with_columns(share_of_source=(pl.col("n") / pl.col("n").sum().over("source"))
                          .fill_nan(None).round(6)))


def findings_table(pop: pl.DataFrame, settings: OutcomeSettings) -> pl.DataFrame:
    """Recovery rate with vs without each reply feature (``settings.findings_features``), overall
    and for the ``settings.top_brands`` brands with most eligible threads, with a plain-language
    statement per row."""
    feats = list(settings.findings_features)
    z = z_value(settings.ci_level)
    top_n = settings.top_brands
    top = (pop.group_by("brand").len().sort(["len", "brand"], descending=[True, False])
           .head(top_n)["brand"].to_list())
    long = pop.select("brand", "recovered", *feats).unpivot(
        index=["brand", "recovered"], on=feats, variable_name="feature", value_name="has")
    long = long.with_columns(pl.col("has").cast(pl.Boolean))
    overall = long.with_columns(scope=pl.lit("overall"), brand=pl.lit("(all brands)"))
    per_brand = long.filter(pl.col("brand").is_in(top)).with_columns(scope=pl.lit("brand"))
    both = pl.concat([overall, per_brand.select(overall.columns)])
    agg = both.group_by("scope", "brand", "feature").agg(
        n_with=pl.col("has").sum().cast(pl.Int64),
        recovered_with=(pl.col("has") & pl.col("recovered")).sum().cast(pl.Int64),
        n_without=(~pl.col("has")).sum().cast(pl.Int64),
        recovered_without=(~pl.col("has") & pl.col("recovered")).sum().cast(pl.Int64),
        n_unknown=pl.col("has").is_null().sum().cast(pl.Int64),
    )
    order = {f: i for i, f in enumerate(feats)}
    brand_rank = {b: i for i, b in enumerate(top)}
    agg = (agg.with_columns(_s=(pl.col("scope") != "overall").cast(pl.Int32),
                            _b=pl.col("brand").replace_strict(brand_rank, default=-1),
                            _f=pl.col("feature").replace_strict(order, default=len(order)))
           .sort("_s", "_b", "_f").drop("_s", "_b", "_f"))
    a = {c: agg[c].to_numpy() for c in ("n_with", "recovered_with", "n_without", "recovered_without")}
    lw, hw = wilson_interval(a["recovered_with"], a["n_with"], z)
    lo, ho = wilson_interval(a["recovered_without"], a["n_without"], z)
    ld, hd = newcombe_interval(a["recovered_with"], a["n_with"], a["recovered_without"],
                               a["n_without"], z)
    res = agg.with_columns(
        rate_with=(pl.col("recovered_with") / pl.col("n_with")),
        rate_without=(pl.col("recovered_without") / pl.col("n_without")),
        ci_low_with=pl.Series(lw), ci_high_with=pl.Series(hw),
        ci_low_without=pl.Series(lo), ci_high_without=pl.Series(ho),
        diff_ci_low=pl.Series(ld), diff_ci_high=pl.Series(hd),
    ).with_columns(diff=pl.col("rate_with") - pl.col("rate_without"))
    res = res.with_columns([pl.col(c).fill_nan(None).round(6) for c in
                            ("rate_with", "rate_without", "ci_low_with", "ci_high_with",
                             "ci_low_without", "ci_high_without", "diff", "diff_ci_low",
                             "diff_ci_high")])

    def pct(c: str) -> pl.Expr:
        return (pl.col(c) * 100).round(0).cast(pl.Int64).cast(pl.String)

    fast = f"{settings.fast_reply_minutes:g}"
    phrase = {"off_social": "asked to move off social (DM, phone, email)",
              "template_reply": "was template-like", "apology": "apologised",
              "empathy": "showed empathy", "thanks": "thanked the customer",
              "fast_reply": f"came within {fast} min", "has_link": "had a link",
              "question_back": "asked a question", "addresses_name": "used the customer's name",
              "agent_signoff": "was signed by an agent"}
    what = pl.col("feature").replace_strict(phrase, default=pl.col("feature"))
    level = f"{round(settings.ci_level * 100)}%"
    comparable = (pl.col("n_with") > 0) & (pl.col("n_without") > 0)
    verdict = (pl.when(~comparable).then(pl.lit("not comparable"))
               .when(pl.col("diff_ci_low") > 0).then(pl.lit("higher"))
               .when(pl.col("diff_ci_high") < 0).then(pl.lit("lower"))
               .otherwise(pl.lit("not distinguishable")))
    verdict_text = (pl.when(verdict == "higher").then(pl.lit("higher with it at this n"))
                    .when(verdict == "lower").then(pl.lit("lower with it at this n"))
                    .otherwise(pl.lit("not distinguishable from zero at this n")))
    points = (pl.col("diff") * 100).round(0).cast(pl.Int64).cast(pl.String)
    compared = pl.format(
        "{}: of threads that opened negative, {}% recovered when the first reply {} ("
        + level + " CI {}-{}%, n={}) vs {}% when it did not ({}-{}%, n={}); difference {} points ("
        + level + " CI {} to {}), {}. An association, not a causal effect.",
        pl.col("brand"), pct("rate_with"), what, pct("ci_low_with"), pct("ci_high_with"),
        pl.col("n_with"), pct("rate_without"), pct("ci_low_without"), pct("ci_high_without"),
        pl.col("n_without"), points, pct("diff_ci_low"), pct("diff_ci_high"), verdict_text)
    one_sided = pl.format("{}: no comparison for a first reply that {} ({} threads with it, {} "
                          "without).", pl.col("brand"), what, pl.col("n_with"), pl.col("n_without"))
    statement = pl.when(comparable).then(compared).otherwise(one_sided)
    return res.with_columns(verdict=verdict, statement=statement)
