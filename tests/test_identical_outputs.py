"""Same params, same numbers, in every session: the session's shared sample run (conftest
``pipeline_root``: `dvc repro` of the project on the sample with the test-time ``RUN_PARAMS``, in a
fresh copy) writes exactly what is recorded in tests/data/shared_run/:

* every metrics JSON byte for byte (``metrics/``);
* every data output (parquet by content, csv/npz) with its recorded digest (``digests.json``);
* every MLflow run's metric values, timings aside (``mlflow_metrics.json``).

So two runs, on two machines and in two sessions, give identical outputs, and a change made for speed
changes none. (The full settings' run, `make run`, is pinned differently: its committed outputs are
those dvc.lock records for the current code and params, tests/test_daily_loop.py.)

Re-record only when an output is *meant* to change, and say why in the commit:
`python tests/test_identical_outputs.py` (builds the shared run in a temp folder) or
`python tests/test_identical_outputs.py ROOT` (ROOT: a finished shared run).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from scrm.config import Paths
from scrm.digests import digests

pytestmark = pytest.mark.slow

RECORD = Path(__file__).parent / "data" / "shared_run"
# every experiment the pipeline logs to; a timing is a measurement of the machine, not a result
EXPERIMENTS = ("complaints", "response_time", "outcome", "topics", "benchmark", "detect")
TIMING = re.compile(r"(time|seconds|_s$|duration)")


def mlflow_metrics(root: Path) -> dict[str, list[list[Any]]]:
    """Per experiment, each run's name and its metric values (timings left out), sorted: what two
    runs with the same params must share."""
    from scrm import tracking

    out: dict[str, list[list[Any]]] = {}
    for exp in EXPERIMENTS:
        runs = tracking.list_runs(exp, root)
        cols = sorted(c for c in runs.columns if c.startswith("metrics.")
                      and not TIMING.search(c))
        rows = []
        for _, r in runs.iterrows():
            values = {c.removeprefix("metrics."): float(r[c]) for c in cols if r[c] == r[c]}
            rows.append([r["tags.mlflow.runName"], values])
        out[exp] = sorted(rows, key=lambda x: (x[0], json.dumps(x[1], sort_keys=True)))
    return out


def test_metrics_json_equal_the_recorded_ones(pipeline_root: Paths) -> None:
    recorded = sorted((RECORD / "metrics").glob("*.json"))
    written = sorted(pipeline_root.metrics.glob("*.json"))
    assert [p.name for p in written] == [p.name for p in recorded], "a metrics file came or went"
    assert len(recorded) >= 10
    for path in recorded:
        got = pipeline_root.metrics / path.name
        assert got.read_bytes() == path.read_bytes(), f"{path.name} differs from the recorded one"


def test_data_outputs_equal_the_recorded_digests(pipeline_root: Paths) -> None:
    expected = json.loads((RECORD / "digests.json").read_text(encoding="utf-8"))
    got = digests(pipeline_root.root)
    assert sorted(got) == sorted(expected), "an output came or went"
    differ = sorted(k for k in expected if got[k] != expected[k])
    assert not differ, f"outputs differ from the recorded digests: {differ}"


def test_mlflow_metric_values_equal_the_recorded_ones(pipeline_root: Paths) -> None:
    expected = json.loads((RECORD / "mlflow_metrics.json").read_text(encoding="utf-8"))
    got = mlflow_metrics(pipeline_root.root)
    assert all(expected[exp] for exp in EXPERIMENTS), "the record has an experiment with no run"
    for exp in EXPERIMENTS:
        assert [name for name, _ in got[exp]] == [name for name, _ in expected[exp]], exp
        for (name, values), (_, want) in zip(got[exp], expected[exp]):
            assert values == want, f"{exp}/{name}: MLflow metrics differ from the recorded ones"


def record(root: Path) -> None:
    """Write the record of the finished shared run at ``root``."""
    paths = Paths(root)
    if (RECORD / "metrics").exists():
        shutil.rmtree(RECORD / "metrics")
    (RECORD / "metrics").mkdir(parents=True)
    for f in sorted(paths.metrics.glob("*.json")):
        shutil.copy(f, RECORD / "metrics" / f.name)
    (RECORD / "digests.json").write_text(json.dumps(digests(root), indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")
    (RECORD / "mlflow_metrics.json").write_text(
        json.dumps(mlflow_metrics(root), indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if len(sys.argv) > 1:
        record(Path(sys.argv[1]))
    else:
        from conftest import shared_run

        with tempfile.TemporaryDirectory() as tmp:
            shared_run(Path(tmp) / "project")
            record(Path(tmp) / "project")
    print(RECORD)
