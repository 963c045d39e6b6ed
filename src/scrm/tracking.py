"""The only module that talks to MLflow.

Default store: a real SQLite database ``mlflow.db`` in the run root (never a ``file:`` store);
``MLFLOW_TRACKING_URI`` overrides it so a team can point at a shared ``mlflow server``. Every run logs
its params, the seed, the content hash of its inputs and the git commit; models are logged with a
signature and registered under a stable name (``scrm-<stage>-<model>``).

Security: params whose key looks like a credential are never logged, and models are only ever loaded
from this project's own store (pickled models run code when loaded).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .config import PROJECT_ROOT, default_root
from .io import sha256_file
from .secrets import known_secrets

_SECRET_KEY = re.compile(r"(key|secret|token|password|passwd|credential)", re.I)


def tracking_uri(root: Path | str | None = None) -> str:
    """The user's MLFLOW_TRACKING_URI if they set one, else SQLite ``mlflow.db`` in the run root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    base = Path(root).resolve() if root else default_root()
    return f"sqlite:///{base / 'mlflow.db'}"


def _quiet() -> None:
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def setup(root: Path | str | None = None) -> Any:
    """Point MLflow at the run's store and return the mlflow module."""
    _quiet()
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(root))
    # set_tracking_uri() also exports MLFLOW_TRACKING_URI; put the environment back so that a later
    # call for another run root (tests, notebooks) is not mistaken for the user's own choice.
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    return mlflow


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=False)
        sha = out.stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: Mapping[str, Any], prefix: str = "", _secrets: list[str] | None = None
            ) -> dict[str, Any]:
    """Nested params -> ``a.b.c`` keys. Credential-like keys are dropped, and so is any value that
    contains a credential the Kaggle client could use (whatever its key is called)."""
    secrets = known_secrets() if _secrets is None else _secrets
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _SECRET_KEY.search(str(k)):
            continue
        if isinstance(v, Mapping):
            out.update(flatten(v, key + ".", secrets))
            continue
        value = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
        if isinstance(value, str) and any(sec in value for sec in secrets):
            continue
        out[key] = value
    return out


def data_hash(paths: list[Path | str]) -> str:
    """Content hash of the input files (sha256 of their sha256s, in the given order)."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def _experiment(mlflow: Any, name: str, root: Path | str | None) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = tracking_uri(root)
    kwargs: dict[str, Any] = {}
    if uri.startswith("sqlite:"):
        base = Path(root).resolve() if root else default_root()
        kwargs["artifact_location"] = (base / "mlartifacts" / name).as_uri()
    return mlflow.create_experiment(name, **kwargs)


@contextlib.contextmanager
def start_run(experiment: str, run_name: str, *, params: Mapping[str, Any] | None = None,
              seed: int | None = None, inputs: list[Path | str] | None = None,
              tags: Mapping[str, str] | None = None,
              root: Path | str | None = None) -> Iterator[Any]:
    """Open an MLflow run with the provenance every run must carry (params, seed, data hash, commit)."""
    mlflow = setup(root)
    exp_id = _experiment(mlflow, experiment, root)
    all_tags = {"scrm.git_commit": git_commit(), **flatten(dict(tags) if tags else {})}
    all_tags = {k: str(v) for k, v in all_tags.items()}
    if inputs:
        all_tags["scrm.data_sha256"] = data_hash(inputs)
        all_tags["scrm.inputs"] = ",".join(Path(p).name for p in inputs)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags) as run:
        flat = flatten(params or {})
        if seed is not None:
            flat["seed"] = seed
        if "scrm.data_sha256" in all_tags:
            flat["data_sha256"] = all_tags["scrm.data_sha256"]
        flat["git_commit"] = all_tags["scrm.git_commit"]
        # MLflow caps a param value at 6000 chars and a batch at 100 params
        items = [(k, str(v)[:6000]) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i:i + 100]))
        yield run


def log_metrics(metrics: Mapping[str, Any]) -> None:
    import math

    import mlflow

    clean = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            clean[re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(k))] = f
    if clean:
        mlflow.log_metrics(clean)


def log_sklearn_model(model: Any, X_example: Any, registered_name: str | None = None,
                      name: str = "model") -> Any:
    """Log a fitted sklearn estimator with an inferred signature; register it under a stable name."""
    import mlflow
    from mlflow.models import infer_signature

    example = X_example[:5] if hasattr(X_example, "__getitem__") else X_example
    if hasattr(X_example, "head"):
        example = X_example.head(5)
    try:
        prediction = model.predict(example)
    except Exception:  # noqa: BLE001 - a signature without outputs is still a signature
        prediction = None
    signature = infer_signature(example, prediction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.sklearn.log_model(model, name=name, signature=signature,
                                        input_example=example,
                                        registered_model_name=registered_name,
                                        skops_trusted_types=trusted_types(model),
                                        pip_requirements=model_requirements())


def model_requirements() -> list[str]:
    """Pinned requirements of a logged model, given explicitly: MLflow's own inference starts a
    subprocess that imports the whole environment (torch included), ~20 s per model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("scikit-learn", "numpy", "scipy", "pandas", "skops", "lightgbm"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


# Libraries whose types a model of ours may hold. MLflow saves sklearn models with skops (no pickle),
# which refuses any type not declared trusted; we trust these namespaces, nothing else.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "scrm.", "builtins.",
                     "functools.partial", "collections.", "re.Pattern", "_operator.")


def trusted_types(model: Any) -> list[str]:
    """The types of ``model`` that skops would refuse, restricted to the libraries we use."""
    import skops.io as skio

    untrusted = skio.get_untrusted_types(data=skio.dumps(model))
    return sorted(t for t in untrusted if t.startswith(_TRUSTED_PREFIXES))


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dict(obj: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(obj, artifact_file)


def load_model(model_uri: str, root: Path | str | None = None) -> Any:
    """Load a logged sklearn model, but only from this project's own tracking store.

    Pickled models run code when loaded, so a ``models:/`` or ``runs:/`` URI is resolved against the
    project's store and any other scheme (a path, http, s3 ...) is refused.
    """
    from .errors import ScrmError

    if not (model_uri.startswith("models:/") or model_uri.startswith("runs:/")):
        raise ScrmError(f"refusing to load {model_uri!r}: models are loaded only from this project's "
                        "MLflow store (models:/NAME/VERSION or runs:/RUN_ID/model); pickled models "
                        "run code when loaded.")
    mlflow = setup(root)
    return mlflow.sklearn.load_model(model_uri)


def list_runs(experiment: str, root: Path | str | None = None) -> Any:
    """All runs of an experiment as a pandas frame (empty frame if none)."""
    import pandas as pd

    mlflow = setup(root)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=[exp.experiment_id], order_by=["start_time ASC"])
