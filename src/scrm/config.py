"""Paths and params: the one place that knows where things live.

Every path of the pipeline hangs off a *root* folder (the project root by default). A full-scale run
points ``SCRM_ROOT`` (or ``--root``) at another folder so that it never clobbers the sample run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
SAMPLE_CSV = SAMPLE_DIR / "twcs_head5000.csv"
KAGGLE_SAMPLE_CSV = SAMPLE_DIR / "kaggle_sample.csv"


@dataclass(frozen=True)
class Paths:
    """Folder layout of one pipeline run (cookiecutter-data-science v2)."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def figures(self) -> Path:
        return self.root / "reports" / "figures"

    @property
    def metrics(self) -> Path:
        return self.root / "reports" / "metrics"

    @property
    def plots(self) -> Path:
        return self.root / "reports" / "plots"

    @property
    def raw_csv(self) -> Path:
        return self.raw / "twcs.csv"

    @property
    def tweets(self) -> Path:
        return self.interim / "tweets.parquet"

    @property
    def quarantine(self) -> Path:
        return self.interim / "quarantine.csv"

    @property
    def threads(self) -> Path:
        return self.processed / "threads.parquet"

    def ensure(self) -> "Paths":
        for p in (self.raw, self.interim, self.processed, self.models, self.figures, self.metrics,
                  self.plots):
            p.mkdir(parents=True, exist_ok=True)
        return self


def default_root() -> Path:
    """``SCRM_ROOT`` if set, else the current directory when it holds a params.yaml, else the project."""
    env = os.environ.get("SCRM_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "params.yaml").exists():
        return cwd
    return PROJECT_ROOT


def get_paths(root: Path | str | None = None) -> Paths:
    return Paths(Path(root).resolve() if root else default_root())


def load_params(root: Path | str | None = None) -> dict[str, Any]:
    """Read ``params.yaml`` of the run root (falling back to the project's own)."""
    base = Path(root).resolve() if root else default_root()
    path = base / "params.yaml"
    if not path.exists():
        path = PROJECT_ROOT / "params.yaml"
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """A stage's params section, with the global seed folded in when the stage sets none."""
    sec = dict(params.get(name) or {})
    sec.setdefault("seed", params.get("seed", 42))
    return sec
