"""``scrm``: one thin command per pipeline stage (each one a DVC stage), plus helpers.

Commands only parse options, call one function of the package and print a summary; nothing imports
this module. Errors meant for the user are printed without a traceback (``SCRM_DEBUG=1`` shows it).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .config import get_paths, load_params, load_settings
from .errors import ScrmError

app = typer.Typer(
    name="scrm",
    help="Social-CRM research workbench on the Customer Support on Twitter dataset (twcs.csv).\n\n"
    "Each command is one DVC stage; `dvc repro` (or `make run`) runs them all in order. Every "
    "tunable lives in params.yaml. Outputs go under data/, models/, reports/ of the run root "
    "(the current folder, or SCRM_ROOT / --root).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

RootOpt = Annotated[Path | None, typer.Option("--root", help="Run root holding params.yaml, data/, "
                                              "reports/ (default: SCRM_ROOT or the current folder).")]


def _stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command body with timing and user-facing errors (no traceback unless SCRM_DEBUG)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        command = fn.__name__.replace("_", "-")
        try:
            result = fn(*args, **kwargs)
        except ScrmError as exc:
            _note_failure(command, kwargs.get("root"), str(exc))
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: no partial output was kept (writes are atomic).")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001
            _note_failure(command, kwargs.get("root"),
                          f"unexpected error: {type(exc).__name__}: {exc}")
            if os.environ.get("SCRM_DEBUG"):
                raise
            err.print(f"[bold red]unexpected error[/] in `scrm {command}`: "
                      f"{type(exc).__name__}: {escape(str(exc))}\nRerun with SCRM_DEBUG=1 for the traceback "
                      "and please report it.", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        _note_failure(command, kwargs.get("root"), None)
        err.print(f"[dim]{command} finished in {time.perf_counter() - t0:.1f}s[/]")
        return result

    return wrapper


def _note_failure(command: str, root: Path | None, message: str | None) -> None:
    """Leave (``message``) or clear (None) the failure note of a pipeline stage, for the report.
    Best effort: a failure to write the note never hides the stage's own error."""
    from . import status

    stage = status.stage_of(command)
    if stage is None:
        return
    try:
        paths = get_paths(root)
        if message is None:
            status.clear_failure(paths, stage)
        else:
            status.record_failure(paths, stage, message)
    except Exception:  # noqa: BLE001, S110 - the stage's own message is what matters
        pass


def _summary(title: str, metrics: dict[str, Any], keys: list[str] | None = None) -> None:
    shown = {k: metrics[k] for k in (keys or list(metrics)) if k in metrics}
    out.print(f"[bold]{title}[/]")
    if metrics.get("status") not in (None, "ok"):  # no data / skipped: say why before any number
        out.print(f"  status: {metrics['status']} ({metrics.get('reason')})", highlight=False)
    for k, v in shown.items():
        out.print(f"  {k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}",
                  highlight=False)


@app.command()
@_stage
def fetch(
    source: Annotated[str | None, typer.Option(help="sample (real rows shipped in the repo), kaggle "
                                               "(download the full file), file (your own copy) or "
                                               "synthetic (generated, real shape). Default: "
                                               "params.yaml fetch.source.")] = None,
    path: Annotated[Path | None, typer.Option(help="with --source file: your twcs.csv (default: "
                                              "params.yaml fetch.path)")] = None,
    rows: Annotated[int | None, typer.Option(help="with --source synthetic: rows to generate "
                                             "(default: params.yaml fetch.rows)")] = None,
    seed: Annotated[int | None, typer.Option(help="with --source synthetic: random seed (default: "
                                             "params.yaml fetch.seed)")] = None,
    root: RootOpt = None,
) -> None:
    """Put a checked twcs.csv into data/raw/ (atomically: never a half-written file)."""
    from .data import fetch as f

    paths = get_paths(root)
    options = {"source": source, "path": str(path.expanduser().resolve()) if path else None,
               "rows": rows, "seed": seed}
    settings = load_settings(root).fetch.replace(**{k: v for k, v in options.items()
                                                    if v is not None})
    info = f.run(paths, settings)
    _summary(f"fetched {paths.raw_csv}", info, ["source", "rows", "bytes", "sha256"])


@app.command()
@_stage
def prepare(root: RootOpt = None) -> None:
    """Parse + validate the raw CSV (bad rows -> quarantine.csv with reasons) and rebuild threads."""
    from .data import prepare as p

    paths = get_paths(root)
    with err.status("parsing, validating and threading tweets..."):
        settings = load_settings(root)
        m = p.run(paths, settings.prepare, settings.openings)
    _summary("prepare", m, ["rows_in", "rows_clean", "rows_quarantined", "quarantine_by_reason",
                            "tweets", "brands", "threads", "openings", "answered_openings",
                            "dangling_references", "branching_threads", "cycles_broken"])
    if m["rows_quarantined"]:
        out.print(f"  quarantined rows with reasons: {paths.quarantine}")


