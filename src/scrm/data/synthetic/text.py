"""Tweet texts for a chunk of generated rows, with the surface quirks of the real file.

A template by (stage, kind), more sentences, slots filled per sector, quoted phrases, ``&amp;``,
newlines, misspellings, hashtags, emoji, ``https://t.co/...`` links (brands repeat their own), the
@mention and the brand's sign-off, each at the rates measured on the sample, then open words
(:mod:`.lexicon`) up to a length drawn from the sample's. Every draw is a whole-array numpy draw in a fixed order, so the
texts are a function of the generator's random stream.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .lexicon import draw_words, misspell, open_clauses, word_count
from .model import S, Model

_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_UPPER = np.frombuffer(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", dtype=np.uint8)


def _random_codes(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> pl.Series:
    """``n`` random codes of ``width`` characters from ``alphabet`` (ASCII bytes)."""
    idx = rng.integers(0, len(alphabet), size=(n, width))
    raw = alphabet[idx].reshape(-1).tobytes()
    arr = np.frombuffer(raw, dtype=f"S{width}")
    return pl.Series(arr).cast(pl.String)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _fixed_codes(ids: np.ndarray, width: int = 10) -> pl.Series:
    """One base-62 code of ``width`` characters per id, always the same for the same id (a
    multiplicative hash): the links a brand posts again and again."""
    x = np.asarray(ids, dtype=np.uint64) * _MIX          # wraps modulo 2**64
    x ^= x >> np.uint64(29)
    digits = np.empty((len(x), width), dtype=np.int64)
    for j in range(width):
        digits[:, j] = (x % np.uint64(62)).astype(np.int64)
        x //= np.uint64(62)
    raw = _B62[digits].reshape(-1).tobytes()
    return pl.Series(np.frombuffer(raw, dtype=f"S{width}")).cast(pl.String)


def _pick(rng: np.random.Generator, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """One uniform index per row into its group ``[start, start + count)`` of a flattened table."""
    return start + np.floor(rng.random(len(start)) * count).astype(np.int64)


def _choose(rng: np.random.Generator, pool: pl.Series, n: int) -> pl.Series:
    """``n`` uniform draws from a pool of strings."""
    return pool.gather(np.floor(rng.random(n) * len(pool)).astype(np.int64))


def render_texts(model: Model, rng: np.random.Generator, f: pl.DataFrame) -> pl.Series:
    """Render tweet texts: a template by (stage, kind), more sentences, slots filled per sector, the
    surface quirks of the real file at the sample's rates, the @mention and the brand's sign-off,
    then open words up to a length drawn from the sample's (:func:`.lexicon.open_clauses`; the
    template's own words, mention and suffixes included, count towards it)."""
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
    # links: fresh ones, except that brands post their own few links again, at the sample's share of
    # brand links that appear more than once
    codes = _random_codes(rng, n, 10, _B62)
    brand_idx = f["_brand_idx"].to_numpy()
    again = np.flatnonzero(~cust & (rng.random(n) < p["fitted"]["brand_link_reuse"]))
    which = np.minimum(rng.geometric(1.0 / tp["brand_links"], size=len(again)), 63)
    cols["url"] = "https://t.co/" + codes.scatter(again, _fixed_codes(brand_idx[again] * 64 + which))
    cols["ref"] = _random_codes(rng, n, 6, _UPPER)
    cols["order"] = pl.Series(rng.integers(10**8, 10**9, size=n)).cast(pl.String)
    cols["n"] = pl.Series(rng.integers(2, 13, size=n)).cast(pl.String)
    cols["amount"] = pl.Series(rng.integers(5, 400, size=n)).cast(pl.String)
    fr = fr.with_columns(**cols)
    filled = body
    for name in cols:
        filled = filled.str.replace_all("{" + name + "}", pl.col(name), literal=True)
    step(filled)
    # misspellings: one typo in an early word of the body, at the role's rate
    role = np.where(cust, 0, 1)
    ov = model.open
    fr = fr.with_columns(_b=misspell(rng, fr["_b"], ov.typo_rate[role]))
    # suffixes: hashtag (customers; from the pool or an open word), emoji (brands: friendly ones
    # only), link
    pools = model.pools
    emo = when(happy | ~cust, pl.lit(_choose(rng, pools["emoji_positive"], n)),
               pl.lit(_choose(rng, pools["emoji_negative"], n)))
    tag = when(happy, pl.lit(_choose(rng, pools["hashtags_positive"], n)),
               pl.lit(_choose(rng, pools["hashtags_negative"], n)))
    has_tag = rng.random(n) < rate["hashtag"]
    open_tag = np.flatnonzero(has_tag & (rng.random(n) < ov.hashtag_share))
    tags = fr.select(tag).to_series().scatter(
        open_tag, "#" + draw_words(ov, rng, role[open_tag], kind[open_tag], brand_idx[open_tag]))
    empty = pl.lit("")
    fr = fr.with_columns(
        _sfx=(when(has_tag, pl.lit(" ") + pl.lit(tags), empty)
              + when(rng.random(n) < rate["emoji"], pl.lit(" ") + emo, empty)
              + when(rng.random(n) < rate["url"], pl.lit(" ") + pl.col("url"), empty)))
    # sign-offs: ^AB / -AB / *AB / -Name, in the brand's style at the brand's rate
    signed = (~cust) & (rng.random(n) < model.brands.sign_rate[brand_idx]) & (stage != S["b_root"])
    style = np.where(signed, model.brands.sign_style[brand_idx], 0)
    ini = pl.lit(_random_codes(rng, n, 2, _UPPER[:24]))
    agent = pl.lit(_choose(rng, pools["agents"], n))
    fr = fr.with_columns(_sign=(when(style == 1, pl.lit(" ^") + ini,
                                when(style == 2, pl.lit(" -") + ini,
                                when(style == 3, pl.lit(" *") + ini,
                                when(style == 4, pl.lit(" -") + agent, empty))))),
                         _brand=f["_brand"], _to=f["_to"].cast(pl.String))
    # the @mention: customers name the brand (mostly first), brands the customer they answer
    u = rng.random(n)
    brand_at = pl.lit("@") + pl.col("_brand")

    def assemble(text_body: pl.Expr) -> pl.Expr:
        core = text_body + pl.col("_sfx")
        return when(cust & (u < sf["customer"]["mention_first"]), brand_at + pl.lit(" ") + core,
               when(cust & (u < 0.95), core + pl.lit(" ") + brand_at,
               when(cust, pl.lit(".") + brand_at + pl.lit(" ") + core,
               when(stage == S["b_root"], core,
                    pl.lit("@") + pl.col("_to") + pl.lit(" ") + core + pl.col("_sign")))))

    # open words: as many as bring the tweet to a length drawn from the sample's (words per tweet)
    base_words = fr.select(word_count(assemble(body))).to_series().to_numpy()
    clause = open_clauses(ov, rng, base_words, role, kind, brand_idx)
    fr = fr.with_columns(_o=clause)
    with_open = pl.when(pl.col("_o") == "").then(body).otherwise(body + pl.lit(" ") + pl.col("_o"))
    return fr.select(assemble(with_open).alias("text")).to_series()
