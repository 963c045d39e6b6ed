"""The whole pipeline on real files a little unlike the sample: brand tweets only through DVC, and
the same stage commands in one process on one brand (tests/edge_inputs.py derives both from the
sample; the third, openings never answered, goes through the stages that read answers in
tests/test_edge_inputs.py). Each run completes, every stage's metrics carry a status (and a reason
unless ok), and the report renders with the reasons. Brand tweets only (every stage finishes early)
runs as `dvc exp run -S` on a key of every params section: every stage runs and succeeds, each reads
DVC's rewrite of params.yaml, that rewrite changes no value, and every stage depends on a changed
key (the experiment against the sample run: tests/test_daily_loop.py).

Slow: an experiment in a project copy, and the stages in-process on a second one, with the quick
settings below (CPU time per test: `python bench/suite.py tests/test_edge_pipeline.py`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml

import edge_inputs
from conftest import copy_project, copy_run, dvc, git_commit_all, set_params
from test_edge_inputs import COMMANDS, metrics, notes, parquet_schemas, run_stages
from test_edge_inputs import FAST as EDGE_INPUTS_FAST
from scrm.config import Paths
from scrm.data.schema import untyped_columns
from scrm.response_time.service import PAIRWISE_COLUMNS

pytestmark = pytest.mark.slow

# the in-process edge tests' quick settings (test_edge_inputs.FAST: the fast embedding backend, three
# benchmark models and one repeat, no MLflow tracking but the detector's, one process per stage,
# fewer bootstrap draws) and less still: an outcome measure of lexical cues only, one split, one topic
# fit (no stability refits), one importance shuffle (what is checked here is each stage's status and
# reason, not its numbers)
FAST = {**EDGE_INPUTS_FAST,
        ("response_time", "importance_repeats"): 1, ("outcome", "measure", "embedding"): "none",
        ("outcome", "measure", "n_boot"): 100, ("topics", "stability_runs"): 0,
        ("benchmark", "splits"): ["stratified"]}
NO_OPENINGS = "the input has no customer openings: every tweet is from a brand"
# through DVC (`dvc exp run`; the other derived files: the same stage commands in-process, see
# edge_run; openings never answered: the stages that read answers, tests/test_edge_inputs.py)
DVC_CASES = ("brand_tweets_only",)
EXP_OUTPUT = "exp-run.out"  # what `dvc exp run` printed, beside the brand-only project

# one key of every section a stage reads (fullscale is read by bench/pipeline.py only, ray only by an
# engine set to ray), each a value unlike the file's; YAML 1.1 words ("yes"/"no" in
# outcome.name_stopwords) stay in the file and must survive DVC's rewrite as strings
ONE_KEY_PER_SECTION = {"seed": "7", "fetch.rows": "1000", "prepare.require_text": "false",
                       "openings.answered_definition": "direct",
                       "sentiment.roles": "[brand,customer]",
                       "response_time.km_grid_points": "40", "outcome.fast_reply_minutes": "30",
                       "complaints.min_votes": "2", "embed.tfidf_svd.n_components": "50",
                       "topics.top_n_words": "8", "benchmark.test_size": "0.3",
                       "detect.n_boot": "150", "report.top_brands": "10"}


def _project_on(case: str, dest: Path) -> Path:
    """A copy of the project whose fetch stage reads the derived file of ``case``."""
    root = copy_project(dest)
    src = edge_inputs.write(case, root / "data" / "edge" / f"{case}.csv")
    set_params(root, {("fetch", "source"): "file", ("fetch", "path"): str(src.relative_to(root)),
                      **FAST})
    return root


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``edge_run(case)``: the project on that derived file after all its stages, once per module
    (read-only: change a :func:`conftest.copy_run` of it). Brand tweets only goes through DVC: its
    committed project runs `dvc exp run` with a key of every params section changed
    (:data:`ONE_KEY_PER_SECTION`; what DVC printed is kept in ``EXP_OUTPUT``), so one run of the
    eleven stages proves both the no-data path through DVC and the experiment. One brand runs the
    same stage commands in this process (`scrm` in-process, each exit code 0), which spares eleven
    interpreter starts and checks what `dvc repro` would: every output dvc.yaml declares exists."""
    built: dict[str, Path] = {}

    def get(case: str) -> Path:
        if case in built:
            return built[case]
        root = _project_on(case, tmp_path_factory.mktemp(case) / "project")
        if case in DVC_CASES:
            git_commit_all(root, "baseline: the derived file with the quick settings")
            (root.parent / "params.before-exp.yaml").write_bytes((root / "params.yaml").read_bytes())
            sets = [a for k, v in ONE_KEY_PER_SECTION.items() for a in ("-S", f"{k}={v}")]
            out = dvc(root, "exp", "run", "-n", "every-section", *sets, timeout=3600).stdout
            (root.parent / EXP_OUTPUT).write_text(out, encoding="utf-8")
        else:
            codes = run_stages(Paths(root), root / "data" / "edge" / f"{case}.csv", COMMANDS)
            assert codes == dict.fromkeys(codes, 0), codes
            missing = [rel for rel in _declared_outs(root) if not (root / rel).exists()]
            assert not missing, f"outputs dvc.yaml declares that the stages did not write: {missing}"
        built[case] = root
        return root

    return get


