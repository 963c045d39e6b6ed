"""Full-scale pipeline benchmark: every stage on N synthetic rows of the real file's shape.

    python bench/pipeline.py                       # 2,811,774 rows -> runs/full/, bench/results/pipeline.md
    python bench/pipeline.py --rows 200000 --out bench/results/pipeline-200k.md
    python bench/pipeline.py --rows 200000 --root /tmp/r --reuse-raw --stages benchmark,detect --profile

The run has its own root (``runs/full`` by default, git-ignored), so it never clobbers the sample run.
Its params are the project's params.yaml with the ``fullscale`` section's overrides applied (dotted
keys), the same overrides ``dvc exp run -S`` would take. Each stage runs as its own process
(``scrm <stage> --root DIR``, the command of dvc.yaml), measured with ``os.wait4``: wall time, CPU time
(user + system) and peak RSS of that process. Stages that start worker processes are measured as a
process tree too (sampled every 0.2 s): its CPU seconds (the larger of the two counts is reported)
and the peak of the tree's summed RSS; CPU / wall says how busy the cores were (2.0 = both, all
the time).

``--profile`` runs each stage under cProfile (``python -m cProfile``, in the stage's own process;
its worker processes profile each call they run, ``scrm.parallel.Profiled``, and their profiles are
added to the stage's) and adds "where the time goes": per stage the functions with the most
cumulative time, and the share of the stage's profiled time spent inside model-fitting libraries
(scikit-learn, statsmodels, UMAP, HDBSCAN, lifelines; MLflow apart): fitting time that only a
different method, not faster code, removes. A stage with workers has more profiled seconds than wall seconds: the
processes' profiles add up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pstats
import shutil
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
TARGETS = {"total_wall_s": 5 * 60, "peak_rss_gib": 4.0}
# the model libraries: their own time and their helpers' counts as inside them (self_time_by_library)
MODEL_LIBS = ("sklearn", "statsmodels", "umap", "hdbscan", "lifelines", "mlflow")
TOP_FUNCTIONS = 12
RESULTS_FILE = "bench-results.json"  # the run's measurements, for --report-only


def apply_overrides(params: dict, overrides: dict) -> dict:
    """Set dotted keys (``embed.backend: tfidf_svd``) in a nested params dict."""
    for dotted, value in (overrides or {}).items():
        node = params
        *parents, leaf = str(dotted).split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return params


def stage_commands(rows: int, seed: int) -> list[tuple[str, list[str]]]:
    """The stages of dvc.yaml in order, as argv lists (fetch gets the synthetic source)."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, st in stages.items():
        argv = shlex.split(st["cmd"])
        if name == "fetch":
            argv += ["--source", "synthetic", "--rows", str(rows), "--seed", str(seed)]
        out.append((name, argv))
    return out


class TreeSampler:
    """Polls a process and its descendants: the peak of their summed RSS and each one's last seen
    CPU seconds (children that are never waited for do not reach ``os.wait4``'s count)."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        import threading

        self.pid, self.every_s = pid, every_s
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            rss = 0
            for pr in procs:
                try:
                    rss += pr.memory_info().rss
                    ct = pr.cpu_times()
                    self.cpu[pr.pid] = ct.user + ct.system
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_stage(argv: list[str], root: Path, log: Path, profile: Path | None = None
              ) -> dict[str, float]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [*argv, "--root", str(root)]
    if profile is not None:  # the console script under cProfile (it swallows the exit code)
        script = shutil.which(cmd[0], path=env["PATH"]) or cmd[0]
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), script, *cmd[1:]]
        shutil.rmtree(worker_profiles(profile), ignore_errors=True)
        env["SCRM_PROFILE_DIR"] = str(worker_profiles(profile))  # scrm.parallel.PROFILE_DIR_ENV
    t0 = time.perf_counter()
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        _, status, ru = os.wait4(proc.pid, 0)
        sampler.stop()
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if profile is not None and code == 0 and not profile.exists():
        code = 1
    cpu = max(ru.ru_utime + ru.ru_stime, sum(sampler.cpu.values()))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": ru.ru_maxrss / 2**20,
            "tree_rss_gib": max(sampler.peak_rss, ru.ru_maxrss * 1024) / 2**30, "exit": code}


def _short(func: tuple[str, int, str]) -> str:
    """``package/module.py:line(name)`` from a pstats key, site-packages and the project cut off."""
    file, line, name = func
    for cut in ("site-packages/", "/src/", str(PROJECT) + "/"):
        if cut in file:
            file = file.split(cut, 1)[1]
    return f"{file}:{line}({name})" if line else name


def _lib(file: str) -> str | None:
    parts = Path(file).parts
    return next((lib for lib in MODEL_LIBS if lib in parts), None)


def _is_wait(func: tuple[str, int, str]) -> bool:
    """A lock wait: in a stage with workers, its own process waiting for them."""
    return func[0] == "~" and "acquire" in func[2] and "_thread.lock" in func[2]


def worker_profiles(profile: Path) -> Path:
    """Where the stage's worker processes leave their profiles (``<stage>.workers/``)."""
    return profile.with_suffix(".workers")


