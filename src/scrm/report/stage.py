"""DVC stage ``report``: assemble ``reports/index.html`` from the pipeline's outputs.

Builds the five sections (:mod:`scrm.report.sections`), renders the page (:mod:`scrm.report.html`)
and writes each figure once more as a standalone HTML page beside one shared ``plotly.min.js``.
"""

from __future__ import annotations

from pathlib import Path

from .. import io as sio
from ..config import ReportSettings
from ..paths import Paths
from .html import Report, display, render, write_standalone
from .sections import BUILDERS, SECTIONS
from .views import read_json


def build(paths: Paths, settings: ReportSettings) -> Report:
    """Read every stage's outputs and lay out the report (no HTML rendering yet)."""
    sections = [BUILDERS[sid](paths, settings) for sid, _ in SECTIONS]
    fetch_json = paths.metric("fetch")
    fm = read_json(fetch_json) if fetch_json.exists() else {}
    subtitle = (f"Data: {fm.get('source', '?')} ({display(fm.get('rows'))} rows, "
                f"{paths.raw_csv.name} sha256 {str(fm.get('sha256', ''))[:12]}…)"
                if fm else "Data: fetch metrics missing")
    return Report(settings.title, sections, subtitle)


def run(paths: Paths, settings: ReportSettings) -> Path:
    """DVC stage ``report``: index.html + one standalone HTML per figure + the flat headline
    metrics (:mod:`scrm.report.headline`). Returns index.html."""
    from .headline import write as write_headline  # also a script: not imported with the package

    paths.ensure()
    write_headline(paths)
    report = build(paths, settings)
    index = sio.write_text(paths.report_html, render(report))
    write_standalone(report, paths.report_figures)
    return index
