"""params.yaml -> one frozen, validated settings object per section: the only place settings are defined.

Why one module: a definition that can be changed in two places drifts (a threshold once read 0.4 in
params.yaml and 0.5 in code). Here every key of params.yaml is a typed field of a frozen dataclass;
stages receive their section's object, never the raw dict, and no other module holds a fallback.

Rules (the machinery is in :mod:`scrm.configbase`)
* Every field is **required**: params.yaml states every value, and a missing key is an error that
  names it (``outcome.template_threshold``). One stated exception: a stage section's ``seed`` may be
  left out and then takes the global ``seed``.
* An unknown key is an error that names it and lists the known keys.
* A field's check (range, choice) names the key, the value and the rule.
* params.yaml is read with YAML 1.2 booleans (only true/false): ``dvc exp run -S`` rewrites the file
  without quotes, and YAML 1.1 would read ``yes``/``no``/``on`` as booleans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .configbase import (FRACTION, NON_NEGATIVE, POSITIVE, ConfigError, Section, between, each,
                         read_yaml, regexes, req)
from .config_ray import RaySettings
from .config_topics_detect import DetectSettings, TopicsSettings
from .paths import KAGGLE_SAMPLE_CSV, PROJECT_ROOT, SAMPLE_CSV, SAMPLE_DIR, Paths

__all__ = ["ConfigError", "Params", "Paths", "PROJECT_ROOT", "SAMPLE_CSV", "SAMPLE_DIR",
           "KAGGLE_SAMPLE_CSV", "default_root", "get_paths", "load_params", "load_settings",
           "settings_from_dict"]


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchSettings(Section):
    """Where ``data/raw/twcs.csv`` comes from (:mod:`scrm.data.fetch`).

    ``path`` is always a file name, never null: dvc.yaml lists ``${fetch.path}`` as a dependency of
    the fetch stage (so a replaced user file reruns the pipeline), and DVC cannot interpolate null.
    """

    source: Literal["sample", "kaggle", "file", "synthetic"] = req()
    path: str = req()
    dataset: str = req()
    rows: int = req(POSITIVE)
    seed: int = req()

    def validate(self, where: str) -> None:
        if not self.path.strip():
            raise ConfigError(f"params.yaml: {where}.path is empty; name your twcs.csv (source "
                              f"file) or keep the shipped sample data/sample/twcs_head5000.csv")


@dataclass(frozen=True)
class PrepareSettings(Section):
    require_text: bool = req()


@dataclass(frozen=True)
class NonRequestSettings(Section):
    """Rules flagging openings that are not customer requests (:mod:`scrm.data.openings`)."""

    brand_account: bool = req()
    alias_min_mentioners: int | None = req(between(1))
    broadcast_patterns: tuple[str, ...] = req(regexes)
    promo_patterns: tuple[str, ...] = req(regexes)
    promo_requires_link: bool = req()
    no_brand_mention: bool = req()
    no_brand_requires_link: bool = req()
    brand_name_pattern: str = req()
    min_name_chars: int = req(between(1))

    def validate(self, where: str) -> None:
        try:
            groups = re.compile(self.brand_name_pattern).groups
        except re.error as exc:
            raise ConfigError(f"params.yaml: {where}.brand_name_pattern is not a regular expression "
                              f"({exc})") from None
        if groups < 1:
            raise ConfigError(f"params.yaml: {where}.brand_name_pattern needs a capture group (the "
                              f"brand name), got {self.brand_name_pattern!r}")


@dataclass(frozen=True)
class OpeningsSettings(Section):
    """How a customer opening counts as answered, and which openings are customer requests
    (definitions in :mod:`scrm.data.openings`)."""

    answered_definition: Literal["direct", "customer", "thread"] = req()
    exclude_non_requests: bool = req()
    non_request: NonRequestSettings = req()


@dataclass(frozen=True)
class SentimentSettings(Section):
    scorer: str = req()
    roles: tuple[Literal["customer", "brand"], ...] = req()
    n_jobs: int = req(between(1, 64))
    parallel_min_texts: int = req(between(1))


# ---------------------------------------------------------------------------------------------
# response time
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResponseTimeSettings(Section):
    seed: int = req()
    horizon_hours: float | None = req(POSITIVE)
    sla_minutes: tuple[int, ...] = req(each(POSITIVE))
    load_window_minutes: int = req(POSITIVE)
    backlog_window_hours: float | None = req(POSITIVE)
    rmst_hours: float = req(POSITIVE)
    ci_level: float = req(FRACTION)
    n_boot: int = req(between(0))
    train_fraction: float = req(FRACTION)
    min_train_rows: int = req(between(2))
    min_brand_openings: int = req(between(1))
    headline_brands: int = req(NON_NEGATIVE)
    sensitivity_brands: int = req(NON_NEGATIVE)
    logrank_brands: int = req(between(2))
    km_plot_brands: int = req(NON_NEGATIVE)
    km_grid_points: int = req(between(2))
    km_max_hours: float = req(POSITIVE)
    baseline_smoothing: float = req(NON_NEGATIVE)
    logistic_c: float = req(POSITIVE)
    ridge_alpha: float = req(NON_NEGATIVE)
    gbm: dict[str, Any] = req()
    calibration_bins: int = req(between(2))
    cox: bool = req()
    cox_cluster: Literal["customer", "brand", "none"] = req()
    cox_max_rows: int = req(between(10))
    cox_concordance_max_rows: int = req(between(10))
    importance_repeats: int = req(between(1))
    importance_max_rows: int = req(between(10))
    n_threads: int = req(between(1))
    n_jobs: int = req(between(1, 64))
    log_models: bool | tuple[str, ...] = req()

    def validate(self, where: str) -> None:
        if not self.sla_minutes:
            raise ConfigError(f"params.yaml: {where}.sla_minutes must list at least one limit")
        if self.horizon_hours is not None and self.rmst_hours > self.horizon_hours:
            raise ConfigError(f"params.yaml: {where}.rmst_hours ({self.rmst_hours}) must not exceed "
                              f"{where}.horizon_hours ({self.horizon_hours}): RMST is the area "
                              "under the curve up to a time every opening can be followed to")

    def logs_model(self, task: str, name: str) -> bool:
        """``log_models``: true (all), false (none) or a list of names (``hgb``, ``task/name``)."""
        if isinstance(self.log_models, bool):
            return self.log_models
        return name in self.log_models or f"{task}/{name}" in self.log_models


# ---------------------------------------------------------------------------------------------
# outcome
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TemplateSettings(Section):
    max_features: int = req(between(1))
    ngram_max: int = req(between(1, 3))
    min_df: int = req(between(1))


@dataclass(frozen=True)
class OutcomeHgbSettings(Section):
    """HistGradientBoostingClassifier of the recovery models (``outcome.model.hgb``)."""

    learning_rate: float = req(POSITIVE)
    max_iter: int = req(between(1))
    max_depth: int | None = req(between(1))
    min_samples_leaf: int = req(between(1))
    l2_regularization: float = req(NON_NEGATIVE)


@dataclass(frozen=True)
class OutcomeModelSettings(Section):
    cv_folds: int = req(between(2))
    min_per_class: int = req(between(1))
    C: float = req(POSITIVE)
    brand_min_frequency: int = req(between(1))
    brand_prior_alpha: float = req(NON_NEGATIVE)
    n_boot: int = req(between(10))
    log_models: bool = req()
    hgb: OutcomeHgbSettings = req()


@dataclass(frozen=True)
class MarkerSettings(Section):
    apology: tuple[str, ...] = req(regexes)
    empathy: tuple[str, ...] = req(regexes)
    thanks: tuple[str, ...] = req(regexes)
    off_social: tuple[str, ...] = req(regexes)


@dataclass(frozen=True)
class MeasureLexiconSettings(Section):
    """Case-insensitive cue patterns of the state measure's lexical features (``outcome.measure.lexicon``)."""

    thanks: tuple[str, ...] = req(regexes)
    persist: tuple[str, ...] = req(regexes)
    procedural: tuple[str, ...] = req(regexes)


