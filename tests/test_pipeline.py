"""The DVC + MLflow spine end to end: `dvc repro` really runs, reruns nothing twice, reruns only what a
param change touches, and every run and model carries its provenance. (Same params, same numbers: the
shared run against the committed metrics and the recorded digests, tests/test_identical_outputs.py.)

Every test reads the session's one `dvc repro` of the project as committed (conftest
``pipeline_root``, shared with the identical-outputs, report, notebook and daily-loop tests); a test
that changes it works on a copy of the finished run (conftest ``copy_run``), never on the shared
folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import copy_run, dvc
from scrm import tracking

pytestmark = pytest.mark.slow

EXPERIMENTS = ("response_time", "outcome", "topics", "benchmark", "detect")


def _stages(root: Path) -> list[str]:
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def test_repro_produces_outputs_and_clean_status(pipeline_root):
    root = pipeline_root.root
    assert (root / "data" / "raw" / "twcs.csv").exists()
    assert pipeline_root.tweets.exists() and pipeline_root.threads.exists()
    assert (root / "reports" / "index.html").exists()
    status = dvc(root, "status").stdout
    assert "up to date" in status, status


def test_second_repro_reruns_nothing(pipeline_root):
    out = dvc(pipeline_root.root, "repro").stdout
    assert "Running stage" not in out, out


def test_mlflow_has_runs_with_provenance(pipeline_root):
    for exp in EXPERIMENTS:
        runs = tracking.list_runs(exp, pipeline_root.root)
        assert len(runs) > 0, exp
        assert runs["params.seed"].notna().all(), exp
        assert runs["params.data_sha256"].str.fullmatch(r"[0-9a-f]{64}").all(), exp
    mlflow = tracking.setup(pipeline_root.root)
    assert mlflow.MlflowClient().search_registered_models(), "no registered model"


def test_param_change_reruns_only_dependants(pipeline_root, tmp_path):
    """Change an outcome param in a copy (a threshold): only outcome (and the report) rerun."""
    root = copy_run(pipeline_root.root, tmp_path / "copy")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["outcome"]["negative_threshold"] = -0.3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(root, "repro").stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert "outcome" in ran
    assert ran <= {"outcome", "report"}, ran


def test_every_run_and_version_of_the_pipeline_carries_commit_and_data_hash(pipeline_root):
    """Every run of every experiment (complaints included) carries the run folder's commit, clean
    (the copy is committed; DVC's own rewrites do not count) and its input hash; every registered
    version carries both and its model a signature."""
    import subprocess

    root = pipeline_root.root
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()
    for exp in (*EXPERIMENTS, "complaints"):
        runs = tracking.list_runs(exp, root)
        assert len(runs) > 0, exp
        assert (runs["tags.scrm.git_commit"] == head).all(), (exp, set(runs["tags.scrm.git_commit"]))
        assert (runs["params.git_commit"] == head).all(), exp
        assert runs["tags.scrm.data_sha256"].str.fullmatch(r"[0-9a-f]{64}").all(), exp
    mlflow = tracking.setup(root)
    client = mlflow.MlflowClient()
    versions = [v for m in client.search_registered_models()
                for v in client.search_model_versions(f"name='{m.name}'")]
    assert versions, "no registered model"
    for v in versions:
        assert v.tags["scrm.git_commit"] == head, v.name
        assert re.fullmatch(r"[0-9a-f]{64}", v.tags["scrm.data_sha256"]), v.name
        info = mlflow.models.get_model_info(f"models:/{v.name}/{v.version}")
        assert info.signature is not None and info.signature.inputs is not None, v.name
        assert info.flavors["sklearn"]["serialization_format"] == "skops", v.name
