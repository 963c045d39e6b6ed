"""The rows each label source contributes to the benchmark, and their train/test folds.

Why three splits: a random stratified split flatters models that memorise a brand's vocabulary or a
week's news; the *time* split (train on the earliest openings, test on later ones) asks whether a
model survives drift, and the *brand* split (test brands never seen in training) asks whether it
transfers to a new client. Weak labels get one hold-out of ``test_size``; the small gold set gets
K-fold cross-validation. A split that cannot be made on the rows is a :class:`SplitError` (recorded
as skipped, not a crash); a brand split that leaked a brand is never reported.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ...config import BenchmarkSettings
from ...errors import ScrmError
from ...stats.splits import time_split

LABEL_COLUMN = {"weak": "label", "gold": "gold_label"}
NO_BRAND = "(no brand)"


# --------------------------------------------------------------------------------------------------
# rows of a label source
# --------------------------------------------------------------------------------------------------
@dataclass
class LabelSet:
    """One label source's rows after rare-class handling (everything a split needs, as arrays)."""

    source: str
    tweet_id: np.ndarray
    text: np.ndarray
    y: np.ndarray
    created_at: np.ndarray  # int64 microseconds, for the time split
    brand: np.ndarray
    counts: dict[str, int]
    merged: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    subsampled_from: int | None = None
    origin: list[str] = field(default_factory=list)  # complaints' label_source (weak / user file)

    @property
    def classes(self) -> list[str]:
        return sorted(self.counts)


def handle_rare(y: np.ndarray, min_count: int, policy: str,
                merge_into: str) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Classes with fewer than ``min_count`` rows are merged into ``merge_into`` or dropped.

    A class that rare cannot be stratified or cross-validated and its F1 is noise. With ``merge``
    the catch-all class absorbs them; if the catch-all is still too rare it is dropped too. Returns
    the new labels (None = row dropped) and the merged / dropped class counts, so nothing vanishes
    silently.
    """
    y = np.asarray(y, dtype=object).copy()
    counts = Counter(y.tolist())
    rare = {c: n for c, n in counts.items() if n < min_count}
    merged: dict[str, int] = {}
    dropped: dict[str, int] = {}
    if policy == "merge":
        merged = {c: n for c, n in rare.items() if c != merge_into}
        if merged:
            y[np.isin(y, list(merged))] = merge_into
        n_target = int((y == merge_into).sum())
        if 0 < n_target < min_count:
            dropped[merge_into] = n_target
    else:
        dropped = dict(rare)
    if dropped:
        y[np.isin(y, list(dropped))] = None
    return y, dict(sorted(merged.items())), dict(sorted(dropped.items()))


def label_set(df: pl.DataFrame, source: str, settings: BenchmarkSettings) -> LabelSet | str:
    """The rows of one label source, or the reason it cannot be benchmarked."""
    col = LABEL_COLUMN[source]
    value = pl.col(col).cast(pl.Utf8).str.strip_chars()
    rows = df.filter(value.is_not_null() & (value != ""))
    if rows.height == 0:
        return f"no rows with a non-null `{col}`"
    subsampled_from = None
    s = settings
    if source == "weak" and s.max_rows and rows.height > s.max_rows:
        # a seeded sample for large runs; the gold set is never subsampled
        subsampled_from = rows.height
        rows = rows.sample(n=s.max_rows, seed=s.seed, shuffle=False).sort("tweet_id")
    min_count = s.min_class_count
    if source == "gold":
        min_count = max(min_count, s.cv_folds)
    y, merged, dropped = handle_rare(rows[col].cast(pl.Utf8).str.strip_chars().to_numpy(),
                                     min_count, s.rare_classes, s.merge_into)
    keep = pl.Series(col, y, dtype=pl.Utf8).is_not_null()
    rows = rows.filter(keep)
    y = y[keep.to_numpy()]
    counts = dict(sorted(Counter(y.tolist()).items()))
    if len(counts) < 2:
        return (f"fewer than two classes with >= {min_count} rows in `{col}` "
                f"(dropped: {dropped or 'none'})")
    return LabelSet(
        source=source,
        tweet_id=rows["tweet_id"].to_numpy(),
        text=rows[s.text_col].fill_null("").cast(pl.Utf8).to_numpy().astype(object),
        y=y.astype(object),
        created_at=rows["created_at"].dt.epoch("us").to_numpy(),
        brand=rows["brand"].cast(pl.Utf8).fill_null(NO_BRAND).to_numpy().astype(object),
        counts=counts, merged=merged, dropped=dropped, subsampled_from=subsampled_from,
        origin=(sorted(rows["label_source"].drop_nulls().cast(pl.Utf8).unique().to_list())
                if source == "weak" and "label_source" in rows.columns else []),
    )


# --------------------------------------------------------------------------------------------------
# splits: lists of (train, test) positional index arrays
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    test: np.ndarray


class SplitError(ScrmError):
    """A split cannot be made on these rows (recorded as a skipped split, not a crash)."""


def stratified_holdout(y: np.ndarray, test_size: float, seed: int) -> list[Fold]:
    """One stratified hold-out: both sides keep the class proportions."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise SplitError(f"stratified split impossible: {exc}") from exc
    return [Fold(np.sort(tr), np.sort(te))]


