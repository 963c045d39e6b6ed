"""The generator's model, prepared once per run from the parameters: brands, mixes, templates, time.

Brand weights follow the published top-ten counts, then a Zipf tail fitted so that all brand tweets
add up (:func:`tail_exponent`); the exchange-count distribution is the fitted one tilted by the
calibrated knob (:func:`tilted`). Templates, slots and second sentences are flattened into one
string series each, with start/count index tables by (stage, kind) or sector, so that the generator
draws them for whole chunks with numpy indexing. The open vocabulary (:mod:`.lexicon`) is prepared
here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import polars as pl

from ...errors import ScrmError
from . import lexicon

# text stages (what a tweet does in its conversation); templates are keyed by these names
STAGES = ("open", "c_nudge", "c_reply", "c_close_ok", "c_close_bad", "c_side",
          "b_root", "b_first", "b_later", "b_later_ok", "b_cont", "b_side")
S = {name: i for i, name in enumerate(STAGES)}


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


def tilted(pmf: Sequence[float], theta: float) -> np.ndarray:
    """``pmf`` reweighted by ``theta`` per step (k -> theta^k) and renormalised: theta < 1 shortens."""
    base = np.asarray(pmf, dtype=float)
    w = base * theta ** np.arange(len(base))
    return w / w.sum()


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
    open: lexicon.OpenVocabulary   # words beyond the templates (see .lexicon)


def build_model(p: dict[str, Any]) -> Model:
    """Everything the generator draws from, as numpy/polars tables (see the module docstring)."""
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
        exch_pmf=tilted(p["fitted"]["exchanges_pmf"], cal["exchange_tilt"]),
        side_mult=cal["side_multiplier"], new_customer=cal["new_customer"],
        templates=pl.Series(tmpl, dtype=pl.String), tmpl_start=start, tmpl_count=count,
        slots=slots, pools=pools, addons=pl.Series(add_items, dtype=pl.String),
        addon_start=a_start, addon_count=a_count,
        t_start=epoch(tw["window_start"]), t_end=epoch(tw["window_end"]),
        hour_pmf=np.asarray(tw["hour_profile"], dtype=float) / float(sum(tw["hour_profile"])),
        open=lexicon.build(p, len(kinds), len(brands.handles)),
    )


def epoch(value: Any) -> int:
    """Seconds since 1970 of an ISO date (UTC when it names no zone)."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())
