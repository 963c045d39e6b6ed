"""The complaint taxonomy, its labelling functions and the rule that combines them (polars).

The taxonomy is configuration, not code: ``src/scrm/resources/taxonomy.yaml`` (or the file named by
params ``complaints.taxonomy``) lists the categories with their definitions and the *labelling
functions* (LFs): named keyword/regex rules that each vote for one category. Keeping them in one
readable file lets a researcher audit, extend or replace every rule without touching the code, and
the same definitions drive the hand-labelling guidelines (``references/gold_guidelines.md``).

Applying LFs
    Every LF is one case-insensitive regex (its keywords become ``\\b(?:kw1|kw2)\\b``; a trailing
    ``*`` allows any word ending) matched with ``str.contains`` over the whole text column at once:
    no per-row Python. Curly apostrophes are folded to ``'`` first so ``hasn't`` and ``hasn’t`` match
    the same rule. The result is one Boolean column per LF (the *label matrix*).

Combination rule (:func:`combine`), documented once here and in the guidelines
    1. Each LF that fires is one vote for its category.
    2. The category with most votes wins; ties go to the category listed first in ``priority``
       (the more specific, actionable issue first; staff_service and praise_thanks last, so a
       complaint wrapped in thanks, "thanks for ruining my phone", goes to the complaint).
    3. Abstain (``weak_label`` null) when the winner has fewer than ``min_votes`` votes, in
       particular when nothing fires. ``other_unclear`` is a guideline category only: no LF votes
       for it and the weak labels never guess it.

LF summary (:func:`lf_summary`), as Snorkel's ``LFAnalysis``
    coverage: share of rows where the LF fires; overlaps: share where it fires together with any
    other LF; conflicts: share where it fires and another LF with a *different* label fires. Against
    gold labels: how often it fired on gold rows and its precision there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from ..errors import DataError

APOSTROPHES_RE = "[’‘ʼ`´]"
_META = re.compile(r"([\\.+*?()|\[\]{}^$])")
_KEYWORD_OK = re.compile(r"^\w(.*\w)?\*?$")


def default_taxonomy_path() -> Path:
    """The taxonomy shipped with the package (``scrm/resources/taxonomy.yaml``)."""
    return Path(str(resources.files("scrm").joinpath("resources", "taxonomy.yaml")))


@dataclass(frozen=True)
class Category:
    name: str
    title: str
    definition: str


@dataclass(frozen=True)
class LabellingFunction:
    """A named rule voting for ``label`` when ``pattern`` (a full Rust regex) matches the text."""

    name: str
    label: str
    description: str
    pattern: str
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    lfs: tuple[LabellingFunction, ...]
    priority: tuple[str, ...]
    abstain: str
    source: Path

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def lf_names(self) -> list[str]:
        return [lf.name for lf in self.lfs]

    def lfs_for(self, category: str) -> list[LabellingFunction]:
        return [lf for lf in self.lfs if lf.label == category]


# --------------------------------------------------------------------------------------------------
# loading


def keyword_regex(keywords: Sequence[str]) -> str:
    """Whole-word alternation of literal keywords/phrases; ``word*`` also matches ``word...``."""
    parts = []
    for kw in keywords:
        kw = " ".join(str(kw).strip().lower().split())
        star = kw.endswith("*")
        stem = _META.sub(r"\\\1", kw.rstrip("*")).replace(" ", r"\s+")
        parts.append(stem + (r"\w*" if star else ""))
    return r"\b(?:" + "|".join(parts) + r")\b"


def _check_regex(pattern: str, where: str, path: Path) -> None:
    try:
        pl.select(pl.lit("x").str.contains(pattern)).item()
    except Exception as exc:  # polars raises ComputeError for a bad pattern
        raise DataError(f"{where}: invalid regex ({str(exc).splitlines()[0]}). LF patterns use "
                        "Rust regex syntax: no look-around or back-references.", path) from None


def _build_lf(raw: Any, i: int, categories: set[str], path: Path) -> LabellingFunction:
    if not isinstance(raw, dict):
        raise DataError(f"labelling_functions[{i}] must be a mapping with name, label and "
                        "keywords and/or regex", path)
    name = str(raw.get("name") or "").strip()
    where = f"labelling function {name or f'#{i}'!r}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise DataError(f"{where}: name must be snake_case (e.g. lf_refund)", path)
    label = str(raw.get("label") or "")
    if label not in categories:
        raise DataError(f"{where}: label {label!r} is not a category ({', '.join(sorted(categories))})",
                        path)
    keywords = tuple(str(k) for k in (raw.get("keywords") or []))
    regex = raw.get("regex")
    if not keywords and not regex:
        raise DataError(f"{where}: give keywords and/or regex", path)
    bad = [k for k in keywords if not _KEYWORD_OK.match(" ".join(k.strip().split()))]
    if bad:
        raise DataError(f"{where}: keywords must start and end with a letter or digit (optionally "
                        f"ending in *): {bad}", path)
    parts = ([keyword_regex(keywords)] if keywords else []) + ([str(regex)] if regex else [])
    pattern = "(?i)" + "|".join(f"(?:{p})" for p in parts)
    _check_regex(pattern, where, path)
    return LabellingFunction(
        name=name, label=label, description=str(raw.get("description") or ""), pattern=pattern,
        keywords=keywords, regex=str(regex) if regex else None,
        examples=tuple(str(e) for e in raw.get("examples") or []),
        counter_examples=tuple(str(e) for e in raw.get("counter_examples") or []))


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (default: the packaged one)."""
    path = Path(path) if path else default_taxonomy_path()
    if not path.exists():
        raise DataError("taxonomy file not found (params complaints.taxonomy)", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise DataError(f"not valid YAML: {exc}", path, None if line is None else line + 1) from None
    cats_raw = raw.get("categories") or {}
    if not isinstance(cats_raw, dict) or not cats_raw:
        raise DataError("`categories` must map each category name to its definition", path)
    categories = []
    for name, c in cats_raw.items():
        c = c if isinstance(c, dict) else {"definition": c}
        if not str(c.get("definition") or "").strip():
            raise DataError(f"category {name!r} has no definition", path)
        categories.append(Category(str(name), str(c.get("title") or name), str(c["definition"])))
    names = [c.name for c in categories]
    lfs = tuple(_build_lf(r, i, set(names), path)
                for i, r in enumerate(raw.get("labelling_functions") or []))
    if not lfs:
        raise DataError("no labelling_functions defined", path)
    dup = sorted({n for n in (lf.name for lf in lfs) if [x.name for x in lfs].count(n) > 1})
    if dup:
        raise DataError(f"duplicate labelling function names: {dup}", path)
    priority = [str(p) for p in raw.get("priority") or []]
    unknown = [p for p in priority if p not in names]
    if unknown:
        raise DataError(f"priority lists unknown categories {unknown}", path)
    priority += [n for n in names if n not in priority]  # unlisted categories rank last, in order
    abstain = str(raw.get("abstain") or names[-1])
    if abstain not in names:
        raise DataError(f"abstain names an unknown category {abstain!r}", path)
    return Taxonomy(categories=tuple(categories), lfs=lfs, priority=tuple(priority),
                    abstain=abstain, source=path)


# --------------------------------------------------------------------------------------------------
# applying and combining


def match_text(col: str | pl.Expr) -> pl.Expr:
    """The text LFs see: the cleaned text with curly apostrophes folded to ``'`` (null -> "")."""
    e = pl.col(col) if isinstance(col, str) else col
    return e.fill_null("").str.replace_all(APOSTROPHES_RE, "'")


def lf_exprs(tax: Taxonomy, col: str = "_lf_text") -> list[pl.Expr]:
    """One Boolean expression per LF, named after it."""
    return [pl.col(col).str.contains(lf.pattern).fill_null(False).alias(lf.name) for lf in tax.lfs]


def apply_lfs(df: pl.DataFrame | pl.LazyFrame, tax: Taxonomy,
              text_col: str = "text_clean") -> pl.DataFrame | pl.LazyFrame:
    """Add the label matrix: one Boolean column per LF (all LFs in one vectorised pass)."""
    return (df.with_columns(match_text(text_col).alias("_lf_text"))
            .with_columns(lf_exprs(tax)).drop("_lf_text"))


def _votes(tax: Taxonomy, category: str) -> pl.Expr:
    cols = [pl.col(lf.name).cast(pl.Int32) for lf in tax.lfs_for(category)]
    return pl.sum_horizontal(cols).cast(pl.Int32) if cols else pl.lit(0, dtype=pl.Int32)


def combine(df: pl.DataFrame | pl.LazyFrame, tax: Taxonomy,
            min_votes: int) -> pl.DataFrame | pl.LazyFrame:
    """Add ``weak_label`` (null = abstain), ``n_lfs_fired`` and ``lfs_fired`` from the label matrix.

    Majority vote, priority tie-break and abstention (see the module docstring).
    Implemented as one score per category, ``votes * (K + 1) + (K - rank)``, so the arg-max is the
    most-voted category and, among equals, the highest-priority one.
    """
    if min_votes < 1:
        raise DataError(f"complaints.min_votes must be >= 1 (got {min_votes})")
    k = len(tax.priority)
    rank = {c: i for i, c in enumerate(tax.priority)}
    n_fired = pl.sum_horizontal([pl.col(n).cast(pl.Int32) for n in tax.lf_names]).cast(pl.Int32)
    votes = {c: _votes(tax, c) for c in tax.priority}
    scores = [votes[c] * (k + 1) + (k - rank[c]) for c in tax.priority]
    best_votes = pl.max_horizontal([votes[c] for c in tax.priority])
    winner = pl.concat_list(scores).list.arg_max().replace_strict(
        {i: c for i, c in enumerate(tax.priority)}, return_dtype=pl.Utf8)
    fired_names = pl.concat_list([pl.when(pl.col(n)).then(pl.lit(n)).otherwise(pl.lit(None))
                                  for n in tax.lf_names]).list.drop_nulls()
    return df.with_columns(
        weak_label=pl.when(best_votes >= min_votes).then(winner).otherwise(pl.lit(None, pl.Utf8)),
        n_lfs_fired=n_fired,
        lfs_fired=fired_names,
    )


def lf_summary(df: pl.DataFrame, tax: Taxonomy, gold_col: str | None = "gold_label") -> pl.DataFrame:
    """Per-LF coverage, overlaps, conflicts (shares of all rows) and precision on gold rows.

    ``df`` holds the label matrix (one Boolean column per LF) and, optionally, ``gold_col``.
    ``gold_precision`` is null where the LF never fires on a gold row.
    """
    n = max(df.height, 1)
    n_fired = pl.sum_horizontal([pl.col(x).cast(pl.Int32) for x in tax.lf_names])
    votes = {c: _votes(tax, c) for c in {lf.label for lf in tax.lfs}}
    has_gold = gold_col is not None and gold_col in df.columns
    aggs: list[pl.Expr] = []
    for lf in tax.lfs:
        f = pl.col(lf.name)
        aggs += [
            f.sum().alias(f"{lf.name}|n_fired"),
            (f & (n_fired > 1)).sum().alias(f"{lf.name}|n_overlap"),
            (f & (n_fired - votes[lf.label] > 0)).sum().alias(f"{lf.name}|n_conflict"),
        ]
        if has_gold:
            g = pl.col(gold_col)
            aggs += [(f & g.is_not_null()).sum().alias(f"{lf.name}|gold_n_fired"),
                     (f & (g == lf.label).fill_null(False)).sum().alias(f"{lf.name}|gold_correct")]
    row = df.select(aggs).row(0, named=True) if df.height else {}
    out = []
    for lf in tax.lfs:
        def get(key: str, name: str = lf.name) -> int:
            return int(row.get(f"{name}|{key}") or 0)

        rec: dict[str, Any] = {
            "lf": lf.name, "label": lf.label, "n_fired": get("n_fired"),
            "coverage": round(get("n_fired") / n, 6),
            "overlaps": round(get("n_overlap") / n, 6),
            "conflicts": round(get("n_conflict") / n, 6),
            "gold_n_fired": None, "gold_correct": None, "gold_precision": None,
        }
        if has_gold:
            gf, gc = get("gold_n_fired"), get("gold_correct")
            rec.update(gold_n_fired=gf, gold_correct=gc,
                       gold_precision=round(gc / gf, 6) if gf else None)
        out.append(rec)
    return pl.DataFrame(out, schema={
        "lf": pl.Utf8, "label": pl.Utf8, "n_fired": pl.Int64, "coverage": pl.Float64,
        "overlaps": pl.Float64, "conflicts": pl.Float64, "gold_n_fired": pl.Int64,
        "gold_correct": pl.Int64, "gold_precision": pl.Float64})


def label_texts(texts: Sequence[str], tax: Taxonomy, min_votes: int) -> pl.DataFrame:
    """Convenience for notebooks and tests: LF matrix + weak label for a list of raw strings
    (``min_votes`` as in params ``complaints.min_votes``)."""
    df = pl.DataFrame({"text_clean": list(texts)}, schema={"text_clean": pl.Utf8})
    return combine(apply_lfs(df, tax), tax, min_votes)
