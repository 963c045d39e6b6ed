"""The pinned install pulls the CPU-only PyTorch build, never the CUDA build and its nvidia packages.

requirements.lock.txt pins ``torch==2.13.0``; on an ordinary Linux machine PyPI serves that version as
the CUDA build (several GB of nvidia-* wheels). constraints-cpu.txt narrows it to ``+cpu``, served by
the PyTorch CPU index (README "Two commands"); `make venv` installs with both.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from conftest import skip_unless_ci
from scrm.config import PROJECT_ROOT

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NVIDIA = re.compile(r"^(nvidia-|triton$|cuda-)", re.I)


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_constraints_pin_the_cpu_build_of_the_locked_torch():
    lock = _pins(PROJECT_ROOT / "requirements.lock.txt")
    cpu = _pins(PROJECT_ROOT / "constraints-cpu.txt")
    assert cpu == {"torch": f"{lock['torch']}+cpu"}
    assert not [p for p in lock if NVIDIA.match(p)], "the lock itself names no CUDA package"
    env = (PROJECT_ROOT / "environment.yml").read_text(encoding="utf-8")
    assert "-c constraints-cpu.txt" in env and TORCH_CPU_INDEX in env  # conda installs the same
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert (f"pip install -r requirements.lock.txt -c constraints-cpu.txt --extra-index-url "
            f"{TORCH_CPU_INDEX}") in " ".join(readme.split())


def _resolves(url: str) -> bool:
    try:
        socket.getaddrinfo(urllib.parse.urlsplit(url).hostname, 443)
        return True
    except OSError:
        return False


def _any_index_reachable() -> bool:
    """Can pip fetch anything at all here (PyPI, a mirror from pip.conf, local find-links)?"""
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                        "-q", "-d", str(Path("/tmp") / "scrm-pip-probe"), "six==1.17.0"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


@pytest.mark.slow
def test_pip_dry_run_of_the_lock_pulls_no_nvidia_package(tmp_path):
    """`pip install --dry-run` of the lock with the documented CPU constraints (and the PyTorch CPU
    index where this machine resolves it; elsewhere a local copy of the +cpu wheel must serve)."""
    if not _any_index_reachable():
        skip_unless_ci("no package index is reachable from this machine: pip cannot resolve "
                       "anything")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
           "-r", str(PROJECT_ROOT / "requirements.lock.txt"),
           "-c", str(PROJECT_ROOT / "constraints-cpu.txt"), "--report", str(report)]
    if _resolves(TORCH_CPU_INDEX):
        cmd += ["--extra-index-url", TORCH_CPU_INDEX]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    installs = {i["metadata"]["name"].lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    assert installs["torch"].endswith("+cpu"), installs["torch"]
    assert not [n for n in installs if NVIDIA.match(n)]
    norm = lambda name: re.sub(r"[-_.]+", "-", name.lower())  # noqa: E731
    extra = {norm(n) for n in installs} - {norm(n) for n in _pins(PROJECT_ROOT /
                                                                 "requirements.lock.txt")}
    assert extra <= {"setuptools"}, f"the lock is the whole transitive set (pip freeze leaves out " \
                                    f"setuptools only): {sorted(extra)}"
