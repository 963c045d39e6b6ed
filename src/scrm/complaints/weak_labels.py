"""Stage ``complaints``: weak complaint labels for every customer opening, scored on dev and the
sealed test.

Inputs: ``data/processed/openings.parquet`` (the one openings table, :mod:`scrm.data.openings`: the
opening, its customer, time, text and brand), the taxonomy (:mod:`scrm.complaints.taxonomy`), the
two hand-labelled sets (dev ``complaints.gold_file`` and the sealed test ``complaints.test_file``,
both ``tweet_id,label,complaint``) and, optionally, a user's labels file
(:mod:`scrm.complaints.gold`). Settings: :class:`scrm.config.ComplaintsSettings` (params
``complaints:``). Besides majority vote (:mod:`.taxonomy`), a generative label model
(:mod:`.label_model`, Snorkel) labels every opening; both are scored on dev and on the sealed test.

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
gold_label     Utf8 (nullable)       hand label from the dev gold set; null when not in dev
gold_complaint Utf8 (nullable)       dev's second field: ``yes`` (a complaint) / ``no``; null off dev
test_label     Utf8 (nullable)       hand label from the sealed test set; null when not in it. Read
                                     only to *score* (benchmark protocol weak -> gold); never to fit,
                                     select or tune anything
test_complaint Utf8 (nullable)       the sealed test's complaint field (yes / no), same rule
lm_label       Utf8 (nullable)       the label model's label; null where no rule fires (or a tie)
lm_confidence  Float64 (nullable)    the label model's probability of ``lm_label``
=============  ====================  ===============================================================

Labels-file policy (``complaints.labels_file``, a ``tweet_id,label`` CSV): labels must be taxonomy
categories and ids unique (else an error naming file and line); ids that are not openings of this run
are an error unless ``labels_unknown_ids: ignore``; openings absent from the file get a null
``label`` unless ``labels_fill: weak`` (then their weak label).

Also written: ``data/processed/lf_summary.csv`` (one row per labelling function: coverage, overlaps,
conflicts, precision on **dev** only (the ``gold_*`` columns), the label model's learned weight) and
``reports/metrics/complaints.json`` (deterministic, floats rounded to 6 decimals): ``gold`` (dev,
majority vote), ``dev`` and ``sealed_test`` (majority vote and label model, each with intervals and
their paired difference). Dev scores are optimistic (the rules were written with dev in view); the
sealed-test ones carry the claims.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from .. import status
from ..config import ComplaintsSettings
from ..errors import DataError
from ..io import write_csv, write_json, write_parquet
from ..paths import PROJECT_ROOT, Paths
from ..text import clean_for_topics
from . import gold as gold_mod
from . import label_model as lm_mod
from .taxonomy import Taxonomy, apply_lfs, combine, lf_summary, load_taxonomy

CONTRACT: dict[str, pl.DataType] = {
    "tweet_id": pl.Int64(), "thread_id": pl.Int64(), "brand": pl.Utf8(), "customer_id": pl.Utf8(),
    "created_at": pl.Datetime("us", "UTC"), "text": pl.Utf8(), "text_clean": pl.Utf8(),
    "weak_label": pl.Utf8(), "n_lfs_fired": pl.Int32(), "label": pl.Utf8(), "gold_label": pl.Utf8(),
    "gold_complaint": pl.Utf8(), "test_label": pl.Utf8(), "test_complaint": pl.Utf8(),
    "lm_label": pl.Utf8(), "lm_confidence": pl.Float64(),
}
OUTPUT_COLUMNS: tuple[str, ...] = (
    "tweet_id", "thread_id", "brand", "brand_source", "customer_id", "created_at", "text",
    "text_clean", "weak_label", "n_lfs_fired", "lfs_fired", "label", "label_source", "gold_label",
    "gold_complaint", "test_label", "test_complaint", "lm_label", "lm_confidence",
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
    """Majority vote on dev as before (``gold``: abstain wrong, covered, abstain as other)."""
    empty = {"gold_per_class": {}, "gold_confusion": {}, "gold_label_counts": {}}  # same keys
    if gold_path is None:
        return {"gold": None, **empty}
    g = df.filter(pl.col("gold_label").is_not_null()).sort("tweet_id")
    if g.height == 0:
        return {"gold": {"file": gold_path.name, "n": 0,
                         "note": "no gold tweet is an opening of this run"}, **empty}
    truth = g["gold_label"].to_list()
    full = gold_mod.evaluate(g["weak_label"].to_list(), truth, abstain_as=tax.abstain,
                             labels=tax.names)
    out: dict[str, Any] = {
        "gold": {"file": gold_path.name, "set": "dev",
                 **{k: full[k] for k in gold_mod.SCORE_KEYS}},
        "gold_per_class": full["per_class"],
        "gold_confusion": full["confusion"],
        "gold_label_counts": _counts(g["gold_label"]),
    }
    if label_source == "file":
        lab = gold_mod.evaluate(g["label"].to_list(), truth, labels=tax.names)
        out["label_vs_gold"] = {k: lab[k] for k in gold_mod.SCORE_KEYS if k in lab}
    return out


def set_scores(df: pl.DataFrame, tax: Taxonomy, label_col: str, complaint_col: str,
               path: Path | None, settings: ComplaintsSettings) -> dict[str, Any] | None:
    """Majority vote and label model on one hand-labelled set (dev or the sealed test), with
    intervals and their paired difference (:func:`scrm.complaints.gold.evaluate_with_intervals`)."""
    if path is None:
        return None
    g = df.filter(pl.col(label_col).is_not_null()).sort("tweet_id")
    if g.height == 0:
        return {"file": path.name, "n": 0, "note": "no labelled tweet is an opening of this run"}
    scores = gold_mod.evaluate_with_intervals(
        {"majority_vote": g["weak_label"].to_list(), "label_model": g["lm_label"].to_list()},
        g[label_col].to_list(), tax.names, tax.abstain, n_boot=settings.n_boot,
        seed=settings.seed, level=settings.ci_level)
    return {"file": path.name, "n": g.height, "ci_level": settings.ci_level,
            "n_boot": settings.n_boot, "macro_f1_labels": tax.names,
            "intervals": "Wilson for shares; percentile bootstrap over tweets for macro-F1 "
                         "(zero_division=0 over all categories)",
            "label_counts": _counts(g[label_col]),
            "complaint_counts": _counts(g[complaint_col]), **scores}


def attach_gold(df: pl.DataFrame, path: Path | None, tax: Taxonomy, label_col: str,
                complaint_col: str) -> pl.DataFrame:
    """Join a hand-labelled set's two fields as ``label_col`` / ``complaint_col`` (null off the set)."""
    if path is None:
        return df.with_columns(pl.lit(None, pl.Utf8).alias(label_col),
                               pl.lit(None, pl.Utf8).alias(complaint_col))
    g = gold_mod.load_gold_fields(path, tax.names)
    return df.join(g.select("tweet_id", pl.col("label").alias(label_col),
                            pl.col("complaint").alias(complaint_col)), on="tweet_id", how="left")


