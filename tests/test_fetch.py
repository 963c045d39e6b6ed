"""fetch: the shipped sample, the Kaggle path against a local stand-in, user files, atomicity."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, dvc, fetch_settings, make_root
from scrm import secrets
from scrm.config import SAMPLE_CSV, load_settings
from scrm.data import fetch
from scrm.errors import FetchError
from scrm.io import sha256_file

FAKE_KEY = "f4k3k3y0123456789abcdef0123456789"


class FakeKaggle:
    """Local stand-in for kaggle's KaggleApi: 'downloads' by copying a prepared zip."""

    def __init__(self, archive: Path | None = None, fail: Exception | None = None,
                 fail_on_auth: Exception | None = None):
        self.archive, self.fail, self.fail_on_auth = archive, fail, fail_on_auth
        self.calls: list[tuple] = []

    def authenticate(self) -> None:
        self.calls.append(("authenticate",))
        if self.fail_on_auth:
            raise self.fail_on_auth

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        self.calls.append(("download", dataset, unzip))
        if self.fail:
            raise self.fail
        shutil.copy(self.archive, Path(path) / "customer-support-on-twitter.zip")


@pytest.fixture
def creds(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "nokaggle"))


@pytest.fixture
def kaggle_zip(tmp_path) -> Path:
    """An archive laid out like Kaggle's (twcs/twcs.csv + sample.csv) holding the real sample."""
    z = tmp_path / "dl.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(SAMPLE_CSV, "twcs/twcs.csv")
        zf.writestr("sample.csv", "x")
    return z


def test_sample_fetch_is_byte_identical(tmp_path):
    paths = make_root(tmp_path)
    info = fetch.run(paths, load_settings(paths.root).fetch)
    assert paths.raw_csv.read_bytes() == SAMPLE_CSV.read_bytes()
    assert info["rows"] == 5000 and info["source"] == "sample"
    assert info["sha256"] == sha256_file(SAMPLE_CSV)
    assert json.loads((paths.metrics / "fetch.json").read_text())["rows"] == 5000
    assert not list(paths.raw.glob(".tmp-*"))


def test_shipped_sample_is_unchanged():
    sums = (SAMPLE_CSV.parent / "SHA256SUMS").read_text().split()
    assert sums[0] == sha256_file(SAMPLE_CSV) and sums[1] == SAMPLE_CSV.name


def test_kaggle_success_with_stand_in(tmp_path, creds, kaggle_zip):
    target = tmp_path / "raw" / "twcs.csv"
    target.parent.mkdir()
    client = FakeKaggle(kaggle_zip)
    info = fetch.fetch(target, fetch_settings(source="kaggle"), client_factory=lambda: client)
    assert target.read_bytes() == SAMPLE_CSV.read_bytes()
    assert client.calls[0] == ("authenticate",)
    assert client.calls[1] == ("download", "thoughtvector/customer-support-on-twitter", False)
    assert info["rows"] == 5000 and info["bytes"] == SAMPLE_CSV.stat().st_size
    assert info["size_matches_published"] is False and info["expected_full_bytes"] == 516_508_641
    assert sorted(p.name for p in target.parent.iterdir()) == ["twcs.csv"]  # no leftovers


def test_kaggle_without_credentials_says_what_to_do(tmp_path, monkeypatch):
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    target = tmp_path / "twcs.csv"
    with pytest.raises(FetchError) as e:
        fetch.fetch(target, fetch_settings(source="kaggle"),
                    client_factory=lambda: pytest.fail("not called"))
    msg = str(e.value)
    assert "kaggle.json" in msg and "KAGGLE_USERNAME" in msg and "--source sample" in msg
    assert not target.exists()


