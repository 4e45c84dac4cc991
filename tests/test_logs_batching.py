"""The JSON line writer's batching (issue 14 item 5): the lines one event-loop turn logs
are written together, with one ``write(2)``, at the start of the next turn.

What users rely on must survive it: every line reaches stdout whole and in order; nothing
is lost on a clean exit, an unhandled exception or a reconfiguration; a kill -9 loses at
most the current turn's lines; a full or vanished stdout is handled as before, a batch's
lines counted one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from execd.log_writer import _BATCH_BYTES
from execd.logs import configure_logging, flush_logs
from tests.log_support import drain, fill, restore_logging  # noqa: F401 (restore_logging: autouse)

ROOT = Path(__file__).resolve().parents[1]


def _read(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line]


def _events(path: Path) -> list[str]:
    return [line["event"] for line in _read(path)]


async def test_a_turns_lines_are_written_together_at_the_start_of_the_next_turn(
    tmp_path: Path,
) -> None:
    """Lines logged on the loop wait for the end of their turn (that is the saving: one
    write for all of them) and are in the file when the next turn starts, before the code
    that logged resumes; a line logged off the loop afterwards comes after them."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.leg")
        for n in range(3):
            log.info("in_turn", n=n)
        assert path.read_text(encoding="utf-8") == "", "written before the turn ended"
        await asyncio.sleep(0)  # the turn ends; the flush scheduled by the first line runs
        assert [line["n"] for line in _read(path)] == [0, 1, 2]
        log.info("next_turn")
        await asyncio.to_thread(log.info, "off_loop")  # a thread: written at once
        await asyncio.sleep(0)
    assert _events(path) == ["in_turn"] * 3 + ["next_turn", "off_loop"]


