"""Empty is a result, not a crash: every stage finishes on inputs with little or nothing to analyse,
writes its outputs with the right schema (typed, never Null columns), says "status" and a reason a
person understands in its metrics, and the report shows each section's real state.

Inputs here: small hand-made ones (openings never answered, one day, every record quarantined, a
stage that fails). The files derived from the real sample (tests/edge_inputs.py: brand tweets only,
openings never answered, one brand) go through the whole `dvc repro` in tests/test_edge_pipeline.py
(slow), which also checks their outputs' schemas, metrics keys and reasons.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import make_root, set_params, tweet, write_twcs
from scrm import io as sio
from scrm import status
from scrm.config import Paths
from scrm.data.schema import typed_frame, untyped_columns

# the stages run here, in DVC order
COMMANDS = ("prepare", "sentiment", "response-time", "outcome", "complaints", "embed", "topics",
            "benchmark", "detect", "report")
FAST = {("embed", "backend"): "tfidf_svd", ("embed", "progress"): False,
        ("response_time", "log_models"): False, ("response_time", "n_boot"): 50,
        ("outcome", "model", "n_boot"): 20, ("outcome", "model", "log_models"): False,
        ("complaints", "track"): False, ("complaints", "n_boot"): 100,
        ("benchmark", "models"): ["dummy", "complement_nb", "logreg"],
        ("benchmark", "cv_repeats"): 1, ("benchmark", "n_boot"): 100,
        ("benchmark", "workers"): 1, ("response_time", "n_jobs"): 1, ("outcome", "n_jobs"): 1,
        ("benchmark", "mlflow", "enabled"): False, ("detect", "n_boot"): 100}
NO_OPENINGS = "the input has no customer openings: every tweet is from a brand"


def cli(*args: str) -> Any:
    """One ``scrm`` command in-process (the CLI writes the failure notes)."""
    from typer.testing import CliRunner

    from scrm.cli import app

    return CliRunner().invoke(app, list(args))


def fast_root(dest: Path) -> Paths:
    paths = make_root(dest)
    set_params(paths.root, FAST)
    return paths


def run_stages(paths: Paths, source: Path, commands: tuple[str, ...] = COMMANDS) -> dict[str, int]:
    """fetch ``source`` then each command; returns each command's exit code."""
    root = str(paths.root)
    codes = {"fetch": cli("fetch", "--source", "file", "--path", str(source), "--root", root
                          ).exit_code}
    for command in commands:
        codes[command] = cli(command, "--root", root).exit_code
    return codes


def metrics(paths: Paths, stage: str) -> dict[str, Any]:
    return json.loads(paths.metric(stage).read_text(encoding="utf-8"))


def parquet_schemas(paths: Paths) -> dict[str, dict[str, pl.DataType]]:
    return {p.name: dict(pl.read_parquet_schema(p))
            for p in sorted(paths.root.glob("data/**/*.parquet"))}


def notes(paths: Paths) -> list[str]:
    page = paths.report_html.read_text(encoding="utf-8")
    return [html.unescape(re.sub("<[^>]+>", "", n))
            for n in re.findall(r'<p class="missing">(.*?)</p>', page)]


# --------------------------------------------------------------------------------------------------
# hand-made: never answered, one day, every record quarantined
# --------------------------------------------------------------------------------------------------
def never_answered_rows(n: int = 40) -> list[dict[str, Any]]:
    """``n`` customer openings to two brands on one day, each brand tweeting but never in reply."""
    rows = [tweet(i, str(1000 + i), 10 * i, f"@{'AcmeHelp' if i % 2 else 'ZetaCare'} my order "
                  f"{i} never came, no refund either") for i in range(1, n + 1)]
    rows += [tweet(900 + k, brand, 5 * k, "We are here to help, DM us")
             for k, brand in enumerate(["AcmeHelp", "ZetaCare"] * 3)]
    return rows


