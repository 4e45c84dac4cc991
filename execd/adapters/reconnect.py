"""One reconnect supervisor for both websocket streams (market data and trade_updates).

The two stream clients used to carry near-copies of the same loop (issue 11 §12). This is
that loop, once: run one connection's session; classify how it ended (websockets'
``process_exception`` idea: "retry" or "fatal", `classify_stream_error`); count auth
refusals in a row and give up with `StreamAuthError` after `max_auth_failures`; wait a
jittered delay from a pure `BackoffPolicy` generator — a fresh one after a session that
delivered data, so one bad minute does not slow the next outage — and log
``stream_reconnecting`` with the reason and attempt. A crash that is not a network or
protocol failure is logged ``stream_crashed`` and propagates (the daemon's TaskGroup
turns it into a clean exit; systemd restarts).

The stream owns its session and what "delivered data" and "disconnected" mean; the
supervisor owns only the retry policy and its counters.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, NoReturn

import structlog

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.errors import StreamAuthError

log = structlog.get_logger(__name__)

__all__ = ["ReconnectPolicy", "Reconnector"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How one stream retries: its backoff, auth-refusal budget and limit wait."""

    backoff: BackoffPolicy
    max_auth_failures: int = 3
    #: minimum wait after a refusal that says "too many connections" (0: none).
    connection_limit_delay: float = 0.0


class Reconnector:
    """Runs a stream's sessions forever; see the module docstring.

    `session` is one connection's whole life (connect, authenticate, stream until it
    breaks); `classify` says whether a failure is worth a retry; `is_auth_refusal` and
    `is_limit_refusal` recognise the server's refusals; `had_data` whether the session
    that just ended delivered anything; `on_disconnect` runs after every session.
    """

    def __init__(
        self,
        stream: str,
        policy: ReconnectPolicy,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.stream = stream
        self.policy = policy
        self._rand = rand
        self.reconnects = 0
        """Reconnections so far (for `statistics()`)."""
        self.auth_failures = 0
        """Auth refusals in a row; `authenticated` resets it."""

    def authenticated(self) -> None:
        """The session got past authentication: refusals are no longer "in a row"."""
        self.auth_failures = 0

    async def run(
        self,
        session: Callable[[], Awaitable[None]],
        *,
        classify: Callable[[BaseException], Literal["retry", "fatal"]],
        had_data: Callable[[], bool],
        on_disconnect: Callable[[], None],
        is_auth_refusal: Callable[[BaseException], bool],
        is_limit_refusal: Callable[[BaseException], bool] = lambda _: False,
    ) -> NoReturn:
        """Connect, stream, reconnect; returns never — cancellation or a fatal error end it."""
        delays = self.policy.backoff.delays(self._rand)
        while True:
            reason: BaseException
            try:
                await session()
                reason = ConnectionError("stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if classify(exc) == "fatal":
                    log.error("stream_crashed", stream=self.stream, error=repr(exc))
                    raise
                reason = exc
            finally:
                on_disconnect()
            if had_data():
                delays = self.policy.backoff.delays(self._rand)
            delay = next(delays)
            if is_auth_refusal(reason):
                self.auth_failures += 1
                if self.auth_failures >= self.policy.max_auth_failures:
                    log.error("stream_auth_failed", stream=self.stream, reason=str(reason))
                    raise StreamAuthError(str(reason)) from reason
            if is_limit_refusal(reason):
                delay = max(delay, self.policy.connection_limit_delay)
            self.reconnects += 1
            log.warning(
                "stream_reconnecting",
                stream=self.stream,
                delay=round(delay, 3),
                reason=repr(reason),
                attempt=self.reconnects,
            )
            await asyncio.sleep(delay)