def time_holdout(created_at: np.ndarray, test_size: float) -> list[Fold]:
    """Train on the earliest ``1 - test_size`` of the timeline, test on strictly later rows.

    The cut is :func:`scrm.stats.splits.time_split`'s (the one "train on the past" cut of every
    stage): a timestamp, not a row position, so rows sharing the boundary time all go to the test
    side and every training row is strictly earlier than every test row.
    """
    if len(created_at) < 2:
        raise SplitError("time split needs at least two rows")
    frame = pl.DataFrame({"created_at": created_at})
    side = frame.select(time_split(frame, 1.0 - test_size, "created_at")).to_series().to_numpy()
    train = np.flatnonzero(side == "train")
    test = np.flatnonzero(side == "test")
    if len(train) == 0 or len(test) == 0:
        raise SplitError("time split impossible: all rows share one timestamp")
    return [Fold(train, test)]


def time_cv(created_at: np.ndarray, k: int) -> list[Fold]:
    """Forward chaining: K+1 time blocks; fold i trains on blocks 0..i and tests on block i+1."""
    n = len(created_at)
    t_sorted = np.sort(created_at, kind="stable")
    cuts = sorted({t_sorted[min(int(round(n * j / (k + 1))), n - 1)] for j in range(1, k + 1)})
    folds = []
    for i, lo in enumerate(cuts):
        hi = cuts[i + 1] if i + 1 < len(cuts) else None
        train = np.flatnonzero(created_at < lo)
        test_mask = created_at >= lo
        if hi is not None:
            test_mask &= created_at < hi
        test = np.flatnonzero(test_mask)
        if len(train) and len(test):
            folds.append(Fold(train, test))
    if not folds:
        raise SplitError("time cross-validation impossible: all rows share one timestamp")
    return folds


def _assert_disjoint_groups(groups: np.ndarray, folds: list[Fold]) -> None:
    for f in folds:
        shared = set(groups[f.train].tolist()) & set(groups[f.test].tolist())
        if shared:  # a grouped split that leaks a brand is not a brand split: never report it
            raise ScrmError(f"brand split leaked brand(s) {sorted(shared)[:5]} into both sides")


def brand_holdout(groups: np.ndarray, test_size: float, seed: int) -> list[Fold]:
    """GroupShuffleSplit on brand: ``test_size`` of the *brands* (not rows) are held out."""
    from sklearn.model_selection import GroupShuffleSplit

    if len(set(groups.tolist())) < 2:
        raise SplitError("brand split needs at least two brands")
    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    tr, te = next(gss.split(np.zeros(len(groups)), groups=groups))
    folds = [Fold(np.sort(tr), np.sort(te))]
    _assert_disjoint_groups(groups, folds)
    return folds


def brand_cv(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[Fold]:
    """StratifiedGroupKFold on brand: each brand is tested exactly once, never trained on then."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise SplitError("brand cross-validation needs at least two brands")
    cv = StratifiedGroupKFold(n_splits=min(k, n_groups), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" is expected here
        folds = [Fold(np.sort(tr), np.sort(te))
                 for tr, te in cv.split(np.zeros(len(y)), y, groups=groups)]
    _assert_disjoint_groups(groups, folds)
    return folds


def stratified_cv(y: np.ndarray, k: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(np.sort(tr), np.sort(te)) for tr, te in cv.split(np.zeros(len(y)), y)]


def make_folds(split: str, ls: LabelSet, settings: BenchmarkSettings) -> list[Fold]:
    """Hold-out for weak labels, cross-validation for the (small) gold set; folds whose training
    side has fewer than two classes are left out (no classifier can be fitted on them)."""
    seed, k, ts = settings.seed, settings.cv_folds, settings.test_size
    cv = ls.source == "gold"
    if split == "stratified":
        folds = stratified_cv(ls.y, k, seed) if cv else stratified_holdout(ls.y, ts, seed)
    elif split == "time":
        folds = time_cv(ls.created_at, k) if cv else time_holdout(ls.created_at, ts)
    elif split == "brand":
        folds = brand_cv(ls.y, ls.brand, k, seed) if cv else brand_holdout(ls.brand, ts, seed)
    else:  # the settings reject unknown splits; keep the error explicit anyway
        raise ScrmError(f"unknown split {split!r}")
    usable = [f for f in folds if len(set(ls.y[f.train].tolist())) >= 2]
    if not usable:
        raise SplitError(f"every {split} fold trains on a single class")
    return usable
