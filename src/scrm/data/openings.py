"""A customer opening, its brand and whether it was answered: defined here and nowhere else.

Every research question starts from the same table (``data/processed/openings.parquet``, written by
``prepare``): one row per customer opening. Before this module existed, response time, outcome and
complaints each built their own openings with different brand and "answered" rules, so the same
sample had 131 unanswered openings in one stage and 0 in another.

Definitions
    *Opening*: a thread root written by a customer (inbound) that references no parent at all
    (``threads.is_opening``). Roots whose parent is missing from the file are threads, not openings.

    *Brand* of an opening: the author of the **first brand tweet in the thread** (by time, then id):
    the account that took the conversation up, known at that moment (a rule based on "the brand with
    most tweets" would depend on later turns). An opening no brand tweeted in gets the first @handle of
    its text that is a known brand account (Twitter ignores case; a handle seen in several casings maps
    to its smallest spelling). Else null. ``brand_source`` says which: ``first_reply``, ``mention``,
    ``none``.

    *Answered*, three definitions kept side by side (each has ``answered_<d>``, ``first_<d>_id``,
    ``first_<d>_at`` and ``first_<d>_author``):

    ``direct``    a brand tweet that replies directly to the opening;
    ``customer``  the first brand tweet in the thread that replies to any tweet of the opening's
                  customer (the opening or a later tweet of the same person);
    ``thread``    the first brand tweet anywhere in the thread (even a reply to a third party).

    ``answered``, ``first_response_id``, ``first_response_at``, ``responder`` and ``latency_s`` follow
    the definition chosen in params (``openings.answered_definition``). Latency is clipped at 0 (a
    reply stamped before its opening is a clock artefact, counted in ``negative_latency``).

    The default is ``customer``: a brand's reply to the customer's own later tweet ("hello??") is a
    response to that customer, while a brand tweet in the thread that replies to someone else (a
    third party who joined, or the replies under a promotional post) is not. ``direct`` misses the
    first kind, ``thread`` counts the second.

    *Non-requests*: openings that are not a customer asking a brand anything, flagged by transparent
    rules (params ``openings.non_request``), the first rule that fires naming the reason in
    ``non_request`` (null for a request; ``is_request`` = it is null):

    ``brand_account``     the author is a brand account (it writes outbound tweets) posting inbound;
    ``brand_alias``       the author is @mentioned in the openings of at least ``alias_min_mentioners``
                          other authors: an account customers address, in this data a brand's main or
                          marketing account (anonymised to a number like a customer) or a celebrity;
    ``broadcast``         a retweet-like broadcast (``broadcast_patterns``, e.g. ``^RT @``);
    ``promotional``       a marketing pattern (``promo_patterns``: contest, sweepstakes, "% off", ...)
                          in a tweet that carries a link (``promo_requires_link``);
    ``no_brand_mention``  the opening addresses no account (no @handle), names no known brand (a
                          brand's name is its handle without the support affixes of
                          ``brand_name_pattern``; names shorter than ``min_name_chars`` must match a
                          whole word) and, with ``no_brand_requires_link``, carries a link: a
                          broadcast addressed to nobody. Without the link condition the rule mostly
                          catches real requests that name a product instead of the brand ("my
                          Kindle", "Windows 10"), which brands find by search and answer.

    Only the text, the author and who else is addressed are used, never whether a brand answered,
    so the exclusion cannot make the service figures look better by construction. Stages that
    report service levels keep requests only when ``openings.exclude_non_requests`` is true
    (:func:`service_population`), and report the flagged count by reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from ..config import NonRequestSettings, OpeningsSettings

DEFINITIONS: Final = ("direct", "customer", "thread")
NON_REQUEST_RULES: Final = ("brand_account", "brand_alias", "broadcast", "promotional",
                            "no_brand_mention")
LINK_RE: Final = r"https?://|\bhtt\S*…"  # twcs cuts long tweets off with "…", links too
BRAND_SOURCES: Final = ("first_reply", "mention", "none")
HANDLE_RE: Final = r"@(\w+)"

OPENING_COLUMNS: dict[str, str] = {
    "opening_tweet_id": "tweet_id of the opening (= thread_id)",
    "thread_id": "thread the opening starts",
    "customer_id": "author of the opening",
    "opening_at": "created_at of the opening (UTC)",
    "opening_text": "text of the opening, unchanged",
    "brand": "brand of the opening (see module docstring); null when none can be told",
    "brand_source": "first_reply | mention | none",
    "multi_brand": "several brand accounts tweet in the thread",
    **{name.format(d=d): text.format(d=d) for d in DEFINITIONS for name, text in (
        ("answered_{d}", "answered under definition {d}"),
        ("first_{d}_id", "tweet_id of the first brand tweet under definition {d}"),
        ("first_{d}_at", "created_at of that tweet"),
        ("first_{d}_author", "brand account that wrote it"))},
    "answered": "answered under the chosen definition",
    "first_response_id": "first brand response under the chosen definition",
    "first_response_at": "its created_at",
    "responder": "its author",
    "latency_s": "seconds from the opening to the first response (clipped at 0; null if unanswered)",
    "non_request": "why the opening is not a customer request (a rule of NON_REQUEST_RULES), else null",
    "is_request": "the opening is a customer request (no non-request rule fired)",
}


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def known_brands(tweets: pl.LazyFrame) -> pl.LazyFrame:
    """(handle lower case, mention_brand): brand accounts seen as authors, smallest spelling per key."""
    return (tweets.filter(pl.col("role") == "brand")
            .select(pl.col("author_id").alias("mention_brand")).unique()
            .group_by(handle=pl.col("mention_brand").str.to_lowercase())
            .agg(pl.col("mention_brand").min()))


def mentioned_brand(openings: pl.LazyFrame, brands: pl.LazyFrame) -> pl.LazyFrame:
    """(opening_tweet_id, mention_brand): the first @handle of the opening that is a known brand."""
    return (openings.select("opening_tweet_id", handle=pl.col("opening_text").str.extract_all(HANDLE_RE))
            .explode("handle").drop_nulls("handle")
            .with_columns(pos=pl.int_range(pl.len()).over("opening_tweet_id"),
                          handle=pl.col("handle").str.strip_prefix("@").str.to_lowercase())
            .join(brands, on="handle", how="inner")
            .group_by("opening_tweet_id")
            .agg(pl.col("mention_brand").sort_by("pos").first()))


def _first(brand_tweets: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The earliest of the given brand tweets per thread, as first_<name>_{id,at,author}."""
    return (brand_tweets.sort("thread_id", "created_at", "tweet_id")
            .group_by("thread_id", maintain_order=True)
            .agg(pl.col("tweet_id").first().alias(f"first_{name}_id"),
                 pl.col("created_at").first().alias(f"first_{name}_at"),
                 pl.col("author_id").first().alias(f"first_{name}_author")))


