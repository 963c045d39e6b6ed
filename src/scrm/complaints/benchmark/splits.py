"""The rows each benchmark protocol trains and scores on, and their train/test folds.

Rows (:func:`rows`): every protocol reads ``complaints.parquet``. Its label columns are

* ``label`` (weak labels, or a user's labels file) and ``lm_label`` (the label model): training
  labels; an abstention (null) becomes ``abstain_as`` (or the row is left out when that is null);
* ``gold_label``: the dev gold set; ``test_label``: the sealed test, read only as the truth that
  protocol ``weak_to_gold`` scores against, never for fitting or choosing anything.

Why three splits: a random stratified split flatters models that memorise a brand's vocabulary or a
week's news; the *time* split (train on the earliest openings, test on later ones) asks whether a
model survives drift, and the *brand* split (test brands never seen in training) asks whether it
transfers to a new client. A split that cannot be made on the rows is a :class:`SplitError`
(recorded as skipped, not a crash); a brand split that leaked a brand is never reported.
Classes are never merged or dropped: every score averages over the same label set
(:func:`label_space`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ...errors import ScrmError
from ...stats.splits import time_split

TRAIN_COLUMN = {"weak": "label", "label_model": "lm_label"}
DEV_COLUMN, TEST_COLUMN = "gold_label", "test_label"
LABEL_COLUMNS = ("label", "lm_label", "weak_label", DEV_COLUMN, TEST_COLUMN)
NO_BRAND = "(no brand)"


# --------------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------------
@dataclass
class LabelSet:
    """Rows of one protocol section (everything a split and a model need, as arrays)."""

    source: str
    tweet_id: np.ndarray
    text: np.ndarray
    y: np.ndarray
    created_at: np.ndarray  # int64 microseconds, for the time split
    brand: np.ndarray
    emb: np.ndarray | None = None  # cached sentence vectors of these rows (None: not all cached)
    subsampled_from: int | None = None
    origin: list[str] = field(default_factory=list)  # complaints' label_source (weak / user file)

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.y.tolist()).items()))

    def take(self, idx: np.ndarray) -> LabelSet:
        """The rows at positions ``idx`` (same source)."""
        return LabelSet(self.source, self.tweet_id[idx], self.text[idx], self.y[idx],
                        self.created_at[idx], self.brand[idx],
                        None if self.emb is None else self.emb[idx], None, list(self.origin))


def label_space(df: pl.DataFrame, abstain_as: str | None) -> list[str]:
    """The one label set every score of a run averages over: every category in any label column
    of the complaints table (weak, label model, dev, sealed test), plus ``abstain_as``, sorted.
    With the shipped taxonomy and gold sets this is the taxonomy's ten categories."""
    cats: set[str] = set() if abstain_as is None else {abstain_as}
    for c in LABEL_COLUMNS:
        if c in df.columns:
            cats |= set(df[c].drop_nulls().cast(pl.Utf8).to_list())
    return sorted(cats)


def training_label(source: str, abstain_as: str | None) -> pl.Expr:
    """The training label of a weak source; an abstention becomes ``abstain_as`` (or stays null)."""
    e = pl.col(TRAIN_COLUMN[source]).cast(pl.Utf8)
    return e.fill_null(abstain_as) if abstain_as is not None else e


