"""Promises that once survived a deliberate break (see tests/mutation/): model files are skops and a
pickle is refused, models load only from this project's store, runs carry the run folder's commit,
registered versions carry signature, data hash and commit, and a sentiment score equal to a
threshold belongs to the class the threshold names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.dummy import DummyClassifier

from scrm import tracking
from scrm.errors import ScrmError

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]] * 5)
Y = np.array([0, 1, 0, 1] * 5)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run folder that is its own git repository with one commit, and no foreign store set."""
    for env in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_EXP_NAME", "DVC_ROOT",
                "DVC_STAGE", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(env, raising=False)
    root = tmp_path / "run"
    root.mkdir()
    (root / "params.yaml").write_text("seed: 1\n")
    (root / "input.csv").write_text("a,b\n1,2\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    return root


def _artifact_files(root: Path, model_uri: str) -> list[str]:
    mlflow = tracking.setup(root)
    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    return sorted(p.name for p in local.rglob("*") if p.is_file())


# ---- model safety ---------------------------------------------------------------------------------
def test_logged_model_is_a_skops_file_and_no_pickle(repo: Path) -> None:
    model = DummyClassifier(strategy="most_frequent").fit(X, Y)
    with tracking.start_run("unit", "dummy", seed=0, inputs=[repo / "input.csv"], root=repo):
        info = tracking.log_sklearn_model(model, X, registered_name="scrm-unit-dummy")
    files = _artifact_files(repo, info.model_uri)
    assert "model.skops" in files, files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle", ".joblib"))], files
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert (tracking.load_model(info.model_uri, repo).predict(X) == model.predict(X)).all()


def test_loading_a_pickled_model_is_refused_even_from_our_own_store(repo: Path) -> None:
    """A pickle in the project's own store (logged by hand, around scrm) still never loads."""
    mlflow = tracking.setup(repo)
    model = DummyClassifier(strategy="most_frequent").fit(X, Y)
    with tracking.start_run("unit", "pickled", seed=0, root=repo):
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                        registered_model_name="scrm-unit-pickled")
    assert "model.pkl" in _artifact_files(repo, info.model_uri)
    for uri in (info.model_uri, "models:/scrm-unit-pickled/1"):
        with pytest.raises(ScrmError, match="not skops"):
            tracking.load_model(uri, repo)
        with pytest.raises(ScrmError, match="not skops"):
            tracking.load_pyfunc(uri, repo)


def test_load_model_resolves_against_the_projects_store_only(repo: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``models:/NAME/1`` means this project's version 1 even when MLFLOW_TRACKING_URI names another
    store holding a model of the same name (one that predicts the other class)."""
    ours = DummyClassifier(strategy="constant", constant=0).fit(X, Y)
    theirs = DummyClassifier(strategy="constant", constant=1).fit(X, Y)
    with tracking.start_run("unit", "ours", seed=0, root=repo):
        tracking.log_sklearn_model(ours, X, registered_name="scrm-unit-same")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "params.yaml").write_text("seed: 1\n")
    foreign = f"sqlite:///{elsewhere / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", foreign)
    with tracking.start_run("unit", "theirs", seed=0, root=elsewhere):
        tracking.log_sklearn_model(theirs, X, registered_name="scrm-unit-same")
    assert tracking.tracking_uri(repo) == foreign  # runs would be logged there ...
    loaded = tracking.load_model("models:/scrm-unit-same/1", repo)  # ... models load from ours
    assert set(loaded.predict(X)) == {0}
    assert set(tracking.predict("models:/scrm-unit-same/1", X.tolist(), repo)) == {0}
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == foreign  # the environment is left as it was
    assert "MLFLOW_REGISTRY_URI" not in os.environ


# ---- provenance -----------------------------------------------------------------------------------
def test_git_commit_is_rev_parse_head_of_the_run_folder(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert len(head) == 40
    assert tracking.git_commit(repo) == head
    with tracking.start_run("unit", "r", seed=1, inputs=[repo / "input.csv"], root=repo):
        tracking.log_metrics({"m": 1.0})
    r = tracking.list_runs("unit", repo).iloc[0]
    assert r["tags.scrm.git_commit"] == head and r["params.git_commit"] == head
    assert r["tags.mlflow.source.git.commit"] == head


def test_every_registered_version_carries_commit_signature_and_data_hash(repo: Path) -> None:
    """One registered model per experiment the pipeline logs to (complaints included)."""
    head = _git(repo, "rev-parse", "HEAD")
    model = DummyClassifier(strategy="most_frequent").fit(X, Y)
    for exp in ("response_time", "outcome", "complaints", "topics", "benchmark"):
        with tracking.start_run(exp, "m", seed=0, inputs=[repo / "input.csv"], root=repo):
            tracking.log_sklearn_model(model, X, registered_name=f"scrm-{exp}-m")
    client = tracking.setup(repo).MlflowClient()
    versions = [v for m in client.search_registered_models()
                for v in client.search_model_versions(f"name='{m.name}'")]
    assert len(versions) == 5
    for v in versions:
        assert v.tags["scrm.git_commit"] == head, v.name
        assert v.tags["scrm.data_sha256"] == tracking.data_hash([repo / "input.csv"]), v.name
        info = tracking.setup(repo).models.get_model_info(f"models:/{v.name}/{v.version}")
        assert info.signature is not None and info.signature.inputs is not None, v.name
        assert head in v.description


# ---- sentiment classes: a threshold belongs to the class it names ------------------------------------
def test_sentiment_classes_include_their_thresholds() -> None:
    from scrm.outcome.measure import threshold_state
    from scrm.outcome.trajectories import sentiment_class

    neg, pos = -0.05, 0.05
    s = pl.DataFrame({"s": [-0.5, neg, -0.049, 0.0, 0.049, pos, 0.5, None]},
                     schema={"s": pl.Float64})
    got = s.select(sentiment_class(pl.col("s"), neg, pos)).to_series().to_list()
    assert got == ["negative", "negative", "neutral", "neutral", "neutral", "positive", "positive",
                   None]
    opening = s.select(threshold_state("opening_state", pl.col("s"), neg, pos)).to_series()
    assert opening.to_list() == ["unhappy", "unhappy", *["not_unhappy"] * 5, None]
    end = s.select(threshold_state("end_state", pl.col("s"), neg, pos)).to_series()
    assert end.to_list() == ["still_unhappy", "still_unhappy", "procedural", "procedural",
                             "procedural", "satisfied", "satisfied", None]
