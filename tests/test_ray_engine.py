"""The Ray engine gives the local engine's results: benchmark files and embedding caches compared
byte for byte on the real sample (a local Ray limited to 2 CPUs, no dashboard, shut down after);
a failing cell is recorded, not fatal, on both engines; no cluster or no Ray is one clear message.

Leaderboard CSVs are compared without ``fit_s``/``predict_s``: those are measured seconds and differ
between any two runs, on either engine (they are kept out of the metrics JSON for that reason).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sklearn.dummy import DummyClassifier

from conftest import make_root, set_params
from scrm.config import Paths, load_settings
from scrm.config_ray import RaySettings
from scrm.errors import ScrmError

TIMINGS = ("fit_s", "predict_s")
SMALL = {("benchmark", "models"): ["dummy", "complement_nb", "logreg"],
         ("benchmark", "cv_repeats"): 1, ("benchmark", "cv_folds"): 3,
         ("benchmark", "inner_folds"): 2, ("benchmark", "n_boot"): 100,
         ("benchmark", "splits"): ["stratified", "brand"],
         ("benchmark", "mlflow", "enabled"): False,
         ("embed", "progress"): False, ("ray", "num_cpus"): 2,
         ("ray", "include_dashboard"): False}


@pytest.fixture(scope="module")
def complaints_root(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A run root with the sample's complaints table (weak labels, gold sets) and small params."""
    from scrm.complaints import weak_labels

    paths = make_root(tmp_path_factory.mktemp("ray"))
    set_params(paths.root, SMALL)
    shutil.copy(prepared_root.openings, paths.openings)
    weak_labels.run(paths, load_settings(paths.root).complaints.replace(track=False))
    return paths


def _copy_root(src: Paths, dest: Path, changes: dict[tuple[str, ...], Any]) -> Paths:
    dest.mkdir(parents=True, exist_ok=True)
    paths = make_root(dest)
    shutil.copy(src.root / "params.yaml", paths.root / "params.yaml")
    # the local engine's cells in this process (a test may patch the cell function here)
    set_params(paths.root, {("benchmark", "workers"): 1, **changes})
    shutil.copy(src.complaints, paths.complaints)
    return paths


def _benchmark(paths: Paths) -> tuple[pl.DataFrame, bytes]:
    from scrm.complaints.benchmark import stage

    cfg = load_settings(paths.root)
    stage.run(paths, cfg.benchmark, ray_settings=cfg.ray)
    return pl.read_csv(paths.benchmark_csv).drop(TIMINGS), paths.metric("benchmark").read_bytes()


def _embed(paths: Paths) -> bytes:
    from scrm.complaints import embed

    cfg = load_settings(paths.root)
    embed.run(paths, cfg.embed, ray_settings=cfg.ray)
    return paths.embeddings.read_bytes()