def _declared_outs(root: Path) -> list[str]:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return [item if isinstance(item, str) else next(iter(item))
            for name, st in stages.items() if name != "fetch"
            for kind in ("outs", "metrics", "plots") for item in st.get(kind, []) or []]


@pytest.mark.parametrize("case", ["brand_tweets_only", "one_brand"])
def test_every_stage_completes_with_a_status_everywhere(case: str, edge_run) -> None:
    root = edge_run(case)
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
    shown = notes(Paths(root))
    assert not any("has not run" in n or "failed" in n for n in shown), shown
    for name, (state, reason) in statuses.items():
        if state != "ok" and name in ("response_time", "outcome", "complaints", "topics",
                                       "benchmark", "detect"):
            word = "No data" if state == "no_data" else "Skipped"
            assert any(n.startswith(f"{word} because {reason}") for n in shown), (name, shown)
    if case == "brand_tweets_only":
        assert statuses["prepare"][0] == "no_data"
        assert statuses["prepare"][1].startswith(NO_OPENINGS)
    if case == "one_brand":
        assert statuses["response_time"][0] == "ok"


def test_dvc_exp_run_on_a_key_of_every_section_reruns_every_stage(edge_run, tmp_path) -> None:
    """The experiment of :func:`edge_run` ran every stage and succeeded; `dvc exp show` lists it;
    the settings the stages read after DVC's rewrite of params.yaml equal the original file with
    exactly those changes; and each changed key is one its stages depend on: with the original
    params back, `dvc status` finds every stage's params changed (what makes `dvc exp run` rerun
    them after a committed run)."""
    from scrm.config import load_settings

    run = edge_run("brand_tweets_only")
    out = (run.parent / EXP_OUTPUT).read_text(encoding="utf-8")
    original = (run.parent / "params.before-exp.yaml").read_text(encoding="utf-8")
    sections = {k for k, v in yaml.safe_load(original).items() if isinstance(v, dict)}
    assert {k.split(".")[0] for k in ONE_KEY_PER_SECTION} | {"fullscale", "ray"} >= sections
    stages = set(yaml.safe_load((run / "dvc.yaml").read_text())["stages"])
    assert set(re.findall(r"Running stage '([^']+)'", out)) == stages, \
        f"every stage runs and succeeds:\n{out}"
    table = dvc(run, "exp", "show", "--csv", "--no-pager", timeout=600).stdout
    assert "every-section" in table, table

    root = copy_run(run, tmp_path / "project")
    got = load_settings(root)
    (root / "params.yaml").write_text(original, encoding="utf-8")
    assert "up to date" not in dvc(root, "status").stdout
    changed = json.loads(dvc(root, "status", "--json").stdout)
    for stage in stages:  # {"stage": [{"changed deps": {"params.yaml": {"topics": "modified"}}}]}
        params = [e["changed deps"].get("params.yaml", {}) for e in changed.get(stage, [])
                  if isinstance(e, dict) and "changed deps" in e]
        assert any("modified" in p.values() for p in params), (stage, changed.get(stage))
    set_params(root, {tuple(k.split(".")): yaml.safe_load(v) for k, v in ONE_KEY_PER_SECTION.items()})
    assert got == load_settings(root)


