"""The researcher's daily loop as DVC users expect it (README "Daily loop").

* the metrics design: dvc.lock, the stage metrics and the plot CSVs of the sample run are committed;
  the one declared DVC metric is the flat headline, a copy of the stage files' numbers;
* `dvc plots show` writes a page that renders offline (vega embedded, no CDN);
* `make lab` / `make ui` / `make venv` do what the README says;
* slow: `dvc exp run -S` on the sample run succeeds, and `dvc exp show --csv` has the headline values
  for main and the experiment (a key of every params section: tests/test_edge_pipeline.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, copy_run, dvc, skip_unless_ci
from scrm.config import PROJECT_ROOT
from scrm.configbase import read_yaml
from scrm.paths import Paths
from scrm.report import headline as H

STAGE_METRICS = ("fetch", "prepare", "sentiment", "response_time", "outcome", "complaints", "embed",
                 "topics",
                 "benchmark", "detect")


def _spec() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def _entries(stage: dict, kind: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in stage.get(kind, []) or []:
        if isinstance(item, str):
            out[item] = {}
        else:
            out.update({k: v or {} for k, v in item.items()})
    return out


def _tracked(*paths: str) -> set[str]:
    r = subprocess.run(["git", "ls-files", "--", *paths], cwd=PROJECT_ROOT, capture_output=True,
                       text=True, check=True)
    return set(r.stdout.split())


# --------------------------------------------------------------------------------------------------
# metrics design
# --------------------------------------------------------------------------------------------------
def test_the_flat_headline_is_the_only_declared_metric():
    stages = _spec()["stages"]
    declared = {p for s in stages.values() for p in _entries(s, "metrics")}
    assert declared == {"reports/metrics/headline.json"}
    assert _entries(stages["report"], "metrics")["reports/metrics/headline.json"]["cache"] is False
    outs = {p: opts for s in stages.values() for p, opts in _entries(s, "outs").items()}
    for stage in STAGE_METRICS:
        rel = f"reports/metrics/{stage}.json"
        assert rel in outs and outs[rel].get("cache") is False, f"{rel}: an out with cache: false"
    plots = {p: o for s in stages.values() for p, o in _entries(s, "plots").items()}
    assert plots and all(o.get("cache") is False for o in plots.values())


def test_lock_metrics_and_plots_of_the_sample_run_are_committed():
    """What `dvc exp show` / `dvc metrics diff HEAD` / `dvc plots diff` compare against."""
    spec = _spec()
    wanted = {"dvc.lock", "reports/metrics/headline.json",
              *(f"reports/metrics/{s}.json" for s in STAGE_METRICS),
              *(p for s in spec["stages"].values() for p in _entries(s, "plots"))}
    assert wanted <= _tracked(*wanted), sorted(wanted - _tracked(*wanted))
    ignored = subprocess.run(["git", "check-ignore", *sorted(wanted)], cwd=PROJECT_ROOT,
                             capture_output=True, text=True).stdout.split()
    assert not ignored, ignored
    lock = yaml.safe_load((PROJECT_ROOT / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(spec["stages"]), "regenerate dvc.lock: `dvc repro`"


def test_committed_outputs_are_what_dvc_lock_records_for_this_code_and_params():
    """The committed sample run is the current code's: `dvc status` of the project finds no dependency
    (source file, params key, input) changed since the run dvc.lock records, and no committed output
    (stage metrics, plot tables, headline) other than that run wrote. Outputs git does not hold (data,
    models: the DVC cache of whoever ran it) count as absent, not changed. Fails after any change of a
    stage's code or params until `dvc repro` is rerun and its outputs committed."""
    r = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout or "{}")
    changed = [(stage, kind, path, state) for stage, entries in status.items() for entry in entries
               for kind, changes in (entry.items() if isinstance(entry, dict) else [(entry, {})])
               for path, state in (changes.items() if isinstance(changes, dict) else [])]
    assert all(isinstance(e, dict) for entries in status.values() for e in entries), status
    committed = _tracked(*{path for _, _, path, _ in changed}) if changed else set()
    stale = [f"{stage}: {kind} {path} {state}" for stage, kind, path, state in changed
             if path in committed]
    assert not stale, ("the committed sample run is not this code's (rerun `dvc repro` and commit "
                       "its outputs):\n" + "\n".join(stale))


def test_committed_headline_is_a_copy_of_the_committed_stage_metrics():
    paths = Paths(PROJECT_ROOT)
    committed = json.loads(paths.headline.read_text(encoding="utf-8"))
    assert committed == H.headline(H.read_stage_metrics(paths))
    missing = [k for k, v in committed.items() if v is None]
    assert not missing, f"headline keys no stage metrics file provides (fix HEADLINE): {missing}"


