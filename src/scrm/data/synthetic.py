"""A synthetic ``twcs.csv`` of the real file's shape, for running everything at 2.8 M rows and beyond.

Why: the real full file cannot be shipped, and the 5,000-row sample is too small to test speed and
memory at scale. The generator reproduces what the pipeline depends on: the exact schema and CSV quirks
(quoted multi-id ``response_tweet_id``, the ``Tue Oct 31 22:10:47 +0000 2017`` dates, ``True``/
``False``, newlines, quotes, emoji, ``https://t.co/...`` links, ``@mentions``, ``^AB`` sign-offs), the
brand mix, customer counts, conversation shapes (thread lengths, branching, unanswered openings,
dangling references, reply ids that are not in the file), heavy-tailed brand-dependent reply
latencies, and complaint text by kind so that topic and classifier stages have signal.

Every number lives in ``resources/synthetic_params.yaml``: the ``fitted`` block is measured on the real
sample by :func:`derive_from_sample` (``python -m scrm.data.synthetic derive`` prints it, and a test
checks the stored block still matches), the ``published`` block holds the full-file figures of
PROVENANCE.md, and :func:`calibrate` solves the two knobs that make the full-file shares (rows without
a parent, rows without replies, customers per row) come out right.

Generation is chunked: threads are drawn 20,000 at a time with whole-array numpy operations, rendered
with polars string expressions and appended to the CSV, so memory stays flat whatever the row count.
The chunk size is fixed, so the same ``(rows, seed)`` gives the same bytes.

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

import copy
import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from ..errors import ScrmError
from .schema import EXPECTED_COLUMNS

PARAMS_RESOURCE = "synthetic_params.yaml"
CHUNK_THREADS = 20_000          # fixed: part of what makes the output a function of (rows, seed)
OUTLIER_THREAD_SIZE = 50        # sample threads above this are left out of the fit (see fitted.note)
DATE_STRFTIME = "%a %b %d %H:%M:%S +0000 %Y"
_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_UPPER = np.frombuffer(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", dtype=np.uint8)

# text stages (what a tweet does in its conversation); templates are keyed by these names
STAGES = ("open", "c_nudge", "c_reply", "c_close_ok", "c_close_bad", "c_side",
          "b_root", "b_first", "b_later", "b_later_ok", "b_cont", "b_side")
S = {name: i for i, name in enumerate(STAGES)}
LINKS = ("cb", "bc", "cc", "bb")  # parent role -> child role


# --------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------
def params_path() -> Path:
    return Path(str(resources.files("scrm") / "resources" / PARAMS_RESOURCE))


@functools.lru_cache(maxsize=4)
def _load_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_params(path: Path | str | None = None) -> dict[str, Any]:
    """The generator's parameter file (a fresh copy; callers may modify it)."""
    p = Path(path) if path else params_path()
    if not p.exists():
        raise ScrmError(f"{p}: synthetic generator parameters not found.")
    return copy.deepcopy(_load_yaml(str(p)))


def tail_exponent(top_counts: Sequence[float], total_brand_tweets: float, n_brands: int) -> float:
    """Zipf exponent ``a`` of the tail ``w_k = w_10 (k/10)^-a`` (k = 11..n) that sums to the rest."""
    top = list(top_counts)
    k0 = len(top)
    rest = total_brand_tweets - sum(top)
    ks = np.arange(k0 + 1, n_brands + 1, dtype=float)

    def tail_sum(a: float) -> float:
        return float((top[-1] * (ks / k0) ** -a).sum())

    lo, hi = 0.0, 20.0
    if tail_sum(lo) < rest:
        raise ScrmError("synthetic params: the published top brands leave more tweets for the tail "
                        "than equal weights can hold; check published.top_brands.")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail_sum(mid) > rest else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Brands:
    """The brand table: handles, tweet weights, sector index, reply latency mu, sign-off style."""

    handles: np.ndarray        # object array of str
    weights: np.ndarray        # probability that a thread belongs to the brand
    sector: np.ndarray         # int index into Model.sectors
    reply_mu: np.ndarray       # lognormal mu of customer->brand latency (log seconds)
    sign_style: np.ndarray     # int: 0 none, 1 caret ^AB, 2 dash -AB, 3 star *AB, 4 dash -Name
    sign_rate: np.ndarray      # share of the brand's tweets that carry a sign-off


SIGN_STYLES = ("none", "caret", "dash", "star", "name")


