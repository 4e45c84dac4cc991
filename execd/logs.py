"""Logging: structlog as a pipeline of processors, one JSON object per line on stdout.

journald (or a terminal) is the only sink: execd writes facts to stdout and lets the
service manager store, rotate and ship them. Every line carries ``timestamp`` (UTC,
ISO 8601), ``level`` and ``event`` (a stable snake_case name); data goes in fields,
never in the message. Context a coroutine binds once with `structlog.contextvars`
(a leg binds `LEG_CONTEXT_KEYS` through `bind_leg`) is merged into every line it
logs, and contextvars are per task, so two legs never mix their context.

Third-party libraries (aiohttp, websockets) log through stdlib ``logging``; their
records go through the same pipeline, at WARNING and above, so the stream stays one
format.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import contextvars
import errno
import json
import logging
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import PurePath
from typing import Any, Literal, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console", "auto"]

LEG_CONTEXT_KEYS = ("plan_id", "leg", "symbol", "side", "client_order_id", "step")
"""The keys every line about a leg carries (DESIGN.md, "Interfaces users touch")."""

_STDLIB_FLOOR = logging.WARNING
"""aiohttp and websockets are chatty at INFO/DEBUG; only their warnings are facts for us."""

_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}
"""structlog's own method-name → level mapping (`structlog.processors.add_log_level`)."""

_installed_handler: logging.Handler | None = None
_writer: _LineWriter | None = None
"""The byte path's writer now installed (None: the text path): flushed at exit and before a
reconfiguration replaces it."""


def _enc_hook(value: Any) -> Any:
    """Make anything msgspec does not know serialisable: paths and exceptions as text."""
    if isinstance(value, PurePath | BaseException):
        return str(value)
    return repr(value)


# msgspec encodes Decimal as a string (exact, never a float), datetimes as RFC 3339, enums
# by value and Structs as objects. One encoder for the process: building one per line (what
# `msgspec.json.encode(..., enc_hook=...)` does) costs more than encoding a short line.
_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def _render_bytes(_: WrappedLogger, __: str, event_dict: EventDict) -> bytes:
    """The JSON renderer for a binary sink: UTF-8 bytes, never decoded and re-encoded."""
    try:
        return _ENCODER.encode(event_dict)
    except UnicodeEncodeError:
        return _escaped_line(event_dict)