@app.command()
@_stage
def sentiment(root: RootOpt = None) -> None:
    """Score every customer and brand tweet once (params sentiment.scorer) -> sentiment.parquet."""
    from . import sentiment as sm

    paths = get_paths(root)
    with err.status("scoring sentiment..."):
        m = sm.run(paths, load_settings(root).sentiment)
    _summary("sentiment", m, ["scorer", "tweets_scored", "by_role"])


@app.command("response-time")
@_stage
def response_time(root: RootOpt = None) -> None:
    """Latency of brand replies: service table, Kaplan-Meier curves, drivers models (MLflow).

    Reads the opening table (scrm prepare) and the sentiment scores (scrm sentiment). Writes
    data/processed/response_time.parquet (one row per opening: features, latency, censoring),
    service_table.parquet (per brand, with intervals), response_time_sensitivity.parquet (per
    answered definition), response_time_pairwise.parquet (brand pairs, Holm), reports/metrics/
    response_time.json, reports/plots/{latency_by_brand,km_curves,within_1h_calibration}.csv
    (`dvc plots show`) and reports/figures/response_time_importance.png; runs go to the MLflow
    experiment response_time.
    """
    from . import response_time as rt

    paths = get_paths(root)
    settings = load_settings(root)
    with err.status("measuring response times, fitting survival curves and models..."):
        m = rt.run(paths, settings.response_time, settings.openings)
    _summary("openings", m["openings"], ["answered_definition", "openings", "answered",
                                         "unanswered", "requests", "non_requests"])
    _summary(f"response time ({m['population']})", m["overall"],
             ["n_openings", "answered_share", "km_median_min", "rmst_min", "median_latency_min",
              "share_within_15m", "share_within_1h", "share_within_24h"])
    models = {f"{task}/{name}": {k: v.get(k) for k in ("auc", "auc_ci_low", "auc_ci_high", "brier",
                                                       "mae_minutes", "r2_log", "vs_baseline",
                                                       "reason") if k in v}
              for task, group in m["models"].items() if task != "cox"
              for name, v in group.items()}
    models["cox"] = {k: m["models"]["cox"].get(k) for k in ("c_index", "c_index_ci_low",
                                                            "c_index_ci_high", "reason")
                     if k in m["models"]["cox"]}
    _summary("models (test split)", models)
    out.print(f"  service table: {paths.service_table}")


@app.command()
@_stage
def outcome(root: RootOpt = None) -> None:
    """The customer's state measured from text (validated on hand labels), recovery, silence, and
    what in the first reply goes with them."""
    from . import outcome as oc

    paths = get_paths(root)
    with err.status("fitting the state measure, labelling threads, fitting outcome models..."):
        settings = load_settings(root)
        m = oc.run(paths, settings.outcome, settings.sentiment, settings.embed)
    model = m.get("model", {})
    aucs = {k: v.get("oof_auc") for k, v in model.get("models", {}).items()}
    test = m.get("sealed_test") or {}
    validity = {f: {"measure": test[f]["macro_f1"]["a"], "baseline": test[f]["macro_f1"]["b"]}
                for f in ("opening_state", "end_state") if f in test}
    _summary("outcome", {**m, "sealed_test_macro_f1": validity or test.get("skipped"),
                         "recovery_model": {"n": model.get("n"), "n_positive": model.get("n_positive"),
                                            "oof_auc": aucs, "skipped": model.get("skipped")}},
             ["threads", "labels", "sealed_test_macro_f1", "recovery_rate", "silence",
              "recovery_model"])
    out.print(f"  per thread: {paths.outcome}; findings: {paths.outcome_findings}")


@app.command()
@_stage
def complaints(root: RootOpt = None) -> None:
    """Weak complaint labels from the taxonomy's labelling functions, scored on the gold set."""
    from .complaints import weak_labels

    paths = get_paths(root)
    m = weak_labels.run(paths, load_settings(root).complaints)
    g = m.get("gold") or {}
    _summary("complaint labels", {**m, **{f"gold_{k}": v for k, v in g.items() if k != "file"}},
             ["openings", "n_lfs", "coverage", "abstained", "conflict_rate", "label_source",
              "gold_n", "gold_coverage", "gold_accuracy_covered", "gold_accuracy_overall",
              "gold_macro_f1"])
    out.print(f"  per-LF coverage/overlaps/conflicts/precision: {paths.lf_summary}",
              highlight=False)


@app.command()
@_stage
def embed(root: RootOpt = None) -> None:
    """Embed customer openings once (minilm or tfidf_svd backend) and cache them for topics."""
    from .complaints import embed as em

    cfg = load_settings(root)
    m = em.run(get_paths(root), cfg.embed, ray_settings=cfg.ray)
    _summary("embeddings", m)