def brand_table(p: dict[str, Any]) -> Brands:
    """Brands in rank order with weights from the published counts and a fitted Zipf tail."""
    pub = p["published"]
    top = pub["top_brands"]
    rows = list(p["brands"])
    handles = [b["handle"] for b in rows]
    if len(handles) != pub["brands"] or len(set(handles)) != len(handles):
        raise ScrmError(f"synthetic params: need {pub['brands']} distinct brands, got "
                        f"{len(set(handles))}.")
    if handles[:len(top)] != list(top):
        raise ScrmError("synthetic params: the brand list must start with published.top_brands "
                        "in the same order.")
    total = pub["rows"] - pub["inbound"]
    a = tail_exponent(list(top.values()), total, len(handles))
    k = np.arange(1, len(handles) + 1, dtype=float)
    w = np.where(k <= len(top), 0.0, list(top.values())[-1] * (k / len(top)) ** -a)
    w[:len(top)] = list(top.values())
    sectors = list(p["sectors"])
    fit = p["fitted"]
    mu_default = fit["latency"]["cb"][0]
    mu = np.array([fit["brand_reply_mu"].get(h, mu_default) for h in handles])
    style = []
    rate = []
    for b in rows:
        st, rt = fit["brand_signoff"].get(b["handle"], (b.get("signoff", "none"),
                                                         b.get("signoff_rate", 0.0)))
        style.append(SIGN_STYLES.index(st))
        rate.append(float(rt))
    return Brands(handles=np.array(handles, dtype=object), weights=w / w.sum(),
                  sector=np.array([sectors.index(b["sector"]) for b in rows]),
                  reply_mu=mu, sign_style=np.array(style), sign_rate=np.array(rate))


def _tilted(pmf: Sequence[float], theta: float) -> np.ndarray:
    base = np.asarray(pmf, dtype=float)
    w = base * theta ** np.arange(len(base))
    return w / w.sum()


def _run_mean(pq: Sequence[float]) -> float:
    """Mean length of a run: 1, plus with probability p one more and then geometric (q) more."""
    p, q = pq
    return 1 + p / (1 - q)


def _structure_means(fit: dict[str, Any], theta: float) -> dict[str, float]:
    """Expected chain tweets by role, per thread, for an exchange tilt ``theta`` (no side leaves)."""
    pmf = _tilted(fit["exchanges_pmf"], theta)
    e_mean = float((np.arange(1, len(pmf) + 1) * pmf).sum())
    runs = fit["runs"]
    c_open = _run_mean(runs["customer_open"])
    c_later = _run_mean(runs["customer_later"])
    n_c = c_open + (e_mean - 1) * c_later + fit["trailing_customer"] * c_later
    n_b = fit["brand_root"] + e_mean * _run_mean(runs["brand"])
    return {"exchanges": e_mean, "customer": n_c, "brand": n_b, "chain": n_c + n_b}


def calibrate(p: dict[str, Any]) -> dict[str, float]:
    """Solve the knobs that make the full-file shares come out right (see module docstring).

    Per thread: rows R = chain + side leaves S (less the root of a dangling thread); rows without a
    parent = roots of non-dangling threads; rows without reply ids = leaves = the chain's end (unless
    a side reply hangs on it) + side leaves. The published shares fix R and the leaves; a fixed-point
    loop then finds the exchange tilt ``theta`` (chain length) and the side multiplier (S) that give
    both. The share of new customers follows from the published customers per row.
    """
    fit = p["fitted"]
    pub = p["published"]
    side = fit["side"]
    rows = pub["rows"]
    share_root = pub["null_in_response_to_tweet_id"] / rows
    share_leaf = pub["null_response_tweet_id"] / rows
    p_d = fit["dangling_thread_share"]
    r = (1 - p_d) / share_root                      # rows per thread
    leaves = share_leaf * r / (1 - fit["phantom_leaf"])
    p_end = (1 - fit["trailing_customer"]) * side["p_b"] + fit["trailing_customer"] * side["p_c"]
    s_tot, theta, mult = leaves - 1.0, 1.0, 1.0
    m = _structure_means(fit, theta)
    for _ in range(60):
        chain = r - s_tot + p_d
        lo, hi = 0.05, 5.0
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _structure_means(fit, mid)["chain"] < chain else (lo, mid)
        theta = (lo + hi) / 2
        m = _structure_means(fit, theta)
        base = (m["customer"] * side["p_c"] + m["brand"] * side["p_b"]) * side["mean_k"]
        mult = (leaves - 1.0) / (base - p_end)
        s_tot = mult * base
    # customers per thread = P(new main customer) + others joining in (customer tweets after the
    # first customer run and customer side replies, each by another customer w.p. other_customer)
    customers_per_thread = pub["customers"] / rows * r
    side_customers = mult * side["mean_k"] * (m["customer"] * side["p_c"] * side["customer_given_c"]
                                              + m["brand"] * side["p_b"] * side["customer_given_b"])
    first_run = _run_mean(fit["runs"]["customer_open"])
    chime = fit["other_customer"] * (m["customer"] - first_run + side_customers)
    p_new = min(1.0, max(0.0, customers_per_thread - chime))
    return {"exchange_tilt": round(theta, 6), "side_multiplier": round(mult, 6),
            "new_customer": round(p_new, 6), "rows_per_thread": round(r, 6)}


