"""``embed.engine: ray``: the embedding batches on a Ray Data actor pool, the same vectors as local.

Why batches are planned here and not by Ray Data: a neural encoder's output for a text can depend
on its batch-mates (padding length changes the shapes of the matrix products, and so the float
rounding). So the driver forms exactly the batches the local path forms (:func:`.backend.
minilm_plan`: distinct texts, length-sorted, ``embed.batch_size``; :func:`.backend.row_batches` for
tfidf_svd after fitting TF-IDF/SVD on the whole corpus, a global statistic), each batch is one row
of a Ray dataset, and ``map_batches(batch_size=1)`` hands each actor whole batches. Actors run the
local path's per-batch function (:meth:`.backend.MiniLMEncoder.encode_batch`, :meth:`.backend.
TfidfSvdEncoder.transform`); the driver puts the rows back by batch number, so the cache file is
byte-identical to the local engine's.

Actors: one per GPU (``num_gpus=1``) when the cluster has GPUs and ``embed.device`` is cuda or
auto; otherwise CPU actors of ``embed.cpu_threads`` CPUs each, as many as the cluster's CPUs allow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import cluster
from ..config import EmbedSettings
from ..config_ray import RaySettings
from .backend import MINILM_NAME, TfidfSvdEncoder, make_encoder, minilm_plan, row_batches

log = logging.getLogger(__name__)


def _pack(batch: Any, vecs: np.ndarray) -> dict[str, np.ndarray]:
    """A batch's float32 rows as raw bytes (exact, whatever the row count)."""
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    return {"batch": np.asarray(batch["batch"], dtype=np.int64),
            "shape": np.array([list(vecs.shape)], dtype=np.int64),
            "data": np.array([vecs.tobytes()], dtype=object)}


class MiniLMActor:
    """Holds one MiniLM model; encodes whole planned batches."""

    def __init__(self, settings: EmbedSettings, device: str) -> None:
        self.encoder = make_encoder(settings, device=device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        (texts,) = batch["texts"]
        return _pack(batch, self.encoder.encode_batch([str(t) for t in texts]))


class TfidfActor:
    """Holds the TF-IDF -> SVD pipeline fitted on the driver; transforms planned batches."""

    def __init__(self, encoder: TfidfSvdEncoder) -> None:
        self.encoder = encoder

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        (texts,) = batch["texts"]
        return _pack(batch, self.encoder.transform([str(t) for t in texts]))


def _device(settings: EmbedSettings, n_gpus: int) -> str:
    if settings.backend == "minilm" and settings.device in ("cuda", "auto") and n_gpus > 0:
        return "cuda"
    if settings.device == "cuda" and settings.backend == "minilm":
        log.warning("embed.device=cuda but the Ray cluster has no GPU: CPU actors instead.")
    return "cpu"


def _run_pool(ray: Any, batches: list[list[str]], actor: type, ctor: dict[str, Any],
              n_actors: int, resources: dict[str, float], progress: bool) -> list[np.ndarray]:
    """Every planned batch through an actor pool; the outputs by batch number. Ray Data's
    progress bars and per-operator log lines only with ``embed.progress``."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.WARNING)
    ds = ray.data.from_items([{"batch": i, "texts": b} for i, b in enumerate(batches)],
                             override_num_blocks=max(1, min(len(batches), 4 * n_actors)))
    out = ds.map_batches(actor, batch_size=1, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=n_actors),
                         fn_constructor_kwargs=ctor, **resources)
    vecs: list[np.ndarray | None] = [None] * len(batches)
    for row in out.iter_rows():
        shape = tuple(int(x) for x in row["shape"])
        vecs[int(row["batch"])] = np.frombuffer(row["data"], dtype=np.float32).reshape(shape)
    missing = [i for i, v in enumerate(vecs) if v is None]
    if missing:
        raise RuntimeError(f"ray: {len(missing)} embedding batch(es) came back empty")
    return [v for v in vecs if v is not None]


def embed_on_ray(texts: Sequence[str], settings: EmbedSettings,
                 ray_settings: RaySettings) -> tuple[np.ndarray, str, str, str]:
    """(vectors in input order, backend, model id, device) computed on Ray."""
    texts = list(texts)
    with cluster.session(ray_settings, "embed.engine") as ray:
        n_gpus = cluster.gpus(ray)
        device = _device(settings, n_gpus)
        if settings.backend == "tfidf_svd":
            enc = TfidfSvdEncoder(settings.tfidf_svd, settings.seed).fit(texts)
            batches = [texts[b[0]:b[-1] + 1] for b in row_batches(len(texts))]
            n_actors = max(1, min(len(batches), cluster.cpus(ray)))
            parts = _run_pool(ray, batches, TfidfActor, {"encoder": enc}, n_actors,
                              {"num_cpus": 1}, settings.progress)
            return np.concatenate(parts, axis=0), enc.name, enc.model_id, "cpu"
        batch_size = settings.batch_size_cuda if device == "cuda" else settings.batch_size
        uniq, inverse, plan = minilm_plan(texts, batch_size)
        batches = [[uniq[i] for i in idx] for idx in plan]
        if device == "cuda":
            n_actors, resources = n_gpus, {"num_gpus": 1}
        else:
            n_actors = max(1, cluster.cpus(ray) // settings.cpu_threads)
            resources = {"num_cpus": settings.cpu_threads}
        parts = _run_pool(ray, batches, MiniLMActor, {"settings": settings, "device": device},
                          max(1, min(n_actors, len(batches))), resources, settings.progress)
        out = np.empty((len(uniq), parts[0].shape[1]), dtype=np.float32)
        for idx, vecs in zip(plan, parts, strict=True):
            out[idx] = vecs
        return out[inverse], "minilm", MINILM_NAME, device
