"""Is the measure valid? Its scores on the sealed test part against the hand labels, beside the
sentiment-threshold baseline, and what the former VADER label really caught.

Why the test part: the measure was fitted (and its C chosen) on dev only, so the test threads are the
only ones on which its agreement with people is an honest estimate. Both readings are scored on the
*same* test threads, so the comparison is paired (:func:`scrm.stats.classification.paired_scores`:
macro-F1, Cohen's kappa and accuracy with percentile bootstrap intervals, the difference with the
interval from the same resamples, and McNemar's test on which threads each gets right).

Macro-F1 of the end state averages the three states the measure predicts (satisfied, still unhappy,
procedural); a test thread labelled ``unclear`` counts as an error for whichever state it is given.
Kappa uses every label value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ..stats.classification import confusion, f1_per_class, paired_scores
from ..stats.intervals import difference_with_interval, rate_with_interval
from .measure import END_STATES, FIELDS

if TYPE_CHECKING:
    from ..config import OutcomeSettings

LABELLED_RECOVERED = (pl.col("opening_state_label") == "unhappy") & (pl.col("end_state_label") == "satisfied")


def labelled_frame(outcome: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Labels joined with the run's states; label columns get the ``_label`` suffix."""
    lab = labels.rename({"opening_state": "opening_state_label", "end_state": "end_state_label"})
    cols = ["thread_id", "opening_state", "end_state", "baseline_opening_state",
            "baseline_end_state", "label", "vader_label", "answered", "last_tweet_id"]
    return lab.join(outcome.select(cols), on="thread_id", how="left")


def sealed_test(outcome: pl.DataFrame, labels: pl.DataFrame, settings: OutcomeSettings,
                seed: int) -> dict[str, Any]:
    """Scores of the measure (a) and the baseline (b) on the test part, per field, plus how well
    each one's ``recovered`` matches the labels' (opening unhappy, end satisfied)."""
    ms = settings.measure
    test = labelled_frame(outcome, labels.filter(pl.col("part") == "test"))
    usable = test.filter(pl.col("end_state").is_not_null())
    out: dict[str, Any] = {
        "n_test_labels": test.height, "n_scored": usable.height,
        "n_not_in_run": test.height - usable.height,
        "a": "measure", "b": "baseline (sentiment thresholds)",
    }
    for name, (_, _, measured, values) in FIELDS.items():
        true = usable[f"{name}_label"].to_list()
        a, b = usable[name].to_list(), usable[f"baseline_{name}"].to_list()
        res = paired_scores(true, a, b, list(values), list(measured), n_boot=ms.n_boot,
                            level=settings.ci_level, seed=seed)
        res["classes"] = list(values)
        res["confusion_measure"] = confusion(true, a, values).tolist()
        res["confusion_baseline"] = confusion(true, b, values).tolist()
        res["f1_measure"] = {k: round(v, 6) for k, v in f1_per_class(true, a, values, measured).items()}
        res["f1_baseline"] = {k: round(v, 6) for k, v in f1_per_class(true, b, values, measured).items()}
        out[name] = res
    rec = usable.with_columns(truth=LABELLED_RECOVERED.cast(pl.String),
                              measure=(pl.col("label") == "recovered").cast(pl.String),
                              baseline=(pl.col("vader_label") == "recovered").cast(pl.String))
    res = paired_scores(rec["truth"].to_list(), rec["measure"].to_list(), rec["baseline"].to_list(),
                        ["true", "false"], n_boot=ms.n_boot, level=settings.ci_level, seed=seed)
    for who in ("measure", "baseline"):
        called = rec.filter(pl.col(who) == "true")
        res[f"precision_{who}"] = rate_with_interval(int((called["truth"] == "true").sum()),
                                                     called.height, settings.ci_level)
        truly = rec.filter(pl.col("truth") == "true")
        res[f"recall_{who}"] = rate_with_interval(int((truly[who] == "true").sum()), truly.height,
                                                  settings.ci_level)
    res["note"] = ("recovered = opening unhappy and end satisfied; the baseline is the former "
                   "VADER label (opening negative, last turn not negative)")
    out["recovered"] = res
    return out


def former_label_check(outcome: pl.DataFrame, labels: pl.DataFrame,
                       settings: OutcomeSettings) -> dict[str, Any]:
    """What people call the threads the former VADER label calls ``recovered`` (every labelled
    thread: VADER was not fitted on any of them)."""
    lab = labelled_frame(outcome, labels).filter(pl.col("vader_label") == "recovered")
    by_end = {s: int((lab["end_state_label"] == s).sum()) for s in END_STATES}
    return {
        "n_vader_recovered_labelled": lab.height,
        "labelled_end_state": by_end,
        "share_satisfied": rate_with_interval(by_end["satisfied"], lab.height, settings.ci_level),
        "share_labelled_recovered": rate_with_interval(
            int(lab.select(LABELLED_RECOVERED.sum()).item()), lab.height, settings.ci_level),
    }


