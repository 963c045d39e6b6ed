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
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success rename it over ``target``, else delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(target: Path | str, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path | str, obj: Any) -> Path:
    """Deterministic JSON (sorted keys, fixed float repr) so identical runs give identical bytes."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


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
    """Write a polars or pandas frame to parquet atomically."""
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


def cleanup_stale_tmp(folder: Path | str) -> int:
    """Delete temp files left by a killed run (they are never read by any stage)."""
    n = 0
    folder = Path(folder)
    if folder.exists():
        for p in folder.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n
