"""The JSON line writer when stdout misbehaves: a full non-blocking pipe whose reader has
stopped, and a pipe whose reader is gone (EPIPE). Logging must never raise into the code
that logged (a leg mid-trade, the quote stream) and never leave a cut line behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal

import pytest
import structlog

from execd.logs import configure_logging
from tests.log_support import drain, fill, restore_logging  # noqa: F401 (restore_logging: autouse)


def test_a_stuck_reader_drops_whole_lines_and_the_next_line_counts_them() -> None:
    """A full non-blocking stdout whose reader does not come back: each line is dropped
    whole (never cut, never raised), and when the reader drains the pipe the next line is
    preceded by one ``log_lines_dropped`` line with the count."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out)
        log = structlog.get_logger("execd.leg")
        log.info("first", n=1)  # waits for room (bounded), then drops it
        log.info("second", n=2)  # dropped at once: still full after a drop
        assert len(drain(read_fd)) == filled  # nothing of either line got in
        log.info("third", n=3)
        lines = [json.loads(x) for x in drain(read_fd).decode().splitlines()]
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    assert [line["event"] for line in lines] == ["log_lines_dropped", "third"]
    assert lines[0]["count"] == 2
    assert lines[0]["level"] == "warning"
    assert lines[1]["n"] == 3


def test_a_vanished_reader_drops_lines_with_one_note_on_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """EPIPE (journald gone): no exception reaches the caller, one note goes to stderr,
    and later lines are dropped without another note or write attempt."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        configure_logging("info", "json", out)
        log = structlog.get_logger("execd.leg")
        for n in range(3):
            log.info("lost", n=n)
            log.error("lost_too", traceback="t" * 100_000)
    finally:
        with contextlib.suppress(OSError):
            out.close()
    notes = [x for x in capfd.readouterr().err.splitlines() if "log line" in x]
    assert len(notes) == 1
    assert "BrokenPipeError" in notes[0]
    assert "no more lines" in notes[0]


def test_a_line_cut_by_a_reader_that_stops_is_terminated_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader that takes the start of a long line and then stops: past the (shortened)
    bound the rest is given up rather than the loop frozen; the next line that gets
    through starts on a line of its own, after the drop count, so every later line parses."""
    monkeypatch.setattr("execd.log_writer._CUT_LINE_WAIT_SECONDS", 0.05)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out)
        head = os.read(read_fd, 8192)  # room for the start of the line only
        log = structlog.get_logger("execd.leg")
        log.error("leg_crashed", traceback="t" * 200_000)
        received = head + drain(read_fd)
        log.info("next", n=1)
        received += drain(read_fd)
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    fragment, note, line, tail = received[filled:].split(b"\n")
    assert fragment.startswith(b'{"timestamp"')
    assert json.loads(note)["event"] == "log_lines_dropped"
    assert json.loads(line)["event"] == "next"
    assert tail == b""


def test_a_cut_line_is_still_terminated_after_a_line_dropped_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader that takes the start of a long line and then stays stopped: the next line
    cannot start and is dropped whole. That drop wrote nothing, so the pipe still ends
    inside the cut line: the line that gets through once the reader is back must still
    start on a line of its own (it was glued to the fragment, the drop note lost inside a
    garbled line)."""
    monkeypatch.setattr("execd.log_writer._CUT_LINE_WAIT_SECONDS", 0.05)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out)
        head = os.read(read_fd, 8192)  # room for the start of the line only
        log = structlog.get_logger("execd.leg")
        log.error("leg_crashed", traceback="t" * 200_000)  # cut after 8 kB
        log.info("dropped", n=1)  # the pipe is still full: dropped whole, nothing written
        received = head + drain(read_fd)
        log.info("next", n=2)
        received += drain(read_fd)
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    fragment, note, line, tail = received[filled:].split(b"\n")
    assert fragment.startswith(b'{"timestamp"')
    assert json.loads(note)["event"] == "log_lines_dropped"
    assert json.loads(note)["count"] == 2
    assert json.loads(line)["event"] == "next"
    assert tail == b""


def test_a_signal_handler_raising_mid_line_leaves_the_line_marked_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal handler that raises (Python's default SIGINT: KeyboardInterrupt, where no
    loop took the signal over) while the rest of a partly written line waits for room:
    the exception reaches the caller, but the writer still knows the pipe ends inside a
    line, so the next line that gets through starts on a line of its own."""
    monkeypatch.setattr("execd.log_writer._CUT_LINE_WAIT_SECONDS", 10.0)

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out)
        head = os.read(read_fd, 8192)  # room for the start of the line only
        log = structlog.get_logger("execd.leg")
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            log.error("leg_crashed", traceback="t" * 200_000)
        received = head + drain(read_fd)
        log.info("next", n=1)
        received += drain(read_fd)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    fragment, note, line, tail = received[filled:].split(b"\n")
    assert fragment.startswith(b'{"timestamp"')
    assert json.loads(note)["event"] == "log_lines_dropped"
    assert json.loads(line)["event"] == "next"
    assert tail == b""