def _render_text(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """The JSON renderer for a text sink (and the stdlib handler): the same line as text."""
    return _render_bytes(_, __, event_dict).decode()


def _escaped_line(event_dict: EventDict) -> bytes:
    """`event_dict` as one JSON line in ASCII, every non-ASCII character escaped: the line of
    one that msgspec refused for a lone surrogate in a string (a non-UTF-8 file name, an
    environment variable or argument Python decoded with ``surrogateescape``).

    Logging must not raise into the code that logged because of a field's content, and the
    common path stays one msgspec call: this runs only after it raised. The values are those
    msgspec would write (`msgspec.to_builtins`: Decimal as a string, datetimes in RFC 3339,
    Structs as objects); `json.dumps` with ``ensure_ascii`` escapes the surrogate as
    ``\\udcXX``, which is what structlog's own JSON renderer writes for it.
    """
    plain = _json_safe(msgspec.to_builtins(event_dict, enc_hook=_enc_hook))
    return json.dumps(plain, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _json_safe(value: Any) -> Any:
    """`value` (built-in types only) with what msgspec's JSON encoder would change and
    `json.dumps` would not: a non-finite float as null (NaN is not JSON), a key that is not a
    str or number as `_enc_hook`'s text."""
    if isinstance(value, dict):
        return {
            key if isinstance(key, str | int | float | bool) else _enc_hook(key): _json_safe(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Stamp:
    """Add ``timestamp`` (UTC, ISO 8601) and ``level``, and put them and ``event`` first.

    Does what `structlog.processors.TimeStamper(fmt="iso", utc=True)`, `add_log_level` and a
    key reordering did as three processors, with the same output (``2026-03-02T14:30:05.123456Z``;
    like `datetime.isoformat`, no fraction when it is zero) for a third of the cost: the
    date-and-seconds prefix is formatted once per second and only the microseconds per line.
    The key order is for a human tailing the file; JSON does not care.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # (second, its prefix up to the dot) replaced as one tuple: a stdlib record logged
        # from another thread reads a consistent pair.
        self._cache: tuple[int, str] = (-1, "")

    def timestamp(self, nanos: int | None = None) -> str:
        """`nanos` (Unix time in ns; default now) as the line's ``timestamp``: UTC, to the
        microsecond, truncated like `datetime.now`."""
        if nanos is None:
            nanos = time.time_ns()
        second = nanos // 1_000_000_000
        cached_second, prefix = self._cache
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._cache = (second, prefix)
        micros = nanos // 1000 % 1_000_000
        if not micros:
            return prefix[:-1] + "Z"
        # Two table lookups instead of a format: a measurable share of a line's cost.
        millis, micros = divmod(micros, 1000)
        return prefix + _THREE_DIGITS[millis] + _THREE_DIGITS[micros] + "Z"

    def __call__(self, _: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        head: EventDict = {
            "timestamp": self.timestamp(),
            "level": _LEVEL_OF_METHOD.get(method_name, method_name),
        }
        if "event" in event_dict:
            head["event"] = event_dict.pop("event")
        event_dict.pop("timestamp", None)
        event_dict.pop("level", None)
        head.update(event_dict)
        return head


_THREE_DIGITS = tuple(f"{n:03d}" for n in range(1000))


_PREFIX_LEN = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)
_BOUND_VARS: dict[str, contextvars.ContextVar[Any]] | None = getattr(
    structlog.contextvars, "_CONTEXT_VARS", None
)
"""structlog's registry of the context variables `bind_contextvars` created (one per key
ever bound, reset to ``...`` when unbound). Private to structlog: without it (a future
structlog), `_merge_contextvars` is structlog's own `merge_contextvars`."""


_bound_keys: tuple[int, tuple[tuple[str, contextvars.ContextVar[Any]], ...]] = (0, ())
"""(size of the registry, its (key, variable) pairs): rebuilt when a new key was bound."""


def _merge_contextvars(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`structlog.contextvars.merge_contextvars`, at a third of the cost.

    Same result (bound values fill in keys the call did not pass; an unbound key is
    skipped), read from structlog's own registry of its variables instead of scanning
    every variable of the context (asyncio's, aiohttp's, ...) by name prefix. The registry
    only grows (one variable per key ever bound), so its pairs are kept until it does.
    tests/test_logs_sink.py checks the result against structlog's.
    """
    assert _BOUND_VARS is not None
    size, pairs = _bound_keys
    if size != len(_BOUND_VARS):
        pairs = _bound_pairs()
    for key, var in pairs:
        value = var.get()
        if value is not Ellipsis:
            event_dict.setdefault(key, value)
    return event_dict


def _bound_pairs() -> tuple[tuple[str, contextvars.ContextVar[Any]], ...]:
    """The registry's (key, variable) pairs, kept in `_bound_keys` until it grows."""
    global _bound_keys
    assert _BOUND_VARS is not None
    # A snapshot: a thread binding a new key must not change the dict under the loop.
    pairs = tuple((name[_PREFIX_LEN:], var) for name, var in tuple(_BOUND_VARS.items()))
    _bound_keys = (len(pairs), pairs)
    return pairs


_merge: Callable[[WrappedLogger, str, EventDict], EventDict] = (
    structlog.contextvars.merge_contextvars if _BOUND_VARS is None else _merge_contextvars
)
_MERGE: Processor = _merge


class _Extras:
    """structlog's stack-info and exception renderers, run only when a line asks for them.

    Both only act on a ``stack_info`` / ``exc_info`` key; most lines have neither, and
    skipping two calls per line is a measurable share of a line's cost.
    """

    __slots__ = ("_exception", "_stack")

    def __init__(self, exception: structlog.processors.ExceptionRenderer | None) -> None:
        self._stack = structlog.processors.StackInfoRenderer()
        self._exception = exception

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if "stack_info" in event_dict:
            event_dict = self._stack(logger, method_name, event_dict)
        if self._exception is not None and "exc_info" in event_dict:
            event_dict = self._exception(logger, method_name, event_dict)
        return event_dict


class _JsonLine:
    """The JSON pipeline's processors as one: context merge, timestamp, level and key order,
    the stack and exception renderers when asked for, the JSON renderer.

    The same steps in the same order as the four processors they were, one call instead of
    four per line. `stamped` is the rest of the chain for a line that `_bound_logger_class`
    built with its timestamp, level and event already first.
    """

    __slots__ = ("_extras", "_render", "_stamp")

    def __init__(self, stamp: _Stamp, extras: _Extras, render: Processor) -> None:
        self._stamp = stamp
        self._extras = extras
        self._render = render

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        return self.stamped(logger, method_name, self._stamp(logger, method_name, event_dict))

    def stamped(self, logger: WrappedLogger, method_name: str, line: EventDict) -> Any:
        """The line from its merge on: after the stamp, since the merge only appends keys
        the call did not pass (and never the stamp's)."""
        line = _merge(logger, method_name, line)
        if "stack_info" in line or "exc_info" in line:
            line = self._extras(logger, method_name, line)
        return self._render(logger, method_name, line)


def _bound_logger_class(number: int, chain: list[Processor]) -> type[Any]:
    """structlog's filtering bound logger for `number`, whose level methods take a short cut
    while the processors are `chain` (one `_JsonLine`).

    structlog's method goes through `_proxy_to_logger` and `_process_event` (three frames, the
    keyword arguments packed twice, checks of the result's type) and the stamp re-orders
    the keys into a second dict: together as much as the rest of the line. The short cut
    builds the line once, in its final order (timestamp, level, event, the bound context,
    the call's keywords, then the merged contextvars: what the chain gives) and hands it to
    the sink's ``msg``, as structlog would. Any other processors
    (`structlog.testing.capture_logs` swaps them in) take structlog's own path, unchanged;
    tests/test_logs_sink.py checks the lines are the same as structlog's own chain's.
    """
    base: type[Any] = structlog.make_filtering_bound_logger(number)
    line = chain[0]
    assert isinstance(line, _JsonLine)
    timestamp = line._stamp.timestamp
    stamped = line.stamped
    # The common case inlined (a frame per step is a measurable share of a line): structlog's
    # registry of context variables read here, the bytes renderer as msgspec's encode.
    inline = _BOUND_VARS is not None and line._render is _render_bytes
    encode = _ENCODER.encode

    def make(method_name: str) -> Any:
        level = _LEVEL_OF_METHOD.get(method_name, method_name)
        urgent = method_name in ("error", "critical")

        def method(self: Any, event: str, *args: Any, **kw: Any) -> Any:
            if self._processors is not chain:
                return self._proxy_to_logger(method_name, _interpolate(event, args), **kw)
            if args:
                event = _interpolate(event, args)
            stamp = timestamp()
            head = {"timestamp": stamp, "level": level, "event": event}
            context = self._context
            if context:
                head.update(context)
                # The call's event and the stamp's keys win over bound ones, as in structlog.
                head["timestamp"], head["level"], head["event"] = stamp, level, event
            head.update(kw)
            if "timestamp" in kw or "level" in kw:
                head["timestamp"] = stamp  # the stamp's keys win, as in `_Stamp`
                head["level"] = level
            sink = self._logger
            if urgent:  # as structlog calls it: the writer writes these at once
                return getattr(sink, method_name)(stamped(sink, method_name, head))
            if not inline or "stack_info" in head or "exc_info" in head:
                return sink.msg(stamped(sink, method_name, head))
            # `_merge_contextvars`, inline
            size, pairs = _bound_keys
            if size != len(_BOUND_VARS):  # type: ignore[arg-type]
                pairs = _bound_pairs()
            for key, var in pairs:
                value = var.get()
                if value is not Ellipsis and key not in head:
                    head[key] = value
            try:
                data = encode(head)
            except UnicodeEncodeError:  # a lone surrogate: an escaped line, never a raise
                data = _escaped_line(head)
            return sink.msg(data)

        method.__name__ = method_name
        return method

    methods = {name: make(name) for level, name in _LEVEL_NAMES.items() if level >= number}
    for alias, name in (("warn", "warning"), ("fatal", "critical"), ("msg", "info")):
        if name in methods:
            methods[alias] = methods[name]
    return type(f"Json{base.__name__}", (base,), methods)


def _interpolate(event: str, args: tuple[Any, ...]) -> str:
    """structlog's positional interpolation (``log.info("lost %s", code)``)."""
    if not args:
        return event
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return event % args[0]
    return event % args


_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


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
        "_stamp",
        "_stream",
    )

    def __init__(self, stream: TextIO, fd: int) -> None:
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
        self._stamp = _Stamp()

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
            "timestamp": self._stamp.timestamp(),
            "level": "warning",
            "event": "log_lines_dropped",
            "count": self._dropped,
            "reason": "stdout full or failing",
        }
        return _ENCODER.encode(note) + b"\n"

    def _write(self, data: bytes, done: int, prefix: int = 0) -> None:
        """Write `data` (whole lines, the first `prefix` bytes not logged ones) from `done`
        on: wait for room (bounded), drop or fail as the class docstring says."""
        view = memoryview(data)
        started = time.monotonic()
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
        if done < len(data):
            self._give_up(data, done, prefix)
            return
        self._dropped = 0
        self._cut = False

    def _give_up(self, data: bytes, done: int, prefix: int) -> None:
        """Count the logged lines of `data` not written whole (their newline is not among the
        first `done` bytes); note a cut inside a line. The first `prefix` bytes are the
        newline ending a cut line and the drop note: not logged lines, and if the note did
        not get through, its count still stands."""
        kept = self._dropped if done < prefix else 0
        self._dropped = kept + data.count(b"\n", max(done, prefix))
        self._cut = done > 0 and data[done - 1] != 0x0A

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


class _WriterHandler(logging.Handler):
    """The stdlib records' handler on the byte path: each record's JSON line goes through the
    same `_LineWriter` as structlog's, so a library's warning keeps its place among execd's
    lines (a `StreamHandler` would write it at once, ahead of the turn's pending lines)."""

    def __init__(self, writer: _LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode("utf-8", "surrogateescape")
            if record.levelno >= logging.ERROR:
                self._writer.msg_now(line)
            else:
                self._writer.msg(line)
        except Exception:
            self.handleError(record)


def _fd_of(stream: TextIO) -> int | None:
    """The file descriptor under `stream` when JSON bytes may be written to it directly.

    Only a UTF-8 text file over a real file descriptor (stdout, an opened file) qualifies;
    anything else (a StringIO, another encoding) keeps the text path. The text layer is
    flushed once here, so nothing written before is overtaken; afterwards every line on
    either path is flushed as it is written (the stdlib handler flushes each record), so
    the two never interleave out of order.
    """
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return None
    try:
        if codecs.lookup(encoding).name != "utf-8":
            return None
        fd = stream.fileno()
    except (LookupError, OSError, ValueError, AttributeError):
        return None  # io.UnsupportedOperation is an OSError and a ValueError
    stream.flush()
    return fd


def _json_sink(stream: TextIO) -> tuple[Processor, Any]:
    """(renderer, the logger every bound logger writes through) for JSON lines on `stream`.

    On a file descriptor: `_LineWriter` with the bytes msgspec made (a loop turn's lines in
    one ``write``, a line logged off the loop at once). Otherwise structlog's `WriteLogger`
    (write and flush each line).
    """
    fd = _fd_of(stream)
    if fd is not None:
        return _render_bytes, _LineWriter(stream, fd)
    return _render_text, structlog.WriteLogger(stream)


def flush_logs() -> None:
    """Write the log lines still pending (those of the current loop turn); at exit, and
    wherever lines must be out before something else happens (a reconfiguration)."""
    if _writer is not None:
        _writer.flush()


def _forget_pending_in_child() -> None:
    if _writer is not None:
        _writer._forget()


atexit.register(flush_logs)
os.register_at_fork(after_in_child=_forget_pending_in_child)


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    *,
    once: bool = False,
) -> None:
    """Install the pipeline for structlog and stdlib logging; safe to call again.

    `level` filters execd's own lines (``debug``, ``info``, ``warning``, ``error``);
    stdlib loggers are held at WARNING or `level`, whichever is higher. ``auto`` picks
    the console renderer when `stream` is a terminal and JSON otherwise (journald).

    `once`: the process configures logging this one time and logs nothing before (``execd
    run``). Each module-level logger is then assembled on its first line and kept
    (structlog's ``cache_logger_on_first_use``) instead of on every line, a sixth of a
    line's cost. A later call would not reach a logger kept before it, so code that
    reconfigures (tests, `structlog.testing.capture_logs`, the bench between items)
    leaves it off.
    """
    global _installed_handler, _writer
    flush_logs()  # the old writer's pending lines come before anything the new one writes
    _writer = None
    out = sys.stdout if stream is None else stream
    number = _level_number(level)
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    stamp = _Stamp()
    shared: list[Processor] = [_MERGE, stamp]
    sink: Any
    wrapper: type[Any]
    processors: list[Processor]
    if console:
        # ConsoleRenderer prints tracebacks itself, readable in a terminal.
        extras = _Extras(exception=None)
        renderer: Processor = structlog.dev.ConsoleRenderer(colors=out.isatty())
        text_renderer = renderer
        sink = structlog.WriteLogger(out)
        processors = [*shared, extras, renderer]
        wrapper = structlog.make_filtering_bound_logger(number)
    else:
        # In JSON the traceback becomes structured data under "exception". Without locals:
        # a frame's locals can hold the Alpaca secret key, and logs leave the machine.
        extras = _Extras(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer, sink = _json_sink(out)
        text_renderer = _render_text
        if isinstance(sink, _LineWriter):
            _writer = sink
        processors = [_JsonLine(stamp, extras, renderer)]
        wrapper = _bound_logger_class(number, processors)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        # One logger for every bound logger: the factory runs on each call (below), and
        # building a logger (with its per-file lock lookup) per line costs more than the line.
        logger_factory=lambda *_: sink,
        # Not cached unless `once`: reconfiguring must reach module-level loggers too.
        cache_logger_on_first_use=once,
    )

    # Through the writer when there is one, so a record keeps its place among the lines.
    handler = logging.StreamHandler(out) if _writer is None else _WriterHandler(_writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                extras,
                text_renderer,
            ],
        )
    )
    root = logging.getLogger()
    if _installed_handler is not None:
        root.removeHandler(_installed_handler)
    root.addHandler(handler)
    root.setLevel(max(number, _STDLIB_FLOOR))
    _installed_handler = handler


def bind_leg(
    *,
    plan_id: str,
    leg: int,
    symbol: str,
    side: str,
    client_order_id: str | None = None,
    step: int | None = None,
) -> AbstractContextManager[None]:
    """Bind a leg's context for the ``with`` block: every line inside carries it.

    Keys left None are not bound (a leg has no client order id before its first order);
    call again (nested) or use ``structlog.contextvars.bind_contextvars`` to update
    `client_order_id` and `step` as the ladder moves on.
    """
    context: dict[str, Any] = {"plan_id": plan_id, "leg": leg, "symbol": symbol, "side": side}
    if client_order_id is not None:
        context["client_order_id"] = client_order_id
    if step is not None:
        context["step"] = step
    return structlog.contextvars.bound_contextvars(**context)
