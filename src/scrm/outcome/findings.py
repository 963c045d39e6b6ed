"""Summaries of the trajectories: label counts, the state transition table and the findings table.

The findings table compares, among answered openings the measure calls unhappy, the threads whose
first reply has a feature with those whose first reply lacks it, on two outcomes: public
**recovery** (the customer's last tweet is satisfied) and **silence** (the customer never wrote
again). Silent threads are kept, so neither comparison conditions on whether the customer came back.
Per row: a Wilson interval for each rate, a Newcombe interval for their difference, Pearson's
chi-square test (statistic, df = 1, p, smallest expected count), and p-values adjusted across *all*
rows of the table (Holm: family-wise error; Benjamini–Hochberg: false discovery rate). These are
associations, never causal effects: brands choose how to reply knowing the complaint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ..stats.intervals import (benjamini_hochberg, chi2_two_proportions, holm, newcombe_interval,
                               p_value, wilson_interval, z_value)
from .measure import MEASURED_END_STATES, OPENING_STATES
from .trajectories import LABELS, answered_unhappy

if TYPE_CHECKING:
    from ..config import OutcomeSettings

FINDINGS_OUTCOMES: tuple[str, ...] = ("recovered", "silent")


def label_counts(outcome: pl.DataFrame, by: str | None = None,
                 labels: tuple[str, ...] = LABELS, column: str = "label") -> dict[str, Any]:
    """Counts per label (every label present, zeros included), optionally per ``by`` (a null key
    counts as ``(none)``)."""
    grid_labels = pl.DataFrame({column: list(labels)})
    if by is None:
        counts = grid_labels.join(outcome.group_by(column).len(), on=column, how="left",
                                  maintain_order="left").with_columns(pl.col("len").fill_null(0))
        return {lab: int(n) for lab, n in counts.iter_rows()}
    g = outcome.with_columns(pl.col(by).fill_null("(none)")).group_by(by, column).len()
    grid = g.select(pl.col(by).unique().sort()).join(grid_labels, how="cross")
    counts = (grid.join(g, on=[by, column], how="left", maintain_order="left")
              .with_columns(pl.col("len").fill_null(0)))
    out: dict[str, Any] = {}
    for key, lab, n in counts.iter_rows():
        out.setdefault(key, {})[lab] = int(n)
    return out


def transition_table(outcome: pl.DataFrame) -> pl.DataFrame:
    """Opening state -> end (the last turn's state, ``silent`` or ``unanswered``), with counts: the
    edge list of a sankey diagram."""
    target = (pl.when(pl.col("label") == "unanswered").then(pl.lit("unanswered"))
              .when(pl.col("label") == "silent").then(pl.lit("silent"))
              .otherwise(pl.col("end_state")))
    targets = [*MEASURED_END_STATES, "silent", "unanswered"]
    grid = pl.DataFrame({"source": [s for s in OPENING_STATES for _ in targets],
                         "target": [t for _ in OPENING_STATES for t in targets]})
    counts = (outcome.filter(pl.col("opening_state").is_not_null())
              .group_by(source=pl.col("opening_state"), target=target).agg(n=pl.len()))
    return (grid.join(counts, on=["source", "target"], how="left", maintain_order="left")
            .with_columns(pl.col("n").fill_null(0).cast(pl.Int64))
            .with_columns(share_of_source=(pl.col("n") / pl.col("n").sum().over("source"))
                          .fill_nan(None).round(6)))


PHRASE = {"off_social": "asked to move off social (DM, phone, email)",
          "template_reply": "was template-like", "apology": "apologised",
          "empathy": "showed empathy", "thanks": "thanked the customer",
          "has_link": "had a link", "question_back": "asked a question",
          "addresses_name": "used the customer's name", "agent_signoff": "was signed by an agent"}
OUTCOME_PHRASE = {"recovered": "ended satisfied in public", "silent": "never wrote again"}


def findings_table(outcome: pl.DataFrame, settings: OutcomeSettings) -> pl.DataFrame:
    """Rate of each outcome (:data:`FINDINGS_OUTCOMES`) with vs without each reply feature
    (``settings.findings_features``) among answered unhappy openings, overall and for the
    ``settings.top_brands`` brands with most such openings, with tests adjusted across all rows and
    a plain-language statement per row."""
    feats = list(settings.findings_features)
    pop = answered_unhappy(outcome)
    z = z_value(settings.ci_level)
    top = (pop.group_by("brand").len().sort(["len", "brand"], descending=[True, False])
           .head(settings.top_brands)["brand"].to_list())
    long = (pop.select("brand", *FINDINGS_OUTCOMES, *feats)
            .unpivot(index=["brand", *FINDINGS_OUTCOMES], on=feats, variable_name="feature",
                     value_name="has")
            .unpivot(index=["brand", "feature", "has"], on=list(FINDINGS_OUTCOMES),
                     variable_name="outcome", value_name="event")
            .with_columns(pl.col("has").cast(pl.Boolean)))
    overall = long.with_columns(scope=pl.lit("overall"), brand=pl.lit("(all brands)"))
    per_brand = long.filter(pl.col("brand").is_in(top)).with_columns(scope=pl.lit("brand"))
    both = pl.concat([overall, per_brand.select(overall.columns)])
    agg = both.group_by("scope", "brand", "feature", "outcome").agg(
        n_with=pl.col("has").sum().cast(pl.Int64),
        k_with=(pl.col("has") & pl.col("event")).sum().cast(pl.Int64),
        n_without=(~pl.col("has")).sum().cast(pl.Int64),
        k_without=(~pl.col("has") & pl.col("event")).sum().cast(pl.Int64),
        n_unknown=pl.col("has").is_null().sum().cast(pl.Int64),
    )
    ranks = {"_s": ("scope", {"overall": 0}), "_b": ("brand", {b: i for i, b in enumerate(top)}),
             "_f": ("feature", {f: i for i, f in enumerate(feats)}),
             "_o": ("outcome", {o: i for i, o in enumerate(FINDINGS_OUTCOMES)})}
    agg = (agg.with_columns([pl.col(c).replace_strict(m, default=len(m), return_dtype=pl.Int32)
                             .alias(k) for k, (c, m) in ranks.items()])
           .sort("_s", "_b", "_f", "_o").drop(list(ranks)))
    a = {c: agg[c].to_numpy() for c in ("n_with", "k_with", "n_without", "k_without")}
    lw, hw = wilson_interval(a["k_with"], a["n_with"], z)
    lo, ho = wilson_interval(a["k_without"], a["n_without"], z)
    ld, hd = newcombe_interval(a["k_with"], a["n_with"], a["k_without"], a["n_without"], z)
    stat, p, expected = chi2_two_proportions(a["k_with"], a["n_with"], a["k_without"],
                                             a["n_without"])
    res = agg.with_columns(
        rate_with=(pl.col("k_with") / pl.col("n_with")),
        rate_without=(pl.col("k_without") / pl.col("n_without")),
        ci_low_with=pl.Series(lw), ci_high_with=pl.Series(hw),
        ci_low_without=pl.Series(lo), ci_high_without=pl.Series(ho),
        diff_ci_low=pl.Series(ld), diff_ci_high=pl.Series(hd),
        chi2=pl.Series(stat), df=pl.lit(1, dtype=pl.Int64), p_value=pl.Series(p),
        min_expected=pl.Series(expected),
        p_holm=pl.Series(holm(p)), p_bh=pl.Series(benjamini_hochberg(p)),
    ).with_columns(diff=pl.col("rate_with") - pl.col("rate_without"))
    res = res.with_columns(
        [pl.col(c).fill_nan(None).round(6) for c in
         ("rate_with", "rate_without", "ci_low_with", "ci_high_with", "ci_low_without",
          "ci_high_without", "diff", "diff_ci_low", "diff_ci_high", "chi2", "min_expected")]
        + [pl.col(c).fill_nan(None).map_elements(p_value, return_dtype=pl.Float64)
           for c in ("p_value", "p_holm", "p_bh")])
    return res.with_columns(_verdicts(settings)).select(FINDINGS_COLUMNS)


FINDINGS_COLUMNS: tuple[str, ...] = (
    "scope", "brand", "feature", "outcome", "n_with", "k_with", "rate_with", "ci_low_with",
    "ci_high_with", "n_without", "k_without", "rate_without", "ci_low_without", "ci_high_without",
    "n_unknown", "diff", "diff_ci_low", "diff_ci_high", "chi2", "df", "p_value", "min_expected",
    "p_holm", "p_bh", "verdict", "statement")


def _verdicts(settings: OutcomeSettings) -> list[pl.Expr]:
    """``verdict`` (after Holm) and a plain-language ``statement`` per row."""
    def pct(c: str) -> pl.Expr:
        return (pl.col(c) * 100).round(0).cast(pl.Int64).cast(pl.String)

    what = pl.col("feature").replace_strict(
        {**PHRASE, "fast_reply": f"came within {settings.fast_reply_minutes:g} min"},
        default=pl.col("feature"))
    happened = pl.col("outcome").replace_strict(OUTCOME_PHRASE, default=pl.col("outcome"))
    level = f"{round(settings.ci_level * 100)}%"
    comparable = (pl.col("n_with") > 0) & (pl.col("n_without") > 0)
    verdict = (pl.when(~comparable).then(pl.lit("not comparable"))
               .when(pl.col("p_holm") < 1 - settings.ci_level)
               .then(pl.when(pl.col("diff") > 0).then(pl.lit("higher")).otherwise(pl.lit("lower")))
               .otherwise(pl.lit("not distinguishable")))
    verdict_text = (pl.when(verdict == "higher").then(pl.lit("higher with it after Holm correction"))
                    .when(verdict == "lower").then(pl.lit("lower with it after Holm correction"))
                    .otherwise(pl.lit("not distinguishable from zero after Holm correction")))
    points = (pl.col("diff") * 100).round(0).cast(pl.Int64).cast(pl.String)
    compared = pl.format(
        "{}: of answered unhappy openings, {}% {} when the first reply {} (" + level
        + " CI {}-{}%, n={}) vs {}% when it did not ({}-{}%, n={}); difference {} points (" + level
        + " CI {} to {}; Holm-adjusted p {}), {}. An association, not a causal effect.",
        pl.col("brand"), pct("rate_with"), happened, what, pct("ci_low_with"), pct("ci_high_with"),
        pl.col("n_with"), pct("rate_without"), pct("ci_low_without"), pct("ci_high_without"),
        pl.col("n_without"), points, pct("diff_ci_low"), pct("diff_ci_high"),
        pl.col("p_holm").map_elements(lambda v: f"{v:.2g}", return_dtype=pl.String).fill_null("–"),
        verdict_text)
    one_sided = pl.format("{}: no comparison for a first reply that {} ({} threads with it, {} "
                          "without).", pl.col("brand"), what, pl.col("n_with"), pl.col("n_without"))
    return [verdict.alias("verdict"),
            pl.when(comparable).then(compared).otherwise(one_sided).alias("statement")]


def overall_findings(findings: pl.DataFrame) -> list[dict[str, Any]]:
    """The overall rows of the findings table, for the metrics file."""
    return (findings.filter(pl.col("scope") == "overall")
            .select("feature", "outcome", "n_with", "rate_with", "n_without", "rate_without", "diff",
                    "diff_ci_low", "diff_ci_high", "chi2", "df", "p_value", "p_holm", "p_bh",
                    "verdict").to_dicts())