def run(paths: Paths, settings: ComplaintsSettings) -> dict[str, Any]:
    """Label every customer opening, fit the label model, score on dev and the sealed test, write."""
    tax = load_taxonomy(resolve(paths, settings.taxonomy))
    df = label_openings(_read_openings(paths), tax, settings.min_votes)

    gold_path = resolve(paths, settings.gold_file)
    test_path = resolve(paths, settings.test_file)
    df = attach_gold(df, gold_path, tax, "gold_label", "gold_complaint")
    df = attach_gold(df, test_path, tax, "test_label", "test_complaint")
    both = df.filter(pl.col("gold_label").is_not_null() & pl.col("test_label").is_not_null())
    if both.height:
        raise DataError(f"{both.height} tweet(s) are in both the dev set and the sealed test (first "
                        f"{both['tweet_id'][0]}); the sets must be disjoint", test_path)
    fit = lm_mod.fit_predict(lm_mod.label_matrix(df, tax), df["test_label"].is_null().to_numpy(),
                             tax, dict(settings.label_model), settings.seed)
    df = df.with_columns(pl.Series("lm_label", fit.labels, dtype=pl.Utf8),
                         pl.Series("lm_confidence", fit.confidence, dtype=pl.Float64)
                         .fill_nan(None).round(6))
    df, label_info = _attach_user_labels(df, tax, settings, resolve(paths, settings.labels_file))
    df = df.sort("tweet_id")

    summary = lf_summary(df, tax, "gold_label" if gold_path is not None else None).with_columns(
        pl.col("lf").replace_strict(fit.weights, return_dtype=pl.Float64)
        .alias("label_model_weight"))
    metrics = compute_metrics(df, tax, summary, label_info,
                              _gold_metrics(df, tax, gold_path, label_info["source"]))
    metrics = {**(status.ok() if df.height else status.no_data(
        status.because(paths, "the opening table is empty"))), **metrics}
    metrics["label_model"] = {**(status.skipped(fit.skipped) if fit.skipped else status.ok()),
                              "library": "snorkel 0.10 LabelModel", "classes": fit.classes,
                              "fitted_on": "openings outside the sealed test (no labels read)",
                              "n_fit": fit.n_fit, "coverage": _share(df["lm_label"]),
                              "differs_from_majority_vote": int(
                                  (df["lm_label"] != df["weak_label"]).fill_null(False).sum())}
    metrics["agreement"] = _agreement(gold_path)
    metrics["dev"] = set_scores(df, tax, "gold_label", "gold_complaint", gold_path, settings)
    metrics["sealed_test"] = set_scores(df, tax, "test_label", "test_complaint", test_path, settings)

    paths.ensure()
    out = df.select(list(OUTPUT_COLUMNS)).with_columns(
        [pl.col(c).cast(t) for c, t in CONTRACT.items()])
    write_parquet(out, paths.complaints)
    write_csv(summary, paths.lf_summary)
    write_json(paths.metric("complaints"), metrics)
    if settings.track:
        _track(paths, settings, tax, metrics, [paths.openings, tax.source]
               + [p for p in (gold_path, test_path) if p])
    return metrics