def _ours(file: str) -> bool:
    return "/scrm/" in file or str(PROJECT) in file


# scikit-learn's code that is not fitting or scoring a model: text vectorizing (Python string work)
# and fold splitting (a Python loop). Identical outputs do not pin its speed (an exact faster
# version is possible: scrm.stats.group_folds, scrm.outcome.template_counts), so the strict floor
# leaves it out.
NOT_MODEL_FITTING = ("sklearn/feature_extraction/", "sklearn/model_selection/")


def _fit_lib(file: str) -> str | None:
    """The model library of ``file`` when it is model fitting or scoring proper."""
    return None if any(part in file for part in NOT_MODEL_FITTING) else _lib(file)


def self_time_by_library(raw: dict, classify: Any = None) -> dict[str, float]:
    """Seconds spent inside each model library: the own time of the library's functions, plus
    the own time of the helpers they call (NumPy, SciPy's optimisers, compiled kernels, builtins),
    split among libraries by how much of each helper's time each caller accounts for. Our own code
    counts for no library, so its helpers' time stays outside. Every profiled second is counted
    at most once, so the shares add up to at most 100 %. ``classify``: a file's library (default
    :func:`_lib`; :func:`_fit_lib` counts model fitting and scoring only)."""
    classify = classify or _lib
    share: dict = {}
    for func in raw:
        lib = classify(func[0])
        # a module's body is its import, not model work
        share[func] = {lib: 1.0} if lib and func[2] != "<module>" else {}
    for _ in range(12):  # propagate library context down the call graph (depth 12 is ample)
        for func, (_, _, _, ct, callers) in raw.items():
            if _lib(func[0]) or _ours(func[0]) or not callers or func[2] == "<module>":
                continue  # a library's own function (its context set above), or ours
            total = sum(c[3] for c in callers.values()) or 1e-12
            mix: dict[str, float] = {}
            for caller, c in callers.items():
                for lib, w in share.get(caller, {}).items():
                    mix[lib] = mix.get(lib, 0.0) + w * c[3] / total
            share[func] = mix
    inside: dict[str, float] = dict.fromkeys(MODEL_LIBS, 0.0)
    for func, (_, _, tt, _, _) in raw.items():
        for lib, w in share[func].items():
            inside[lib] += tt * min(w, 1.0)
    return inside


def profile_summary(path: Path) -> dict:
    """Top functions by cumulative and by own time, and the time inside each model library
    (:func:`self_time_by_library`, all of it and model fitting only). The stage's own process and
    its workers' profiles together."""
    workers = sorted(worker_profiles(path).glob("*.prof"))
    # the stage's process waiting for its workers is wall time the workers' profiles hold already
    waiting = 0.0
    if workers:
        own = pstats.Stats(str(path)).stats
        waiting = sum(v[2] for f, v in own.items() if _is_wait(f))
    st = pstats.Stats(str(path), *map(str, workers))
    raw = st.stats  # func -> (cc, nc, tt, ct, callers{func: (cc, nc, tt, ct)})
    total = max(st.total_tt - waiting, 1e-9)
    inside = self_time_by_library(raw)
    fitting = self_time_by_library(raw, _fit_lib)
    # the CLI's dispatch frames (typer, click, the cli wrapper) carry the whole stage: not news
    skip = ("<built-in method builtins.exec>", "<module>", "<frozen ", "typer/", "click/",
            "scrm/cli.py:", "cProfile")
    top = sorted(((v[3], v[2], func) for func, v in raw.items()), key=lambda x: -x[0])
    rows = [(ct, tt, _short(f)) for ct, tt, f in top
            if not any(s in _short(f) for s in skip) and f[2] not in ("<module>", "main")]
    # the most own time: where the CPU actually goes (compiled kernels show up here by name)
    own = sorted(((v[2], v[3], func) for func, v in raw.items()
                  if not (workers and _is_wait(func))),
                 key=lambda x: -x[0])
    own_rows = [(ct, tt, _short(f)) for tt, ct, f in own[:TOP_FUNCTIONS]]
    return {"total_s": total, "inside": inside, "top": rows[:TOP_FUNCTIONS], "own": own_rows,
            "worker_calls": len(workers), "waiting_s": waiting, "fitting": fitting}


