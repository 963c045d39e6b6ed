"""What a stage reports about itself: its status in the metrics JSON, and a note when it crashed.

Empty is a result, not a crash: a stage with nothing to analyse (no customer openings, no text, too
few documents for topics) still writes every output with the right schema and says why in its
metrics file. Every stage's metrics JSON carries

``"status"``
    ``ok`` (it computed its results), ``no_data`` (its input holds nothing it can analyse) or
    ``skipped`` (there is input, but too little or too uniform for the method: e.g. 12 openings
    for topics with ``min_cluster_size`` 15);
``"reason"``
    a sentence a person understands, null when the status is ``ok``.

A stage that fails (an error message, or an unexpected exception) leaves no metrics; the command
line writes a *failure note* (:meth:`scrm.paths.Paths.failure_note`, JSON with the command and the
message) and removes it again after the next successful run, so the report can say "failed: see
…" instead of "has not run". Parts of a stage (a model, a test, a figure) carry their own
``status``/``reason`` in the same words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from . import io as sio
from .errors import DataError

if TYPE_CHECKING:
    from .paths import Paths

OK: Final = "ok"
NO_DATA: Final = "no_data"
SKIPPED: Final = "skipped"
STATUSES: Final = (OK, NO_DATA, SKIPPED)

# pipeline stages (dvc.yaml) -> the command that runs each; metrics files are named after stages
COMMANDS: Final = {"fetch": "fetch", "prepare": "prepare", "sentiment": "sentiment",
                   "response_time": "response-time", "outcome": "outcome",
                   "complaints": "complaints", "embed": "embed", "topics": "topics",
                   "benchmark": "benchmark", "detect": "detect", "report": "report"}


def status(state: str, reason: str | None = None) -> dict[str, Any]:
    """The ``status``/``reason`` pair of a metrics file (or of one part of a stage)."""
    if state not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {state!r}")
    if state != OK and not reason:
        raise ValueError(f"a {state!r} status needs a reason a person understands")
    return {"status": state, "reason": reason if state != OK else None}


def ok() -> dict[str, Any]:
    return status(OK)


def no_data(reason: str) -> dict[str, Any]:
    return status(NO_DATA, reason)


def skipped(reason: str) -> dict[str, Any]:
    return status(SKIPPED, reason)


def of(metrics: dict[str, Any]) -> tuple[str, str | None]:
    """(status, reason) of a metrics dict; files written before the convention count as ``ok``."""
    return str(metrics.get("status") or OK), metrics.get("reason")


def upstream(paths: Paths, stage: str = "prepare") -> tuple[str, str | None]:
    """(status, reason) of an earlier stage's metrics file (``ok``, None when it is not there)."""
    path = paths.metric(stage)
    if not path.exists():
        return OK, None
    try:
        return of(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return OK, None


def because(paths: Paths, fallback: str, stage: str = "prepare") -> str:
    """Why an input table is empty, in the words of the stage that made it empty (``fallback``
    when that stage gave no reason)."""
    state, reason = upstream(paths, stage)
    return reason if state != OK and reason else fallback


# --------------------------------------------------------------------------------------------------
# failure notes (written by the command line, read by the report)
# --------------------------------------------------------------------------------------------------
def stage_of(command: str) -> str | None:
    """The pipeline stage a command runs (``response-time`` -> ``response_time``), else None."""
    return next((s for s, c in COMMANDS.items() if c == command), None)


def record_failure(paths: Paths, stage: str, message: str) -> Path:
    """Leave the failure note of ``stage`` (the command and its message)."""
    note = {"stage": stage, "command": f"scrm {COMMANDS[stage]}", "message": message}
    return sio.write_json(paths.failure_note(stage), note)


def clear_failure(paths: Paths, stage: str) -> None:
    """The stage ran to the end: an older failure note no longer applies."""
    paths.failure_note(stage).unlink(missing_ok=True)


def failure(paths: Paths, stage: str) -> dict[str, Any] | None:
    """The failure note of ``stage``, or None when its last run did not fail."""
    path = paths.failure_note(stage)
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {"stage": stage, "message": "(the failure note cannot be read)"}


def missing_input(paths: Paths, stage: str, path: Path | str) -> DataError:
    """The error for an input ``stage`` has not written: "run it first", or, when its last run
    failed, that failure (running the next stage again would not help)."""
    note = failure(paths, stage)
    if note is not None:
        return DataError(f"not found: `{note.get('command')}` failed ({note.get('message')}); see "
                         f"{paths.failure_note(stage)}.", path)
    return DataError(f"not found: run `scrm {COMMANDS[stage]}` first.", path)