@dataclass(frozen=True)
class OutcomeMeasureSettings(Section):
    """The text measure of the customer's state, fitted on the dev part of the outcome set
    (``outcome.measure``; definitions in :mod:`scrm.outcome.measure`)."""

    labels_file: str | None = req()
    embedding: Literal["minilm", "none"] = req()
    C_grid: tuple[float, ...] = req(each(POSITIVE))
    cv_folds: int = req(between(2))
    class_weight: Literal["balanced"] | None = req()
    min_per_class: int = req(between(2))
    n_boot: int = req(between(10))
    lexicon: MeasureLexiconSettings = req()

    def validate(self, where: str) -> None:
        if not self.C_grid:
            raise ConfigError(f"params.yaml: {where}.C_grid must list at least one value")
        if self.min_per_class < self.cv_folds:
            raise ConfigError(f"params.yaml: {where}.min_per_class ({self.min_per_class}) must be "
                              f">= {where}.cv_folds ({self.cv_folds}): every fold needs each class")


@dataclass(frozen=True)
class OutcomeEffectsSettings(Section):
    """Odds ratios and the competing-outcomes model (``outcome.effects``)."""

    predictors: tuple[str, ...] = req()
    events_per_predictor: float = req(between(1))

    def validate(self, where: str) -> None:
        if len(set(self.predictors)) != len(self.predictors):
            raise ConfigError(f"params.yaml: {where}.predictors lists a predictor twice")
        if "fast_reply" in self.predictors and "log_latency_min" in self.predictors:
            raise ConfigError(f"params.yaml: {where}.predictors: fast_reply is a cut of "
                              "log_latency_min; keep one")


