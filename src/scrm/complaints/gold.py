"""Label files (the hand-labelled gold set, or a user's own labels) and scoring against them.

A label file is a CSV with a header holding ``tweet_id`` and ``label`` (other columns are ignored):
one row per customer opening tweet, ``label`` one of the taxonomy's categories. The gold set
(``references/gold_labels.csv``) was labelled by hand against ``references/gold_guidelines.md``;
a user's file (params ``complaints.labels_file``) has the same format.

Validation names the file and line of the first problem (line 1 is the header; one record per line
is assumed): a missing column, a tweet_id that is not a non-negative integer, an empty or unknown
label, a tweet_id listed twice. Whether ids that are not openings of the current run are an error
is the caller's policy (:func:`check_ids`).

Scoring (:func:`evaluate`): predictions may abstain (null). ``coverage`` is the share of gold rows
with a prediction, ``accuracy_covered`` the accuracy on those, ``accuracy_overall`` counts an
abstention as wrong. ``macro_f1`` is the unweighted mean F1 over every category present in the gold
rows or the predictions, abstentions counted wrong (so a category the weak labels never predict,
such as other_unclear, scores 0 and pulls the mean down: the honest number). ``*_abstain_as_other``
repeats accuracy and macro-F1 reading an abstention as the guidelines' other/unclear category.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import DataError
from ..paths import GOLD_CSV
from ..stats.intervals import finite

ABSTAIN = "(abstain)"


def load_labels(path: Path | str, categories: Sequence[str]) -> pl.DataFrame:
    """Read and validate a ``tweet_id,label`` file -> (tweet_id Int64, label Utf8, line Int64)."""
    path = Path(path)
    if not path.exists():
        raise DataError("labels file not found", path)
    if path.stat().st_size == 0:
        raise DataError("the labels file is empty: expected a header `tweet_id,label` and rows", path, 1)
    try:
        raw = pl.read_csv(path, infer_schema=False, has_header=True)
    except Exception as exc:  # polars: malformed CSV
        raise DataError(f"cannot be read as CSV ({str(exc).splitlines()[0]})", path) from None
    raw = raw.rename({c: c.strip().lower().lstrip("\ufeff") for c in raw.columns})
    missing = [c for c in ("tweet_id", "label") if c not in raw.columns]
    if missing:
        raise DataError(f"header lacks column(s) {', '.join(missing)}; expected `tweet_id,label` "
                        f"(found {','.join(raw.columns)})", path, 1)
    df = raw.select(
        pl.col("tweet_id").str.strip_chars().alias("_id"),
        pl.col("label").str.strip_chars().alias("label"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("line"),
    )
    # ids are integers; a pandas-written file may hold "123.0" (as the raw-data reader accepts)
    _first_bad(df, ~pl.col("_id").fill_null("").str.contains(r"^\d+(\.0+)?$"), path,
               lambda r: f"tweet_id {r['_id']!r} is not a non-negative integer")
    _first_bad(df, pl.col("label").fill_null("") == "", path, lambda r: "label is empty")
    allowed = list(categories)
    _first_bad(df, ~pl.col("label").is_in(allowed), path,
               lambda r: f"unknown label {r['label']!r}; allowed: {', '.join(allowed)}")
    df = df.with_columns(tweet_id=pl.col("_id").str.replace(r"\.0+$", "").cast(pl.Int64)).drop("_id")
    dups = df.filter(pl.col("tweet_id").is_duplicated()).sort("line")
    if dups.height:
        first = dups.row(0, named=True)
        lines = dups.filter(pl.col("tweet_id") == first["tweet_id"])["line"].to_list()
        raise DataError(f"tweet_id {first['tweet_id']} is listed more than once (lines "
                        f"{', '.join(map(str, lines))}); keep one label per tweet", path, lines[-1])
    return df.select("tweet_id", "label", "line")


def _first_bad(df: pl.DataFrame, bad: pl.Expr, path: Path, why: Any) -> None:
    hit = df.filter(bad).sort("line")
    if hit.height:
        row = hit.row(0, named=True)
        more = f" ({hit.height} such rows in all)" if hit.height > 1 else ""
        raise DataError(why(row) + more, path, row["line"])


def check_ids(labels: pl.DataFrame, known_ids: pl.Series, path: Path | str, policy: str) -> pl.DataFrame:
    """Apply the unknown-id policy: ``error`` (name the first line) or ``ignore`` (drop them)."""
    if policy not in ("error", "ignore"):
        raise DataError(f"complaints.labels_unknown_ids must be `error` or `ignore` (got {policy!r})")
    unknown = labels.filter(~pl.col("tweet_id").is_in(known_ids.implode())).sort("line")
    if unknown.height and policy == "error":
        row = unknown.row(0, named=True)
        raise DataError(
            f"tweet_id {row['tweet_id']} is not a customer opening of this run ({unknown.height} "
            "such ids in all). Label only opening tweets (threads.is_opening), or set "
            "complaints.labels_unknown_ids: ignore to drop them.", path, row["line"])
    return labels.filter(pl.col("tweet_id").is_in(known_ids.implode()))


def load_gold(path: Path | str | None = None, categories: Sequence[str] | None = None) -> pl.DataFrame:
    """The hand-labelled gold set (default ``references/gold_labels.csv``) as (tweet_id, label, line)."""
    if categories is None:
        from .taxonomy import load_taxonomy

        categories = load_taxonomy().names
    return load_labels(path or GOLD_CSV, categories)


COMPLAINT_VALUES = ("yes", "no")


def load_gold_fields(path: Path | str, categories: Sequence[str]) -> pl.DataFrame:
    """A hand-labelled set with both fields: (tweet_id, label, complaint) sorted by tweet_id.

    ``complaint`` (guidelines section 7: is the opening a complaint?) must be ``yes`` or ``no`` on
    every row; an error names the file and line. Dev (``references/gold_labels.csv``) and the sealed
    test (``references/gold_test_labels.csv``) have this format.
    """
    path = Path(path)
    labels = load_labels(path, categories)
    raw = pl.read_csv(path, infer_schema=False)
    raw = raw.rename({c: c.strip().lower().lstrip("\ufeff") for c in raw.columns})
    if "complaint" not in raw.columns:
        raise DataError("header lacks column complaint (yes/no, guidelines section 7)", path, 1)
    comp = raw.select(complaint=pl.col("complaint").str.strip_chars().str.to_lowercase(),
                      line=pl.int_range(pl.len(), dtype=pl.Int64) + 2)
    _first_bad(comp, ~pl.col("complaint").fill_null("").is_in(list(COMPLAINT_VALUES)), path,
               lambda r: f"complaint {r['complaint']!r} is not yes or no")
    return (labels.join(comp, on="line", how="left").select("tweet_id", "label", "complaint")
            .sort("tweet_id"))


def evaluate(pred: Sequence[str | None], truth: Sequence[str], abstain_as: str | None = None,
             ) -> dict[str, Any]:
    """Coverage, accuracy (covered / overall), macro-F1, per-class scores and a confusion table."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = list(pred)
    truth = list(truth)
    n = len(truth)
    if n == 0:
        return {"n": 0}
    covered = [i for i, p in enumerate(pred) if p is not None]
    y_pred = [p if p is not None else ABSTAIN for p in pred]
    classes = sorted(set(truth) | {p for p in pred if p is not None})
    correct = sum(p == t for p, t in zip(pred, truth))
    out: dict[str, Any] = {
        "n": n,
        "n_covered": len(covered),
        "coverage": finite(len(covered) / n),
        "accuracy_covered": finite(correct / len(covered)) if covered else None,
        "accuracy_overall": finite(correct / n),
        "macro_f1": finite(f1_score(truth, y_pred, labels=classes, average="macro",
                                    zero_division=0)),
    }
    if covered:
        t_c = [truth[i] for i in covered]
        p_c = [pred[i] for i in covered]
        out["macro_f1_covered"] = finite(f1_score(t_c, p_c, labels=sorted(set(t_c) | set(p_c)),
                                                  average="macro", zero_division=0))
    else:
        out["macro_f1_covered"] = None
    if abstain_as is not None:
        y_other = [p if p is not None else abstain_as for p in pred]
        cls = sorted(set(truth) | set(y_other))
        out["accuracy_abstain_as_other"] = finite(sum(p == t for p, t in zip(y_other, truth))
                                                  / n)
        out["macro_f1_abstain_as_other"] = finite(f1_score(truth, y_other, labels=cls,
                                                           average="macro", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(truth, y_pred, labels=classes, zero_division=0)
    out["per_class"] = {c: {"precision": finite(p[i]), "recall": finite(r[i]),
                            "f1": finite(f[i]), "support": int(s[i])}
                        for i, c in enumerate(classes)}
    conf: dict[str, dict[str, int]] = {}
    for t, q in zip(truth, y_pred):
        conf.setdefault(t, {}).setdefault(q, 0)
        conf[t][q] += 1
    out["confusion"] = {t: dict(sorted(row.items())) for t, row in sorted(conf.items())}
    return out
