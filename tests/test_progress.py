"""Progress on long steps: a bar on a terminal, one plain line per step in logs, never a carriage return
in a file; and the server waiter behind `make ui`."""

from __future__ import annotations

import http.server
import io
import threading

import pytest

from scrm import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("SCRM_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_mode_follows_the_stream_and_the_override(monkeypatch):
    assert progress.choose_mode(io.StringIO()) == "lines"
    assert progress.choose_mode(_Tty()) == "bar"
    assert progress.choose_mode(_Tty(), enabled=False) == "off"
    monkeypatch.setenv("TERM", "dumb")
    assert progress.choose_mode(_Tty()) == "lines"
    monkeypatch.setenv("SCRM_PROGRESS", "lines")
    assert progress.choose_mode(_Tty()) == "lines"
    monkeypatch.setenv("SCRM_PROGRESS", "off")
    assert progress.choose_mode(io.StringIO()) == "off"


def test_format_line_by_hand():
    assert progress.format_line("benchmark", 3, 12, "cell", "linsvc|time|gold", 41.25) == \
        "benchmark: 3/12 cell (linsvc|time|gold), 41.2 s"
    assert progress.format_line("embedding", 64, None, "sent", "", 2.0) == "embedding: 64 sent, 2.0 s"


def test_log_gets_one_line_per_step_and_no_carriage_return():
    out = io.StringIO()
    with progress.bar(3, "benchmark", "cell", stream=out) as b:
        for name in ("dummy", "logreg", "linsvc"):
            b.update(1, note=name)
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["benchmark: 1/3 cell (dummy)",
                                                 "benchmark: 2/3 cell (logreg)",
                                                 "benchmark: 3/3 cell (linsvc)"]
    assert "\r" not in out.getvalue()


def test_lines_are_throttled_but_the_last_step_is_always_written():
    out = io.StringIO()
    b = progress.bar(1000, "embedding", "sent", stream=out, min_interval_s=3600)
    for _ in range(10):
        b.update(100)
    b.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first step, then nothing for an hour ... except the last
    assert lines[0].startswith("embedding: 100/1000 sent")
    assert lines[1].startswith("embedding: 1000/1000 sent")


def test_terminal_gets_a_live_bar():
    out = _Tty()
    with progress.bar(4, "topics", "phases", stream=out) as b:
        b.update(2, note="umap")
    text = out.getvalue()
    assert "\r" in text and "topics" in text and "2/4" in text and "umap" in text


def test_off_writes_nothing():
    out = io.StringIO()
    with progress.bar(2, "x", enabled=False, stream=out) as b:
        b.update(2)
    assert out.getvalue() == ""


def test_iterate_counts_each_item():
    out = io.StringIO()
    assert list(progress.iterate(["a", "b"], "cells", "cell", stream=out)) == ["a", "b"]
    assert out.getvalue().splitlines()[-1].startswith("cells: 2/2 cell")


def test_phases_in_a_log_name_each_phase_and_the_total():
    out = io.StringIO()
    ph = progress.Phases("topics", ["fit", "figures"], stream=out)
    ph.start("fit")
    ph.start("figures")
    ph.finish()
    lines = [ln.rsplit(",", 1)[0] for ln in out.getvalue().splitlines()]
    assert lines == ["topics: phase 1/2 fit", "topics: phase 2/2 figures", "topics: 2 phases done"]
    with pytest.raises(ValueError, match="unknown phase"):
        progress.Phases("topics", ["fit"], stream=io.StringIO()).start("typo")


def test_phases_on_a_terminal_show_the_running_phase():
    out = _Tty()
    ph = progress.Phases("topics", ["fit", "figures"], stream=out)
    ph.start("fit")
    ph.start("figures")
    ph.finish()
    assert "figures" in out.getvalue() and "2/2" in out.getvalue()


def test_wait_for_url_sees_a_local_server_and_times_out_without_one():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert progress.wait_for_url(f"http://127.0.0.1:{port}/health", timeout_s=10) is not None
        assert progress.main(["wait", f"http://127.0.0.1:{port}/health", "10"]) == 0
    finally:
        server.shutdown()
    assert progress.wait_for_url(f"http://127.0.0.1:{port}/health", timeout_s=0.6,
                                 interval_s=0.2) is None
    assert progress.main(["wait", f"http://127.0.0.1:{port}/", "0.5"]) == 1
    with pytest.raises(ValueError, match="loopback"):
        progress.wait_for_url("http://example.com/", timeout_s=1)