def brand_names(brands: pl.LazyFrame, pattern: str) -> list[str]:
    """Brand names from their handles: group 1 of ``pattern`` on the lower-cased handle, letters and
    digits only (``AmazonHelp`` -> ``amazon``, ``Ask_WellsFargo`` -> ``wellsfargo``)."""
    names = (brands.select(name=pl.col("handle").str.extract(pattern, 1)
                           .str.replace_all(r"[^\p{L}\p{N}]", ""))
             .drop_nulls().filter(pl.col("name").str.len_chars() > 0).unique().sort("name")
             .collect())
    return names["name"].to_list()


def _names_brand(text: pl.Expr, names: list[str], min_chars: int) -> pl.Expr:
    """The text names one of ``names``: longer names anywhere in the text with everything but letters
    and digits removed ("T-Mobile" -> tmobile, "Wells Fargo" -> wellsfargo), shorter ones as a whole
    word (``ups`` in "waiting for UPS", not in "groups")."""
    lower = text.str.to_lowercase()
    squashed = lower.str.replace_all(r"[^\p{L}\p{N}]", "")
    long_ = [n for n in names if len(n) >= min_chars]
    short = [n for n in names if len(n) < min_chars]
    found = pl.lit(False)
    if long_:
        found = found | squashed.str.contains_any(long_)
    if short:
        found = found | lower.str.contains(r"\b(?:" + "|".join(short) + r")\b")
    return found


