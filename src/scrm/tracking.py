"""The only module that talks to MLflow.

Default store: a real SQLite database ``mlflow.db`` in the run root (never a ``file:`` store);
``MLFLOW_TRACKING_URI`` overrides it so a team can point at a shared ``mlflow server``. Every run logs
its params, the seed, the content hash of its inputs and the git commit; models are logged with a
signature and registered under a stable name (``scrm-<stage>-<model>``).

Provenance is read from the *run folder's* repository (not from where the package is installed),
and a commit is ``-dirty`` only when tracked sources differ from it: the files the pipeline itself
rewrites (``dvc.lock``, which DVC stages mid-pipeline, and the committed metrics and plots) and
``params.yaml`` (every run logs its params) do not count. A ``dvc exp run`` adds its experiment
name; queued and ``--temp`` experiments log into the project's own store, not their scratch copy.

Every registered model version carries its run's tags (stage, split, label protocol, data hash,
commit) and a description; :func:`set_champion` gives the chosen version the ``champion`` alias.

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
from .lean_imports import skops_io
from .secrets import known_secrets

_SECRET_KEY = re.compile(r"(key|secret|token|password|passwd|credential)", re.I)


def store_root(root: Path | str | None = None) -> Path:
    """The folder holding ``mlflow.db``: the run root, except inside a queued or ``--temp`` DVC
    experiment, which runs in a scratch copy and names the project in ``DVC_ROOT``."""
    base = Path(root).resolve() if root else default_root()
    project = os.environ.get("DVC_ROOT")
    if os.environ.get("DVC_EXP_NAME") and project and (Path(project) / "params.yaml").exists():
        return Path(project).resolve()
    return base


def tracking_uri(root: Path | str | None = None) -> str:
    """The user's MLFLOW_TRACKING_URI if they set one, else SQLite ``mlflow.db`` in the run root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_root(root) / 'mlflow.db'}"


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


# Tracked files that a pipeline run itself rewrites, so they never make a commit "dirty": DVC's lock
# (staged by core.autostage after every stage), the committed metrics and plots, and params.yaml
# (``dvc exp run -S`` rewrites it; every run logs its params anyway).
RUN_RECORDS = ("dvc.lock", "params.yaml", "reports/metrics/", "reports/plots/")


def changed_sources(porcelain: str) -> list[str]:
    """Paths of ``git status --porcelain -z`` output that are sources (not :data:`RUN_RECORDS`)."""
    paths: list[str] = []
    entries = porcelain.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # a rename is followed by its old path
        if not path.startswith(RUN_RECORDS) and path not in RUN_RECORDS:
            paths.append(path)
    return paths


def git_state(root: Path | str | None = None) -> tuple[str, list[str]]:
    """(commit of the run folder's repository or ``unknown``, tracked sources changed since it)."""
    cwd = Path(root).resolve() if root else default_root()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=False)
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return "unknown", []
        status = subprocess.run(["git", "status", "--porcelain", "-z", "--untracked-files=no"],
                                cwd=cwd, capture_output=True, text=True, timeout=30,
                                check=False).stdout
        return sha, changed_sources(status)
    except (OSError, subprocess.SubprocessError):
        return "unknown", []


def git_commit(root: Path | str | None = None) -> str:
    """``<sha>``, ``<sha>-dirty`` when tracked sources differ from it, or ``unknown``."""
    sha, changed = git_state(root)
    return sha + ("-dirty" if changed and sha != "unknown" else "")


