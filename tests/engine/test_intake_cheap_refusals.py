"""A submit refused for what the document says spends no read of the venue (spam lane).

Every submit's reads come out of the request budget that running plans' orders wait on,
refused submits' too. A symbol the venue does not know, a fractional qty on a whole-share
asset, a wash trade against a working plan: each is known from the document, the cached
asset list (one read a venue day) and the engine's own plans. Before, such a submit read
the positions and the account, and waited `quote_wait_seconds` for a quote of the symbol
that does not exist — a client retrying it in a loop spent two grants every time.

The judge of "no read": the venue answers the next positions read 403, so a submit that
reads it is refused as a venue failure, not for its symbol.
"""

from __future__ import annotations

import pytest

from execd.control.protocol import ControlError, ErrorCode
from tests.engine.conftest import StartDaemon

UNKNOWN = {"plan_id": "nope", "legs": [{"symbol": "NOPE", "side": "buy", "qty": "1"}]}
UNKNOWN_TARGET = {"plan_id": "nope-t", "targets": {"NOPE": "0.5"}}


@pytest.mark.parametrize("document", [UNKNOWN, UNKNOWN_TARGET], ids=["legs", "targets"])
async def test_an_unknown_symbol_is_refused_without_a_venue_read(
    start_daemon: StartDaemon, document: dict[str, object]
) -> None:
    d = await start_daemon()
    with pytest.raises(ControlError):  # the first loads the calendar and the asset list
        await d.daemon.engine.submit(document)
    await d.venue.fail_next_requests(1, status=403, method="GET", path="/v2/positions")
    for _ in range(10):
        with pytest.raises(ControlError) as refused:
            await d.daemon.engine.submit(document)
        assert refused.value.code == ErrorCode.INVALID_PLAN, refused.value
        assert "unknown symbol NOPE" in str(refused.value), refused.value
