"""Seeded draws of the hand-labelled sets (the sealed complaint test set and the outcome set).

Why a module: a draw that decides what is "sealed" must be reproducible by anyone from the shipped
sample, and a test must be able to check that the files in ``references/`` are exactly what the draw
gives. The draw is fixed in a file *before* anything in it is labelled.

* :func:`draw_gold_test`: openings not in the dev gold set, stratified by brand (proportional
  allocation, largest remainder), then a seeded sample within each brand.
* :func:`draw_outcome_set`: threads in which the opening customer wrote again after the brand's first
  reply, a seeded sample, split by the same seed into ``dev`` and ``test`` halves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .text import clean_for_sentiment

GOLD_TEST_SEED = 2017
GOLD_TEST_SIZE = 420
OUTCOME_SEED = 1031
OUTCOME_SIZE = 420


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Proportional allocation of ``n`` over strata of size ``counts`` (largest remainder)."""
    quota = counts / counts.sum() * n
    base = np.floor(quota).astype(int)
    order = np.lexsort((np.arange(len(counts)), -(quota - base)))
    base[order[: n - base.sum()]] += 1
    return np.minimum(base, counts)


def draw_gold_test(openings: pl.DataFrame, dev_ids: pl.Series, n: int = GOLD_TEST_SIZE,
                   seed: int = GOLD_TEST_SEED) -> pl.DataFrame:
    """(tweet_id, brand) of ``n`` openings outside dev, stratified by brand, sorted by tweet_id.

    ``openings`` needs ``tweet_id`` and ``brand`` (null brands form their own stratum).
    """
    pool = (openings.filter(~pl.col("tweet_id").is_in(dev_ids.implode()))
            .with_columns(pl.col("brand").fill_null("(none)"))
            .sort("brand", "tweet_id"))
    strata = pool.group_by("brand", maintain_order=True).agg(pl.col("tweet_id"))
    sizes = _allocate(strata["tweet_id"].list.len().to_numpy(), n)
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for ids, k in zip(strata["tweet_id"].to_list(), sizes, strict=True):
        picked.extend(rng.choice(np.asarray(ids), size=int(k), replace=False).tolist())
    return (pool.filter(pl.col("tweet_id").is_in(picked)).select("tweet_id", "brand")
            .sort("tweet_id"))


def followup_threads(tweets: pl.DataFrame, threads: pl.DataFrame) -> pl.DataFrame:
    """Openings whose customer wrote again after the brand's first tweet in the thread."""
    op = threads.filter(pl.col("is_opening")).select("thread_id", customer=pl.col("opening_author_id"))
    tw = tweets.join(op, on="thread_id", how="inner")
    first = (tw.filter(pl.col("role") == "brand").group_by("thread_id")
             .agg(reply_turn=pl.col("turn").min()))
    after = (tw.join(first, on="thread_id", how="inner")
             .filter((pl.col("author_id") == pl.col("customer")) & (pl.col("turn") > pl.col("reply_turn")))
             .group_by("thread_id").agg(n_followups=pl.len()))
    return after.sort("thread_id")


