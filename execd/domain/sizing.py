"""How many shares a leg trades: notional legs and the buying-power shrink.

Two failures of earlier systems shape this module (LESSONS.md "Sizing and money"):
fractional leftovers that could never be traded because a quantity was rounded the wrong
way, and buy phases that failed outright for a few cents of buying power. Quantities are
therefore always rounded *down* (never ask for more than the money or position allows),
to whole shares where the asset is not fractionable and to Alpaca's 9 decimals where it is
(ALPACA.md §1.1), and a buy that does not quite fit is shrunk to what the account can pay
for — but only within a small tolerance of the plan's buy total (DESIGN.md "Buys spend
cash, not margin"): a plan that asks for far more than the account holds is refused, never
turned into "everything the account has" (issue 11: 1,000,000,000 TQQQ on a $100k
account silently became a $99.8k buy).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

QTY_QUANTUM = Decimal("0.000000001")  # Alpaca accepts up to 9 decimals (ALPACA.md §1.1)
WHOLE = Decimal(1)
BPS = Decimal(10_000)


def account_figure(raw: object) -> Decimal | None:
    """A money figure of the venue's account answer (alpaca-py keeps them as strings) as
    a finite Decimal; None when it is missing, unparsable ("", "1,000", "٣") or not
    finite ("NaN", "Infinity"). Sizing from such a read would crash (`min` over a NaN
    raises) or spend without bound (an infinite cash fits any buy), so it is no read at
    all. A finite negative figure is a real account state (cash owed) and is kept: it
    sizes nothing."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if not text.isascii():
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        return None
    return value if value.is_finite() else None


def round_qty_down(qty: Decimal, fractionable: bool) -> Decimal:
    """The largest tradable quantity not above `qty`."""
    quantum = QTY_QUANTUM if fractionable else WHOLE
    return qty.quantize(quantum, rounding=ROUND_DOWN)


def qty_for_notional(notional: Decimal, price: Decimal, fractionable: bool) -> Decimal:
    """Shares a dollar amount buys or sells at `price` (the far touch at the leg's start).

    A notional leg becomes a quantity so that the ladder can use limit orders (Alpaca
    accepts notional only on market orders, ALPACA.md §1.1). The result never costs more
    than the notional at that price.
    """
    if price <= 0:
        raise ValueError(f"price must be > 0, got {price}")
    if notional <= 0:
        raise ValueError(f"notional must be > 0, got {notional}")
    return round_qty_down(notional / price, fractionable)


def reservation_price(ask: Decimal, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """A conservative per-share price for a buy's buying-power check.

    Alpaca reserves limit × qty for an open buy and a collared price for a market buy
    (ALPACA.md §1.10). A ladder may re-peg up to its slippage budget above the ask, so the
    reservation assumes the worst price the ladder would pay before its fallback.
    """
    return ask * (1 + slippage_bps / BPS) + tick


def affordable_qty(
    qty: Decimal, price: Decimal, buying_power: Decimal, fractionable: bool
) -> Decimal:
    """`qty`, or less when the account cannot pay `price` for all of it (never more).

    Zero means nothing is affordable; the caller ends the leg with that reason instead of
    sending an order the venue will refuse.
    """
    if price <= 0:
        raise ValueError(f"price must be > 0, got {price}")
    if buying_power <= 0:
        return Decimal(0)
    if qty * price <= buying_power:
        return qty
    return min(qty, round_qty_down(buying_power / price, fractionable))


@dataclass(frozen=True, slots=True)
class BuyFit:
    """What a buy may be released with: `qty` (0 when refused) and why."""

    qty: Decimal
    verdict: Literal["fits", "shrunk", "refused"]
    shortfall: Decimal  # USD the requested qty lacks at `price`
    allowed: Decimal  # USD of shortfall the tolerance allows


def fit_buy(
    qty: Decimal,
    price: Decimal,
    power: Decimal,
    plan_buy_total: Decimal,
    tolerance_percent: Decimal,
    fractionable: bool,
) -> BuyFit:
    """Fit one buy into the cash left (`power`), shrinking it only by a shortfall of at
    most `tolerance_percent` of the plan's buy total (USD at reservation prices).

    The shrink lands on the buy being released when the cash runs out — in plan order,
    the last ones — not pro rata over every buy: pro rata would need every buy's quote
    before any buy may start, so one silent symbol would hold up the rest (DESIGN.md
    "a leg waiting for a quote waits alone"); and within a tolerance of a fraction of a
    percent of the plan the weights barely move either way.
    """
    if price <= 0:
        raise ValueError(f"price must be > 0, got {price}")
    if tolerance_percent < 0:
        raise ValueError(f"tolerance must not be negative, got {tolerance_percent}")
    need = qty * price
    allowed = max(plan_buy_total, need) * tolerance_percent / 100
    if need <= power:
        return BuyFit(qty, "fits", Decimal(0), allowed)
    affordable = affordable_qty(qty, price, power, fractionable)
    shortfall = need - affordable * price
    if affordable > 0 and shortfall <= allowed:
        return BuyFit(affordable, "shrunk", shortfall, allowed)
    return BuyFit(Decimal(0), "refused", shortfall, allowed)


def sellable_qty(total: Decimal, available: Decimal, committed: Decimal) -> Decimal:
    """Shares a new sell may take: never beyond the position (execd is long-only and never
    opens a short).

    `total` is the position, `available` the venue's ``qty_available`` (shares not held by
    an open order), `committed` the shares execd's other sells have started or accepted to
    sell and not yet sold. Shares held by execd's own live orders are in both `committed`
    and `total - available`, so the smaller of the two figures counts them once; shares
    held by someone else's order are out of `available`.
    """
    return max(min(available, total - committed), Decimal(0))