# ------------------------------------------------------------------------------ clear messages first
def test_unreachable_cluster_names_the_setting(complaints_root: Paths,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from scrm import cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    bad = RaySettings(address="ray://127.0.0.1:1", num_cpus=2, max_retries=0,
                      include_dashboard=False, dashboard_host="127.0.0.1")
    with pytest.raises(ScrmError, match=r"no Ray cluster is reachable at 'ray://127.0.0.1:1' "
                                        r"\(from params.yaml ray.address\).*ray.address.*"
                                        r"benchmark.engine: local"):
        with cluster.session(bad, "benchmark.engine"):
            pass
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")   # the environment wins over params
    assert cluster.resolve_address(bad) == "127.0.0.1:1"
    with pytest.raises(ScrmError, match=r"'127.0.0.1:1' \(from RAY_ADDRESS\)"):
        with cluster.session(bad, "embed.engine"):
            pass
    import ray
    assert not ray.is_initialized()


def test_ray_not_installed_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from scrm import cluster

    monkeypatch.setitem(sys.modules, "ray", None)
    ok = RaySettings(address=None, num_cpus=2, max_retries=0, include_dashboard=False,
                     dashboard_host="127.0.0.1")
    with pytest.raises(ScrmError, match=r"Ray is not installed.*set embed.engine: local"):
        with cluster.session(ok, "embed.engine"):
            pass


def test_bad_address_is_a_config_error(tmp_path: Path) -> None:
    from scrm.config import ConfigError

    paths = make_root(tmp_path)
    set_params(paths.root, {("ray", "address"): "http://head"})
    with pytest.raises(ConfigError, match=r"ray.address = 'http://head' must be null"):
        load_settings(paths.root)


def test_the_local_engine_never_imports_ray() -> None:
    code = ("import sys; from scrm.complaints.benchmark import stage, evaluate, cells; "
            "from scrm.complaints import embed, backend; from scrm import cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_cell_that_raises_is_recorded(complaints_root: Paths, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole cell failing (here: the local engine's cell function raising for one fold) records
    that error for each of its models; the other cells and sections are scored."""
    from scrm.complaints.benchmark import cells

    real = cells.run_cell

    def flaky(cell: cells.Cell, *args: Any) -> cells.CellResult:
        if cell.key == "gold_cv/stratified/r0/f1":
            raise MemoryError("worker ran out of memory")
        return real(cell, *args)

    monkeypatch.setattr(cells, "run_cell", flaky)
    paths = _copy_root(complaints_root, tmp_path, {("benchmark", "protocols"): ["gold_cv"]})
    lb, m = _benchmark(paths)
    failed = lb.filter(pl.col("kind") == "failed")
    assert set(failed["variant"]) == {"stratified"} and failed.height == 3
    assert set(failed["error"]) == {"cell gold_cv/stratified/r0/f1 failed: MemoryError: worker "
                                    "ran out of memory"}
    brand = lb.filter(pl.col("variant") == "brand")
    assert set(brand["kind"]) == {"rules", "label_model", "learned", "selected"}


# --------------------------------------------------------------------------- same results, by bytes
@pytest.fixture(scope="module")
def local_ray() -> Any:
    """One local Ray for the tests below, started the way a stage starts its own: through
    :func:`scrm.cluster.session` with ``ray.address: null`` (``num_cpus`` 2, no dashboard), which
    shuts it down on leaving (checked after the last test). A stage finding it running uses it as
    it is. Its workers can import this module (:class:`DiesOnce`). One start for the module: each
    start costs ~18 CPU-s of daemons, and a running Ray keeps a fifth of a core busy."""
    import ray

    from scrm import cluster

    address = os.environ.pop("RAY_ADDRESS", None)  # a cluster named there would be joined
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), before)
                                               if p)
    settings = RaySettings(address=None, num_cpus=2, max_retries=1, include_dashboard=False,
                           dashboard_host="127.0.0.1")
    try:
        with cluster.session(settings, "benchmark.engine") as started:
            assert started.cluster_resources()["CPU"] == 2
            yield started
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
        if address is not None:
            os.environ["RAY_ADDRESS"] = address
    assert not ray.is_initialized(), "the session shuts down the Ray it started"


def test_benchmark_on_ray_equals_local(complaints_root: Paths, tmp_path: Path,
                                       local_ray: Any) -> None:
    """Every protocol on both splits, three models (one with an inner grid search)."""
    local = _copy_root(complaints_root, tmp_path / "local", {("benchmark", "engine"): "local"})
    on_ray = _copy_root(complaints_root, tmp_path / "ray", {("benchmark", "engine"): "ray"})
    lb_local, m_local = _benchmark(local)
    lb_ray, m_ray = _benchmark(on_ray)
    assert local_ray.is_initialized(), "a running Ray is used as it is, not shut down"
    assert lb_local.height > 10 and lb_local.equals(lb_ray)
    assert m_local == m_ray
    assert (local.benchmark_md.read_text(encoding="utf-8").count("|")
            == on_ray.benchmark_md.read_text(encoding="utf-8").count("|"))


class DiesOnce(DummyClassifier):
    """A most-frequent classifier whose first fit anywhere (no ``marker`` file yet) kills its
    process, as a lost Ray worker or node would."""

    def __init__(self, *, strategy: str = "most_frequent", random_state: Any = None,
                 constant: Any = None, marker: str = "") -> None:
        super().__init__(strategy=strategy, random_state=random_state, constant=constant)
        self.marker = marker

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DiesOnce:
        if self.marker and not Path(self.marker).exists():
            Path(self.marker).touch()
            os._exit(1)
        return super().fit(X, y, sample_weight)


def test_a_lost_worker_is_retried(complaints_root: Paths, tmp_path: Path, local_ray: Any) -> None:
    """The first Ray task to fit DiesOnce loses its worker; ray.max_retries runs it again and the
    files equal the local engine's (where the model never dies)."""
    out = {}
    for engine in ("local", "ray"):
        marker = tmp_path / f"{engine}.died"
        if engine == "local":
            marker.touch()
        zoo = {"estimator": f"{__name__}.DiesOnce", "features": "tfidf",
               "kwargs": {"marker": str(marker)}, "grid": {}}
        paths = _copy_root(complaints_root, tmp_path / engine, {
            ("benchmark", "zoo", "dies_once"): zoo, ("benchmark", "engine"): engine,
            ("benchmark", "models"): ["dies_once", "complement_nb"],
            ("benchmark", "protocols"): ["weak_on_weak"], ("benchmark", "splits"): ["stratified"],
            ("ray", "max_retries"): 1})
        out[engine] = _benchmark(paths)
        assert marker.exists()
    assert "failed" not in out["ray"][0]["kind"].to_list()
    assert out["ray"][0].equals(out["local"][0]) and out["ray"][1] == out["local"][1]


def test_failing_model_is_recorded_not_fatal(complaints_root: Paths, tmp_path: Path,
                                             local_ray: Any) -> None:
    """A zoo model that raises on fit: a `failed` row with its error in the leaderboard and in
    benchmark.json, every other model scored; the same files on both engines."""
    broken = {"estimator": "sklearn.linear_model.LogisticRegression", "features": "tfidf",
              "kwargs": {"C": -1.0}, "grid": {}}
    change = {("benchmark", "zoo", "broken"): broken,
              ("benchmark", "models"): ["dummy", "complement_nb", "broken"],
              ("benchmark", "protocols"): ["weak_to_gold", "weak_on_weak"],
              ("benchmark", "splits"): ["stratified"]}
    out = {}
    for engine in ("local", "ray"):
        paths = _copy_root(complaints_root, tmp_path / engine,
                           {**change, ("benchmark", "engine"): engine})
        out[engine] = _benchmark(paths)
    lb, m = out["local"]
    failed = lb.filter(pl.col("kind") == "failed")
    assert failed["system"].to_list() == ["broken ← weak", "broken ← label_model", "broken"]
    assert all("InvalidParameterError" in e and "'C' parameter" in e for e in failed["error"])
    assert failed["macro_f1"].null_count() == failed.height
    scored = lb.filter(pl.col("kind") == "learned")
    assert set(scored["model"]) == {"dummy", "complement_nb"} and scored.height == 6
    import json
    sections = json.loads(m)["sections"]
    assert "InvalidParameterError" in sections["weak_on_weak/stratified"]["failed_models"]["broken"]
    assert out["ray"][0].equals(lb) and out["ray"][1] == m


def test_embedding_cache_on_ray_equals_local(complaints_root: Paths, tmp_path: Path,
                                             local_ray: Any) -> None:
    """tfidf_svd on every opening, and MiniLM on a seeded slice of 48 (CPU): same bytes."""
    for backend, extra in (("tfidf_svd", {}), ("minilm", {("embed", "max_docs"): 48,
                                                          ("embed", "batch_size"): 16})):
        caches = {}
        for engine in ("local", "ray"):
            paths = _copy_root(complaints_root, tmp_path / f"{backend}-{engine}",
                               {("embed", "backend"): backend, ("embed", "engine"): engine,
                                **extra})
            caches[engine] = _embed(paths)
        assert len(caches["local"]) > 10_000 and caches["local"] == caches["ray"], backend
