"""The matching engine: walking the book, queue position for resting orders, refill, latency."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.types import Side
from execd.sim.book import SymbolBook
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig, SymbolSpec
from execd.sim.exchange import Exchange
from execd.sim.market import BookSnapshot, Instrument, Level, Print

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
INST = Instrument.of(SymbolSpec("TEST", Decimal("100.00")))


def snap(t: float, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> BookSnapshot:
    """A market book `t` seconds after T0 with (ticks, size) levels."""
    return BookSnapshot(
        "TEST",
        T0 + timedelta(seconds=t),
        tuple(Level(p, s) for p, s in bids),
        tuple(Level(p, s) for p, s in asks),
    )


def sell_print(t: float, price: int, size: int) -> Print:
    """A seller hitting bids at `price`."""
    return Print("TEST", T0 + timedelta(seconds=t), price, size, Side.SELL)


def test_a_taker_walks_the_levels_and_pays_more_than_the_ask() -> None:
    """600 shares against 200 + 300 + 500 displayed: three prices, the last one deeper."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 200)], [(10001, 200), (10002, 300), (10004, 500)]))
    fills = book.take(Side.BUY, Decimal(600), None, T0)
    assert fills == [(10001, Decimal(200)), (10002, Decimal(300)), (10004, Decimal(100))]


def test_a_marketable_limit_stops_at_its_limit() -> None:
    """The limit caps the walk; what is left is the caller's to rest."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 200)], [(10001, 200), (10002, 300)]))
    assert book.take(Side.BUY, Decimal(600), 10001, T0) == [(10001, Decimal(200))]


def test_taken_liquidity_refills_gradually() -> None:
    """Right after we take the ask it is gone; it returns over a few half-lives, not at once."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 200)], [(10001, 400), (10002, 300)]))
    book.take(Side.BUY, Decimal(400), None, T0)
    assert book.top(T0)[1] == Level(10002, 300)
    half = book.levels(True, T0 + timedelta(seconds=2))[0]
    assert half == Level(10001, 200)
    assert book.levels(True, T0 + timedelta(seconds=30))[0] == Level(10001, 400)


def test_a_resting_buy_waits_for_flow_and_the_queue_ahead() -> None:
    """A bid joining 500 shares at 99.98 fills only after 500 shares trade there first."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 300), (9998, 500)], [(10001, 300)]))
    book.rest("o1", Side.BUY, 9998, Decimal(200), T0)
    assert book.on_print(sell_print(1, 9999, 300)) == []  # flow at 99.99 does not reach us
    assert book.on_print(sell_print(2, 9998, 400)) == []  # 400 of the 500 ahead
    fills = book.on_print(sell_print(3, 9998, 250))  # 100 ahead, then 150 for us
    assert [(f.order_id, f.price, f.qty) for f in fills] == [("o1", 9998, Decimal(150))]
    fills = book.on_print(sell_print(4, 9998, 100))
    assert [(f.order_id, f.qty) for f in fills] == [("o1", Decimal(50))]
    assert book.resting("o1") is None


def test_cancels_ahead_shrink_the_queue() -> None:
    """When the displayed size at our price drops below our queue, the queue ahead shrinks."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 800)], [(10001, 300)]))
    book.rest("o1", Side.BUY, 9999, Decimal(100), T0)
    book.on_snapshot(snap(1, [(9999, 100)], [(10001, 300)]))
    fills = book.on_print(sell_print(2, 9999, 150))
    assert [f.qty for f in fills] == [Decimal(50)]


def test_a_quote_crossing_a_resting_order_fills_it_at_its_price() -> None:
    """Sellers arriving at or below our bid trade with us at our limit."""
    book = SymbolBook(INST, refill_half_life_s=2.0)
    book.on_snapshot(snap(0, [(9999, 300)], [(10001, 300)]))
    book.rest("o1", Side.BUY, 9999, Decimal(500), T0)
    fills = book.on_snapshot(snap(1, [(9997, 300)], [(9998, 200), (9999, 100), (10000, 900)]))
    assert [(f.price, f.qty) for f in fills] == [(9999, Decimal(300))]
    assert book.resting("o1") is not None