def provenance_tags(root: Path | str | None = None) -> dict[str, str]:
    """Git and DVC provenance of a run started now in ``root``."""
    sha, changed = git_state(root)
    tags = {"scrm.git_commit": sha + ("-dirty" if changed and sha != "unknown" else "")}
    if sha != "unknown":
        tags["mlflow.source.git.commit"] = sha  # what the MLflow UI shows as the source version
    if changed:
        tags["scrm.git_changed"] = ",".join(changed)[:4000]
    for env, tag in (("DVC_EXP_NAME", "scrm.dvc_exp"), ("DVC_EXP_BASELINE_REV", "scrm.dvc_baseline"),
                     ("DVC_STAGE", "scrm.dvc_stage")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


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
        kwargs["artifact_location"] = (store_root(root) / "mlartifacts" / name).as_uri()
    return mlflow.create_experiment(name, **kwargs)


@contextlib.contextmanager
def start_run(experiment: str, run_name: str, *, params: Mapping[str, Any] | None = None,
              seed: int | None = None, inputs: list[Path | str] | None = None,
              tags: Mapping[str, str] | None = None,
              root: Path | str | None = None) -> Iterator[Any]:
    """Open an MLflow run with the provenance every run must carry (params, seed, data hash, commit)."""
    mlflow = setup(root)
    exp_id = _experiment(mlflow, experiment, root)
    all_tags = {**provenance_tags(root), **flatten(dict(tags) if tags else {})}
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

    skops_io()  # before MLflow imports it (with PyTorch)
    example = (X_example.head(5) if hasattr(X_example, "head") else
               X_example[:5] if hasattr(X_example, "__getitem__") else X_example)
    try:
        prediction = model.predict(example)
    except Exception:  # noqa: BLE001 - a signature without outputs is still a signature
        prediction = None
    signature = infer_signature(example, prediction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(model, name=name, signature=signature,
                                        input_example=example,
                                        registered_model_name=registered_name,
                                        skops_trusted_types=trusted_types(model),
                                        pip_requirements=model_requirements())
    version = getattr(info, "registered_model_version", None)
    run = mlflow.active_run()
    if registered_name and version is not None and run is not None:
        describe_version(mlflow.MlflowClient(), registered_name, str(version), run.info.run_id)
    return info


def version_tags(experiment: str, run_name: str, run_id: str, run_tags: Mapping[str, str]
                 ) -> dict[str, str]:
    """The tags a registered model version carries: the run's own tags (split, label protocol,
    data hash, commit ... whatever the stage tagged) under their names, plus ``stage`` and
    ``run_id``. MLflow's bookkeeping tags (``mlflow.*``) are left out."""
    tags = {k: str(v) for k, v in run_tags.items() if not k.startswith("mlflow.")}
    tags["stage"] = run_tags.get("scrm.stage", experiment)
    tags["run_id"] = run_id
    tags["run_name"] = run_name
    return dict(sorted(tags.items()))


def version_description(tags: Mapping[str, str]) -> str:
    """One readable line from :func:`version_tags`: what was fitted, on which split and data."""
    detail = ", ".join(f"{k.split('.', 1)[-1]} {v}" for k, v in tags.items()
                       if k.split(".", 1)[0] == tags["stage"] and k != "scrm.stage")
    data = tags.get("scrm.data_sha256", "")[:12] or "unknown"
    return (f"{tags['run_name']} from the `{tags['stage']}` stage (run {tags['run_id']})"
            f"{'; ' + detail if detail else ''}; input data sha256 {data}…, commit "
            f"{tags.get('scrm.git_commit', 'unknown')}.")


def model_description(name: str, stage: str) -> str:
    return (f"Fitted sklearn pipelines of the scrm `{stage}` stage, one version per registered "
            f"run. Each version's tags give its stage, split, label protocol, input data hash and "
            f"git commit; the `champion` alias (where set) marks the version the stage chose. "
            f"Load: mlflow.pyfunc.load_model('models:/{name}@champion').predict(frame) with the "
            f"signature's columns, or scrm.tracking.predict('models:/{name}@champion', rows).")


def describe_version(client: Any, name: str, version: str, run_id: str) -> dict[str, str]:
    """Tag and describe a freshly registered version from its run (and the model, if new)."""
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    tags = version_tags(experiment, run.info.run_name or "", run_id, run.data.tags)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v[:5000])
    client.update_model_version(name, version, description=version_description(tags))
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=model_description(name, tags["stage"]))
    return tags


def set_champion(name: str, run_id: str, reason: str, root: Path | str | None = None,
                 alias: str = "champion") -> str:
    """Give the version of ``name`` logged by ``run_id`` the ``champion`` alias (or ``alias``, e.g.
    a detector's own name); return its number.

    The stage that chooses (the benchmark: the best model of its headline split and label source)
    calls this, so ``models:/<name>@champion`` always means the chosen model, never just the latest.
    """
    from .errors import ScrmError

    mlflow = setup(root)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if not versions:
        raise ScrmError(f"no version of registered model {name!r} was logged by run {run_id}")
    version = str(max(int(v.version) for v in versions))
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"{alias}_reason", reason[:5000])
    return version