# --------------------------------------------------------------------------------------------------
# fitting on the real sample
# --------------------------------------------------------------------------------------------------
def _hurdle(extras: Sequence[int]) -> list[float]:
    """Run-length extras as (p, q): P(any extra) = p; beyond the first, geometric with 'one more' q."""
    x = np.asarray(extras, dtype=float)
    if not len(x):
        return [0.0, 0.0]
    pos = x[x > 0] - 1
    m = float(pos.mean()) if len(pos) else 0.0
    return [round(float(np.mean(x > 0)), 5), round(m / (1 + m), 5)]


def _sign_style(text: pl.Expr) -> pl.Expr:
    t = text.str.strip_chars()
    return (pl.when(t.str.contains(r"\^\s?[A-Z]{1,4}$")).then(pl.lit("caret"))
            .when(t.str.contains(r"\s-\s?[A-Z]{1,4}$")).then(pl.lit("dash"))
            .when(t.str.contains(r"\*\s?[A-Z]{1,4}$")).then(pl.lit("star"))
            .when(t.str.contains(r"\s-\s?[A-Z][a-z]{2,12}$")).then(pl.lit("name"))
            .otherwise(None))


def derive_from_sample(csv_path: Path | str | None = None) -> dict[str, Any]:
    """Measure the generator's ``fitted`` block on the real sample (the numbers in the YAML).

    The main chain of a thread is the path from its root to its deepest tweet (earliest on ties);
    everything else is a side reply. Threads above ``OUTLIER_THREAD_SIZE`` tweets are left out.
    """
    from ..config import SAMPLE_CSV
    from .prepare import read_raw, validate
    from .threads import assign_threads

    path = Path(csv_path) if csv_path else SAMPLE_CSV
    clean, _ = validate(read_raw(path))
    tw, _ = assign_threads(clean)
    sizes = tw.group_by("thread_id").len()
    n_threads_all = sizes.height
    big = sizes.filter(pl.col("len") > OUTLIER_THREAD_SIZE)["thread_id"]
    tw = tw.filter(~pl.col("thread_id").is_in(big.implode()))
    ids = tw["tweet_id"].to_numpy()
    parent = dict(zip(ids.tolist(), tw["parent_id"].to_list()))
    role = dict(zip(ids.tolist(), tw["role"].to_list()))
    author = dict(zip(ids.tolist(), tw["author_id"].to_list()))
    created = dict(zip(ids.tolist(), tw["created_at"].dt.epoch("s").to_list()))

    # -- main chains and their runs
    deepest = (tw.sort(["thread_id", "depth", "created_at", "tweet_id"],
                       descending=[False, True, False, False])
               .group_by("thread_id", maintain_order=True).first().select("thread_id", "tweet_id"))
    on_chain: set[int] = set()
    exchanges: list[int] = []
    c_first: list[int] = []
    c_later: list[int] = []
    b_runs: list[int] = []
    trailing: list[int] = []
    brand_root: list[int] = []
    excluded = 0
    for _, leaf in deepest.iter_rows():
        chain = []
        t = leaf
        while t is not None:
            chain.append(t)
            on_chain.add(t)
            t = parent[t]
        chain.reverse()
        roles = "".join(role[x][0] for x in chain)
        runs: list[tuple[str, int]] = []
        for ch in roles:
            if runs and runs[-1][0] == ch:
                runs[-1] = (ch, runs[-1][1] + 1)
            else:
                runs.append((ch, 1))
        b0 = runs[0][0] == "b"
        if b0:
            runs = runs[1:]
        n_b = sum(1 for r in runs if r[0] == "b")
        if not runs or runs[0][0] != "c" or n_b == 0:
            excluded += 1
            continue
        brand_root.append(int(b0))
        exchanges.append(n_b)
        trailing.append(int(runs[-1][0] == "c" and len(runs) % 2 == 1))
        for i, (ch, n) in enumerate(runs):
            if ch == "b":
                b_runs.append(n - 1)
            elif i == 0:
                c_first.append(n - 1)
            else:
                c_later.append(n - 1)
    e_max = max(exchanges)
    e_counts = np.bincount(exchanges, minlength=e_max + 1)[1:]

    # -- side replies of chain tweets
    child_count: dict[int, int] = {}
    side_roles: dict[str, list[str]] = {"c": [], "b": []}
    for t, par in parent.items():
        if par is not None and t not in on_chain and par in on_chain:
            child_count[par] = child_count.get(par, 0) + 1
            side_roles[role[par][0]].append(role[t][0])
    ks = {"c": [], "b": []}
    for t in on_chain:
        ks[role[t][0]].append(child_count.get(t, 0))
    k_all = np.array(ks["c"] + ks["b"])
    side = {
        "p_c": float(np.mean(np.array(ks["c"]) > 0)),
        "p_b": float(np.mean(np.array(ks["b"]) > 0)),
        "mean_k": float(k_all[k_all > 0].mean()),
        "customer_given_c": float(np.mean([r == "c" for r in side_roles["c"]])),
        "customer_given_b": float(np.mean([r == "c" for r in side_roles["b"]])),
    }

    # -- reply ids not in the file (phantoms)
    in_file = set(ids.tolist())
    has_child = {p for p in parent.values() if p is not None}
    ph_with: list[int] = []
    ph_leaf: list[int] = []
    for t, lst in zip(ids.tolist(), tw["response_tweet_ids"].to_list()):
        k = sum(1 for x in lst if x not in in_file)
        (ph_with if t in has_child else ph_leaf).append(k)
    ph = np.array(ph_with)
    tail = ph[ph >= 4]
    # discrete power-law MLE approximation (Clauset et al. 2009, eq. 3.7) for k >= 4
    alpha = 1 + len(tail) / float(np.log(tail / 3.5).sum()) if len(tail) else 3.0

    # -- latencies (log seconds) by link type, and per brand for customer->brand
    lat: dict[str, list[float]] = {k: [] for k in LINKS}
    brand_lat: dict[str, list[float]] = {}
    for t, par in parent.items():
        if par is None:
            continue
        dt = created[t] - created[par]
        if dt <= 0:
            continue
        link = role[par][0] + role[t][0]
        lat[link].append(math.log(dt))
        if link == "cb":
            brand_lat.setdefault(author[t], []).append(math.log(dt))
    latency = {k: [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)] for k, v in lat.items()}
    mu_cb = float(np.mean(lat["cb"]))
    shrink = 10.0
    brand_mu = {b: round((sum(v) + shrink * mu_cb) / (len(v) + shrink), 4)
                for b, v in sorted(brand_lat.items())}

    # -- customers joining a conversation that another customer opened
    first_c = (tw.filter(pl.col("role") == "customer").sort("thread_id", "turn")
               .group_by("thread_id", maintain_order=True).agg(first=pl.col("author_id").first(),
                                                                all=pl.col("author_id")))
    later = first_c.explode("all").group_by("thread_id").agg(
        n=pl.len() - 1, other=(pl.col("all") != pl.col("first")).sum())
    other_customer = float(later["other"].sum() / max(1, later["n"].sum()))

    # -- brand sign-offs
    sign = (tw.filter(pl.col("role") == "brand").with_columns(style=_sign_style(pl.col("text")))
            .group_by("author_id").agg(n=pl.len(), signed=pl.col("style").is_not_null().mean(),
                                       style=pl.col("style").drop_nulls().mode().sort().first())
            .filter(pl.col("n") >= 5).sort("author_id"))
    brand_signoff = {b: [s or "none", round(float(r), 3)] for b, n, r, s in sign.iter_rows()
                     if s is not None and r >= 0.05}

    # -- surface features of the text, by role
    emo = r"[\x{1F300}-\x{1FAFF}\x{2600}-\x{27BF}]"
    surface = {}
    for r in ("customer", "brand"):
        t = tw.filter(pl.col("role") == r)["text"]
        surface[r] = {
            "emoji": round(float(t.str.contains(emo).mean()), 4),
            "url": round(float(t.str.contains("https://t.co/", literal=True).mean()), 4),
            "newline": round(float(t.str.contains("\n", literal=True).mean()), 4),
            "quote": round(float(t.str.contains('"', literal=True).mean()), 4),
            "hashtag": round(float(t.str.contains(r"#\w").mean()), 4),
            "amp": round(float(t.str.contains("&amp;", literal=True).mean()), 4),
            "mention_first": round(float(t.str.starts_with("@").mean()), 4),
        }
    n_threads = len(exchanges) + excluded
    dangling_threads = tw.filter(pl.col("depth") == 0, pl.col("parent_dangling")).height
    return {
        "note": (f"measured on {path.name}: {tw.height} tweets in {n_threads} threads "
                 f"({n_threads_all - n_threads} thread(s) over {OUTLIER_THREAD_SIZE} tweets left "
                 f"out, {excluded} without a customer->brand exchange skipped)"),
        "exchanges_pmf": [round(float(x), 5) for x in e_counts / e_counts.sum()],
        "brand_root": round(float(np.mean(brand_root)), 5),
        "runs": {"customer_open": _hurdle(c_first), "customer_later": _hurdle(c_later),
                 "brand": _hurdle(b_runs)},
        "trailing_customer": round(float(np.mean(trailing)), 5),
        "side": {k: round(v, 5) for k, v in side.items()},
        "phantom_pmf": [round(float(np.mean(ph == k)), 5) for k in range(4)],
        "phantom_tail_alpha": round(float(alpha), 4),
        "phantom_max": int(ph.max()) if len(ph) else 0,
        "phantom_leaf": round(float(np.mean(np.array(ph_leaf) > 0)), 5),
        "dangling_thread_share": round(dangling_threads / n_threads, 5),
        "other_customer": round(other_customer, 5),
        "latency": latency,
        "brand_reply_mu": brand_mu,
        "brand_signoff": brand_signoff,
        "surface": surface,
    }