def draw_outcome_set(tweets: pl.DataFrame, threads: pl.DataFrame, n: int = OUTCOME_SIZE,
                     seed: int = OUTCOME_SEED) -> pl.DataFrame:
    """(thread_id, part) for ``n`` follow-up threads; ``part`` is dev for one half, test for the other."""
    pool = followup_threads(tweets, threads)["thread_id"].to_numpy()
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=min(n, len(pool)), replace=False)
    part = np.where(np.arange(len(picked)) < len(picked) // 2, "dev", "test")
    return pl.DataFrame({"thread_id": picked, "part": part}).sort("thread_id")


def thread_transcript(tweets: pl.DataFrame, threads: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """(thread_id, transcript): every turn of the thread as ``C:``/``B:`` lines, handles and URLs removed.

    Only the opening customer's tweets and brand tweets are shown (other customers are ignored, as
    the guidelines say).
    """
    op = threads.filter(pl.col("thread_id").is_in(ids.implode())).select(
        "thread_id", customer=pl.col("opening_author_id"))
    tw = (tweets.join(op, on="thread_id", how="inner")
          .filter((pl.col("role") == "brand") | (pl.col("author_id") == pl.col("customer")))
          .sort("thread_id", "turn")
          .with_columns(line=pl.when(pl.col("role") == "brand").then(pl.lit("B: ")).otherwise(pl.lit("C: "))
                        + clean_for_sentiment("text")))
    return tw.group_by("thread_id", maintain_order=True).agg(transcript=pl.col("line").str.join("\n"))


# ---------------------------------------------------------------------------------------------
# the sealed test's guard: no rule text may copy a test tweet
# ---------------------------------------------------------------------------------------------
WORD_RE = r"[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*"   # letters/digits, inner apostrophes kept (can't)


def word_runs(frame: pl.DataFrame, text_col: str, n: int) -> pl.DataFrame:
    """Every run of ``n`` consecutive words of each row's ``text_col``: the frame's other columns
    plus ``run`` (the words joined by one space), one row per run.

    Words are lower-cased letter/digit runs with inner apostrophes (curly ones folded to ``'``), so
    punctuation, case and emoji never hide a copied phrase.
    """
    words = (pl.col(text_col).fill_null("").str.to_lowercase().str.replace_all("[’‘ʼ`´]", "'")
             .str.extract_all(WORD_RE))
    return (frame.with_columns(_w=words)
            .with_columns(_k=pl.int_ranges(0, (pl.col("_w").list.len().cast(pl.Int64) - n + 1)
                                           .clip(0)))
            .explode("_k").drop_nulls("_k")
            .with_columns(run=pl.col("_w").list.slice(pl.col("_k"), n).list.join(" "))
            .drop("_w", "_k", text_col))


def shared_word_runs(rule_texts: pl.DataFrame, tweets: pl.DataFrame, text_cols: list[str],
                     n: int = 6) -> pl.DataFrame:
    """Rule texts that share a run of ``n``+ words with a tweet: (rule, text, tweet_id, run).

    ``rule_texts`` holds ``rule`` and ``text`` (every example and counter-example); ``tweets`` holds
    ``tweet_id`` and the ``text_cols`` to check (the raw text and the cleaned text the rules see,
    so a run spanning a removed @handle is caught too). A shared run of n+ words always contains a
    shared run of exactly n, so comparing n-word runs is enough.
    """
    tweet_runs = pl.concat([word_runs(tweets.select("tweet_id", c), c, n) for c in text_cols]
                           ).unique(["run", "tweet_id"])
    rules = word_runs(rule_texts.with_columns(_text=pl.col("text")), "_text", n)
    return (rules.join(tweet_runs, on="run", how="inner")
            .select("rule", "text", "tweet_id", "run").sort("rule", "text", "tweet_id", "run"))


# ---------------------------------------------------------------------------------------------
# adjudication: mechanical rules written in the guidelines before the passes were made
# ---------------------------------------------------------------------------------------------
PRIORITY = ("travel_disruption", "billing_refunds", "account_login", "network_outage",
            "app_software_device", "order_delivery", "product_quality", "staff_service",
            "praise_thanks", "other_unclear")
NON_PROBLEM = ("praise_thanks", "other_unclear")
END_ORDER = ("still_unhappy", "procedural", "satisfied")


def adjudicate_category(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Gold guidelines section 8: agree -> it; one other_unclear -> the other; else R15 order."""
    rank = {c: i for i, c in enumerate(PRIORITY)}
    ra = a.replace_strict(rank, return_dtype=pl.Int32)
    rb = b.replace_strict(rank, return_dtype=pl.Int32)
    return (pl.when(a == b).then(a)
            .when(a == "other_unclear").then(b)
            .when(b == "other_unclear").then(a)
            .when(ra < rb).then(a).otherwise(b))


def adjudicate_complaint(a: pl.Expr, b: pl.Expr, cat_a: pl.Expr, cat_b: pl.Expr) -> pl.Expr:
    """Gold guidelines section 8: agree -> it; else yes when both categories are problem categories."""
    both_problem = ~cat_a.is_in(list(NON_PROBLEM)) & ~cat_b.is_in(list(NON_PROBLEM))
    return (pl.when(a == b).then(a)
            .when(both_problem).then(pl.lit("yes")).otherwise(pl.lit("no")))


def adjudicate_opening(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Outcome guidelines section 5: agree -> it; else unhappy."""
    return pl.when(a == b).then(a).otherwise(pl.lit("unhappy"))


def adjudicate_end(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Outcome guidelines section 5: agree -> it; unclear loses; else the more conservative label."""
    rank = {c: i for i, c in enumerate((*END_ORDER, "unclear"))}
    ra = a.replace_strict(rank, return_dtype=pl.Int32)
    rb = b.replace_strict(rank, return_dtype=pl.Int32)
    return (pl.when(a == b).then(a)
            .when(a == "unclear").then(b)
            .when(b == "unclear").then(a)
            .when(ra < rb).then(a).otherwise(b))


# ---------------------------------------------------------------------------------------------
# building the adjudicated files and the agreement table (python -m scrm.labelsets)
# ---------------------------------------------------------------------------------------------
def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False).with_columns(pl.col(pl.Utf8).str.strip_chars())


def build_references(ref: Path) -> dict[str, object]:
    """Adjudicate the two passes of every hand-labelled set in ``ref`` and measure agreement.

    Writes gold_test_labels.csv, the ``complaint`` column of gold_labels.csv (dev), outcome_labels.csv
    and agreement.json; returns the agreement table. Deterministic: rerunning gives the same files.
    """
    from .io import write_csv, write_json
    from .stats.agreement import kappa_with_interval

    key = pl.col("tweet_id").cast(pl.Int64)
    # sealed test: pass A vs pass B
    ta = _read(ref / "gold_test_pass_a.csv").select(key, label_a="label", complaint_a="complaint")
    tb = _read(ref / "gold_test_pass_b.csv").select(key, label_b="label", complaint_b="complaint")
    draw = pl.read_csv(ref / "gold_test_draw.csv").select(key)
    test = draw.join(ta, on="tweet_id", how="left").join(tb, on="tweet_id", how="left")
    if test.null_count().sum_horizontal().item():
        raise ValueError("a pass misses a drawn tweet")
    test_final = test.select(
        "tweet_id",
        label=adjudicate_category(pl.col("label_a"), pl.col("label_b")),
        complaint=adjudicate_complaint(pl.col("complaint_a"), pl.col("complaint_b"),
                                       pl.col("label_a"), pl.col("label_b")),
    ).sort("tweet_id")
    # dev: the original labels vs a full second pass; complaint: pass A (complaint only) vs pass B
    dev = _read(ref / "gold_labels.csv").select(key, "label")
    db = _read(ref / "gold_dev_pass_b.csv").select(key, label_b="label", complaint_b="complaint")
    da = _read(ref / "gold_dev_complaint_pass_a.csv").select(key, complaint_a="complaint")
    dev_all = dev.join(da, on="tweet_id", how="left").join(db, on="tweet_id", how="left")
    if dev_all.null_count().sum_horizontal().item():
        raise ValueError("a dev pass misses a gold tweet")
    dev_final = dev_all.select(
        "tweet_id", "label",
        complaint=adjudicate_complaint(pl.col("complaint_a"), pl.col("complaint_b"),
                                       pl.col("label"), pl.col("label_b")),
    ).sort("tweet_id")
    # outcome: pass A vs pass B, with the draw's dev/test part
    tid = pl.col("thread_id").cast(pl.Int64)
    oa = _read(ref / "outcome_labels_pass_a.csv").select(tid, open_a="opening_state", end_a="end_state")
    ob = _read(ref / "outcome_labels_pass_b.csv").select(tid, open_b="opening_state", end_b="end_state")
    odraw = pl.read_csv(ref / "outcome_draw.csv").select(tid, "part")
    out = odraw.join(oa, on="thread_id", how="left").join(ob, on="thread_id", how="left")
    if out.null_count().sum_horizontal().item():
        raise ValueError("an outcome pass misses a drawn thread")
    out_final = out.select(
        "thread_id", "part",
        opening_state=adjudicate_opening(pl.col("open_a"), pl.col("open_b")),
        end_state=adjudicate_end(pl.col("end_a"), pl.col("end_b")),
    ).sort("thread_id")

    def kap(df: pl.DataFrame, a: str, b: str) -> dict[str, object]:
        return kappa_with_interval(df[a].to_list(), df[b].to_list(), seed=GOLD_TEST_SEED)

    agreement = {
        "gold_test_label": kap(test, "label_a", "label_b"),
        "gold_test_complaint": kap(test, "complaint_a", "complaint_b"),
        "gold_dev_label_original_vs_pass_b": kap(dev_all, "label", "label_b"),
        "gold_dev_complaint": kap(dev_all, "complaint_a", "complaint_b"),
        "outcome_opening_state": kap(out, "open_a", "open_b"),
        "outcome_end_state": kap(out, "end_a", "end_b"),
        "note": "Cohen's kappa between two independent passes; 95% percentile bootstrap over items "
                "(2,000 resamples). Dev labels: the original single-annotator labels vs a second "
                "pass made later from the guidelines alone.",
    }
    write_csv(test_final, ref / "gold_test_labels.csv")
    write_csv(dev_final, ref / "gold_labels.csv")
    write_csv(out_final, ref / "outcome_labels.csv")
    write_json(ref / "agreement.json", agreement)
    return agreement


if __name__ == "__main__":  # pragma: no cover - a maintenance command, tested through build_references
    import json
    import sys

    from .paths import REFERENCES

    print(json.dumps(build_references(Path(sys.argv[1]) if len(sys.argv) > 1 else REFERENCES),
                     indent=1))
