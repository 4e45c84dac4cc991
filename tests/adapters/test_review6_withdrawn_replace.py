"""Review 6: a write withdrawn after an uncertain attempt is not proof it was not sent.

The leg journals a `SendWithdrawn` write as `not_sent`/CANCELED: a restart never looks for
the order again. `_write_order` used to raise `SendWithdrawn` on its next attempt once a
look-up by the client order id said 404 ("settled absent"). But a look-up only proves the
venue has not *yet* processed the copy: a PATCH or POST whose answer was lost (slower than
our timeout) can still be on its way. The venue's own order log is the judge: here it
holds the order, so the gateway must say `OutcomeUnknown`, never "not sent".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.budget import Withdrawal
from execd.adapters.errors import OutcomeUnknown, SendWithdrawn
from execd.domain.types import Side
from execd.sim.venue import SimVenue

from .conftest import wait_until
from .test_sim_integration import _latest, _wait_status, orders_with, rest_for, venue

__all__ = ["venue"]  # the fixture


QUICK_LOOKUP = BackoffPolicy(initial=0.05, maximum=0.05, jitter=0)


async def _stop_during_the_look_up(venue: SimVenue, withdraw: Withdrawal) -> None:
    await wait_until(lambda: not venue.services.faults.pending())  # look-up is in
    withdraw.set()


async def _landed(venue: SimVenue, cid: str) -> list[object]:
    """The venue's orders for `cid`, once the delayed first copy was processed (~1 s
    after it arrived; polled with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while loop.time() < deadline:
        found = orders_with(await venue.history(), cid)
        if found:
            return list(found)
        await asyncio.sleep(0.05)  # the venue's HTTP log has no event to wait on
    return []


async def _withdrawn_while_the_look_up_is_out(
    venue: SimVenue,
    method: str,
    path: str,
    write: Callable[[Withdrawal], Awaitable[object]],
) -> tuple[Withdrawal, Exception | None]:
    """The race both uncertain-write tests run: the venue processes the next `method path`
    1 s late (our timeout is 0.2 s: the answer is lost), answers the look-up by client order
    id (404, the write is still in its hands) 0.1 s late, and the leg stops (withdraw set)
    while that look-up is out. Returns the withdrawal and how `write(withdraw)` ended (None:
    it returned)."""
    await venue.fail_next_requests(1, delay=1.0, method=method, path=path)
    # the look-up is answered (404) a little late, so the stop lands while it is out
    await venue.fail_next_requests(1, delay=0.1, method="GET", path="/v2/orders:by_client_order_id")
    withdraw = Withdrawal()
    outcome: Exception | None = None
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(_stop_during_the_look_up(venue, withdraw))
        try:
            await write(withdraw)
        except (SendWithdrawn, OutcomeUnknown) as exc:
            outcome = exc
    return withdraw, outcome


def _assert_one_copy_of_unknown_outcome(
    what: str, withdraw: Withdrawal, outcome: Exception | None, cid: str, landed: list[object]
) -> None:
    """The verdict of :func:`_withdrawn_while_the_look_up_is_out`: the race happened, the
    write ended `OutcomeUnknown` for its client order id (never `SendWithdrawn`, "not sent",
    while the venue holds it), and the venue holds exactly one copy (none resent)."""
    assert withdraw.is_set(), f"the race did not happen: the stop came after the {what}"
    assert not isinstance(outcome, SendWithdrawn) or not landed, (
        f"SendWithdrawn ('not sent') but the venue holds the {what}: {landed}"
    )
    assert isinstance(outcome, OutcomeUnknown), f"expected OutcomeUnknown, got {outcome!r}"
    assert outcome.client_order_id == cid
    assert len(landed) == 1, f"exactly one copy of the {what}, landed late: {landed}"


async def test_a_withdrawn_replace_whose_lost_patch_lands_late_was_not_sent(
    venue: SimVenue,
) -> None:
    """A resting buy is re-pegged by PATCH; the venue takes 1 s to process it, our timeout
    is 0.2 s (answer lost: uncertain). The look-up by the new client order id comes back
    404 (the PATCH is still in the venue's hands); the leg stops meanwhile (withdraw set):
    the replace must end `OutcomeUnknown` (no second copy sent), not `SendWithdrawn` —
    and indeed the first copy lands."""
    async with rest_for(venue, total_timeout=0.2, backoff=QUICK_LOOKUP) as rest:
        quote = await _latest(rest, "SPY")
        price = (quote.bid - 2).quantize(Decimal("0.01"))
        old = await rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
            client_order_id="r6-old",
        )  # fmt: skip
        await _wait_status(rest, str(old.id), {"new", "accepted"})

        async def replace(withdraw: Withdrawal) -> object:
            return await rest.replace_order(
                str(old.id), Decimal(1), price + Decimal("0.01"), "r6-new",
                withdraw=withdraw,
            )  # fmt: skip

        withdraw, outcome = await _withdrawn_while_the_look_up_is_out(
            venue, "PATCH", "/v2/orders/", replace
        )
        landed = await _landed(venue, "r6-new")
    _assert_one_copy_of_unknown_outcome("replacement", withdraw, outcome, "r6-new", landed)


async def test_a_withdrawn_place_whose_lost_post_lands_late_was_not_sent(
    venue: SimVenue,
) -> None:
    """The same race for a place: the POST's answer is lost (the venue processes it after
    1 s, our timeout is 0.2 s), the look-up says 404, the leg stops while it is out. The
    place must end `OutcomeUnknown`, and no second copy is sent (exactly one order)."""
    async with rest_for(venue, total_timeout=0.2, backoff=QUICK_LOOKUP) as rest:
        quote = await _latest(rest, "SPY")
        price = (quote.bid - 2).quantize(Decimal("0.01"))

        async def place(withdraw: Withdrawal) -> object:
            return await rest.submit_order(
                symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
                client_order_id="r6-place", withdraw=withdraw,
            )  # fmt: skip

        withdraw, outcome = await _withdrawn_while_the_look_up_is_out(
            venue, "POST", "/v2/orders", place
        )
        landed = await _landed(venue, "r6-place")
    _assert_one_copy_of_unknown_outcome("order", withdraw, outcome, "r6-place", landed)


async def test_a_place_withdrawn_before_any_copy_left_is_not_sent(venue: SimVenue) -> None:
    """The certain case stays certain: withdrawn before the first attempt's send, the
    place is `SendWithdrawn` and the venue never sees it."""
    async with rest_for(venue, total_timeout=0.2, backoff=QUICK_LOOKUP) as rest:
        quote = await _latest(rest, "SPY")
        withdraw = Withdrawal()
        withdraw.set()
        with pytest.raises(SendWithdrawn):
            await rest.submit_order(
                symbol="SPY", side=Side.BUY, qty=Decimal(1),
                limit_price=(quote.bid - 2).quantize(Decimal("0.01")),
                client_order_id="r6-never", withdraw=withdraw,
            )  # fmt: skip
        assert orders_with(await venue.history(), "r6-never") == []