# --------------------------------------------------------------------------------------------------
# the model, prepared once per run
# --------------------------------------------------------------------------------------------------
@dataclass
class Model:
    p: dict[str, Any]
    brands: Brands
    sectors: list[str]
    kinds: list[str]
    kind_cum: np.ndarray           # (n_sectors, n_kinds) cumulative kind probabilities
    exch_pmf: np.ndarray
    side_mult: float
    new_customer: float
    templates: pl.Series           # all templates, grouped
    tmpl_start: np.ndarray         # (n_stages, n_kinds)
    tmpl_count: np.ndarray
    # slot name -> (values, first index per sector, count per sector)
    slots: dict[str, tuple[pl.Series, np.ndarray, np.ndarray]]
    addons: pl.Series              # second sentences: customer ones grouped by kind, then brand ones
    addon_start: np.ndarray        # (n_kinds + 1,): customer groups by kind, last = brand
    addon_count: np.ndarray
    pools: dict[str, pl.Series]
    t_start: int
    t_end: int
    hour_pmf: np.ndarray


def build_model(p: dict[str, Any]) -> Model:
    cal = p["calibrated"]
    brands = brand_table(p)
    sectors = list(p["sectors"])
    kinds = list(p["kinds"])
    mix = np.zeros((len(sectors), len(kinds)))
    for i, s in enumerate(sectors):
        for k, w in p["sectors"][s]["kinds"].items():
            mix[i, kinds.index(k)] = w
    mix /= mix.sum(axis=1, keepdims=True)
    text = p["text"]
    tmpl: list[str] = []
    start = np.zeros((len(STAGES), len(kinds)), dtype=np.int64)
    count = np.zeros_like(start)
    for si, stage in enumerate(STAGES):
        group = text["templates"].get(stage) or {}
        shared = list(group.get("any", []))
        own_only = set(text["addons"].get("own_only", []))
        for ki, kind in enumerate(kinds):
            own = list(group.get(kind, []))
            items = own if (own and kind in own_only) else own + shared
            if not items:
                raise ScrmError(f"synthetic params: no template for stage {stage!r}, kind {kind!r}.")
            start[si, ki] = len(tmpl)
            count[si, ki] = len(items)
            tmpl.extend(items)
    slots = {}
    for name, spec in text["slots"].items():
        values: list[str] = []
        s_start = np.zeros(len(sectors), dtype=np.int64)
        s_count = np.zeros(len(sectors), dtype=np.int64)
        for i, sec in enumerate(sectors):
            items = list(spec.get(sec) or spec["default"]) if isinstance(spec, dict) else list(spec)
            s_start[i] = len(values)
            s_count[i] = len(items)
            values.extend(items)
        slots[name] = (pl.Series(values, dtype=pl.String), s_start, s_count)
    pools = {k: pl.Series(v, dtype=pl.String) for k, v in text["pools"].items()}
    ad = text["addons"]
    add_items: list[str] = []
    a_start = np.zeros(len(kinds) + 1, dtype=np.int64)
    a_count = np.zeros_like(a_start)
    groups = [list(ad["customer"].get(kd, []))
              + ([] if kd in ad.get("own_only", []) else list(ad["customer"].get("any", [])))
              for kd in kinds]
    for i, items in enumerate([*groups, list(ad["brand"])]):
        a_start[i], a_count[i] = len(add_items), len(items)
        add_items.extend(items)
    tw = p["time"]
    return Model(
        p=p, brands=brands, sectors=sectors, kinds=kinds, kind_cum=np.cumsum(mix, axis=1),
        exch_pmf=_tilted(p["fitted"]["exchanges_pmf"], cal["exchange_tilt"]),
        side_mult=cal["side_multiplier"], new_customer=cal["new_customer"],
        templates=pl.Series(tmpl, dtype=pl.String), tmpl_start=start, tmpl_count=count,
        slots=slots, pools=pools, addons=pl.Series(add_items, dtype=pl.String),
        addon_start=a_start, addon_count=a_count,
        t_start=_epoch(tw["window_start"]), t_end=_epoch(tw["window_end"]),
        hour_pmf=np.asarray(tw["hour_profile"], dtype=float) / float(sum(tw["hour_profile"])),
    )


