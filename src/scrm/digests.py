"""Digests of a run root's outputs and the comparison of two roots: the check that a change made
for speed changed no output (``bench/outputs.py`` prints them; a slow test compares the sample run's
outputs with digests recorded before such a change).

Covered: ``reports/metrics/*.json``, ``reports/plots/*.csv``, ``reports/benchmark.csv`` (without its
fit/predict seconds) and every parquet / csv / npz under ``data/interim`` and ``data/processed``. A
parquet file is digested by its content (schema and values written as uncompressed Arrow IPC), so a
change of the parquet codec alone is not a change of output; an npz by its arrays (the zip carries
file times); every other file by its bytes. :func:`compare` also reports, for frames or JSON
documents that differ only in floats, the largest absolute difference, so a change of summation
order can be shown to stay below a stated bound.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import polars as pl

def outputs(root: Path) -> list[Path]:
    """Every covered output under ``root`` (its :class:`~scrm.paths.Paths` layout), sorted by its
    path relative to the root."""
    from .paths import Paths

    p = Paths(root)
    where = [(p.metrics, "*.json"), (p.plots, "*.csv"), (p.interim, "*.parquet"),
             (p.interim, "*.csv"), (p.processed, "*.parquet"), (p.processed, "*.csv"),
             (p.processed, "*.npz")]
    found = {f for folder, pattern in where for f in folder.glob(pattern) if f.is_file()}
    if p.benchmark_csv.is_file():
        found.add(p.benchmark_csv)
    return sorted(found, key=lambda f: f.relative_to(root).as_posix())


def frame_digest(frame: pl.DataFrame) -> str:
    """sha256 of the frame's schema and values (uncompressed Arrow IPC)."""
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def arrays_digest(path: Path) -> str:
    """An ``.npz`` by its arrays (names, dtypes, shapes, values): the zip's own bytes carry times."""
    import numpy as np

    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(z.files):
            a = np.ascontiguousarray(z[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


# the leaderboard CSV carries each system's fit and predict seconds (never in a metrics file)
TIMING_COLUMNS = ("fit_s", "predict_s")


def digest(path: Path) -> str:
    """``frame:``/``arrays:`` content digests of parquet/npz files and of the leaderboard without
    its timing columns, else the sha256 of the bytes."""
    if path.suffix == ".parquet":
        return "frame:" + frame_digest(pl.read_parquet(path))
    if path.name == "benchmark.csv":
        frame = pl.read_csv(path, infer_schema=False)
        return "frame:" + frame_digest(frame.drop([c for c in TIMING_COLUMNS if c in frame.columns]))
    if path.suffix == ".npz":
        return "arrays:" + arrays_digest(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(root: Path) -> dict[str, str]:
    """{path relative to the root: digest} of every covered output."""
    return {p.relative_to(root).as_posix(): digest(p) for p in outputs(root)}


def _json_diff(a: Any, b: Any, where: str = "") -> tuple[float, list[str]]:
    """Largest absolute float difference and the paths that differ otherwise."""
    if isinstance(a, dict) and isinstance(b, dict):
        worst, other = 0.0, []
        if a.keys() != b.keys():
            other.append(f"{where}: keys {sorted(set(a) ^ set(b))}")
        for k in a.keys() & b.keys():
            w, o = _json_diff(a[k], b[k], f"{where}.{k}")
            worst, other = max(worst, w), other + o
        return worst, other
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return 0.0, [f"{where}: length {len(a)} vs {len(b)}"]
        worst, other = 0.0, []
        for i, (x, y) in enumerate(zip(a, b)):
            w, o = _json_diff(x, y, f"{where}[{i}]")
            worst, other = max(worst, w), other + o
        return worst, other
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, int):
        if math.isnan(a) and math.isnan(b):
            return 0.0, []
        return abs(a - b), []
    return (0.0, []) if a == b else (0.0, [f"{where}: {a!r} vs {b!r}"])


def _frame_diff(a: pl.DataFrame, b: pl.DataFrame) -> tuple[float, list[str]]:
    if a.schema != b.schema or a.height != b.height:
        return 0.0, [f"schema/height {a.schema}/{a.height} vs {b.schema}/{b.height}"]
    worst, other = 0.0, []
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype.is_float():
            d = (x - y).abs().max()
            same_null = (x.is_null() == y.is_null()).all() and (x.is_nan() == y.is_nan()).all()
            worst = max(worst, float(d or 0.0))
            if not same_null:
                other.append(f"{name}: null/NaN positions differ")
        elif not x.equals(y):
            other.append(f"{name}: values differ")
    return worst, other


def compare(a_root: Path, b_root: Path) -> list[str]:
    """Lines describing every difference between the outputs of two roots (empty: identical)."""
    da, db = digests(a_root), digests(b_root)
    lines = [f"only in {a_root}: {k}" for k in sorted(da.keys() - db.keys())]
    lines += [f"only in {b_root}: {k}" for k in sorted(db.keys() - da.keys())]
    for rel in sorted(da.keys() & db.keys()):
        if da[rel] == db[rel]:
            continue
        a, b = a_root / rel, b_root / rel
        if rel.endswith(".json"):
            worst, other = _json_diff(json.loads(a.read_text()), json.loads(b.read_text()))
        elif rel.endswith(".parquet"):
            worst, other = _frame_diff(pl.read_parquet(a), pl.read_parquet(b))
        else:
            worst, other = 0.0, ["bytes differ"]
        lines.append(f"{rel}: max float difference {worst:.3g}; other: {other[:5]}")
    return lines
