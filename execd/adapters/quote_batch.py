"""Single-symbol latest-quote reads coalesced into batched reads: one read per wave.

DESIGN.md "Release costs O(1) reads per wave". A plan's buys all subscribe at once and,
where the stream has nothing fresh for them within `rest_quote_interval`, all ask the data
REST API at about the same moment; so do working legs whose stream went quiet. One read
per symbol met the data API's 200/min (a 2,000-leg release took minutes). `get` instead
parks the symbol in the next batch; one task reads each batch (`RestGateway.latest_quotes`:
one request per 200 symbols), and every symbol asked for while a read is in flight waits
for the next one. So the reads are one per wave of askers (plus chunks), never one per leg.
`RestGateway.latest_quote` goes through it: every caller batches without knowing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

import structlog

from execd.adapters.errors import AdapterError
from execd.domain.quotes import Quote

Read = Callable[[Collection[str]], Awaitable[dict[str, Quote]]]

_log = structlog.get_logger("execd.quotes")


def _retrieved(future: asyncio.Future[Quote | None]) -> None:
    # A waiter that gave up (its own timeout) leaves the future unread: mark its error
    # retrieved so asyncio does not report it as lost.
    if not future.cancelled():
        future.exception()


class LatestQuoteBatcher:
    """Coalesces latest-quote reads of many symbols into batched reads."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._next: dict[str, asyncio.Future[Quote | None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0
        """Batches read (each one or more requests): tests check it is per wave."""

    async def get(self, symbol: str) -> Quote | None:
        """The symbol's latest quote from the next batched read (None: the venue has none).
        Raises `AdapterError` when that read fails. Cancelling one waiter never cancels
        the read, nor another waiter of the same symbol."""
        future = self._next.get(symbol)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            self._next[symbol] = future
            if self._reader is None:
                self._reader = asyncio.create_task(self._read_batches(), name="latest-quotes")
        return await asyncio.shield(future)

    async def _read_batches(self) -> None:
        try:
            while self._next:
                await asyncio.sleep(0)  # the rest of this wave asks in the same loop turn
                batch, self._next = self._next, {}
                self.reads += 1
                try:
                    quotes = await self._read(list(batch))
                except AdapterError as exc:
                    _log.info("latest_quotes_failed", symbols=len(batch), error=str(exc))
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    # Shutdown: no waiter is left hanging.
                    for future in (*batch.values(), *self._next.values()):
                        future.cancel()
                    self._next = {}
                    raise
                except Exception as exc:
                    # A bug: every waiter raises it inside its own leg's boundary (which logs
                    # it with the leg's context); this task ends clean, nothing is swallowed.
                    for future in (*batch.values(), *self._next.values()):
                        if not future.done():
                            future.set_exception(exc)
                    self._next = {}
                    return
                for symbol, future in batch.items():
                    if not future.done():
                        future.set_result(quotes.get(symbol))
        finally:
            self._reader = None
