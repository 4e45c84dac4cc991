"""Adversarial review: an order held up by 429s is not sent at a price from a quote that
went stale while it waited (DESIGN.md "Fresh quote")."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_an_order_delayed_by_429s_is_not_sent_from_a_stale_quote(
    start_daemon: StartDaemon,
) -> None:
    d = await start_daemon()
    await d.venue.fail_next_requests(20, status=429, method="POST", path="/v2/orders")
    started = d.daemon.engine._ports.clock.now()  # the leg prices at once (10:00, TQQQ)
    status = await d.submit(
        {"plan_id": "storm-stale", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "3"}]}
    )
    events = await d.events(status.plan_id)
    assert events[-1].event == "plan_finished"
    orders = await d.orders("storm-stale")
    assert len(orders) == 1  # the expired writes never reached the venue
    sent = orders[0]["order"]
    sent_at = datetime.fromisoformat(sent["created_at"])
    # ~10 s of 429s (freshness 5 s): the first prices expired unsent and were priced again.
    expired = [e for e in events if e.event == "order_not_sent_quote_stale"]
    assert expired
    assert sent["client_order_id"] not in {e.leg.client_order_ids[-1] for e in expired if e.leg}
    # The order that went out was priced after the last expiry: never from a stale quote.
    priced_after = max([started, *(e.at for e in expired if e.at <= sent_at)])
    late = (sent_at - priced_after).total_seconds()
    assert late <= 5.0, f"the limit {sent['limit_price']} was sent {late:.1f} s after pricing"
    final = await d.finish(status.plan_id)
    assert final.legs[0].filled_qty == 3
    # The expired writes are closed in the journal: a restart does not look for them.
    assert await d.daemon.journal.open_orders() == ()
