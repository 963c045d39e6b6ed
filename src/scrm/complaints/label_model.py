"""A generative label model over the labelling functions: Snorkel's ``LabelModel``.

Why a label model: majority vote counts every rule as equally reliable and independent. Snorkel's
``LabelModel`` (snorkel 0.10, Ratner et al. 2019) estimates each rule's accuracy from the
agreements and disagreements of the rules alone, without any hand label, and weighs the votes
accordingly. Whether that helps here is an empirical question, answered on the sealed test
(``reports/metrics/complaints.json`` ``sealed_test``), not assumed.

Choices, stated once:

* The label matrix has one column per rule: the index of its category when it fires, else -1
  (abstain). The model's classes are the categories some rule votes for (``other_unclear`` has no
  rule, so the model cannot output it, like majority vote).
* It is fitted on every opening **outside the sealed test** (no label is read; the test rows'
  rule outputs are not seen either), with a uniform class balance and the settings in params
  ``complaints.label_model``; torch runs on one CPU thread with the seed of ``complaints.seed``,
  so the same params give the same labels.
* An opening where no rule fires stays unlabelled (null), exactly as with majority vote, so the
  two differ only in how they resolve rules that disagree; ties in the model's probabilities
  abstain too (Snorkel's ``tie_break_policy="abstain"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..stats.intervals import finite
from .taxonomy import Taxonomy

ABSTAIN = -1


@dataclass(frozen=True)
class LabelModelFit:
    """Labels of every row (None = abstain), their probability, and each rule's learned weight."""

    labels: list[str | None]
    confidence: np.ndarray
    weights: dict[str, float | None]  # None: the rule never fired on the fit rows
    classes: list[str]
    n_fit: int
    skipped: str | None = None  # why no model was fitted (then every row abstains)


def model_classes(tax: Taxonomy) -> list[str]:
    """Categories some rule votes for, in taxonomy order (the model's output classes)."""
    return [c for c in tax.names if tax.lfs_for(c)]


def label_matrix(df: pl.DataFrame, tax: Taxonomy) -> np.ndarray:
    """(rows x rules) int matrix: the rule's class index where it fired (Boolean LF columns of
    ``df``), else -1."""
    index = {c: i for i, c in enumerate(model_classes(tax))}
    return df.select([pl.when(pl.col(lf.name)).then(pl.lit(index[lf.label]))
                      .otherwise(pl.lit(ABSTAIN)).alias(lf.name) for lf in tax.lfs]
                     ).to_numpy().astype(np.int64)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_predict(L: np.ndarray, fit_rows: np.ndarray, tax: Taxonomy, fit_kwargs: dict[str, Any],
                seed: int) -> LabelModelFit:
    """Fit Snorkel's LabelModel on ``L[fit_rows]`` (``fit_kwargs``: params
    ``complaints.label_model``, e.g. n_epochs, lr, l2) and label every row of ``L``."""
    classes = model_classes(tax)
    fitted_on = L[np.asarray(fit_rows, dtype=bool)]
    if not (fitted_on != ABSTAIN).any():  # nothing to learn rule accuracies from
        why = ("no opening to fit it on" if fitted_on.shape[0] == 0 else
               f"no rule fires on any of the {fitted_on.shape[0]:,} openings it would be fitted on")
        return LabelModelFit(labels=[None] * L.shape[0], confidence=np.full(L.shape[0], np.nan),
                             weights=dict.fromkeys((lf.name for lf in tax.lfs), None),
                             classes=classes, n_fit=int(fitted_on.shape[0]), skipped=why)
    from snorkel.labeling.model import LabelModel  # with torch: ~2 s, only when there is a fit

    with _one_thread():
        model = LabelModel(cardinality=len(classes), verbose=False, device="cpu")
        model.fit(L[fit_rows], **fit_kwargs, seed=seed, progress_bar=False)
        pred, prob = model.predict(L, return_probs=True, tie_break_policy="abstain")
    pred = np.where((L != ABSTAIN).any(axis=1), pred, ABSTAIN)
    labels = [classes[p] if p != ABSTAIN else None for p in pred.tolist()]
    conf = np.where(pred != ABSTAIN, prob.max(axis=1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # a rule that never fired: no weight
        raw = model.get_weights()
    weights = {lf.name: finite(w) for lf, w in zip(tax.lfs, raw, strict=True)}
    return LabelModelFit(labels=labels, confidence=conf, weights=weights, classes=classes,
                         n_fit=int(np.asarray(fit_rows).sum()))
