"""The benchmark grid (and the embed stage) on the local engine vs on Ray, on this machine.

    python bench/ray_engine.py                  # the grid with params.yaml's benchmark settings
    python bench/ray_engine.py --quick          # a small grid (3 models, 1 CV repetition)
    python bench/ray_engine.py --num-cpus 2 --embed   # + the embed stage, both backends

A temporary run root gets the real sample's complaints table (fetch, prepare, complaints) and the
embedding cache (so the embedding model of the zoo runs too); then ``scrm.complaints.benchmark.stage
.run`` runs once with ``benchmark.engine: local`` and once with ``ray`` (MLflow off in both: its
runs are logged by the driver either way). Ray is started here first (``--num-cpus``, no
dashboard) and its start-up time is reported apart; the engine then uses that Ray as it is.

Reported per run: wall seconds, CPU seconds of this process (``resource.getrusage``), and for Ray
the CPU seconds of Ray's own processes too (raylet, GCS, workers: ``psutil`` over the children of
this process, sampled every 0.2 s so exited workers count; idle Ray processes tick during the local
runs too, which this leaves out). The metrics JSON of both runs is compared byte for
byte. Writes ``bench/results/ray.md`` (``--out``). Wall times on a machine shared with other work
are noisy: the file records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import yaml  # noqa: E402

QUICK = {("benchmark", "models"): ["dummy", "complement_nb", "logreg"],
         ("benchmark", "cv_repeats"): 1, ("benchmark", "n_boot"): 200}
QUICK_NOTE = " with --quick (3 models, 1 CV repetition, 200 bootstrap resamples)"


def set_params(root: Path, changes: dict[tuple[str, ...], Any]) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for keys, value in changes.items():
        node = params
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class RayCpu:
    """CPU seconds of every process below this one (Ray's raylet, GCS, workers), sampled every
    0.2 s in a thread so a worker that exits still counts with its last reading."""

    def __init__(self) -> None:
        import threading

        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def sample(self) -> float:
        import psutil

        for p in psutil.Process().children(recursive=True):
            try:
                t = p.cpu_times()
                self.seen[p.pid] = max(self.seen.get(p.pid, 0.0), t.user + t.system)
            except psutil.Error:
                pass
        return sum(self.seen.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def build_root(dest: Path, changes: dict[tuple[str, ...], Any]) -> Any:
    """fetch (sample), prepare, complaints and embed in a fresh root; its Paths."""
    from scrm.complaints import embed, weak_labels
    from scrm.config import Paths, load_settings
    from scrm.data import fetch, prepare

    shutil.copy(PROJECT / "params.yaml", dest / "params.yaml")
    set_params(dest, {("benchmark", "mlflow", "enabled"): False, ("embed", "progress"): False,
                      **changes})
    paths = Paths(dest).ensure()
    cfg = load_settings(dest)
    fetch.run(paths, cfg.fetch)
    prepare.run(paths, cfg.prepare, cfg.openings)
    weak_labels.run(paths, cfg.complaints.replace(track=False))
    embed.run(paths, cfg.embed)
    return paths


def timed(fn: Any) -> tuple[Any, float, float]:
    c0, t0 = cpu_self(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu_self() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 models, 1 CV repetition")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    ap.add_argument("--embed", action="store_true", help="also the embed stage, both engines")
    ap.add_argument("--out", type=Path, default=PROJECT / "bench" / "results" / "ray.md")
    args = ap.parse_args(argv)

    import ray

    from scrm.complaints import embed
    from scrm.complaints.benchmark import stage
    from scrm.config import load_settings

    load0 = os.getloadavg()
    rows: list[dict[str, Any]] = []
    same: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="scrm-bench-ray-") as tmp:
        paths = build_root(Path(tmp), QUICK if args.quick else {})
        cfg = load_settings(paths.root)
        n_cells = None
        results = {}
        cpu_ray = RayCpu()
        _, init_wall, init_cpu = timed(lambda: ray.init(
            num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING",
            log_to_driver=False))
        rows.append({"what": "Ray start-up (ray.init)", "engine": "ray", "wall": init_wall,
                     "cpu": init_cpu, "cpu_ray": cpu_ray.sample()})
        for engine in ("local", "ray"):
            s = cfg.benchmark.replace(engine=engine)
            r0 = cpu_ray.sample()
            m, wall, cpu = timed(lambda s=s: stage.run(paths, s, ray_settings=cfg.ray))
            results[engine] = paths.metric("benchmark").read_bytes()
            n_cells = sum(len(v["systems"]) for v in m["sections"].values())
            rows.append({"what": "benchmark grid", "engine": engine, "wall": wall, "cpu": cpu,
                         "cpu_ray": cpu_ray.sample() - r0 if engine == "ray" else None})
        same["benchmark.json"] = results["local"] == results["ray"]
        if args.embed:
            for backend in ("tfidf_svd", "minilm"):
                caches = {}
                for engine in ("local", "ray"):
                    e = cfg.embed.replace(backend=backend, engine=engine)
                    r0 = cpu_ray.sample()
                    _, wall, cpu = timed(lambda e=e: embed.run(paths, e, ray_settings=cfg.ray))
                    caches[engine] = paths.embeddings.read_bytes()
                    rows.append({"what": f"embed {backend}", "engine": engine, "wall": wall,
                                 "cpu": cpu,
                                 "cpu_ray": cpu_ray.sample() - r0 if engine == "ray" else None})
                same[f"embeddings.npz ({backend})"] = caches["local"] == caches["ray"]
        cpu_ray.stop()
        ray.shutdown()
    load1 = os.getloadavg()
    cmd = " ".join(["python bench/ray_engine.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"# Local engine vs Ray on this machine ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
             "", f"Command: `{cmd}`",
             "",
             f"Machine: {platform.platform()}, {os.cpu_count()} cores; Python "
             f"{platform.python_version()}, Ray {ray.__version__}; local Ray with "
             f"{args.num_cpus} CPUs. Load average before {load0[0]:.2f}, after {load1[0]:.2f} "
             "(other work on the machine inflates wall times; CPU seconds are less affected).",
             "", f"Grid: params.yaml benchmark settings{QUICK_NOTE if args.quick else ''}; "
             f"{n_cells} leaderboard rows; MLflow off.", "",
             "| what | engine | wall s | CPU s (this process) | CPU s (Ray processes) |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        ray_cpu = "" if r["cpu_ray"] is None else f"{r['cpu_ray']:.1f}"
        lines.append(f"| {r['what']} | {r['engine']} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                     f"{ray_cpu} |")
    lines += ["", "Identical outputs (bytes): "
              + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in same.items()), ""]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
