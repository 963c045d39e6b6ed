"""Deriving the generator's ``fitted`` and ``calibrated`` blocks from the real sample.

:func:`derive_from_sample` measures the ``fitted`` block on threaded tweets (the table
``data/interim/tweets.parquet`` holds: the prepare stage's clean tweets with ``thread_id``,
``parent_id``, ``role``, ``depth``, ``turn``, ``parent_dangling``). It takes that table from its caller
rather than building it: this package sits before fetch in the pipeline (fetch generates with it), so
it must not import the prepare stage that runs after fetch. ``scrm synthetic derive`` builds the table
with :func:`scrm.data.prepare.threaded_tweets` and hands it over.

:func:`calibrate` then solves the two knobs that make the full-file shares of the ``published`` block
come out right (rows without a parent, rows without replies, customers per row), and
:func:`.vocabulary.calibrate_vocabulary` those of the open vocabulary (tweet lengths and distinct
words as in the sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import yaml

from ...stats.powerlaw import discrete_alpha
from ...text import URL_RE
from .model import tilted
from .params import load_params
from .vocabulary import calibrate_vocabulary, fit_vocabulary

OUTLIER_THREAD_SIZE = 50        # sample threads above this are left out of the fit (see fitted.note)
LINKS = ("cb", "bc", "cc", "bb")  # parent role -> child role


def _run_mean(pq: Sequence[float]) -> float:
    """Mean length of a run: 1, plus with probability p one more and then geometric (q) more."""
    p, q = pq
    return 1 + p / (1 - q)


def _structure_means(fit: dict[str, Any], theta: float) -> dict[str, float]:
    """Expected chain tweets by role, per thread, for an exchange tilt ``theta`` (no side leaves)."""
    pmf = tilted(fit["exchanges_pmf"], theta)
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


def _hurdle(extras: pl.Series) -> list[float]:
    """Run-length extras as (p, q): P(any extra) = p; beyond the first, geometric with 'one more' q."""
    x = extras.cast(pl.Float64).to_numpy()
    if not len(x):
        return [0.0, 0.0]
    pos = x[x > 0] - 1
    m = float(pos.mean()) if len(pos) else 0.0
    return [round(float(np.mean(x > 0)), 5), round(m / (1 + m), 5)]


def _sign_style(text: pl.Expr) -> pl.Expr:
    """A brand tweet's sign-off style (caret ^AB, dash -AB, star *AB, name -Name), else null."""
    t = text.str.strip_chars()
    return (pl.when(t.str.contains(r"\^\s?[A-Z]{1,4}$")).then(pl.lit("caret"))
            .when(t.str.contains(r"\s-\s?[A-Z]{1,4}$")).then(pl.lit("dash"))
            .when(t.str.contains(r"\*\s?[A-Z]{1,4}$")).then(pl.lit("star"))
            .when(t.str.contains(r"\s-\s?[A-Z][a-z]{2,12}$")).then(pl.lit("name"))
            .otherwise(None))


def _chain_tweets(tw: pl.DataFrame) -> pl.DataFrame:
    """The main chain of every thread (root to its deepest tweet, earliest on ties): thread_id,
    tweet_id, depth, role; found by walking up from the deepest tweets one reply level at a time."""
    deepest = (tw.sort(["thread_id", "depth", "created_at", "tweet_id"],
                       descending=[False, True, False, False])
               .group_by("thread_id", maintain_order=True).first())
    up = tw.select("tweet_id", "parent_id")
    level = deepest.select("thread_id", "tweet_id")
    levels = [level]
    while level.height:
        level = (level.join(up, on="tweet_id").filter(pl.col("parent_id").is_not_null())
                 .select("thread_id", tweet_id="parent_id"))
        levels.append(level)
    return (pl.concat(levels).join(tw.select("tweet_id", "depth", "role"), on="tweet_id")
            .sort("thread_id", "depth"))


