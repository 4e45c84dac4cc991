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

import logging
import sys
from contextlib import AbstractContextManager
from pathlib import PurePath
from typing import Any, Literal, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor

LogFormat = Literal["json", "console", "auto"]

LEG_CONTEXT_KEYS = ("plan_id", "leg", "symbol", "side", "client_order_id", "step")
"""The keys every line about a leg carries (DESIGN.md, "Interfaces users touch")."""

_STDLIB_FLOOR = logging.WARNING
"""aiohttp and websockets are chatty at INFO/DEBUG; only their warnings are facts for us."""

_MANDATORY_KEYS = ("timestamp", "level", "event")

_installed_handler: logging.Handler | None = None


def _enc_hook(value: Any) -> Any:
    """Make anything msgspec does not know serialisable: paths and exceptions as text."""
    if isinstance(value, PurePath | BaseException):
        return str(value)
    return repr(value)


def _dumps(event_dict: Any, **_: Any) -> str:
    # msgspec encodes Decimal as a string (exact, never a float), datetimes as RFC 3339,
    # enums by value and Structs as objects; structlog passes a `default=` we do not need.
    return msgspec.json.encode(event_dict, enc_hook=_enc_hook).decode()


def _mandatory_keys_first(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Put ``timestamp``, ``level``, ``event`` first: JSON does not care, a human tailing does."""
    head = {key: event_dict.pop(key) for key in _MANDATORY_KEYS if key in event_dict}
    return {**head, **event_dict}


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _renderer(fmt: LogFormat, stream: TextIO) -> tuple[list[Processor], Processor]:
    """The format-specific tail of the pipeline: (processors before rendering, renderer)."""
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    if console:
        # ConsoleRenderer prints tracebacks itself, readable in a terminal.
        return [], structlog.dev.ConsoleRenderer(colors=stream.isatty())
    # In JSON the traceback becomes structured data under "exception". Without locals:
    # a frame's locals can hold the Alpaca secret key, and logs leave the machine.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    return [tracebacks, _mandatory_keys_first], structlog.processors.JSONRenderer(serializer=_dumps)


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Install the pipeline for structlog and stdlib logging; safe to call again.

    `level` filters execd's own lines (``debug``, ``info``, ``warning``, ``error``);
    stdlib loggers are held at WARNING or `level`, whichever is higher. ``auto`` picks
    the console renderer when `stream` is a terminal and JSON otherwise (journald).
    """
    global _installed_handler
    out = sys.stdout if stream is None else stream
    number = _level_number(level)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]
    before_render, renderer = _renderer(fmt, out)
    structlog.configure(
        processors=[*shared, *before_render, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached: reconfiguring (tests, a reload) must reach module-level loggers too.
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *before_render,
                renderer,
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
