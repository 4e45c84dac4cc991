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

import atexit
import codecs
import contextvars
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import PurePath
from typing import Any, Literal, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from execd.log_writer import _LineWriter

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
        return _render_bytes, _LineWriter(stream, fd, _Stamp().timestamp)
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
