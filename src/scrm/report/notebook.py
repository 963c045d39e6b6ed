"""Plotly in the notebooks: interactive in JupyterLab, and still drawn after ``jupyter nbconvert --to
html`` or on nbviewer, with no network.

Why: in JupyterLab plotly stores a figure only as ``application/vnd.plotly.v1+json``, which nothing
but JupyterLab's plotly extension can draw, so an exported notebook showed none of its charts.
:func:`use_offline_plotly` makes every figure output carry two forms: that JSON (JupyterLab draws it)
and an HTML ``<div>`` with the script that draws it (nbconvert, nbviewer and other HTML viewers use
it). plotly.js itself is embedded once per notebook, in the output of the first figure shown, and
never loaded from a CDN (MathJax neither), so the exported page renders offline like the report.
Code hosts that do not run a notebook's scripts (GitHub's preview) still show no chart; and the
committed notebooks carry no outputs at all (see README "Report and notebooks").
"""

from __future__ import annotations

from typing import Any

RENDERER = "scrm_offline_html"
DEFAULT = f"plotly_mimetype+{RENDERER}"


def _renderer_class() -> type:
    from plotly.io.base_renderers import MimetypeRenderer

    class OfflineHtmlRenderer(MimetypeRenderer):
        """``text/html`` of a figure without plotly.js; ``activate`` embeds plotly.js once."""

        def activate(self) -> None:
            from IPython.display import display_html
            from plotly.offline import get_plotlyjs

            display_html(f"<script type=\"text/javascript\">{get_plotlyjs()}</script>", raw=True)

        def to_mimebundle(self, fig_dict: Any) -> dict[str, str]:
            import plotly.io as pio

            html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False,
                               full_html=False, default_width="100%", default_height=525,
                               config={"responsive": True})
            return {"text/html": html}

    return OfflineHtmlRenderer


def use_offline_plotly() -> None:
    """Show plotly figures as JSON + offline HTML from now on (idempotent; the renderer string is
    :data:`DEFAULT`)."""
    import plotly.io as pio

    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = _renderer_class()()
    if pio.renderers.default != DEFAULT:
        pio.renderers.default = DEFAULT
