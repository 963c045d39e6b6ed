"""The page: the report as data, the HTML toolkit (escaping, tables, cards), CSS and rendering.

The report is built first as data (:class:`Report` of :class:`Section` blocks and :class:`Figure`
objects) and rendered second, so tests can inspect what was built. The page is one self-contained
HTML file: plotly.js is embedded once, inline, so it opens offline from disk (no CDN).

Every piece of text that comes from the data is HTML-escaped: table cells and cards with
:func:`html.escape` (via :func:`fmt`), plot labels and hover text inside the figure builders. Only
:func:`para` takes markup, and only our own prose goes through it.

Each figure is also written as a standalone HTML file next to one shared ``plotly.min.js`` (again no
CDN). No PNGs: plotly's static export needs kaleido, which is not part of this environment (kaleido
1.x would drive a browser; we add no such dependency).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from .. import io as sio
from ..paths import Paths
from .figures import PLOTLY_CONFIG
from .views import flatten


# --------------------------------------------------------------------------------------------------
# the report as data (built first, rendered second, so tests can inspect what was built)
# --------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    """One plotly figure of a section: its HTML id and the caption under it."""

    id: str
    figure: go.Figure
    caption: str = ""


@dataclass
class Section:
    """One numbered section of the page: HTML fragments and figures in order, and notes on the
    stages whose results it cannot show (failed, not run, no data, skipped: :mod:`.state`)."""

    id: str
    title: str
    blocks: list[str | Figure] = field(default_factory=list)  # HTML fragments and figures, in order
    missing: list[str] = field(default_factory=list)  # notes on stages not shown, and why

    @property
    def figures(self) -> list[Figure]:
        """The figures of this section, in order."""
        return [b for b in self.blocks if isinstance(b, Figure)]

    def html(self, text: str) -> None:
        """Append an HTML fragment (already escaped where it holds data)."""
        self.blocks.append(text)

    def figure(self, fid: str, fig: go.Figure, caption: str = "") -> None:
        """Append a figure with its id and caption."""
        self.blocks.append(Figure(fid, fig, caption))


@dataclass
class Report:
    """The whole page before rendering."""

    title: str
    sections: list[Section]
    subtitle: str = ""

    @property
    def figures(self) -> list[Figure]:
        """Every figure of the page, in page order."""
        return [f for s in self.sections for f in s.figures]


# --------------------------------------------------------------------------------------------------
# HTML helpers (every value escaped)
# --------------------------------------------------------------------------------------------------
def display(v: Any) -> str:
    """One value as display text (not escaped): thousands separators, 3 decimals, ISO dates."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:,.3f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M UTC" if v.tzinfo else "%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def fmt(v: Any) -> str:
    """:func:`display`, HTML-escaped: the only way a data value enters the page outside plotly."""
    return html.escape(display(v), quote=True)


def percent(v: Any) -> str:
    """A share in [0, 1] as escaped percent text ("–" when missing)."""
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return html.escape(f"{float(v):.1%}")


def html_table(df: pl.DataFrame, headers: dict[str, str] | None = None, css: str = "",
               max_rows: int | None = None, pct: Sequence[str] = ()) -> str:
    """A plain HTML table of a frame; every header and cell is escaped (:func:`fmt`), columns named
    in ``pct`` are shares shown as percentages."""
    cols = list(headers) if headers else df.columns
    names = [(headers or {}).get(c, c) for c in cols]
    rows = df.select(cols).head(max_rows) if max_rows else df.select(cols)
    as_pct = [c in set(pct) for c in cols]
    head = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    body = "\n".join("<tr>" + "".join(
        f'<td class="{_cell_class(v)}">{percent(v) if p else fmt(v)}</td>'
        for v, p in zip(r, as_pct)) + "</tr>" for r in rows.iter_rows())
    more = ""
    if max_rows and df.height > max_rows:
        more = f'<p class="note">Showing {max_rows:,} of {df.height:,} rows.</p>'
    return (f'<div class="table-wrap"><table class="{html.escape(css)}"><thead><tr>{head}</tr>'
            f"</thead><tbody>\n{body}\n</tbody></table></div>{more}")


def _cell_class(v: Any) -> str:
    """Numbers are right-aligned (``num``), everything else is text (``txt``)."""
    return "num" if isinstance(v, (int, float)) and not isinstance(v, bool) else "txt"


def kpis(items: Sequence[tuple[str, Any] | tuple[str, Any, str]]) -> str:
    """Headline cards; a third element ``"pct"`` shows a share as a percentage, ``"1f"`` one
    decimal."""
    cards = []
    for item in items:
        k, v = item[0], item[1]
        kind = item[2] if len(item) > 2 else ""
        text = (percent(v) if kind == "pct" else
                html.escape(f"{float(v):,.1f}") if kind == "1f" and v is not None else fmt(v))
        cards.append(f'<div class="kpi"><span class="v">{text}</span>'
                     f'<span class="k">{html.escape(k)}</span></div>')
    return f'<div class="kpis">{"".join(cards)}</div>'


