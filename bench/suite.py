"""How long the test suite takes, and where the time goes: wall time and CPU time, whole and per test.

    python bench/suite.py                         # `make test` (= python -m pytest): the whole suite
    python bench/suite.py -m "not slow"           # `make test-fast`
    python bench/suite.py tests/test_pipeline.py  # any pytest arguments

Runs pytest in a child process with this file loaded as a plugin (``-p suite``), which records, per
test, the wall time and the CPU time (user + system, of pytest itself and of the processes it waited
for: `dvc`, `scrm`, notebook kernels) from setup to teardown, so a fixture's cost lands on the first
test that needs it. The child's own CPU total comes from ``os.wait4``. CPU time is the number to
compare on a shared machine: wall time grows with everyone else's load, CPU time much less.
Prints the totals, the slowest tests and the per-file sums; writes them to
``bench/results/suite.md`` (``--out``). Nothing here is a test, and no test reads these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECORDS_ENV = "SCRM_SUITE_RECORDS"


# ---- the plugin (runs inside pytest, and inside each xdist worker) ---------------------------------
def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ARG001
    folder = os.environ.get(RECORDS_ENV)
    t0, c0 = time.perf_counter(), _cpu()
    yield
    if folder:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        rec = {"test": item.nodeid, "wall": time.perf_counter() - t0, "cpu": _cpu() - c0,
               "worker": worker, "start": time.time() - (time.perf_counter() - t0)}
        with open(Path(folder) / f"{worker}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")


# ---- the runner -----------------------------------------------------------------------------------
def _table(rows: list[tuple[str, float, float]], head: str) -> list[str]:
    out = [f"| {head} | wall s | CPU s |", "|---|---:|---:|"]
    out += [f"| `{name}` | {wall:.1f} | {cpu:.1f} |" for name, wall, cpu in rows]
    return out


def _machine_cpu() -> float | None:
    """CPU seconds the whole machine has spent busy (Linux /proc/stat), or None elsewhere. It counts
    what wait4 cannot: daemons a test starts and does not wait for (a local Ray's raylet, GCS and
    workers), and anything else running on the machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "results" / "suite.md"))
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--records", help="also write every test's record (JSON lines) to this file")
    args, pytest_args = ap.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="scrm-suite-") as tmp:
        env = {**os.environ, RECORDS_ENV: tmp,
               "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH"))
                                             if p)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "suite",
               *pytest_args]
        load0 = os.getloadavg()
        t0, m0 = time.perf_counter(), _machine_cpu()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, m1 = time.perf_counter() - t0, _machine_cpu()
        load1 = os.getloadavg()
        cpu = usage.ru_utime + usage.ru_stime
        records = [json.loads(line) for f in sorted(Path(tmp).glob("*.jsonl"))
                   for line in f.read_text(encoding="utf-8").splitlines()]
    rc = os.waitstatus_to_exitcode(status)
    if args.records:
        Path(args.records).write_text("".join(json.dumps(r) + "\n" for r in records),
                                      encoding="utf-8")
    per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in records:
        acc = per_file[r["test"].split("::")[0]]
        acc[0] += r["wall"]
        acc[1] += r["cpu"]
    slow = sorted(records, key=lambda r: -r["wall"])[: args.top]
    files = sorted(per_file.items(), key=lambda kv: -kv[1][0])
    lines = [
        f"# Test suite: `python -m pytest {' '.join(pytest_args)}`".rstrip(),
        "",
        f"Written by `python bench/suite.py {' '.join(pytest_args)}`".rstrip() + ".",
        f"Machine: {os.cpu_count()} CPU cores, {platform.platform()}, Python "
        f"{platform.python_version()}; load average {load0[0]:.1f} at the start, "
        f"{load1[0]:.1f} at the end (other work on the machine inflates wall time, far less CPU "
        "time).",
        "",
        f"**pytest exit {rc}; {len(records)} tests; wall {wall / 60:.1f} min; CPU {cpu / 60:.1f} min "
        f"(user + system of pytest and everything it waited for; CPU/wall {cpu / wall:.2f}).**",
        *([] if m0 is None or m1 is None else [
            "",
            f"The whole machine was busy {(m1 - m0) / 60:.1f} CPU-min meanwhile: the above plus what "
            "pytest started and never waited for (a local Ray's daemons and workers) and anything "
            "else that ran."]),
        "",
        *_table([(r["test"], r["wall"], r["cpu"]) for r in slow],
                f"slowest {len(slow)} tests (setup to teardown)"),
        "",
        *_table([(name, w, c) for name, (w, c) in files], "per file"),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    return rc


if __name__ == "__main__":
    sys.exit(main())