def rows(df: pl.DataFrame, where: pl.Expr, label: pl.Expr, source: str, text_col: str,
         emb: tuple[np.ndarray, np.ndarray] | None, *, max_rows: int | None = None,
         seed: int = 0) -> LabelSet | str:
    """The rows matching ``where`` with a non-null ``label``, or the reason there are none."""
    sub = df.filter(where).with_columns(_y=label).filter(pl.col("_y").is_not_null())
    if sub.height == 0:
        return "no rows"
    subsampled_from = None
    if max_rows and sub.height > max_rows:  # a seeded sample for large runs
        subsampled_from = sub.height
        sub = sub.sample(n=max_rows, seed=seed, shuffle=False).sort("tweet_id")
    ids = sub["tweet_id"].to_numpy()
    empty = (sub[text_col].fill_null("").cast(pl.Utf8).str.strip_chars().str.len_chars() == 0
             ).to_numpy()
    vectors = lookup(emb, ids, empty) if emb is not None else None
    return LabelSet(
        source=source, tweet_id=ids,
        text=sub[text_col].fill_null("").cast(pl.Utf8).to_numpy().astype(object),
        y=sub["_y"].to_numpy().astype(object),
        created_at=sub["created_at"].dt.epoch("us").to_numpy(),
        brand=sub["brand"].cast(pl.Utf8).fill_null(NO_BRAND).to_numpy().astype(object),
        emb=vectors, subsampled_from=subsampled_from,
        origin=(sorted(sub["label_source"].drop_nulls().cast(pl.Utf8).unique().to_list())
                if source == "weak" and "label_source" in sub.columns else []))


def lookup(emb: tuple[np.ndarray, np.ndarray], ids: np.ndarray,
           empty: np.ndarray) -> np.ndarray | None:
    """The cached vectors of ``ids`` in their order (``emb`` = (cached ids, vectors)).

    ``scrm embed`` skips openings whose cleaned text is empty: those (``empty``) get a zero vector,
    a point equally far from every class. None when an opening *with* text has no vector (e.g.
    ``embed.max_docs`` embedded a sample): embedding models are then not run on these rows.
    """
    cached, vectors = emb
    if len(cached) == 0:
        return None
    order = np.argsort(cached, kind="stable")
    pos = np.clip(np.searchsorted(cached[order], ids), 0, len(cached) - 1)
    found = cached[order][pos] == ids
    if not (found | empty).all():
        return None
    out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
    out[found] = vectors[order][pos[found]]
    return out


def outside_gold() -> pl.Expr:
    """Openings in neither hand-labelled set (the weak_to_gold training pool)."""
    return pl.col(DEV_COLUMN).is_null() & pl.col(TEST_COLUMN).is_null()


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
    counts = Counter(y.tolist())
    strat = y if min(counts.values()) >= 2 else None  # a class of one row cannot be stratified
    try:
        tr, te = train_test_split(idx, test_size=test_size, stratify=strat, random_state=seed)
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
    """StratifiedKFold; a class rarer than ``k`` is spread over as many folds as it has rows."""
    from sklearn.model_selection import StratifiedKFold

    if len(y) < k:
        raise SplitError(f"{len(y)} rows cannot make {k} folds")
    largest = int(np.unique(y, return_counts=True)[1].max())
    if largest < k:  # sklearn refuses: every class would be missing from some test fold
        raise SplitError(f"no category has {k} rows (the largest has {largest}): stratified "
                         f"{k}-fold cross-validation needs at least one that does")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" is expected here
        return [Fold(np.sort(tr), np.sort(te)) for tr, te in cv.split(np.zeros(len(y)), y)]


def make_folds(split: str, ls: LabelSet, k: int | None, test_size: float,
               seed: int) -> list[Fold]:
    """K-fold cross-validation (``k`` given) or one hold-out of ``test_size`` (``k`` None) of the
    kind ``split``; folds whose training side has fewer than two classes are left out (no
    classifier can be fitted on them)."""
    if split == "stratified":
        folds = stratified_cv(ls.y, k, seed) if k else stratified_holdout(ls.y, test_size, seed)
    elif split == "time":
        folds = time_cv(ls.created_at, k) if k else time_holdout(ls.created_at, test_size)
    elif split == "brand":
        folds = brand_cv(ls.y, ls.brand, k, seed) if k else brand_holdout(ls.brand, test_size, seed)
    else:  # the settings reject unknown splits; keep the error explicit anyway
        raise ScrmError(f"unknown split {split!r}")
    usable = [f for f in folds if len(set(ls.y[f.train].tolist())) >= 2]
    if not usable:
        raise SplitError(f"every {split} fold trains on a single class")
    return usable
