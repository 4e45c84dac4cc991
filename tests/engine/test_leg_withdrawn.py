"""What a stopped leg leaves in the journal for a request it withdrew (issue 14, lane leg).

A place withdrawn while it waited for the request budget was never sent: the journal
closes its intent as `not_sent` (status canceled), so a restart neither looks for it nor
takes it for a venue refusal. A replace withdrawn the same way was journaled `refused`
(status rejected) — as if the venue had turned down a PATCH it never received. The venue's
request log is the judge of what was sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from execd.adapters.journal import Journal
from execd.domain.order_state import OrderStatus
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_cancel_backlog import _budget
from tests.engine.test_daemon_replace_race import ABOVE, LOW, PLAN, SETTINGS, _tape, _venue

pytestmark = pytest.mark.slow


async def test_a_withdrawn_replace_is_journaled_not_sent(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """A passive buy rests; the bid jumps and the leg re-pegs by PATCH, which the venue
    answers 429 again and again (the replace waits for the budget's next grant). The plan
    is cancelled meanwhile: the replace is withdrawn unsent, and its journal row reads
    `not_sent`/canceled, never `refused`/rejected. The venue never saw a PATCH succeed."""
    phases = [(0.0, LOW, 100), (3.0, ABOVE, 100)]
    async with await _venue(_tape(tmp_path, phases, 30.0)) as venue:
        d = await start_daemon(venue=venue, **SETTINGS)
        await venue.fail_next_requests(1000, status=429, method="PATCH", path="/v2/orders/")
        plan_id = (await d.submit(PLAN)).plan_id

        async def patch_refused() -> bool:
            # only PATCHes are answered 429: one was sent and waits to be sent again
            return _budget(d).statistics().rate_limited_total > 0

        await d.wait_until(patch_refused, "a PATCH answered 429")
        status = await d.daemon.engine.cancel(plan_id)
        assert status.state == "canceled", status
        await venue.clear_faults()
        await d.stop()
        async with await Journal.open(d.directory / "journal.db") as journal:
            rows = await journal.orders_for_leg(plan_id, 0)
            replaces = [row for row in rows if row.kind == "replace"]
            assert replaces, f"no replace was intended: {rows}"
            for row in replaces:
                events = [e.event for e in await journal.events_for_order(row.client_order_id)]
                assert events[-1] == "not_sent", (row.client_order_id, events)
                assert row.status is OrderStatus.CANCELED, row
