"""The REST gateway against a scripted Alpaca fake on loopback (tests/adapters/fake_venue.py).

What matters most here: a write whose answer is lost never creates a second order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.budget import Priority, QueuePlace, RequestBudget
from execd.adapters.errors import (
    NotFound,
    OutcomeUnknown,
    SendExpired,
    Unauthorized,
    VenueRefused,
    VenueUnavailable,
)
from execd.adapters.rest import RestConfig, RestGateway, wire_decimal
from execd.domain.types import Side

from .conftest import wait_until
from .fake_venue import FakeVenue, serve

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeVenue]:
    """A fresh fake venue on an ephemeral loopback port."""
    async with serve(FakeVenue()) as running:
        yield running


def config(fake: FakeVenue, **overrides: object) -> RestConfig:
    """Short timeouts and millisecond backoff so fault tests take no time."""
    fields: dict[str, object] = {
        "trading_url": fake.url,
        "data_url": fake.url,
        "key_id": fake.key_id,
        "secret_key": fake.secret_key,
        "total_timeout": 2.0,
        "connect_timeout": 1.0,
        "backoff": BackoffPolicy(initial=0.01, maximum=0.05),
    }
    fields.update(overrides)
    return RestConfig(**fields)  # type: ignore[arg-type]


def gateway(fake: FakeVenue, **overrides: object) -> RestGateway:
    """A gateway with a seeded jitter source and a fixed clock."""
    return RestGateway(
        config(fake, **overrides),
        RequestBudget(),
        rand=random.Random(1).random,
        clock=lambda: NOW,
    )


async def test_submit_replace_cancel_round_trip(fake: FakeVenue) -> None:
    """A limit order goes out with exact decimal strings; replace yields a new order; cancel 204."""
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal("3"),
            limit_price=Decimal("150.07"),
            client_order_id="xd-0123456789ab-0-0",
        )
        assert fake.posted_bodies[0]["limit_price"] == "150.07"
        assert fake.posted_bodies[0]["qty"] == "3"
        assert fake.posted_bodies[0]["type"] == "limit"
        assert Decimal(str(order.limit_price)) == Decimal("150.07")
        assert order.client_order_id == "xd-0123456789ab-0-0"

        new = await rest.replace_order(
            str(order.id), Decimal(3), Decimal("150.11"), "xd-0123456789ab-0-1"
        )
        assert str(new.replaces) == str(order.id)
        assert new.id != order.id
        assert Decimal(str(new.limit_price)) == Decimal("150.11")

        await rest.cancel_order(str(new.id))
        again = await rest.get_order(str(new.id))
        assert again.status.value == "pending_cancel"
        listed = await rest.list_orders(status="all", after=NOW, limit=500, nested=True)
        assert {str(o.id) for o in listed} == {str(order.id), str(new.id)}


async def test_market_order_body(fake: FakeVenue) -> None:
    """No limit price → a market order; a fractional qty stays exact."""
    async with gateway(fake) as rest:
        await rest.submit_order(
            symbol="AAPL", side=Side.SELL, qty=Decimal("7.2273576"), client_order_id="c-1"
        )
    body = fake.posted_bodies[0]
    assert body["type"] == "market"
    assert body["qty"] == "7.2273576"
    assert body["side"] == "sell"
    assert "limit_price" not in body


async def test_post_answered_504_after_placing_is_found_not_resent(fake: FakeVenue) -> None:
    """The order was placed but the answer was a 504: the look-up finds it, one POST only."""
    fake.fail("POST", "/v2/orders", 504, when="after")
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-504-after",
        )  # fmt: skip
    assert order.client_order_id == "cid-504-after"
    assert fake.count("POST", "/v2/orders") == 1
    assert len(fake.orders) == 1


async def test_post_answered_504_before_placing_is_resent_once(fake: FakeVenue) -> None:
    """504 without placing: the look-up says 404, so the same client order id goes again."""
    fake.fail("POST", "/v2/orders", 504, when="before")
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-504-before",
        )  # fmt: skip
    assert order.client_order_id == "cid-504-before"
    assert fake.count("POST", "/v2/orders") == 2
    assert len(fake.orders) == 1
    assert fake.count("GET", "/v2/orders:by_client_order_id") == 1


async def test_post_held_up_by_429s_past_send_within_is_never_sent(fake: FakeVenue) -> None:
    """Only 429s came back (nothing processed) and the pricing quote went stale: the
    write ends `SendExpired` and no copy is sent after it."""
    for _ in range(20):
        fake.fail("POST", "/v2/orders", 429)
    async with gateway(fake) as rest:
        with pytest.raises(SendExpired):
            await rest.submit_order(
                symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
                client_order_id="cid-expired", send_within=0.05,
            )  # fmt: skip
        sent = fake.count("POST", "/v2/orders")
        assert 1 <= sent < 20
        assert len(fake.orders) == 0
        with pytest.raises(SendExpired):  # already past: not even one send
            await rest.submit_order(
                symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
                client_order_id="cid-late", send_within=-1.0,
            )  # fmt: skip
    assert fake.count("POST", "/v2/orders") == sent


async def test_a_write_whose_window_ends_now_is_not_sent(fake: FakeVenue) -> None:
    """The edge of `send_within`: a window of 0 (the leg's last send before the close is
    now) sends nothing; a window still open sends."""
    async with gateway(fake) as rest:
        with pytest.raises(SendExpired):
            await rest.submit_order(
                symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
                client_order_id="cid-at-cutoff", send_within=0.0,
            )  # fmt: skip
        assert fake.count("POST", "/v2/orders") == 0
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-inside", send_within=5.0,
        )  # fmt: skip
    assert order.client_order_id == "cid-inside"
    assert fake.count("POST", "/v2/orders") == 1


async def test_a_write_whose_copy_may_have_landed_is_resolved_despite_send_within(
    fake: FakeVenue,
) -> None:
    """Once a copy may have reached the venue the exactly-once rules apply unchanged: the
    look-up and the re-send of the same client order id go on after `send_within`."""
    fake.fail("POST", "/v2/orders", 504, when="before", delay=0.3)
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-504-late", send_within=0.2,
        )  # fmt: skip
    assert order.client_order_id == "cid-504-late"
    assert fake.count("POST", "/v2/orders") == 2
    assert len(fake.orders) == 1


async def test_post_timeout_is_resolved_by_lookup(fake: FakeVenue) -> None:
    """The answer comes after our timeout: the order exists, found by client order id."""
    fake.fail("POST", "/v2/orders", None, delay=0.5)
    async with gateway(
        fake, total_timeout=0.2, backoff=BackoffPolicy(initial=0.6, maximum=0.6, jitter=0)
    ) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-slow",
        )  # fmt: skip
    assert order.client_order_id == "cid-slow"
    assert len(fake.orders) == 1
    assert fake.count("POST", "/v2/orders") == 1


async def test_resend_that_hits_a_late_first_copy_resolves_to_it(fake: FakeVenue) -> None:
    """Look-up says 404, the resend meets "client_order_id must be unique": still one order."""
    fake.fail("POST", "/v2/orders", None, delay=1.0)
    async with gateway(
        fake, total_timeout=0.2, backoff=BackoffPolicy(initial=0.01, maximum=0.01)
    ) as rest:
        # The first copy lands ~1.0 s in; the look-up at ~0.21 s says 404 and the resend
        # goes at once and wins; the late first copy is then the venue's duplicate.
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="cid-race",
        )  # fmt: skip
        assert order.client_order_id == "cid-race"
        await wait_until(lambda: len(fake.posted_bodies) == 2)
    assert len(fake.orders) == 1


async def test_post_lookup_impossible_is_outcome_unknown(fake: FakeVenue) -> None:
    """Every answer lost and every look-up failing: OutcomeUnknown, never a blind resend."""
    for _ in range(3):
        fake.fail("POST", "/v2/orders", 504, when="after")
    for _ in range(20):
        fake.fail("GET", "/v2/orders:by_client_order_id", 503)
    async with gateway(fake, read_attempts=2) as rest:
        with pytest.raises(OutcomeUnknown) as caught:
            await rest.submit_order(
                symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
                client_order_id="cid-unknown",
            )  # fmt: skip
    assert caught.value.client_order_id == "cid-unknown"
    assert fake.count("POST", "/v2/orders") == 1
    assert len(fake.orders) == 1


async def test_refusal_keeps_alpacas_code_and_message(fake: FakeVenue) -> None:
    """A 422 duplicate is a VenueRefused with the code and message verbatim (§0.5)."""
    async with gateway(fake) as rest:
        await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id="dup",
        )  # fmt: skip
        with pytest.raises(VenueRefused) as caught:
            await rest.submit_order(
                symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
                client_order_id="dup",
            )  # fmt: skip
    assert caught.value.status == 422
    assert caught.value.code == 40010001
    assert caught.value.message == "client_order_id must be unique"


async def test_patch_lost_answer_resolved_by_new_client_id(fake: FakeVenue) -> None:
    """PATCH answered 504 after replacing: the new client order id finds the new order."""
    async with gateway(fake) as rest:
        old = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="r-0",
        )  # fmt: skip
        fake.fail("PATCH", f"/v2/orders/{old.id}", 504, when="after")
        new = await rest.replace_order(str(old.id), Decimal(2), Decimal("150.05"), "r-1")
    assert new.client_order_id == "r-1"
    assert str(new.replaces) == str(old.id)
    assert fake.count("PATCH", f"/v2/orders/{old.id}") == 1
    assert len(fake.orders) == 2


async def test_replace_refused_verbatim(fake: FakeVenue) -> None:
    """Replacing a replaced order is refused with Alpaca's words (§1.7)."""
    async with gateway(fake) as rest:
        old = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="q-0",
        )  # fmt: skip
        await rest.replace_order(str(old.id), None, Decimal("150.01"), "q-1")
        with pytest.raises(VenueRefused, match="unable to replace order"):
            await rest.replace_order(str(old.id), None, Decimal("150.02"), "q-2")
        with pytest.raises(ValueError, match="whole shares"):
            await rest.replace_order(str(old.id), Decimal("1.5"), None, "q-3")


