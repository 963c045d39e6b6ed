"""The real state of each stage a section shows, in words a reader understands.

A section never says "has not run" about a stage that ran. In order of precedence:

``failed``    the stage's last run left a failure note (:mod:`scrm.status`): "failed: see …" with
              the file and the message; outputs of an earlier run are not shown;
``not_run``   an output the section needs is missing;
``no_data``   the stage ran and says its input holds nothing to analyse: "no data because …";
``skipped``   the stage ran and says its method could not be applied: "skipped because …";
``ok``        the results are shown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import status
from ..paths import Paths
from .html import relative
from .views import read_json

FAILED = "failed"
NOT_RUN = "not_run"


@dataclass(frozen=True)
class StageState:
    """One stage as a section sees it: its state and the note shown for it (None when ``ok``)."""

    stage: str
    state: str
    note: str | None = None

    @property
    def ran(self) -> bool:
        """The stage ran to the end (its metrics can be shown, whatever its status)."""
        return self.state not in (FAILED, NOT_RUN)

    @property
    def ok(self) -> bool:
        return self.state == status.OK


def _command(stage: str) -> str:
    return html.escape(f"scrm {status.COMMANDS.get(stage, stage.replace('_', '-'))}")


def stage_state(paths: Paths, stage: str, files: Sequence[Path]) -> StageState:
    """The state of ``stage`` from its failure note, the ``files`` a section needs (its metrics
    file among them) and the status in its metrics."""
    code = f"<code>{html.escape(stage)}</code>"
    failure = status.failure(paths, stage)
    if failure is not None:
        where = html.escape(relative(paths.failure_note(stage), paths.root))
        return StageState(stage, FAILED, (
            f"Stage {code} failed: see <code>{where}</code> "
            f"(“{html.escape(str(failure.get('message', '')))}”). Fix the cause and run "
            f"<code>dvc repro</code> (or <code>{_command(stage)}</code>) again."))
    gone = [f for f in files if not f.exists()]
    if gone:
        rel = html.escape(", ".join(relative(f, paths.root) for f in gone))
        return StageState(stage, NOT_RUN, (
            f"Stage {code} has not run: missing {rel}. Run <code>dvc repro</code> (or "
            f"<code>{_command(stage)}</code>) and rebuild the report."))
    metrics = paths.metric(stage)
    state, reason = status.of(read_json(metrics)) if metrics.exists() else (status.OK, None)
    if state == status.NO_DATA:
        return StageState(stage, state, f"No data because {html.escape(str(reason))} "
                                        f"(stage {code}).")
    if state == status.SKIPPED:
        return StageState(stage, state, f"Skipped because {html.escape(str(reason))} "
                                        f"(stage {code}).")
    return StageState(stage, status.OK)