def test_kaggle_json_credentials_are_found(tmp_path, monkeypatch):
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(k, raising=False)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "kaggle.json").write_text(json.dumps({"username": "u", "key": FAKE_KEY}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    assert secrets.kaggle_credentials_present()


@pytest.mark.parametrize("failure, words", [
    (RuntimeError(f"401 Unauthorized for key {FAKE_KEY}"), ["refused", "kaggle.json"]),
    (ConnectionError("Name or service not known"), ["network", "--source file"]),
    (SystemExit(1), ["Could not download"]),
])
def test_kaggle_failures_are_clear_and_secret_free(tmp_path, creds, failure, words):
    target = tmp_path / "twcs.csv"
    with pytest.raises(FetchError) as e:
        fetch.fetch(target, fetch_settings(source="kaggle"),
                    client_factory=lambda: FakeKaggle(fail=failure))
    msg = str(e.value)
    for w in words:
        assert w in msg
    assert "--source sample" in msg and FAKE_KEY not in msg
    assert not target.exists() and not list(tmp_path.glob(".tmp-kaggle-*"))


def _not_a_zip(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 this is not really a zip")


def _zip_with(member: str, text: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(member, text)
    return build


@pytest.mark.parametrize("build_archive, message", [
    (_not_a_zip, "not a valid zip"),
    (_zip_with("readme.txt", "nothing here"), "no twcs.csv"),
    (_zip_with("twcs/twcs.csv", "a,b,c\n1,2,3\n"), "header lacks"),
], ids=["bad_archive", "archive_without_twcs", "archive_with_wrong_header"])
def test_kaggle_unusable_archive_leaves_nothing(tmp_path, creds, build_archive, message):
    archive = tmp_path / "download.zip"
    build_archive(archive)
    target = tmp_path / "out" / "twcs.csv"
    target.parent.mkdir()
    with pytest.raises(FetchError, match=message):
        fetch.fetch(target, fetch_settings(source="kaggle"), client_factory=lambda: FakeKaggle(archive))
    assert list(target.parent.iterdir()) == []


def test_user_file_source_and_missing_file(tmp_path, kaggle_sample_csv):
    target = tmp_path / "raw" / "twcs.csv"
    target.parent.mkdir()
    info = fetch.fetch(target, fetch_settings(source="file", path=str(kaggle_sample_csv)))
    assert info["rows"] == 93 and target.read_bytes() == kaggle_sample_csv.read_bytes()
    with pytest.raises(FetchError, match="not found"):
        fetch.fetch(target, fetch_settings(source="file", path=str(tmp_path / "nope.csv")))
    with pytest.raises(FetchError, match="unknown source"):
        fetch.fetch(target, fetch_settings(source="ftp"))


def test_relative_fetch_path_is_taken_from_the_run_root(tmp_path, monkeypatch, kaggle_sample_csv):
    """fetch.path relative: from the run root (where dvc.yaml resolves it too), not the current
    folder."""
    (tmp_path / "root").mkdir()
    paths = make_root(tmp_path / "root")
    shutil.copy(kaggle_sample_csv, paths.root / "mine.csv")
    monkeypatch.chdir(tmp_path)
    info = fetch.run(paths, fetch_settings(source="file", path="mine.csv"))
    assert info["rows"] == 93 and paths.raw_csv.read_bytes() == kaggle_sample_csv.read_bytes()


def test_crash_mid_copy_leaves_no_file(tmp_path):
    """A copy that dies half-way (simulated) leaves nothing in data/raw/ for prepare to trust."""
    target = tmp_path / "raw" / "twcs.csv"
    target.parent.mkdir()

    def dying_copy(src: Path, dst: Path) -> None:
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        fetch.install(SAMPLE_CSV, target, copy=dying_copy)
    assert list(target.parent.iterdir()) == []


def test_crash_keeps_previous_complete_file(tmp_path):
    target = tmp_path / "twcs.csv"
    fetch.install(SAMPLE_CSV, target)
    before = target.read_bytes()

    def dying_copy(src: Path, dst: Path) -> None:
        dst.write_bytes(b"tweet_id,author_id")
        raise OSError("disk full")

    with pytest.raises(OSError):
        fetch.install(SAMPLE_CSV, target, copy=dying_copy)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["twcs.csv"]


def test_cli_kaggle_without_credentials(tmp_path):
    """The user sees one clear paragraph, exit code 3, no traceback, no kaggle banner."""
    make_root(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "none"))
    r = subprocess.run([sys.executable, "-m", "scrm", "fetch", "--source", "kaggle", "--root",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3
    assert "Kaggle credentials not found" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "data" / "raw" / "twcs.csv").exists()


def test_cli_help_explains_sources():
    r = subprocess.run([sys.executable, "-m", "scrm", "fetch", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for word in ("sample", "kaggle", "file", "synthetic", "--path", "--rows", "--seed"):
        assert word in r.stdout


def test_cli_real_kaggle_client_offline_fails_cleanly(tmp_path):
    """The real kaggle package (imported lazily) with a fake key: no Kaggle here, so it must fail
    with our message, exit 3, and print neither the key nor kaggle's banner."""
    make_root(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(HOME=str(tmp_path), KAGGLE_USERNAME="someone", KAGGLE_KEY=FAKE_KEY,
               KAGGLE_CONFIG_DIR=str(tmp_path / "none"))
    r = subprocess.run([sys.executable, "-m", "scrm", "fetch", "--source", "kaggle", "--root",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 3, r.stderr
    assert "Kaggle" in r.stderr and "--source sample" in r.stderr
    assert FAKE_KEY not in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "data" / "raw" / "twcs.csv").exists()


# --------------------------------------------------------------------------------------------------
# DVC notices a changed input file (dvc.yaml lists ${fetch.path} as a dependency of fetch)
# --------------------------------------------------------------------------------------------------
def _prepare_rows(root: Path) -> int:
    return json.loads((root / "reports" / "metrics" / "prepare.json").read_text())["rows_in"]


def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


@pytest.mark.slow
def test_dvc_reruns_when_the_user_file_is_replaced(tmp_path):
    """source=file with a file outside the project: `dvc repro prepare` fetches it; replacing its
    content at the same path makes the next repro refetch and rerun prepare; with nothing changed, a
    further repro reruns nothing. A changed generator parameter file marks fetch as changed too."""
    (tmp_path / "project").mkdir()
    root = copy_project(tmp_path / "project")
    user = tmp_path / "elsewhere" / "twcs.csv"
    user.parent.mkdir()
    shutil.copy(SAMPLE_CSV, user)
    # only the two stages under test: later stages are test_pipeline's, and need not even parse here
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    spec["stages"] = {k: spec["stages"][k] for k in ("fetch", "prepare")}
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    params = root / "params.yaml"
    text = params.read_text()
    for key, old, new in [("source", "sample", "file"),
                          ("path", "data/sample/twcs_head5000.csv", str(user))]:
        text, n = re.subn(rf"(?m)^(  {key}: ){re.escape(old)}(\s)", rf"\g<1>{new}\g<2>", text)
        assert n == 1, key
    params.write_text(text)

    assert _ran(dvc(root, "repro", "prepare").stdout) == {"fetch", "prepare"}
    assert _prepare_rows(root) == 5000

    with SAMPLE_CSV.open(encoding="utf-8", newline="") as fh:
        records = list(csv.reader(fh))
    with user.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(records[:-100])   # header + 4,900 rows
    assert _ran(dvc(root, "repro", "prepare").stdout) == {"fetch", "prepare"}
    assert _prepare_rows(root) == 4900

    assert _ran(dvc(root, "repro", "prepare").stdout) == set()

    synthetic_params = root / "src" / "scrm" / "resources" / "synthetic_params.yaml"
    synthetic_params.write_text(synthetic_params.read_text() + "\n# changed\n")
    status = dvc(root, "status", "fetch").stdout
    assert "synthetic_params.yaml" in status, status
