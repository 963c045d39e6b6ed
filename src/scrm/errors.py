"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class ScrmError(Exception):
    """An error whose message is meant for the user: what went wrong, where, and what to do."""

    exit_code = 2


class DataError(ScrmError):
    """Input data cannot be used (names the file, line and reason)."""

    def __init__(self, message: str, path: object | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class TooLittleData(DataError):
    """The input is valid but too small or too uniform for a method (12 openings for topics of at
    least 15): the stage records ``"status": "skipped"`` with this message instead of failing."""


class FetchError(ScrmError):
    """Acquisition of the raw data failed (credentials, network, archive)."""

    exit_code = 3
