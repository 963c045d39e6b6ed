"""The settings of stages ``topics`` and ``detect`` (params ``topics``, ``detect``).

Part of :mod:`scrm.config` (which imports them, uses them in ``Params`` and re-exports them), kept
in a module of its own only so that config.py stays under 500 lines; the same rules hold: every
field required, checked, named in errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .configbase import FRACTION, NON_NEGATIVE, POSITIVE, Section, between, req


@dataclass(frozen=True)
class TopicsSettings(Section):
    seed: int = req()
    min_cluster_size: int = req(between(2))
    min_samples: int | None = req(between(1))
    size_rule: Literal["fixed", "sqrt"] = req()
    size_per_sqrt_doc: float = req(POSITIVE)
    samples_ratio: float = req(between(0, 1, open_lo=True))
    collapse_share: float = req(FRACTION)
    collapse_retries: int = req(between(0, 2))
    stability_runs: int = req(lambda v: None if v == 0 or v >= 3 else "must be 0 (off) or >= 3")
    npmi_epsilon: float = req(between(0, 1e-3, open_lo=True))
    cluster_selection_method: Literal["eom", "leaf"] = req()
    umap_n_neighbors: int = req(between(2))
    umap_n_components: int = req(between(1))
    umap_min_dist: float = req(between(0, 1))
    umap_metric: str = req()
    umap_init: Literal["spectral", "pca", "random", "auto"] = req()
    umap_spectral_max_docs: int = req(between(1))
    nr_topics: int | Literal["auto"] | None = req(between(2))
    top_n_words: int = req(between(1))
    ngram_max: int = req(between(1, 3))
    min_df: int = req(between(1))
    token_pattern: str = req()
    extra_stop_words: tuple[str, ...] = req()
    reduce_frequent_words: bool = req()
    outliers_strategy: Literal["embeddings", "c-tf-idf", "none"] = req()
    outliers_threshold: float = req(between(0, 1))
    n_representative: int = req(between(1))
    time_every: str = req()
    time_min_docs: int = req(NON_NEGATIVE)
    barchart_topics: int = req(between(1))
    barchart_words: int = req(between(1))


@dataclass(frozen=True)
class DetectFeatureSettings(Section):
    """Word TF-IDF of the learned complaint detectors (``detect.features``)."""

    ngram_max: int = req(between(1, 3))
    min_df: int = req(between(1))
    max_df: float = req(FRACTION)
    sublinear_tf: bool = req()


@dataclass(frozen=True)
class CategoryChampionSettings(Section):
    """Which benchmark model becomes the category champion (``detect.category``): the one its
    ``section`` (``protocol/variant``) selected on validation folds, trained on ``train_labels``."""

    name: str = req()
    section: str = req()
    train_labels: Literal["weak", "label_model"] = req()


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
