"""The package's shape rules, enforced: one home per concept, small modules, one-way imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from scrm.config import Paths
from scrm.paths import PROJECT_ROOT

SRC = PROJECT_ROOT / "src" / "scrm"
MODULES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    pkg = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: -node.level] if path.name != "__init__.py" else \
                    pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.add(".".join([*base, node.module or ""]).rstrip("."))
            else:
                out.add(node.module or "")
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_over_500_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 500


def test_only_tracking_imports_mlflow() -> None:
    users = [str(p.relative_to(SRC)) for p in MODULES
             if any(m == "mlflow" or m.startswith("mlflow.") for m in _imports(p))]
    assert users == ["tracking.py"]


def test_nothing_imports_the_cli() -> None:
    users = [str(p.relative_to(SRC)) for p in MODULES
             if p.name not in ("cli.py", "__main__.py") and any(m == "scrm.cli" for m in _imports(p))]
    assert users == []


def test_data_layer_knows_nothing_of_models_tracking_or_figures() -> None:
    banned = ("sklearn", "mlflow", "plotly", "matplotlib", "scrm.tracking", "scrm.report",
              "scrm.response_time", "scrm.outcome", "scrm.complaints")
    for p in (SRC / "data").rglob("*.py"):
        bad = [m for m in _imports(p) if m.startswith(banned)]
        assert bad == [], f"{p.relative_to(SRC)} imports {bad}"


def test_no_defaults_outside_config() -> None:
    """Stages receive settings objects: no raw-section reads, no DEFAULTS dicts, no .get fallbacks
    on params sections."""
    offenders = {}
    pattern = re.compile(r"\bsection\(|^DEFAULTS\b|\bsec\.get\(|\bparams\.get\(", re.M)
    for p in MODULES:
        if p.name in ("config.py", "configbase.py"):
            continue
        hits = pattern.findall(p.read_text(encoding="utf-8"))
        if hits:
            offenders[str(p.relative_to(SRC))] = hits
    assert offenders == {}


def _dvc_paths() -> set[str]:
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    found: set[str] = set()
    for stage in dvc["stages"].values():
        for key in ("outs", "metrics", "plots"):
            for item in stage.get(key, []):
                found.add(next(iter(item)) if isinstance(item, dict) else item)
    return found


def test_every_dvc_output_is_named_in_the_paths_catalogue() -> None:
    p = Paths(PROJECT_ROOT)
    named = set()
    for attr in dir(Paths):
        if isinstance(getattr(Paths, attr), property):
            named.add(str(getattr(p, attr).relative_to(PROJECT_ROOT)))
    named |= {str(p.metric(f.stem).relative_to(PROJECT_ROOT))
              for f in [Path(x) for x in _dvc_paths()] if f.parent.name == "metrics"}
    missing = sorted(x.rstrip("/") for x in _dvc_paths() if x.rstrip("/") not in named)
    assert missing == []