def test_openings_never_answered_are_a_result_not_missing_data(tmp_path: Path) -> None:
    paths = fast_root(tmp_path)
    src = write_twcs(tmp_path / "never.csv", never_answered_rows())
    codes = run_stages(paths, src, ("prepare", "sentiment", "response-time", "outcome", "report"))
    assert codes == dict.fromkeys(codes, 0), codes
    oc = metrics(paths, "outcome")
    assert oc["status"] == "no_data" and oc["reason"].startswith(
        "none of the 40 openings was answered")
    assert pl.read_parquet(paths.outcome_findings).height == 0
    rt = metrics(paths, "response_time")
    assert rt["status"] == "ok" and rt["reason"] is None
    assert rt["openings"]["openings"] == 40 and rt["openings"]["answered"] == 0
    assert rt["overall"]["answered_share"] == 0.0 and rt["overall"]["km_median_min"] is None
    for task, group in rt["models"].items():
        for name, entry in (group.items() if task != "cox" else [("cox", group)]):
            assert entry["status"] in ("ok", "skipped"), (task, name)
            if entry["status"] == "skipped":
                assert entry["reason"], (task, name)
    for name, schema in parquet_schemas(paths).items():
        assert pl.Null not in schema.values(), name
    table = pl.read_parquet(paths.service_table)
    assert table["brand"].sort().to_list() == ["AcmeHelp", "ZetaCare"]
    assert table.schema["km_median_min"] == pl.Float64 and table["km_median_min"].is_null().all()


def test_never_answered_sample_is_a_result_in_every_stage_that_reads_answers(tmp_path: Path) -> None:
    """The real sample with every brand reply taken out (tests/edge_inputs.py): response time
    measures the openings (none answered), outcome has no data and says why, the report shows it."""
    import edge_inputs

    paths = fast_root(tmp_path)
    src = edge_inputs.write("never_answered", tmp_path / "never_answered.csv")
    codes = run_stages(paths, src, ("prepare", "sentiment", "response-time", "outcome", "report"))
    assert codes == dict.fromkeys(codes, 0), codes
    rt = metrics(paths, "response_time")
    assert rt["status"] == "ok" and rt["openings"]["openings"] > 1000
    assert rt["openings"]["answered"] == 0 and rt["overall"]["km_median_min"] is None
    oc = metrics(paths, "outcome")
    assert oc["status"] == "no_data" and oc["reason"].startswith(
        f"none of the {rt['openings']['openings']:,} openings was answered")
    assert any(n.startswith(f"No data because {oc['reason']}") for n in notes(paths))
    assert not any("has not run" in n or "failed" in n for n in notes(paths)
                   if "response_time" in n or "outcome" in n)
    for name, schema in parquet_schemas(paths).items():
        assert pl.Null not in schema.values(), name


def test_one_day_of_openings_is_measured(tmp_path: Path) -> None:
    """Every opening on one day (weekday constant, hours from 12:00 to 18:30): the models and the
    Cox fit run or are skipped with a reason, nothing crashes."""
    rows = []
    for i in range(1, 41):
        brand = "AcmeHelp" if i % 2 else "ZetaCare"
        rows.append(tweet(i, str(1000 + i), 10 * i, f"@{brand} order {i} is late",
                          replies=[500 + i]))
        rows.append(tweet(500 + i, brand, 10 * i + 3 + (i % 7) * 11, "Sorry, DM us", parent=i))
    paths = fast_root(tmp_path)
    codes = run_stages(paths, write_twcs(tmp_path / "day.csv", rows),
                       ("prepare", "sentiment", "response-time"))
    assert codes == dict.fromkeys(codes, 0), codes
    rt = metrics(paths, "response_time")
    assert rt["status"] == "ok" and rt["openings"]["answered"] == 40
    assert rt["overall"]["km_median_min"] is not None
    cox = rt["models"]["cox"]
    assert cox["status"] == "ok" or cox["reason"]


def test_cox_limits_overflow_to_null_not_an_error() -> None:
    from scrm.stats import cox

    assert cox._exp(1.0) == pytest.approx(2.718281828) and cox._exp(1e6) == float("inf")


def test_every_record_quarantined_is_no_data_everywhere(tmp_path: Path) -> None:
    paths = fast_root(tmp_path)
    src = tmp_path / "bad.csv"
    src.write_text("tweet_id,author_id,inbound,created_at,text,response_tweet_id,"
                   "in_response_to_tweet_id\nx1,a,True,yesterday,hello,,\n", encoding="utf-8")
    codes = run_stages(paths, src, ("prepare", "sentiment", "response-time", "report"))
    assert codes == dict.fromkeys(codes, 0), codes
    reason = "the input has no usable tweet: its one record was quarantined"
    for stage in ("prepare", "sentiment", "response_time"):
        m = metrics(paths, stage)
        assert m["status"] == "no_data" and m["reason"].startswith(reason), stage
    assert pl.read_parquet(paths.tweets).height == 0