def _any_match(text: pl.Expr, patterns: tuple[str, ...]) -> pl.Expr:
    """Case-insensitive match of any of the regexes (False for an empty list).

    One search per pattern, OR-ed: the same answer as one alternation of them all, but each pattern
    keeps the regex engine's literal prefilter, whereas an alternation with a branch that starts with
    a class (``\\d+ ?% off``) has none and runs the slow engine over every byte (8x the time on
    781,107 openings)."""
    if not patterns:
        return pl.lit(False)
    return pl.any_horizontal([text.str.contains(f"(?i)(?:{p})") for p in patterns])


def non_request_reasons(op: pl.LazyFrame, brands: pl.LazyFrame,
                        rules: NonRequestSettings) -> pl.LazyFrame:
    """(opening_tweet_id, non_request): the first rule of :data:`NON_REQUEST_RULES` that fires."""
    mentioners = (op.select("customer_id", handle=pl.col("opening_text").str.extract_all(HANDLE_RE))
                  .explode("handle").drop_nulls("handle")
                  .with_columns(handle=pl.col("handle").str.strip_prefix("@").str.to_lowercase())
                  .filter(pl.col("handle") != pl.col("customer_id").str.to_lowercase())
                  .group_by("handle").agg(n_mentioners=pl.col("customer_id").n_unique()))
    text = pl.col("opening_text")
    author = pl.col("customer_id").str.to_lowercase()
    alias = (pl.col("n_mentioners").fill_null(0) >= rules.alias_min_mentioners
             if rules.alias_min_mentioners is not None else pl.lit(False))
    link = text.str.contains(LINK_RE)
    # the costly text searches run only on the openings where their rule can still fire (and are
    # joined back, False elsewhere): the answer is the same, the work a fraction (19% carry a link)
    flags: list[pl.LazyFrame] = []
    if rules.promo_patterns:
        flags.append(op.filter(link if rules.promo_requires_link else pl.lit(True))
                     .select("opening_tweet_id", _promo=_any_match(text, rules.promo_patterns)))
    promo = pl.col("_promo").fill_null(False) if rules.promo_patterns else pl.lit(False)
    if rules.promo_requires_link:
        promo = promo & link
    no_brand: pl.Expr = pl.lit(False)
    if rules.no_brand_mention:
        no_handle = ~text.str.contains(HANDLE_RE)
        flags.append(op.filter(no_handle & link if rules.no_brand_requires_link else no_handle)
                     .select("opening_tweet_id", _named=_names_brand(
                         text, brand_names(brands, rules.brand_name_pattern), rules.min_name_chars)))
        no_brand = no_handle & ~pl.col("_named").fill_null(False)
    if rules.no_brand_requires_link:
        no_brand = no_brand & link
    fires = {
        "brand_account": (author.is_in(brands.select("handle").collect()["handle"].implode())
                          if rules.brand_account else pl.lit(False)),
        "brand_alias": alias,
        "broadcast": _any_match(text, rules.broadcast_patterns),
        "promotional": promo,
        "no_brand_mention": no_brand,
    }
    reason = pl.lit(None, dtype=pl.String)
    for rule in reversed(NON_REQUEST_RULES):
        reason = pl.when(fires[rule]).then(pl.lit(rule)).otherwise(reason)
    out = op.join(mentioners, left_on=author, right_on="handle", how="left")
    for flag in flags:
        out = out.join(flag, on="opening_tweet_id", how="left")
    return out.select("opening_tweet_id", non_request=reason)


def service_population(openings: pl.DataFrame, settings: OpeningsSettings) -> pl.DataFrame:
    """The openings service figures are computed on: requests only when
    ``openings.exclude_non_requests`` is true, else all of them."""
    return openings.filter(pl.col("is_request")) if settings.exclude_non_requests else openings


