"""Text normalisation and surface counts shared by every text feature (polars expressions).

One place decides what a mention, a URL, an emoji and an agent sign-off look like, so response-time,
outcome and complaint features agree.
"""

from __future__ import annotations

import polars as pl

MENTION_RE = r"@\w+"
URL_RE = r"https?://\S+"
# Emoji and pictographs (the common blocks, dingbats, flags, variation selector-free)
EMOJI_RE = (r"[\x{1F300}-\x{1F5FF}\x{1F600}-\x{1F64F}\x{1F680}-\x{1F6FF}\x{1F900}-\x{1F9FF}"
            r"\x{1FA70}-\x{1FAFF}\x{2600}-\x{26FF}\x{2700}-\x{27BF}\x{1F1E6}-\x{1F1FF}]")
SIGNOFF_RE = r"(?:\^|[-–—]\s?)[A-Z]{1,3}\b\s*$|\^[A-Za-z]{1,4}\b"  # ^AB, -AB at the end


def clean_for_sentiment(col: str | pl.Expr = "text") -> pl.Expr:
    """Drop @handles and URLs; keep emoji, punctuation and casing that VADER reads as signal."""
    e = pl.col(col) if isinstance(col, str) else col
    return (e.str.replace_all(URL_RE, " ").str.replace_all(MENTION_RE, " ")
            .str.replace_all(r"\s+", " ").str.strip_chars())


def clean_for_topics(col: str | pl.Expr = "text") -> pl.Expr:
    """Drop handles, URLs and sign-offs for embeddings/topics (stop words stay: the vectorizer drops them)."""
    e = pl.col(col) if isinstance(col, str) else col
    return (e.str.replace_all(URL_RE, " ").str.replace_all(MENTION_RE, " ")
            .str.replace_all(SIGNOFF_RE, " ").str.replace_all(r"&amp;", "&")
            .str.replace_all(r"\s+", " ").str.strip_chars())


def surface_counts(col: str = "text", prefix: str = "") -> list[pl.Expr]:
    """Length and counts of mentions, URLs, emoji, question and exclamation marks."""
    e = pl.col(col)
    return [
        e.str.len_chars().alias(f"{prefix}len_chars"),
        e.str.count_matches(MENTION_RE).alias(f"{prefix}n_mentions"),
        e.str.count_matches(URL_RE).alias(f"{prefix}n_urls"),
        e.str.count_matches(EMOJI_RE).alias(f"{prefix}n_emoji"),
        e.str.count_matches(r"\?", literal=False).alias(f"{prefix}n_questions"),
        e.str.count_matches("!", literal=True).alias(f"{prefix}n_exclaims"),
    ]
