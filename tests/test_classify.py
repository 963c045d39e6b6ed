"""``scrm classify``: round trip on the sample (train, register, classify a CSV), every bad input a
clear message, empty texts kept with a reason, chunking invisible in the output, atomic writes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from scrm.cli import app
from scrm.complaints import classify as CL
from scrm.config import Paths, load_params, load_settings
from scrm.errors import DataError, ScrmError
from scrm.text import clean_for_topics

from conftest import make_root


def _cli(root: Paths, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["classify", *args, "--root", str(root.root), "--no-progress"])
    return res.exit_code, res.output


@pytest.fixture
def texts_csv(detect_root: Paths, tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """40 sample openings (tweet_id, text) plus a handle-only and an empty text."""
    comp = pl.read_parquet(detect_root.complaints).sort("tweet_id").head(40)
    df = pl.concat([comp.select(pl.col("tweet_id").cast(pl.String), "text"),
                    pl.DataFrame({"tweet_id": ["x1", "x2"], "text": ["@AmazonHelp https://t.co/a", ""]})])
    path = tmp_path / "texts.csv"
    df.write_csv(path)
    return path, df


def test_round_trip_on_the_sample(detect_root: Paths, texts_csv: tuple[Path, pl.DataFrame],
                                  tmp_path: Path) -> None:
    src, df = texts_csv
    out = tmp_path / "preds.csv"
    code, text = _cli(detect_root, "--model", "scrm-complaint-detector@logreg", "--input",
                      str(src), "--output", str(out), "--chunk-rows", "7")
    assert code == 0, text
    pred = pl.read_csv(out, infer_schema_length=None, schema_overrides={"tweet_id": pl.String})
    assert pred.columns == ["tweet_id", "label", "reason", "proba_complaint",
                            "proba_not_complaint"]
    assert pred["tweet_id"].to_list() == df["tweet_id"].to_list()
    # the same decisions and probabilities as the stage wrote for these openings
    stage = (pl.read_parquet(detect_root.complaint_detect)
             .with_columns(pl.col("tweet_id").cast(pl.String)))
    both = pred.join(stage, on="tweet_id")
    assert both.height == 40
    assert both["proba_complaint"].to_list() == pytest.approx(both["p_logreg"].to_list(), abs=2e-6)
    expected = ["complaint" if c else "not_complaint" for c in both["complaint_logreg"]]
    assert both["label"].to_list() == expected
    empty = pred.filter(pl.col("tweet_id").is_in(["x1", "x2"]))
    assert empty["label"].is_null().all() and empty["proba_complaint"].is_null().all()
    assert empty["reason"].str.starts_with("empty text").all()
    assert "labelled: 40" in text and "empty_texts: 2" in text


def test_champion_and_category_model_by_alias(detect_root: Paths,
                                             texts_csv: tuple[Path, pl.DataFrame],
                                             tmp_path: Path) -> None:
    src, _ = texts_csv
    for spec, first_col in (("scrm-complaint-detector@champion", "proba_complaint"),
                            ("scrm-complaint-category@champion", "proba_account_login"),
                            ("scrm-complaint-detector/1", "proba_complaint")):
        out = tmp_path / "p.csv"
        code, text = _cli(detect_root, "--model", spec, "--input", str(src), "--output", str(out))
        assert code == 0, text
        pred = pl.read_csv(out, infer_schema_length=None)
        assert pred.columns[3] == first_col and pred.height == 42
        assert pred["label"].drop_nulls().len() == 40


def test_a_model_on_sentence_vectors_gets_the_texts_embedded(
        detect_root: Paths, texts_csv: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    """A benchmark ``features: embeddings`` model (the category champion on the sample) reads
    MiniLM vectors: classify embeds the cleaned texts as `scrm embed` does."""
    from sklearn.linear_model import LogisticRegression

    from scrm import tracking
    from scrm.complaints.backend import embed_texts, make_encoder

    enc = make_encoder(load_settings(detect_root.root).embed.replace(progress=False))
    comp = pl.read_parquet(detect_root.complaints).sort("tweet_id").head(60)
    X = embed_texts(comp["text_clean"].to_list(), enc)
    y = ["long" if len(t) > 60 else "short" for t in comp["text_clean"].to_list()]
    model = LogisticRegression(max_iter=1000).fit(X, y)
    with tracking.start_run("unit", "vectors", seed=0, root=detect_root.root):
        tracking.log_sklearn_model(model, X[:2], registered_name="scrm-unit-vectors")
    src, df = texts_csv
    out = tmp_path / "v.csv"
    code, text = _cli(detect_root, "--model", "scrm-unit-vectors", "--input", str(src),
                      "--output", str(out), "--chunk-rows", "16")
    assert code == 0, text
    pred = pl.read_csv(out, infer_schema_length=None, schema_overrides={"tweet_id": pl.String})
    clean = df.select(clean_for_topics("text").alias("t"))["t"].to_list()
    kept = [t for t in clean if t]
    want = model.predict_proba(embed_texts(kept, enc))[:, 0]
    assert pred["proba_long"].drop_nulls().to_list() == pytest.approx(want.tolist(), abs=1e-5)
    assert pred.filter(pl.col("label").is_null()).height == 2


def test_vectors_of_a_corpus_fitted_embedding_are_refused(tmp_path: Path) -> None:
    paths = make_root(tmp_path)
    params = load_params(paths.root)
    params["embed"] = {**params["embed"], "backend": "tfidf_svd"}
    (paths.root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(ScrmError, match="cannot be embedded the same way"):
        CL.vector_encoder(object(), paths.root)


def test_chunking_does_not_change_the_output(detect_root: Paths,
                                             texts_csv: tuple[Path, pl.DataFrame],
                                             tmp_path: Path) -> None:
    src, _ = texts_csv
    outs = []
    for chunk in ("1", "5", "1000"):
        out = tmp_path / f"p{chunk}.csv"
        assert _cli(detect_root, "--model", "scrm-complaint-detector@logreg", "--input", str(src),
                    "--output", str(out), "--chunk-rows", chunk)[0] == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_text_column_option_and_row_numbers(detect_root: Paths, tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    pl.DataFrame({"body": ["my order never arrived", "thanks a lot!"]}).write_csv(src)
    out = tmp_path / "p.csv"
    code, text = _cli(detect_root, "--model", "scrm-complaint-detector@rules", "--input", str(src),
                      "--text-column", "body", "--output", str(out))
    assert code == 0, text
    pred = pl.read_csv(out)
    assert pred["row"].to_list() == [1, 2]
    assert pred["label"].to_list() == ["complaint", "not_complaint"]
    header_only = tmp_path / "h.csv"
    header_only.write_text("id,text\n")
    assert _cli(detect_root, "--model", "scrm-complaint-detector", "--input", str(header_only),
                "--output", str(out))[0] == 0
    assert out.read_text().splitlines() == ["id,label,reason,proba_complaint,proba_not_complaint"]


@pytest.mark.parametrize("case", ["missing_file", "empty_file", "no_text_column", "not_utf8",
                                  "unknown_model", "unknown_alias", "unknown_version",
                                  "unknown_id_column"])
def test_bad_input_is_one_clear_message(detect_root: Paths, tmp_path: Path, case: str) -> None:
    good = tmp_path / "good.csv"
    good.write_text("id,text\n1,my bill is wrong\n")
    src, model, extra, expect = good, "scrm-complaint-detector@champion", [], ""
    if case == "missing_file":
        src, expect = tmp_path / "nope.csv", f"{tmp_path / 'nope.csv'}: input file not found"
    elif case == "empty_file":
        src = tmp_path / "empty.csv"
        src.write_bytes(b"")
        expect = f"{src}: the input file is empty"
    elif case == "no_text_column":
        extra, expect = ["--text-column", "body"], f"{good}, line 1: no column 'body'"
    elif case == "not_utf8":
        src = tmp_path / "latin1.csv"
        src.write_bytes(b"id,text\n1,fine\n2,caf\xe9 au lait was cold\n")
        expect = f"{src}, line 3: bytes that are not UTF-8"
    elif case == "unknown_model":
        model, expect = "scrm-nothing", "unknown model 'scrm-nothing'"
    elif case == "unknown_alias":
        model, expect = "scrm-complaint-detector@best", "has no alias 'best'"
    elif case == "unknown_version":
        model, expect = "scrm-complaint-detector/999", "has no version '999'"
    elif case == "unknown_id_column":
        extra, expect = ["--id-column", "tid"], "no id column 'tid'"
    out = tmp_path / "out.csv"
    code, text = _cli(detect_root, "--model", model, "--input", str(src), "--output", str(out),
                      *extra)
    assert code == DataError.exit_code == 2
    assert expect in " ".join(text.split()), text
    assert "Traceback" not in text and "unexpected error" not in text
    assert text.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_a_failure_midway_leaves_the_old_output(detect_root: Paths,
                                                texts_csv: tuple[Path, pl.DataFrame],
                                                tmp_path: Path, monkeypatch) -> None:
    src, _ = texts_csv
    out = tmp_path / "preds.csv"
    out.write_text("old\n")
    calls = {"n": 0}
    real = CL.score_batch

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the third chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(CL, "score_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        CL.classify_csv(src, out, "scrm-complaint-detector@rules", chunk_rows=5,
                        root=detect_root.root, show_progress=False)
    assert out.read_text() == "old\n" and not list(tmp_path.glob(".tmp-*"))


def test_list_shows_names_versions_and_aliases(detect_root: Paths) -> None:
    code, text = _cli(detect_root, "--list")
    assert code == 0
    assert "scrm-complaint-detector" in text and "@champion" in text and "@logreg" in text
    assert "scrm-complaint-category" in text
    code, text = _cli(detect_root)
    assert code == 2 and "needs --model, --input, --output" in text


def test_classify_texts_is_the_cli_for_a_list(detect_root: Paths,
                                              texts_csv: tuple[Path, pl.DataFrame],
                                              tmp_path: Path) -> None:
    """The README's Python route gives the rows the command gives, for a text model and for the
    category champion (a model on MiniLM vectors, which a bare pyfunc model cannot serve)."""
    from scrm.complaints.classify import classify_texts

    src, df = texts_csv
    for spec in ("scrm-complaint-detector@champion", "scrm-complaint-category@champion"):
        out = tmp_path / "p.csv"
        code, text = _cli(detect_root, "--model", spec, "--input", str(src), "--output", str(out),
                          "--id-column", "tweet_id")
        assert code == 0, text
        cli_rows = pl.read_csv(out, infer_schema_length=None).drop("tweet_id")
        got = classify_texts(df["text"].to_list(), spec, detect_root.root).drop("row")
        assert got.columns == cli_rows.columns
        assert got["label"].to_list() == cli_rows["label"].to_list()
        for c in got.columns[2:]:
            assert got[c].to_list() == pytest.approx(cli_rows[c].to_list(), abs=1e-6, nan_ok=True)
