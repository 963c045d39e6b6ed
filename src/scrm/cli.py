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

from .config import get_paths, load_params
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
        try:
            result = fn(*args, **kwargs)
        except ScrmError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: no partial output was kept (writes are atomic).")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("SCRM_DEBUG"):
                raise
            err.print(f"[bold red]unexpected error[/] in `scrm {fn.__name__.replace('_', '-')}`: "
                      f"{type(exc).__name__}: {exc}\nRerun with SCRM_DEBUG=1 for the traceback "
                      "and please report it.", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        err.print(f"[dim]{fn.__name__.replace('_', '-')} finished in "
                  f"{time.perf_counter() - t0:.1f}s[/]")
        return result

    return wrapper


def _summary(title: str, metrics: dict[str, Any], keys: list[str] | None = None) -> None:
    shown = {k: metrics[k] for k in (keys or list(metrics)) if k in metrics}
    out.print(f"[bold]{title}[/]")
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
    path: Annotated[Path | None, typer.Option(help="with --source file: your twcs.csv")] = None,
    rows: Annotated[int | None, typer.Option(help="with --source synthetic: rows to generate")] = None,
    seed: Annotated[int | None, typer.Option(help="with --source synthetic: random seed")] = None,
    root: RootOpt = None,
) -> None:
    """Put a checked twcs.csv into data/raw/ (atomically: never a half-written file)."""
    from .data import fetch as f

    paths = get_paths(root)
    info = f.run(paths, load_params(root), source=source, path=str(path) if path else None,
                 rows=rows, seed=seed)
    _summary(f"fetched {paths.raw_csv}", info, ["source", "rows", "bytes", "sha256"])


@app.command()
@_stage
def prepare(root: RootOpt = None) -> None:
    """Parse + validate the raw CSV (bad rows -> quarantine.csv with reasons) and rebuild threads."""
    from .data import prepare as p

    paths = get_paths(root)
    with err.status("parsing, validating and threading tweets..."):
        m = p.run(paths, load_params(root))
    _summary("prepare", m, ["rows_in", "rows_clean", "rows_quarantined", "quarantine_by_reason",
                            "tweets", "brands", "threads", "openings", "answered_openings",
                            "dangling_references", "branching_threads", "cycles_broken"])
    if m["rows_quarantined"]:
        out.print(f"  quarantined rows with reasons: {paths.quarantine}")


@app.command("response-time")
@_stage
def response_time(root: RootOpt = None) -> None:
    """Latency of brand replies: service table, Kaplan-Meier curves, drivers models (MLflow)."""
    from . import response_time as rt

    m = rt.run(get_paths(root), load_params(root))
    _summary("response time", m.get("overall", m))


@app.command()
@_stage
def outcome(root: RootOpt = None) -> None:
    """Sentiment trajectories, the unhappy->happy label and what in replies predicts recovery."""
    from . import outcome as oc

    m = oc.run(get_paths(root), load_params(root))
    _summary("outcome", m, ["threads", "labels", "model"])


@app.command()
@_stage
def complaints(root: RootOpt = None) -> None:
    """Weak complaint labels from the taxonomy's labelling functions, scored on the gold set."""
    from .complaints import labels

    m = labels.run(get_paths(root), load_params(root))
    _summary("complaint labels", m, ["openings", "coverage", "gold"])


@app.command()
@_stage
def embed(root: RootOpt = None) -> None:
    """Embed customer openings once (minilm or tfidf_svd backend) and cache them for topics."""
    from .complaints import embeddings

    m = embeddings.run(get_paths(root), load_params(root))
    _summary("embeddings", m)


@app.command()
@_stage
def topics(root: RootOpt = None) -> None:
    """BERTopic topics of customer openings (offline), with quality metrics and figures."""
    from .complaints import topics as tp

    m = tp.run(get_paths(root), load_params(root))
    _summary("topics", m, ["n_topics", "outlier_share", "diversity", "coherence_npmi"])


@app.command()
@_stage
def benchmark(root: RootOpt = None) -> None:
    """Text-classifier benchmark: every model x split x label source, tracked in MLflow."""
    from .complaints import benchmark as bm

    m = bm.run(get_paths(root), load_params(root))
    _summary("benchmark", m, ["runs", "best"])


@app.command()
@_stage
def report(root: RootOpt = None) -> None:
    """Assemble reports/index.html (self-contained, opens offline) from the pipeline outputs."""
    from . import report as rp

    path = rp.run(get_paths(root), load_params(root))
    out.print(f"report: {path}")


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
    """Start the MLflow UI on this project's store (loopback only by default)."""
    import subprocess

    from . import tracking

    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] binding {host} exposes the MLflow UI beyond this machine.")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(root),
           "--host", host, "--port", str(port)]
    raise typer.Exit(subprocess.call(cmd))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