def slug(text: str) -> str:
    """Text as an HTML-id fragment (lower case, runs of other characters -> "-")."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def para(text: str) -> str:
    """A paragraph of *our own* prose (may hold markup); never pass data through here."""
    return f"<p>{text}</p>"


def metrics_details(paths: Paths, stage: str, metrics: dict[str, Any],
                    skip: Sequence[str] = ()) -> str:
    """A stage's metrics JSON as a collapsible key/value table (numbers as the stage wrote them)."""
    rows = flatten({k: v for k, v in metrics.items() if k not in skip})
    if not rows:
        return ""
    df = pl.DataFrame({"metric": [k for k, _ in rows], "value": [display(v) for _, v in rows]},
                      schema={"metric": pl.String, "value": pl.String})
    return (f"<details><summary>All metrics of <code>{html.escape(stage)}</code> "
            f"({html.escape(relative(paths.metric(stage), paths.root))})</summary>"
            + html_table(df) + "</details>")


def relative(p: Path, root: Path) -> str:
    """``p`` relative to the run root when it lies inside it (for notes shown to the reader)."""
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------
CSS = """
:root { --fg:#1d2330; --muted:#5b6577; --line:#e3e7ee; --accent:#1f77b4; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:24px 32px 12px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
.layout { display:flex; gap:24px; max-width:1400px; margin:0 auto; padding:16px 24px; }
nav#toc { flex:0 0 230px; position:sticky; top:12px; align-self:flex-start; background:#fff;
          border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
nav#toc h2 { font-size:14px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted);
             margin:0 0 8px; }
nav#toc ol { margin:0; padding-left:20px; }
nav#toc a { color:var(--accent); text-decoration:none; }
main { flex:1; min-width:0; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 24px 20px;
          margin-bottom:20px; }
section h2 { border-bottom:1px solid var(--line); padding-bottom:6px; }
figure.fig { margin:16px 0 24px; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.kpis { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0; }
.kpi { border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:120px; }
.kpi .v { display:block; font-size:20px; font-weight:600; }
.kpi .k { color:var(--muted); font-size:12px; }
.note { color:var(--muted); font-size:13px; }
.missing { background:#fff7e6; border:1px solid #f0c36d; border-radius:6px; padding:10px 14px; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; width:100%; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.examples td.txt:last-child { white-space:pre-wrap; word-break:break-word; }
@media (max-width: 900px) { .layout { flex-direction:column; } nav#toc { position:static; } }
"""


def figure_html(f: Figure) -> str:
    """One figure as a ``<figure>`` box: the plotly div (no script bundle) and its caption."""
    div = pio.to_html(f.figure, full_html=False, include_plotlyjs=False, div_id=f.id,
                      config=PLOTLY_CONFIG, validate=True)
    cap = f"<figcaption>{f.caption}</figcaption>" if f.caption else ""
    return f'<figure class="fig" id="{html.escape(f.id)}-box">{div}{cap}</figure>'


def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly package (embedded, never fetched)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def render(report: Report) -> str:
    """The whole page: one inline plotly.js, a table of contents, then the sections."""
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in report.sections)
    parts = []
    for i, s in enumerate(report.sections, 1):
        body = [f'<p class="missing">{n}</p>' for n in s.missing]
        for b in s.blocks:
            body.append(figure_html(b) if isinstance(b, Figure) else b)
        parts.append(f'<section id="{s.id}"><h2>{i}. {html.escape(s.title)}</h2>\n'
                     + "\n".join(body) + "\n</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(report.title)}</title>\n<style>{CSS}</style>\n"
        f"<script type=\"text/javascript\">{plotly_js()}</script>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(report.title)}</h1><p>{html.escape(report.subtitle)}</p></header>\n"
        f"<div class=\"layout\">\n<nav id=\"toc\"><h2>Contents</h2><ol>{toc}</ol></nav>\n<main>\n"
        + "\n".join(parts) + "\n</main>\n</div>\n</body>\n</html>\n")


def write_standalone(report: Report, folder: Path) -> list[Path]:
    """Each figure as its own HTML page beside one shared plotly.min.js (opens offline)."""
    folder.mkdir(parents=True, exist_ok=True)
    sio.write_text(folder / "plotly.min.js", plotly_js())
    written = []
    for f in report.figures:
        page = pio.to_html(f.figure, full_html=True, include_plotlyjs="directory", div_id=f.id,
                           config=PLOTLY_CONFIG)
        written.append(sio.write_text(folder / f"{f.id}.html", page))
    keep = {p.name for p in written}
    for stale in folder.glob("*.html"):
        if stale.name not in keep:
            stale.unlink()
    return written