@app.command()
@_stage
def topics(root: RootOpt = None) -> None:
    """BERTopic topics of customer openings (offline), with quality metrics and figures."""
    from .complaints import topics as tp

    m = tp.run(get_paths(root), load_settings(root).topics)
    st = m.get("stability") or {}
    _summary("topics", {**m, "collapsed": (m["collapse"] or {}).get("collapsed"),
                        "stability": {k: st[k] for k in ("n_topics", "ari", "word_overlap")
                                      if k in st} or st.get("note")},
             ["backend", "docs", "hdbscan", "n_topics", "largest_topic_share", "collapsed",
              "outliers", "diversity", "coherence_npmi", "stability", "taxonomy", "figures"])


@app.command()
@_stage
def benchmark(
    models: Annotated[str | None, typer.Option(help="comma-separated zoo names, e.g. logreg,linsvc "
                                               "(default: params benchmark.models, else all)")]
    = None,
    splits: Annotated[str | None, typer.Option(help="comma-separated: stratified,time,brand "
                                               "(default: params benchmark.splits)")] = None,
    protocols: Annotated[str | None, typer.Option(help="comma-separated: weak_to_gold,gold_cv,"
                                                  "weak_on_weak (default: params "
                                                  "benchmark.protocols)")] = None,
    log_models: Annotated[str | None, typer.Option(help="log fitted pipelines to MLflow: all, best "
                                                   "or none (default: params)")] = None,
    mlflow: Annotated[bool | None, typer.Option("--mlflow/--no-mlflow", help="track runs in MLflow "
                                                "(default: params benchmark.mlflow.enabled)")]
    = None,
    root: RootOpt = None,
) -> None:
    """Text-classifier benchmark: every model under each protocol (and split), tracked in MLflow.

    Options override params.yaml for an ad-hoc run (outputs are rewritten for that selection)."""
    from .complaints.benchmark import stage as bm

    def _csv(v: str | None) -> list[str] | None:
        return [x.strip() for x in v.split(",") if x.strip()] if v else None

    cfg = load_settings(root)
    m = bm.run(get_paths(root), cfg.benchmark, models=_csv(models),
               splits=_csv(splits), protocols=_csv(protocols), log_models=log_models,
               mlflow=mlflow, ray_settings=cfg.ray)
    _summary("benchmark", {**m, "best": {k: v["best"] for k, v in m["sections"].items()}},
             ["best", "skipped"])


@app.command()
@_stage
def detect(root: RootOpt = None) -> None:
    """Complaint or not: named rules + learned detectors, scored on the sealed gold test (MLflow)."""
    from .complaints import detect as dt

    m = dt.run(get_paths(root), load_settings(root).detect)
    scores = {s: {d: {k: v[k] for k in ("precision", "recall", "f1", "f1_ci")}
                  for d, v in (m.get(s) or {}).get("scores", {}).items()} for s in ("dev", "test")}
    _summary("complaint detection", {**m, "scores": scores},
             ["openings", "detectors", "skipped", "champion", "scores", "registry"])


@app.command()
@_stage
def classify(
    model: Annotated[str | None, typer.Option(help="registered model: NAME, NAME@alias or "
                                              "NAME/version, e.g. scrm-complaint-detector@champion")]
    = None,
    input: Annotated[Path | None, typer.Option("--input", help="CSV with a header and one text "
                                               "per row (UTF-8)")] = None,
    output: Annotated[Path | None, typer.Option(help="CSV to write (atomically): id, label, reason, "
                                                "proba_<class> or score_<class>")] = None,
    text_column: Annotated[str, typer.Option(help="column holding the texts")] = "text",
    id_column: Annotated[str | None, typer.Option(help="column kept as the row id (default: tweet_id "
                                                  "or id when present, else the row number)")]
    = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows scored per chunk")] = 50_000,
    list_: Annotated[bool, typer.Option("--list", help="list the registered models and exit")]
    = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    root: RootOpt = None,
) -> None:
    """Score a CSV of texts with a model registered in this project's MLflow store (offline)."""
    from .complaints import classify as cl

    if list_:
        models = cl.list_models(root)
        if not models:
            out.print("no registered model yet: run `scrm detect` (or `dvc repro`) first")
        for m in models:
            aliases = ", ".join(f"@{a} -> v{v}" for a, v in m["aliases"].items()) or "no alias"
            out.print(f"{m['name']}  versions {m['versions'][0]}..{m['versions'][-1]}  {aliases}"
                      if m["versions"] else f"{m['name']}  (no version)", highlight=False)
        return
    missing = [o for o, v in (("--model", model), ("--input", input), ("--output", output)) if not v]
    if missing:
        raise ScrmError(f"scrm classify needs {', '.join(missing)} (or --list)")
    summary = cl.classify_csv(input, output, model, text_column=text_column,  # type: ignore[arg-type]
                              id_column=id_column, chunk_rows=chunk_rows, root=root,
                              show_progress=progress)
    _summary("classified", summary)