@dataclass(frozen=True)
class OutcomeSettings(Section):
    seed: int = req()
    negative_threshold: float = req(between(-1, 1))
    positive_threshold: float = req(between(-1, 1))
    fast_reply_minutes: float = req(POSITIVE)
    template_threshold: float = req(between(0, 1))
    template: TemplateSettings = req()
    n_jobs: int = req(between(1, 64))
    top_brands: int = req(NON_NEGATIVE)
    ci_level: float = req(FRACTION)
    findings_features: tuple[str, ...] = req()
    measure: OutcomeMeasureSettings = req()
    effects: OutcomeEffectsSettings = req()
    model: OutcomeModelSettings = req()
    markers: MarkerSettings = req()
    name_patterns: tuple[str, ...] = req(regexes)
    name_stopwords: tuple[str, ...] = req()
    signoff_patterns: tuple[str, ...] = req(regexes)

    def validate(self, where: str) -> None:
        if not self.negative_threshold < self.positive_threshold:
            raise ConfigError(f"params.yaml: {where}.negative_threshold ({self.negative_threshold}) "
                              f"must be below {where}.positive_threshold ({self.positive_threshold})")


# ---------------------------------------------------------------------------------------------
# complaints
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComplaintsSettings(Section):
    seed: int = req()
    taxonomy: str | None = req()
    min_votes: int = req(between(1))
    gold_file: str | None = req()
    test_file: str | None = req()
    labels_file: str | None = req()
    labels_unknown_ids: Literal["error", "ignore"] = req()
    labels_fill: Literal["weak"] | None = req()
    label_model: dict[str, Any] = req()      # Snorkel LabelModel.fit keyword arguments
    ci_level: float = req(FRACTION)
    n_boot: int = req(between(100))
    track: bool = req()


@dataclass(frozen=True)
class TfidfSvdSettings(Section):
    n_components: int = req(between(2))
    min_df: int | float = req(POSITIVE)
    max_df: int | float = req(POSITIVE)
    max_features: int | None = req(between(1))
    ngram_max: int = req(between(1, 3))
    sublinear_tf: bool = req()
    stop_words: str | None = req()
    n_iter: int = req(between(1))


@dataclass(frozen=True)
class EmbedSettings(Section):
    seed: int = req()
    backend: Literal["minilm", "tfidf_svd"] = req()
    device: Literal["cpu", "cuda", "auto"] = req()
    max_docs: int | None = req(between(1))
    batch_size: int = req(between(1))
    batch_size_cuda: int = req(between(1))
    fp16: bool = req()
    cpu_threads: int = req(between(1))
    tokenize_workers: int = req(between(1))
    prefetch_batches: int = req(between(1))
    max_seq_length: int = req(between(8, 512))
    progress: bool = req()
    engine: Literal["local", "ray"] = req()
    tfidf_svd: TfidfSvdSettings = req()


@dataclass(frozen=True)
class FeatureSettings(Section):
    word_ngram: tuple[int, ...] = req(each(between(1, 3)))
    char_ngram: tuple[int, ...] = req(each(between(1, 8)))
    min_df: int | float = req(POSITIVE)
    max_df: int | float = req(POSITIVE)
    max_features: int | None = req(between(1))
    sublinear_tf: bool = req()
    lowercase: bool = req()
    svd_components: int = req(between(2))


@dataclass(frozen=True)
class BenchmarkMlflowSettings(Section):
    enabled: bool = req()
    log_models: Literal["all", "best", "none"] = req()
    register: Literal["all", "best", "none"] = req()


@dataclass(frozen=True)
class ZooEntry(Section):
    estimator: str = req()
    features: Literal["tfidf", "tfidf_svd", "embeddings", "none"] = req()
    kwargs: dict[str, Any] = req()
    grid: dict[str, tuple[Any, ...]] = req()  # checked by benchmark.zoo.grid_points


