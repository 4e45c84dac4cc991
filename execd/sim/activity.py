"""The account's history: activities (`/v2/account/activities`) and portfolio history
(`/v2/account/portfolio/history`), recorded as the venue runs.

Shapes follow alpaca-py's `TradeActivity` and `PortfolioHistory` models and the JS SDK 4.x's
trading API paths (`/v2/account/activities[/{activity_type}]`, `/v2/account/portfolio/history`).
Activities list newest first by default; paging is Alpaca's: `page_size` (≤ 100) and
`page_token` = the id of the last activity of the previous page. An activity id is
`<transaction time YYYYMMDDHHMMSSmmm>::<uuid>` like Alpaca's.

(sim) The venue produces FILL activities (one per execution, `type` fill or partial_fill) and one
CSD (cash deposit) for the account's starting cash; it has no dividends, fees or transfers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import EASTERN
from execd.sim import wire
from execd.sim.errors import invalid

_MAX_PAGE = 100
_TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86_400}


@dataclass(frozen=True, slots=True)
class _Sample:
    t: datetime
    equity: Decimal


class AccountActivity:
    """Records what happens to the account and answers the two history endpoints."""

    def __init__(self, account_id: str, created: datetime, cash: Decimal) -> None:
        self._account_id = account_id
        self._base = cash
        self._base_asof = created
        self._activities: list[dict[str, Any]] = [
            {
                "id": _activity_id(created),
                "account_id": account_id,
                "activity_type": "CSD",
                "date": created.astimezone(EASTERN).date().isoformat(),
                "net_amount": wire.dec(cash),
                "description": "initial paper account funding",
                "status": "executed",
            }
        ]
        self._samples: list[_Sample] = [_Sample(created, cash)]

    def record_fill(
        self,
        t: datetime,
        *,
        order_id: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        cum_qty: Decimal,
        leaves_qty: Decimal,
        order_status: str,
    ) -> str:
        """One execution as a FILL activity; returns its id."""
        activity_id = _activity_id(t)
        self._activities.append(
            {
                "id": activity_id,
                "account_id": self._account_id,
                "activity_type": "FILL",
                "transaction_time": wire.ts(t),
                "type": "fill" if leaves_qty <= 0 else "partial_fill",
                "price": wire.dec(price),
                "qty": wire.dec(qty),
                "side": side,
                "symbol": symbol,
                "leaves_qty": wire.dec(leaves_qty),
                "order_id": order_id,
                "cum_qty": wire.dec(cum_qty),
                "order_status": order_status,
            }
        )
        return activity_id

    def record_equity(self, t: datetime, equity: Decimal) -> None:
        """An equity sample (the exchange takes one each minute)."""
        self._samples.append(_Sample(t, equity))

    def activities(
        self,
        types: Sequence[str] | None,
        *,
        direction: str = "desc",
        page_size: int = _MAX_PAGE,
        page_token: str | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """GET /v2/account/activities: one page, newest first unless `direction` is asc."""
        if direction not in ("asc", "desc"):
            raise invalid(f"invalid direction: {direction}")
        if not 1 <= page_size <= _MAX_PAGE:
            raise invalid(f"invalid page_size: {page_size}")
        wanted = {t.upper() for t in types or ()}
        rows = [
            a
            for a in self._activities
            if (not wanted or a["activity_type"] in wanted)
            and (after is None or _when(a) > after)
            and (until is None or _when(a) < until)
        ]
        if direction == "desc":
            rows.reverse()
        if page_token:
            ids = [a["id"] for a in rows]
            if page_token not in ids:
                raise invalid(f"invalid page_token: {page_token}")
            rows = rows[ids.index(page_token) + 1 :]
        return rows[:page_size]

    def portfolio_history(
        self, timeframe: str, start: datetime | None, end: datetime | None, now: datetime
    ) -> dict[str, Any]:
        """GET /v2/account/portfolio/history: equity and P/L against the starting cash."""
        if timeframe not in _TIMEFRAMES:
            raise invalid(f"invalid timeframe: {timeframe}")
        step = timedelta(seconds=_TIMEFRAMES[timeframe])
        picked: dict[int, _Sample] = {}
        for sample in self._samples:
            if (start is not None and sample.t < start) or (end is not None and sample.t > end):
                continue
            bucket = int((sample.t - datetime(1970, 1, 1, tzinfo=UTC)) / step)
            picked[bucket] = sample  # the last sample of each period
        rows = sorted(picked.values(), key=lambda s: s.t)
        base = self._base
        return {
            "timestamp": [int(s.t.timestamp()) for s in rows],
            "equity": [float(s.equity) for s in rows],
            "profit_loss": [float(s.equity - base) for s in rows],
            "profit_loss_pct": [float((s.equity - base) / base) if base else None for s in rows],
            "base_value": float(base),
            "base_value_asof": self._base_asof.astimezone(EASTERN).date().isoformat(),
            "timeframe": timeframe,
        }


def _activity_id(t: datetime) -> str:
    v = t.astimezone(UTC)
    return f"{v:%Y%m%d%H%M%S}{v.microsecond // 1000:03d}::{uuid.uuid4()}"


def _when(activity: dict[str, Any]) -> datetime:
    stamp = activity.get("transaction_time")
    if stamp is None:
        day = datetime.fromisoformat(str(activity["date"]))
        return day.replace(tzinfo=EASTERN)
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")[:26] + "+00:00")