@app.command()
@_stage
def report(root: RootOpt = None) -> None:
    """Assemble reports/index.html (self-contained, opens offline) from the pipeline outputs."""
    from .report import stage

    paths = get_paths(root)
    path = stage.run(paths, load_settings(root).report)
    out.print(f"report: {path} (open it in a browser; it works offline)", highlight=False)
    out.print(f"  one HTML per figure: {paths.report_figures}", highlight=False)


synthetic_app = typer.Typer(
    name="synthetic",
    help="The synthetic twcs.csv generator: derive its parameters from the real sample, or write a "
    "file (`scrm fetch --source synthetic` writes data/raw/twcs.csv with the same generator).",
    no_args_is_help=True,
)
app.add_typer(synthetic_app)


@synthetic_app.command("derive")
@_stage
def synthetic_derive(
    csv: Annotated[Path | None, typer.Option(help="the real twcs.csv to measure (default: the "
                                             "shipped sample data/sample/twcs_head5000.csv)")]
    = None,
    write: Annotated[bool, typer.Option("--write", help="replace the generated blocks at the end "
                                        "of src/scrm/resources/synthetic_params.yaml")] = False,
    root: RootOpt = None,
) -> None:
    """Measure the generator's fitted block on the real sample; print it and the calibrated block.

    The YAML goes to stdout; --write also puts it below the marker of synthetic_params.yaml."""
    from .config import SAMPLE_CSV
    from .data import prepare, synthetic

    source = csv or SAMPLE_CSV
    tweets = prepare.threaded_tweets(source, load_settings(root).prepare)
    text = synthetic.derived_yaml(tweets, source.name)
    if write:
        err.print(f"wrote {synthetic.write_derived(text)}", highlight=False)
    typer.echo(text, nl=False)


@synthetic_app.command("generate")
@_stage
def synthetic_generate(
    path: Annotated[Path, typer.Argument(help="the CSV to write")],
    rows: Annotated[int | None, typer.Option(help="rows to generate (default: params.yaml "
                                             "fetch.rows)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed; the same rows and seed give the "
                                             "same bytes (default: params.yaml fetch.seed)")]
    = None,
    truth: Annotated[Path | None, typer.Option(help="also write the generator's ground truth per "
                                               "opening (tweet_id, brand, kind) to this parquet")]
    = None,
    root: RootOpt = None,
) -> None:
    """Write a synthetic twcs.csv of the real file's shape to PATH (deterministic for rows + seed)."""
    from .data import synthetic

    settings = load_settings(root).fetch
    info = synthetic.generate(path, rows=rows or settings.rows, seed=settings.seed if seed is None
                              else seed, truth_path=truth)
    _summary(f"generated {path}", info)


@app.command()
@_stage
def runs(experiment: Annotated[str | None, typer.Argument(help="experiment name (all if omitted)")]
         = None, root: RootOpt = None) -> None:
    """List the MLflow runs recorded in this project's tracking store."""
    from . import tracking

    mlflow = tracking.setup(root)
    exps = mlflow.search_experiments()
    for e in exps:
        if experiment and e.name != experiment:
            continue
        df = tracking.list_runs(e.name, root)
        out.print(f"[bold]{e.name}[/]: {len(df)} runs")
        for _, r in df.iterrows():
            out.print(f"  {r['run_id']}  {r.get('tags.mlflow.runName', '')}", highlight=False)
    out.print(f"store: {tracking.tracking_uri(root)}")


@app.command()
def ui(host: Annotated[str, typer.Option(help="interface to bind; 127.0.0.1 keeps it private. "
                                         "Binding 0.0.0.0 exposes every run to your network.")]
       = "127.0.0.1", port: int = 5000, root: RootOpt = None) -> None:
    """Start the MLflow UI on this project's store (loopback only by default).

    One worker (the UI needs no more, and four take a minute to start on two cores); the URL is
    printed only once the server answers. Ctrl-C stops it."""
    import os
    import subprocess

    from . import tracking
    from .progress import wait_for_url

    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] binding {escape(host)} exposes the MLflow UI beyond this machine.")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(root),
           "--host", host, "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, env=env)
    try:
        loopback = ("127.0.0.1", "localhost", "::1")
        probe = host if host in loopback else "127.0.0.1" if host in ("0.0.0.0", "::") else None
        if probe is None or wait_for_url(f"http://{probe}:{port}/health", 180) is not None:
            out.print(f"MLflow UI: http://{host}:{port}  (Ctrl-C stops it)")
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        raise typer.Exit(proc.wait()) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
