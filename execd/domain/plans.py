"""Rebalance plans: the user's input, validated once at the boundary.

Wire shape (JSON, the body of ``execd submit PLAN.json``)::

    {"plan_id": "optional", "urgency": "normal",
     "not_before": "09:45", "deadline": "2026-03-05T15:30:00-05:00",
     "legs": [{"symbol": "TQQQ", "side": "sell", "qty": "10"},
              {"symbol": "AAPL", "side": "buy", "notional": "1500.00",
               "urgency": "low", "limit_price": "190.50"}]}

or, instead of ``legs``, target weights of account equity (the daemon computes the legs
at submit, `execd.domain.targets`)::

    {"targets": {"TQQQ": "0.40", "SOXL": "0.25", "SPY": "0.30"}, "cash": "0.05",
     "liquidate_unlisted": false}

Pydantic checks the shape; every rule's message is ours, one line each,
naming the leg and field (``legs[2].qty: must be > 0``), collected into a
`PlanError`. A pydantic error never leaves this module. Numbers are accepted
as JSON strings or numbers and always become exact `Decimal`s: a JSON float
is read through its shortest repr, never through its binary value, and
`parse_plan_json` decodes floats straight to `Decimal`.

The parsed `Plan` is a frozen value: legs keep their index (which goes into
client order ids, `ids.py`) and carry their effective urgency. No randomness
here: a plan without an id gets one from the caller's `new_plan_id`.

A plan's identity (DESIGN.md "A plan's identity"): `document_digest` is a hash of the
*normalised* document (decimals canonical, key order irrelevant, ``plan_id`` left out),
so "the same document" means the same intent, not the same bytes; `submission_id`
derives the CLI's default plan id from it and the trading date.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from execd.domain.prices import is_on_grid
from execd.domain.types import Side, Urgency

MAX_LEGS = 500
PLAN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
MAX_TARGETS = 500
WEIGHT_MAX_PLACES = 6
QTY_MAX_PLACES = 9  # Alpaca: qty up to 9 decimals (ALPACA.md §1.1)
NOTIONAL_MAX_PLACES = 2  # dollars and cents
# Upper bounds that no real leg reaches; they keep absurd numbers
# ("1e999999") out of the arithmetic rather than limiting anyone.
QTY_LIMIT = Decimal(10) ** 10
NOTIONAL_LIMIT = Decimal(10) ** 12
PRICE_LIMIT = Decimal(10) ** 7

# ASCII digits only (re.ASCII): "١" (an Arabic-Indic one) is a digit to `\d` and to
# Decimal(), but not a number anyone types into a trade. No surrounding whitespace either.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


class PlanError(ValueError):
    """A plan was refused; `errors` lists one message per problem, each naming its field."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("invalid plan: " + "; ".join(self.errors))


