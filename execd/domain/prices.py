"""US equity price grid and the ladder's limit prices, exact and pure.

Alpaca refuses a limit price off the sub-penny grid with HTTP 422 (ALPACA.md
§1.2: ≥ $1.00 → two decimals, < $1.00 → four decimals), and a limit that is
rounded the wrong way silently pays more than intended. So every price the
ladder sends goes through this module:

- rounding onto the grid never makes a limit more aggressive than intended:
  a buy rounds down, a sell rounds up (`round_for_side`);
- `marketable_limit` is seed 003's "hitting the market with a seatbelt":
  buy at ask + n ticks, sell at bid − n ticks, never below one tick;
- `passive_anchor` is seed 000's liquidity-aware anchoring: buy at bid +
  offset, sell at ask − offset, never locking or crossing the far side;
- `apply_cap` honours a plan's `limit_price` (a buy never above it, a sell
  never below it).

All values are `Decimal`; floats never enter (DESIGN.md "Prices").
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from execd.domain.quotes import Quote
from execd.domain.types import Side

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1")
# The smallest positive price on the grid: one sub-penny tick. A sell limit
# computed from a tiny bid is floored here, never at zero or below (LESSONS.md
# "negative limit prices").
MIN_PRICE = SUB_PENNY


def tick_size(price: Decimal) -> Decimal:
    """The price increment Alpaca accepts at `price` (ALPACA.md §1.2)."""
    return PENNY if price >= ONE_DOLLAR else SUB_PENNY


def is_on_grid(price: Decimal) -> bool:
    """True when `price` is positive and a whole number of ticks (Alpaca would accept it)."""
    return price > 0 and price % tick_size(price) == 0


def round_down(price: Decimal) -> Decimal:
    """The highest grid price ≤ `price` (at least `MIN_PRICE`)."""
    if price < MIN_PRICE:
        return MIN_PRICE
    # Flooring at the tick of the price itself is right on both sides of $1:
    # a price ≥ $1 floors onto pennies and stays ≥ $1; a price < $1 floors onto
    # sub-pennies, which are all valid below $1.
    tick = tick_size(price)
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def round_up(price: Decimal) -> Decimal:
    """The lowest grid price ≥ `price` (at least `MIN_PRICE`)."""
    if price <= MIN_PRICE:
        return MIN_PRICE
    tick = tick_size(price)
    # Ceiling a sub-dollar price onto sub-pennies can reach exactly $1.0000,
    # which is on the penny grid as well, so one rule covers both regimes.
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def round_for_side(side: Side, price: Decimal) -> Decimal:
    """Round onto the grid in the direction that is never more aggressive.

    A buy rounds down (pays no more than intended), a sell rounds up (receives
    no less than intended).
    """
    return round_down(price) if side is Side.BUY else round_up(price)


def tick_up(price: Decimal) -> Decimal:
    """The next grid price above an on-grid `price`."""
    return price + tick_size(price)


def tick_down(price: Decimal) -> Decimal:
    """The next grid price below an on-grid `price`, never below `MIN_PRICE`.

    Below exactly $1.00 the grid is sub-penny, so one tick down from $1.00 is
    $0.9999, not $0.99.
    """
    if price <= MIN_PRICE:
        return MIN_PRICE
    return max(price - tick_size(price - SUB_PENNY), MIN_PRICE)


def step_ticks(price: Decimal, ticks: int, side: Side) -> Decimal:
    """Move an on-grid `price` `ticks` ticks in the aggressive direction of `side`."""
    if ticks < 0:
        raise ValueError(f"ticks must not be negative: {ticks}")
    for _ in range(ticks):
        price = tick_up(price) if side is Side.BUY else tick_down(price)
    return price


def marketable_limit(side: Side, quote: Quote, ticks: int) -> Decimal:
    """Seed 003 step 2: buy at ask + `ticks` ticks, sell at bid − `ticks` ticks.

    The result is on the grid, never below the ask it was computed from for a
    buy (never above the bid for a sell), never more than `ticks` ticks through
    it, and never below one tick. The caller has already refused crossed,
    stale or one-sided quotes (spread.py); this function only refuses a
    non-positive touch, which no grid price could represent.
    """
    touch = quote.ask if side is Side.BUY else quote.bid
    if touch <= 0:
        raise ValueError(f"cannot price a {side} from a non-positive touch {touch}")
    # Step from the touch, then round never-more-aggressive; an off-grid touch
    # can round back behind itself, in which case the nearest grid price at or
    # through the touch is used, so the limit still reaches the far side.
    price = round_for_side(side, step_ticks(touch, ticks, side))
    if side is Side.BUY and price < touch:
        price = round_up(touch)
    elif side is Side.SELL and price > touch:
        price = max(round_down(touch), MIN_PRICE)
    return price


def passive_anchor(side: Side, quote: Quote, offset: Decimal) -> Decimal:
    """Seed 000 anchoring: buy at bid + offset, sell at ask − offset, for queue priority.

    A price that would lock or cross the far side (spread ≤ offset, e.g. a
    one-tick spread) is not passive any more: it falls back to the near touch
    (buy at the bid, sell at the ask). Rounded never more aggressive.

    Below $1.00 the grid is $0.0001 and a cent is 100 ticks, which on a typical
    sub-dollar spread always locks or crosses: there the anchor steps at most one
    tick inside (issue 10 item 8), the queue-priority step the seed means.
    """
    if offset < 0:
        raise ValueError(f"anchor offset must not be negative: {offset}")
    near = quote.bid if side is Side.BUY else quote.ask
    if near < ONE_DOLLAR:
        offset = min(offset, tick_size(near))
    if side is Side.BUY:
        price = round_down(quote.bid + offset)
        return price if price < quote.ask else round_down(quote.bid)
    price = round_up(quote.ask - offset)
    return price if price > quote.bid else round_up(quote.ask)


def cap_on_grid(side: Side, cap: Decimal) -> Decimal:
    """A plan limit as a grid price that is never more aggressive than the plan's."""
    return round_for_side(side, cap)


def apply_cap(side: Side, price: Decimal, cap: Decimal | None) -> Decimal:
    """Honour a plan's `limit_price`: a buy never above it, a sell never below it."""
    if cap is None:
        return price
    grid_cap = cap_on_grid(side, cap)
    return min(price, grid_cap) if side is Side.BUY else max(price, grid_cap)


def is_marketable(side: Side, price: Decimal, quote: Quote) -> bool:
    """True when a limit at `price` would trade against the quote's far side."""
    return price >= quote.ask if side is Side.BUY else price <= quote.bid
