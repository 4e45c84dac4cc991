"""The pure wire format: framing, request decoding (every error code), responses, models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.control.protocol import (
    MAX_LINE_BYTES,
    OPS,
    CancelRequest,
    ControlError,
    ErrorCode,
    Event,
    HaltRequest,
    HealthRequest,
    LegStatus,
    LineFramer,
    LineTooLong,
    PlanStatus,
    Result,
    ResumeRequest,
    StatusRequest,
    SubmitRequest,
    WatchEvent,
    WatchRequest,
    as_type,
    decode_request,
    decode_response,
    encode_error,
    encode_event,
    encode_request,
    encode_result,
)
from execd.domain.types import Side, Urgency

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def _leg() -> LegStatus:
    return LegStatus(
        index=0,
        symbol="TQQQ",
        side=Side.BUY,
        qty=Decimal("10"),
        notional=None,
        urgency=Urgency.NORMAL,
        state="filled",
        step=2,
        filled_qty=Decimal("10"),
        avg_fill_price=Decimal("50.0100"),
        arrival_mid=Decimal("50.005"),
        slippage_bps=Decimal("1.0"),
        client_order_ids=("execd-a-0-0",),
        started_at=T0,
        finished_at=T0,
        reason="filled",
    )


# --- framing --------------------------------------------------------------------------------


def test_framer_splits_lines_across_chunks() -> None:
    """Lines arrive in arbitrary chunks; the framer returns each whole line once."""
    framer = LineFramer()
    assert framer.feed(b'{"op":') == []
    assert framer.feed(b'"health"}\n{"op":"ha') == [b'{"op":"health"}']
    assert framer.feed(b'lt"}\n\n') == [b'{"op":"halt"}', b""]


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.data())
def test_framer_is_independent_of_chunking(lines: list[bytes], data: st.DataObject) -> None:
    """However the stream is cut, the same lines come out in the same order."""
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = LineFramer()
    out: list[bytes | LineTooLong] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[start:cut])
        start = cut
    assert out == lines


def test_framer_limit_is_exactly_one_mebibyte() -> None:
    """A line of exactly MAX_LINE_BYTES passes; one byte more is refused."""
    assert MAX_LINE_BYTES == 1024 * 1024
    framer = LineFramer()
    ok = b"x" * MAX_LINE_BYTES
    assert framer.feed(ok + b"\n") == [ok]
    assert framer.feed(ok + b"y\n") == [LineTooLong(MAX_LINE_BYTES)]


def test_framer_reports_a_long_line_early_and_skips_it_once() -> None:
    """An over-long line is reported as soon as it passes the limit, then skipped to its end."""
    framer = LineFramer(limit=20)
    assert framer.feed(b"0123456789" * 2) == []
    assert framer.feed(b"ab") == [LineTooLong(20)]
    assert framer.feed(b"more of the same line") == []
    assert framer.feed(b'tail\n{"op":"health"}\n') == [b'{"op":"health"}']


def test_framer_eof_keeps_an_unterminated_last_line() -> None:
    """``printf '{"op":"health"}' | socat`` works: the last line needs no newline."""
    framer = LineFramer()
    assert framer.feed(b'{"op":"health"}') == []
    assert framer.feed_eof() == [b'{"op":"health"}']
    assert framer.feed_eof() == []


# --- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"op":"submit","plan":{"plan_id":"p"}}', SubmitRequest(plan={"plan_id": "p"})),
        (b'{"op":"status"}', StatusRequest()),
        (b'{"op":"status","plan_id":"p"}', StatusRequest(plan_id="p")),
        (b'{"op":"cancel","plan_id":"p"}', CancelRequest(plan_id="p")),
        (b'{"op":"halt"}', HaltRequest()),
        (b'{"op":"resume"}', ResumeRequest()),
        (b'{"op":"health"}', HealthRequest()),
        (b'{"op":"watch","plan_id":"p"}', WatchRequest(plan_id="p")),
    ],
)
def test_every_op_decodes(line: bytes, expected: object) -> None:
    """Each documented op parses into its typed request."""
    assert decode_request(line) == expected


def test_ops_list_matches_request_types() -> None:
    """The advertised op names are exactly the ones that decode."""
    assert set(OPS) == {"submit", "status", "cancel", "halt", "resume", "health", "watch"}


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b"{not json", ErrorCode.INVALID_JSON, "not valid JSON"),
        (b"\xff\xfe", ErrorCode.INVALID_JSON, "not valid JSON"),
        (b"[1, 2]", ErrorCode.INVALID_REQUEST, "JSON object"),
        (b'{"plan_id": "p"}', ErrorCode.INVALID_REQUEST, 'no "op"'),
        (b'{"op": 3}', ErrorCode.INVALID_REQUEST, "must be a string"),
        (b'{"op": "explode"}', ErrorCode.UNKNOWN_OP, "unknown op 'explode'"),
        (b'{"op": "cancel"}', ErrorCode.INVALID_REQUEST, "plan_id"),
        (b'{"op": "watch", "plan_id": ""}', ErrorCode.INVALID_REQUEST, "plan_id"),
        (b'{"op": "submit", "plan": [1]}', ErrorCode.INVALID_REQUEST, "plan"),
        (b'{"op": "halt", "force": true}', ErrorCode.INVALID_REQUEST, "force"),
    ],
)
def test_bad_requests_get_a_specific_code(line: bytes, code: ErrorCode, words: str) -> None:
    """Each kind of mistake has its own code and a message naming what is wrong."""
    with pytest.raises(ControlError) as caught:
        decode_request(line)
    assert caught.value.code == code
    assert words in caught.value.message


def test_unknown_op_lists_the_known_ones() -> None:
    """A typo'd op tells the user what they could have meant."""
    with pytest.raises(ControlError, match="submit, status, cancel"):
        decode_request(b'{"op": "stauts"}')