def test_readme_headline_table_is_generated_from_the_metrics():
    """Every headline number in the README is the committed metrics file's, by construction."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    values = json.loads(Paths(PROJECT_ROOT).headline.read_text(encoding="utf-8"))
    assert H.readme_block(values) in readme, \
        "README headline table is stale: run `python -m scrm.report.headline --readme`"


# Decimal numbers in the README that no committed file holds, each with where it comes from.
README_NUMBERS_ELSEWHERE = {
    "0.031884": "topics on 4,140 synthetic openings: the command is in the README (not committed)",
    "0.849886": "topics on 4,140 synthetic openings: the command is in the README (not committed)",
}


def _numbers(text: str) -> list[tuple[int, str, float]]:
    """(line, as written, value) of every decimal number with 2+ decimals; versions (x.y.z) and
    Python's version are not results."""
    text = re.sub(r"\d+\.\d+\.\d+", " ", text).replace("Python 3.11", " ")
    return [(text[:m.start()].count("\n") + 1, m.group(0),
             float(m.group(2)) * (-1 if m.group(1) else 1))
            for m in re.finditer(r"(?<![\w.])([−-]?)(\d+\.\d{2,})(?!\d)", text)]


def _committed_values() -> list[float]:
    """Every number in the committed sample-run metrics, plot tables, agreement file and bench
    results (the sources a README result may quote)."""
    vals: list[float] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            vals.append(float(x))

    for f in [*sorted((PROJECT_ROOT / "reports" / "metrics").glob("*.json")),
              PROJECT_ROOT / "references" / "agreement.json"]:
        walk(json.loads(f.read_text(encoding="utf-8")))
    texts = [f.read_text(encoding="utf-8") for f in [
        *sorted((PROJECT_ROOT / "reports" / "plots").glob("*.csv")),
        *sorted((PROJECT_ROOT / "bench" / "results").glob("*.md"))]]
    vals += [float(n.replace(",", "")) for t in texts
             for n in re.findall(r"-?\d[\d,]*\.\d+|-?\d+", t)]
    return vals


def test_every_decimal_result_in_the_readme_is_in_a_committed_output():
    """A result quoted in the README (any number with two or more decimals) equals, at the
    precision written, a number in the committed metrics, plot tables, agreement file or bench
    results, so rerunning the pipeline and committing its outputs shows any drift. Counts and
    percentages are checked by the headline table and the stage tests."""
    vals = _committed_values()
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    found = _numbers(readme)
    assert len(found) > 100, "the README quotes its results: the check would pass vacuously"
    stray = [(line, raw) for line, raw, num in found if raw.lstrip("−-") not in
             README_NUMBERS_ELSEWHERE and not any(
                 abs(round(v, len(raw.split(".")[1])) - num) < 1e-12 for v in vals)]
    assert not stray, f"README numbers no committed output holds (line, number): {stray}"


def test_headline_copies_by_path_and_marks_what_is_missing():
    stage_metrics = {
        "prepare": {"openings": 1285},
        "response_time": {"overall": {"answered_share": 0.9, "km_median_min": 13.6},
                          "models": {"within_1h": {"logistic": {"auc": 0.88},
                                                   "brand_rate": {"auc": True}}}},
        "outcome": {"recovery_rate": {"hand_labels": {"rate": 0.15}}},
    }
    got = H.headline(stage_metrics)
    assert list(got) == [k for k, _, _ in H.HEADLINE]
    assert got["openings"] == 1285 and got["answered_share"] == 0.9
    assert got["km_median_latency_min"] == 13.6 and got["within_1h_auc"] == 0.88
    assert got["recovery_rate"] == 0.15 and got["recovery_rate_vader"] is None
    assert got["within_1h_auc_baseline"] is None  # a bool is no number
    assert got["recovery_auc"] is None and got["gold_cv_macro_f1"] is None  # absent paths / stages
    assert H.dig({"a": {"b": 1}}, "a.b") == 1 and H.dig({"a": 1}, "a.b") is None


def test_headline_file_is_deterministic_and_update_readme_rewrites_only_its_block(tmp_path):
    paths = Paths(tmp_path).ensure()
    paths.metric("prepare").write_text('{"openings": 12}')
    first = H.write(paths).read_bytes()
    assert H.write(paths).read_bytes() == first
    assert json.loads(first)["openings"] == 12
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{H.README_START}\nold\n{H.README_END}\nafter\n")
    assert H.update_readme(readme, json.loads(first))
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    assert "| `openings` | 12 | `prepare.json` openings |" in text
    assert not H.update_readme(readme, json.loads(first))