def _epoch(value: Any) -> int:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


# --------------------------------------------------------------------------------------------------
# vectorised helpers
# --------------------------------------------------------------------------------------------------
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


def _random_codes(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> pl.Series:
    idx = rng.integers(0, len(alphabet), size=(n, width))
    raw = alphabet[idx].reshape(-1).tobytes()
    arr = np.frombuffer(raw, dtype=f"S{width}")
    return pl.Series(arr).cast(pl.String)


def _pick(rng: np.random.Generator, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    return start + np.floor(rng.random(len(start)) * count).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# one chunk of threads
# --------------------------------------------------------------------------------------------------
@dataclass
class _State:
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
                      model.t_start - _epoch(tm["oldest"]))
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
    text = _texts(model, rng, frame)
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


# --------------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------------
def _choose(rng: np.random.Generator, pool: pl.Series, n: int) -> pl.Series:
    """``n`` uniform draws from a pool of strings."""
    return pool.gather(np.floor(rng.random(n) * len(pool)).astype(np.int64))


def _texts(model: Model, rng: np.random.Generator, f: pl.DataFrame) -> pl.Series:
    """Render tweet texts: a template by (stage, kind), more sentences, slots filled per sector, the
    surface quirks of the real file at the sample's rates, the @mention and the brand's sign-off."""
    n = f.height
    p = model.p
    tp = p["text"]
    stage = f["_stage"].to_numpy()
    kind = f["_kind"].to_numpy()
    sector = f["_sector"].to_numpy()
    cust = f["_cust"].to_numpy()
    sf = p["fitted"]["surface"]
    scale = tp["extra_rates"]
    rate = {k: np.where(cust, sf["customer"][k] * scale["customer"].get(k, 1.0),
                        sf["brand"][k] * scale["brand"].get(k, 1.0)) for k in sf["customer"]}
    happy = np.isin(stage, [S["c_close_ok"], S["b_later_ok"]]) | (
        (np.array(model.kinds)[kind] == "praise") & np.isin(stage, [S["open"], S["b_first"]]))

    def when(mask: np.ndarray, then: pl.Expr, other: pl.Expr) -> pl.Expr:
        return pl.when(pl.lit(pl.Series(mask))).then(then).otherwise(other)

    # body: template, then one or two more sentences (not for thanks, wrap-ups, announcements);
    # each step is materialised so that the expression never nests itself
    fr = pl.DataFrame({"_b": model.templates.gather(
        _pick(rng, model.tmpl_start[stage, kind], model.tmpl_count[stage, kind]))})
    body = pl.col("_b")

    def step(expr: pl.Expr) -> None:
        nonlocal fr
        fr = fr.with_columns(_b=expr)

    ad = tp["addons"]
    grp = np.where(cust, kind, len(model.kinds))
    add_ok = ~np.isin(stage, [S["c_close_ok"], S["b_later_ok"], S["b_root"], S["b_cont"]])
    for r in (np.where(cust, ad["customer_rate"], ad["brand_rate"]),
              np.where(cust, ad["customer_second"], 0.0)):
        addon = pl.lit(model.addons.gather(_pick(rng, model.addon_start[grp],
                                                 model.addon_count[grp])))
        sep = pl.when(body.str.contains(r"[.!?]$")).then(pl.lit(" ")).otherwise(pl.lit(". "))
        step(when(add_ok & (rng.random(n) < r), body + sep + addon, body))
    # quirks carried by phrases: a quoted phrase (double quotes in the CSV), "&amp;" for "and"
    q_c = pl.Series(tp["quoted"]["customer"], dtype=pl.String)
    q_b = pl.Series(tp["quoted"]["brand"], dtype=pl.String)
    quoted = when(cust, pl.lit(_choose(rng, q_c, n)), pl.lit(_choose(rng, q_b, n)))
    step(when(rng.random(n) < rate["quote"], body + pl.lit(" ") + quoted, body))
    step(when(rng.random(n) < rate["amp"], body.str.replace(" and ", " &amp; ", literal=True), body))
    step(when(rng.random(n) < rate["newline"], body.str.replace(r"([.!?]) ", "$1\n"), body))
    # slots
    cols: dict[str, pl.Series] = {}
    for name, (values, start, count) in model.slots.items():
        cols[name] = values.gather(_pick(rng, start[sector], count[sector]))
    cols["url"] = "https://t.co/" + _random_codes(rng, n, 10, _B62)
    cols["ref"] = _random_codes(rng, n, 6, _UPPER)
    cols["order"] = pl.Series(rng.integers(10**8, 10**9, size=n)).cast(pl.String)
    cols["n"] = pl.Series(rng.integers(2, 13, size=n)).cast(pl.String)
    cols["amount"] = pl.Series(rng.integers(5, 400, size=n)).cast(pl.String)
    fr = fr.with_columns(**cols)
    filled = body
    for name in cols:
        filled = filled.str.replace_all("{" + name + "}", pl.col(name), literal=True)
    step(filled)
    # suffixes: hashtag (customers), emoji (brands: friendly ones only), link
    pools = model.pools
    emo = when(happy | ~cust, pl.lit(_choose(rng, pools["emoji_positive"], n)),
               pl.lit(_choose(rng, pools["emoji_negative"], n)))
    tag = when(happy, pl.lit(_choose(rng, pools["hashtags_positive"], n)),
               pl.lit(_choose(rng, pools["hashtags_negative"], n)))
    empty = pl.lit("")
    core = (body
            + when(rng.random(n) < rate["hashtag"], pl.lit(" ") + tag, empty)
            + when(rng.random(n) < rate["emoji"], pl.lit(" ") + emo, empty)
            + when(rng.random(n) < rate["url"], pl.lit(" ") + pl.col("url"), empty))
    # sign-offs: ^AB / -AB / *AB / -Name, in the brand's style at the brand's rate
    bi = f["_brand_idx"].to_numpy()
    signed = (~cust) & (rng.random(n) < model.brands.sign_rate[bi]) & (stage != S["b_root"])
    style = np.where(signed, model.brands.sign_style[bi], 0)
    ini = pl.lit(_random_codes(rng, n, 2, _UPPER[:24]))
    agent = pl.lit(_choose(rng, pools["agents"], n))
    sign = (when(style == 1, pl.lit(" ^") + ini,
            when(style == 2, pl.lit(" -") + ini,
            when(style == 3, pl.lit(" *") + ini,
            when(style == 4, pl.lit(" -") + agent, empty)))))
    # the @mention: customers name the brand (mostly first), brands the customer they answer
    u = rng.random(n)
    brand_at = pl.lit("@") + pl.col("_brand")
    text = when(cust & (u < sf["customer"]["mention_first"]), brand_at + pl.lit(" ") + core,
           when(cust & (u < 0.95), core + pl.lit(" ") + brand_at,
           when(cust, pl.lit(".") + brand_at + pl.lit(" ") + core,
           when(stage == S["b_root"], core,
                pl.lit("@") + pl.col("_to").cast(pl.String) + pl.lit(" ") + core + sign))))
    return fr.with_columns(f["_brand"], f["_to"]).select(text.alias("text")).to_series()


# --------------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------------
def generate(path: Path | str, rows: int, seed: int = 42, params: dict[str, Any] | None = None,
             progress: bool | None = None, truth_path: Path | str | None = None) -> dict[str, Any]:
    """Write ``rows`` synthetic tweets of the real file's shape to ``path`` (CSV); deterministic.

    ``truth_path`` (optional) gets the generator's ground truth per opening (tweet_id, brand, kind):
    what the complaint stages should recover. Progress goes to stderr for large ``rows``.
    """
    if rows < 1:
        raise ScrmError(f"--rows must be at least 1 (got {rows}).")
    p = params or load_params()
    model = build_model(p)
    path = Path(path)
    state = _State(next_tweet_id=1, next_customer=p["customers"]["first_id"],
                   first_customer=p["customers"]["first_id"], rows_left=int(rows))
    show = (rows >= 200_000) if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=rows, unit="rows", unit_scale=True, file=sys.stderr, desc="synthetic")
    truths: list[pl.DataFrame] = []
    chunk = 0
    ss = np.random.SeedSequence([int(seed), 0x5C12])
    with path.open("wb") as fh:
        fh.write((",".join(EXPECTED_COLUMNS) + "\n").encode())
        while state.rows_left > 0:
            rng = np.random.default_rng(ss.spawn(1)[0])
            before = state.rows_left
            # small files draw only about the threads they need (a function of rows, so still
            # deterministic); large ones go in fixed chunks of CHUNK_THREADS
            need = int(state.rows_left / p["calibrated"]["rows_per_thread"] * 1.1) + 50
            df, truth = _chunk(model, rng, min(CHUNK_THREADS, need), state)
            df.write_csv(fh, include_header=False, quote_style="necessary")
            if truth_path is not None:
                truths.append(truth)
            if bar is not None:
                bar.update(before - state.rows_left)
            chunk += 1
    if bar is not None:
        bar.close()
    if truth_path is not None:
        from .. import io as sio

        t = pl.concat(truths).with_columns(
            kind=pl.col("kind").replace_strict(list(range(len(model.kinds))), model.kinds,
                                               return_dtype=pl.String))
        sio.write_parquet(t, truth_path)
    return {"rows": int(rows), "seed": int(seed), "chunks": chunk,
            "last_tweet_id": state.next_tweet_id - 1,
            "customers": state.next_customer - p["customers"]["first_id"]}


