"""Progress on every step a person waits for: a live bar on a terminal, one plain line per step elsewhere.

Why one helper: a tqdm bar written into a log file (``dvc repro > run.log``, CI) is one endless line of
carriage returns, and a stage that prints nothing for a minute looks hung. So every long loop or
multi-phase stage reports through this module, which chooses the form once:

* **terminal** (the stream is a TTY): a tqdm bar on stderr, redrawn in place;
* **anything else** (a pipe, a file, CI): one line per step, ``label: 3/12 cell (note), 41.2 s``,
  at most one every ``min_interval_s`` seconds (the last step is always written), never a ``\\r``.

``SCRM_PROGRESS=bar|lines|off`` overrides the choice (``off`` also silences the lines).

Use :func:`bar` for a loop with a known number of steps (``update`` after each, like tqdm) and
:class:`Phases` for a stage made of a few named phases (``start`` at each phase boundary).
``python -m scrm.progress wait URL`` waits until a local server answers (``make ui``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, Literal, TypeVar

Mode = Literal["bar", "lines", "off"]
T = TypeVar("T")


def choose_mode(stream: IO[str] | Any, enabled: bool = True) -> Mode:
    """``bar`` on a terminal, ``lines`` elsewhere; ``SCRM_PROGRESS`` wins; ``off`` if not enabled."""
    if not enabled:
        return "off"
    forced = os.environ.get("SCRM_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced  # type: ignore[return-value]
    isatty = getattr(stream, "isatty", None)
    terminal = bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"
    return "bar" if terminal else "lines"


def format_line(label: str, done: int, total: int | None, unit: str, note: str,
                elapsed_s: float) -> str:
    """One progress line: ``label: 3/12 cell (note), 41.2 s`` (no total: ``label: 3 cell ...``)."""
    count = f"{done}/{total}" if total is not None else f"{done}"
    return f"{label}: {count} {unit}{f' ({note})' if note else ''}, {elapsed_s:.1f} s"


class Bar:
    """A step counter shown as a tqdm bar on a terminal or as plain lines (see the module doc).

    The same calls as tqdm (``update``, ``close``, a context manager), so it replaces a tqdm bar
    without touching the loop around it.
    """

    def __init__(self, total: int | None, label: str, unit: str = "step", *, enabled: bool = True,
                 stream: IO[str] | None = None, min_interval_s: float = 0.0) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.mode = choose_mode(self.stream, enabled)
        self.min_interval_s = min_interval_s
        self.done = 0
        self.note = ""
        self._t0 = time.perf_counter()
        self._last_line = float("-inf")
        self._closed = False
        self._tqdm: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, desc=label, unit=unit, file=self.stream,
                              mininterval=0.5, dynamic_ncols=True, leave=True)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more steps are done; ``note`` says which (a cell name, a phase)."""
        self.done += n
        self.note = note or self.note
        if self.mode == "bar":
            if note:
                self._tqdm.set_postfix_str(note, refresh=False)
            self._tqdm.update(n)
        elif self.mode == "lines":
            now = time.perf_counter()
            last = self.total is not None and self.done >= self.total
            if last or now - self._last_line >= self.min_interval_s:
                self._write(format_line(self.label, self.done, self.total, self.unit, note,
                                        self.elapsed_s))
                self._last_line = now

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._tqdm.close()

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(total: int | None, label: str, unit: str = "step", **kwargs: Any) -> Bar:
    """A :class:`Bar` (keyword arguments: ``enabled``, ``stream``, ``min_interval_s``)."""
    return Bar(total, label, unit, **kwargs)


def iterate(items: Iterable[T], label: str, unit: str = "step", total: int | None = None,
            **kwargs: Any) -> Iterator[T]:
    """Yield ``items``, counting each one done when the next is asked for (or at the end)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Bar(total, label, unit, **kwargs) as b:
        for item in items:
            yield item
            b.update(1)


class Phases:
    """A stage of a few named phases: ``start(name)`` at each boundary, ``finish()`` at the end.

    On a terminal the bar counts finished phases and names the one running; in a log each phase
    is one line with the time since the stage began, and ``finish`` writes the total.
    """

    def __init__(self, label: str, names: Sequence[str], *, enabled: bool = True,
                 stream: IO[str] | None = None) -> None:
        self.names = list(names)
        self._bar = Bar(len(self.names), label, "phases", enabled=enabled, stream=stream)
        self._current: str | None = None

    @property
    def mode(self) -> Mode:
        return self._bar.mode

    def _line(self, text: str) -> None:
        if self._bar.mode == "lines":
            self._bar._write(f"{self._bar.label}: {text}, {self._bar.elapsed_s:.1f} s")

    def _previous_done(self) -> None:
        if self._current is not None and self._bar.mode == "bar":
            self._bar._tqdm.update(1)
        self._current = None

    def start(self, name: str) -> None:
        """Phase ``name`` begins (the previous one, if any, is done)."""
        if name not in self.names:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(self.names)}")
        self._previous_done()
        self._current = name
        if self._bar.mode == "bar":
            self._bar._tqdm.set_postfix_str(name)
        self._line(f"phase {self.names.index(name) + 1}/{len(self.names)} {name}")

    def finish(self) -> None:
        """The last phase is done: the bar closes, the log gets the total time."""
        self._previous_done()
        self._line(f"{len(self.names)} phases done")
        self._bar.close()

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


# ------------------------------------------------------------------------------------------------
# waiting for a local server (make ui)
# ------------------------------------------------------------------------------------------------
def wait_for_url(url: str, timeout_s: float = 120.0, interval_s: float = 0.5) -> float | None:
    """Poll ``url`` until it answers with a status below 500; return the seconds waited, or None.

    Only loopback addresses are polled: this exists to tell a person when *their own* server is up.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"wait_for_url polls loopback servers only, not {host!r}")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=max(interval_s, 2.0)) as resp:  # noqa: S310
                if resp.status < 500:
                    return time.perf_counter() - t0
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return time.perf_counter() - t0
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval_s)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scrm.progress wait URL [TIMEOUT_S]``: exit 0 once URL answers, 1 on timeout."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or args[0] != "wait":
        print("usage: python -m scrm.progress wait URL [TIMEOUT_S]", file=sys.stderr)
        return 2
    timeout_s = float(args[2]) if len(args) == 3 else 120.0
    print(f"waiting for {args[1]} to answer (at most {timeout_s:.0f} s)...", file=sys.stderr,
          flush=True)
    waited = wait_for_url(args[1], timeout_s)
    if waited is None:
        print(f"{args[1]} did not answer within {timeout_s:.0f} s", file=sys.stderr)
        return 1
    print(f"answering after {waited:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
