"""Full-scale pipeline benchmark: every stage on N synthetic rows of the real file's shape.

    python bench/pipeline.py                       # 2,811,774 rows -> runs/full/, bench/results/pipeline.md
    python bench/pipeline.py --rows 200000 --out bench/results/pipeline-200k.md

The run has its own root (``runs/full`` by default, git-ignored), so it never clobbers the sample run.
Its params are the project's params.yaml with the ``fullscale`` section's overrides applied (dotted
keys), the same overrides ``dvc exp run -S`` would take. Each stage runs as its own process
(``scrm <stage> --root DIR``, the command of dvc.yaml), measured with ``os.wait4``: wall time, CPU time
(user + system) and peak RSS of that process.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
TARGETS = {"total_wall_s": 20 * 60, "peak_rss_gib": 8.0, "topics_wall_s": 10 * 60}


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


def run_stage(argv: list[str], root: Path, log: Path) -> dict[str, float]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    with log.open("ab") as fh:
        proc = subprocess.Popen([*argv, "--root", str(root)], cwd=root, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_gib": ru.ru_maxrss / 2**20,
            "exit": code}


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
    args = ap.parse_args()

    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params = apply_overrides(params, params.get("fullscale", {}).get("overrides", {}))
    params["fetch"].update(source="synthetic", rows=args.rows, seed=args.seed)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the pipeline reads a few repository files (gold set, taxonomy) relative to the project
    log = root / "bench.log"
    log.write_text("")
    results = []
    for name, argv in stage_commands(args.rows, args.seed):
        if name == "fetch" and args.reuse_raw and (root / "data" / "raw" / "twcs.csv").exists():
            print(f"{name:>14}: reused existing raw file", flush=True)
            continue
        print(f"{name:>14}: running ...", flush=True)
        r = run_stage(argv, root, log)
        r["stage"] = name
        results.append(r)
        print(f"{name:>14}: {r['wall_s']:8.1f} s wall {r['cpu_s']:8.1f} s cpu "
              f"{r['peak_rss_gib']:6.2f} GiB peak  exit {r['exit']}", flush=True)
        if r["exit"] != 0:
            print(f"stage {name} failed; see {log}", file=sys.stderr)
            break
    write_report(args, results, root)
    return 0 if results and all(r["exit"] == 0 for r in results) else 1


def write_report(args: argparse.Namespace, results: list[dict], root: Path) -> None:
    total_wall = sum(r["wall_s"] for r in results)
    total_cpu = sum(r["cpu_s"] for r in results)
    peak = max((r["peak_rss_gib"] for r in results), default=0.0)
    lines = [
        f"# Full-scale pipeline benchmark ({args.rows:,} synthetic rows)",
        "",
        f"Machine: {machine()}. Command: `python bench/pipeline.py --rows {args.rows}` "
        f"(root `{root.relative_to(PROJECT) if root.is_relative_to(PROJECT) else root}`).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| stage | wall s | CPU s | peak RSS GiB | input rows/s | exit |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = args.rows / r["wall_s"] if r["wall_s"] > 0 else 0
        lines.append(f"| {r['stage']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_rss_gib']:.2f} | {rate:,.0f} | {r['exit']} |")
    lines += [f"| **total** | **{total_wall:.1f}** | **{total_cpu:.1f}** | **{peak:.2f}** | "
              f"{args.rows / total_wall if total_wall else 0:,.0f} | |", "",
              "Targets (2 cores / 24 GiB): whole pipeline < 20 min "
              f"({'met' if total_wall < TARGETS['total_wall_s'] else 'MISSED'}: {total_wall / 60:.1f} min), "
              f"peak RSS < 8 GiB ({'met' if peak < TARGETS['peak_rss_gib'] else 'MISSED'}: {peak:.2f} GiB)."]
    topics = [r for r in results if r["stage"] == "topics"]
    if topics:
        t = topics[0]["wall_s"]
        lines.append(f"BERTopic stage: {t / 60:.1f} min "
                     f"({'met' if t < TARGETS['topics_wall_s'] else 'MISSED'} < 10 min).")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
