"""A broken figure in the venue's account answer (`cash`, `non_marginable_buying_power` or
`buying_power` read "NaN", "Infinity" or "") is an unusable read, never a number to size
buys from: the release wave logs it at error with the field and value, sends nothing and
reads the account again, and the buys end with a clear reason at their deadline if it
never mends. Before: `Decimal("")` or `min()` over a NaN raised `InvalidOperation` and the
buys failed "internal error"; "Infinity" sized a buy from unlimited cash."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from execd.control.protocol import ControlError
from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow

NO_CAPS = dict.fromkeys(
    (
        "max_order_notional",
        "max_plan_notional",
        "max_order_equity_multiple",
        "max_plan_equity_multiple",
    )
)
"""The submit-time caps read the account's equity; these tests break only its cash."""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cash", "NaN"),
        ("non_marginable_buying_power", "Infinity"),
        ("non_marginable_buying_power", ""),
        ("cash", "-Infinity"),
    ],
)
async def test_a_broken_cash_figure_holds_the_buys_until_the_account_reads_well(
    start_daemon: StartDaemon, field: str, value: str
) -> None:
    d = await start_daemon(sim={"scenario": "calm"}, risk=NO_CAPS)
    d.venue.services.overrides.set_account({field: value}, None)
    engine = d.daemon.engine
    with capture_logs() as logs:
        status = await d.submit(
            {"plan_id": "broken-cash", "legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}]}
        )

        async def refused_figure() -> bool:
            return any(e["event"] == "buy_release_account_unusable" for e in logs)

        await d.wait_until(refused_figure, "the broken figure to be logged")
        assert await d.orders(status.plan_id) == [], "sized from a broken figure"
        assert (await engine.status(status.plan_id)).legs[0].state == "pending"
        d.venue.services.overrides.set_account({}, None)
        done = await d.finish(status.plan_id)
    event = next(e for e in logs if e["event"] == "buy_release_account_unusable")
    assert event["log_level"] == "error"
    assert event["field"] == field
    assert event["value"] == value
    leg = done.legs[0]
    assert leg.state == "filled", leg
    assert not any(e["event"] == "buy_sizing_crashed" for e in logs)


async def test_buys_end_with_the_reason_when_the_account_never_reads_well(
    start_daemon: StartDaemon,
) -> None:
    d = await start_daemon(sim={"scenario": "calm"}, risk=NO_CAPS)
    d.venue.services.overrides.set_account({"non_marginable_buying_power": "NaN"}, None)
    now = d.venue.clock.now()
    plan: dict[str, Any] = {
        "plan_id": "never-readable",
        "deadline": (now + timedelta(seconds=3)).isoformat(),
        "legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}],
    }
    await d.submit(plan)
    done = await d.finish("never-readable")
    leg = done.legs[0]
    assert leg.state == "failed", leg
    assert leg.reason is not None
    assert "non_marginable_buying_power" in leg.reason
    assert "NaN" in leg.reason
    assert "internal error" not in leg.reason
    assert await d.orders("never-readable") == []


@pytest.mark.parametrize("value", ["NaN", "Infinity", ""])
async def test_a_targets_plan_is_not_sized_from_a_broken_equity(
    start_daemon: StartDaemon, value: str
) -> None:
    """A targets plan is sized from the account's equity: a broken one refuses the plan
    with the reason (before: "Infinity" sized the buys from unlimited equity when the
    equity-relative caps were off, "" crashed the submit)."""
    d = await start_daemon(sim={"scenario": "calm"}, risk=NO_CAPS)
    d.venue.services.overrides.set_account({"equity": value}, None)
    with pytest.raises(ControlError) as refused:
        await d.daemon.engine.submit({"plan_id": "t", "targets": {"SPY": "0.20"}})
    assert "equity" in refused.value.message
    assert await d.orders("t") == []