def _to_decimal(value: object) -> Decimal:
    """An exact Decimal from a JSON string or number (floats through their repr)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a number (ASCII digits, no spaces)")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
            raise ValueError(f"{value!r} is not a number") from exc
    raise ValueError("must be a number (a JSON string or number)")


def _places(value: Decimal) -> int:
    """Decimal places that carry information (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite values only reach here
    return max(0, -exponent)


def _canonical(value: Decimal) -> Decimal:
    """The same number without trailing zeros or an exponent (``10.00`` → ``10``)."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    assert isinstance(exponent, int)
    return normal.quantize(Decimal(1)) if exponent > 0 else normal


def _positive_amount(value: object, places: int, limit: Decimal) -> Decimal:
    """A positive Decimal with at most `places` decimals, below `limit`."""
    number = _to_decimal(value)
    if number <= 0:
        raise ValueError("must be > 0")
    if number >= limit:
        raise ValueError(f"must be less than {limit:f}")
    if _places(number) > places:
        raise ValueError(f"at most {places} decimal places, got {number:f}")
    return _canonical(number)


def _choice(value: object, allowed: type[Side] | type[Urgency]) -> str:
    """A closed-set value, case-insensitive (ASCII, as given: no spaces), or a message
    listing the choices."""
    names = ", ".join(member.value for member in allowed)
    if (
        not isinstance(value, str)
        or not value.isascii()
        or value.lower() not in {m.value for m in allowed}
    ):
        raise ValueError(f"must be one of {names}, got {value!r}")
    return value.lower()


class LegInput(BaseModel):
    """One leg as the user writes it (the boundary model; see `Leg` for the parsed value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    side: Side
    qty: Decimal | None = None
    notional: Decimal | None = None
    urgency: Urgency | None = None
    limit_price: Decimal | None = None

    @field_validator("symbol", mode="before")
    @classmethod
    def _symbol(cls, value: object) -> str:
        return _symbol(value)

    @field_validator("side", mode="before")
    @classmethod
    def _side(cls, value: object) -> str:
        return _choice(value, Side)

    @field_validator("urgency", mode="before")
    @classmethod
    def _urgency(cls, value: object) -> str | None:
        return None if value is None else _choice(value, Urgency)

    @field_validator("qty", mode="before")
    @classmethod
    def _qty(cls, value: object) -> Decimal | None:
        return None if value is None else _positive_amount(value, QTY_MAX_PLACES, QTY_LIMIT)

    @field_validator("notional", mode="before")
    @classmethod
    def _notional(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        return _positive_amount(value, NOTIONAL_MAX_PLACES, NOTIONAL_LIMIT)

    @field_validator("limit_price", mode="before")
    @classmethod
    def _limit_price(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        price = _to_decimal(value)
        if price <= 0:
            raise ValueError("must be > 0")
        if price >= PRICE_LIMIT:
            raise ValueError(f"must be less than {PRICE_LIMIT:f}")
        # ALPACA.md §1.2: ≥ $1 two decimals, < $1 four; Alpaca answers 422 otherwise.
        if not is_on_grid(price):
            raise ValueError(
                f"{price:f} is off the tick grid (2 decimals at or above $1, 4 below $1)"
            )
        return _canonical(price)

    @model_validator(mode="after")
    def _qty_or_notional(self) -> LegInput:
        if self.qty is None and self.notional is None:
            raise ValueError("one of qty or notional is required")
        if self.qty is not None and self.notional is not None:
            raise ValueError("give qty or notional, not both")
        return self


def _when(value: object) -> str | None:
    """``HH:MM[:SS]`` (US/Eastern wall time on the plan's trading day) or RFC 3339 with an
    offset; returned in a canonical spelling (`resolve_when` turns it into a datetime)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii():
        raise ValueError("must be an ET time HH:MM[:SS] or an RFC 3339 time with its offset")
    text = value.strip()
    if re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", text):
        try:
            return time.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ET time HH:MM[:SS] nor an RFC 3339 time"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} needs an offset (e.g. -05:00 or Z), or give HH:MM in ET")
    return moment.isoformat()


def _ordered_wrongly(not_before: str | None, deadline: str | None) -> bool:
    """Both given in the same spelling, and the deadline not after not_before."""
    if not_before is None or deadline is None or ("T" in not_before) != ("T" in deadline):
        return False
    if "T" in not_before:
        return datetime.fromisoformat(deadline) <= datetime.fromisoformat(not_before)
    return time.fromisoformat(deadline) <= time.fromisoformat(not_before)


def resolve_when(value: str, day: date, zone: Any) -> datetime:
    """A canonical `not_before`/`deadline` as an aware datetime: an ET time of day is
    taken on `day` (the plan's trading day) in `zone` (America/New_York)."""
    if "T" in value:
        return datetime.fromisoformat(value)
    return datetime.combine(day, time.fromisoformat(value), tzinfo=zone)


def _weight(value: object) -> Decimal:
    if isinstance(value, str) and not value.isascii():
        raise ValueError(f"{value!r} is not an ASCII decimal number")
    number = _to_decimal(value)
    if number < 0 or number > 1:
        raise ValueError(f"must be between 0 and 1, got {number:f}")
    if _places(number) > WEIGHT_MAX_PLACES:
        raise ValueError(f"at most {WEIGHT_MAX_PLACES} decimal places, got {number:f}")
    return _canonical(number)


def _symbol(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    # Lowercase is normalised; nothing else is: no spaces, ASCII only ("ﬁ".upper() is
    # "FI", a symbol nobody wrote).
    symbol = value.upper() if value.isascii() else value
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(
            f"{value!r} is not a valid symbol (a letter, then up to 9 letters, digits or dots)"
        )
    return symbol


class PlanInput(BaseModel):
    """A plan as the user writes it (the boundary model; see `Plan` for the parsed value).

    Exactly one of `legs` (explicit orders) or `targets` (weights of account equity, the
    legs computed by the daemon at submit) is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: str | None = None
    urgency: Urgency | None = None
    """None: the daemon's configured `execution.default_urgency` applies."""
    legs: list[LegInput] | None = None
    targets: dict[str, Decimal] | None = None
    cash: Decimal | None = None
    """The weight kept in cash (the targets and it sum to at most 1)."""
    liquidate_unlisted: bool = False
    """With targets: sell symbols held but not listed (default: leave them alone)."""
    not_before: str | None = None
    deadline: str | None = None

    @field_validator("plan_id", mode="before")
    @classmethod
    def _plan_id(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not PLAN_ID_PATTERN.fullmatch(value):
            raise ValueError("must be 1–64 characters of letters, digits and -_.:")
        return value

    @field_validator("urgency", mode="before")
    @classmethod
    def _urgency(cls, value: object) -> str | None:
        return None if value is None else _choice(value, Urgency)

    @field_validator("legs", mode="before")
    @classmethod
    def _legs(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("must be a list of legs")
        if not value:
            raise ValueError("must contain at least 1 leg")
        if len(value) > MAX_LEGS:
            raise ValueError(f"at most {MAX_LEGS} legs, got {len(value)}")
        return value

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: object) -> dict[str, Decimal] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError('must be an object of symbol to weight, e.g. {"SPY": "0.5"}')
        if not value:
            raise ValueError("must name at least 1 symbol")
        if len(value) > MAX_TARGETS:
            raise ValueError(f"at most {MAX_TARGETS} symbols, got {len(value)}")
        out: dict[str, Decimal] = {}
        for key, weight in value.items():
            try:
                symbol = _symbol(key)
                out[symbol] = _weight(weight)
            except ValueError as exc:
                raise ValueError(f"{key!r}: {exc}") from None
        if len(out) != len(value):
            raise ValueError("a symbol appears twice (symbols are case-insensitive)")
        return out

    @field_validator("cash", mode="before")
    @classmethod
    def _cash(cls, value: object) -> Decimal | None:
        return None if value is None else _weight(value)

    @field_validator("not_before", "deadline", mode="before")
    @classmethod
    def _times(cls, value: object) -> str | None:
        return _when(value)

    @model_validator(mode="after")
    def _legs_or_targets(self) -> PlanInput:
        if self.legs is None and self.targets is None:
            raise ValueError('give "legs" (orders) or "targets" (weights of equity)')
        if self.legs is not None and self.targets is not None:
            raise ValueError('give "legs" or "targets", not both')
        if self.targets is None and (self.cash is not None or self.liquidate_unlisted):
            raise ValueError('"cash" and "liquidate_unlisted" go with "targets"')
        if self.targets is not None:
            total = sum(self.targets.values(), Decimal(0)) + (self.cash or Decimal(0))
            if total > 1:
                raise ValueError(f"targets and cash sum to {total:f}, more than 1")
        if _ordered_wrongly(self.not_before, self.deadline):
            raise ValueError("deadline must be after not_before")
        return self


@dataclass(frozen=True, slots=True)
class Leg:
    """One validated leg. `index` is its position in the plan (and in its order ids).

    Exactly one of `qty` / `notional` is set. `urgency` is the effective one
    (the leg's own, else the plan's); `own_urgency` is what the user wrote.
    `limit_price` is a cap: a buy never pays more, a sell never takes less.
    """

    index: int
    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    urgency: Urgency
    own_urgency: Urgency | None
    limit_price: Decimal | None

    @property
    def label(self) -> str:
        """How messages and logs name this leg: ``legs[2]``."""
        return f"legs[{self.index}]"

    @property
    def is_notional(self) -> bool:
        """True for a dollar-amount leg (sized into shares at execution time)."""
        return self.notional is not None

    def to_wire(self) -> dict[str, str]:
        """The leg in the wire shape it was submitted in (decimals as strings)."""
        out = {"symbol": self.symbol, "side": self.side.value}
        if self.qty is not None:
            out["qty"] = str(self.qty)
        if self.notional is not None:
            out["notional"] = str(self.notional)
        if self.own_urgency is not None:
            out["urgency"] = self.own_urgency.value
        if self.limit_price is not None:
            out["limit_price"] = str(self.limit_price)
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated rebalance plan: an id, a default urgency and its legs in submitted order.

    `not_before` / `deadline` are canonical spellings (`resolve_when` gives the datetime on
    the plan's trading day): nothing is sent before the first, and a leg not done by the
    second is cancelled with that reason.
    """

    plan_id: str
    urgency: Urgency
    legs: tuple[Leg, ...]
    not_before: str | None = None
    deadline: str | None = None

    def __iter__(self) -> Iterator[Leg]:
        return iter(self.legs)

    def __len__(self) -> int:
        return len(self.legs)

    def sells(self) -> tuple[Leg, ...]:
        """The sell legs in plan order: they run first, releasing buying power."""
        return tuple(leg for leg in self.legs if leg.side is Side.SELL)

    def buys(self) -> tuple[Leg, ...]:
        """The buy legs in plan order: released as buying power allows."""
        return tuple(leg for leg in self.legs if leg.side is Side.BUY)

    def symbols(self) -> frozenset[str]:
        """Every symbol the plan trades (what the quote stream must subscribe to)."""
        return frozenset(leg.symbol for leg in self.legs)

    def to_wire(self) -> dict[str, Any]:
        """The plan in its wire shape; `parse_plan` of it gives an equal plan."""
        out: dict[str, Any] = {
            "plan_id": self.plan_id,
            "urgency": self.urgency.value,
            "legs": [leg.to_wire() for leg in self.legs],
        }
        if self.not_before is not None:
            out["not_before"] = self.not_before
        if self.deadline is not None:
            out["deadline"] = self.deadline
        return out


def _location(loc: tuple[int | str, ...]) -> str:
    """``('legs', 2, 'qty')`` → ``legs[2].qty``; the empty location is the plan itself."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "plan"


_PYDANTIC_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def _messages(exc: ValidationError) -> list[str]:
    """One ``location: message`` line per pydantic error, in our words."""
    out: list[str] = []
    for error in exc.errors(include_url=False):
        where = _location(tuple(error["loc"]))
        ctx = error.get("ctx") or {}
        if error["type"] == "value_error" and "error" in ctx:
            text = str(ctx["error"])
        else:
            text = _PYDANTIC_MESSAGES.get(error["type"], error["msg"])
        out.append(f"{where}: {text}")
    return out


def _cross_leg_errors(legs: Sequence[LegInput]) -> list[str]:
    """Rules across legs: no symbol twice on a side, no buy and sell of one symbol.

    A buy and a sell of the same symbol open at once is rejected by Alpaca as
    a potential wash trade (LESSONS.md, ALPACA.md §0.5); a symbol twice on one
    side is almost certainly a plan-building bug. The plan should net them.
    """
    errors: list[str] = []
    first_by_side: dict[tuple[str, Side], int] = {}
    for index, leg in enumerate(legs):
        key = (leg.symbol, leg.side)
        if key in first_by_side:
            errors.append(
                f"legs[{index}].symbol: {leg.symbol} appears twice on the {leg.side.value} side"
                f" (legs[{first_by_side[key]}] and legs[{index}]); merge them into one leg"
            )
            continue
        first_by_side[key] = index
        other = first_by_side.get((leg.symbol, leg.side.opposite))
        if other is not None:
            buy, sell = (index, other) if leg.side is Side.BUY else (other, index)
            errors.append(
                f"legs[{index}].symbol: {leg.symbol} is bought in legs[{buy}] and sold in"
                f" legs[{sell}] (wash-trade risk); net them into one leg"
            )
    return errors


def parse_document(raw: object) -> PlanInput:
    """Validate a decoded plan document (legs or targets), or raise `PlanError`."""
    try:
        model = PlanInput.model_validate(raw)
    except ValidationError as exc:
        raise PlanError(_messages(exc)) from None
    if model.legs is not None:
        cross = _cross_leg_errors(model.legs)
        if cross:
            raise PlanError(cross)
    return model


def build_plan(
    model: PlanInput,
    new_plan_id: Callable[[], str],
    default_urgency: Urgency = Urgency.NORMAL,
    legs: Sequence[LegInput] | None = None,
) -> Plan:
    """The `Plan` of a validated document; `legs` are the computed legs of a targets plan."""
    chosen = model.legs if legs is None else list(legs)
    if chosen is None:
        raise PlanError(["targets: the legs of a targets plan are computed by the daemon"])
    if not chosen:
        raise PlanError(["targets: the account already matches the targets; no leg to trade"])
    if len(chosen) > MAX_LEGS:
        raise PlanError([f"targets: {len(chosen)} legs computed, at most {MAX_LEGS}"])
    cross = _cross_leg_errors(chosen)
    if cross:
        raise PlanError(cross)
    plan_id = model.plan_id
    if plan_id is None:
        plan_id = new_plan_id()
        if not PLAN_ID_PATTERN.fullmatch(plan_id):
            raise ValueError(f"generated plan id {plan_id!r} does not match {PLAN_ID_PATTERN}")
    plan_urgency = model.urgency or default_urgency
    built = tuple(
        Leg(
            index=index,
            symbol=leg.symbol,
            side=leg.side,
            qty=leg.qty,
            notional=leg.notional,
            urgency=leg.urgency or plan_urgency,
            own_urgency=leg.urgency,
            limit_price=leg.limit_price,
        )
        for index, leg in enumerate(chosen)
    )
    return Plan(
        plan_id=plan_id,
        urgency=plan_urgency,
        legs=built,
        not_before=model.not_before,
        deadline=model.deadline,
    )


def parse_plan(
    raw: object,
    new_plan_id: Callable[[], str],
    default_urgency: Urgency = Urgency.NORMAL,
) -> Plan:
    """Validate a decoded plan with legs (a JSON object) into a `Plan`, or raise `PlanError`.

    `new_plan_id` is called only when the plan has no ``plan_id``; `default_urgency`
    (the config's ``execution.default_urgency``) only when the plan names no urgency.
    A targets plan is refused here: its legs need the account (`execd.domain.targets`).
    """
    return build_plan(parse_document(raw), new_plan_id, default_urgency)


def parse_plan_json(
    text: str | bytes,
    new_plan_id: Callable[[], str],
    default_urgency: Urgency = Urgency.NORMAL,
) -> Plan:
    """Decode and validate a plan from JSON text; floats are decoded as exact Decimals."""
    return parse_plan(decode_json(text), new_plan_id, default_urgency)


def decode_json(text: str | bytes) -> object:
    """JSON text to Python values, floats as exact Decimals; `PlanError` if it is not JSON."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise PlanError([f"plan: not valid JSON ({exc})"]) from None
    except RecursionError:
        raise PlanError(["plan: nested too deeply"]) from None


# --- identity (DESIGN.md "A plan's identity") --------------------------------------------------


def document_digest(model: PlanInput) -> str:
    """A hash of what the document asks for: the same intent gives the same digest whatever
    the key order or number spelling (``"10"``, ``10.00``); the ``plan_id`` is left out."""
    normal = model.model_dump(mode="json", exclude={"plan_id"})
    text = json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def submission_id(model: PlanInput, trading_day: date) -> str:
    """The CLI's default plan id: the document's digest and its trading day, so the same
    file submitted twice for the same session is one plan (``--new-id`` for a second)."""
    seed = f"{document_digest(model)}:{trading_day.isoformat()}"
    return f"p-{trading_day:%Y%m%d}-{hashlib.sha256(seed.encode()).hexdigest()[:12]}"


def with_plan_id(document: Mapping[str, Any], plan_id: str) -> dict[str, Any]:
    """The document as sent, named."""
    return {**document, "plan_id": plan_id}