def machine() -> str:
    import psutil

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_811_774)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--root", type=Path, default=PROJECT / "runs" / "full")
    ap.add_argument("--out", type=Path, default=PROJECT / "bench" / "results" / "pipeline.md")
    ap.add_argument("--reuse-raw", action="store_true",
                    help="skip fetch when ROOT/data/raw/twcs.csv already has the rows")
    ap.add_argument("--stages", default="",
                    help="comma-separated dvc.yaml stage names to run (default: all); the others' "
                         "outputs must already be in ROOT")
    ap.add_argument("--profile", action="store_true",
                    help="run each stage under cProfile and report where the time goes")
    ap.add_argument("--report-only", action="store_true",
                    help="write the report again from ROOT's last measurements "
                         "(bench-results.json) and profiles, running nothing")
    args = ap.parse_args()
    if args.report_only:
        root = args.root.resolve()
        saved = json.loads((root / RESULTS_FILE).read_text())
        for r in saved:
            prof = root / "profiles" / f"{r['stage']}.prof"
            if args.profile and prof.exists():
                r["profile"] = profile_summary(prof)
        write_report(args, saved, root)
        return 0

    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params = apply_overrides(params, params.get("fullscale", {}).get("overrides", {}))
    params["fetch"].update(source="synthetic", rows=args.rows, seed=args.seed)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the pipeline reads a few repository files (gold set, taxonomy) relative to the project
    log = root / "bench.log"
    log.write_text("")
    commands = stage_commands(args.rows, args.seed)
    wanted = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(wanted) - {n for n, _ in commands})
    if unknown:
        ap.error(f"--stages: {unknown} not in dvc.yaml ({', '.join(n for n, _ in commands)})")
    prof_dir = root / "profiles"
    if args.profile:
        prof_dir.mkdir(exist_ok=True)
    results = []
    for name, argv in commands:
        if wanted and name not in wanted:
            continue
        if name == "fetch" and args.reuse_raw and (root / "data" / "raw" / "twcs.csv").exists():
            print(f"{name:>14}: reused existing raw file", flush=True)
            continue
        print(f"{name:>14}: running ...", flush=True)
        prof = prof_dir / f"{name}.prof" if args.profile else None
        if prof is not None:
            prof.unlink(missing_ok=True)
        r = run_stage(argv, root, log, prof)
        r["stage"] = name
        if prof is not None and prof.exists():
            r["profile"] = profile_summary(prof)
        results.append(r)
        (root / RESULTS_FILE).write_text(json.dumps(
            [{k: v for k, v in x.items() if k != "profile"} for x in results], indent=1))
        print(f"{name:>14}: {r['wall_s']:8.1f} s wall {r['cpu_s']:8.1f} s cpu "
              f"{r['cpu_s'] / max(r['wall_s'], 1e-9):5.2f} cpu/wall "
              f"{r['peak_rss_gib']:6.2f} GiB peak ({r['tree_rss_gib']:.2f} all processes)  "
              f"exit {r['exit']}", flush=True)
        if r["exit"] != 0:
            print(f"stage {name} failed; see {log}", file=sys.stderr)
            break
    write_report(args, results, root)
    return 0 if results and all(r["exit"] == 0 for r in results) else 1


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def write_report(args: argparse.Namespace, results: list[dict], root: Path) -> None:
    total_wall = sum(r["wall_s"] for r in results)
    total_cpu = sum(r["cpu_s"] for r in results)
    peak = max((r["tree_rss_gib"] for r in results), default=0.0)
    stages = ", ".join(r["stage"] for r in results)
    cmd = f"python bench/pipeline.py --rows {args.rows}" + (
        f" --stages {args.stages}" if args.stages else "") + (" --profile" if args.profile else "")
    lines = [
        f"# Full-scale pipeline benchmark ({args.rows:,} synthetic rows)",
        "",
        f"Machine: {machine()}. Command: `{cmd}` "
        f"(root `{root.relative_to(PROJECT) if root.is_relative_to(PROJECT) else root}`).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
        f"{_load()}. Stages: {stages}.",
        "",
        "CPU s: user + system of the stage's process and its workers; CPU/wall: cores kept busy "
        "(2.0 = both, the whole time); peak RSS: the largest process / all its processes at once.",
        "",
        "| stage | wall s | CPU s | CPU/wall | peak RSS GiB | all processes GiB | input rows/s | exit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = args.rows / r["wall_s"] if r["wall_s"] > 0 else 0
        lines.append(f"| {r['stage']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['cpu_s'] / max(r['wall_s'], 1e-9):.2f} | {r['peak_rss_gib']:.2f} | "
                     f"{r['tree_rss_gib']:.2f} | {rate:,.0f} | {r['exit']} |")
    lines += [f"| **total** | **{total_wall:.1f}** | **{total_cpu:.1f}** | "
              f"{total_cpu / max(total_wall, 1e-9):.2f} | | **{peak:.2f}** | "
              f"{args.rows / total_wall if total_wall else 0:,.0f} | |", "",
              "Targets (2 cores / 24 GiB): whole pipeline <= 5 min "
              f"({'met' if total_wall <= TARGETS['total_wall_s'] else 'MISSED'}: "
              f"{total_wall / 60:.1f} min wall; {total_cpu / 60:.1f} CPU-min, so at least "
              f"{total_cpu / 120:.1f} min on 2 cores), peak RSS < 4 GiB "
              f"({'met' if peak < TARGETS['peak_rss_gib'] else 'MISSED'}: {peak:.2f} GiB, all "
              "processes of a stage).", ""]
    lines += where_the_time_goes(results)
    lines += benchmark_fits(root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def where_the_time_goes(results: list[dict]) -> list[str]:
    """The profile section: per stage, model-library share and the top functions."""
    profiled = [r for r in results if "profile" in r]
    if not profiled:
        return []
    lines = ["## Where the time goes (cProfile of each stage's process and its workers)", "",
             "Profiled seconds include the profiler's overhead (large for many small Python calls, "
             "small inside compiled code, so the model libraries' shares are if anything too "
             "low); shares are what count. A stage's worker processes add their profiles (calls "
             "run in workers; the stage's own process waiting for them is left out), so profiled "
             "seconds can exceed wall seconds. \"in model libraries\": the own time of "
             f"{', '.join(MODEL_LIBS)}'s functions and of the helpers they call (NumPy, SciPy, "
             "compiled kernels), each profiled second counted once.", "",
             "| stage | profiled s | worker calls profiled | in model libraries | by library |",
             "|---|---:|---:|---:|---|"]
    for r in profiled:
        pr = r["profile"]
        inside = sum(pr["inside"].values())
        libs = ", ".join(f"{k} {v / pr['total_s']:.0%}" for k, v in
                         sorted(pr["inside"].items(), key=lambda kv: -kv[1]) if v > 0)
        lines.append(f"| {r['stage']} | {pr['total_s']:.1f} | {pr['worker_calls']} | "
                     f"{inside / pr['total_s']:.0%} | {libs or '-'} |")
    lines += model_work_floor(profiled)
    for r in profiled:
        pr = r["profile"]
        lines += ["", f"### {r['stage']}", "", "| cumulative s | own s | function |",
                  "|---:|---:|---|"]
        lines += [f"| {ct:.1f} | {tt:.1f} | `{name}` |" for ct, tt, name in pr["top"]]
        lines += ["", "Most own time:", "", "| own s | cumulative s | function |",
                  "|---:|---:|---|"]
        lines += [f"| {tt:.1f} | {ct:.1f} | `{name}` |" for ct, tt, name in pr["own"]]
    return lines


# model fitting and scoring proper (MLflow's logging is not: it writes no output the runs compare)
FIT_LIBS = tuple(lib for lib in MODEL_LIBS if lib != "mlflow")


def model_work_floor(profiled: list[dict]) -> list[str]:
    """What the model libraries alone cost: per stage its CPU seconds times the profiled share
    inside :data:`FIT_LIBS`, and stricter, inside their model fitting and scoring only (not text
    vectorizing or fold splitting, :data:`NOT_MODEL_FITTING`). Those fits (their inputs, settings
    and seeds fixed by params) are what identical outputs pin; faster code of ours removes none of
    it. The profiler inflates many small Python calls far more than compiled library code, so
    these shares, and the floor, are if anything too low."""
    rows, total, strict = [], 0.0, 0.0
    for r in profiled:
        pr = r["profile"]
        share = sum(pr["inside"][lib] for lib in FIT_LIBS) / pr["total_s"]
        fit_share = sum(pr["fitting"][lib] for lib in FIT_LIBS) / pr["total_s"]
        total += share * r["cpu_s"]
        strict += fit_share * r["cpu_s"]
        rows.append(f"| {r['stage']} | {r['cpu_s']:.1f} | {share:.0%} | {share * r['cpu_s']:.1f} | "
                    f"{fit_share:.0%} | {fit_share * r['cpu_s']:.1f} |")
    return ["", "### The floor: model-library work", "",
            f"CPU s (measured, profiler included) times the profiled share inside "
            f"{', '.join(FIT_LIBS)}; \"fitting only\" leaves out scikit-learn's text vectorizing "
            "and fold splitting (Python code an exact faster version can replace).", "",
            "| stage | CPU s | share in model libraries | CPU s | share in model fitting only "
            "| CPU s |", "|---|---:|---:|---:|---:|---:|", *rows,
            f"| **total** | | | **{total:.1f}** | | **{strict:.1f}** |", "",
            f"Model fitting and scoring alone: {strict:.0f} CPU-s ({total:.0f} with text "
            f"vectorizing and fold splitting), so at least {strict / 120:.1f} min on 2 cores even if "
            "everything else took no time and both cores were always busy (target: "
            f"{TARGETS['total_wall_s'] / 60:.0f} min)."]


def benchmark_fits(root: Path) -> list[str]:
    """Where the benchmark's time goes, from its own leaderboard: per section the training rows and
    each model's fit + predict seconds on them (the final fit; choosing the grid point fits every
    point again on each inner fold, so the stage's CPU is a multiple of these). The TF-IDF block
    is fitted once per training set and its seconds charged to every model that reads it."""
    import polars as pl

    csv = root / "reports" / "benchmark.csv"
    params = yaml.safe_load((root / "params.yaml").read_text())["benchmark"]
    if not csv.exists():
        return []
    lb = pl.read_csv(csv).filter(pl.col("kind") == "learned")
    if lb.height == 0:
        return []
    zoo = params["zoo"]
    variants = lb["variant"].unique(maintain_order=True).to_list()
    seconds = {(m, v): s for m, v, s in lb.select(
        "model", "variant", pl.col("fit_s") + pl.col("predict_s")).iter_rows()}
    lines = ["## Where the benchmark's time goes (its leaderboard)", "",
             f"Every section fits each model once on its training rows and, to choose the grid point "
             f"on validation folds inside them, once per grid point on each of "
             f"{params['inner_folds']} inner folds: fits per model per section = 1 + "
             f"{params['inner_folds']} x grid points. Seconds: the final fit + predict "
             "(`fit_s + predict_s` of `reports/benchmark.csv`, the shared TF-IDF block charged to "
             "each model reading it).", "",
             "| model | grid points | fits per section | " + " | ".join(f"{v} s" for v in variants)
             + " |", "|---|---:|---:|" + "---:|" * len(variants)]
    for model in lb["model"].unique(maintain_order=True):
        grid = zoo.get(model, {}).get("grid") or {}
        points = math.prod(len(values) for values in grid.values()) if grid else 0
        fits = 1 + params["inner_folds"] * points
        cells = [f"{seconds[(model, v)]:.1f}" if (model, v) in seconds else "-" for v in variants]
        lines.append(f"| {model} | {points} | {fits} | " + " | ".join(cells) + " |")
    n_train = ", ".join(f"{v}: {n:,}" for v, n in
                        lb.group_by("variant", maintain_order=True).agg(pl.col("n_train").first())
                        .iter_rows())
    lines += ["", f"Training rows per section: {n_train}.", ""]
    return lines


if __name__ == "__main__":
    sys.exit(main())
