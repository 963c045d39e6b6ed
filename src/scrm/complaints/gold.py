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
             labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Coverage, accuracy (covered / overall), macro-F1, per-class scores and a confusion table.

    ``labels``: the label set macro-F1 averages over (the taxonomy's categories, so every set and
    every system is averaged over the same classes; a class with no true and no predicted row
    scores 0). Without it: the classes present in truth or predictions.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = list(pred)
    truth = list(truth)
    n = len(truth)
    if n == 0:
        return {"n": 0}
    covered = [i for i, p in enumerate(pred) if p is not None]
    y_pred = [p if p is not None else ABSTAIN for p in pred]
    present = sorted(set(truth) | {p for p in pred if p is not None})
    classes = list(labels) if labels is not None else present
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
        cov_labels = classes if labels is not None else sorted(set(t_c) | set(p_c))
        out["macro_f1_covered"] = finite(f1_score(t_c, p_c, labels=cov_labels, average="macro",
                                                  zero_division=0))
    else:
        out["macro_f1_covered"] = None
    if abstain_as is not None:
        y_other = [p if p is not None else abstain_as for p in pred]
        cls = classes if labels is not None else sorted(set(truth) | set(y_other))
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


SCORE_KEYS = ("n", "n_covered", "coverage", "accuracy_covered", "accuracy_overall", "macro_f1",
              "macro_f1_covered", "accuracy_abstain_as_other", "macro_f1_abstain_as_other")


def evaluate_with_intervals(preds: dict[str, Sequence[str | None]], truth: Sequence[str],
                            labels: Sequence[str], abstain_as: str, *, n_boot: int, seed: int,
                            level: float) -> dict[str, Any]:
    """Scores of each weak labeller on one hand-labelled set, with 95 % intervals, and the paired
    difference of every labeller from the first one.

    Per labeller: the :data:`SCORE_KEYS` of :func:`evaluate` over the full label set ``labels``;
    ``*_ci`` intervals: Wilson for the shares (coverage, accuracies), percentile bootstrap over the
    items for macro-F1 (abstain counted wrong, and read as ``abstain_as``). ``vs_<first>``: each
    other labeller's macro-F1 minus the first's, both readings, with a paired bootstrap interval and
    p-value (same resamples for all labellers).
    """
    from ..stats.intervals import rate_with_interval
    from ..stats.paired import compare, encode

    k = len(labels)
    y = encode(list(truth), labels)
    names = list(preds)
    out: dict[str, Any] = {}
    for name, pred in preds.items():
        m = evaluate(pred, truth, abstain_as=abstain_as, labels=labels)
        rec = {key: m[key] for key in SCORE_KEYS}
        n, n_cov = m["n"], m["n_covered"]
        correct = sum(p == t for p, t in zip(pred, truth))
        right_other = sum((p if p is not None else abstain_as) == t for p, t in zip(pred, truth))
        for key, (num, den) in {"coverage": (n_cov, n), "accuracy_covered": (correct, n_cov),
                                "accuracy_overall": (correct, n),
                                "accuracy_abstain_as_other": (right_other, n)}.items():
            r = rate_with_interval(num, den, level)
            rec[f"{key}_ci"] = [r["ci_low"], r["ci_high"]] if den else None
        rec["per_class"] = m["per_class"]
        rec["confusion"] = m["confusion"]
        out[name] = rec
    readings = {"macro_f1": lambda p: encode(list(p), labels),                     # abstain: wrong
                "macro_f1_abstain_as_other": lambda p: encode(
                    [q if q is not None else abstain_as for q in p], labels)}
    for key, code in readings.items():
        res = compare(y, {name: code(p) for name, p in preds.items()}, k, names[0],
                      n_boot=n_boot, seed=seed, level=level)
        for name in names:
            out[name][f"{key}_ci"] = res[name]["macro_f1_ci"]
            if name != names[0]:
                out[name].setdefault(f"vs_{names[0]}", {})[key] = {
                    "diff": res[name]["diff"], "diff_ci": res[name]["diff_ci"],
                    "p_value": res[name]["p_value"], "n_boot": n_boot,
                    "test": "two-sided paired bootstrap over items"}
    return out
