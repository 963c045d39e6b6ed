"""Stage ``embed``: sentence embeddings of customer openings, computed once and cached for BERTopic.

BERTopic's slowest step is embedding, and every topic experiment (UMAP/HDBSCAN settings, stop words)
reuses the same vectors, so this stage computes them once and caches them as
``data/processed/embeddings.npz`` (ids, float32 matrix, backend name); ``topics`` passes them in.
The backends (``embed.backend``: minilm or tfidf_svd) are in :mod:`scrm.complaints.backend`.

``embed.max_docs`` caps the number of openings embedded (a seeded sample): BERTopic cannot use 800k
openings on two cores, and sampling before embedding saves the embedding time too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import status
from ..config import EmbedSettings
from ..config_ray import RaySettings
from ..errors import DataError, ScrmError
from ..io import atomic_path, write_json
from ..paths import Paths
from .backend import embed_texts, make_encoder

TEXT_COLUMN = "text_clean"


# --------------------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingCache:
    """What ``embeddings.npz`` holds: row i of ``vectors`` embeds the opening ``ids[i]``."""

    ids: np.ndarray
    vectors: np.ndarray
    backend: str
    model: str

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.ids) != self.vectors.shape[0]:
            raise DataError(f"embeddings: {len(self.ids)} ids but a matrix of shape "
                            f"{self.vectors.shape}.")


def save_embeddings(target: Path | str, cache: EmbeddingCache) -> Path:
    """Write the cache atomically as an ``.npz`` that ``np.load`` reads. Written entry by entry with
    a fixed timestamp (``np.savez`` stamps the current time), so the same vectors give the same
    bytes and DVC sees an unchanged output as unchanged."""
    import zipfile

    arrays = {"ids": np.asarray(cache.ids, dtype=np.int64),
              "vectors": np.asarray(cache.vectors, dtype=np.float32),
              "backend": np.array(cache.backend), "model": np.array(cache.model)}
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED,
                                                     allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return Path(target)


def load_embeddings(path: Path | str) -> EmbeddingCache:
    path = Path(path)
    if not path.exists():
        raise DataError("embeddings cache not found: run `scrm embed` first.", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return EmbeddingCache(ids=z["ids"], vectors=z["vectors"], backend=str(z["backend"]),
                                  model=str(z["model"]))
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"not a scrm embeddings cache ({exc}); rerun `scrm embed`.", path) from exc


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def load_openings(path: Path, columns: Sequence[str] = ("tweet_id", TEXT_COLUMN)) -> tuple[Any, int]:
    """Openings with a non-empty cleaned text, sorted by id (polars frame), and the number of
    openings dropped because cleaning left no text (a bare @handle or link has no topic)."""
    import polars as pl

    if not path.exists():
        raise DataError("complaints table not found: run `scrm complaints` first.", path)
    have = pl.read_parquet_schema(path)
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataError(f"missing column(s) {missing}; expected the complaints contract "
                        f"(tweet_id, text_clean, ...).", path)
    frame = pl.scan_parquet(path).select(list(columns)).collect()
    if frame["tweet_id"].null_count() or frame["tweet_id"].n_unique() != frame.height:
        raise DataError("tweet_id must be unique and non-null (one row per opening).", path)
    kept = (frame.filter(pl.col(TEXT_COLUMN).is_not_null()
                         & (pl.col(TEXT_COLUMN).str.strip_chars().str.len_chars() > 0))
            .sort("tweet_id"))
    return kept, frame.height - kept.height


def sample_rows(n: int, max_docs: int | None, seed: int) -> np.ndarray:
    """Sorted row positions of a seeded sample of ``max_docs`` rows (all rows when uncapped)."""
    if max_docs is None or max_docs >= n:
        return np.arange(n)
    if max_docs < 1:
        raise ScrmError(f"params.yaml embed.max_docs must be >= 1 or null, got {max_docs}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_docs), replace=False))


def empty_reason(paths: Paths, n_openings: int) -> str:
    """Why there is nothing to embed: no opening at all (in prepare's words), or none with text."""
    if n_openings == 0:
        return status.because(paths, "the complaints table has no opening")
    return (f"all {n_openings:,} openings are empty once @handles and links are removed "
            f"({TEXT_COLUMN}): there is no text to embed")


def run(paths: Paths, settings: EmbedSettings,
        ray_settings: RaySettings | None = None) -> dict[str, Any]:
    """Embed the (sampled) customer openings and cache the vectors for ``topics``.

    With no text to embed the cache is written empty (0 rows) and the metrics say why: ``topics``
    then reports the same reason instead of a missing cache. Timings are returned for the command
    line but kept out of ``embed.json`` (same params, same bytes). ``embed.engine: ray`` computes
    the same batches on a Ray Data actor pool (:mod:`.embed_ray`, ``ray_settings``), same cache."""
    src = paths.complaints
    if not src.exists():
        raise status.missing_input(paths, "complaints", src)
    frame, n_empty = load_openings(src)
    rows = sample_rows(frame.height, settings.max_docs, settings.seed)
    ids = frame["tweet_id"].to_numpy()[rows].astype(np.int64)
    texts = frame[TEXT_COLUMN].to_numpy()[rows].tolist()
    state = status.ok() if texts else status.no_data(empty_reason(paths, frame.height + n_empty))
    seconds = 0.0
    if texts and settings.engine == "ray":
        from .embed_ray import embed_on_ray

        if ray_settings is None:
            raise ScrmError("embed.engine = ray needs the params.yaml ray: section (pass "
                            "load_settings().ray)")
        t0 = time.perf_counter()
        vectors, backend, model, device = embed_on_ray(texts, settings, ray_settings)
        seconds = time.perf_counter() - t0
    elif texts:
        encoder = make_encoder(settings)
        t0 = time.perf_counter()
        vectors = embed_texts(texts, encoder)
        seconds = time.perf_counter() - t0
        backend, model, device = encoder.name, encoder.model_id, getattr(encoder, "device", "cpu")
    else:  # no model is loaded for nothing
        vectors = np.zeros((0, 0), dtype=np.float32)
        backend, model, device = settings.backend, "", None
    save_embeddings(paths.embeddings, EmbeddingCache(ids=ids, vectors=vectors, backend=backend,
                                                     model=model))
    metrics = {
        **state,
        "backend": backend,
        "model": model,
        "device": device,
        "openings": frame.height + n_empty,
        "empty_text_dropped": n_empty,
        "docs": len(ids),
        "dim": int(vectors.shape[1]),
        "sampled": len(ids) < frame.height,
    }
    write_json(paths.metric("embed"), metrics)
    return {**metrics, "seconds": round(seconds, 1),
            "sentences_per_s": round(len(ids) / seconds, 1) if seconds > 0 else None}
