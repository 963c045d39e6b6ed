"""The settings of stage ``detect`` (params ``detect``): complaint or not, and the registry names.

Part of :mod:`scrm.config` (which imports and uses :class:`DetectSettings` in ``Params``), kept in
a module of its own only so that config.py stays under 500 lines; the same rules hold: every field
required, checked, named in errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .configbase import FRACTION, POSITIVE, Section, between, req


@dataclass(frozen=True)
class DetectFeatureSettings(Section):
    """Word TF-IDF of the learned complaint detectors (``detect.features``)."""

    ngram_max: int = req(between(1, 3))
    min_df: int = req(between(1))
    max_df: float = req(FRACTION)
    sublinear_tf: bool = req()


@dataclass(frozen=True)
class CategoryChampionSettings(Section):
    """Which benchmark run becomes the category champion (``detect.category``)."""

    name: str = req()
    labels: Literal["weak", "gold"] = req()
    split: Literal["stratified", "time", "brand"] = req()


@dataclass(frozen=True)
class DetectSettings(Section):
    """Complaint detection, stage ``detect`` (:mod:`scrm.complaints.detect`)."""

    seed: int = req()
    rules: str | None = req()
    dev_file: str = req()
    test_file: str = req()
    train_abstain: Literal["exclude", "as_not_complaint"] = req()
    models: tuple[Literal["logreg", "complement_nb"], ...] = req()
    features: DetectFeatureSettings = req()
    logreg_c: float = req(POSITIVE)
    nb_alpha: float = req(POSITIVE)
    threshold: float = req(FRACTION)
    ci_level: float = req(FRACTION)
    n_boot: int = req(between(100))
    min_train_rows: int = req(between(2))
    register: bool = req()
    detector_name: str = req()
    category: CategoryChampionSettings = req()