# --------------------------------------------------------------------------------------------------
# dvc plots: an offline page
# --------------------------------------------------------------------------------------------------
def _template() -> Path:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(PROJECT_ROOT / ".dvc" / "config")
    return PROJECT_ROOT / ".dvc" / cfg["plots"]["html_template"].strip()


def test_plots_template_embeds_the_vega_versions_dvc_render_asks_for():
    from dvc_render.vega import VegaRenderer

    page = _template().read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN tags are never inserted
    assert not re.search(r"<script[^>]+src=", page), "no script is loaded from anywhere"
    wanted = dict(re.findall(r"npm/(vega(?:-lite|-embed)?)@([\d.]+)", VegaRenderer.SCRIPTS))
    assert set(wanted) == {"vega", "vega-lite", "vega-embed"}
    for name, version in wanted.items():
        assert f"{name}@{version}" in page.split("-->", 1)[0], \
            f"dvc-render now wants {name}@{version}: rerun .dvc/plots/build_offline_html.sh"
    assert 'var e="%s"' % wanted["vega"] in page  # the library's own version string


def test_dvc_plots_show_writes_a_page_that_needs_no_network(tmp_path):
    root = copy_project(tmp_path / "p")
    dvc(root, "plots", "show", "-o", str(tmp_path / "out"), timeout=300)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    n_plots = sum(len(_entries(s, "plots")) for s in _spec()["stages"].values())
    assert page.count("vegaEmbed(") >= n_plots
    assert not re.search(r"<script[^>]+src=", page)
    assert "cdn.jsdelivr" not in page


