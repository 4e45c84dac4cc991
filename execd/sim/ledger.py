"""The account's money rules: buying power, what open orders hold, and who may sell what.

A paper account is a margin account (ALPACA.md §2.1): `multiplier` 2 (Reg T) or 4 (intraday), or
1 for a cash account. Buying power follows the spec's formula, in one expression for the three
multipliers: ``multiplier × max(equity − gross position value / multiplier, 0)`` (cash for 1,
twice the Reg-T excess for 2, four times the equity above a 25 % requirement for 4), less what
open orders hold (§1.10: an opening buy holds limit × qty, a market buy the far side at
submission; a short sale max(limit, ask × 1.03) × qty). `non_marginable_buying_power` is cash
less what open buys hold, which is what a buyer who does not borrow can spend.

Shorting (§1.10): only easy-to-borrow assets, only on a margin account with shorting enabled,
never fractional, and never a flip: a sell larger than the long position (or a buy larger than
the short) is refused like any sell beyond what is available.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from execd.domain.types import Side
from execd.sim import rules, wire
from execd.sim.account import Account
from execd.sim.config import SymbolSpec
from execd.sim.errors import forbidden
from execd.sim.orders import HELD, OrderRequest, SimOrder

_ZERO = Decimal(0)
_SHORT_COLLAR = Decimal("1.03")  # §1.10: a short holds max(limit, ask × 1.03)
_REG_T = Decimal(2)
# Maintenance requirement shown on the account (the assets' `margin_requirement_long` 30 %).
_MAINTENANCE = Decimal("0.30")
_CENT = Decimal("0.01")

ReferencePrice = Callable[[str, Side], Decimal]
Mark = Callable[[str], Decimal]


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """The money fields of GET /v2/account, exact decimals rounded to the cent."""

    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    equity: Decimal
    last_equity: Decimal
    buying_power: Decimal
    regt_buying_power: Decimal
    non_marginable_buying_power: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    last_maintenance_margin: Decimal
    multiplier: int
    shorting_enabled: bool


class Ledger:
    """Money rules over the account and the open orders (the exchange owns both)."""

    def __init__(
        self,
        account: Account,
        orders: Mapping[str, SimOrder],
        reference_price: ReferencePrice,
        mark: Mark,
        *,
        multiplier: int,
        shorting_enabled: bool,
        open_orders: Callable[[], Iterable[SimOrder]] | None = None,
    ) -> None:
        self._account = account
        self._orders = orders
        # The open orders (`orders.OpenOrders`); by default found by scanning every order.
        self._open_orders = open_orders or (lambda: [o for o in self._orders.values() if o.is_open])
        self._reference = reference_price
        self._mark = mark
        self.multiplier = multiplier
        self.shorting_enabled = shorting_enabled and multiplier > 1

    # -- checks at submission (and replace) ----------------------------------------------------

    def check(self, req: OrderRequest, spec: SymbolSpec, replacing: SimOrder | None) -> None:
        """Quantity, shorting and buying-power rules for a new order (§0.5, §1.10)."""
        wanted = req.qty if req.qty is not None else self.notional_shares(req)
        available = self.closing_available(req.symbol, req.side, replacing)
        if available is not None:
            # A sell of a long / a buy of a short: more would flip the position (§1.10; the
            # buy's refusal is the sim's, worded as a sell's).
            if wanted > available:
                raise _insufficient_qty(wanted, available)
            return
        if self._account.qty(req.symbol) == 0:
            self._check_no_opposite_opening(req, replacing)
        if req.side is Side.SELL:
            self._check_short(req, spec, wanted)
        cost = self.hold_value(req, self._reference(req.symbol, req.side), req.qty)
        power = self.buying_power(exclude=replacing)
        if cost > power:
            raise forbidden(
                "insufficient buying power",
                {
                    "buying_power": wire.dec(max(power, _ZERO)) or "0",
                    "cost_basis": wire.dec(cost) or "0",
                },
            )

    def closing_available(
        self, symbol: str, side: Side, replacing: SimOrder | None, arriving: SimOrder | None = None
    ) -> Decimal | None:
        """What an order that closes the position (a sell of a long, a buy of a short) may
        trade; None when `side` opens or adds, which never flips the position.

        `replacing`: the order a replacement takes the place of. `arriving`: that
        replacement itself when it reaches the exchange, already listed among the open
        orders (its own hold is not counted against it)."""
        held = self._account.qty(symbol)
        if side is Side.SELL and held > 0:
            available = self.qty_available(symbol, exclude=replacing, arriving=arriving)
            if replacing is not None and self._second_exit(replacing):
                # The replacement takes the stop's place in its pair, which sells the
                # position once (§1.3; §1.7: OCO/bracket exits can be replaced).
                available += self._pair_share(replacing)
            return available
        if side is Side.BUY and held < 0:
            return self._coverable(symbol, exclude=replacing, arriving=arriving)
        return None

    def replacement_fits(self, old: SimOrder, new: SimOrder, wanted: Decimal) -> bool:
        """Whether `new`, replacing `old`, may work `wanted` shares when it reaches the exchange.

        The PATCH was checked against what `old` had matched when it was sent; `old` went
        on trading in the book until now, and a replacement's qty is absolute (§1.7), so a
        closing replacement is checked again here: one that would sell (or cover) more
        than the position has left is refused, as Alpaca refuses insufficient qty."""
        available = self.closing_available(new.symbol, new.side, old, arriving=new)
        return available is None or wanted <= available

    def _check_no_opposite_opening(self, req: OrderRequest, replacing: SimOrder | None) -> None:
        """No position: an order may not open one side while an order opening the other is
        open (§1.10 "pending opposite-side orders without position → 403"). Both would
        fill, and the second would flip the position the first opened."""
        for o in self._open_orders():
            if o.symbol != req.symbol or o.side is req.side or o is replacing:
                continue
            if o.is_open and not self._second_exit(o):
                opening = "long buy" if req.side is Side.BUY else "short sell"
                other = "short sell" if req.side is Side.BUY else "long buy"
                raise forbidden(f"cannot open a {opening} while a {other} order is open")

    def _check_short(self, req: OrderRequest, spec: SymbolSpec, wanted: Decimal) -> None:
        available = self.qty_available(req.symbol)
        if not self.shorting_enabled:
            # A cash account (or shorting disabled) sells at most what it holds (§1.10).
            raise _insufficient_qty(wanted, available)
        if not spec.easy_to_borrow:
            raise forbidden(f'asset "{req.symbol}" cannot be sold short')  # (sim) wording
        if rules.is_fractional(wanted) or req.notional is not None:
            raise forbidden("fractional orders cannot be sold short")  # §1.3, (sim) wording

    # -- holds and power ----------------------------------------------------------------------

    def notional_shares(self, req: OrderRequest) -> Decimal:
        """The shares a notional order buys (or sells) at the reference price."""
        price = self._reference(req.symbol, req.side)
        notional = req.notional or _ZERO
        return (notional / price).quantize(Decimal("0.000000001")) if price else _ZERO

    def hold_value(self, req: OrderRequest, ref: Decimal, qty: Decimal | None) -> Decimal:
        """What an order of `qty` holds: notional, else limit (or `ref`) × qty; a short sale
        max(limit, ref × 1.03) × qty (§1.10)."""
        if req.notional is not None:
            return req.notional
        if req.side is Side.SELL:
            collared = ref * _SHORT_COLLAR
            price = collared if req.limit_price is None else max(req.limit_price, collared)
            return price * (qty or _ZERO)
        price = req.limit_price if req.limit_price is not None else ref
        return price * (qty or _ZERO)

    def order_hold(self, order: SimOrder) -> Decimal:
        """What an open order holds against buying power: an opening buy or a short sale's
        unfilled value (§1.10); sells of a long position and covering buys hold nothing."""
        if not order.is_open or order.status == HELD or not self._opens(order):
            return _ZERO  # a held exit holds nothing until its entry fills
        req = order.req
        if req.notional is not None:
            return max(_ZERO, req.notional - order.filled_value)
        if req.side is Side.BUY and req.limit_price is not None:
            # `hold_value`'s limit buy, without the reference price it does not use: every
            # submission sums this over the open orders (issue 14: 2,000 resting legs).
            return req.limit_price * order.remaining
        ref = order.ref_price or self._reference(order.symbol, order.side)
        return self.hold_value(req, ref, order.remaining)

    def _opens(self, order: SimOrder) -> bool:
        held = self._account.qty(order.symbol)
        if order.side is Side.BUY:
            return held >= 0
        return held <= 0

    def held(self, exclude: SimOrder | None = None, *, buys_only: bool = False) -> Decimal:
        """The total hold of open orders (a pending replace holds the larger of the two)."""
        total = _ZERO
        for o in self._open_orders():
            if o is exclude or not o.is_open or (buys_only and o.side is Side.SELL):
                continue
            if o.replaces is not None and self._orders[o.replaces].status == "pending_replace":
                continue  # counted with its original, below
            hold = self.order_hold(o)
            if o.pending_replacement is not None and o.status == "pending_replace":
                # §1.7: while a replace is pending, the larger of the old and new order holds.
                hold = max(hold, self.order_hold(self._orders[o.pending_replacement]))
            total += hold
        return total

    def _values(self) -> tuple[Decimal, Decimal]:
        """(long market value, short market value ≤ 0) at the marks."""
        long_value = short_value = _ZERO
        for symbol, holding in self._account.holdings.items():
            value = holding.qty * self._mark(symbol)
            if value >= 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def equity(self) -> Decimal:
        """Cash plus long and (negative) short market value at the marks (§2.1)."""
        long_value, short_value = self._values()
        return self._account.cash + long_value + short_value

    def buying_power(self, exclude: SimOrder | None = None) -> Decimal:
        """§2.1's buying power for the multiplier, less open-order holds (may go negative)."""
        long_value, short_value = self._values()
        equity = self._account.cash + long_value + short_value
        gross = long_value - short_value
        m = Decimal(self.multiplier)
        return m * max(equity - gross / m, _ZERO) - self.held(exclude)

    def non_marginable_buying_power(self) -> Decimal:
        """Cash less what open buys hold: what a buy that borrows nothing may spend."""
        return max(self._account.cash, _ZERO) - self.held(buys_only=True)

    def qty_available(
        self, symbol: str, exclude: SimOrder | None = None, arriving: SimOrder | None = None
    ) -> Decimal:
        """A long position less what open sells hold (§0.5 `insufficient qty available`).

        The venue knows the executions it made before it reports them (fill latency is the
        report's delay): an order being replaced (`exclude`, or one `pending_replace` whose
        replacement counts instead) still holds the shares it matched and has not reported,
        or a replacement could sell them twice and flip the position (§1.10)."""
        held = _ZERO
        for o in self._open_orders():
            if not (o.is_open and o.side is Side.SELL and o.symbol == symbol) or o is arriving:
                continue
            if self._second_exit(o):
                continue
            held += _unreported(o) if self._replaced_away(o, exclude) else o.remaining
        return max(_ZERO, self._account.qty(symbol) - held)

    @staticmethod
    def _replaced_away(order: SimOrder, exclude: SimOrder | None) -> bool:
        """`order` is the one a new order replaces (its replacement holds the rest)."""
        return order is exclude or (
            order.status == "pending_replace" and order.pending_replacement is not None
        )

    def _second_exit(self, order: SimOrder) -> bool:
        """A held exit, or the stop-loss of a take-profit/stop-loss pair: the pair sells the
        position once (§1.3), so only the take profit counts against what is available."""
        if order.status == HELD:
            return True
        if order.parent_id is None and order.replaces is not None:
            # A replacement still in flight takes its leg's place in the pair only when
            # the replace completes; until then it stands for the leg it replaces.
            old = self._orders[order.replaces]
            if old.pending_replacement == order.id:
                return self._second_exit(old)
        if order.parent_id is None or order.req.type not in ("stop", "stop_limit"):
            return False
        return self._orders[order.parent_id].req.order_class in ("bracket", "oco")

    def _pair_share(self, exit_order: SimOrder) -> Decimal:
        """What the counted exit of `exit_order`'s pair (its take profit) holds."""
        if exit_order.parent_id is None:
            return _ZERO
        parent = self._orders[exit_order.parent_id]
        partners = [parent] if parent.req.order_class == "oco" else []
        partners += [self._orders[i] for i in parent.legs if i != exit_order.id]
        counted = [o for o in partners if o.is_open and not self._second_exit(o)]
        return sum((o.remaining for o in counted if o.side is exit_order.side), _ZERO)

    def _coverable(
        self, symbol: str, exclude: SimOrder | None, arriving: SimOrder | None = None
    ) -> Decimal:
        """A short position's size less what open buys already cover (the order being
        replaced still covers what it matched and has not reported: `qty_available`)."""
        covering = _ZERO
        for o in self._open_orders():
            if not (o.is_open and o.side is Side.BUY and o.symbol == symbol) or o is arriving:
                continue
            if self._second_exit(o):
                continue
            covering += _unreported(o) if self._replaced_away(o, exclude) else o.remaining
        return max(_ZERO, -self._account.qty(symbol) - covering)

    def position_available(self, symbol: str) -> Decimal:
        """A position's `qty_available` (signed like the position)."""
        if self._account.qty(symbol) < 0:
            return -self._coverable(symbol, None)
        return self.qty_available(symbol)

    # -- the account object --------------------------------------------------------------------

    def figures(self, last_equity: Decimal, last_gross: Decimal) -> AccountFigures:
        """The account's money fields now (`last_*`: the previous close's)."""
        long_value, short_value = self._values()
        gross = long_value - short_value
        equity = self._account.cash + long_value + short_value
        held = self.held()
        regt = _REG_T * max(equity - gross / _REG_T, _ZERO) - held
        return AccountFigures(
            cash=_cents(self._account.cash),
            long_market_value=_cents(long_value),
            short_market_value=_cents(short_value),
            equity=_cents(equity),
            last_equity=_cents(last_equity),
            buying_power=_floor_cents(max(self.buying_power(), _ZERO)),
            regt_buying_power=_floor_cents(max(regt, _ZERO) if self.multiplier > 1 else _ZERO),
            non_marginable_buying_power=_floor_cents(
                max(self.non_marginable_buying_power(), _ZERO)
            ),
            initial_margin=_cents(gross / _REG_T if self.multiplier > 1 else gross),
            maintenance_margin=_cents(gross * _MAINTENANCE),
            last_maintenance_margin=_cents(last_gross * _MAINTENANCE),
            multiplier=self.multiplier,
            shorting_enabled=self.shorting_enabled,
        )


def _insufficient_qty(wanted: Decimal, available: Decimal) -> Exception:
    return forbidden(
        "insufficient qty available for order "
        f"(requested: {wire.dec(wanted)}, available: {wire.dec(available)})"
    )


def _unreported(order: SimOrder) -> Decimal:
    """Shares `order` matched that its fill reports have not booked yet."""
    return max(_ZERO, order.matched_qty - order.filled_qty)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT)


def _floor_cents(value: Decimal) -> Decimal:
    """Buying power never rounds up past what the account has."""
    return value.quantize(_CENT, rounding=ROUND_DOWN)
