"""Atomic writes and content hashes.

Every output is written to a temporary file in the same folder and renamed over the target in one
``os.replace``: an interrupted run leaves either the old file or nothing, never half a file that a
later stage would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; outputs get the usual permissions instead
_FILE_MODE = 0o666 & ~_current_umask()


def _mkstemp_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success rename it over ``target``, else delete it."""
    target = Path(target)
    tmp_path = _mkstemp_beside(target)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_paths(*targets: Path | str) -> Iterator[list[Path]]:
    """Temp paths for outputs that must change together (one stage's outputs).

    On success every old target is removed, in reverse order (the metrics file, given last, goes
    first), before the first new one is renamed in, in the order given (the metrics file last): a
    run killed at any moment leaves the complete old set, or a subset of one set without its
    metrics file (a missing file, which the next stage reports), never old and new mixed.
    On error all temp files are deleted and the old targets are left as they were.
    """
    paths = [Path(t) for t in targets]
    tmps: list[Path] = []
    try:
        for target in paths:
            tmps.append(_mkstemp_beside(target))
        yield tmps
        for tmp in tmps:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        for target in reversed(paths):
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        for tmp, target in zip(tmps, paths):
            os.replace(tmp, target)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def json_text(obj: Any) -> str:
    """Deterministic JSON (sorted keys, fixed float repr): identical runs give identical bytes."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_text(target: Path | str, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path | str, obj: Any) -> Path:
    """Deterministic JSON (sorted keys, fixed float repr) so identical runs give identical bytes."""
    return write_text(target, json_text(obj))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_parquet(df: Any, target: Path | str) -> Path:
    """Write a polars or pandas frame to parquet atomically.

    A polars column of dtype Null (no type: an empty or all-null result built from Python values)
    is refused: the next stage would fail on it far from here (:func:`scrm.data.schema.typed_frame`
    builds typed frames)."""
    if hasattr(df, "collect_schema"):
        from .data.schema import untyped_columns

        untyped = untyped_columns(df)
        if untyped:
            raise TypeError(f"{target}: column(s) {untyped} have no type (dtype Null); build the "
                            "frame with a declared schema (scrm.data.schema.typed_frame).")
    with atomic_path(target) as tmp:
        if hasattr(df, "write_parquet"):
            df.write_parquet(tmp)
        else:
            df.to_parquet(tmp, index=False)
    return Path(target)


def write_csv(df: Any, target: Path | str) -> Path:
    with atomic_path(target) as tmp:
        if hasattr(df, "write_csv"):
            df.write_csv(tmp)
        else:
            df.to_csv(tmp, index=False)
    return Path(target)


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cleanup_stale_tmp(folder: Path | str, name: str | None = None) -> int:
    """Delete temp files and folders left by a killed run (no stage ever reads them).

    ``name`` limits it to the temp files of one target (e.g. ``prepare.json`` in a folder that other
    stages write to as well).
    """
    import shutil

    n = 0
    folder = Path(folder)
    if folder.exists():
        for p in folder.glob(TMP_PREFIX + (f"{glob_escape(name)}.*" if name else "*")):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                n += 1
    return n