# --------------------------------------------------------------------------------------------------
# topics: too few openings is "skipped", with everything written empty
# --------------------------------------------------------------------------------------------------
def test_too_few_openings_for_topics_is_skipped_with_typed_empty_outputs(tmp_path: Path) -> None:
    paths = fast_root(tmp_path)
    src = write_twcs(tmp_path / "few.csv", never_answered_rows(12))
    paths.bertopic_model.mkdir(parents=True)
    (paths.bertopic_model / "stale.bin").write_text("an earlier model")
    paths.topic_figures.mkdir(parents=True)
    (paths.topic_figures / "barchart.html").write_text("an earlier figure")
    codes = run_stages(paths, src, ("prepare", "sentiment", "complaints", "embed", "topics",
                                    "report"))
    assert codes == dict.fromkeys(codes, 0), codes
    assert metrics(paths, "embed")["status"] == "ok"
    m = metrics(paths, "topics")
    assert m["status"] == "skipped"
    assert m["reason"] == ("only 12 openings with text: too few for topics with "
                           "topics.min_cluster_size=15 (at least 30 are needed)")
    assert m["n_topics"] == 0 and all(v.startswith("skipped") for v in m["figures"].values())
    for p in (paths.topics, paths.topic_info, paths.topic_taxonomy, paths.topic_share_brand,
              paths.topic_share_time):
        frame = pl.read_parquet(p)
        assert frame.height == 0 and not untyped_columns(frame), p.name
    assert list(paths.bertopic_model.iterdir()) == [] and list(paths.topic_figures.iterdir()) == []
    assert any(n.startswith("Skipped because only 12 openings") for n in notes(paths))


def test_tiny_benchmark_skips_each_section_with_its_reason(tmp_path: Path) -> None:
    """12 openings: categories with one or two members, too few rows for the folds or for the
    TF-IDF vocabulary: every section is skipped with its reason, the stage completes, the
    leaderboard is written with its columns."""
    paths = fast_root(tmp_path)
    src = write_twcs(tmp_path / "few.csv", never_answered_rows(12))
    codes = run_stages(paths, src, ("prepare", "sentiment", "complaints", "embed", "benchmark",
                                    "report"))
    assert codes == dict.fromkeys(codes, 0), codes
    m = metrics(paths, "benchmark")
    assert m["status"] == "skipped" and m["reason"].startswith("nothing could be evaluated: ")
    assert m["sections"] == {} and m["skipped"] and all(m["skipped"].values())
    assert m["confusion_plot"] is None
    lb = pl.read_csv(paths.benchmark_csv)
    assert lb.height == 0 and "macro_f1" in lb.columns
    assert any(n.startswith("Skipped because nothing could be evaluated") for n in notes(paths))


def test_stratified_folds_need_one_category_with_k_members() -> None:
    import numpy as np

    from scrm.complaints.benchmark.splits import SplitError, stratified_cv

    with pytest.raises(SplitError, match="no category has 5 rows"):
        stratified_cv(np.array(["a", "a", "b", "c", "d", "d"]), 5, seed=0)
    assert len(stratified_cv(np.array(["a"] * 5 + ["b"]), 5, seed=0)) == 5  # one rare class: fine


def test_label_model_without_any_vote_is_skipped_not_fitted() -> None:
    import numpy as np

    from scrm.complaints import label_model as LM
    from scrm.complaints.taxonomy import load_taxonomy

    tax = load_taxonomy()  # the packaged one
    none = np.zeros((0, len(tax.lfs)), dtype=np.int64)
    fit = LM.fit_predict(none, np.zeros(0, dtype=bool), tax, {}, seed=0)
    assert fit.skipped == "no opening to fit it on" and fit.labels == []
    silent = np.full((3, len(tax.lfs)), LM.ABSTAIN, dtype=np.int64)
    fit = LM.fit_predict(silent, np.ones(3, dtype=bool), tax, {}, seed=0)
    assert fit.skipped.startswith("no rule fires on any of the 3 openings")
    assert fit.labels == [None] * 3 and set(fit.weights.values()) == {None}


