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

Memory, not statistics: Snorkel builds a dense float64 one-hot copy of the label matrix (rows x
rules x classes; 2.0 GB for 781,107 openings, 36 rules and 9 classes) to form the overlap matrix,
and again, with a second product of the same size, to predict. :func:`_blockwise_label_model` forms
both a block of :data:`BLOCK_ROWS` rows at a time. The overlap matrix is a matrix of counts (sums of
0/1 products, exact in float64 in any order), so it is the same to the last bit; a prediction is a
function of its row alone. At 2,811,774 synthetic rows the labels and probabilities were equal bit
for bit to Snorkel's one-pass code, and the fit's peak was 1.25 GiB above its input instead of
4.45 GiB.
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
BLOCK_ROWS = 1 << 16  # rows per one-hot block: 170 MB at 36 rules x 9 classes


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


def _blockwise_label_model() -> type:
    """Snorkel's ``LabelModel`` whose overlap matrix ``O`` is summed over blocks of rows (see the
    module docstring); imported here because Snorkel with torch takes ~2 s, needed only for a fit."""
    import torch
    from snorkel.labeling.model import LabelModel

    class _BlockwiseLabelModel(LabelModel):  # type: ignore[misc]
        def _generate_O(self, L: np.ndarray, higher_order: bool = False) -> None:
            n = self.n
            counts: np.ndarray | None = None
            try:
                for i in range(0, n, BLOCK_ROWS):
                    block = L[i:i + BLOCK_ROWS]
                    self.n = block.shape[0]  # Snorkel sizes its one-hot matrix by self.n
                    aug = self._get_augmented_label_matrix(block, higher_order=higher_order)
                    part = aug.T @ aug
                    counts = part if counts is None else counts + part
            finally:
                self.n = n
            assert counts is not None  # a fit has at least one row (see fit_predict)
            self.d = counts.shape[1]
            self.O = torch.from_numpy(counts / self.n).float().to(self.config.device)

    return _BlockwiseLabelModel


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
    with _one_thread():
        model = _blockwise_label_model()(cardinality=len(classes), verbose=False, device="cpu")
        model.fit(L[fit_rows], **fit_kwargs, seed=seed, progress_bar=False)
        parts = [model.predict(L[i:i + BLOCK_ROWS], return_probs=True, tie_break_policy="abstain")
                 for i in range(0, L.shape[0], BLOCK_ROWS)]
    pred = np.concatenate([p for p, _ in parts])
    prob = np.concatenate([q for _, q in parts])
    pred = np.where((L != ABSTAIN).any(axis=1), pred, ABSTAIN)
    labels = [classes[p] if p != ABSTAIN else None for p in pred.tolist()]
    conf = np.where(pred != ABSTAIN, prob.max(axis=1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # a rule that never fired: no weight
        raw = model.get_weights()
    weights = {lf.name: finite(w) for lf, w in zip(tax.lfs, raw, strict=True)}
    return LabelModelFit(labels=labels, confidence=conf, weights=weights, classes=classes,
                         n_fit=int(np.asarray(fit_rows).sum()))
