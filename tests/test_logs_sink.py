"""The fast JSON path of the logging pipeline: bytes straight to a file descriptor, a
cached timestamp prefix, a leaner merge of the bound context — the same lines as before."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from execd.logs import _Stamp, bind_leg, configure_logging
from tests.log_support import restore_logging  # noqa: F401 (restore_logging: autouse)


def _read(path: Path) -> list[dict[str, Any]]:
    # Lines end at "\n" only (as journald reads them): str.splitlines would also split
    # inside a string holding U+2028, which JSON need not escape.
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line]


def test_each_line_is_in_the_file_at_once(tmp_path: Path) -> None:
    """journald gets every line as it is logged, and a crash loses none: the line is in the
    file before the call returns, without a flush or close of the stream."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out)
        log = structlog.get_logger("execd.leg")
        with bind_leg(plan_id="p-1", leg=2, symbol="TQQQ", side="buy", client_order_id="c"):
            log.info("leg_repegged", old_limit=Decimal("62.43"), repegs=1)
            (line,) = _read(path)  # read by another handle while `out` is still open
            log.warning("leg_held", reason="stale")
            assert len(_read(path)) == 2
        logging.getLogger("aiohttp.client").error("boom %s", 1)
        assert len(_read(path)) == 3
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert line["event"] == "leg_repegged"
    assert line["level"] == "info"
    assert line["old_limit"] == "62.43"
    assert (line["plan_id"], line["leg"], line["symbol"], line["client_order_id"]) == (
        "p-1",
        2,
        "TQQQ",
        "c",
    )
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_file_lines_equal_the_text_path(tmp_path: Path) -> None:
    """The byte path writes what the text path (a StringIO, as before) writes, key for key
    and in the same order, for structlog lines, stdlib records and exceptions."""
    import io

    def emit(stream: Any) -> None:
        configure_logging("debug", "json", stream)
        log = structlog.get_logger()
        with structlog.contextvars.bound_contextvars(plan_id="p", step=3):
            log.info("a", price=Decimal("1.10"), symbol="ÄÖ€", path=Path("/x"))
            log.warn("b")
            try:
                raise ValueError("no")
            except ValueError:
                log.exception("c")
            logging.getLogger("websockets.client").warning("lost %s", "1006")

    text = io.StringIO()
    emit(text)
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        emit(out)

    def strip(lines: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
        return [[(k, v) for k, v in line.items() if k != "timestamp"] for line in lines]

    from_file = _read(path)
    assert strip(from_file) == strip([json.loads(x) for x in text.getvalue().splitlines()])
    assert [line["level"] for line in from_file] == ["info", "warning", "error", "warning"]
    assert from_file[0]["symbol"] == "ÄÖ€"
    assert from_file[2]["exception"][0]["exc_type"] == "ValueError"


def test_a_huge_line_is_written_whole(tmp_path: Path) -> None:
    """A line far larger than a pipe's or a buffer's size still arrives whole, once."""
    path = tmp_path / "log.jsonl"
    blob = "x" * 300_000
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out)
        structlog.get_logger().info("big", blob=blob)
        structlog.get_logger().info("after")
    big, after = _read(path)
    assert big["blob"] == blob
    assert after["event"] == "after"


def test_a_non_utf8_stream_keeps_the_text_path(tmp_path: Path) -> None:
    """Bytes are written under a text stream only when it is UTF-8; another encoding is
    honoured (non-encodable characters fail as they always did, loudly)."""
    path = tmp_path / "log.txt"
    with path.open("w", encoding="utf-16") as out:
        configure_logging("info", "json", out)
        structlog.get_logger().info("hello", n=1)
    (line,) = path.read_text(encoding="utf-16").splitlines()
    assert json.loads(line)["event"] == "hello"


def test_text_written_before_configuring_is_not_overtaken(tmp_path: Path) -> None:
    """Text already buffered in the stream comes before the first log line."""
    path = tmp_path / "out.txt"
    with path.open("w", encoding="utf-8") as out:
        out.write("banner\n")  # buffered, not flushed
        configure_logging("info", "json", out)
        structlog.get_logger().info("first")
    banner, first = path.read_text(encoding="utf-8").splitlines()
    assert banner == "banner"
    assert json.loads(first)["event"] == "first"