async def test_cancel_lost_answer_resolved_by_rereading(fake: FakeVenue) -> None:
    """DELETE answered 504 after cancelling: re-reading shows pending_cancel → done."""
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="k-0",
        )  # fmt: skip
        fake.fail("DELETE", f"/v2/orders/{order.id}", 504, when="after")
        await rest.cancel_order(str(order.id))
    assert fake.count("DELETE", f"/v2/orders/{order.id}") == 1


async def test_cancel_of_filled_order_is_already_filled(fake: FakeVenue) -> None:
    """422 `order is already in "filled" state` is flagged as a fill, not a failure (§9)."""
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="f-0",
        )  # fmt: skip
        fake.orders[str(order.id)]["status"] = "filled"
        with pytest.raises(VenueRefused) as caught:
            await rest.cancel_order(str(order.id))
        assert caught.value.already_filled
        with pytest.raises(NotFound):
            await rest.cancel_order("00000000-0000-4000-8000-000000000000")


async def test_reads_retry_5xx_and_give_up(fake: FakeVenue) -> None:
    """Two 503s then success: the read succeeds; endless 500s end in VenueUnavailable."""
    fake.fail("GET", "/v2/account", 503)
    fake.fail("GET", "/v2/account", 503)
    async with gateway(fake) as rest:
        account = await rest.account()
        assert account.account_number == "PA0000001"
        for _ in range(4):
            fake.fail("GET", "/v2/clock", 500)
        with pytest.raises(VenueUnavailable):
            await rest.clock()