def _agreement(gold_path: Path | None) -> dict[str, Any] | None:
    """Cohen's kappa of the complaint sets' two passes, from ``agreement.json`` beside the dev file
    (written by ``python -m scrm.labelsets``), so the report can show it; None without one."""
    import json

    path = gold_path.parent / "agreement.json" if gold_path is not None else None
    if path is None or not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    out = {k: v for k, v in data.items() if k.startswith("gold_")}
    return {**out, "annotators": "independent AI-assistant instances, not people",
            "file": path.name} if out else None


def _share(s: pl.Series) -> float:
    return round(float(s.is_not_null().mean()), 6) if s.len() else 0.0


def _track(paths: Paths, settings: ComplaintsSettings, tax: Taxonomy, metrics: dict[str, Any],
           inputs: list[Path]) -> None:
    """One MLflow run per stage run: params, input hashes and the headline numbers."""
    from .. import tracking

    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    for k, v in (metrics.get("gold") or {}).items():
        if isinstance(v, (int, float)) and v is not None:
            flat[f"gold_{k}"] = v
    for part in ("dev", "sealed_test"):
        for labeller in ("majority_vote", "label_model"):
            rec = (metrics.get(part) or {}).get(labeller) or {}
            for k in ("coverage", "accuracy_covered", "macro_f1", "macro_f1_abstain_as_other"):
                if isinstance(rec.get(k), (int, float)):
                    flat[f"{part}.{labeller}.{k}"] = rec[k]
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
