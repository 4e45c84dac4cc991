"""Review 6: an OCO stop leg's replacement ignores the take profit's partial fill.

One position, two exits (ALPACA.md §1.3: "partial TP fill resizes SL"): when the take
profit partly fills, the venue shrinks the stop leg to what is left (`_shrink_exit_pair`).
But a stop leg in `pending_replace` hands its place to a replacement sized at PATCH time
(`old.remaining`), and `_finish_replace` does not carry the shrink over: the replacement
works the full quantity. When the stop then triggers it sells more than the position
holds: the account guard raises `RuntimeError: sell fill of 2 would flip SPY` out of
`Exchange.advance` — out of every REST call that catches the venue's clock up (the same
crash class as last session's `pending_replace` twin). A real OCO sells what is left.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.domain.calendar import EASTERN
from tests.engine.conftest import TAPE_DAY, TapeQuote, write_tape
from tests.sim.test_complex_replace import _exchange


def _tape(path: Path) -> Path:
    """SPY: quiet at 50.00/50.02 until 1.7 s, then the market falls through the stop."""
    quotes = [TapeQuote(i / 10, Decimal("50.00"), Decimal("50.02")) for i in range(17)]
    quotes += [TapeQuote(1.7 + i / 10, Decimal("48.00"), Decimal("48.02")) for i in range(30)]
    write_tape(path, {"SPY": quotes}, start=time(10, 0))
    # stops trigger on prints: trades at 48.01 alongside the fall
    origin = datetime.combine(TAPE_DAY, time(10, 0), tzinfo=EASTERN)
    lines = path.read_text(encoding="utf-8").splitlines()
    for i in range(30):
        at = (origin + timedelta(seconds=1.75 + i / 10)).isoformat()
        trade = {"T": "t", "S": "SPY", "p": 48.01, "s": 100, "x": "V", "t": at, "i": i}
        lines.append(json.dumps(trade))
    lines.sort(key=lambda line: str(json.loads(line)["t"]))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_replaced_stop_leg_never_sells_more_than_the_take_profit_left(
    tmp_path: Path,
) -> None:
    ex = _exchange(tape=_tape(tmp_path / "blip.jsonl"), scenario="calm", partial_fill_rate=1.0)
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    oco = ex.submit_order(
        {
            "symbol": "SPY", "side": "sell", "type": "limit", "qty": 10,
            "time_in_force": "day", "order_class": "oco",
            "take_profit": {"limit_price": "50.10"},
            "stop_loss": {"stop_price": "49.50"},
        }
    )  # fmt: skip
    [stop_leg] = oco["legs"]
    ex.advance(0.4)  # t = 1.4 s: both exits routed
    # The take profit is re-priced marketable (49.90 under a 50.00 bid) and the stop leg
    # re-priced right after: the take profit's replacement arrives first and partly fills
    # (paper's random partial fill) while the stop leg's replace is still pending.
    ex.replace_order(oco["id"], {"limit_price": "49.90"})
    ex.advance(ex._ack.total_seconds() / 2)  # half the venue's ack latency
    replacement = ex.replace_order(stop_leg["id"], {"stop_price": "49.45"})
    ex.advance(8.0)  # the market falls through the stop at 1.7 s; the stop sells out
    tp = [e for e in events if e["order"].get("replaces") == oco["id"]]
    tp_filled = max((Decimal(e["order"]["filled_qty"]) for e in tp), default=Decimal(0))
    sold = sum(
        (Decimal(e["qty"]) for e in events if e["event"] in ("fill", "partial_fill")),
        Decimal(0),
    )
    assert 0 < tp_filled < 10, f"the take profit did not partly fill: {tp_filled}"
    assert ex.get_order(stop_leg["id"])["status"] == "replaced", "the replace did not race"
    positions = {p["symbol"]: Decimal(p["qty"]) for p in ex.positions()}
    assert sold <= 10, (
        f"the OCO sold {sold} of a 10-share position (take profit {tp_filled}); replacement "
        f"{ex.get_order(replacement['id'])}; positions {positions}"
    )


def test_a_replacement_of_the_rest_never_sells_what_the_old_order_matched_meanwhile() -> None:
    """A PATCH without qty replaces the rest of the order, read from the fills reported at
    PATCH time. Fills the old order matched but had not reported yet (fill latency) must not
    be worked again by the replacement: the venue raised 'would flip' out of `advance`."""
    ex = _exchange(partial_fill_rate=1.0)
    ex.set_fill_delay(0.5)
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    bid = Decimal(str(ex.latest_quotes(["SPY"])["SPY"]["bp"]))
    body = {"symbol": "SPY", "side": "sell", "type": "limit", "qty": 10, "time_in_force": "day"}
    order = ex.submit_order({**body, "limit_price": str(bid - 1)})
    ex.advance(0.05)  # partly matched, not reported yet
    assert ex.get_order(order["id"])["filled_qty"] == "0"
    replacement = ex.replace_order(order["id"], {"limit_price": str(bid - 2)})
    assert replacement["qty"] == "10", "the race did not happen: the PATCH saw the fills"
    ex.advance(10.0)
    sold = sum(
        (Decimal(e["qty"]) for e in events if e["event"] in ("fill", "partial_fill")),
        Decimal(0),
    )
    assert sold == 10, f"sold {sold} of a 10-share position"
    assert not ex.positions()
