"""Logging pipeline: JSON lines with the mandatory keys, contextvars, levels, stdlib routing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog

from execd.logs import LEG_CONTEXT_KEYS, bind_leg, configure_logging


class _Tty(io.StringIO):
    """A StringIO that claims to be a terminal, to exercise the ``auto`` format."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put structlog, stdlib logging and contextvars back as they were for other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_timestamp_level_event() -> None:
    """Each line is one JSON object with a UTC ISO timestamp, a level and an event name."""
    out = io.StringIO()
    configure_logging("debug", "json", out)
    log = structlog.get_logger()
    log.debug("a")
    log.info("b", x=1)
    log.warning("c")
    log.error("d")
    lines = _lines(out)
    assert [line["event"] for line in lines] == ["a", "b", "c", "d"]
    assert [line["level"] for line in lines] == ["debug", "info", "warning", "error"]
    for line in lines:
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert list(line)[:3] == ["timestamp", "level", "event"]


def test_bound_leg_context_appears_on_every_line() -> None:
    """A leg binds its context once; every line inside carries it, and none outside."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = structlog.get_logger()
    with bind_leg(
        plan_id="p-1", leg=2, symbol="TQQQ", side="buy", client_order_id="execd-p-1-2-0", step=2
    ):
        log.info("order_placed")
        structlog.contextvars.bind_contextvars(step=3)
        log.info("leg_repegged")
    log.info("after")
    placed, repegged, after = _lines(out)
    for key in LEG_CONTEXT_KEYS:
        assert key in placed
    assert placed["plan_id"] == "p-1"
    assert placed["leg"] == 2
    assert placed["client_order_id"] == "execd-p-1-2-0"
    assert repegged["step"] == 3
    assert not set(LEG_CONTEXT_KEYS) & set(after)


async def test_context_is_per_task() -> None:
    """Two legs running concurrently each log their own context, never the other's."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = structlog.get_logger()
    both_bound = asyncio.Barrier(2)

    async def leg(index: int, symbol: str) -> None:
        with bind_leg(plan_id="p", leg=index, symbol=symbol, side="sell"):
            await both_bound.wait()
            log.info("leg_started")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(leg(0, "AAA"))
        tg.create_task(leg(1, "BBB"))
    by_leg = {line["leg"]: line["symbol"] for line in _lines(out)}
    assert by_leg == {0: "AAA", 1: "BBB"}


def test_level_filtering() -> None:
    """Lines below the configured level are dropped."""
    out = io.StringIO()
    configure_logging("warning", "json", out)
    log = structlog.get_logger()
    log.debug("no")
    log.info("no")
    log.warning("yes")
    log.error("yes too")
    assert [line["event"] for line in _lines(out)] == ["yes", "yes too"]


def test_unknown_level_is_refused() -> None:
    """A typo in the level fails loudly instead of silently logging everything."""
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("verbose", "json", io.StringIO())


def test_decimals_and_datetimes_serialise_exactly() -> None:
    """Decimals stay exact strings (never floats); datetimes are ISO strings."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    at = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    structlog.get_logger().info("order_filled", price=Decimal("187.4201"), at=at, obj=object())
    (line,) = _lines(out)
    assert line["price"] == "187.4201"
    assert datetime.fromisoformat(line["at"]) == at
    assert line["obj"].startswith("<object")


def test_exception_rendered_into_json_without_locals() -> None:
    """log.exception puts the traceback in the JSON line, as data, with no frame locals."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    secret = "APCA-SECRET"
    try:
        raise RuntimeError("venue said no")
    except RuntimeError:
        structlog.get_logger().exception("leg_failed", key_len=len(secret))
    (line,) = _lines(out)
    assert line["event"] == "leg_failed"
    (exc,) = line["exception"]
    assert exc["exc_type"] == "RuntimeError"
    assert exc["exc_value"] == "venue said no"
    assert secret not in out.getvalue()


def test_stdlib_logging_goes_through_the_pipeline_at_warning() -> None:
    """aiohttp-style stdlib records become the same JSON lines; their INFO is dropped."""
    out = io.StringIO()
    configure_logging("debug", "json", out)
    with structlog.contextvars.bound_contextvars(plan_id="p-9"):
        logging.getLogger("aiohttp.client").info("chatty")
        logging.getLogger("websockets.client").warning("connection lost: %s", "1006")
    (line,) = _lines(out)
    assert line["event"] == "connection lost: 1006"
    assert line["level"] == "warning"
    assert line["logger"] == "websockets.client"
    assert line["plan_id"] == "p-9"
    assert "timestamp" in line


def test_reconfiguring_does_not_duplicate_stdlib_lines() -> None:
    """Calling configure_logging twice installs one stdlib handler, not two."""
    configure_logging("info", "json", io.StringIO())
    out = io.StringIO()
    configure_logging("info", "json", out)
    logging.getLogger("aiohttp").error("once")
    assert len(_lines(out)) == 1


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    """``auto`` writes JSON for journald and a human-readable line on a terminal."""
    piped = io.StringIO()
    configure_logging("info", "auto", piped)
    structlog.get_logger().info("hello", n=1)
    assert json.loads(piped.getvalue())["event"] == "hello"

    tty = _Tty()
    configure_logging("info", "auto", tty)
    structlog.get_logger().info("hello", n=1)
    text = tty.getvalue()
    assert "hello" in text
    assert not text.lstrip().startswith("{")
