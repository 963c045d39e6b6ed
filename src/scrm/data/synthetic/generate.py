"""Writing N rows: conversations drawn a chunk at a time and appended to the CSV.

Generation is chunked: threads are drawn 20,000 at a time with whole-array numpy operations, rendered
with polars string expressions (:mod:`.text`) and appended to the CSV, so memory stays flat whatever
the row count. The chunk size is fixed, so the same ``(rows, seed)`` gives the same bytes.

Model of one conversation (all draws vectorised per chunk):
  * a brand (weights: published top-10 counts, then a Zipf tail to 108 brands), a complaint kind
    (sector mix of the brand), an opening time (Q4 2017 mostly, diurnal hour profile);
  * the main chain: optionally a brand announcement as root, then ``E`` exchanges, each a run of
    customer tweets answered by a run of brand tweets, then optionally a trailing customer run. A
    first customer run longer than one tweet is the "unanswered opening" of the real file (the brand
    answers the nudge, not the opening);
  * side replies hang off chain tweets as leaves (branches); reply ids of tweets missing from the file
    are listed in ``response_tweet_id`` (as in the real file); a few threads lose their root, leaving
    dangling ``in_response_to_tweet_id`` references;
  * each reply comes a lognormal latency after its parent (brand-specific for brand replies);
  * ids are assigned in crawl order like the real file: a thread is written from its last brand reply
    back to the opening, and ids of listed-but-missing replies are skipped (gaps).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ... import io as sio
from ...errors import ScrmError
from ..schema import EXPECTED_COLUMNS
from .model import S, Model, build_model, epoch
from .params import load_params
from .text import render_texts

CHUNK_THREADS = 20_000          # fixed: part of what makes the output a function of (rows, seed)
DATE_STRFTIME = "%a %b %d %H:%M:%S +0000 %Y"


def _seg_arange(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 within each segment of the given lengths, concatenated."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _extra(rng: np.random.Generator, q: np.ndarray | float, n: int, cap: int = 30) -> np.ndarray:
    """Geometric count of 'one more' (P(k) = q^k (1-q)), capped."""
    q = np.broadcast_to(np.asarray(q, dtype=float), (n,))
    return np.minimum(rng.geometric(1.0 - np.clip(q, 0.0, 0.999), size=n) - 1, cap)


def _hurdle_extra(rng: np.random.Generator, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Extra run length: 0, or with probability ``p`` one plus a geometric (``q``) count."""
    n = len(p)
    return np.where(rng.random(n) < p, 1 + _extra(rng, q, n), 0)


def _power_tail(rng: np.random.Generator, n: int, kmin: int, alpha: float, kmax: int) -> np.ndarray:
    """Discrete power law on kmin..kmax (continuous inverse-CDF, rounded), for heavy-tailed counts."""
    u = rng.random(n)
    a = alpha - 1.0
    lo, hi = (kmin - 0.5) ** -a, (kmax + 0.5) ** -a
    return np.clip(np.floor((lo - u * (lo - hi)) ** (-1.0 / a) + 0.5), kmin, kmax).astype(np.int64)


@dataclass
class _State:
    """What carries over from one chunk to the next: id counters and the rows still to write."""

    next_tweet_id: int
    next_customer: int
    first_customer: int
    rows_left: int


