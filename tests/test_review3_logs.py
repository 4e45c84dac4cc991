"""Review (issue 14, third pass): the batching line writer (`execd/log_writer.py`), attacked.

Each test below guards a defect the review found (a strict xfail until it was fixed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import structlog

from execd.logs import configure_logging
from tests.log_support import restore_logging  # noqa: F401 (restore_logging: autouse)

_ROOT = Path(__file__).resolve().parents[1]

# A collection the writer triggers itself (any container it allocates while it holds its
# lock: `loop.call_soon`'s handle in `msg`, `contextlib.suppress` in `_flush_locked`) runs
# the finalizers of the cyclic garbage it finds, on the same thread, inside the lock. The
# gc callback below only puts such garbage in the young generation at each collection's
# start, so that a collection that happens to start inside the lock finds some; what the
# finalizer does is what asyncio's Future/Task and aiohttp's session do in `__del__`
# ("exception was never retrieved", "Unclosed client session"): log an error.
_FINALIZER_LOGS = textwrap.dedent(
    """
    import asyncio, faulthandler, gc, logging, sys

    import structlog

    from execd.logs import configure_logging

    configure_logging("info", "json", sys.stdout)
    log = structlog.get_logger("execd.leg")


    class Garbage:
        def __init__(self):
            self.me = self  # a cycle: only the collector frees it

        def __del__(self):
            logging.getLogger("asyncio").error("Future exception was never retrieved")


    def put_garbage(phase, info):
        if phase == "start" and info["generation"] == 0:
            Garbage()


    gc.callbacks.append(put_garbage)
    gc.set_threshold(7)  # collections often, so one starts inside the writer's lock soon
    faulthandler.dump_traceback_later(6, exit=True)  # a deadlock: stack to stderr, exit 1


    async def main():
        for i in range(400):
            log.info("line", i=i)
            if i % 20 == 0:
                await asyncio.sleep(0)


    asyncio.run(main())
    gc.callbacks.clear()
    faulthandler.cancel_dump_traceback_later()
    print("finished", file=sys.stderr)
    """
)


def test_review3_a_finalizer_logging_during_a_write_does_not_deadlock_the_loop() -> None:
    """A silent stall, the worst bug there is: the loop thread blocks forever on
    `_LineWriter._lock` (a `threading.Lock`, not re-entrant) that it already holds, because
    a line was logged from a finalizer the cyclic collector ran while the writer was in
    `msg`/`_flush_locked`. Every leg stops; systemd's watchdog is the only way out."""
    done = subprocess.run(
        [sys.executable, "-c", _FINALIZER_LOGS],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sum(line["event"] == "line" for line in lines) == 400


def test_review3_a_lone_surrogate_in_a_field_is_logged_not_raised(tmp_path: Path) -> None:
    """A lone surrogate is what Python makes of a non-UTF-8 byte it had to decode with
    ``surrogateescape``: a file name (`os.fsdecode`, a plan path under a directory named in
    Latin-1), an environment variable, `sys.argv`. Logging such a value must not raise into
    the code that logged (a leg, the control server, intake): the stdlib records' handler
    already encodes with ``surrogateescape``; structlog's own JSON renderer escapes it."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out)
        log = structlog.get_logger("execd.intake")
        plan = os.fsdecode(b"/srv/plans/r\xe9\xe9quilibrage.toml")
        log.info("plan_read", path=plan)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1
    assert b"plan_read" in lines[0]
    assert json.loads(lines[0])["path"] == plan  # valid JSON, the surrogate escaped


# The same re-entry where it is hardest: while the writer is in its `os.write` loop, halfway
# through a line a slow reader took only part of (each retry slices a memoryview, which can
# start a collection). Every line logged from inside must come out whole, after the write
# under way, and the line being written must not be cut by it.
_LOGS_MID_WRITE = textwrap.dedent(
    """
    import faulthandler, gc, json, logging, os, sys, threading

    import structlog

    import execd.logs
    from execd.logs import configure_logging
    from tests.log_support import fill

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    filled = fill(write_fd)
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    configure_logging("info", "json", out)
    log = structlog.get_logger("execd.leg")
    inside = 0


    def log_inside(phase, info):
        global inside
        writer = execd.logs._writer
        if (
            phase == "start"
            and threading.current_thread() is threading.main_thread()  # not the reader's
            and writer is not None
            and writer._depth
            and inside < 300
        ):
            inside += 1
            logging.getLogger("asyncio").error("finalizer", extra={"n": inside})


    received = bytearray()
    done = threading.Event()


    def reader():  # a slow journald: a page at a time
        while True:
            chunk = os.read(read_fd, 4096)
            if not chunk:
                return
            received.extend(chunk)
            done.wait(0.0005)


    thread = threading.Thread(target=reader)
    thread.start()
    faulthandler.dump_traceback_later(10, exit=True)  # a deadlock: exit 1
    gc.callbacks.append(log_inside)
    gc.set_threshold(1)
    for i in range(12):
        log.info("big", i=i, pad="p" * 20_000)
    gc.callbacks.clear()
    gc.set_threshold(700)
    out.close()
    thread.join()
    faulthandler.cancel_dump_traceback_later()
    lines = [json.loads(x) for x in bytes(received[filled:]).decode().splitlines()]
    print(json.dumps({"inside": inside, "lines": lines}))
    """
)


def test_review3_lines_logged_in_the_middle_of_a_write_come_out_whole_after_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOGS_MID_WRITE],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    lines = result["lines"]
    assert result["inside"] > 0  # the collections did start inside the writer
    big = [line for line in lines if line["event"] == "big"]
    assert [line["i"] for line in big] == list(range(12))
    assert all(line["pad"] == "p" * 20_000 for line in big)
    assert sum(line["event"] == "finalizer" for line in lines) == result["inside"]
