"""Adapters: the only code in execd that talks to Alpaca or to the simulated venue.

- `rest` — the async REST gateway (aiohttp + alpaca-py models), behind `budget`; built
  from `rest_http` (pools, one attempt, the retried read), `rest_writes` (orders sent
  exactly once), `rest_reads` (the GETs) and `rest_answers` (answers to errors and models).
- `market_stream` — market-data websocket, NBBO cache and trade VWAP; `market_values` its
  values and pure quote ordering; `stream_slots` which symbols the feed's symbol limit
  lets it carry; `market_halts` which symbols its statuses channel says are halted.
- `order_stream` — the `trade_updates` websocket, routed by client order id.
- `stream_errors` — how a stream ended (retry or fatal), for both streams' reconnects.
- `wire` — msgspec structs for the stream messages (ALPACA.md §3, §4).
- `backoff` — the one jittered exponential backoff every retry loop uses.
- `errors` — the exception tree callers match on.
"""
