"""Security: Kaggle credentials never leak (output, logs, files, MLflow), the MLflow UI binds to the
loopback interface by default, and report text from tweets is escaped.

The Kaggle path runs against local stand-ins: a fake client object injected with ``client_factory``
(in-process) and a fake ``kaggle`` package put first on PYTHONPATH (for the real `scrm fetch`
command). Both are deliberately careless: they print the key, log it and put it in exception
messages, the way a real client's debug output or an HTTP error could.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import fetch_settings, make_root
from scrm import secrets
from scrm.config import PROJECT_ROOT, SAMPLE_CSV
from scrm.data import fetch
from scrm.errors import FetchError

KEY = "kk-3nv-7f1c9a0e5b2d48d6a1c3e9f0b7a4d2c8"  # fake, in KAGGLE_KEY
FILE_KEY = "kk-f1le-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"  # fake, in kaggle.json
TOKEN = "KGAT_f4k3t0k3n0123456789abcdef"  # fake, in KAGGLE_API_TOKEN
USER = "someone"


def secret_forms() -> list[str]:
    """The credentials as they could appear: plain, and inside an HTTP basic-auth header."""
    forms = [KEY, FILE_KEY, TOKEN]
    forms += [base64.b64encode(f"{USER}:{k}".encode()).decode() for k in (KEY, FILE_KEY)]
    return forms


def assert_no_secret(where: str, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for s in secret_forms():
        assert s.encode() not in raw, f"credential leaked into {where}"


def assert_tree_clean(root: Path) -> int:
    """Search every file under ``root`` (outputs, metrics, logs, MLflow db, artifacts)."""
    n = 0
    for p in root.rglob("*"):
        if p.is_file() and ".kaggle" not in p.parts and "fakepkg" not in p.parts:
            assert_no_secret(str(p), p.read_bytes())
            n += 1
    return n


@pytest.fixture
def secrets_env(monkeypatch, tmp_path) -> Path:
    """Fake credentials in every place kaggle looks: env vars, $KAGGLE_CONFIG_DIR, ~/.kaggle."""
    home = tmp_path / "home"
    cfg = home / ".kaggle"
    cfg.mkdir(parents=True)
    (cfg / "kaggle.json").write_text(json.dumps({"username": USER, "key": FILE_KEY}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    return home


@pytest.fixture(scope="module")
def kaggle_zip(tmp_path_factory) -> Path:
    z = tmp_path_factory.mktemp("zip") / "customer-support-on-twitter.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(SAMPLE_CSV, "twcs/twcs.csv")
    return z


# --------------------------------------------------------------------------------------------------
# in-process: a careless fake client injected with client_factory
# --------------------------------------------------------------------------------------------------
def leaky(key_text: str) -> str:
    b64 = base64.b64encode(f"{USER}:{KEY}".encode()).decode()
    return f"{key_text} key={KEY} file_key={FILE_KEY} token={TOKEN} Authorization: Basic {b64}"


class CarelessKaggle:
    """Prints and logs the credentials, then fails in the chosen way (or succeeds)."""

    def __init__(self, mode: str, archive: Path):
        self.mode, self.archive = mode, archive

    def authenticate(self) -> None:
        print(leaky("debug: auth with"))
        print(leaky("debug: auth with"), file=sys.stderr)
        logging.getLogger("kaggle").warning(leaky("auth with"))
        if self.mode == "auth":
            raise RuntimeError(leaky("401 Unauthorized for"))
        if self.mode == "exit":
            raise SystemExit(leaky("invalid credentials"))

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        if self.mode == "network":
            raise ConnectionError(leaky("HTTPSConnectionPool(host='www.kaggle.com') Max retries "
                                        "exceeded with url: /api/v1/datasets/download?"))
        if self.mode == "badzip":
            (Path(path) / "dl.zip").write_bytes(b"PK\x03\x04" + leaky("garbage").encode())
            return
        shutil.copy(self.archive, Path(path) / "dl.zip")


@pytest.mark.parametrize("mode, words", [
    ("auth", "refused the credentials"),
    ("network", "Check the network"),
    ("badzip", "not a valid zip"),
    ("exit", "refused the credentials"),  # kaggle exits when it cannot authenticate
])
def test_kaggle_failures_never_show_credentials(tmp_path, secrets_env, kaggle_zip, capfd, caplog,
                                                mode, words):
    (tmp_path / "root").mkdir()
    paths = make_root(tmp_path / "root")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError) as e:
        fetch.fetch(paths.raw_csv, fetch_settings(source="kaggle"),
                    client_factory=lambda: CarelessKaggle(mode, kaggle_zip))
    msg = str(e.value)
    assert words in msg and "--source sample" in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained original
    assert_no_secret("the error message", msg)
    out, err = capfd.readouterr()
    assert_no_secret("stdout", out)
    assert_no_secret("stderr", err)
    assert_no_secret("the log", caplog.text)
    assert not paths.raw_csv.exists()
    assert [p.name for p in paths.raw.iterdir()] == []  # no temp folder left either
    assert_tree_clean(paths.root)


def test_kaggle_success_writes_no_credential_anywhere(tmp_path, secrets_env, kaggle_zip, capfd,
                                                      caplog):
    (tmp_path / "root").mkdir()
    paths = make_root(tmp_path / "root")
    caplog.set_level(logging.DEBUG)
    info = fetch.fetch(paths.raw_csv, fetch_settings(source="kaggle"),
                       client_factory=lambda: CarelessKaggle("ok", kaggle_zip))
    assert paths.raw_csv.read_bytes() == SAMPLE_CSV.read_bytes()
    assert_no_secret("the fetch info", json.dumps(info))
    out, err = capfd.readouterr()
    assert_no_secret("stdout", out + err)
    assert_no_secret("the log", caplog.text)
    assert assert_tree_clean(paths.root) >= 2


def test_redact_covers_every_credential_source(secrets_env):
    text = leaky("x") + " " + base64.b64encode(f"{USER}:{FILE_KEY}".encode()).decode()
    red = secrets.redact(text)
    assert_no_secret("redacted text", red)
    assert red.count("***") >= 5
    assert secrets.kaggle_credentials_present()


def test_new_style_api_token_alone_counts_as_credentials(tmp_path, monkeypatch):
    """kaggle >= 1.8 tokens (KAGGLE_API_TOKEN or ~/.kaggle/access_token) are credentials too,
    and are redacted like the legacy key."""
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "nothing"))
    assert not secrets.kaggle_credentials_present()
    (home / ".kaggle" / "access_token").write_text(TOKEN + "\n")
    assert secrets.kaggle_credentials_present()
    assert secrets.redact(f"Bearer {TOKEN}") == "Bearer ***"
    (home / ".kaggle" / "access_token").unlink()
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    assert secrets.kaggle_credentials_present() and TOKEN not in secrets.redact(f"t={TOKEN}")


# --------------------------------------------------------------------------------------------------
# the real command, with a fake kaggle package first on PYTHONPATH
# --------------------------------------------------------------------------------------------------
FAKE_KAGGLE = textwrap.dedent('''
    """Stand-in for the kaggle package: chatty, careless with the key, behaviour from an env var."""
    import base64, json, logging, os, shutil, sys
    from pathlib import Path

    class KaggleApi:
        def _leak(self, what):
            key = os.environ.get("KAGGLE_KEY", "")
            cfg = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
            fkey = json.loads(cfg.read_text())["key"]
            b64 = base64.b64encode(f"{os.environ['KAGGLE_USERNAME']}:{key}".encode()).decode()
            return (f"{what} key={key} file_key={fkey} token={os.environ.get('KAGGLE_API_TOKEN')}"
                    f" Authorization: Basic {b64}")

        def authenticate(self):
            print(self._leak("debug: authenticating with"))
            print(self._leak("debug: authenticating with"), file=sys.stderr)
            logging.getLogger("kaggle").error(self._leak("auth"))
            if os.environ["FAKE_KAGGLE_MODE"] == "auth":
                raise RuntimeError(self._leak("401 Client Error: Unauthorized for"))

        def dataset_download_files(self, dataset, path=None, force=False, quiet=True,
                                   unzip=False):
            mode = os.environ["FAKE_KAGGLE_MODE"]
            if mode == "network":
                raise OSError(self._leak("[Errno -3] Temporary failure in name resolution"))
            if mode == "badzip":
                (Path(path) / "dl.zip").write_bytes(b"PK\\x03\\x04" + self._leak("x").encode())
                return
            shutil.copy(os.environ["FAKE_KAGGLE_ZIP"], Path(path) / "dl.zip")
''')


@pytest.fixture
def fake_kaggle_env(tmp_path, kaggle_zip) -> dict[str, str]:
    pkg = tmp_path / "fakepkg" / "kaggle"
    (pkg / "api").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "api" / "__init__.py").write_text("")
    (pkg / "api" / "kaggle_api_extended.py").write_text(FAKE_KAGGLE)
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": USER, "key": FILE_KEY}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAGGLE", "SCRM_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(pkg.parent), HOME=str(home), KAGGLE_CONFIG_DIR=str(home / ".kaggle"),
               KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY, KAGGLE_API_TOKEN=TOKEN,
               FAKE_KAGGLE_ZIP=str(kaggle_zip), COLUMNS="200")
    return env


def scrm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scrm", *args], capture_output=True, text=True,
                          env=env, timeout=180)


def test_cli_kaggle_failures_print_no_credentials(tmp_path, fake_kaggle_env):
    (tmp_path / "root").mkdir()
    paths = make_root(tmp_path / "root")
    for mode, words in [("auth", "refused the credentials"), ("network", "Could not download"),
                        ("badzip", "not a valid zip")]:
        r = scrm({**fake_kaggle_env, "FAKE_KAGGLE_MODE": mode}, "fetch", "--source", "kaggle",
                 "--root", str(paths.root))
        assert r.returncode == 3, (mode, r.stderr)
        assert words in " ".join(r.stderr.split()), mode
        assert "Traceback" not in r.stdout + r.stderr
        assert_no_secret(f"stdout/stderr ({mode})", r.stdout + r.stderr)
        assert not paths.raw_csv.exists()
    assert_tree_clean(paths.root)


def test_cli_kaggle_pipeline_and_mlflow_hold_no_credentials(tmp_path, fake_kaggle_env):
    """fetch (kaggle) + prepare through the CLI, then an MLflow run whose params carry
    credential-like entries: no credential in any output, file, the MLflow db or its artifacts."""
    (tmp_path / "root").mkdir()
    paths = make_root(tmp_path / "root")
    env = {**fake_kaggle_env, "FAKE_KAGGLE_MODE": "ok"}
    r = scrm(env, "fetch", "--source", "kaggle", "--root", str(paths.root))
    assert r.returncode == 0, r.stderr
    assert_no_secret("fetch output", r.stdout + r.stderr)
    assert paths.raw_csv.read_bytes() == SAMPLE_CSV.read_bytes()
    r = scrm(env, "prepare", "--root", str(paths.root))
    assert r.returncode == 0, r.stderr
    assert_no_secret("prepare output", r.stdout + r.stderr)

    code = textwrap.dedent(f"""
        import os, sys
        from scrm import tracking
        root = sys.argv[1]
        params = {{"fetch": {{"source": "kaggle", "kaggle_key": os.environ["KAGGLE_KEY"]}},
                   "kaggle": {{"username": "{USER}", "key": os.environ["KAGGLE_KEY"]}},
                   "KAGGLE_KEY": os.environ["KAGGLE_KEY"],
                   "api_token": os.environ["KAGGLE_API_TOKEN"],
                   "password": "{FILE_KEY}", "credentials": {{"key": "{FILE_KEY}"}},
                   "prepare": {{"require_text": True}}}}
        with tracking.start_run("security", "leak-check", params=params, seed=1, root=root,
                                inputs=[os.path.join(root, "data", "raw", "twcs.csv")]) as run:
            tracking.log_metrics({{"rows": 5000}})
            tracking.log_dict({{"note": "artifact"}}, "note.json")
        print(run.info.run_id)
    """)
    r = subprocess.run([sys.executable, "-c", code, str(paths.root)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_no_secret("tracking output", r.stdout + r.stderr)
    db = paths.root / "mlflow.db"
    assert db.exists()
    # the run really was recorded: its harmless params are in the db, so the search means something
    import sqlite3

    with sqlite3.connect(db) as con:
        logged = dict(con.execute("select key, value from params").fetchall())
        tags = dict(con.execute("select key, value from tags").fetchall())
    assert logged["fetch.source"] == "kaggle" and logged["prepare.require_text"] == "True"
    assert logged["seed"] == "1"
    assert not any(re.search("key|token|password|credential", k, re.I) for k in logged)
    assert_no_secret("MLflow params", json.dumps(logged))
    assert_no_secret("MLflow tags", json.dumps(tags))
    assert assert_tree_clean(paths.root) >= 6  # raw, interim, processed, metrics, db, artifact


# --------------------------------------------------------------------------------------------------
# the MLflow UI binds to loopback unless told otherwise
# --------------------------------------------------------------------------------------------------
def test_ui_help_shows_loopback_default():
    r = subprocess.run([sys.executable, "-m", "scrm", "ui", "--help"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert re.search(r"--host\s.*default: 127\.0\.0\.1", flat), flat
    assert "0.0.0.0" in flat  # the help says what exposing it means


def test_ui_command_binds_loopback_and_warns_when_exposed(monkeypatch, tmp_path):
    """`scrm ui` starts `mlflow ui --host 127.0.0.1` by default; another host is an explicit
    choice that prints a warning (the server itself is not started here)."""
    from typer.testing import CliRunner

    from scrm.cli import app

    from scrm import progress

    calls: list[list[str]] = []

    class FakeServer:  # records the command; never binds a port
        def __init__(self, cmd: list[str], *a: object, **k: object) -> None:
            calls.append(cmd)

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    monkeypatch.setattr(progress, "wait_for_url", lambda *a, **k: 0.0)
    runner = CliRunner()
    r = runner.invoke(app, ["ui", "--root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    cmd = calls[-1]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "warning" not in r.output
    r = runner.invoke(app, ["ui", "--host", "0.0.0.0", "--root", str(tmp_path)])
    assert calls[-1][calls[-1].index("--host") + 1] == "0.0.0.0"
    assert "exposes the MLflow UI" in " ".join(r.output.split())


def test_makefile_servers_bind_loopback():
    """`make ui` (and `make lab`) bind 127.0.0.1; nothing in the Makefile binds all interfaces."""
    text = (PROJECT_ROOT / "Makefile").read_text()
    recipes: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^([a-z][a-z-]*):", line)
        if m:
            current = m.group(1)
            recipes[current] = []
        elif line.startswith("\t") and current:
            recipes[current].append(line.strip())
    ui = " ".join(recipes["ui"])
    assert "mlflow ui" in ui or "scrm ui" in ui
    assert re.search(r"--host[ =]127\.0\.0\.1\b", ui) or "scrm ui" in ui and "--host" not in ui
    if "lab" in recipes:
        assert re.search(r"--ip[ =]127\.0\.0\.1\b", " ".join(recipes["lab"]))
    assert "0.0.0.0" not in "\n".join(" ".join(v) for v in recipes.values())


# --------------------------------------------------------------------------------------------------
# report text is escaped (unit level; the browser check lives with the report's own tests)
# --------------------------------------------------------------------------------------------------
PAYLOADS = ['<script>alert("xss-1")</script>', '<img src=x onerror=alert("xss-2")>',
            '</script><svg onload=alert("xss-3")>']


def test_report_tables_escape_tweet_text():
    from scrm.report import html as report  # a broken import fails, never skips
    import polars as pl

    df = pl.DataFrame({"text": PAYLOADS, "brand": ["<b>Brand</b>"] * 3})
    page = report.html_table(df, headers={"text": "Tweet <i>text</i>", "brand": "brand"})
    page += report.kpis([("<b>label</b>", PAYLOADS[0])])
    for p in [*PAYLOADS, "<b>Brand</b>", "<i>text</i>", "<b>label</b>"]:
        assert p not in page
    for p in PAYLOADS:
        assert html.escape(p, quote=True) in page  # shown as text, not dropped
    assert report.fmt(PAYLOADS[1]) == html.escape(PAYLOADS[1], quote=True)


def test_report_page_with_tweet_text_in_tables_and_figures_has_no_live_markup():
    from scrm.report import html as report  # a broken import fails, never skips
    import plotly.graph_objects as go
    import polars as pl

    sec = report.Section("overview", "Overview")
    sec.html(report.html_table(pl.DataFrame({"text": PAYLOADS})))
    fig = go.Figure(go.Bar(x=PAYLOADS, y=[1, 2, 3], hovertext=PAYLOADS))
    sec.figure("payload-fig", fig)
    page = report.render(report.Report("A report", [sec]))
    plotly_js = report.plotly_js()
    body = page.replace(plotly_js, "")
    for p in PAYLOADS:
        assert p not in body
    # inside the figure's JSON, "<" is written as \\u003c: no "</script>" can end the script early
    assert body.count("</script>") == body.count("<script")


# --------------------------------------------------------------------------------------------------
# safe loading: nothing in the package deserialises pickles from outside the project's own store
# --------------------------------------------------------------------------------------------------
UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
    ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("pd", "read_pickle"),
    ("pandas", "read_pickle"), ("marshal", "loads"), ("shelve", "open"),
}


def unsafe_loads(source: str) -> list[str]:
    """Calls in ``source`` that can run code from a file: pickle-family loads, ``yaml.load``
    without SafeLoader, ``np.load(allow_pickle=True)``, ``torch.load`` without
    ``weights_only=True``, MLflow ``load_model``, and ``eval``/``exec``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}
        const = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
        builtin_exec = isinstance(f, ast.Name) and name in ("eval", "exec")
        if (owner, name) in UNSAFE_CALLS or builtin_exec:
            found.append(f"{owner}.{name}" if owner else name)
        elif owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load"):
            loader = ast.unparse(kw["Loader"]) if "Loader" in kw else ""
            if "Safe" not in loader:
                found.append(f"yaml.{name}")
        elif owner in ("np", "numpy") and name == "load" and const.get("allow_pickle") is not False:
            found.append("np.load without allow_pickle=False")
        elif owner == "torch" and name == "load" and const.get("weights_only") is not True:
            found.append("torch.load without weights_only=True")
        elif name == "load_model" or (owner == "mlflow" and name.startswith("load")):
            found.append(f"{owner}.{name}")
    return found


def test_unsafe_load_detector_works():
    bad = ("import pickle, yaml, numpy as np, torch\n"
           "pickle.load(f); yaml.load(s); np.load(p); torch.load(p)\n"
           "mlflow.sklearn.load_model(u); eval('1')\n")
    assert len(unsafe_loads(bad)) == 6
    ok = ("yaml.safe_load(s); yaml.load(s, Loader=yaml.SafeLoader); np.load(p, allow_pickle=False)"
          "; torch.load(p, weights_only=True); df.list.eval(x)\n")
    assert unsafe_loads(ok) == []


def test_package_loads_nothing_that_can_run_code():
    """Pickled models run code when loaded: the package may only load models through
    scrm.tracking (this project's own MLflow store); no other module deserialises pickles."""
    offenders = {}
    for py in sorted((PROJECT_ROOT / "src" / "scrm").rglob("*.py")):
        if py.name == "tracking.py":
            continue
        hits = unsafe_loads(py.read_text(encoding="utf-8"))
        if hits:
            offenders[str(py.relative_to(PROJECT_ROOT))] = hits
    assert offenders == {}
