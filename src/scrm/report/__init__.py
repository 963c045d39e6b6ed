"""The HTML report and every figure of the project (``scrm report``).

Modules: :mod:`~scrm.report.views` (stage outputs and the frames the report and notebooks share),
:mod:`~scrm.report.figures` (plotly builders, plumbing in :mod:`~scrm.report.figbase`),
:mod:`~scrm.report.html` (the page as data, escaping, CSS, rendering),
:mod:`~scrm.report.sections` (the five section builders) and :mod:`~scrm.report.stage` (the DVC
stage). Notebooks import ``views`` and ``figures``; the CLI calls :func:`run`.
"""

from __future__ import annotations

from .html import Figure, Report, Section, render
from .sections import SECTIONS
from .stage import build, run

__all__ = ["SECTIONS", "Figure", "Report", "Section", "build", "render", "run"]