async def test_reads_wait_out_the_rate_limit(fake: FakeVenue) -> None:
    """With the venue allowing 3 a second, 6 concurrent reads all succeed (429s waited out)."""
    fake.rate_limit, fake.window = 3, 1.0
    rest = gateway(fake, read_attempts=6, backoff=BackoffPolicy(0.2, 2, 1.0))
    async with rest, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(rest.clock()) for _ in range(6)]
    assert all(t.result().is_open for t in tasks)


async def test_account_market_and_asset_models(fake: FakeVenue) -> None:
    """alpaca-py's models parse positions, clock, calendar, asset; 404s map cleanly."""
    async with gateway(fake) as rest:
        (position,) = await rest.positions()
        assert Decimal(str(position.qty)) == Decimal("7.2273576")
        assert await rest.position("AAPL") is None
        assert (await rest.clock()).is_open
        (day,) = await rest.calendar(date(2026, 11, 27), date(2026, 11, 27))
        assert day.close.hour == 13
        assert (await rest.asset("AAPL")).fractionable
        with pytest.raises(NotFound):
            await rest.asset("ZZZZ")
        assert await rest.get_order_by_client_id("nope") is None


async def test_latest_quote_is_exact(fake: FakeVenue) -> None:
    """The data API's latest quote becomes a domain Quote with exact Decimals (§5)."""
    async with gateway(fake) as rest:
        quote = await rest.latest_quote("AAPL")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
        Decimal("150.01"),
        Decimal("150.03"),
        Decimal(3),
        Decimal(5),
    )
    assert quote.as_of == NOW
    assert quote.venue_time == datetime(2026, 3, 4, 15, 0, 0, 123457, tzinfo=UTC)


