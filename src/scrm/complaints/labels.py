"""Stage ``complaints``: weak complaint labels for every customer opening, scored on the gold set.

Inputs: ``data/interim/tweets.parquet`` and ``data/processed/threads.parquet`` (see
:mod:`scrm.data.schema`), the taxonomy (:mod:`scrm.complaints.taxonomy`), the gold set and,
optionally, a user's labels file (:mod:`scrm.complaints.gold`). Params: ``complaints:``.

Output contract: ``data/processed/complaints.parquet``, one row per customer opening
(``threads.is_opening``), sorted by ``tweet_id``. Later stages (embed, topics, benchmark, report)
rely on these columns; new columns may be added, none of these removed or renamed.

=============  ====================  ===============================================================
column         dtype                 meaning
=============  ====================  ===============================================================
tweet_id       Int64                 the opening tweet (= thread root)
thread_id      Int64                 its thread (equal to tweet_id for an opening)
brand          Utf8 (nullable)       brand account of the thread (``threads.brand``); when no brand
                                     replied, the first @handle in the text that is a known brand
                                     account (:func:`brand_from_mentions`); else null
brand_source   Utf8 (nullable)       ``reply`` (from the thread), ``mention`` (from the text), null
customer_id    Utf8                  author of the opening (anonymised customer id)
created_at     Datetime(us, UTC)     when the opening was posted
text           Utf8                  original text, unchanged
text_clean     Utf8                  without @handles, URLs, sign-offs (:func:`scrm.text.clean_for_topics`)
weak_label     Utf8 (nullable)       combined labelling-function vote; null = abstain
n_lfs_fired    Int32                 labelling functions that fired on the text
lfs_fired      List(Utf8)            their names, in taxonomy order
label          Utf8 (nullable)       the label downstream stages use: the user's labels file when
                                     ``complaints.labels_file`` is set, else ``weak_label``
label_source   Utf8                  ``weak`` or ``file``
gold_label     Utf8 (nullable)       hand label from the gold set; null when not in the gold set
=============  ====================  ===============================================================

Labels-file policy (``complaints.labels_file``, a ``tweet_id,label`` CSV): labels must be taxonomy
categories and ids unique (else an error naming file and line); ids that are not openings of this run
are an error unless ``labels_unknown_ids: ignore``; openings absent from the file get a null
``label`` unless ``labels_fill: weak`` (then their weak label).

Also written: ``data/processed/lf_summary.csv`` (one row per labelling function: coverage, overlaps,
conflicts, precision on the gold set) and ``reports/metrics/complaints.json`` (deterministic,
floats rounded to 6 decimals).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..config import PROJECT_ROOT, Paths, section
from ..errors import DataError
from ..io import write_csv, write_json, write_parquet
from ..text import clean_for_topics
from . import gold as gold_mod
from .taxonomy import Taxonomy, apply_lfs, combine, lf_summary, load_taxonomy

CONTRACT: dict[str, pl.DataType] = {
    "tweet_id": pl.Int64(), "thread_id": pl.Int64(), "brand": pl.Utf8(), "customer_id": pl.Utf8(),
    "created_at": pl.Datetime("us", "UTC"), "text": pl.Utf8(), "text_clean": pl.Utf8(),
    "weak_label": pl.Utf8(), "n_lfs_fired": pl.Int32(), "label": pl.Utf8(), "gold_label": pl.Utf8(),
}
OUTPUT_COLUMNS: tuple[str, ...] = (
    "tweet_id", "thread_id", "brand", "brand_source", "customer_id", "created_at", "text",
    "text_clean", "weak_label", "n_lfs_fired", "lfs_fired", "label", "label_source", "gold_label",
)
HANDLE_RE = r"@(\w+)"


def resolve(paths: Paths, value: str | Path | None) -> Path | None:
    """A params path: absolute as is; relative to the run root if it exists there, else the project."""
    if value in (None, ""):
        return None
    p = Path(str(value)).expanduser()
    if p.is_absolute():
        return p
    for base in (paths.root, PROJECT_ROOT):
        if (base / p).exists():
            return base / p
    return paths.root / p


def brand_from_mentions(text: str | pl.Expr, brands: Sequence[str]) -> pl.Expr:
    """The first @handle in ``text`` that is a known brand account (case-insensitive), else null.

    Why: an opening nobody answered has no brand in ``threads`` (brand = who replied), but the
    customer addressed it to a brand with an @mention; taking the first mention that matches a brand
    account seen in the data keeps unanswered openings in per-brand views instead of losing them.
    """
    e = pl.col(text) if isinstance(text, str) else text
    canon = {b.lower(): b for b in sorted(brands, reverse=True)}  # ties: the first in sort order
    return (e.str.extract_all(HANDLE_RE)
            .list.eval(pl.element().str.slice(1).str.to_lowercase()
                       .replace_strict(canon, default=None, return_dtype=pl.Utf8))
            .list.drop_nulls().list.first())


def build_openings(tweets: pl.LazyFrame, threads: pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer opening with the contract's id, brand, customer, time and text columns."""
    brands = (tweets.filter(pl.col("role") == "brand").select(pl.col("author_id").unique())
              .collect()["author_id"].to_list())
    mention = brand_from_mentions("opening_text", brands)
    return (
        threads.filter(pl.col("is_opening"))
        .select(
            pl.col("opening_tweet_id").cast(pl.Int64).alias("tweet_id"),
            pl.col("thread_id").cast(pl.Int64),
            pl.coalesce(pl.col("brand"), mention).alias("brand"),
            pl.when(pl.col("brand").is_not_null()).then(pl.lit("reply"))
            .when(mention.is_not_null()).then(pl.lit("mention"))
            .otherwise(pl.lit(None, pl.Utf8)).alias("brand_source"),
            pl.col("opening_author_id").cast(pl.Utf8).alias("customer_id"),
            pl.col("opening_at").dt.convert_time_zone("UTC").alias("created_at"),
            pl.col("opening_text").alias("text"),
            clean_for_topics("opening_text").alias("text_clean"),
        )
        .sort("tweet_id")
    )


