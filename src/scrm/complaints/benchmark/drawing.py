"""The benchmark's figure: confusion matrices of the best system of each leaderboard section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .evaluate import SECTION_TITLE, Section


def confusion_figure(sections: Sequence[Section]) -> Any:
    """Row-normalised confusion heatmaps of each section's best system (summed over repetitions)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    best = [(sec, next(x for x in sec.systems if x.name == sec.reference)) for sec in sections]
    n = len(best)
    cols = min(3, max(n, 1))
    rows = max(1, -(-n // cols))
    titles = [f"{SECTION_TITLE[sec.protocol]} / {sec.variant}: {x.name} "
              f"(macro-F1 {x.scores['macro_f1']:.3f})" for sec, x in best]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.12,
                        vertical_spacing=0.22)
    for i, (sec, x) in enumerate(best):
        cm = np.asarray(x.scores["confusion"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig.add_trace(go.Heatmap(z=norm, x=sec.classes, y=sec.classes, zmin=0, zmax=1,
                                 colorscale="Blues", showscale=i == 0, customdata=cm,
                                 text=cm.astype(int), texttemplate="%{text}",
                                 hovertemplate="actual %{y}<br>predicted %{x}<br>"
                                               "n=%{customdata:.0f} (%{z:.0%} of actual)"
                                               "<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(autorange="reversed", title_text="actual", row=i // cols + 1,
                         col=i % cols + 1)
        fig.update_xaxes(title_text="predicted", row=i // cols + 1, col=i % cols + 1)
    title = ("Confusion matrices of the best system per leaderboard section (colour: share of "
             "the actual class; numbers: counts over repetitions)" if best else
             "No leaderboard section was scored (reasons: reports/metrics/benchmark.json)")
    fig.update_layout(title=title,
                      height=480 * rows, width=560 * cols, template="plotly_white")
    return fig
