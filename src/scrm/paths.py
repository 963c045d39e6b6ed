"""Every artifact of a pipeline run, named once (the catalogue).

Why: a file name repeated as a string literal in a stage, the report, a notebook and a test drifts
apart. Stages, the report, notebooks, tests and ``dvc.yaml`` (checked by a test) use these names.

Every path hangs off a *root* (the project by default); a full-scale run points ``SCRM_ROOT`` (or
``--root``) elsewhere so it never clobbers the sample run. Layout: cookiecutter-data-science v2
(data/raw -> data/interim -> data/processed -> reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
SAMPLE_CSV = SAMPLE_DIR / "twcs_head5000.csv"
KAGGLE_SAMPLE_CSV = SAMPLE_DIR / "kaggle_sample.csv"
REFERENCES = PROJECT_ROOT / "references"
GOLD_CSV = REFERENCES / "gold_labels.csv"
GOLD_GUIDELINES = REFERENCES / "gold_guidelines.md"
GOLD_TEST_CSV = REFERENCES / "gold_test_labels.csv"       # the sealed test (adjudicated)
GOLD_TEST_DRAW = REFERENCES / "gold_test_draw.csv"        # its seeded draw, fixed before labelling
GOLD_TEST_PASSES = (REFERENCES / "gold_test_pass_a.csv", REFERENCES / "gold_test_pass_b.csv")
GOLD_TEST_VERSION = REFERENCES / "gold_test_VERSION.md"   # version notes with the files' sha256
AGREEMENT_JSON = REFERENCES / "agreement.json"            # Cohen's kappa of the two-pass sets


@dataclass(frozen=True)
class Paths:
    """Folder layout and artifact names of one pipeline run."""

    root: Path

    # folders --------------------------------------------------------------------------------
    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    def metric(self, stage: str) -> Path:
        """``reports/metrics/<stage>.json``: each stage's metrics file."""
        return self.metrics / f"{stage}.json"

    @property
    def status(self) -> Path:
        """Failure notes of stages whose last run failed (not pipeline outputs: no DVC)."""
        return self.reports / "status"

    def failure_note(self, stage: str) -> Path:
        """``reports/status/<stage>.failed.json``: left by a failed run, removed by a good one."""
        return self.status / f"{stage}.failed.json"

    # fetch + prepare ------------------------------------------------------------------------
    @property
    def raw_csv(self) -> Path:
        return self.raw / "twcs.csv"

    @property
    def tweets(self) -> Path:
        return self.interim / "tweets.parquet"

    @property
    def quarantine(self) -> Path:
        return self.interim / "quarantine.csv"

    @property
    def threads(self) -> Path:
        return self.processed / "threads.parquet"

    @property
    def openings(self) -> Path:
        return self.processed / "openings.parquet"

    # response time --------------------------------------------------------------------------
    @property
    def response_time(self) -> Path:
        return self.processed / "response_time.parquet"

    @property
    def service_table(self) -> Path:
        return self.processed / "service_table.parquet"

    @property
    def importance_png(self) -> Path:
        return self.figures / "response_time_importance.png"

    @property
    def latency_plot(self) -> Path:
        return self.plots / "latency_by_brand.csv"

    @property
    def km_plot(self) -> Path:
        return self.plots / "km_curves.csv"

    @property
    def calibration_plot(self) -> Path:
        return self.plots / "within_1h_calibration.csv"

    @property
    def rt_sensitivity(self) -> Path:
        """Service figures per answered definition x population x scope."""
        return self.processed / "response_time_sensitivity.parquet"

    @property
    def rt_pairwise(self) -> Path:
        """Pairwise brand comparisons: log-rank with Holm, RMST and within-1 h differences."""
        return self.processed / "response_time_pairwise.parquet"

    # outcome --------------------------------------------------------------------------------
    @property
    def outcome(self) -> Path:
        return self.processed / "outcome.parquet"

    @property
    def outcome_findings(self) -> Path:
        return self.processed / "outcome_findings.parquet"

    @property
    def outcome_transitions(self) -> Path:
        return self.processed / "outcome_transitions.parquet"

    @property
    def sentiment(self) -> Path:
        return self.processed / "sentiment.parquet"

    # complaints -----------------------------------------------------------------------------
    @property
    def complaints(self) -> Path:
        return self.processed / "complaints.parquet"

    @property
    def lf_summary(self) -> Path:
        return self.processed / "lf_summary.csv"

    @property
    def embeddings(self) -> Path:
        return self.processed / "embeddings.npz"

    @property
    def topics(self) -> Path:
        return self.processed / "topics.parquet"

    @property
    def topic_info(self) -> Path:
        return self.processed / "topic_info.parquet"

    @property
    def topic_taxonomy(self) -> Path:
        return self.processed / "topic_taxonomy.parquet"

    @property
    def topic_share_brand(self) -> Path:
        return self.processed / "topic_share_brand.parquet"

    @property
    def topic_share_time(self) -> Path:
        return self.processed / "topic_share_time.parquet"

    @property
    def topic_figures(self) -> Path:
        return self.figures / "topics"

    @property
    def bertopic_model(self) -> Path:
        return self.models / "bertopic"

    @property
    def benchmark_csv(self) -> Path:
        return self.reports / "benchmark.csv"

    @property
    def benchmark_md(self) -> Path:
        return self.reports / "benchmark.md"

    @property
    def benchmark_confusion_html(self) -> Path:
        return self.figures / "benchmark_confusion.html"

    @property
    def benchmark_confusion_plot(self) -> Path:
        return self.plots / "benchmark_confusion.csv"

    @property
    def benchmark_leaderboard_plot(self) -> Path:
        return self.plots / "benchmark_leaderboard.csv"

    @property
    def complaint_detect(self) -> Path:
        """Stage ``detect``: per opening, the rules' votes, each detector's score and decision."""
        return self.processed / "complaint_detect.parquet"

    @property
    def complaint_rules_summary(self) -> Path:
        """Stage ``detect``: per complaint rule, coverage and precision on the dev gold set."""
        return self.processed / "complaint_rules.csv"

    # report ---------------------------------------------------------------------------------
    @property
    def report_html(self) -> Path:
        return self.reports / "index.html"

    @property
    def report_figures(self) -> Path:
        return self.figures / "report"

    @property
    def headline(self) -> Path:
        """``reports/metrics/headline.json``: the flat file of DVC's one declared metric."""
        return self.metric("headline")

    # tracking -------------------------------------------------------------------------------
    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    def ensure(self) -> Paths:
        for p in (self.raw, self.interim, self.processed, self.models, self.figures, self.metrics,
                  self.plots):
            p.mkdir(parents=True, exist_ok=True)
        return self
