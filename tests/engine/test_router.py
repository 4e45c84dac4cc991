"""Order updates reach the leg that owns them, and nothing is lost silently."""

from __future__ import annotations

import pytest

from execd.domain.ids import client_order_id
from execd.engine import router as router_module
from execd.engine.router import OrderRouter


async def test_routes_every_attempt_of_a_leg() -> None:
    """Attempts 1 and 7 of leg 2 both go to leg 2's inbox, not leg 3's."""
    router: OrderRouter[str] = OrderRouter()
    leg2 = router.register("plan-a", 2)
    leg3 = router.register("plan-a", 3)
    assert router.route(client_order_id("plan-a", 2, 1), "u1")
    assert router.route(client_order_id("plan-a", 2, 7), "u2")
    assert [leg2.queue.get_nowait(), leg2.queue.get_nowait()] == ["u1", "u2"]
    assert leg3.queue.empty()


async def test_unknown_orders_are_counted_not_routed() -> None:
    """Foreign orders and finished legs are reported, never delivered to someone else."""
    router: OrderRouter[str] = OrderRouter()
    router.register("plan-a", 0)
    assert not router.route("someone-elses-order", "x")
    assert not router.route(client_order_id("plan-b", 0, 1), "x")
    router.unregister("plan-a", 0)
    assert not router.route(client_order_id("plan-a", 0, 1), "x")
    assert router.unrouted == 3


async def test_double_registration_is_a_bug() -> None:
    """Two coroutines for one leg would mean two live orders; refuse it."""
    router: OrderRouter[str] = OrderRouter()
    router.register("p", 0)
    with pytest.raises(ValueError, match="already registered"):
        router.register("p", 0)


async def test_full_inbox_flags_the_leg(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow leg never blocks the stream: the overflow is flagged for reconciliation."""
    monkeypatch.setattr(router_module, "INBOX_SIZE", 2)
    router: OrderRouter[int] = OrderRouter()
    inbox = router.register("p", 0)
    for n in range(3):
        router.route(client_order_id("p", 0, 1), n)
    assert inbox.queue.qsize() == 2
    assert inbox.overflowed.is_set()