def _chunk(model: Model, rng: np.random.Generator, n_threads: int,
           state: _State) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Generate ``n_threads`` conversations (truncated to ``state.rows_left`` rows), in file order."""
    p = model.p
    fit = p["fitted"]
    T = n_threads
    B = model.brands
    # -- thread-level draws
    brand = rng.choice(len(B.handles), size=T, p=B.weights)
    sector = B.sector[brand]
    kind = (rng.random(T)[:, None] > model.kind_cum[sector]).sum(axis=1)
    kind = np.minimum(kind, len(model.kinds) - 1)
    b0 = (rng.random(T) < fit["brand_root"]).astype(np.int64)
    n_ex = rng.choice(np.arange(1, len(model.exch_pmf) + 1), size=T, p=model.exch_pmf)
    trail = (rng.random(T) < fit["trailing_customer"]).astype(np.int64)
    dangle = rng.random(T) < fit["dangling_thread_share"]
    # opening time: mostly inside the window, with an hour-of-day profile; a tail of older tweets
    tm = p["time"]
    days = (model.t_end - model.t_start) // 86400
    day = rng.integers(0, days, size=T)
    hour = rng.choice(24, size=T, p=model.hour_pmf)
    t0 = model.t_start + day * 86400 + hour * 3600 + rng.integers(0, 3600, size=T)
    old = rng.random(T) > tm["share_in_window"]
    back = np.minimum(rng.exponential(tm["older_scale_days"] * 86400, size=T),
                      model.t_start - epoch(tm["oldest"]))
    t0 = np.where(old, model.t_start - back.astype(np.int64), t0)

    # -- runs of the main chain: [b-root] c b c b ... [c]
    n_runs = b0 + 2 * n_ex + trail
    run_thread = np.repeat(np.arange(T), n_runs)
    k = _seg_arange(n_runs) - b0[run_thread]
    run_cust = (k >= 0) & (k % 2 == 0)
    runs = fit["runs"]
    pq = np.where(run_cust[:, None], np.where((k == 0)[:, None], runs["customer_open"],
                                              runs["customer_later"]), runs["brand"])
    run_len = 1 + _hurdle_extra(rng, pq[:, 0], pq[:, 1])
    # -- chain tweets
    run_of = np.repeat(np.arange(len(k)), run_len)
    c_thread = run_thread[run_of]
    c_cust = run_cust[run_of]
    c_k = k[run_of]
    c_inrun = _seg_arange(run_len)
    chain_len = np.bincount(c_thread, minlength=T)
    c_pos = _seg_arange(chain_len)
    n_chain = len(c_thread)
    c_last_run = c_k == 2 * n_ex[c_thread]            # trailing customer run
    stage = np.where(
        c_cust,
        np.where(c_k == 0, np.where(c_inrun == 0, S["open"], S["c_nudge"]),
                 np.where(c_last_run, S["c_close_ok"], S["c_reply"])),
        np.where(c_k < 0, S["b_root"],
                 np.where(c_inrun > 0, S["b_cont"],
                          np.where(c_k == 1, S["b_first"], S["b_later"]))))
    # -- side leaves
    side = fit["side"]
    p_side = np.where(c_cust, side["p_c"], side["p_b"]) * model.side_mult
    has_side = rng.random(n_chain) < p_side
    n_side = np.where(has_side, 1 + _extra(rng, 1 - 1 / side["mean_k"], n_chain), 0)
    s_parent = np.repeat(np.arange(n_chain), n_side)
    n_s = len(s_parent)
    s_cust = rng.random(n_s) < np.where(c_cust[s_parent], side["customer_given_c"],
                                        side["customer_given_b"])
    # -- all tweets: chain first, then side leaves
    N = n_chain + n_s
    thread = np.concatenate([c_thread, c_thread[s_parent]])
    cust = np.concatenate([c_cust, s_cust])
    parent = np.concatenate([np.where(c_pos > 0, np.arange(n_chain) - 1, -1), s_parent])
    stage = np.concatenate([stage, np.where(s_cust, S["c_side"], S["b_side"])])
    is_side = np.concatenate([np.zeros(n_chain, bool), np.ones(n_s, bool)])
    # -- latencies and times (integer seconds, at least 1 s after the parent)
    has_par = parent >= 0
    pc = np.where(has_par, cust[np.maximum(parent, 0)], False)
    mu = np.select([pc & ~cust, ~pc & cust, pc & cust],
                   [B.reply_mu[brand[thread]], fit["latency"]["bc"][0], fit["latency"]["cc"][0]],
                   fit["latency"]["bb"][0])
    sd = np.select([pc & ~cust, ~pc & cust, pc & cust],
                   [fit["latency"]["cb"][1], fit["latency"]["bc"][1], fit["latency"]["cc"][1]],
                   fit["latency"]["bb"][1])
    raw = np.exp(mu + sd * rng.standard_normal(N))
    lat = np.where(has_par, np.clip(np.rint(raw), 1, p["time"]["max_latency_days"] * 86400), 0)
    lat = lat.astype(np.int64)
    cs = np.cumsum(lat[:n_chain])
    starts = np.cumsum(chain_len) - chain_len
    t_chain = t0[c_thread] + cs - cs[starts][c_thread]
    t = np.concatenate([t_chain, t_chain[s_parent] + lat[n_chain:]])
    # outcome: fast first replies resolve more often; praise is always a happy thread
    first_b = (stage == S["b_first"])
    first_lat = np.full(T, np.nan)
    first_lat[thread[first_b]] = np.log(np.maximum(lat[first_b], 1))
    first_lat = np.where(np.isnan(first_lat), fit["latency"]["cb"][0], first_lat)
    oc = p["outcome"]
    logit = oc["base_logit"] - oc["latency_slope"] * (first_lat - fit["latency"]["cb"][0])
    resolved = (rng.random(T) < 1 / (1 + np.exp(-logit))) | (np.array(model.kinds)[kind] == "praise")
    stage = np.where((stage == S["c_close_ok"]) & ~resolved[thread], S["c_close_bad"], stage)
    stage = np.where((stage == S["b_later"]) & resolved[thread]
                     & (rng.random(N) < oc["brand_wrapup"]), S["b_later_ok"], stage)

    # -- which tweets are written: not the root of a dangling thread; the row budget
    n_children = np.bincount(parent[has_par], minlength=N)
    written = ~(dangle[thread] & (parent < 0) & ~is_side)
    w_per_thread = np.bincount(thread, weights=written, minlength=T).astype(np.int64)
    keep_threads = T
    if w_per_thread.sum() >= state.rows_left:
        csum = np.cumsum(w_per_thread)
        keep_threads = int(np.searchsorted(csum, state.rows_left, side="left")) + 1
        budget_last = state.rows_left - (int(csum[keep_threads - 2]) if keep_threads > 1 else 0)
        last = keep_threads - 1
        in_last = np.flatnonzero((thread == last) & written)
        order_last = in_last[np.lexsort((in_last, t[in_last]))]
        written[order_last[budget_last:]] = False
        written[thread > last] = False

    # -- file order: from the last brand reply of the chain back to the root, side replies after
    #    their parent; ids in that order, skipping one id per listed reply missing from the file
    last_b = np.full(T, 0, dtype=np.int64)
    np.maximum.at(last_b, c_thread[~c_cust], c_pos[~c_cust])
    pos_all = np.concatenate([c_pos, c_pos[s_parent]])
    key = np.where(pos_all <= last_b[thread], 2 * (last_b[thread] - pos_all), 1)
    key = np.where(is_side, key + 1, key)
    order = np.lexsort((np.arange(N), t, key, thread))
    ph_has = rng.random(N)
    cum = np.cumsum(fit["phantom_pmf"])
    n_ph = np.where(n_children > 0, (ph_has[:, None] > cum[None, :]).sum(axis=1), 0)
    tail = n_ph >= 4
    if tail.any():
        n_ph[tail] = _power_tail(rng, int(tail.sum()), 4, fit["phantom_tail_alpha"],
                                 max(4, fit["phantom_max"]))
    leaf_ph = (n_children == 0) & (rng.random(N) < fit["phantom_leaf"])
    n_ph = np.where(leaf_ph, 1, n_ph)
    slots = 1 + n_ph
    tid = np.empty(N, dtype=np.int64)
    tid[order] = state.next_tweet_id + np.cumsum(slots[order]) - slots[order]
    state.next_tweet_id = int((tid + slots)[thread < keep_threads].max())

    # -- customers: a new or returning main customer per thread, a few others joining in
    new_main = rng.random(T) < model.new_customer
    chime = (cust & ~np.isin(stage, [S["open"], S["c_nudge"]])
             & (rng.random(N) < fit["other_customer"]))
    n_chime = np.bincount(thread[chime], minlength=T)
    per_thread_new = new_main.astype(np.int64) + n_chime
    base = state.next_customer + np.cumsum(per_thread_new) - per_thread_new
    returning = ~new_main & (base > state.first_customer)
    new_main = ~returning
    per_thread_new = new_main.astype(np.int64) + n_chime
    base = state.next_customer + np.cumsum(per_thread_new) - per_thread_new
    main_id = np.where(returning,
                       state.first_customer + np.floor(rng.random(T) * np.maximum(
                           base - state.first_customer, 1)).astype(np.int64), base)
    chime_rank = _rank_within(thread, chime)
    author_num = np.where(chime, base[thread] + new_main[thread] + chime_rank, main_id[thread])
    used_new = per_thread_new[:keep_threads].sum()
    state.next_customer += int(used_new)

    # -- assemble the rows (written ones only), in file order
    keep = order[written[order]]
    state.rows_left -= len(keep)
    par_idx = np.maximum(parent, 0)
    ph_lists = pl.int_ranges(pl.col("_tid") + 1, pl.col("_tid") + 1 + pl.col("_nph"))
    edges = pl.DataFrame({"_p": par_idx[has_par], "_c": tid[has_par]})
    kids = edges.group_by("_p").agg(pl.col("_c").sort()).rename({"_p": "_i"})
    brand_handle = pl.Series(B.handles[brand[thread]].astype(str), dtype=pl.String)
    reply_to_author = np.where(has_par & pc, author_num[par_idx], main_id[thread])
    frame = pl.DataFrame({
        "_i": np.arange(N),
        "_tid": tid,
        "_nph": n_ph,
        "_cust": cust,
        "_stage": stage,
        "_kind": kind[thread],
        "_sector": sector[thread],
        "_brand": brand_handle,
        "_brand_idx": brand[thread],
        "_author": author_num,
        "_to": reply_to_author,
        "_t": t,
        "_parent": np.where(has_par, tid[par_idx], -1),
    })
    frame = frame[keep]
    frame = frame.join(kids, on="_i", how="left", maintain_order="left")
    text = render_texts(model, rng, frame)
    resp = (pl.concat_list([pl.col("_c").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
                            ph_lists]).list.sort())
    out = frame.with_columns(_text=text).select(
        tweet_id=pl.col("_tid").cast(pl.String),
        author_id=pl.when(pl.col("_cust")).then(pl.col("_author").cast(pl.String))
        .otherwise(pl.col("_brand")),
        inbound=pl.when(pl.col("_cust")).then(pl.lit("True")).otherwise(pl.lit("False")),
        created_at=pl.from_epoch(pl.col("_t"), time_unit="s").dt.strftime(DATE_STRFTIME),
        text=pl.col("_text"),
        response_tweet_id=resp.list.eval(pl.element().cast(pl.String)).list.join(","),
        in_response_to_tweet_id=pl.when(pl.col("_parent") >= 0)
        .then(pl.col("_parent").cast(pl.String)).otherwise(None),
    ).with_columns(
        response_tweet_id=pl.when(pl.col("response_tweet_id") == "").then(None)
        .otherwise(pl.col("response_tweet_id")))
    truth = frame.filter(pl.col("_stage") == S["open"]).select(
        tweet_id=pl.col("_tid"), brand=pl.col("_brand"), kind=pl.col("_kind"))
    return out, truth


def _rank_within(group: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For masked rows: 0-based rank among the masked rows of the same group (in row order)."""
    idx = np.flatnonzero(mask)
    g = group[idx]
    o = np.argsort(g, kind="stable")
    gs = g[o]
    at = np.arange(len(gs))
    first = np.maximum.accumulate(np.where(np.r_[True, gs[1:] != gs[:-1]], at, 0)) if len(gs) else at
    rank = np.zeros(len(group), dtype=np.int64)
    rank[idx[o]] = at - first
    return rank


