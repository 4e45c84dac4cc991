"""The REST gateway: the only code that calls Alpaca's trading and market-data REST APIs.

`RestGateway` is what the engine holds; it is assembled from three parts with one job each:

- `rest_http` — the shell: the two keep-alive pools (reads, writes), the shared
  `RequestBudget`, one attempt with its last send-or-not check, and the retried read;
- `rest_writes` — place, replace and cancel, each sent exactly once or reported
  `OutcomeUnknown` (a lost answer is settled by a look-up, never repeated blind);
- `rest_reads` — orders, account, positions, assets, clock, calendar, latest quotes;

with `rest_answers` mapping what the venue answers to the errors.py tree and to
alpaca-py's models. Callers import from here: `RestGateway`, `RestConfig`, `Order`
and `wire_decimal` are this module's public names.
"""

from __future__ import annotations

from execd.adapters.rest_http import RestConfig
from execd.adapters.rest_reads import VenueReads
from execd.adapters.rest_writes import Order, OrderWrites, wire_decimal

__all__ = ["Order", "RestConfig", "RestGateway", "wire_decimal"]


class RestGateway(OrderWrites, VenueReads):
    """Async Alpaca REST client: use as ``async with RestGateway(config, budget) as rest``.

    `budget` paces the trading API, `data_budget` (default: Alpaca's free-plan 190 of 200 a
    minute) the market-data API's latest-quote reads. `clock` gives the venue-corrected
    current time (stamps `Quote.as_of` on latest quotes); `rand` feeds the backoff jitter.
    """
