"""The JSON log lines' writer on a file descriptor: batching per loop turn, whole lines,
bounded waits on a full stdout, and re-entry (a finalizer that logs) without a deadlock.

Split from `execd.logs` (the structlog pipeline) by job: this module only writes bytes it is
given; `execd.logs` makes them and installs the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TextIO

import msgspec

_NOTE_ENCODER = msgspec.json.Encoder()
"""For the writer's own ``log_lines_dropped`` note (plain str and int fields)."""


_FULL_PIPE_WAIT_SECONDS = 0.5
"""How long a write waits for a full non-blocking stdout before its lines are dropped whole.
Bounded because the writer runs on the event loop: a reader that stopped (journald stuck)
must not freeze every leg. After a drop the next writes do not wait at all until one gets
through."""

_CUT_LINE_WAIT_SECONDS = 5.0
"""How long the rest of a write already partly written waits for room: the reader took its
start, so it is alive; past this the line it stopped in is cut (and terminated by the next
write) rather than the loop frozen."""

_BATCH_BYTES = 65_536
"""The most a loop turn's lines wait in memory: a turn that logs more is written at this size
(one pipe's worth on Linux), so a burst costs one system call per 64 KiB, not per line, and a
kill -9 loses at most this much of the current turn."""


class _LineWriter:
    """A structlog logger that writes whole lines with ``os.write`` on a file descriptor.

    **When a line is written.** A line logged on a thread that runs an event loop (the
    daemon's: every leg, stream and the control API) joins the lines of the current loop
    turn, and a callback the first of them scheduled with ``loop.call_soon`` writes them all
    with one system call at the start of the next turn, before any I/O callback of that
    turn; a turn that logs more than `_BATCH_BYTES` writes at that size. The ``write(2)``
    per line was a third of a line's cost (execd/bench/README.md §5). A line logged where no
    loop runs (a thread of its own, the CLI, code before or after the loop) writes what is
    pending first and then itself, at once, so lines stay in the order they were logged on
    every thread and across threads. An error or critical line (`msg_now`) is written at
    once too, after the pending ones: a crash's last words never wait in memory (the
    daemon's ``os._exit`` on a second SIGINT skips ``atexit``). `flush` writes what is
    pending; `configure_logging` registers it with ``atexit`` (a clean exit, SIGTERM through
    the daemon's handler, an unhandled exception: Python runs ``atexit`` after printing the
    traceback) and calls it before it replaces the writer. **What a kill -9 (or SIGKILL from
    systemd's stop timeout, an OOM kill, a crash of the interpreter itself) loses: the
    debug, info and warning lines of the current loop turn logged after its last error
    line, at most `_BATCH_BYTES`** — lines logged since the loop last ran its callbacks.
    Every earlier line is in the kernel's pipe (journald's) before the next turn does any
    I/O. A forked child starts with nothing pending (its parent writes those lines).

    **A line is never cut or interleaved.** The lines are joined whole under one lock (a
    thread logging through structlog at the same moment as the loop), and a short write
    (a signal, a full pipe) writes the rest.

    **A line logged from inside the writer never deadlocks.** Whatever the writer allocates
    under its lock can start a garbage collection on the same thread, which runs finalizers
    that log (asyncio's "Future exception was never retrieved", aiohttp's "Unclosed client
    session"); a signal handler can log between any two bytecodes. The lock is re-entrant,
    and a call made while the thread is already inside the writer (`_depth`) only puts its
    line aside (`_reentered`): it touches neither the lines being joined nor a write under
    way. The outer call writes those lines when it is done, before it lets go of the lock,
    so they come right after what it wrote, whole and in order.

    **Logging never raises into the code that logged** (a leg mid-trade, the quote stream,
    which would take an OSError for a network failure):

    - stdout's file description may be non-blocking (shared with a process that set
      O_NONBLOCK). A full pipe answers EAGAIN: the writer polls for room, bounded
      (`_FULL_PIPE_WAIT_SECONDS` before a write starts, `_CUT_LINE_WAIT_SECONDS` once it
      has), then writes the rest. O_NONBLOCK is not cleared: the flag belongs to the file
      description, which other processes share, and a blocking write to a stuck reader
      would freeze the loop without bound. Lines that cannot start in time are dropped
      whole; later writes are dropped without waiting until one gets through, and the first
      that does is preceded by a ``log_lines_dropped`` line with the count.
    - Any other write error (EPIPE: journald is gone; EIO, ENOSPC) drops the lines and
      writes one note to stderr per kind of error; after EPIPE (a pipe never gets its
      reader back) nothing more is written. EBADF still raises: the descriptor closed
      under the writer is a bug in this process, not the reader's state.
    """

    __slots__ = (
        "__weakref__",
        "_broken",
        "_cut",
        "_depth",
        "_dropped",
        "_errors",
        "_fd",
        "_lock",
        "_pending",
        "_pending_lines",
        "_reentered",
        "_scheduled_on",
        "_scheduled_thread",
        "_stream",
        "_timestamp",
    )

    def __init__(self, stream: TextIO, fd: int, timestamp: Callable[[], str]) -> None:
        # The stream is kept: alive, its descriptor stays ours; closed, it is not written
        # (the number may already belong to another file, the journal's database say).
        self._stream = stream
        self._fd = fd
        # Lines come from the event loop's thread; the lock keeps a line whole and the
        # order intact if a thread (an executor, a library) logs at the same moment.
        # Re-entrant: a finalizer or signal handler on the thread that holds it may log.
        self._lock = threading.RLock()
        self._depth = 0  # 1 while the lock's holder is inside a call (read under the lock)
        self._reentered: list[bytes] = []  # lines logged meanwhile from inside it
        self._pending = bytearray()  # this loop turn's lines, each ending in "\n"
        self._pending_lines = 0
        # The loop a flush is scheduled on (None: none is). A loop closed before running
        # it, or a second loop on another thread, gets its own.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._scheduled_thread = 0  # the thread running `_scheduled_on`
        self._dropped = 0  # lines dropped since the last write that got through
        self._cut = False  # the last write was cut inside a line: the next starts anew
        self._broken = False  # EPIPE: the reader is gone for good
        self._errors: set[int] = set()  # errnos already noted on stderr
        self._timestamp = timestamp  # the drop note's, as the lines' own

    def msg(self, message: bytes) -> None:
        """Queue `message` and a newline for the end of this loop turn, or write it now
        where no loop runs (see the class docstring)."""
        if self._stream.closed:
            raise ValueError("I/O operation on closed file (the log stream)")
        with self._lock:
            if self._depth:
                self._reentered.append(message)
                return
            self._depth = 1
            try:
                if self._broken:
                    self._dropped += 1
                    return
                pending = self._pending
                pending += message
                pending += b"\n"
                self._pending_lines += 1
                scheduled = self._scheduled_on
                if (
                    scheduled is None
                    or self._scheduled_thread != threading.get_ident()
                    or not scheduled.is_running()
                ):
                    # Not known to be on a loop with a flush pending: ask asyncio (on Python
                    # 3.11 a getpid system call, which the check above saves per line).
                    loop = _running_loop()
                    if loop is None:
                        self._flush_locked()
                        return
                    if loop is not scheduled:
                        loop.call_soon(self.flush)
                        self._scheduled_on = loop
                        self._scheduled_thread = threading.get_ident()
                if len(pending) >= _BATCH_BYTES:
                    self._flush_locked()
            finally:
                self._depth = 0
                if self._reentered:
                    self._leave()

    def _leave(self) -> None:
        """Write the lines logged from inside the lock holder's call (`_depth` just back to 0).

        Each window is safe: a line logged while `_depth` is 1 is put aside and the loop
        below sees it; one logged while it is 0 takes the whole path itself."""
        while self._reentered:
            self._depth = 1
            try:
                lines, self._reentered = self._reentered, []
                for line in lines:
                    self._pending += line
                    self._pending += b"\n"
                    self._pending_lines += 1
                # At once, after the lines pending: an error line among them (`msg_now`)
                # must not wait, and no flush may be scheduled for them (a flush's own call).
                if not self._stream.closed:
                    self._flush_locked()
            finally:
                self._depth = 0

    def flush(self) -> None:
        """Write the lines logged and not yet written (the loop's callback, ``atexit``)."""
        with self._lock:
            if self._depth:
                return  # called from inside the writer: the outer call writes what is pending
            self._depth = 1
            try:
                self._scheduled_on = None
                # A stream closed with lines pending (a test, the bench, never the daemon's
                # stdout): its descriptor may already be another file's, so they are not
                # written.
                if self._pending and not self._stream.closed:
                    self._flush_locked()
            finally:
                self._depth = 0
                if self._reentered:
                    self._leave()

    def _flush_locked(self) -> None:
        data, lines = bytes(self._pending), self._pending_lines
        self._pending.clear()
        self._pending_lines = 0
        if self._broken:
            self._dropped += lines
            return
        if not (self._dropped or self._cut):
            # The common case, one system call; anything else takes `_write` (an error
            # other than a full pipe comes again there, and is handled there).
            done = 0
            with contextlib.suppress(OSError):
                done = os.write(self._fd, data)
            if done < len(data):
                self._write(data, done)
            return
        head = (b"\n" if self._cut else b"") + (self._drop_note() if self._dropped else b"")
        self._write(head + data, 0, len(head))

    def _forget(self) -> None:
        """In a forked child: the parent writes the lines pending at the fork, not the child."""
        self._lock = threading.RLock()
        self._depth = 0
        self._reentered = []
        self._pending = bytearray()
        self._pending_lines = 0
        self._scheduled_on = None

    def _drop_note(self) -> bytes:
        note = {
            "timestamp": self._timestamp(),
            "level": "warning",
            "event": "log_lines_dropped",
            "count": self._dropped,
            "reason": "stdout full or failing",
        }
        return _NOTE_ENCODER.encode(note) + b"\n"

    def _write(self, data: bytes, done: int, prefix: int = 0) -> None:
        """Write `data` (whole lines, the first `prefix` bytes not logged ones) from `done`
        on: wait for room (bounded), drop or fail as the class docstring says."""
        view = memoryview(data)
        started = time.monotonic()
        try:
            while done < len(data):
                try:
                    done += os.write(self._fd, view[done:])
                    continue
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        # Our descriptor closed under us: a bug here, never hidden. Raised (into
                        # the caller, or the loop's exception handler for a queued flush), noted
                        # on stderr, and nothing more is written: a loop would otherwise log the
                        # failed flush, queue a flush for that line and fail again every turn.
                        self._broken = True
                        self._note(exc, "no more lines are written")
                        raise
                    self._fail(exc, data, done, prefix)
                    return
                if done == 0 and self._dropped:
                    break  # still full after a drop: do not wait again
                bound = _CUT_LINE_WAIT_SECONDS if done else _FULL_PIPE_WAIT_SECONDS
                remaining = started + bound - time.monotonic()
                if remaining <= 0:
                    break
                # Writable or in error after this (the write says which). poll, not select:
                # select cannot take a descriptor numbered past 1023.
                poller = select.poll()
                poller.register(self._fd, select.POLLOUT)
                poller.poll(max(1, math.ceil(remaining * 1000)))
        except BaseException:
            # A signal handler that raised (KeyboardInterrupt) during the wait, or EBADF:
            # what got through is in the pipe, so the next write must know where it ends.
            self._give_up(data, done, prefix)
            raise
        if done < len(data):
            self._give_up(data, done, prefix)
            return
        self._dropped = 0
        self._cut = False

    def _give_up(self, data: bytes, done: int, prefix: int) -> None:
        """Count the logged lines of `data` not written whole (their newline is not among the
        first `done` bytes); note a cut inside a line. The first `prefix` bytes are the
        newline ending a cut line and the drop note: not logged lines, and if the note did
        not get through, its count still stands. A write that got nothing through leaves
        the pipe as it was: a line cut before it is still unterminated there."""
        kept = self._dropped if done < prefix else 0
        self._dropped = kept + data.count(b"\n", max(done, prefix))
        if done:
            self._cut = data[done - 1] != 0x0A

    def _fail(self, exc: OSError, data: bytes, done: int, prefix: int) -> None:
        self._give_up(data, done, prefix)
        if exc.errno == errno.EPIPE:
            self._broken = True
        self._note(exc, "no more lines are written" if self._broken else "the lines were dropped")

    def _note(self, exc: OSError, tail: str) -> None:
        """One line on stderr per kind of error."""
        if exc.errno in self._errors:
            return
        self._errors.add(exc.errno or 0)
        note = f"execd: writing a log line to stdout failed ({exc!r}); {tail}\n"
        with contextlib.suppress(OSError, ValueError):
            os.write(2, note.encode("utf-8", "replace"))

    def msg_now(self, message: bytes) -> None:
        """Write `message` and a newline now, after the lines pending: an error line (a leg
        that crashed, the daemon's last words before ``os._exit``) is never left in memory,
        so not even a kill -9 right after it loses it."""
        if self._stream.closed:
            raise ValueError("I/O operation on closed file (the log stream)")
        with self._lock:
            if self._depth:
                self._reentered.append(message)  # written as soon as the outer call is done
                return
            self._depth = 1
            try:
                if self._broken:
                    self._dropped += 1
                    return
                self._pending += message
                self._pending += b"\n"
                self._pending_lines += 1
                self._flush_locked()
            finally:
                self._depth = 0
                if self._reentered:
                    self._leave()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg_now


_running_loop = asyncio.events._get_running_loop
"""The event loop running on this thread, or None: asyncio's own C accessor (public in
``asyncio.events.__all__``), a fraction of a microsecond per line."""