def _chunks(model: Model, seed: int,
            state: _State) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """The file's rows and ground truth, chunk by chunk (see :func:`generate`)."""
    ss = np.random.SeedSequence([int(seed), 0x5C12])
    while state.rows_left > 0:
        rng = np.random.default_rng(ss.spawn(1)[0])
        # small files draw only about the threads they need (a function of rows, so still
        # deterministic); large ones go in fixed chunks of CHUNK_THREADS
        need = int(state.rows_left / model.p["calibrated"]["rows_per_thread"] * 1.1) + 50
        yield _chunk(model, rng, min(CHUNK_THREADS, need), state)


def _start(p: dict[str, Any], rows: int) -> _State:
    if rows < 1:
        raise ScrmError(f"--rows must be at least 1 (got {rows}).")
    return _State(next_tweet_id=1, next_customer=p["customers"]["first_id"],
                  first_customer=p["customers"]["first_id"], rows_left=int(rows))


def generate_frame(rows: int, seed: int, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """The rows :func:`generate` writes for ``(rows, seed, params)``, in file order, as one frame of
    strings (the CSV's columns); for small sizes (checks and calibration), without a file."""
    p = params or load_params()
    return pl.concat([df for df, _ in _chunks(build_model(p), seed, _start(p, rows))])


def generate(path: Path | str, rows: int, seed: int, params: dict[str, Any] | None = None,
             progress: bool | None = None, truth_path: Path | str | None = None) -> dict[str, Any]:
    """Write ``rows`` synthetic tweets of the real file's shape to ``path`` (CSV); deterministic.

    ``params`` replaces the shipped parameter file (:func:`.params.load_params`). ``truth_path``
    (optional) gets the generator's ground truth per opening (tweet_id, brand, kind): what the
    complaint stages should recover. Progress goes to stderr for large ``rows`` (``progress`` None).
    """
    p = params or load_params()
    state = _start(p, rows)
    model = build_model(p)
    path = Path(path)
    show = (rows >= 200_000) if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=rows, unit="rows", unit_scale=True, file=sys.stderr, desc="synthetic")
    truths: list[pl.DataFrame] = []
    chunk = 0
    with path.open("wb") as fh:
        fh.write((",".join(EXPECTED_COLUMNS) + "\n").encode())
        before = state.rows_left
        for df, truth in _chunks(model, seed, state):
            df.write_csv(fh, include_header=False, quote_style="necessary")
            if truth_path is not None:
                truths.append(truth)
            if bar is not None:
                bar.update(before - state.rows_left)
            before = state.rows_left
            chunk += 1
    if bar is not None:
        bar.close()
    if truth_path is not None:
        t = pl.concat(truths).with_columns(
            kind=pl.col("kind").replace_strict(list(range(len(model.kinds))), model.kinds,
                                               return_dtype=pl.String))
        sio.write_parquet(t, truth_path)
    return {"rows": int(rows), "seed": int(seed), "chunks": chunk,
            "last_tweet_id": state.next_tweet_id - 1,
            "customers": state.next_customer - p["customers"]["first_id"]}