def _read_inputs(paths: Paths) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    for p in (paths.tweets, paths.threads):
        if not p.exists():
            raise DataError("not found; run `scrm prepare` (or `dvc repro prepare`) first", p)
    return pl.scan_parquet(paths.tweets), pl.scan_parquet(paths.threads)


def _attach_user_labels(df: pl.DataFrame, tax: Taxonomy, sec: dict[str, Any],
                        labels_path: Path | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Fill ``label``/``label_source`` from the weak labels or the user's labels file."""
    if labels_path is None:
        return df.with_columns(label=pl.col("weak_label"), label_source=pl.lit("weak")), {
            "source": "weak"}
    user = gold_mod.load_labels(labels_path, tax.names)
    n_rows = user.height
    user = gold_mod.check_ids(user, df["tweet_id"], labels_path,
                              str(sec.get("labels_unknown_ids") or "error"))
    fill = sec.get("labels_fill")
    if fill not in (None, "weak"):
        raise DataError(f"complaints.labels_fill must be null or `weak` (got {fill!r})")
    out = df.join(user.select("tweet_id", pl.col("label").alias("_user")), on="tweet_id", how="left")
    label = pl.col("_user")
    if fill == "weak":
        label = pl.coalesce(pl.col("_user"), pl.col("weak_label"))
    out = out.with_columns(label=label, label_source=pl.lit("file")).drop("_user")
    info = {"source": "file", "file": labels_path.name, "rows_in_file": n_rows,
            "rows_used": user.height, "unknown_ids_dropped": n_rows - user.height,
            "fill": fill or "none"}
    return out, info


def label_openings(tweets: pl.LazyFrame, threads: pl.LazyFrame, tax: Taxonomy,
                   min_votes: int = 1) -> pl.DataFrame:
    """Openings + label matrix (one Boolean column per LF) + weak_label / n_lfs_fired / lfs_fired."""
    lazy = build_openings(tweets, threads)
    return combine(apply_lfs(lazy, tax, "text_clean"), tax, min_votes).collect()


def _counts(s: pl.Series) -> dict[str, int]:
    vc = s.drop_nulls().value_counts()
    return {str(k): int(v) for k, v in sorted(zip(vc[s.name], vc["count"]))}


def compute_metrics(df: pl.DataFrame, tax: Taxonomy, summary: pl.DataFrame,
                    label_info: dict[str, Any], gold_info: dict[str, Any]) -> dict[str, Any]:
    """The stage's metrics (deterministic; rounded floats)."""
    n = df.height
    covered = int(df["weak_label"].is_not_null().sum())
    n_labels = pl.concat_list([pl.when(pl.col(lf.name)).then(pl.lit(lf.label))
                               .otherwise(pl.lit(None, pl.Utf8)) for lf in tax.lfs]
                              ).list.drop_nulls().list.n_unique()
    conflict_rows = int(df.select((n_labels > 1).sum()).item()) if n else 0
    m: dict[str, Any] = {
        "openings": n,
        "n_lfs": len(tax.lfs),
        "coverage": round(covered / n, 6) if n else 0.0,
        "abstained": n - covered,
        "overlap_rate": round(float((df["n_lfs_fired"] > 1).sum()) / n, 6) if n else 0.0,
        "conflict_rate": round(conflict_rows / n, 6) if n else 0.0,
        "weak_label_counts": _counts(df["weak_label"]),
        "label_source": label_info["source"],
        "label_counts": _counts(df["label"]),
        "labels_file": label_info if label_info["source"] == "file" else None,
        "brand_from_mention": int((df["brand_source"] == "mention").sum()),
        "no_brand": int(df["brand"].is_null().sum()),
        "lfs": {r["lf"]: {k: v for k, v in r.items() if k != "lf"}
                for r in summary.iter_rows(named=True)},
    }
    m.update(gold_info)
    return m


def _gold_metrics(df: pl.DataFrame, tax: Taxonomy, gold_path: Path | None,
                  label_source: str) -> dict[str, Any]:
    if gold_path is None:
        return {"gold": None}
    g = df.filter(pl.col("gold_label").is_not_null()).sort("tweet_id")
    if g.height == 0:
        return {"gold": {"file": gold_path.name, "n": 0,
                         "note": "no gold tweet is an opening of this run"}}
    truth = g["gold_label"].to_list()
    full = gold_mod.evaluate(g["weak_label"].to_list(), truth, abstain_as=tax.abstain)
    keys = ("n", "n_covered", "coverage", "accuracy_covered", "accuracy_overall", "macro_f1",
            "macro_f1_covered", "accuracy_abstain_as_other", "macro_f1_abstain_as_other")
    out: dict[str, Any] = {
        "gold": {"file": gold_path.name, **{k: full[k] for k in keys}},
        "gold_per_class": full["per_class"],
        "gold_confusion": full["confusion"],
        "gold_label_counts": _counts(g["gold_label"]),
    }
    if label_source == "file":
        lab = gold_mod.evaluate(g["label"].to_list(), truth)
        out["label_vs_gold"] = {k: lab[k] for k in keys if k in lab}
    return out


def run(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Label every customer opening, summarise the LFs, score against gold, write the outputs."""
    sec = section(params, "complaints")
    tax = load_taxonomy(resolve(paths, sec.get("taxonomy")))
    min_votes = int(sec.get("min_votes", 1))
    tweets, threads = _read_inputs(paths)
    df = label_openings(tweets, threads, tax, min_votes)

    gold_path = resolve(paths, sec.get("gold_file", "references/gold_labels.csv"))
    if gold_path is not None:
        gold = gold_mod.load_labels(gold_path, tax.names)
        df = df.join(gold.select("tweet_id", pl.col("label").alias("gold_label")), on="tweet_id",
                     how="left")
    else:
        df = df.with_columns(gold_label=pl.lit(None, pl.Utf8))
    df, label_info = _attach_user_labels(df, tax, sec, resolve(paths, sec.get("labels_file")))
    df = df.sort("tweet_id")

    summary = lf_summary(df, tax, "gold_label" if gold_path is not None else None)
    metrics = compute_metrics(df, tax, summary, label_info,
                              _gold_metrics(df, tax, gold_path, label_info["source"]))

    paths.ensure()
    out = df.select(list(OUTPUT_COLUMNS)).with_columns(
        [pl.col(c).cast(t) for c, t in CONTRACT.items()])
    write_parquet(out, paths.processed / "complaints.parquet")
    write_csv(summary, paths.processed / "lf_summary.csv")
    write_json(paths.metrics / "complaints.json", metrics)
    if sec.get("track", True):
        _track(paths, sec, tax, metrics, [paths.tweets, paths.threads, tax.source]
               + ([gold_path] if gold_path else []))
    return metrics


def _track(paths: Paths, sec: dict[str, Any], tax: Taxonomy, metrics: dict[str, Any],
           inputs: list[Path]) -> None:
    """One MLflow run per stage run: params, input hashes and the headline numbers."""
    from .. import tracking

    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for k, v in (metrics.get("gold") or {}).items():
        if isinstance(v, (int, float)) and v is not None:
            flat[f"gold_{k}"] = v
    for lf, r in metrics["lfs"].items():
        flat[f"{lf}.coverage"] = r["coverage"]
        if r.get("gold_precision") is not None:
            flat[f"{lf}.gold_precision"] = r["gold_precision"]
    with tracking.start_run("complaints", "weak-labels", params={**sec, "taxonomy_file": tax.source.name},
                            seed=sec.get("seed"), inputs=inputs, root=paths.root):
        tracking.log_metrics(flat)
        tracking.log_artifact(paths.processed / "lf_summary.csv")
        tracking.log_dict({"lfs": metrics["lfs"]}, "lf_summary.json")