def test_encode_request_round_trips() -> None:
    """What the client encodes, the server decodes (decimals in a plan travel as strings)."""
    line = encode_request("submit", {"plan": {"plan_id": "p", "qty": Decimal("1.5")}})
    assert line.endswith(b"\n")
    assert decode_request(line.rstrip()) == SubmitRequest(plan={"plan_id": "p", "qty": "1.5"})


# --- responses and models -------------------------------------------------------------------


def test_result_line_shape_and_decimals_as_strings() -> None:
    """A result line is ``{"ok": true, "result": ...}`` with decimals as JSON strings."""
    plan = PlanStatus(plan_id="p", state="completed", submitted_at=T0, legs=(_leg(),))
    line = encode_result(plan)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    doc = json.loads(line)
    assert doc["ok"] is True
    leg = doc["result"]["legs"][0]
    assert leg["avg_fill_price"] == "50.0100"
    assert leg["qty"] == "10"
    assert leg["side"] == "buy"
    assert doc["result"]["submitted_at"] == "2024-03-01T14:30:00Z"
    decoded = decode_response(line)
    assert isinstance(decoded, Result)
    assert as_type(decoded.value, PlanStatus) == plan


def test_leg_status_has_every_issue_field() -> None:
    """The issue's item 3 lists the fields `status` must carry; all are on the wire."""
    required = {
        *("index", "symbol", "side", "qty", "notional", "urgency", "state", "step"),
        *("filled_qty", "avg_fill_price", "arrival_mid", "slippage_bps", "repegs"),
        *("client_order_ids", "started_at", "finished_at", "reason"),
    }
    encoded = msgspec.to_builtins(_leg())
    assert required <= set(encoded)
    plan = msgspec.to_builtins(PlanStatus(plan_id="p", state="working", submitted_at=T0, legs=()))
    assert {"plan_id", "state", "submitted_at", "legs"} <= set(plan)


def test_error_line_raises_the_daemons_error() -> None:
    """``ok: false`` becomes a ControlError with the daemon's code and message."""
    line = encode_error(ErrorCode.NOT_FOUND, "no plan 'x'")
    assert json.loads(line) == {
        "ok": False,
        "error": {"code": "not_found", "message": "no plan 'x'"},
    }
    with pytest.raises(ControlError) as caught:
        decode_response(line)
    assert (caught.value.code, caught.value.message) == ("not_found", "no plan 'x'")


def test_event_line_is_interim() -> None:
    """A watch event line decodes as an Event, not a final Result."""
    event = WatchEvent(
        plan_id="p", seq=0, at=T0, event="leg_started", plan_state="working", leg=_leg()
    )
    decoded = decode_response(encode_event(event))
    assert decoded == Event(event)


def test_unknown_fields_from_a_newer_daemon_are_tolerated() -> None:
    """Clients ignore status fields they do not know, so the daemon can add fields."""
    doc = msgspec.to_builtins(_leg())
    doc["new_metric"] = 1
    assert as_type(doc, LegStatus) == _leg()


def test_malformed_response_is_invalid_response() -> None:
    """A line that is not our protocol is reported as such, not as a crash."""
    with pytest.raises(ControlError) as caught:
        decode_response(b"HTTP/1.1 400 Bad Request")
    assert caught.value.code == ErrorCode.INVALID_RESPONSE
    with pytest.raises(ControlError) as caught:
        as_type({"plan_id": "p"}, PlanStatus)
    assert caught.value.code == ErrorCode.INVALID_RESPONSE
