"""Static figures written as stage outputs (matplotlib PNG): the permutation-importance chart of the
response-time stage. Every figure of the project is drawn under report/; the stages call these."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _save(fig: Any, target: Path) -> Path:
    """PNG without a software stamp (same bytes for the same figure), written atomically."""
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return target


def importance_figure(importances: dict[str, Any], target: Path, note: str = "") -> Path:
    """Bar chart of permutation importances (one panel per task), PNG via the atomic writer.

    Without any fitted model (tiny data) the PNG says why, so the declared DVC output always exists.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not importances:
        fig, ax = plt.subplots(figsize=(6.5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No permutation importance: no boosting model was fitted.\n" + note,
                ha="center", va="center", wrap=True)
        return _save(fig, target)
    titles = {"within_1h": "answered within 1 h (drop in AUC)",
              "log_latency": "log latency (increase in MAE, log scale)"}
    fig, axes = plt.subplots(1, len(importances), figsize=(6.5 * len(importances), 5),
                             squeeze=False)
    order = sorted(importances, key=lambda t: (t != "within_1h", t))
    for ax, task in zip(axes[0], order, strict=True):
        imp = importances[task]
        feats = sorted((f for f in imp if f != "scoring"), key=lambda f: imp[f]["mean"] or 0.0)
        ax.barh(feats, [imp[f]["mean"] or 0.0 for f in feats],
                xerr=[imp[f]["std"] or 0.0 for f in feats], color="#4c72b0")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(titles.get(task, task) + f"\nscoring: {imp['scoring']}", fontsize=10)
        ax.set_xlabel("permutation importance (test split)")
    fig.suptitle("What drives brand response time (gradient boosting)")
    fig.tight_layout()
    return _save(fig, target)