def _runs(chain: pl.DataFrame) -> tuple[dict[str, Any], int, int]:
    """Exchanges and run lengths of the main chains: (fitted entries, threads used, skipped).

    A chain is runs of same-role tweets; a leading brand run (an announcement as root) is counted
    apart; chains without a customer run followed by a brand run are skipped."""
    runs = (chain.with_columns(run=pl.col("role").rle_id().over("thread_id"))
            .group_by("thread_id", "run", maintain_order=True)
            .agg(brand=pl.col("role").first() == "brand", extra=pl.len() - 1))
    b0 = runs.group_by("thread_id").agg(b0=pl.col("brand").sort_by("run").first())
    runs = (runs.join(b0, on="thread_id").with_columns(k=pl.col("run") - pl.col("b0").cast(pl.Int64))
            .filter(pl.col("k") >= 0))
    per_thread = runs.group_by("thread_id").agg(
        n_b=pl.col("brand").sum(), n_runs=pl.len(), first_c=~pl.col("brand").sort_by("k").first(),
        last_c=~pl.col("brand").sort_by("k").last(), b0=pl.col("b0").first())
    used = per_thread.filter(pl.col("first_c") & (pl.col("n_b") > 0))
    runs = runs.join(used.select("thread_id"), on="thread_id")
    exchanges = used["n_b"].to_numpy()
    e_counts = np.bincount(exchanges, minlength=int(exchanges.max()) + 1)[1:]
    trailing = used["last_c"] & (used["n_runs"] % 2 == 1)
    fitted = {
        "exchanges_pmf": [round(float(x), 5) for x in e_counts / e_counts.sum()],
        "brand_root": round(float(used["b0"].cast(pl.Float64).mean()), 5),
        "runs": {"customer_open": _hurdle(runs.filter(~pl.col("brand"), pl.col("k") == 0)["extra"]),
                 "customer_later": _hurdle(runs.filter(~pl.col("brand"), pl.col("k") > 0)["extra"]),
                 "brand": _hurdle(runs.filter(pl.col("brand"))["extra"])},
        "trailing_customer": round(float(trailing.cast(pl.Float64).mean()), 5),
    }
    return fitted, used.height, b0.height - used.height


def _side_replies(tw: pl.DataFrame, on_chain: pl.Series) -> dict[str, float]:
    """How often chain tweets get side replies (by role), how many, and who writes them."""
    marked = tw.with_columns(on_chain=pl.col("tweet_id").is_in(on_chain.implode()))
    parents = marked.select(parent_id="tweet_id", parent_on_chain="on_chain", parent_role="role")
    side = (marked.filter(~pl.col("on_chain")).join(parents, on="parent_id")
            .filter(pl.col("parent_on_chain")))
    kids = side.group_by("parent_id").agg(k=pl.len()).rename({"parent_id": "tweet_id"})
    chain = (marked.filter(pl.col("on_chain")).join(kids, on="tweet_id", how="left")
             .with_columns(pl.col("k").fill_null(0)))
    by_role = {r: chain.filter(pl.col("role") == r)["k"] for r in ("customer", "brand")}
    answered = {r: side.filter(pl.col("parent_role") == r)["role"] for r in ("customer", "brand")}
    return {
        "p_c": round(float((by_role["customer"] > 0).mean()), 5),
        "p_b": round(float((by_role["brand"] > 0).mean()), 5),
        "mean_k": round(float(chain.filter(pl.col("k") > 0)["k"].mean()), 5),
        "customer_given_c": round(float((answered["customer"] == "customer").mean()), 5),
        "customer_given_b": round(float((answered["brand"] == "customer").mean()), 5),
    }


def _phantoms(tw: pl.DataFrame) -> dict[str, Any]:
    """Reply ids listed in ``response_tweet_id`` but not in the file, per tweet with replies in the
    file (distribution, power-law tail) and per leaf (share listing one)."""
    ids = tw["tweet_id"].implode()
    missing = tw.select(
        has_child=pl.col("tweet_id").is_in(tw["parent_id"].drop_nulls().implode()),
        k=pl.col("response_tweet_ids").list.eval(~pl.element().is_in(ids)).list.sum().fill_null(0))
    ph = missing.filter(pl.col("has_child"))["k"].to_numpy()
    alpha = discrete_alpha(ph, k_min=4) if (ph >= 4).any() else 3.0
    return {
        "phantom_pmf": [round(float(np.mean(ph == k)), 5) for k in range(4)],
        "phantom_tail_alpha": round(float(alpha), 4),
        "phantom_max": int(ph.max()) if len(ph) else 0,
        "phantom_leaf": round(float((missing.filter(~pl.col("has_child"))["k"] > 0).mean()), 5),
    }


