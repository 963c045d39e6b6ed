"""BERTopic's own figures of a topic fit, written as standalone HTML (``reports/figures/topics/``).

Kept apart from the fitting code so that every figure of the topics stage is drawn in one place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TopicsSettings
from ..io import atomic_path
from .topic_tables import OUTLIER

log = logging.getLogger(__name__)


def _write_html(fig: Any, target: Path) -> None:
    """Standalone HTML (plotly.js inline): opens offline, like the rest of the report."""
    with atomic_path(target) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)


FIGURES = ("intertopic_map", "barchart", "topics_over_time")


def no_figures(out_dir: Path, reason: str) -> dict[str, str]:
    """No fit, no figure: remove the figures of an earlier fit and record why for each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:
        (out_dir / f"{name}.html").unlink(missing_ok=True)
    return {name: f"skipped: {reason}" for name in FIGURES}


def write_figures(model: Any, topics: np.ndarray, over_time: Any, out_dir: Path,
                  settings: TopicsSettings) -> dict[str, str]:
    """Intertopic map, barchart and topics over time of a fitted BERTopic ``model`` whose final
    assignment is ``topics``; a figure that cannot be drawn (the intertopic map needs several
    topics) is recorded with the reason instead of failing the stage."""
    out_dir.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    n_topics = len([t for t in set(topics.tolist()) if t != OUTLIER])
    jobs = {
        "intertopic_map": lambda: model.visualize_topics(),
        "barchart": lambda: model.visualize_barchart(top_n_topics=settings.barchart_topics,
                                                     n_words=settings.barchart_words),
        "topics_over_time": lambda: model.visualize_topics_over_time(
            over_time, top_n_topics=settings.barchart_topics),
    }
    for name, make in jobs.items():
        target = out_dir / f"{name}.html"
        try:
            if name == "intertopic_map" and n_topics < 3:
                raise ValueError(f"needs at least 3 topics, found {n_topics}")
            if name == "topics_over_time" and (over_time is None or len(over_time) == 0):
                raise ValueError(f"no period holds {settings.time_min_docs} or more openings")
            _write_html(make(), target)
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a missing figure must not lose the topics
            target.unlink(missing_ok=True)
            status[name] = f"skipped: {type(exc).__name__}: {str(exc)[:200]}"
            log.warning("topics figure %s skipped: %s", name, exc)
    return status