def build_openings(tweets: pl.DataFrame | pl.LazyFrame, threads: pl.DataFrame | pl.LazyFrame,
                   settings: OpeningsSettings) -> pl.DataFrame:
    """One row per customer opening (columns :data:`OPENING_COLUMNS`), sorted by opening id."""
    answered_definition = settings.answered_definition
    if answered_definition not in DEFINITIONS:
        raise ValueError(f"answered_definition must be one of {DEFINITIONS}, got {answered_definition!r}")
    tw, th = tweets.lazy(), threads.lazy()
    op = th.filter(pl.col("is_opening")).select(
        "opening_tweet_id", "thread_id", customer_id=pl.col("opening_author_id"),
        opening_at="opening_at", opening_text="opening_text", multi_brand="multi_brand")
    brand_tw = (tw.filter(pl.col("role") == "brand")
                .select("tweet_id", "thread_id", "author_id", "created_at", "parent_id")
                .join(op.select("thread_id", "opening_tweet_id", "customer_id"), on="thread_id",
                      how="inner"))
    authors = tw.select(parent_id="tweet_id", parent_author="author_id")
    to_customer = (brand_tw.join(authors, on="parent_id", how="inner")
                   .filter(pl.col("parent_author") == pl.col("customer_id")))
    firsts = {
        "direct": _first(brand_tw.filter(pl.col("parent_id") == pl.col("opening_tweet_id")), "direct"),
        "customer": _first(to_customer, "customer"),
        "thread": _first(brand_tw, "thread"),
    }
    for d in DEFINITIONS:
        op = op.join(firsts[d], on="thread_id", how="left").with_columns(
            pl.col(f"first_{d}_id").is_not_null().alias(f"answered_{d}"))
    d = answered_definition
    brands = known_brands(tw)
    out = (op.join(mentioned_brand(op, brands), on="opening_tweet_id", how="left")
           .join(non_request_reasons(op, brands, settings.non_request), on="opening_tweet_id",
                 how="left")
           .with_columns(
               brand=pl.coalesce("first_thread_author", "mention_brand"),
               brand_source=pl.when(pl.col("first_thread_author").is_not_null())
               .then(pl.lit("first_reply"))
               .when(pl.col("mention_brand").is_not_null()).then(pl.lit("mention"))
               .otherwise(pl.lit("none")),
               answered=pl.col(f"answered_{d}"),
               first_response_id=pl.col(f"first_{d}_id"),
               first_response_at=pl.col(f"first_{d}_at"),
               responder=pl.col(f"first_{d}_author"),
               raw_latency_s=_seconds(pl.col(f"first_{d}_at") - pl.col("opening_at")),
               is_request=pl.col("non_request").is_null())
           .with_columns(latency_s=pl.col("raw_latency_s").clip(lower_bound=0.0)))
    return out.select(*OPENING_COLUMNS, "raw_latency_s").sort("opening_tweet_id").collect()


def summary(openings: pl.DataFrame) -> dict[str, int]:
    """Counts for prepare's metrics: openings, answered under each definition, brand sources,
    non-requests by reason."""
    row = openings.select(
        openings=pl.len(),
        **{f"answered_{d}": pl.col(f"answered_{d}").sum() for d in DEFINITIONS},
        **{f"brand_{s}": (pl.col("brand_source") == s).sum() for s in BRAND_SOURCES},
        negative_latency=(pl.col("raw_latency_s") < 0).sum(),
        requests=pl.col("is_request").sum(),
        **{f"non_request_{r}": (pl.col("non_request") == r).sum() for r in NON_REQUEST_RULES},
    ).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}


def why_no_openings(tweets: pl.DataFrame, rows_in: int) -> str:
    """Why a file gives no opening at all, in words: the reason every later stage repeats.

    ``tweets`` are the clean tweets (``role``, ``in_response_to_tweet_id``, ``parent_dangling``);
    ``rows_in`` the records read from the file."""
    if tweets.height == 0:
        every = "its one record was" if rows_in == 1 else f"all {rows_in:,} records were"
        return (f"the input has no usable tweet: {every} quarantined (reasons in "
                "data/interim/quarantine.csv)")
    customers = tweets.filter(pl.col("role") == "customer")
    if customers.height == 0:
        return (f"the input has no customer openings: every tweet is from a brand ({tweets.height:,} "
                "brand tweets; the customer tweets they answer are not in the file)")
    dangling = int(customers["parent_dangling"].sum())
    return (f"the input has no customer openings: all {customers.height:,} customer tweets reply "
            f"to another tweet ({dangling:,} of them to tweets not in the file), so no "
            "conversation starts in it")


def answered_counts(openings: pl.DataFrame) -> dict[str, int]:
    """Openings, answered and unanswered under the chosen definition: the block every stage that
    counts openings reports, so the same sample gives the same numbers everywhere."""
    n, answered = openings.height, int(openings["answered"].sum())
    return {"openings": n, "answered": answered, "unanswered": n - answered}
