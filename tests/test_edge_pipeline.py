"""`dvc repro` on real files a little unlike the sample: brand tweets only, openings never answered,
one brand (tests/edge_inputs.py derives them from the sample). Each run completes, every stage's
metrics carry a status (and a reason unless ok), and the report renders with the reasons.

Slow (a whole `dvc repro` per file in a project copy, with the quick settings below; CPU time measured
with `python bench/suite.py`: brand tweets only 40 s, never answered 93 s, one brand 70 s).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import yaml

import edge_inputs
from conftest import copy_project, dvc, set_params

pytestmark = pytest.mark.slow

# the same code paths with less work: the fast embedding backend, an outcome measure of lexical cues
# only, three benchmark models and one repeat, no model logging, fewer bootstrap draws (what is
# checked here is each stage's status and reason, not its numbers; the shared sample run, conftest
# ``pipeline_root``, runs MiniLM in the outcome measure)
FAST = {("embed", "backend"): "tfidf_svd", ("embed", "progress"): False,
        ("response_time", "log_models"): False, ("response_time", "n_boot"): 50,
        ("outcome", "model", "n_boot"): 20, ("outcome", "model", "log_models"): False,
        ("outcome", "measure", "embedding"): "none", ("complaints", "n_boot"): 100,
        ("benchmark", "models"): ["dummy", "complement_nb", "logreg"],
        ("benchmark", "cv_repeats"): 1, ("benchmark", "n_boot"): 100,
        ("benchmark", "mlflow", "log_models"): "none", ("detect", "n_boot"): 100}
NO_OPENINGS = "the input has no customer openings: every tweet is from a brand"


def _project_on(case: str, dest: Path) -> Path:
    """A copy of the project whose fetch stage reads the derived file of ``case``."""
    root = copy_project(dest)
    src = edge_inputs.write(case, root / "data" / "edge" / f"{case}.csv")
    set_params(root, {("fetch", "source"): "file", ("fetch", "path"): str(src.relative_to(root)),
                      **FAST})
    return root


@pytest.mark.parametrize("case", sorted(edge_inputs.CASES))
def test_dvc_repro_completes_with_a_status_everywhere(case: str, tmp_path: Path) -> None:
    root = _project_on(case, tmp_path / "project")
    dvc(root, "repro", timeout=3600)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    statuses: dict[str, tuple[str, str | None]] = {}
    for name, stage in stages.items():
        for item in stage.get("outs", []):  # each stage's metrics file (headline.json: a copy)
            rel = item if isinstance(item, str) else next(iter(item))
            if not rel.startswith("reports/metrics/") or rel.endswith("headline.json"):
                continue
            m = json.loads((root / rel).read_text())
            assert m.get("status") in ("ok", "no_data", "skipped"), (name, m.get("status"))
            assert (m["reason"] is None) == (m["status"] == "ok"), (name, m)
            statuses[name] = (m["status"], m["reason"])
    assert set(statuses) == set(stages) - {"report"}, sorted(statuses)
    page = (root / "reports" / "index.html").read_text(encoding="utf-8")
    notes = [html.unescape(re.sub("<[^>]+>", "", n))
             for n in re.findall(r'<p class="missing">(.*?)</p>', page)]
    assert not any("has not run" in n or "failed" in n for n in notes), notes
    for name, (state, reason) in statuses.items():
        if state != "ok" and name in ("response_time", "outcome", "complaints", "topics",
                                       "benchmark", "detect"):
            word = "No data" if state == "no_data" else "Skipped"
            assert any(n.startswith(f"{word} because {reason}") for n in notes), (name, notes)
    if case == "brand_tweets_only":
        assert statuses["prepare"][0] == "no_data"
        assert statuses["prepare"][1].startswith(NO_OPENINGS)
    if case == "never_answered":
        rt = json.loads((root / "reports" / "metrics" / "response_time.json").read_text())
        assert rt["status"] == "ok" and rt["openings"]["answered"] == 0
    if case == "one_brand":
        assert statuses["response_time"][0] == "ok"
