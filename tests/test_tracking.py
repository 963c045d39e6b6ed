"""MLflow spine: a real SQLite store, provenance on every run, models with signatures in the registry."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from scrm import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    inp = tmp_path / "input.csv"
    inp.write_text("a,b\n1,2\n")
    return tmp_path, inp


def test_default_uri_is_sqlite_in_root(store):
    root, _ = store
    assert tracking.tracking_uri(root) == f"sqlite:///{root / 'mlflow.db'}"


def test_env_uri_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri(tmp_path) == "http://127.0.0.1:5999"


def test_run_records_provenance_and_model(store):
    root, inp = store
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]] * 5)
    y = np.array([0, 1, 0, 1] * 5)
    model = LogisticRegression(random_state=7).fit(X, y)
    with tracking.start_run("unit", "logreg", params={"model": {"C": 1.0}, "api_key": "s3cr3t"},
                            seed=7, inputs=[inp], root=root) as run:
        tracking.log_metrics({"auc": 0.75, "nan_metric": float("nan")})
        tracking.log_sklearn_model(model, X, registered_name="scrm-unit-logreg")
    runs = tracking.list_runs("unit", root)
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["params.seed"] == "7" and r["params.model.C"] == "1.0"
    assert r["params.data_sha256"] == tracking.data_hash([inp])
    assert r["tags.scrm.git_commit"]
    assert "params.api_key" not in runs.columns  # credential-like keys are never logged
    assert r["metrics.auc"] == 0.75
    mlflow = tracking.setup(root)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions("name='scrm-unit-logreg'")
    assert len(versions) == 1 and versions[0].run_id == run.info.run_id
    info = mlflow.models.get_model_info(f"models:/scrm-unit-logreg/{versions[0].version}")
    assert info.signature is not None and info.signature.inputs is not None
    loaded = mlflow.sklearn.load_model(f"models:/scrm-unit-logreg/{versions[0].version}")
    assert (loaded.predict(X) == model.predict(X)).all()
    # it is a real SQLite database
    con = sqlite3.connect(root / "mlflow.db")
    assert con.execute("select count(*) from runs").fetchone()[0] == 1
    con.close()


def test_secret_values_are_not_logged_whatever_their_key(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "k3y-that-must-not-leak-0123")
    flat = tracking.flatten({"fetch": {"auth": "k3y-that-must-not-leak-0123", "source": "kaggle"}})
    assert flat == {"fetch.source": "kaggle"}


def test_load_model_refuses_foreign_locations(store):
    from scrm.errors import ScrmError

    root, _ = store
    for uri in ("/tmp/model.pkl", "s3://bucket/model", "http://evil.example/model"):
        with pytest.raises(ScrmError, match="only from this project's"):
            tracking.load_model(uri, root)


def test_gradient_boosting_pipeline_logs_and_loads_without_pickle(store):
    """skops (not pickle) stores the model; the library types it needs are declared trusted."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    root, inp = store
    X = np.array([[0.0, 1.0], [1.0, np.nan], [0.5, 0.5], [0.9, 0.1]] * 10)
    y = np.array([0, 1, 0, 1] * 10)
    model = make_pipeline(SimpleImputer(), HistGradientBoostingClassifier(random_state=0)).fit(X, y)
    with tracking.start_run("unit", "hgb", seed=0, inputs=[inp], root=root):
        info = tracking.log_sklearn_model(model, X, registered_name="scrm-unit-hgb")
    loaded = tracking.load_model(info.model_uri, root)
    assert (loaded.predict(X) == model.predict(X)).all()


def test_two_roots_in_one_process_keep_separate_stores(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        (root / "params.yaml").write_text("seed: 1\n")
        with tracking.start_run("unit", "r", seed=1, root=root):
            tracking.log_metrics({"m": 1.0})
    assert (a / "mlflow.db").exists() and (b / "mlflow.db").exists()
    assert len(tracking.list_runs("unit", a)) == 1 and len(tracking.list_runs("unit", b)) == 1


def test_setup_leaves_the_environment_as_it_found_it(tmp_path, monkeypatch):
    """A user's MLFLOW_TRACKING_URI is honoured; ours is never exported to later callers."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    mlflow = tracking.setup(tmp_path)
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert "MLFLOW_TRACKING_URI" not in __import__("os").environ
    user = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user)
    assert tracking.setup(tmp_path / "elsewhere").get_tracking_uri() == user
    assert __import__("os").environ["MLFLOW_TRACKING_URI"] == user
