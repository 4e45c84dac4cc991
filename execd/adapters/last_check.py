"""The last check before a request's bytes leave: run once its connection is obtained.

A write that passed its withdrawal check when the request budget granted it may still
wait inside aiohttp for one of the pool's connections (up to the connect timeout); a
leg stopped meanwhile would see its order sent anyway (review 4: 16 of a 48-leg plan's
places reached the venue after the plan's cancel). aiohttp's `ClientSession` calls
`ClientRequest.send(conn)` with the connection in hand and no await in between, and
`send` is what writes the request: a check at its top is the last instant before any
byte is written. A check that raises there aborts the request with nothing sent, so its outcome is
certain: not sent; its connection, unused, goes back to the pool (aiohttp would close it).

The check travels in a context variable, set by the caller around its
`session.request(...)`: each request runs in its caller's task, so concurrent requests
never see each other's check, and no private aiohttp attribute is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import aiohttp
from aiohttp.connector import Connection

_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("execd_last_check", default=None)


class CheckedRequest(aiohttp.ClientRequest):
    """A `ClientRequest` that runs the caller's `last_check` before it writes a byte."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        check = _CHECK.get()
        if check is not None:
            try:
                check()  # raises to abort: nothing of this request has been written
            except BaseException:
                # The connection is as good as before: back to the pool. (aiohttp closes
                # the connection of a `send` that raises; after `release` it has none to
                # close, so the next request does not pay a new TCP connect.)
                conn.release()
                raise
        return await super().send(conn)


class _Once:
    """The caller's check, run before the first copy only. aiohttp sends a request again
    by itself when a kept-alive connection drops under it (a new `ClientRequest`); the
    first copy may then have reached the venue, so the resend must go as before (the
    same body: exactly-once by client order id), not end as "not sent"."""

    __slots__ = ("_check", "_done")

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._done = False

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            self._check()


@contextmanager
def last_check(check: Callable[[], None]) -> Iterator[None]:
    """Run `check` right before each request made inside the block is written (a session
    made with `request_class=CheckedRequest`); an exception it raises aborts the send.
    Only the first copy is checked (`_Once`)."""
    token = _CHECK.set(_Once(check))
    try:
        yield
    finally:
        _CHECK.reset(token)
