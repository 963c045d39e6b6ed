"""Stage ``complaints``: weak complaint labels for every customer opening, scored on the gold set.

Inputs: ``data/processed/openings.parquet`` (the one openings table, :mod:`scrm.data.openings`: the
opening, its customer, time, text and brand), the taxonomy (:mod:`scrm.complaints.taxonomy`), the
gold set and, optionally, a user's labels file (:mod:`scrm.complaints.gold`). Settings:
:class:`scrm.config.ComplaintsSettings` (params ``complaints:``).

Output contract: ``data/processed/complaints.parquet``, one row per customer opening, sorted by
``tweet_id``. Later stages (embed, topics, benchmark, report) rely on these columns; new columns may
be added, none of these removed or renamed.

=============  ====================  ===============================================================
column         dtype                 meaning
=============  ====================  ===============================================================
tweet_id       Int64                 the opening tweet (= thread root; ``opening_tweet_id``)
thread_id      Int64                 its thread (equal to tweet_id for an opening)
brand          Utf8 (nullable)       brand of the opening as defined in :mod:`scrm.data.openings`
                                     (first brand to tweet in the thread, else the first @mentioned
                                     known brand, else null)
brand_source   Utf8                  ``first_reply``, ``mention`` or ``none`` (from the openings table)
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

from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from ..config import ComplaintsSettings
from ..errors import DataError
from ..io import write_csv, write_json, write_parquet
from ..paths import PROJECT_ROOT, Paths
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


def opening_frame(openings: pl.LazyFrame) -> pl.LazyFrame:
    """The contract's id, brand, customer, time and text columns of every customer opening.

    Brand and brand source are taken as they are from the openings table, so the complaints, response
    time and outcome stages agree on the brand of every opening.
    """
    return (
        openings.select(
            pl.col("opening_tweet_id").cast(pl.Int64).alias("tweet_id"),
            pl.col("thread_id").cast(pl.Int64),
            pl.col("brand").cast(pl.Utf8),
            pl.col("brand_source").cast(pl.Utf8),
            pl.col("customer_id").cast(pl.Utf8),
            pl.col("opening_at").dt.convert_time_zone("UTC").alias("created_at"),
            pl.col("opening_text").alias("text"),
            clean_for_topics("opening_text").alias("text_clean"),
        )
        .sort("tweet_id")
    )


def _read_openings(paths: Paths) -> pl.LazyFrame:
    if not paths.openings.exists():
        raise DataError("not found; run `scrm prepare` (or `dvc repro prepare`) first", paths.openings)
    return pl.scan_parquet(paths.openings)


def _attach_user_labels(df: pl.DataFrame, tax: Taxonomy, settings: ComplaintsSettings,
                        labels_path: Path | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Fill ``label``/``label_source`` from the weak labels or the user's labels file."""
    if labels_path is None:
        return df.with_columns(label=pl.col("weak_label"), label_source=pl.lit("weak")), {
            "source": "weak"}
    user = gold_mod.load_labels(labels_path, tax.names)
    n_rows = user.height
    user = gold_mod.check_ids(user, df["tweet_id"], labels_path, settings.labels_unknown_ids)
    fill = settings.labels_fill
    out = df.join(user.select("tweet_id", pl.col("label").alias("_user")), on="tweet_id", how="left")
    label = pl.col("_user")
    if fill == "weak":
        label = pl.coalesce(pl.col("_user"), pl.col("weak_label"))
    out = out.with_columns(label=label, label_source=pl.lit("file")).drop("_user")
    info = {"source": "file", "file": labels_path.name, "rows_in_file": n_rows,
            "rows_used": user.height, "unknown_ids_dropped": n_rows - user.height,
            "fill": fill or "none"}
    return out, info


def label_openings(openings: pl.LazyFrame, tax: Taxonomy, min_votes: int) -> pl.DataFrame:
    """Openings + label matrix (one Boolean column per LF) + weak_label / n_lfs_fired / lfs_fired."""
    return combine(apply_lfs(opening_frame(openings), tax, "text_clean"), tax, min_votes).collect()


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


def run(paths: Paths, settings: ComplaintsSettings) -> dict[str, Any]:
    """Label every customer opening, summarise the LFs, score against gold, write the outputs."""
    tax = load_taxonomy(resolve(paths, settings.taxonomy))
    df = label_openings(_read_openings(paths), tax, settings.min_votes)

    gold_path = resolve(paths, settings.gold_file)
    if gold_path is not None:
        gold = gold_mod.load_labels(gold_path, tax.names)
        df = df.join(gold.select("tweet_id", pl.col("label").alias("gold_label")), on="tweet_id",
                     how="left")
    else:
        df = df.with_columns(gold_label=pl.lit(None, pl.Utf8))
    df, label_info = _attach_user_labels(df, tax, settings, resolve(paths, settings.labels_file))
    df = df.sort("tweet_id")

    summary = lf_summary(df, tax, "gold_label" if gold_path is not None else None)
    metrics = compute_metrics(df, tax, summary, label_info,
                              _gold_metrics(df, tax, gold_path, label_info["source"]))

    paths.ensure()
    out = df.select(list(OUTPUT_COLUMNS)).with_columns(
        [pl.col(c).cast(t) for c, t in CONTRACT.items()])
    write_parquet(out, paths.complaints)
    write_csv(summary, paths.lf_summary)
    write_json(paths.metric("complaints"), metrics)
    if settings.track:
        _track(paths, settings, tax, metrics, [paths.openings, tax.source]
               + ([gold_path] if gold_path else []))
    return metrics


def _track(paths: Paths, settings: ComplaintsSettings, tax: Taxonomy, metrics: dict[str, Any],
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
    with tracking.start_run("complaints", "weak-labels",
                            params={**asdict(settings), "taxonomy_file": tax.source.name},
                            inputs=inputs, root=paths.root):
        tracking.log_metrics(flat)
        tracking.log_artifact(paths.lf_summary)
        tracking.log_dict({"lfs": metrics["lfs"]}, "lf_summary.json")