GENERATED_MARKER = ("# ---- generated by `python -m scrm.data.synthetic derive --write`: "
                    "do not edit below ----")


def derived_yaml(csv_path: Path | str | None = None) -> str:
    """The ``fitted`` and ``calibrated`` blocks as YAML text (measured now, on the sample)."""
    fitted = derive_from_sample(csv_path)
    p = load_params()
    p["fitted"] = fitted
    out = {"fitted": fitted, "calibrated": calibrate(p)}
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)


def write_derived(text: str, path: Path | None = None) -> Path:
    """Replace everything below the marker of the params file with freshly derived blocks."""
    from .. import io as sio

    path = path or params_path()
    head = path.read_text(encoding="utf-8").split(GENERATED_MARKER)[0].rstrip("\n")
    sio.write_text(path, head + "\n\n" + GENERATED_MARKER + "\n" + text)
    _load_yaml.cache_clear()
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m scrm.data.synthetic derive`` prints the fitted + calibrated blocks as YAML."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m scrm.data.synthetic")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("derive", help="measure the fitted block on the real sample, print YAML")
    d.add_argument("--csv", default=None)
    d.add_argument("--write", action="store_true",
                   help=f"replace the generated blocks at the end of {PARAMS_RESOURCE}")
    g = sub.add_parser("generate", help="write a synthetic CSV")
    g.add_argument("path")
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)
    if a.cmd == "derive":
        text = derived_yaml(a.csv)
        if a.write:
            write_derived(text)
        print(text, end="")
    else:
        print(generate(a.path, rows=a.rows, seed=a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