def test_a_closed_stream_is_never_written(tmp_path: Path) -> None:
    """After the stream is closed, a line fails loudly (as before) and never lands in the
    file that reused its descriptor number."""
    out = (tmp_path / "log.jsonl").open("w", encoding="utf-8")
    configure_logging("info", "json", out)
    out.close()
    # The lowest free number: almost always the one the log stream had.
    with (
        (tmp_path / "next.db").open("w", encoding="utf-8"),
        pytest.raises(ValueError, match="closed file"),
    ):
        structlog.get_logger().info("late")
    assert (tmp_path / "next.db").read_text(encoding="utf-8") == ""


def test_a_closed_descriptor_fails_loudly(tmp_path: Path) -> None:
    """Logging to a closed descriptor raises (as a closed stream did), never drops silently."""
    path = tmp_path / "log.jsonl"
    out = path.open("w", encoding="utf-8")
    configure_logging("info", "json", out)
    os.close(out.fileno())
    with pytest.raises(OSError):
        structlog.get_logger().info("lost")
    with pytest.raises(OSError):
        out.close()


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_timestamp_matches_datetime_isoformat(nanos: int) -> None:
    """The cached-prefix timestamp is exactly structlog's ISO UTC stamp (``…Z``, no
    fraction when the microseconds are zero) for any instant, truncated to the µs."""
    stamp = _Stamp()
    second, rest = divmod(nanos, 10**9)
    expected = (
        datetime.fromtimestamp(second, UTC)
        .replace(microsecond=rest // 1000)
        .isoformat()
        .replace("+00:00", "Z")
    )
    assert stamp.timestamp(nanos) == expected
    assert stamp.timestamp(nanos) == expected  # from the cache
    later = nanos + 1_000_000_000 + 1_000
    assert stamp.timestamp(later) == (
        datetime.fromtimestamp(later // 10**9, UTC)
        .replace(microsecond=later % 10**9 // 1000)
        .isoformat()
        .replace("+00:00", "Z")
    )


def test_unbound_keys_are_not_merged() -> None:
    """A key bound and then unbound (structlog resets it to ``...``) is not on the line;
    a key passed in the call wins over the bound one."""
    import io

    out = io.StringIO()
    configure_logging("info", "json", out)
    with bind_leg(plan_id="p", leg=1, symbol="AAA", side="buy"):
        pass
    structlog.contextvars.bind_contextvars(step=2)
    structlog.get_logger().info("e", step=5)
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert "plan_id" not in line
    assert line["step"] == 5


def test_merge_equals_structlogs_own() -> None:
    """execd's merge of the bound context gives exactly structlog's `merge_contextvars`
    result: bound, rebound, unbound and call-passed keys, inside a copied context too."""
    import contextvars

    from execd.logs import _MERGE

    def both(call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ours = cast("dict[str, Any]", _MERGE(None, "info", dict(call)))
        theirs = dict(structlog.contextvars.merge_contextvars(None, "info", dict(call)))
        return ours, theirs

    structlog.contextvars.bind_contextvars(plan_id="p", leg=1, step=2)
    structlog.contextvars.unbind_contextvars("leg")
    ours, theirs = both({"event": "e", "step": 9})
    assert ours == theirs == {"event": "e", "step": 9, "plan_id": "p"}
    assert list(ours) == list(theirs)

    def inner() -> tuple[dict[str, Any], dict[str, Any]]:
        structlog.contextvars.bind_contextvars(symbol="ÄÖ", plan_id="q")
        return both({"event": "x"})

    ours, theirs = contextvars.copy_context().run(inner)
    assert ours == theirs == {"event": "x", "plan_id": "q", "step": 2, "symbol": "ÄÖ"}
    assert both({"event": "y"})[0] == {"event": "y", "plan_id": "p", "step": 2}


def test_once_keeps_module_loggers_and_writes_the_same_lines(tmp_path: Path) -> None:
    """`execd run`'s setting: a module-level logger is assembled on its first line and
    kept; its lines are the same as without, and every line still reaches the file at once."""
    module_logger = structlog.get_logger("execd.leg")  # as a module binds it at import
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, once=True)
        with bind_leg(plan_id="p", leg=1, symbol="AAA", side="sell"):
            module_logger.info("order_placed", limit=Decimal("1.5"))
            module_logger.debug("dropped")
            assert len(_read(path)) == 1
            module_logger.warning("leg_held")
        first, second = _read(path)
    assert first["event"] == "order_placed"
    assert first["limit"] == "1.5"
    assert first["plan_id"] == "p"
    assert second["level"] == "warning"
    assert structlog.is_configured()
    assert structlog.get_config()["cache_logger_on_first_use"] is True
    with tmp_path.joinpath("other.jsonl").open("w", encoding="utf-8") as other:
        configure_logging("info", "json", other)
        assert structlog.get_config()["cache_logger_on_first_use"] is False


def test_threads_logging_at_once_keep_every_line_whole(tmp_path: Path) -> None:
    """Lines logged from several threads at the same moment are never cut or interleaved."""
    import threading

    path = tmp_path / "log.jsonl"
    per_thread = 300
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out)
        log = structlog.get_logger()
        start = threading.Barrier(4)

        def worker(n: int) -> None:
            start.wait()
            for i in range(per_thread):
                log.info("line", worker=n, i=i, pad="é" * (n * 1000))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = _read(path)
    assert len(lines) == 4 * per_thread
    for n in range(4):
        mine = [line["i"] for line in lines if line["worker"] == n]
        assert mine == list(range(per_thread))
        assert all(line["pad"] == "é" * (n * 1000) for line in lines if line["worker"] == n)


def test_hostile_values_render(tmp_path: Path) -> None:
    """NaN and infinite Decimals, huge integers, control characters and objects msgspec does
    not know still make one valid JSON line each."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out)
        structlog.get_logger().info(
            "odd",
            nan=Decimal("NaN"),
            inf=Decimal("-Infinity"),
            big=10**40,
            text="a\nb\x00\u2028",
            thing=object(),
            error=ValueError("x"),
        )
    (line,) = _read(path)
    assert line["nan"] == "NaN"
    assert line["inf"] == "-Infinity"
    assert line["text"] == "a\nb\x00\u2028"
    assert line["error"] == "x"
    assert line["thing"].startswith("<object")
    assert int(line["big"]) == 10**40


def test_the_fused_pipeline_writes_what_structlogs_own_chain_writes() -> None:
    """`_JsonLine` and the bound-logger short cut give, key for key and in order, the line
    structlog's own method and the four processors they replace give: bound loggers,
    positional and mapping interpolation, aliases, ``log()``, exceptions, stack info, keys
    that collide with the stamp's, the bound context, levels below the filter."""
    import io

    from execd.logs import _MERGE, _Extras, _render_text

    def emit(log: Any) -> None:
        with structlog.contextvars.bound_contextvars(plan_id="p", leg=1, step=2):
            log.info("plain", price=Decimal("1.10"), symbol="ÄÖ€")
            log.bind(client_order_id="c", step=7).warning("bound", n=1)
            log.bind(level="bound", timestamp="bound").info("bound_stamp_keys")
            log.warn("lost %s after %s", "1006", 2)
            log.error("mapping %(code)s", {"code": 7})
            log.msg("alias")
            log.fatal("fatal_alias")
            log.log(logging.WARNING, "via_log", x=None)
            log.debug("filtered")
            log.info("stamped", timestamp="mine", level="mine_too")
            log.info("stack", stack_info=True)
            try:
                raise ValueError("no")
            except ValueError:
                log.exception("failed", plan_id="override")

    ours = io.StringIO()
    configure_logging("info", "json", ours)
    emit(structlog.get_logger("execd.leg"))

    reference = io.StringIO()
    structlog.configure(
        processors=[
            _MERGE,
            _Stamp(),
            _Extras(
                structlog.processors.ExceptionRenderer(
                    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
                )
            ),
            _render_text,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_: structlog.WriteLogger(reference),
    )
    emit(structlog.get_logger("execd.leg"))

    def parsed(out: io.StringIO) -> list[list[tuple[str, Any]]]:
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        return [
            [(k, v) for k, v in line.items() if k != "timestamp" and k != "stack"] for line in lines
        ]

    got, expected = parsed(ours), parsed(reference)
    assert len(got) == 11
    assert got == expected
    assert [dict(line)["event"] for line in got][:5] == [
        "plain",
        "bound",
        "bound_stamp_keys",
        "lost 1006 after 2",
        "mapping 7",
    ]