async def test_lines_keep_their_order_across_the_loop_threads_and_stdlib(tmp_path: Path) -> None:
    """The loop's lines, a thread's lines and a library's stdlib record, logged in an
    order the test controls, arrive in that order: a line written off the loop writes the
    pending ones first, and stdlib records go through the same writer."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.leg")
        log.info("loop_1")
        logging.getLogger("aiohttp.client").warning("stdlib_%s", 2)
        log.info("loop_3")
        await asyncio.to_thread(log.info, "thread_4")
        log.info("loop_5")
        await asyncio.to_thread(logging.getLogger("websockets").error, "stdlib_6")
        log.info("loop_7")
        await asyncio.sleep(0)
    assert _events(path) == [
        "loop_1",
        "stdlib_2",
        "loop_3",
        "thread_4",
        "loop_5",
        "stdlib_6",
        "loop_7",
    ]


async def test_threads_and_the_loop_logging_at_once_keep_every_line_whole(tmp_path: Path) -> None:
    """The loop batching while threads write at once: no line is cut or interleaved, and
    each thread's lines (and the loop's) stay in their order."""
    path = tmp_path / "log.jsonl"
    per_thread = 300
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger()
        start = threading.Barrier(3)

        def worker(n: int) -> None:
            start.wait()
            for i in range(per_thread):
                log.info("line", worker=n, i=i, pad="é" * (n * 700))

        threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        start.wait()
        for i in range(per_thread):
            log.info("line", worker=0, i=i, pad="")
            if i % 7 == 0:
                await asyncio.sleep(0)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.sleep(0)
    lines = _read(path)
    assert len(lines) == 3 * per_thread
    for n in range(3):
        mine = [line for line in lines if line["worker"] == n]
        assert [line["i"] for line in mine] == list(range(per_thread))
        assert all(line["pad"] == "é" * (n * 700) for line in mine)


async def test_a_turn_that_logs_more_than_the_cap_writes_at_the_cap(tmp_path: Path) -> None:
    """A turn never holds more than `_BATCH_BYTES` in memory (what a kill -9 could lose):
    past it the lines are written within the turn, and a line larger than the cap is
    written whole."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger()
        pad = "p" * 1000
        for i in range(2 * _BATCH_BYTES // 1000):
            log.info("burst", i=i, pad=pad)
        written = path.stat().st_size
        assert written > _BATCH_BYTES
        log.info("huge", blob="h" * (3 * _BATCH_BYTES))
        assert path.stat().st_size > written + 3 * _BATCH_BYTES
        await asyncio.sleep(0)
    lines = _read(path)
    assert [line["i"] for line in lines[:-1]] == list(range(2 * _BATCH_BYTES // 1000))
    assert lines[-1]["blob"] == "h" * (3 * _BATCH_BYTES)


def test_a_loop_closed_before_its_flush_ran_loses_nothing(tmp_path: Path) -> None:
    """A loop stopped and closed with its flush still queued (no `asyncio.run` clean-up to
    run it): the next line, logged off the loop, writes the pending lines and then itself;
    a new loop's lines get a flush of their own."""
    path = tmp_path / "log.jsonl"

    async def log_one(event: str) -> None:
        structlog.get_logger().info(event)

    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        loop = asyncio.new_event_loop()

        def last_callback() -> None:
            structlog.get_logger().info("on_closed_loop")  # queues the flush
            loop.stop()  # the loop ends with this turn: the flush stays queued

        loop.call_soon(last_callback)
        loop.run_forever()
        loop.close()
        structlog.get_logger().info("after_close")
        assert _events(path) == ["on_closed_loop", "after_close"]

        async def two_turns() -> None:
            await log_one("on_new_loop")
            await asyncio.sleep(0)
            assert _events(path)[-1] == "on_new_loop"

        asyncio.run(two_turns())


async def test_reconfiguring_writes_the_pending_lines_first(tmp_path: Path) -> None:
    """`configure_logging` (the bench between items, a test) writes the old writer's pending
    lines before the new sink gets anything: none lost, none on the wrong stream."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with first.open("w", encoding="utf-8") as out_a, second.open("w", encoding="utf-8") as out_b:
        configure_logging("info", "json", out_a, once=True)
        structlog.get_logger().info("to_a")
        configure_logging("info", "json", out_b)
        assert _events(first) == ["to_a"]
        structlog.get_logger().info("to_b")
        flush_logs()
        assert _events(second) == ["to_b"]


_CHILD = """
import asyncio, os, signal, sys
import structlog
from execd.logs import configure_logging

configure_logging("info", "json", once=True)
log = structlog.get_logger("execd.engine.daemon")
how = sys.argv[1]

async def main() -> None:
    log.info("earlier_turn")
    await asyncio.sleep(0)
    log.info("last_turn", how=how)
    if how == "kill9":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "kill9_after_error":
        log.error("last_words")  # written at once, with the pending line before it
        log.info("after_the_error")
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "raise":
        raise RuntimeError("crash")
    if how == "interrupt":
        # Leaves the loop in the middle of its turn: the queued flush never runs.
        raise KeyboardInterrupt

if how in ("bare_loop", "interrupt"):
    # No asyncio.run clean-up: the loop never runs again after the exception.
    async def crash() -> None:
        await main()
        raise RuntimeError("crash")
    asyncio.new_event_loop().run_until_complete(crash())
else:
    import uvloop
    uvloop.run(main())
"""


def _child(how: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, how],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    events = [json.loads(line)["event"] for line in done.stdout.decode().splitlines()]
    return done.returncode, events, done.stderr.decode()


@pytest.mark.parametrize("how", ["clean", "raise", "bare_loop", "interrupt"])
def test_the_last_turns_lines_reach_stdout_on_exit_and_on_a_crash(how: str) -> None:
    """A clean exit, an unhandled exception out of `uvloop.run` or out of a bare
    `run_until_complete`, and a KeyboardInterrupt that leaves the loop in the middle of its
    turn (the queued flush never runs; only ``atexit`` writes the line): the lines of the
    last turn are on stdout before the process is gone. SIGTERM in the daemon is a clean
    exit (tests/engine/test_daemon_process.py: ``daemon_stopped`` after SIGTERM)."""
    code, events, stderr = _child(how)
    expected = {"clean": 0, "raise": 1, "bare_loop": 1, "interrupt": -signal.SIGINT}[how]
    assert code == expected, stderr
    assert events == ["earlier_turn", "last_turn"], stderr
    if how in ("raise", "bare_loop"):
        assert "RuntimeError: crash" in stderr


def test_kill9_loses_at_most_the_current_turns_lines() -> None:
    """The trade-off, pinned: SIGKILL in the middle of a turn loses that turn's lines and
    nothing before it (the earlier turn's line was written when the next turn started)."""
    code, events, stderr = _child("kill9")
    assert code == -signal.SIGKILL, stderr
    assert events == ["earlier_turn"]


def test_an_error_line_is_written_at_once_with_the_lines_before_it() -> None:
    """An error line is never left in memory: SIGKILL right after it loses only the lines
    logged after it (the daemon's last words before ``os._exit`` on a second SIGINT, which
    skips ``atexit``, are an error line)."""
    code, events, stderr = _child("kill9_after_error")
    assert code == -signal.SIGKILL, stderr
    assert events == ["earlier_turn", "last_turn", "last_words"]


async def test_a_stdlib_error_is_written_at_once(tmp_path: Path) -> None:
    """A library's error record (asyncio's "Task exception was never retrieved") is written
    at once like execd's own, after the pending lines; its warnings wait for the turn."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        structlog.get_logger().info("pending")
        logging.getLogger("websockets").warning("waits")
        assert _events(path) == []
        logging.getLogger("asyncio").error("at_once")
        assert _events(path) == ["pending", "waits", "at_once"]
        structlog.get_logger().exception("crashed")  # error level: at once too
        assert _events(path)[-1] == "crashed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
async def test_a_forked_child_does_not_write_its_parents_pending_lines(tmp_path: Path) -> None:
    """Lines pending at a fork are the parent's to write: the child's lines are its own,
    and no line appears twice."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger()
        log.info("parent_before_fork")
        pid = os.fork()
        if pid == 0:  # the child: no loop runs here, its line is written at once
            try:
                log.info("child")
            finally:
                os._exit(0)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        await asyncio.sleep(0)
    assert sorted(_events(path)) == ["child", "parent_before_fork"]


def _nonblocking_pipe() -> tuple[int, int, Any]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.set_blocking(read_fd, False)
    return read_fd, write_fd, os.fdopen(write_fd, "w", encoding="utf-8")


async def test_a_batch_meeting_a_full_pipe_arrives_whole_when_the_reader_catches_up() -> None:
    """A turn's batch (many lines, one write) meets a full non-blocking stdout; the reader
    catches up a moment later: every line arrives whole, once, in order, and nothing
    raises into the loop."""
    read_fd, write_fd, out = _nonblocking_pipe()
    received = bytearray()
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.leg")
        caught_up = threading.Event()
        flushed = threading.Event()

        def reader() -> None:
            # journald catching up a little later (a slow consumer, not a synchronisation)
            caught_up.wait(0.2)
            while True:
                chunk = drain(read_fd)
                received.extend(chunk)
                if flushed.is_set() and not chunk:
                    return
                flushed.wait(0.005)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for i in range(40):
                log.info("batched", i=i, pad="b" * 1000)
            await asyncio.sleep(0)  # the flush: EAGAIN, a bounded wait, the rest
        finally:
            caught_up.set()
            flushed.set()
            await asyncio.to_thread(thread.join, 10)
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    lines = [json.loads(x) for x in bytes(received[filled:]).decode().split("\n") if x]
    assert [line["i"] for line in lines] == list(range(40))
    assert received.endswith(b"\n")


async def test_a_batch_into_a_stuck_reader_is_dropped_whole_and_counted_by_line() -> None:
    """A reader that does not come back: the batch's lines are dropped whole, the loop is
    not frozen past the bound, and when the reader drains the pipe the next write starts
    with one ``log_lines_dropped`` line counting every line lost, batch by batch."""
    read_fd, write_fd, out = _nonblocking_pipe()
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.leg")
        for i in range(5):
            log.info("lost", i=i)
        await asyncio.sleep(0)  # waits (bounded), then drops all five
        for i in range(3):
            log.info("lost_too", i=i)
        await asyncio.sleep(0)  # still full after a drop: dropped without waiting
        assert len(drain(read_fd)) == filled
        log.info("back")
        await asyncio.sleep(0)
        lines = [json.loads(x) for x in drain(read_fd).decode().splitlines()]
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    assert [line["event"] for line in lines] == ["log_lines_dropped", "back"]
    assert lines[0]["count"] == 8


async def test_a_batch_cut_by_a_reader_that_stops_counts_what_was_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader that takes the start of a batch and stops: past the (shortened) bound the
    rest is given up. The lines before the cut arrive whole; the cut line is terminated by
    the next write, which counts the cut line and every line after it; everything after
    the cut parses."""
    monkeypatch.setattr("execd.log_writer._CUT_LINE_WAIT_SECONDS", 0.05)
    read_fd, write_fd, out = _nonblocking_pipe()
    try:
        filled = fill(write_fd)
        configure_logging("info", "json", out, once=True)
        head = os.read(read_fd, 8192)  # room for the first few lines of the batch only
        log = structlog.get_logger("execd.leg")
        for i in range(30):
            log.info("batched", i=i, pad="c" * 1000)
        await asyncio.sleep(0)
        received = head + drain(read_fd)
        log.info("next")
        await asyncio.sleep(0)
        received += drain(read_fd)
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)
    *whole, fragment, note, last, tail = received[filled:].split(b"\n")
    assert [json.loads(x)["i"] for x in whole] == list(range(len(whole)))
    assert 0 < len(whole) < 30
    assert fragment.startswith(b'{"timestamp"')
    assert json.loads(note)["count"] == 30 - len(whole)
    assert json.loads(last)["event"] == "next"
    assert tail == b""


async def test_a_vanished_reader_drops_the_batch_with_one_note(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """EPIPE on a batch: nothing raises into the loop, one note on stderr, later lines
    dropped without another note or write."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.leg")
        for turn in range(3):
            for i in range(5):
                log.info("lost", turn=turn, i=i)
            await asyncio.sleep(0)
    finally:
        with contextlib.suppress(OSError):
            out.close()
    notes = [x for x in capfd.readouterr().err.splitlines() if "log line" in x]
    assert len(notes) == 1
    assert "BrokenPipeError" in notes[0]


async def test_a_descriptor_closed_under_the_loop_fails_once_and_stops(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """EBADF in a queued flush (a bug in this process: stdout's descriptor closed under
    the writer): it reaches the loop's exception handler and stderr once, and the writer
    stops — it does not log the failure, queue a flush for that line and fail again every
    turn."""
    path = tmp_path / "log.jsonl"
    out = path.open("w", encoding="utf-8")
    configure_logging("info", "json", out, once=True)
    loop = asyncio.get_running_loop()
    failures: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: failures.append(context))
    try:
        os.close(out.fileno())
        structlog.get_logger().info("lost")
        for _ in range(5):
            await asyncio.sleep(0)
            structlog.get_logger().info("lost_too")
    finally:
        loop.set_exception_handler(None)
        with contextlib.suppress(OSError):
            out.close()
    assert len(failures) == 1
    assert isinstance(failures[0]["exception"], OSError)
    notes = [x for x in capfd.readouterr().err.splitlines() if "log line" in x]
    assert len(notes) == 1
    assert "Bad file descriptor" in notes[0]
