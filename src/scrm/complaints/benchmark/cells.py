"""The benchmark's unit of work, a *cell*, and the two engines that run cells: local and Ray.

A cell is one training set of one leaderboard section: (protocol, split, training label source or
repetition/fold, seed). :func:`run_cell` fits every selected zoo model on it (grid point chosen on
inner validation folds, :func:`.select.fit_each`) and predicts the cell's scored rows. Why one cell
per training set and not per model: the models share the TF-IDF block fitted once per training set
(:func:`.select.fit_predict`); a cell per model would fit it once per model on either engine.

:func:`run_cell` is pure and is *the* function both engines run, so a Ray run is identical to a
local one by construction; only the driver (:mod:`.evaluate`) assembles sections, scores them and
logs MLflow runs, in the same fixed order on both engines.

* ``benchmark.engine: local``: with ``benchmark.workers: 1`` cells run one after another in this
  process, lazily, section by section (so progress moves per section); with more, every cell is
  submitted at once, in order, to that many spawned worker processes (the rows go to each worker
  once) and read back in the same order: each cell is pure with its own seed, so the results do not
  depend on which worker ran it or when.
* ``benchmark.engine: ray``: every cell is submitted at once as a Ray task; the rows each cell
  reads go to the object store once (:func:`scrm.cluster.session`, :func:`scrm.cluster.submit`).

A cell that raises (after ``ray.max_retries`` retries on Ray) is recorded: every model of the cell
has that error (:class:`CellResult`), the other cells still run; one model that raises inside a
cell is recorded the same way by :func:`.select.fit_each`, on both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import cluster
from ...config import BenchmarkSettings
from ...config_ray import RaySettings
from ...errors import ScrmError
from ...parallel import Profiled
from .select import Fitted, Spec, fit_each
from .splits import LabelSet, SplitError


@dataclass(frozen=True)
class Cell:
    """One training set of a section: rows ``train_idx`` of the label set named ``train`` (None:
    all), scored on rows ``scored_idx`` of ``scored``; folds and choices use ``split`` and ``seed``."""

    section: str                    # protocol/variant
    part: str                       # training label source, or r<repetition>/f<fold>
    train: str
    scored: str
    train_idx: np.ndarray | None
    scored_idx: np.ndarray | None
    split: str
    seed: int
    keep_pipeline: bool

    @property
    def key(self) -> str:
        return f"{self.section}/{self.part}"


@dataclass
class CellResult:
    """Fitted models of a cell, models that failed (error text), or why the section is skipped."""

    fitted: dict[str, Fitted] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skip: str | None = None


def run_cell(cell: Cell, train_rows: LabelSet, scored_rows: LabelSet, specs: Mapping[str, Spec],
             classes: list[str], inner_folds: int, n_threads: int) -> CellResult:
    """Fit every model of ``specs`` on the cell's training rows and predict its scored rows (pure:
    the same inputs give the same predictions on any machine; ``n_threads`` BLAS threads)."""
    from threadpoolctl import threadpool_limits

    train = train_rows if cell.train_idx is None else train_rows.take(cell.train_idx)
    scored = scored_rows if cell.scored_idx is None else scored_rows.take(cell.scored_idx)
    with threadpool_limits(limits=n_threads):
        try:
            fitted, failed = fit_each(specs, train, scored, classes, cell.split, inner_folds,
                                      cell.seed, keep_pipeline=cell.keep_pipeline)
        except SplitError as exc:
            return CellResult(skip=str(exc))
    return CellResult(fitted, failed)


def failed_cell(cell: Cell, data: Mapping[str, LabelSet], specs: Mapping[str, Spec],
                error: str) -> CellResult:
    """The result of a cell that raised: each model it would have fitted carries the error."""
    no_emb = data[cell.train].emb is None or data[cell.scored].emb is None
    return CellResult(failed={m: f"cell {cell.key} failed: {error}" for m, sp in specs.items()
                              if not (sp.features == "embeddings" and no_emb)})


def _local(cell: Cell, data: Mapping[str, LabelSet], specs: Mapping[str, Spec],
           classes: list[str], s: BenchmarkSettings) -> CellResult:
    try:
        return run_cell(cell, data[cell.train], data[cell.scored], specs, classes, s.inner_folds,
                        s.n_threads)
    except Exception as exc:  # noqa: BLE001 - a failed cell is a result, as on Ray
        return failed_cell(cell, data, specs, cluster.error_text(exc))


_WORKER: dict[str, Any] = {}


def _init_worker(data: Mapping[str, LabelSet], specs: Mapping[str, Spec], classes: list[str],
                 s: BenchmarkSettings) -> None:
    """Keep the rows and specs in the worker process, so each cell sends only its index arrays."""
    _WORKER.update(data=data, specs=specs, classes=classes, s=s)


def _worker_cell(cell: Cell) -> CellResult:
    w = _WORKER
    return _local(cell, w["data"], w["specs"], w["classes"], w["s"])


@contextmanager
def _pool(cells: Sequence[Cell], data: Mapping[str, LabelSet], specs: Mapping[str, Spec],
          classes: list[str], s: BenchmarkSettings) -> Iterator[list[Callable[[], CellResult]]]:
    """``s.workers`` spawned processes run every cell (submitted on entry, in order)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(min(s.workers, len(cells)) or 1, mp_context=get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(dict(data), dict(specs), classes, s)) as pool:
        futures = [pool.submit(Profiled(_worker_cell), c) for c in cells]

        def get(c: Cell, fut: Any) -> CellResult:
            try:
                return fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its cell, as on Ray
                return failed_cell(c, data, specs, cluster.error_text(exc))

        yield [lambda c=c, f=f: get(c, f) for c, f in zip(cells, futures, strict=True)]


@contextmanager
def execute(cells: Sequence[Cell], data: Mapping[str, LabelSet], specs: Mapping[str, Spec],
            classes: list[str], s: BenchmarkSettings, ray_settings: RaySettings | None,
            ) -> Iterator[list[Callable[[], CellResult]]]:
    """One getter per cell, in the order of ``cells``, on ``s.engine``: local getters compute the
    cell when called; Ray getters wait for a task submitted on entry (Ray shuts down on exit)."""
    if s.engine == "local" and s.workers > 1 and len(cells) > 1:
        with _pool(cells, data, specs, classes, s) as getters:
            yield getters
        return
    if s.engine == "local":
        yield [lambda c=c: _local(c, data, specs, classes, s) for c in cells]
        return
    if ray_settings is None:
        raise ScrmError("benchmark.engine = ray needs the params.yaml ray: section (pass "
                        "load_settings().ray)")
    with cluster.session(ray_settings, "benchmark.engine") as ray:
        refs = {name: ray.put(rows) for name, rows in data.items()}
        spec_ref = ray.put(dict(specs))
        tasks = cluster.submit(ray, run_cell,
                               [(c, refs[c.train], refs[c.scored], spec_ref, classes,
                                 s.inner_folds, s.n_threads) for c in cells],
                               max_retries=ray_settings.max_retries, num_cpus=s.n_threads)

        def get(c: Cell, ref: Any) -> CellResult:
            value, error = cluster.outcome(ray, ref)
            return value if error is None else failed_cell(c, data, specs, error)

        yield [lambda c=c, ref=ref: get(c, ref) for c, ref in zip(cells, tasks, strict=True)]