# --------------------------------------------------------------------------------------------------
# what the stages wrote on the derived files (the runs above)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def derived(edge_run) -> Callable[[str], Paths]:
    return lambda case: Paths(edge_run(case))


# --------------------------------------------------------------------------------------------------
# brand tweets only: no opening anywhere
# --------------------------------------------------------------------------------------------------
def test_brand_tweets_only_every_stage_finishes_with_the_reason(derived) -> None:
    paths = derived("brand_tweets_only")  # `dvc exp run` succeeded: every stage exited 0
    prep = metrics(paths, "prepare")
    assert prep["openings"] == 0 and prep["tweets"] == prep["rows_in"] == 2222
    for stage in ("prepare", "response_time", "outcome", "complaints", "embed", "topics",
                  "benchmark", "detect"):
        m = metrics(paths, stage)
        assert m["status"] == "no_data" and m["reason"].startswith(NO_OPENINGS), stage
    assert metrics(paths, "complaints")["label_model"]["status"] == "skipped"
    assert pl.read_csv(paths.benchmark_csv).columns[:4] == ["protocol", "variant", "rank", "system"]
    assert metrics(paths, "sentiment")["status"] == "ok"  # the brand tweets are scored
    assert metrics(paths, "fetch")["status"] == "ok"
    page_notes = notes(paths)
    assert any(n.startswith(f"No data because {NO_OPENINGS}") and "response_time" in n
               for n in page_notes)
    assert not any("has not run" in n and stage in n for n in page_notes
                   for stage in ("prepare", "response_time", "topics"))


def test_empty_outputs_have_the_schema_of_full_ones(derived) -> None:
    """Every parquet the stages write on the brand-only file has exactly the columns and types of
    the same file written on a file with data (one brand), and no untyped column anywhere."""
    empty_paths, full_paths = derived("brand_tweets_only"), derived("one_brand")
    empty, full = parquet_schemas(empty_paths), parquet_schemas(full_paths)
    assert empty.keys() == full.keys()
    for name, schema in empty.items():
        assert schema == full[name], name
        assert not untyped_columns(pl.read_parquet(empty_paths.processed / name)
                                   if (empty_paths.processed / name).exists()
                                   else pl.read_parquet(empty_paths.interim / name)), name
    for name in full:
        where = full_paths.processed / name
        frame = pl.read_parquet(where if where.exists() else full_paths.interim / name)
        assert not untyped_columns(frame), name


def test_empty_metrics_have_the_keys_of_full_ones(derived) -> None:
    """A no-data metrics file has the same top-level keys as one with results (values null or 0):
    `dvc metrics diff` and the report read the same shape either way."""
    empty_paths, full_paths = derived("brand_tweets_only"), derived("one_brand")
    for stage in ("fetch", "prepare", "sentiment", "response_time", "outcome", "complaints",
                  "embed", "topics"):
        assert metrics(empty_paths, stage).keys() == metrics(full_paths, stage).keys(), stage


def test_one_brand_skips_the_brand_comparisons_with_their_reason(derived) -> None:
    paths = derived("one_brand")
    rt = metrics(paths, "response_time")
    assert rt["status"] == "ok" and len(rt["brands"]) == 1
    assert rt["logrank"]["p_value"] is None and rt["logrank"]["note"]
    pairwise = pl.read_parquet(paths.rt_pairwise)
    assert pairwise.height == 0 and pairwise.columns == list(PAIRWISE_COLUMNS)
    assert pl.read_parquet(paths.service_table).height == 1
    assert metrics(paths, "topics")["status"] in ("ok", "skipped")


