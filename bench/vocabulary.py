"""Vocabulary growth of the synthetic generator against the real sample: type-token curves, Heaps' and
Zipf's laws, per role, side by side.

    python bench/vocabulary.py                        # 200,000 rows, seed 42 -> bench/results/vocabulary.md
    python bench/vocabulary.py --rows 2811774 --out bench/results/vocabulary-full.md  # ~2 min, 2.3 GiB

A word is a lower-cased ``[a-z']{2,}`` run of the raw text (``scrm.stats.powerlaw``); customer tweets
are the inbound ones. The real column stops at the sample's size (2,778 customer and 2,222 brand
tweets); past it, the real Heaps law ``K n**beta`` fitted on the sample is shown as an extrapolation,
not as a measurement. The checks (distinct words at the sample's size within +-20 %, Heaps' beta within
+-0.1) are ``scrm.data.synthetic.vocabulary.TOLERANCE``. The second table leaves links out (what the
topic stages read, and what the open vocabulary is fitted to: link codes grow like the number of
links, in both files).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import polars as pl

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

from scrm.config import SAMPLE_CSV  # noqa: E402
from scrm.data import synthetic  # noqa: E402
from scrm.data.synthetic.vocabulary import TOLERANCE, compare, without_links  # noqa: E402


def _fmt(x: object) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def markdown_tables(table: pl.DataFrame, summary: pl.DataFrame) -> list[str]:
    lines = ["| role | tweets | real sample | synthetic | synthetic / real | real Heaps law "
             "(fit; extrapolated past the sample) | synthetic / Heaps law |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in table.iter_rows(named=True):
        ratio = r["synthetic"] / r["real"] if r["real"] else None
        lines.append(f"| {r['role']} | {r['n']:,} | {_fmt(r['real'])} | {r['synthetic']:,} | "
                     f"{_fmt(ratio)} | {_fmt(r['real_heaps'])} | "
                     f"{r['synthetic'] / r['real_heaps']:.3f} |")
    lines += ["", "| role | real K | real β | synthetic K | synthetic β (sample's sizes) | "
              "synthetic β (all sizes) | real Zipf α | synthetic Zipf α | distinct words ±20 % | "
              "β ±0.1 |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in summary.iter_rows(named=True):
        lines.append(
            f"| {s['role']} | {s['real_K']:.2f} | {s['real_beta']:.3f} | {s['synthetic_K']:.2f} | "
            f"{s['synthetic_beta']:.3f} | {s['synthetic_beta_all_sizes']:.3f} | "
            f"{s['real_zipf_alpha']:.3f} | {s['synthetic_zipf_alpha']:.3f} | "
            f"{'met' if s['distinct_ok'] else 'MISSED'} ({s['ratio']:.3f}) | "
            f"{'met' if s['beta_ok'] else 'MISSED'} "
            f"({s['synthetic_beta'] - s['real_beta']:+.3f}) |")
    lines += ["", "| role | words per tweet, real | synthetic | characters per tweet, real | "
              "synthetic |", "|---|---:|---:|---:|---:|"]
    for s in summary.iter_rows(named=True):
        lines.append(f"| {s['role']} | {s['real_words_per_tweet']:.2f} | "
                     f"{s['synthetic_words_per_tweet']:.2f} | {s['real_chars_per_tweet']:.1f} | "
                     f"{s['synthetic_chars_per_tweet']:.1f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=PROJECT / "bench" / "results" / "vocabulary.md")
    args = ap.parse_args()

    t0 = time.perf_counter()
    real = pl.read_csv(SAMPLE_CSV, infer_schema=False, columns=["inbound", "text"])
    syn = synthetic.generate_frame(args.rows, args.seed).select("inbound", "text")
    table, summary = compare(real, syn)
    no_links = [f.with_columns(text=without_links(f["text"])) for f in (real, syn)]
    table_nl, summary_nl = compare(*no_links)
    ok = bool(summary["distinct_ok"].all() and summary["beta_ok"].all())
    lines = [
        f"# Vocabulary growth: synthetic ({args.rows:,} rows, seed {args.seed}) vs the real sample",
        "",
        f"Command: `python bench/vocabulary.py --rows {args.rows} --seed {args.seed}`. "
        f"Python {platform.python_version()}; {time.perf_counter() - t0:.0f} s.",
        "",
        "Distinct words (lower-cased `[a-z']{2,}` runs of the raw text) among the first n tweets of a "
        "role, in file order. Real counts stop at the sample's size; past it the real column is Heaps' "
        "law fitted on the sample (K n^β), an extrapolation. Checks: distinct words at the sample's "
        f"size within ±{TOLERANCE['distinct']:.0%}, β within ±{TOLERANCE['beta']} "
        f"(**{'all met' if ok else 'MISSED'}**). Zipf α: exponent of the word-frequency spectrum, "
        "links left out, at the sample's size.",
        "",
        *markdown_tables(table, summary),
        "",
        "## Links left out",
        "",
        "The same without `https://...` links (what the topic stages read; the open vocabulary is "
        "fitted to this part, while link codes add about one new word per link in both files).",
        "",
        *markdown_tables(table_nl, summary_nl),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