@dataclass(frozen=True)
class BenchmarkSettings(Section):
    seed: int = req()
    protocols: tuple[Literal["weak_to_gold", "gold_cv", "weak_on_weak"], ...] = req()
    train_labels: tuple[Literal["weak", "label_model"], ...] = req()
    abstain_as: str | None = req()
    splits: tuple[Literal["stratified", "time", "brand"], ...] = req()
    models: tuple[str, ...] | None = req()
    text_col: str = req()
    test_size: float = req(FRACTION)
    cv_folds: int = req(between(2))
    cv_repeats: int = req(between(1))
    inner_folds: int = req(between(2))
    n_boot: int = req(between(100))
    ci_level: float = req(FRACTION)
    max_rows: int | None = req(between(10))
    n_threads: int = req(between(1))
    engine: Literal["local", "ray"] = req()
    workers: int = req(between(1, 64))
    features: FeatureSettings = req()
    mlflow: BenchmarkMlflowSettings = req()
    zoo: dict[str, ZooEntry] = req()

    def validate(self, where: str) -> None:
        unknown = [m for m in self.models or () if m not in self.zoo]
        if unknown:
            raise ConfigError(f"params.yaml: {where}.models names {unknown}, not in {where}.zoo "
                              f"({', '.join(self.zoo)})")


# ---------------------------------------------------------------------------------------------
# report, full scale, the whole file
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportSettings(Section):
    seed: int = req()
    title: str = req()
    top_brands: int = req(between(1))
    max_points: int = req(between(1))
    n_examples: int = req(NON_NEGATIVE)
    top_topics: int = req(between(1))


@dataclass(frozen=True)
class FullscaleSettings(Section):
    overrides: dict[str, Any] = req()


STAGE_SECTIONS = ("response_time", "outcome", "complaints", "embed", "topics", "benchmark",
                  "detect", "report")


@dataclass(frozen=True)
class Params(Section):
    """The whole params.yaml."""

    seed: int = req()
    fetch: FetchSettings = req()
    prepare: PrepareSettings = req()
    openings: OpeningsSettings = req()
    sentiment: SentimentSettings = req()
    response_time: ResponseTimeSettings = req()
    outcome: OutcomeSettings = req()
    complaints: ComplaintsSettings = req()
    embed: EmbedSettings = req()
    topics: TopicsSettings = req()
    benchmark: BenchmarkSettings = req()
    detect: DetectSettings = req()
    report: ReportSettings = req()
    ray: RaySettings = req()
    fullscale: FullscaleSettings = req()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "",
                     fallback: Mapping[str, Any] | None = None) -> Params:
        """Fold the global seed into stage sections that state none, then validate everything."""
        data = dict(data or {})
        if "seed" in data:
            for name in STAGE_SECTIONS:
                if isinstance(data.get(name), Mapping) and "seed" not in data[name]:
                    data[name] = {**data[name], "seed": data["seed"]}
        return super().from_mapping(data, where, fallback)


# ---------------------------------------------------------------------------------------------
# reading params.yaml
# ---------------------------------------------------------------------------------------------
def default_root() -> Path:
    """``SCRM_ROOT`` if set, else the current directory when it holds a params.yaml, else the project."""
    env = os.environ.get("SCRM_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "params.yaml").exists():
        return cwd
    return PROJECT_ROOT


def get_paths(root: Path | str | None = None) -> Paths:
    return Paths(Path(root).resolve() if root else default_root())


def params_file(root: Path | str | None = None) -> Path:
    base = Path(root).resolve() if root else default_root()
    path = base / "params.yaml"
    return path if path.exists() else PROJECT_ROOT / "params.yaml"


def load_params(root: Path | str | None = None) -> dict[str, Any]:
    """The raw params dict of the run root (provenance logging and overrides only)."""
    return read_yaml(params_file(root)) or {}


def settings_from_dict(params: Mapping[str, Any]) -> Params:
    """Validate a whole params dict (tests and notebooks build variants this way)."""
    return Params.from_mapping(params)


def load_settings(root: Path | str | None = None) -> Params:
    """Read and validate ``params.yaml`` of the run root: the one entry point of every stage."""
    path = params_file(root)
    try:
        return settings_from_dict(load_params(root))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {path})") from None


def section(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Transitional: a raw section dict with the global seed folded in (removed once every stage
    takes its settings object)."""
    sec = dict(params.get(name) or {})
    sec.setdefault("seed", params.get("seed", 42))
    return sec