def _latencies(tw: pl.DataFrame) -> dict[str, Any]:
    """Lognormal reply latencies (log seconds) by link type (parent role -> child role), and the
    mean for each brand's replies to customers, shrunk towards all brands' mean."""
    parents = tw.select(parent_id="tweet_id", parent_at="created_at", parent_role="role")
    links = (tw.join(parents, on="parent_id", maintain_order="left")
             .with_columns(dt=(pl.col("created_at") - pl.col("parent_at")).dt.total_seconds())
             .filter(pl.col("dt") > 0)
             .select("author_id", log_dt=pl.col("dt").cast(pl.Float64).log(),
                     link=pl.col("parent_role").str.head(1) + pl.col("role").str.head(1)))
    lat = {k: links.filter(pl.col("link") == k)["log_dt"].to_numpy() for k in LINKS}
    mu_cb = float(np.mean(lat["cb"]))
    shrink = 10.0
    brand_mu = (links.filter(pl.col("link") == "cb").group_by("author_id")
                .agg(pl.col("log_dt").sum(), n=pl.len()).sort("author_id"))
    return {
        "latency": {k: [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)]
                    for k, v in lat.items()},
        "brand_reply_mu": {b: round((s + shrink * mu_cb) / (n + shrink), 4)
                           for b, s, n in brand_mu.iter_rows()},
    }


def derive_from_sample(tweets: pl.DataFrame, source: str) -> dict[str, Any]:
    """Measure the generator's ``fitted`` block on threaded ``tweets`` of the real sample (the numbers
    in the YAML); ``source`` names the file they came from in the block's note.

    The main chain of a thread is the path from its root to its deepest tweet (earliest on ties);
    everything else is a side reply. Threads above ``OUTLIER_THREAD_SIZE`` tweets are left out.
    """
    sizes = tweets.group_by("thread_id").len()
    big = sizes.filter(pl.col("len") > OUTLIER_THREAD_SIZE)["thread_id"]
    tw = tweets.filter(~pl.col("thread_id").is_in(big.implode()))
    chain = _chain_tweets(tw)
    runs, used, excluded = _runs(chain)

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
    links = (tw.filter(pl.col("role") == "brand")["text"].str.extract_all(URL_RE).explode()
             .drop_nulls())
    n_threads = used + excluded
    dangling_threads = tw.filter(pl.col("depth") == 0, pl.col("parent_dangling")).height
    lat = _latencies(tw)
    return {
        "note": (f"measured on {source}: {tw.height} tweets in {n_threads} threads "
                 f"({sizes.height - n_threads} thread(s) over {OUTLIER_THREAD_SIZE} tweets left "
                 f"out, {excluded} without a customer->brand exchange skipped)"),
        **runs,
        "side": _side_replies(tw, chain["tweet_id"]),
        **_phantoms(tw),
        "dangling_thread_share": round(dangling_threads / n_threads, 5),
        "other_customer": round(other_customer, 5),
        "latency": lat["latency"],
        "brand_reply_mu": lat["brand_reply_mu"],
        "brand_signoff": brand_signoff,
        "surface": surface,
        # share of brand links that appear more than once: the brand's own pages, posted again
        "brand_link_reuse": round(float(links.is_duplicated().mean()) if len(links) else 0.0, 4),
        "vocabulary": fit_vocabulary(tweets),
    }


def derived_yaml(tweets: pl.DataFrame, source: str) -> str:
    """The ``fitted`` and ``calibrated`` blocks as YAML text, measured now on threaded ``tweets``
    (see :func:`derive_from_sample`)."""
    fitted = derive_from_sample(tweets, source)
    p = load_params()
    p["fitted"] = fitted
    structural = calibrate(p)
    p["calibrated"] = {**p.get("calibrated", {}), **structural}
    out = {"fitted": fitted, "calibrated": {**structural, **calibrate_vocabulary(p)}}
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)