# --------------------------------------------------------------------------------------------------
# a stage that fails: a failure note, and the report says "failed: see ..."
# --------------------------------------------------------------------------------------------------
def test_a_failed_stage_leaves_a_note_the_report_shows_and_a_good_run_clears(tmp_path: Path
                                                                              ) -> None:
    paths = fast_root(tmp_path)
    src = write_twcs(tmp_path / "few.csv", never_answered_rows(12))
    run_stages(paths, src, ("prepare", "sentiment"))
    paths.sentiment.unlink()  # response-time cannot run now
    assert cli("response-time", "--root", str(paths.root)).exit_code == 2
    note = json.loads(paths.failure_note("response_time").read_text())
    assert note["command"] == "scrm response-time" and "sentiment.parquet" in note["message"]
    assert cli("report", "--root", str(paths.root)).exit_code == 0
    assert any(n.startswith("Stage response_time failed: see reports/status/"
                            "response_time.failed.json") for n in notes(paths))
    assert cli("sentiment", "--root", str(paths.root)).exit_code == 0
    assert cli("response-time", "--root", str(paths.root)).exit_code == 0
    assert not paths.failure_note("response_time").exists()
    assert cli("report", "--root", str(paths.root)).exit_code == 0
    assert not any("failed" in n for n in notes(paths))


def test_missing_input_names_the_failure_of_the_stage_that_should_write_it(tmp_path: Path
                                                                            ) -> None:
    paths = make_root(tmp_path)
    err = status.missing_input(paths, "embed", paths.embeddings)
    assert "run `scrm embed` first" in str(err)
    status.record_failure(paths, "embed", "the model could not be loaded")
    err = status.missing_input(paths, "embed", paths.embeddings)
    assert "`scrm embed` failed (the model could not be loaded)" in str(err)
    assert "run `scrm embed` first" not in str(err)
    status.clear_failure(paths, "embed")
    assert status.failure(paths, "embed") is None


# --------------------------------------------------------------------------------------------------
# the helpers: typed frames and the status convention
# --------------------------------------------------------------------------------------------------
def test_typed_frame_keeps_types_with_no_rows_and_with_only_nulls() -> None:
    schema = {"brand": pl.String(), "n": pl.Int64(), "share": pl.Float64()}
    empty = typed_frame([], schema)
    assert empty.height == 0 and dict(empty.schema) == schema
    nulls = typed_frame([{"brand": "A", "n": 1, "share": None}], schema)
    assert dict(nulls.schema) == schema and nulls["share"][0] is None
    by_name = typed_frame([], lambda c: pl.Int64() if c.startswith("n_") else pl.Float64(),
                          ["n_x", "y"])
    assert dict(by_name.schema) == {"n_x": pl.Int64(), "y": pl.Float64()}
    with pytest.raises(ValueError, match="not in the declared schema"):
        typed_frame([{"brand": "A", "extra": 1}], schema)
    # what typed_frame prevents: a frame built from Python values has no type for a null column
    assert pl.DataFrame([{"share": None}]).schema["share"] == pl.Null


def test_untyped_columns_are_found_and_refused_on_write(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [None], "b": [[]], "c": [1], "d": [{"x": None}]})
    assert untyped_columns(frame) == ["a", "b", "d"]
    assert untyped_columns(frame.lazy()) == ["a", "b", "d"]
    with pytest.raises(TypeError, match=r"\['a', 'b', 'd'\] have no type"):
        sio.write_parquet(frame, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    sio.write_parquet(frame.select("c"), tmp_path / "x.parquet")


def test_status_needs_a_reason_unless_ok() -> None:
    assert status.ok() == {"status": "ok", "reason": None}
    assert status.no_data("no opening") == {"status": "no_data", "reason": "no opening"}
    with pytest.raises(ValueError, match="reason"):
        status.status("skipped")
    with pytest.raises(ValueError, match="status must be one of"):
        status.status("failed", "no")
    assert status.of({}) == ("ok", None)  # files written before the convention
    assert status.stage_of("response-time") == "response_time" and status.stage_of("ui") is None
