"""`health` names stale symbols and holding legs; older peers still read it (issue 5)."""

from __future__ import annotations

import msgspec
from rich.console import Console

from execd.cli.render import health_table
from execd.control.protocol import Health

BASE = {
    "halted": False,
    "market_data_connected": False,
    "trade_updates_connected": True,
    "quote_age_seconds": {"ACME": 4.2},
    "request_budget_left": 180,
}


def health(stale: tuple[str, ...] = (), holding: tuple[str, ...] = ()) -> Health:
    """A health answer with the market-data stream down."""
    return Health(
        halted=False,
        market_data_connected=False,
        trade_updates_connected=True,
        quote_age_seconds={"ACME": 4.2},
        request_budget_left=180,
        stale_quote_symbols=stale,
        legs_holding=holding,
    )


def test_health_without_the_new_fields_still_decodes() -> None:
    """An answer from a daemon that predates the fields decodes with empty defaults, and a
    new answer carries them on the wire."""
    old = msgspec.json.decode(msgspec.json.encode(BASE), type=Health)
    assert old.stale_quote_symbols == ()
    assert old.legs_holding == ()
    new = health(("ACME",), ("p[0] ACME",))
    wire = msgspec.json.decode(msgspec.json.encode(new))
    assert wire["stale_quote_symbols"] == ["ACME"]
    assert wire["legs_holding"] == ["p[0] ACME"]


def test_health_table_shows_stale_quotes_and_holding_legs() -> None:
    """`execd health` prints the stale symbols and each holding leg; nothing when none."""
    console = Console(width=120, record=True)
    console.print(health_table(health(("ACME",), ("p[0] ACME",))))
    text = console.export_text()
    assert "stale quotes" in text
    assert "holding (stale quotes)" in text
    assert "p[0] ACME" in text
    quiet = Console(width=120, record=True)
    quiet.print(health_table(health()))
    assert "stale quotes" not in quiet.export_text()