async def test_wrong_keys_are_unauthorized(fake: FakeVenue) -> None:
    """401 is a typed refusal, not retried."""
    async with gateway(fake, secret_key="wrong") as rest:
        with pytest.raises(Unauthorized):
            await rest.account()
    assert fake.count("GET", "/v2/account") == 1


def test_wire_decimal_never_uses_exponents() -> None:
    """Decimals go on the wire in plain notation (1E+2 would be refused)."""
    assert wire_decimal(Decimal("1E+2")) == "100"
    assert wire_decimal(Decimal("0.4321")) == "0.4321"
    with pytest.raises(ValueError):
        wire_decimal(Decimal("NaN"))


async def test_cancel_lost_before_landing_is_sent_again(fake: FakeVenue) -> None:
    """DELETE answered 504 without cancelling: the re-read shows it open, so DELETE again."""
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="k-1",
        )  # fmt: skip
        fake.fail("DELETE", f"/v2/orders/{order.id}", 504, when="before")
        await rest.cancel_order(str(order.id))
    assert fake.count("DELETE", f"/v2/orders/{order.id}") == 2
    assert fake.orders[str(order.id)]["status"] == "pending_cancel"


async def test_cancel_of_canceled_order_is_done(fake: FakeVenue) -> None:
    """422 `order is already in "canceled" state`: the order is dead, which is the goal."""
    async with gateway(fake) as rest:
        order = await rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(2), limit_price=Decimal(150),
            client_order_id="k-2",
        )  # fmt: skip
        fake.orders[str(order.id)]["status"] = "canceled"
        await rest.cancel_order(str(order.id))


async def test_a_write_asked_again_after_expiring_in_line_keeps_its_place(
    fake: FakeVenue,
) -> None:
    """An order whose pricing quote went stale while it waited for the budget is asked
    again, priced anew, with the same `QueuePlace`: it goes before the orders that queued
    after it first, not behind them (a line longer than a quote's freshness otherwise
    sends nothing: each order reaches the front stale and queues again at the end)."""
    budget = RequestBudget(limit=3, window=3.0, read_reserve=0, burst=1)  # one a second
    rest = RestGateway(config(fake), budget, rand=random.Random(1).random, clock=lambda: NOW)

    def place(cid: str, send_within: float | None, queue_place: QueuePlace | None = None) -> Any:
        return rest.submit_order(
            symbol="AAPL", side=Side.BUY, qty=Decimal(1), limit_price=Decimal(150),
            client_order_id=cid, send_within=send_within, queue_place=queue_place,
        )  # fmt: skip

    async with rest:
        await place("x", None)  # spends the burst
        line = QueuePlace()
        a = asyncio.create_task(place("a", 0.3, line))  # will wait ~1 s: stale at its grant
        await wait_until(lambda: budget.statistics().waiting[Priority.NEW_ORDER] == 1)
        b = asyncio.create_task(place("b", None))
        c = asyncio.create_task(place("c", None))
        await wait_until(lambda: budget.statistics().waiting[Priority.NEW_ORDER] == 3)
        with pytest.raises(SendExpired):
            await a
        await b  # the grant "a" gave back went to "b"
        await place("a-again", 5.0, line)  # priced anew: back to where "a" stood
        assert not c.done()
        await c
    posted = [order["client_order_id"] for order in fake.orders.values()]
    assert posted == ["x", "b", "a-again", "c"]


async def test_quote_reads_spend_the_data_apis_budget_not_the_trading_one(
    fake: FakeVenue,
) -> None:
    """Alpaca limits the market-data API apart from trading (ALPACA.md §0.4; DESIGN.md
    "Fresh quote": quote re-reads have their own request budget). Latest-quote reads
    leave the trading budget whole, and wait once the data budget is spent."""
    trading = RequestBudget()
    data = RequestBudget(limit=2, window=60.0, read_reserve=0)
    rest = RestGateway(
        config(fake), trading, data_budget=data, rand=random.Random(1).random, clock=lambda: NOW
    )
    async with rest:
        assert set(await rest.latest_quotes(["AAPL"])) == {"AAPL"}
        assert set(await rest.latest_quotes(["MSFT"])) == {"MSFT"}
        assert trading.statistics().remaining == trading.statistics().limit
        third = asyncio.create_task(rest.latest_quotes(["SPY"]))
        await wait_until(lambda: data.statistics().waiting[Priority.READ] == 1)
        assert fake.count("GET", "/v2/stocks/quotes/latest") == 2
        third.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third
    assert rest.data_budget is data