def recovery_rates(outcome: pl.DataFrame, labels: pl.DataFrame | None,
                   settings: OutcomeSettings) -> dict[str, Any]:
    """The recovery rate among unhappy openings with a follow-up, under each definition (a
    sensitivity table): hand labels, the measure, the former VADER label; and the measure against
    the labels on the same test threads."""
    level = settings.ci_level
    fu = outcome.filter(pl.col("answered") & (pl.col("opening_state") == "unhappy")
                        & pl.col("last_tweet_id").is_not_null())
    out: dict[str, Any] = {
        "measure": {**rate_with_interval(int(fu["recovered"].sum()), fu.height, level),
                    "definition": "measure: opening unhappy, last turn satisfied (all follow-up "
                                  "threads of the run)"},
    }
    vader = outcome.filter(pl.col("vader_label").is_in(["recovered", "stayed_negative"]))
    out["former_vader"] = {**rate_with_interval(int((vader["vader_label"] == "recovered").sum()),
                                                vader.height, level),
                           "definition": "former: VADER opening <= negative_threshold, last turn "
                                         "above it"}
    if labels is not None:
        found = labelled_frame(outcome, labels).filter(pl.col("answered").is_not_null())
        lab = found.filter(pl.col("opening_state_label") == "unhappy")
        out["hand_labels"] = {**rate_with_interval(int((lab["end_state_label"] == "satisfied").sum()),
                                                   lab.height, level),
                              "definition": "hand labels: every labelled thread of this run (a "
                                            "seeded random draw of follow-up threads) that opened "
                                            "unhappy, ended satisfied"}
        test = labelled_frame(outcome, labels.filter(pl.col("part") == "test")).filter(
            pl.col("end_state").is_not_null())
        k_lab = int(test.select(LABELLED_RECOVERED.sum()).item())
        m_unhappy = test.filter(pl.col("opening_state") == "unhappy")
        l_unhappy = test.filter(pl.col("opening_state_label") == "unhappy")
        out["test_part"] = {
            "labels": rate_with_interval(int((l_unhappy["end_state_label"] == "satisfied").sum()),
                                         l_unhappy.height, level),
            "measure": rate_with_interval(int((m_unhappy["end_state"] == "satisfied").sum()),
                                          m_unhappy.height, level),
            "recovered_threads_labels": k_lab,
            "recovered_threads_measure": int((test["label"] == "recovered").sum()),
        }
    return out


def placebo(outcome: pl.DataFrame, settings: OutcomeSettings) -> dict[str, Any]:
    """"Recovery" with no reply at all: unhappy openings whose customer wrote again *before* any
    brand reply, read by the same measure at that earlier tweet. The reply-associated recovery is
    reported net of it (Newcombe interval; the two groups share some threads, so the interval is
    approximate). The former VADER definition is given the same test."""
    level = settings.ci_level
    answered_fu = (pl.col("answered") & pl.col("last_tweet_id").is_not_null())
    pre = pl.col("pre_last_tweet_id").is_not_null()

    def block(unhappy: pl.Expr, recovered_after: pl.Expr, recovered_before: pl.Expr) -> dict[str, Any]:
        before = outcome.filter(unhappy & pre)
        after = outcome.filter(unhappy & answered_fu)
        kb, ka = int(before.select(recovered_before.sum()).item()), int(after.select(recovered_after.sum()).item())
        return {"no_reply": rate_with_interval(kb, before.height, level),
                "after_reply": rate_with_interval(ka, after.height, level),
                "net": difference_with_interval(ka, after.height, kb, before.height, level)}

    measure = block(pl.col("opening_state") == "unhappy", pl.col("end_state") == "satisfied",
                    pl.col("placebo_state") == "satisfied")
    vader = block(pl.col("opening_class") == "negative", pl.col("last_class") != "negative",
                  pl.col("baseline_placebo_state") != "still_unhappy")
    return {"measure": measure, "former_vader": vader,
            "note": "no_reply: the customer's last tweet before any brand reply (opening excluded); "
                    "after_reply: the last tweet after the first reply. The measure was fitted on "
                    "post-reply tweets, so the no-reply reading is out of its training situation."}
