"""Shared fixtures: the real sample, a prepared run root, and tiny hand-made threads."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scrm.config import KAGGLE_SAMPLE_CSV, PROJECT_ROOT, SAMPLE_CSV, FetchSettings, Paths
from scrm.data.schema import EXPECTED_COLUMNS

T0 = datetime(2017, 10, 31, 12, 0, 0, tzinfo=timezone.utc)


def in_ci() -> bool:
    """CI=true (GitHub Actions, GitLab, .ci/run's callers): every promised check must run there."""
    import os

    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_unless_ci(reason: str) -> None:
    """Skip a check whose tool is missing on a developer's machine; under ``CI=true`` fail instead,
    so a missing chromedriver or package index never turns a promised check into a silent skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a promised check may not be skipped)", pytrace=False)
    pytest.skip(reason)


def twitter_date(dt: datetime) -> str:
    return dt.strftime("%a %b %d %H:%M:%S +0000 %Y")


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def kaggle_sample_csv() -> Path:
    return KAGGLE_SAMPLE_CSV


@pytest.fixture(scope="session")
def sample_rows() -> list[dict[str, str]]:
    """The real sample read with the stdlib csv module (an independent reader for checks)."""
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def make_root(tmp: Path) -> Paths:
    """A fresh run root with the project's params.yaml."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp / "params.yaml")
    return Paths(tmp).ensure()


def set_params(root: Path, changes: dict[tuple[str, ...], Any]) -> None:
    """Rewrite ``root/params.yaml`` with nested keys set: ``{("embed", "backend"): "tfidf_svd"}``
    (test-time settings: the same code paths, less work)."""
    import yaml

    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for keys, value in changes.items():
        node = params
        for k in keys[:-1]:
            node = node.setdefault(k, {}) or {}
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def fetch_settings(**changes: Any) -> FetchSettings:
    """The project's fetch settings with ``changes`` (e.g. ``source="file", path=...``)."""
    from scrm.config import load_settings

    return load_settings(PROJECT_ROOT).fetch.replace(**changes)


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """fetch(sample) + prepare run once per session in a temp root; read-only for tests."""
    from scrm.config import load_settings
    from scrm.data import fetch, prepare

    paths = make_root(tmp_path_factory.mktemp("prepared"))
    settings = load_settings(paths.root)
    fetch.run(paths, settings.fetch)
    prepare.run(paths, settings.prepare, settings.openings)
    return paths


def write_twcs(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write hand-made tweets as a twcs.csv (missing keys -> empty)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(EXPECTED_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in EXPECTED_COLUMNS})
    return path


def tweet(tid: int, author: str, minutes: float, text: str = "hello", parent: int | None = None,
          replies: list[int] | None = None) -> dict[str, Any]:
    """One hand-made tweet, ``minutes`` after T0; inbound iff the author is numeric (a customer)."""
    return {
        "tweet_id": tid,
        "author_id": author,
        "inbound": "True" if author.isdigit() else "False",
        "created_at": twitter_date(T0 + timedelta(minutes=minutes)),
        "text": text,
        "response_tweet_id": ",".join(str(r) for r in (replies or [])),
        "in_response_to_tweet_id": "" if parent is None else parent,
    }


@pytest.fixture
def tiny_root(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Paths]:
    """Build a run root whose raw file holds the given hand-made tweets, then run prepare."""

    def build(rows: list[dict[str, Any]]) -> Paths:
        from scrm.config import load_params, load_settings
        from scrm.data import prepare

        paths = make_root(tmp_path)
        write_twcs(paths.raw_csv, rows)
        settings = load_settings(paths.root)
        prepare.run(paths, settings.prepare, settings.openings)
        return paths

    return build


# --------------------------------------------------------------------------------------------------
# the whole DVC pipeline on the sample, once per session, in a copy of the project
# --------------------------------------------------------------------------------------------------
def copy_project(dest: Path, source: Path = PROJECT_ROOT) -> Path:
    """Copy the project's source files (tracked + untracked, not ignored) into ``dest`` as a git repo.

    Also used by the mutation runner (tests/mutation/run.py)."""
    import subprocess

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=source, capture_output=True, check=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        rel = f.decode()
        src = source / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def dvc(root: Path, *args: str, timeout: int = 1500) -> "subprocess.CompletedProcess[str]":
    import os
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
           "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SCRM_ROOT", None)
    r = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True,
                       text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="session")
def pipeline_root(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """`dvc repro` of the whole pipeline on the embedded sample, in a fresh copy of the project."""
    root = copy_project(tmp_path_factory.mktemp("pipeline"))
    dvc(root, "repro")
    return Paths(root)


# --------------------------------------------------------------------------------------------------
# complaint detection on the sample, once per session: complaints, a one-model benchmark (for the
# category champion) and detect with its MLflow registry, in a fresh root
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def detect_root(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    from scrm.complaints import detect, weak_labels
    from scrm.complaints.benchmark import stage as bm
    from scrm.config import load_settings

    paths = make_root(tmp_path_factory.mktemp("detect"))
    shutil.copy(prepared_root.openings, paths.openings)
    settings = load_settings(paths.root)
    weak_labels.run(paths, settings.complaints.replace(track=False))
    bm.run(paths, settings.benchmark, models=["logreg"], protocols=["weak_to_gold"],
           log_models="best")
    detect.run(paths, settings.detect)
    return paths