def model_requirements() -> list[str]:
    """Pinned requirements of a logged model, given explicitly: MLflow's own inference starts a
    subprocess that imports the whole environment (torch included), ~20 s per model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("scikit-learn", "numpy", "scipy", "pandas", "skops", "lightgbm"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{dist}=={version(dist)}")
    return out


# Libraries whose types a model of ours may hold. MLflow saves sklearn models with skops (no pickle),
# which refuses any type not declared trusted; we trust these namespaces, nothing else.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "scrm.", "builtins.",
                     "functools.partial", "collections.", "re.Pattern", "_operator.")


def trusted_types(model: Any) -> list[str]:
    """The types of ``model`` that skops would refuse, restricted to the libraries we use."""
    skio = skops_io()
    untrusted = skio.get_untrusted_types(data=skio.dumps(model))
    return sorted(t for t in untrusted if t.startswith(_TRUSTED_PREFIXES))


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dict(obj: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(obj, artifact_file)


def own_store_uri(root: Path | str | None = None) -> str:
    """The project's own store (SQLite ``mlflow.db`` of the run root), whatever MLFLOW_TRACKING_URI
    says: the only store models are ever loaded from."""
    return f"sqlite:///{store_root(root) / 'mlflow.db'}"


@contextlib.contextmanager
def _own_store(root: Path | str | None) -> Iterator[Any]:
    """MLflow pointed (tracking and registry) at the project's own store for the block, then back.

    Why not :func:`setup`: that honours ``MLFLOW_TRACKING_URI`` (a team server is a fine place to
    *log* runs), but a ``models:/`` URI resolved there would load whatever that server holds, and
    loading a model runs its code.
    """
    _quiet()
    import mlflow

    from mlflow.tracking._model_registry import utils as registry

    before = (os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))
    # the registry URI as set (None: "follow the tracking URI"), not as resolved
    old = (mlflow.get_tracking_uri(), getattr(registry, "_registry_uri", None))
    own = own_store_uri(root)
    mlflow.set_tracking_uri(own)
    mlflow.set_registry_uri(own)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(old[0])
        mlflow.set_registry_uri(old[1])  # type: ignore[arg-type]
        for var, value in zip(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"), before, strict=True):
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _check_skops(mlflow: Any, model_uri: str) -> None:
    """Refuse a logged model that is not a skops file (a pickle or cloudpickle runs code on load)."""
    from .errors import ScrmError

    flavor = mlflow.models.get_model_info(model_uri).flavors.get("sklearn", {})
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise ScrmError(f"refusing to load {model_uri!r}: it is saved as {fmt or 'no sklearn model'}"
                        ", not skops; pickled models run code when loaded.")


def load_model(model_uri: str, root: Path | str | None = None) -> Any:
    """Load a logged sklearn model, but only a skops file from this project's own tracking store.

    Pickled models run code when loaded, so a ``models:/`` or ``runs:/`` URI is resolved against the
    project's store (never the one ``MLFLOW_TRACKING_URI`` names), any other scheme (a path, http,
    s3 ...) is refused, and so is a model saved with pickle or cloudpickle.
    """
    _check_uri(model_uri)
    skops_io()  # before MLflow imports it (with PyTorch)
    with _own_store(root) as mlflow:
        _check_skops(mlflow, model_uri)
        return mlflow.sklearn.load_model(model_uri)


def _check_uri(model_uri: str) -> None:
    from .errors import ScrmError

    if not (model_uri.startswith("models:/") or model_uri.startswith("runs:/")):
        raise ScrmError(f"refusing to load {model_uri!r}: models are loaded only from this project's "
                        "MLflow store (models:/NAME/VERSION, models:/NAME@champion or "
                        "runs:/RUN_ID/model); pickled models run code when loaded.")


def load_pyfunc(model_uri: str, root: Path | str | None = None) -> Any:
    """The model as an ``mlflow.pyfunc`` model (schema-checked ``predict``), from our store only."""
    _check_uri(model_uri)
    skops_io()  # before MLflow imports it (with PyTorch)
    with _own_store(root) as mlflow:
        import mlflow.pyfunc

        _check_skops(mlflow, model_uri)
        return mlflow.pyfunc.load_model(model_uri)


def as_model_input(model: Any, rows: Any) -> Any:
    """``rows`` as the frame the model's signature asks for.

    A model fitted on a one-column frame (the benchmark's ``text``) rejects a bare list of strings
    ("Expected 2D array, got 1D array"); a list is put into that one named column. A frame is
    passed through unchanged.
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    schema = model.metadata.get_input_schema() if hasattr(model, "metadata") else None
    names = schema.input_names() if schema is not None else []
    if isinstance(rows, (list, tuple)) and len(names) == 1:
        return pd.DataFrame({names[0]: list(rows)})
    return pd.DataFrame(rows)


def predict(model_uri: str, rows: Any, root: Path | str | None = None) -> list[Any]:
    """Predictions of a registered or logged model for ``rows`` (a frame, records, or a list of
    texts for a one-column text model): ``predict("models:/scrm-benchmark-linsvc@champion",
    ["my parcel never arrived"])``."""
    model = load_pyfunc(model_uri, root)
    out = model.predict(as_model_input(model, rows))
    return list(out.tolist() if hasattr(out, "tolist") else out)


def list_runs(experiment: str, root: Path | str | None = None) -> Any:
    """All runs of an experiment as a pandas frame (empty frame if none)."""
    import pandas as pd

    mlflow = setup(root)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=[exp.experiment_id], order_by=["start_time ASC"])


def registered_models(root: Path | str | None = None) -> list[dict[str, Any]]:
    """Every registered model of the store: name, aliases (alias -> version), versions; by name."""
    client = setup(root).MlflowClient()
    return sorted(({"name": rm.name, "aliases": {a: str(v) for a, v in sorted(rm.aliases.items())},
                    "versions": sorted(int(v.version) for v in
                                       client.search_model_versions(f"name = '{rm.name}'"))}
                   for rm in client.search_registered_models()), key=lambda r: r["name"])


def register_run_model(run_id: str, name: str, root: Path | str | None = None) -> str:
    """Register the model that run ``run_id`` registered (e.g. as ``scrm-benchmark-linsvc``) also
    under the stable ``name``, tagged and described like every version; the new version number."""
    from .errors import ScrmError

    client = setup(root).MlflowClient()
    found = client.search_model_versions(f"run_id = '{run_id}'")
    if not found:
        raise ScrmError(f"run {run_id} registered no model (params benchmark.mlflow.register)")
    with contextlib.suppress(Exception):  # exists already
        client.create_registered_model(name)
    version = str(client.create_model_version(name, found[0].source, run_id=run_id).version)
    describe_version(client, name, version, run_id)
    return version