# --------------------------------------------------------------------------------------------------
# make lab / make ui / make venv
# --------------------------------------------------------------------------------------------------
def _make_n(target: str, tmp_path: Path, uid: int | None = None, **variables: str) -> str:
    env = dict(os.environ)
    if uid is not None:  # a stand-in `id` so the recipe can be read as another user's
        fake = tmp_path / f"bin{uid}"
        fake.mkdir(exist_ok=True)
        (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
        (fake / "id").chmod(0o755)
        env["PATH"] = f"{fake}:{env['PATH']}"
    args = ["make", "-n", "-B", target, *(f"{k}={v}" for k, v in variables.items())]
    r = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _recipe(out: str, needle: str) -> str:
    lines = [ln for ln in out.splitlines() if needle in ln]
    assert lines, out
    return lines[-1]


def test_make_lab_allows_root_only_as_root(tmp_path):
    as_root = _recipe(_make_n("lab", tmp_path, uid=0), "jupyter lab")
    as_user = _recipe(_make_n("lab", tmp_path, uid=1000), "jupyter lab")
    assert "--allow-root" in as_root and "--allow-root" not in as_user
    assert "--ip 127.0.0.1" in as_user


def test_make_ui_starts_one_worker_and_prints_the_url_once_it_answers(tmp_path):
    out = _make_n("ui", tmp_path)
    recipe = out[out.index("mlflow ui"):]
    assert "--workers 1" in recipe and "--host 127.0.0.1" in recipe
    wait, url = recipe.index("scrm.progress wait"), recipe.index('echo "MLflow UI: http://127.0.0.1')
    assert wait < url, "the URL is printed only after the server answers"


def test_make_venv_shows_progress_and_installs_the_cpu_torch_build(tmp_path):
    out = _make_n("venv", tmp_path)
    lock = _recipe(out, "-r requirements.lock.txt")
    assert " -q" not in lock, "pip's own progress shows"
    assert "-c constraints-cpu.txt" in lock
    torch = _recipe(out, "--extra-index-url")
    assert "https://download.pytorch.org/whl/cpu" in torch and "-c constraints-cpu.txt" in torch
    assert re.search(r"==> \[\$\(\( .* \)\) s\]", out), "each phase line carries the elapsed time"
    gpu = _make_n("venv", tmp_path, TORCH="pypi")
    assert "constraints-cpu.txt" not in _recipe(gpu, "-r requirements.lock.txt")
    assert "--extra-index-url" not in gpu


@pytest.mark.slow
@pytest.mark.parametrize("command", ["make", "scrm"])
def test_ui_answers_when_it_prints_its_url(command):
    """The real `make ui` and `scrm ui` (need the project's .venv, as after `make run`)."""
    import signal
    import socket
    import urllib.request

    if not (PROJECT_ROOT / ".venv" / ".installed").exists():
        skip_unless_ci("no .venv in this checkout: `make ui` would first build it (run `make run`)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = (["make", "-s", "ui", f"UI_PORT={port}"] if command == "make"
            else [str(PROJECT_ROOT / ".venv" / "bin" / "scrm"), "ui", "--port", str(port)])
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        seen = []
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if f"MLflow UI: http://127.0.0.1:{port}" in line:
                break
        else:
            pytest.fail(f"{command} ui ended without printing its URL:\n" + "".join(seen))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


# --------------------------------------------------------------------------------------------------
# slow: dvc exp run -S, then dvc exp show / metrics diff / plots diff (a key of every params section:
# tests/test_edge_pipeline.py, on the cheapest derived input)
# --------------------------------------------------------------------------------------------------
def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_dvc_exp_run_and_exp_show_compare_with_the_sample_run(pipeline_root, tmp_path):
    """On a copy of the session's finished sample run (conftest ``pipeline_root``: its test-time
    settings, the sample as its input), committed as the baseline the experiment compares with: the
    issue's reproducer (DVC rewrites params.yaml, unquoting "yes"/"no", and outcome rereads it);
    `dvc exp show --csv` has every headline metric for main and the experiment, `dvc metrics diff`
    and `dvc plots diff` compare them, and the MLflow runs carry the experiment's name and a clean
    commit."""
    root = copy_run(pipeline_root.root, tmp_path / "project")
    fetch = yaml.safe_load((root / "params.yaml").read_text())["fetch"]
    assert fetch["source"] == "file" and fetch["path"].endswith("twcs_sample_xss.csv"), fetch
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "sample run (test-time params)")
    assert "up to date" in dvc(root, "status").stdout

    out = dvc(root, "exp", "run", "-n", "threshold", "-S", "outcome.negative_threshold=-0.1",
              timeout=3000).stdout
    assert _ran(out) == {"outcome", "report"}, out
    assert (root / "data" / "processed" / "outcome.parquet").exists()
    assert "yes" in read_yaml(root / "params.yaml")["outcome"]["name_stopwords"]

    table = dvc(root, "exp", "show", "--csv", "--no-pager", timeout=600).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    by_name = {r["Experiment"] or r["rev"]: r for r in rows}
    assert "threshold" in by_name, by_name.keys()
    # the committed baseline (DVC marks the workspace row "baseline" too: after `exp run` it holds
    # the experiment's results)
    main = next(r for r in rows if r["typ"] == "baseline" and r["rev"] != "workspace")
    # the test-time params leave the MiniLM benchmark model and the topic stability refits out, so
    # their headline values are null (DVC shows no column for them); every other headline metric
    # must have a value in every row
    committed = json.loads(_git(root, "show", "HEAD:reports/metrics/headline.json"))
    quick_nulls = {"sealed_minilm_macro_f1", "topics_stability_ari"}
    assert {k for k, v in committed.items() if v is None} <= quick_nulls, committed
    for key, _, _ in H.HEADLINE:
        if key in quick_nulls and committed.get(key) is None:
            continue
        col = next((c for c in rows[0] if c == key or c.endswith(f":{key}")), None)
        assert col is not None, f"no `dvc exp show` column for headline metric {key}"
        for row in (main, by_name["threshold"]):
            assert row[col] not in ("", "!", "-"), f"{key} missing for {row['Experiment']}"
    # the VADER threshold moves the former (VADER) recovery rate, not the hand-labelled one
    vader = next(c for c in rows[0] if c.endswith("recovery_rate_vader"))
    assert by_name["threshold"][vader] != main[vader]

    diff = dvc(root, "metrics", "diff", "HEAD", "threshold", "--json", timeout=600).stdout
    assert "reports/metrics/headline.json" in json.loads(diff)
    dvc(root, "plots", "diff", "HEAD", "threshold", "-o", str(tmp_path / "plots"), timeout=600)
    page = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
    assert "threshold" in page and not re.search(r"<script[^>]+src=", page)
    mlflow_runs = subprocess.run([sys.executable, "-c", (
        "import sys; from scrm import tracking; r = tracking.list_runs('outcome', sys.argv[1]); "
        "print(sorted(set(r['tags.scrm.dvc_exp'].dropna())), sorted(set(r['tags.scrm.git_commit'])))"
    ), str(root)], capture_output=True, text=True, check=True).stdout
    assert "threshold" in mlflow_runs
    assert "dirty" not in mlflow_runs, mlflow_runs
