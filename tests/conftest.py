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


# Under pytest-xdist (`make test` runs `-n 3 --dist loadgroup --no-loadscope-reorder`) each test file is
# one unit of work, so a module-scoped fixture is built once; a session-scoped one is built once per
# worker that needs it (``prepared_root`` and ``detect_root`` are cheap), except the shared sample run
# (``pipeline_root``), which the first worker to need it builds under a file lock and every worker
# then reads. Units are handed out in the order below, longest chains first: the file that builds the
# shared run, the edge-input pipelines and the Ray engine (the longest wall time: started last, it
# was the suite's tail), then every other file as collected, the files that only read the shared
# run last (by then it is built). Without xdist nothing changes.
FIRST = ("test_identical_outputs.py", "test_edge_pipeline.py", "test_ray_engine.py")
LAST = ("test_pipeline.py", "test_daily_loop.py", "test_report.py", "test_browser.py",
        "test_notebooks.py")


def _unit(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def _rank(item: pytest.Item) -> int:
    name = _unit(item).rsplit("/", 1)[-1]
    return (FIRST.index(name) - len(FIRST) if name in FIRST
            else 1 + LAST.index(name) if name in LAST else 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers by --dist loadgroup
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        unit = _unit(item)
        item.add_marker(pytest.mark.xdist_group(unit))
        if not item.nodeid.endswith(f"@{unit}"):
            # what xdist's own hook does (``item._nodeid``), which pytest 9.2 no longer reads:
            # the scheduler groups tests by this suffix of their id
            item._id = coerce_node_id(f"{item.nodeid}@{unit}")
    items.sort(key=_rank)  # stable: otherwise as collected


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
    (test-time settings: the same code paths, less work). A round trip (ruamel.yaml, as DVC's own
    rewrite): every other value keeps its comments and quotes, so the file stays the user's."""
    from ruamel.yaml import YAML

    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096
    path = root / "params.yaml"
    params = yaml_rt.load(path.read_text(encoding="utf-8"))
    for keys, value in changes.items():
        node = params
        for k in keys[:-1]:
            if node.get(k) is None:
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    with path.open("w", encoding="utf-8") as fh:
        yaml_rt.dump(params, fh)


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
        from scrm.config import load_settings
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


# The sample run the slow tests share: the project's params.yaml with these test-time settings (the
# same stages and code paths, less work): the fast embedding backend, three benchmark models on one
# split, one repeat, fewer bootstrap draws, one response-time model registered, one process per
# stage. Every stage still runs
# and tracks in MLflow (complaints included) and registers what the provenance tests check (the
# benchmark's best models, the detectors, the category champion). Its outputs are checked against a
# record (tests/test_identical_outputs.py); the full settings' run is `make run`, whose committed
# outputs are pinned to the code and params by dvc.lock (tests/test_daily_loop.py).
RUN_PARAMS: dict[tuple[str, ...], Any] = {
    ("embed", "backend"): "tfidf_svd",
    ("embed", "progress"): False,
    ("response_time", "n_boot"): 200,
    ("response_time", "importance_repeats"): 1,
    ("response_time", "log_models"): ["logistic"],
    ("outcome", "model", "n_boot"): 20,
    ("outcome", "model", "log_models"): False,
    ("outcome", "measure", "n_boot"): 200,
    # the measure on lexical cues only: MiniLM over the sample's threads is ~45 CPU-s, and the
    # MiniLM measure is proven on the sample by tests/test_outcome.py (sealed test, dev-only fit)
    ("outcome", "measure", "embedding"): "none",
    ("complaints", "n_boot"): 200,
    ("benchmark", "splits"): ["stratified"],
    ("benchmark", "models"): ["dummy", "complement_nb", "logreg"],
    ("benchmark", "cv_repeats"): 1,
    ("benchmark", "n_boot"): 200,
    ("detect", "n_boot"): 200,
    # one topic fit, no stability refits (the stability metrics: tests/test_topics.py)
    ("topics", "stability_runs"): 0,
    # one process per stage: the suite's two workers keep both cores busy already, and a stage's
    # own worker processes would only add their start-up (the same numbers either way: tested in
    # test_parallel.py, test_response_time.py, test_outcome.py, test_benchmark.py)
    ("response_time", "n_jobs"): 1,
    ("outcome", "n_jobs"): 1,
    ("benchmark", "workers"): 1,
}

# One opening whose text is an XSS attempt, added to the shared run's input: the report, the browser
# and the notebooks read its outputs, and the page must show these characters as text.
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
XSS_TEXT = f"{XSS} @AppleSupport my phone & my laptop both died"


def xss_thread(tid: int = 9_000_001) -> list[dict[str, Any]]:
    """A customer opening whose text is an XSS attempt, answered by a brand: written after the
    sample's last tweet so it is the latest opening (shown in the overview's table)."""
    when = datetime(2017, 12, 4, 9, 0, tzinfo=timezone.utc)
    return [
        {"tweet_id": tid, "author_id": "999001", "inbound": "True", "created_at": twitter_date(when),
         "text": XSS_TEXT, "response_tweet_id": str(tid + 1), "in_response_to_tweet_id": ""},
        {"tweet_id": tid + 1, "author_id": "AppleSupport", "inbound": "False",
         "created_at": twitter_date(when + timedelta(minutes=7)),
         "text": "@999001 Sorry to hear that <b>&</b> we'd like to help. DM us?",
         "response_tweet_id": "", "in_response_to_tweet_id": str(tid)},
    ]


def sample_with_xss(dest: Path) -> Path:
    """The embedded sample plus :func:`xss_thread`, as a twcs.csv at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_CSV, dest)
    with dest.open("a", encoding="utf-8", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(EXPECTED_COLUMNS)).writerows(xss_thread())
    return dest


def git_commit_all(root: Path, message: str) -> str:
    """Commit everything git does not ignore in ``root``; return the new HEAD."""
    import subprocess

    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a finished project run (git, DVC cache, outputs, MLflow store) to change freely.
    Its MLflow experiments keep their artifact folder in the original (new runs add files there
    and change none), so the original's outputs, lock and store stay as they were."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def shared_run(root: Path) -> str:
    """Build the shared sample run in ``root``: a copy of the project on the sample plus
    :func:`xss_thread` (``fetch.source: file``) with :data:`RUN_PARAMS`, committed first (so runs
    carry a clean commit), then `dvc repro`; what it printed."""
    root.mkdir(parents=True, exist_ok=True)
    copy_project(root)
    src = sample_with_xss(root / "data" / "input" / "twcs_sample_xss.csv")
    set_params(root, {("fetch", "source"): "file", ("fetch", "path"): str(src.relative_to(root)),
                      **RUN_PARAMS})
    git_commit_all(root, "the shared sample run's settings")
    return dvc(root, "repro").stdout


@pytest.fixture(scope="session")
def pipeline_root(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """The shared sample run (:func:`shared_run`), once per session. Read-only: a test that changes
    it works on :func:`copy_run` of it. Under xdist the workers share one run: the first to need it
    builds it under a file lock in the session's common temp folder, the others wait for it."""
    import os

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent  # the folder every worker's temp folder is in
    root, console = base / "shared-pipeline", base / "shared-pipeline.console"
    failed = base / "shared-pipeline.failed"
    with FileLock(str(base / "shared-pipeline.lock")):
        if failed.exists():  # another worker's build failed: the same error, not a second attempt
            pytest.fail(failed.read_text(encoding="utf-8"), pytrace=False)
        if not console.exists():
            try:
                text = shared_run(root)
            except BaseException as exc:
                failed.write_text(f"the shared sample run failed: {exc}", encoding="utf-8")
                raise
            console.write_text(text, encoding="utf-8")
    PIPELINE_CONSOLE["repro"] = console.read_text(encoding="utf-8")
    return Paths(root)


PIPELINE_CONSOLE: dict[str, str] = {}  # what the shared `dvc repro` printed (the stages' summaries)


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
    bm.run(paths, settings.benchmark.replace(workers=1), models=["logreg"],
           protocols=["weak_to_gold"], log_models="best")
    detect.run(paths, settings.detect)
    return paths
