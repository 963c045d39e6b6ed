"""Speed changes change no output: the sample pipeline (`dvc repro` in a fresh copy of the project)
writes every metrics JSON byte for byte as committed in reports/metrics/, and every data output
(parquet by content, csv/npz) with the digest recorded in tests/data/sample_output_digests.json
before the pipeline was made faster (regenerate with
`python bench/outputs.py digest ROOT --out tests/data/sample_output_digests.json` only when an output
is *meant* to change, and say why in the commit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_project, dvc
from scrm.config import PROJECT_ROOT, Paths
from scrm.digests import digests

pytestmark = pytest.mark.slow

EXPECTED = Path(__file__).parent / "data" / "sample_output_digests.json"


@pytest.fixture(scope="module")
def committed_run(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """`dvc repro` of the project as committed (its own params, the shipped sample) in a fresh
    copy: not the session's shared run, whose test-time params and extra thread change outputs."""
    root = copy_project(tmp_path_factory.mktemp("committed_run"))
    dvc(root, "repro")
    return Paths(root)


def test_metrics_json_equal_the_committed_ones(committed_run: Paths) -> None:
    committed = sorted((PROJECT_ROOT / "reports" / "metrics").glob("*.json"))
    assert len(committed) >= 10
    for path in committed:
        got = committed_run.root / "reports" / "metrics" / path.name
        assert got.exists(), path.name
        assert got.read_bytes() == path.read_bytes(), f"{path.name} differs from the committed one"


def test_data_outputs_equal_the_recorded_digests(committed_run: Paths) -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    got = {k: v for k, v in digests(committed_run.root).items() if k in expected}
    assert sorted(got) == sorted(expected), "an output went missing"
    differ = sorted(k for k in expected if got[k] != expected[k])
    assert not differ, f"outputs differ from the recorded digests: {differ}"