def make(**overrides: Any) -> tuple[Exchange, list[dict[str, Any]]]:
    """A calm venue at 10:00 on a manual clock with one second of market behind it."""
    fields: dict[str, Any] = {
        "scenario": "calm",
        "seed": 11,
        "start": time(10, 0),
        "start_date": date(2026, 3, 4),
    }
    fields.update(overrides)
    config = SimConfig(**fields)
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    ex.advance(1.0)
    return ex, events


def test_market_order_larger_than_displayed_pays_more_than_the_ask() -> None:
    """Through the venue: a big market buy partially fills level by level, averaging above ask."""
    ex, events = make(cash=Decimal(10_000_000))
    quote = ex.latest_quotes(["SPY"])["SPY"]
    qty = int(quote["as"]) * 4
    placed = ex.submit_order(
        {"symbol": "SPY", "side": "buy", "type": "market", "qty": qty, "time_in_force": "day"}
    )
    ex.advance(0.05)
    done = ex.get_order(placed["id"])
    assert done["status"] == "filled"
    assert Decimal(done["filled_avg_price"]) > Decimal(str(quote["ap"]))
    kinds = [e["event"] for e in events if e["order"]["id"] == placed["id"]]
    assert kinds[:2] == ["pending_new", "new"]
    assert kinds[-1] == "fill"
    assert "partial_fill" in kinds
    assert sum(Decimal(e["qty"]) for e in events if "qty" in e) == qty
    assert ex.position("SPY")["qty"] == str(qty)


def test_fills_arrive_after_the_fill_latency() -> None:
    """No fill is reported before ack + fill latency has passed on the venue clock."""
    ex, events = make(ack_latency_s=0.01, fill_latency_s=0.02)
    ex.submit_order(
        {"symbol": "AAPL", "side": "buy", "type": "market", "qty": 1, "time_in_force": "day"}
    )
    ex.advance(0.025)
    assert [e["event"] for e in events] == ["pending_new", "new"]
    ex.advance(0.01)
    assert [e["event"] for e in events] == ["pending_new", "new", "fill"]


def test_a_resting_bid_below_the_market_does_not_fill_at_once() -> None:
    """A buy several ticks below the bid rests as `new`, with cash only held, not spent."""
    ex, _events = make()
    bid = Decimal(str(ex.latest_quotes(["AAPL"])["AAPL"]["bp"]))
    placed = ex.submit_order(
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "qty": 5,
            "limit_price": str(bid - Decimal("0.50")),
            "time_in_force": "day",
        }
    )
    ex.advance(2.0)
    assert ex.get_order(placed["id"])["status"] == "new"
    assert ex.account()["cash"] == "100000"


def test_cash_and_positions_follow_every_fill() -> None:
    """Cash drops by exactly the fills' value; the position's cost basis matches."""
    ex, events = make()
    ex.submit_order(
        {"symbol": "TQQQ", "side": "buy", "type": "market", "qty": 10, "time_in_force": "day"}
    )
    ex.advance(0.05)
    spent = sum(Decimal(e["qty"]) * Decimal(e["price"]) for e in events if "price" in e)
    assert Decimal(ex.account()["cash"]) == Decimal(100000) - spent
    assert Decimal(ex.position("TQQQ")["cost_basis"]) == spent
    assert len(ex.history()["fills"]) == sum(1 for e in events if "price" in e)


def test_partial_fill_then_cancel_ends_canceled_with_the_fills_kept() -> None:
    """A buy bigger than the book near the touch partially fills; cancelling ends it `canceled`
    with its filled quantity intact (not `filled`)."""
    ex, events = make(cash=Decimal(10_000_000))
    ask = Decimal(str(ex.latest_quotes(["TQQQ"])["TQQQ"]["ap"]))
    placed = ex.submit_order(
        {
            "symbol": "TQQQ",
            "side": "buy",
            "type": "limit",
            "qty": 100_000,
            "limit_price": str(ask + Decimal("0.05")),
            "time_in_force": "day",
        }
    )
    ex.advance(0.05)
    assert ex.get_order(placed["id"])["status"] == "partially_filled"
    ex.cancel_order(placed["id"])
    ex.advance(0.05)
    final = ex.get_order(placed["id"])
    assert final["status"] == "canceled"
    assert Decimal(final["filled_qty"]) > 0
    assert events[-1]["event"] == "canceled"
